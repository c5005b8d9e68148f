#include "dialects/routerkeys/routerkeys.h"

#include <optional>
#include <string>
#include <utility>

#include "common/json_writer.h"
#include "common/time_format.h"
#include "dialects/common/json_input.h"
#include "dialects/common/list_filters.h"
#include "http/router.h"
#include "keys/secrets.h"

namespace keygate::dialects::routerkeys {
namespace {

namespace json = boost::json;

// spec dialects.md: `limit` is 1 to 200, 25 by default.
constexpr int64_t kDefaultPageSize = 25;
constexpr int64_t kMaxPageSize = 200;

// Model field names → v2 wire names, for error messages.
const std::vector<std::pair<std::string_view, std::string_view>> kWireNames = {
    {"credit_limit", "budget.amount"},
    {"reset_budget_interval", "budget.period"},
    {"rpm_limit", "rate_limit.requests_per_minute"},
    {"tpm_limit", "rate_limit.tokens_per_minute"},
    {"expire_key", "expires_at"},
};

http::Response RenderError(const Error& raw) {
  const Error error = RenameParam(raw, kWireNames);
  const int status = HttpStatusFor(error.code);
  JsonWriter w;
  w.BeginObject();
  w.Key("code").String(std::to_string(status));
  w.Key("message").String(error.message);
  w.EndObject();
  return Json(status, w.Take());
}

// An error about `inner` of the object `parent` names "parent.inner".
Error Nested(Error error, std::string_view parent) {
  if (error.param.empty()) return error;
  const std::string inner = error.param;
  const std::string outer = std::string(parent) + "." + inner;
  return RenameParam(std::move(error), {{inner, outer}});
}

void TimestampOrNull(JsonWriter& w, const std::optional<UnixMillis>& ms) {
  if (ms) {
    w.String(FormatTimestamp(*ms));
  } else {
    w.Null();
  }
}

// "ACTIVE", "DISABLED", "EXPIRED": the short form of v2's API_KEY_STATUS_* values.
const char* StatusName(keys::KeyStatus status) {
  switch (status) {
    case keys::KeyStatus::kActive: return "ACTIVE";
    case keys::KeyStatus::kDisabled: return "DISABLED";
    case keys::KeyStatus::kExpired: return "EXPIRED";
  }
  return "ACTIVE";
}

// The readable prefix of a masked key: "sk-kg-" of "sk-kg-••••a91c".
std::string_view TokenPrefix(std::string_view masked) {
  return masked.substr(0, masked.find(keys::kMaskDots));
}

void WriteGuardrailObjects(JsonWriter& w, const keys::Guardrails& g) {
  w.Key("budget");
  if (g.credit_limit || g.reset_interval != keys::ResetInterval::kNever) {
    w.BeginObject();
    w.Key("amount").UsdOrNull(g.credit_limit);
    w.Key("period").StringOrNull(keys::ToString(g.reset_interval));
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("rate_limit");
  if (g.rpm_limit || g.tpm_limit) {
    w.BeginObject();
    w.Key("requests_per_minute").IntOrNull(g.rpm_limit);
    w.Key("tokens_per_minute").IntOrNull(g.tpm_limit);
    w.EndObject();
  } else {
    w.Null();
  }
}

// The record of dialects.md (v2). `token` is the raw secret in create and rotate answers.
void WriteRecord(JsonWriter& w, const KeyView& view, const std::string* token) {
  const keys::ServiceKey& k = view.key;
  const keys::Guardrails& g = k.guardrails;
  w.Key("id").String(k.hash);
  w.Key("name").String(k.name);
  w.Key("workspace_id").String(k.org_id);
  w.Key("token").String(token != nullptr ? *token : k.masked);
  w.Key("token_prefix").String(TokenPrefix(k.masked));
  w.Key("active").Bool(!k.disabled);
  w.Key("status").String(StatusName(view.status));
  w.Key("source").String(keys::ToString(k.source));
  WriteGuardrailObjects(w, g);
  w.Key("models");
  if (g.models) {
    w.StringArray(*g.models);
  } else {
    w.Null();
  }
  w.Key("tags").StringArray(k.tags);
  w.Key("metadata").RawOrNull(k.metadata_json);
  w.Key("expiration");
  TimestampOrNull(w, g.expires_at);
  w.Key("revoke_at");  // keygate's: a rotated key's end (audit M)
  TimestampOrNull(w, k.revoke_at);
  w.Key("consumption").Usd(view.usage.current_period);
  w.Key("token_consumption").Int(view.usage.tokens_current_minute);
  w.Key("requests_per_minute_consumption").Int(view.usage.requests_current_minute);
  w.Key("created").String(FormatTimestamp(k.created_at));
  w.Key("updated").String(FormatTimestamp(k.updated_at.value_or(k.created_at)));
  w.Key("last_used_at");
  TimestampOrNull(w, k.last_used_at);
}

// `budget`: absent leaves both fields, null clears both, an object sets what it names.
Status ReadBudget(const json::object& body, keys::KeyFields* f) {
  auto it = body.find("budget");
  if (it == body.end()) return OkStatus();
  if (it->value().is_null()) {
    f->credit_limit = std::optional<MicroUsd>{};
    f->reset_interval = std::optional<keys::ResetInterval>{};
    return OkStatus();
  }
  if (!it->value().is_object()) {
    return Error::InvalidArgument(
        R"(budget must be an object like {"amount": 10, "period": "monthly"} or null)", "budget");
  }
  FieldReader r(it->value().as_object());
  auto amount = r.Money("amount");
  if (!amount.ok()) return Nested(amount.error(), "budget");
  f->credit_limit = *amount;
  auto period = r.Interval("period");
  if (!period.ok()) return Nested(period.error(), "budget");
  f->reset_interval = *period;
  return OkStatus();
}

// `rate_limit`: absent leaves both limits, null clears both, an object sets what it names.
Status ReadRateLimit(const json::object& body, keys::KeyFields* f) {
  auto it = body.find("rate_limit");
  if (it == body.end()) return OkStatus();
  if (it->value().is_null()) {
    f->rpm_limit = std::optional<int64_t>{};
    f->tpm_limit = std::optional<int64_t>{};
    return OkStatus();
  }
  if (!it->value().is_object()) {
    return Error::InvalidArgument(
        R"(rate_limit must be an object like {"requests_per_minute": 60} or null)", "rate_limit");
  }
  FieldReader r(it->value().as_object());
  auto rpm = r.Integer("requests_per_minute");
  if (!rpm.ok()) return Nested(rpm.error(), "rate_limit");
  f->rpm_limit = *rpm;
  auto tpm = r.Integer("tokens_per_minute");
  if (!tpm.ok()) return Nested(tpm.error(), "rate_limit");
  f->tpm_limit = *tpm;
  return OkStatus();
}

// `status`: ACTIVE or DISABLED, any case, with or without the API_KEY_STATUS_ prefix.
Result<bool> ReadStatusSwitch(const std::string& text) {
  auto status = ParseStatusParam(text, "status");
  if (!status.ok() || *status == keys::KeyStatus::kExpired) {
    return Error::InvalidArgument(
        "status must be ACTIVE or DISABLED (optionally prefixed API_KEY_STATUS_)", "status");
  }
  return *status == keys::KeyStatus::kDisabled;
}

// `active` (bool) and `status` both switch the key; when both are sent they must agree.
Status ReadActive(const json::object& body, keys::KeyFields* f) {
  FieldReader r(body);
  std::optional<bool> active;
  KG_ASSIGN_OR_RETURN(active, r.Bool("active"));
  if (active.has_value()) f->disabled = !*active;
  keys::Patch<std::string> status;
  KG_ASSIGN_OR_RETURN(status, r.String("status"));
  if (!status.has_value()) return OkStatus();
  bool disabled = false;
  KG_ASSIGN_OR_RETURN(disabled, ReadStatusSwitch(status->value_or("")));
  if (f->disabled.has_value() && *f->disabled != disabled) {
    return Error::InvalidArgument("active and status disagree", "status");
  }
  f->disabled = disabled;
  return OkStatus();
}

// The fields of create and update (update also takes `active` / `status`).
// `body` is parsed from `text`.
Result<keys::KeyFields> ReadFields(const json::object& body, std::string_view text) {
  FieldReader r(body, text);
  keys::KeyFields f;
  keys::Patch<std::string> name;
  KG_ASSIGN_OR_RETURN(name, r.String("name"));
  if (name.has_value()) {
    if (!name->has_value()) return Error::InvalidArgument("name must not be null", "name");
    f.name = **name;
  }
  KG_ASSIGN_OR_RETURN(f.expires_at, r.Timestamp("expires_at"));
  KG_RETURN_IF_ERROR(ReadBudget(body, &f));
  KG_RETURN_IF_ERROR(ReadRateLimit(body, &f));
  KG_ASSIGN_OR_RETURN(f.models, r.StringList("models"));
  KG_ASSIGN_OR_RETURN(f.tags, r.StringList("tags"));
  KG_ASSIGN_OR_RETURN(f.metadata_json, r.ObjectJson("metadata"));
  KG_RETURN_IF_ERROR(ReadActive(body, &f));
  return f;
}

Result<http::Response> RecordAnswer(ManagementContext& ctx, int status, keys::ServiceKey key,
                                    const std::string* token,
                                    const keys::RotatedServiceKey* rotated) {
  KeyView view;
  if (token != nullptr && rotated == nullptr) {
    view = ctx.viewer.ViewNew(std::move(key));  // created by this request: no usage yet
  } else {
    KG_ASSIGN_OR_RETURN(view, ctx.viewer.View(std::move(key)));
  }
  JsonWriter w;
  w.BeginObject();
  WriteRecord(w, view, token);
  if (rotated != nullptr) {
    w.Key("replaces").BeginObject();
    w.Key("id").String(rotated->old_hash);
    w.Key("revoke_at").String(FormatTimestamp(rotated->revoke_at));
    w.EndObject();
  }
  w.EndObject();
  return Json(status, w.Take());
}

Result<keys::KeySource> ParseSource(std::string_view value) {
  if (value == "router") return keys::KeySource::kRouter;
  if (value == "workspace") return keys::KeySource::kWorkspace;
  return Error::InvalidArgument("source must be router or workspace", "source");
}

Result<keys::ServiceKeyListOptions> ReadListOptions(const http::Request& request) {
  std::vector<std::pair<std::string, std::string>> params;
  KG_ASSIGN_OR_RETURN(params, ParseQuery(request.query));
  keys::ServiceKeyListOptions o;
  o.source = keys::KeySource::kRouter;  // spec: router by default, for owners too
  o.limit = kDefaultPageSize;
  for (const auto& [name, value] : params) {
    bool filter = false;
    KG_ASSIGN_OR_RETURN(filter, ApplyFleetFilter(name, value, &o));
    if (filter) continue;
    if (name == "source" && !value.empty()) {
      KG_ASSIGN_OR_RETURN(o.source, ParseSource(value));
    } else if (name == "limit") {
      KG_ASSIGN_OR_RETURN(o.limit, ParseIntegerParam(value, name));
      if (o.limit < 1 || o.limit > kMaxPageSize) {
        return Error::InvalidArgument("limit must be between 1 and 200", "limit");
      }
    } else if (name == "starting_after") {
      o.starting_after = value;
    }
  }
  return o;
}

Result<http::Response> List(ManagementContext& ctx, const keys::Caller& caller,
                            const http::Request& request) {
  keys::ServiceKeyListOptions options;
  KG_ASSIGN_OR_RETURN(options, ReadListOptions(request));
  store::ServiceKeyPage page;
  KG_ASSIGN_OR_RETURN(page, ctx.keys.ListServiceKeys(caller, options));
  std::vector<KeyView> views;
  KG_ASSIGN_OR_RETURN(views, ctx.viewer.Views(std::move(page.keys)));
  JsonWriter w;
  w.BeginObject().Key("object").String("list").Key("data").BeginArray();
  for (const KeyView& view : views) {
    w.BeginObject();
    WriteRecord(w, view, nullptr);
    w.EndObject();
  }
  w.EndArray().Key("has_more").Bool(page.has_more).EndObject();
  return Json(200, w.Take());
}

Result<http::Response> Create(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, /*allow_empty=*/false));
  keys::KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, ReadFields(body, request.body));
  if (!fields.name.has_value()) return Error::InvalidArgument("name is required", "name");
  keys::IssuedServiceKey issued;
  KG_ASSIGN_OR_RETURN(issued, ctx.keys.CreateServiceKey(caller, fields, keys::KeySource::kRouter,
                                                        request.request_id));
  return RecordAnswer(ctx, 201, std::move(issued.key), &issued.secret, nullptr);
}

std::string IdOf(const http::Request& request) { return std::string(request.PathParam("id")); }

Result<http::Response> Get(ManagementContext& ctx, const keys::Caller& caller,
                           const http::Request& request) {
  keys::ServiceKey key;
  KG_ASSIGN_OR_RETURN(key, ctx.keys.GetServiceKey(caller, IdOf(request)));
  return RecordAnswer(ctx, 200, std::move(key), nullptr, nullptr);
}

Result<http::Response> Update(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, /*allow_empty=*/true));
  keys::KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, ReadFields(body, request.body));
  keys::ServiceKey key;
  KG_ASSIGN_OR_RETURN(
      key, ctx.keys.UpdateServiceKey(caller, IdOf(request), fields, request.request_id));
  return RecordAnswer(ctx, 200, std::move(key), nullptr, nullptr);
}

Result<http::Response> Delete(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  KG_RETURN_IF_ERROR(ctx.keys.DeleteServiceKey(caller, IdOf(request), request.request_id));
  http::Response response = Json(204, "");
  response.content_type.clear();
  return response;
}

Result<http::Response> Rotate(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, /*allow_empty=*/true));
  keys::Patch<int64_t> grace;
  KG_ASSIGN_OR_RETURN(grace, FieldReader(body).Integer("grace_period_seconds"));
  const int64_t grace_seconds = grace.has_value() && grace->has_value() ? **grace : 0;
  keys::RotatedServiceKey rotated;
  KG_ASSIGN_OR_RETURN(rotated, ctx.keys.RotateServiceKey(caller, IdOf(request), grace_seconds,
                                                         request.request_id));
  keys::ServiceKey fresh = rotated.key;
  return RecordAnswer(ctx, 201, std::move(fresh), &rotated.secret, &rotated);
}

using RouteFn = Result<http::Response> (*)(ManagementContext&, const keys::Caller&,
                                           const http::Request&);

http::Handler Route(ManagementContext& ctx, RouteFn fn) {
  return ManagementRoute(ctx, &RenderError, Audience::kManagers,
                         [&ctx, fn](const keys::Caller& caller, const http::Request& request) {
                           return fn(ctx, caller, request);
                         });
}

}  // namespace

void Register(http::Router& router, ManagementContext& context) {
  // Errors the server answers before a route runs (404, 405, 413, ...) in v2's shape.
  router.SetErrorRenderer("/v2/", &RenderError);
  router.Add("GET", "/v2/api-keys", Route(context, &List));
  router.Add("POST", "/v2/api-keys", Route(context, &Create));
  router.Add("GET", "/v2/api-keys/{id}", Route(context, &Get));
  router.Add("PATCH", "/v2/api-keys/{id}", Route(context, &Update));
  router.Add("DELETE", "/v2/api-keys/{id}", Route(context, &Delete));
  router.Add("POST", "/v2/api-keys/{id}/rotate", Route(context, &Rotate));
}

}  // namespace keygate::dialects::routerkeys
