#include "server/openapi.h"

#include <memory>
#include <string>

#include "http/handler.h"
#include "http/router.h"

namespace keygate::server {

void RegisterOpenApi(http::Router& router) {
  router.Add(
      "GET", "/openapi.json",
      [](http::Request&, std::shared_ptr<http::Responder> responder) {
        http::Response response;
        response.status = 200;
        response.content_type = "application/json";
        response.body = std::string(OpenApiDocument());
        responder->Send(std::move(response));
      },
      http::Execution::kInline);
}

}  // namespace keygate::server
