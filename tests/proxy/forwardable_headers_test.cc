// What of the caller's headers goes upstream (ForwardableHeaders): end-to-end headers only,
// never a credential of the caller's, never one keygate sets itself.
#include <gtest/gtest.h>

#include "proxy/model_call.h"

namespace keygate::proxy {
namespace {

TEST(ForwardableHeadersTest, KeepsEndToEndHeadersInOrderAndDropsTheRest) {
  http::HeaderList headers = {
      {"host", "gateway.example"},
      {"authorization", "Bearer sk-kg-caller-secret"},
      {"x-stainless-lang", "js"},
      {"content-type", "application/json"},
      {"content-length", "42"},
      {"connection", "keep-alive, x-hop"},
      {"x-hop", "named by Connection"},
      {"keep-alive", "timeout=5"},
      {"api-key", "azure-style-secret"},
      {"x-api-key", "anthropic-style-secret"},
      {"cookie", "session=1"},
      {"x-forwarded-for", "10.0.0.1"},
      {"forwarded", "for=10.0.0.1"},
      {"x-request-id", "req-1"},
      {"openai-organization", "org-caller"},
      {"accept-encoding", "gzip"},
      {"user-agent", "OpenAI/JS 4.77.0 with a long enough value to live on the heap"},
      {"te", "trailers"},
      {"x-custom", "kept"},
  };
  const http::HeaderList expected = {
      {"x-stainless-lang", "js"},
      {"user-agent", "OpenAI/JS 4.77.0 with a long enough value to live on the heap"},
      {"x-custom", "kept"},
  };
  EXPECT_EQ(ForwardableHeaders(std::move(headers)), expected);
}

// Audit N: a caller's keygate key sent in a header outside the list above (Google's, Azure
// APIM's, a generic token header) went to the provider. Any header holding a keygate key's
// shape stays behind, whatever its name or the key's prefix.
TEST(ForwardableHeadersTest, AHeaderHoldingAKeygateKeyNeverGoesUpstream) {
  const std::string key = "sk-kg-" + std::string("Ab3") + std::string(40, 'x');  // 43 after it
  http::HeaderList headers = {
      {"x-goog-api-key", key},
      {"x-auth-token", "Bearer " + key},
      {"ocp-apim-subscription-key", "other-prefix-" + key.substr(6)},
      {"x-trace", "abc123"},
      {"x-api-token", key + ", more"},
  };
  const http::HeaderList expected = {{"x-trace", "abc123"}};
  EXPECT_EQ(ForwardableHeaders(std::move(headers)), expected);
}

TEST(ForwardableHeadersTest, HeadersNamedByConnectionAreDroppedWhateverTheirCase) {
  // The Connection value is read while the kept headers move out: it must stay intact.
  http::HeaderList headers = {{"x-before", "1"},
                              {"connection", " X-Hop-One ,x-hop-two"},
                              {"x-hop-one", "a"},
                              {"x-middle", "2"},
                              {"x-hop-two", "b"},
                              {"x-after", "3"}};
  const http::HeaderList expected = {{"x-before", "1"}, {"x-middle", "2"}, {"x-after", "3"}};
  EXPECT_EQ(ForwardableHeaders(std::move(headers)), expected);
}

TEST(ForwardableHeadersTest, EveryConnectionLineNamesHeaders) {
  // Two Connection lines make one list (RFC 9110 §5.3): a header named in the second is as
  // hop-by-hop as one named in the first.
  http::HeaderList headers = {{"connection", "keep-alive"},
                              {"x-first", "1"},
                              {"connection", "\tX-Secret-Hop"},
                              {"x-secret-hop", "v1"},
                              {"x-kept", "2"}};
  const http::HeaderList expected = {{"x-first", "1"}, {"x-kept", "2"}};
  EXPECT_EQ(ForwardableHeaders(std::move(headers)), expected);
}

}  // namespace
}  // namespace keygate::proxy
