// GET /openapi.json: the OpenAPI 3.1 document of keygate's HTTP APIs (the owner API, the three
// management dialects, the data plane and the operational routes). The document is
// docs/openapi.json, embedded into the binary at build time (cmake/embed_file.cmake), so an
// installed keygate serves it without its source tree.
//
// Thread safety: the document is immutable; the handler may run on any thread.
#pragma once

#include <string_view>

namespace keygate::http {
class Router;
}

namespace keygate::server {

// The embedded document, valid for the life of the process. Defined in the generated
// openapi_document.cc.
std::string_view OpenApiDocument();

// Adds GET /openapi.json (inline: it never blocks) to `router`.
void RegisterOpenApi(http::Router& router);

}  // namespace keygate::server
