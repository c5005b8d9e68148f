// Private to src/proxy: the fast path of ParseChatRequest. A chat request of the common shape
// (a flat list of messages whose fields are strings or null, integer limits, a boolean stream,
// no stream_options, prompt fields as strings) is read in one pass of a hand-written scanner
// that checks the JSON (UTF-8 included), builds no document and copies every member but
// `model` into body_without_model as written. Anything else, and anything the scanner is not
// sure of (an exponent, a \u surrogate, an escaped member name, deep nesting), returns
// nullopt, and the full parser (which also words every error) reads the body instead. On the
// bodies it accepts it gives the same ModelRequest as the full parser, up to the formatting of
// body_without_model (members as sent instead of re-serialized).
//
// Thread safety: a pure function.
#pragma once

#include <optional>
#include <string_view>

#include "proxy/openai_request.h"

namespace keygate::proxy::internal {

std::optional<ModelRequest> FastParseChatRequest(std::string_view body);

}  // namespace keygate::proxy::internal
