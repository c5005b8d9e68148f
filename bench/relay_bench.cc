// What the stream relay spends reading one upstream event (proxy::ReadEvent: its kind, usage,
// completion text and the `usage: null` to strip), for the chunks of a streamed call: a short
// content chunk as OpenAI sends it when usage was asked for, a longer one with escapes, and the
// usage chunk. Per event; a streamed call of the HTTP benchmark reads five. Then per stream,
// with and without the stream's EventShapes.
#include <benchmark/benchmark.h>

#include <string>

#include "proxy/openai_response.h"

namespace keygate::proxy {
namespace {

// Every chunk of one OpenAI stream begins alike.
const std::string kHead =
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
    "\"created\":1700000000,\"model\":\"echo\",\"system_fingerprint\":\"fp_44709d6fcb\",";
const std::string kContentChunk =
    kHead + "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
            "\"finish_reason\":null}],\"usage\":null}\n\n";
const std::string kLongChunk =
    kHead + "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Here is a list:\\n\\n1. "
            "\\\"First\\\", with a quote\\n2. Second, with a longer line of text that goes on for "
            "a while\\n3. Third\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
const std::string kUsageChunk =
    kHead + "\"choices\":[],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":4,"
            "\"total_tokens\":28,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n";

void BM_ReadEvent(benchmark::State& state, const std::string& event) {
  for (auto _ : state) benchmark::DoNotOptimize(ReadEvent(event));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * event.size()));
}
BENCHMARK_CAPTURE(BM_ReadEvent, content, kContentChunk);
BENCHMARK_CAPTURE(BM_ReadEvent, long_content, kLongChunk);
BENCHMARK_CAPTURE(BM_ReadEvent, usage, kUsageChunk);

// A stream's events in order, as the relay reads them: with one EventShapes for the stream
// (the prefix and the content chunk learned from its first event, so that the next two content
// chunks are only compared and the usage chunk is read after the prefix), or each event alone.
// Per stream of three content chunks and the usage chunk.
void BM_ReadStream(benchmark::State& state) {
  const bool with_shapes = state.range(0) != 0;
  for (auto _ : state) {
    EventShapes shapes;
    EventShapes* shared = with_shapes ? &shapes : nullptr;
    for (const std::string* event : {&kContentChunk, &kLongChunk, &kContentChunk, &kUsageChunk}) {
      benchmark::DoNotOptimize(ReadEvent(*event, shared));
    }
  }
}
BENCHMARK(BM_ReadStream)->ArgName("shapes")->Arg(0)->Arg(1);

}  // namespace
}  // namespace keygate::proxy
