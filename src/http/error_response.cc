#include "http/error_response.h"

#include <utility>

#include "common/log.h"

namespace keygate::http {

std::string ErrorBody(const Error& error) {
  std::string body;
  body.reserve(96 + error.message.size());
  body += "{\"error\":{\"message\":";
  AppendJsonString(&body, error.message);
  body += ",\"type\":";
  AppendJsonString(&body, ErrorTypeFor(error.code));
  body += ",\"code\":";
  AppendJsonString(&body, ReasonOf(error));
  body += ",\"param\":";
  if (error.param.empty()) {
    body += "null";
  } else {
    AppendJsonString(&body, error.param);
  }
  body += "}}";
  return body;
}

Response ErrorResponse(const Error& error) {
  return JsonResponse(HttpStatusFor(error.code), ErrorBody(error));
}

Response JsonResponse(int status, std::string body) {
  Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = std::move(body);
  return response;
}

}  // namespace keygate::http
