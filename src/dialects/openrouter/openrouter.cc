#include "dialects/openrouter/openrouter.h"

#include <optional>
#include <string>
#include <utility>

#include "common/json_writer.h"
#include "common/time_format.h"
#include "dialects/common/json_input.h"
#include "dialects/common/list_filters.h"
#include "dialects/openrouter/key_data.h"
#include "http/router.h"

namespace keygate::dialects::openrouter {
namespace {

namespace json = boost::json;

// spec dialects.md: the OpenRouter list answers 100 keys per page.
constexpr int64_t kPageSize = 100;
// CurrentKey's "no such limit" value (OpenRouter writes -1 for an unlimited rate limit).
constexpr int64_t kUnlimited = -1;
constexpr std::string_view kRateInterval = "60s";

// The list's query: the page, and whether `workspace_id` named another org (an empty list).
struct ListQuery {
  keys::ServiceKeyListOptions options;
  bool other_workspace = false;
};

Result<ListQuery> ReadListQuery(const keys::Caller& caller, const http::Request& request) {
  std::vector<std::pair<std::string, std::string>> params;
  KG_ASSIGN_OR_RETURN(params, ParseQuery(request.query));
  ListQuery q;
  q.options.limit = kPageSize;
  q.options.newest_first = true;  // spec: newest first
  q.options.include_disabled = false;
  bool include_disabled_given = false;
  for (const auto& [name, value] : params) {
    bool filter = false;
    KG_ASSIGN_OR_RETURN(filter, ApplyFleetFilter(name, value, &q.options));
    if (filter) continue;
    if (name == "offset") {
      KG_ASSIGN_OR_RETURN(q.options.offset, ParseIntegerParam(value, name));
    } else if (name == "include_disabled") {
      KG_ASSIGN_OR_RETURN(q.options.include_disabled, ParseBoolParam(value, name));
      include_disabled_given = true;
    } else if (name == "workspace_id") {
      q.other_workspace = !value.empty() && value != caller.org_id;
    }
  }
  // Asking for disabled (or expired) keys by status shows them unless the caller said otherwise.
  if (q.options.status.has_value() && !include_disabled_given) q.options.include_disabled = true;
  return q;
}

Result<http::Response> List(ManagementContext& ctx, const keys::Caller& caller,
                            const http::Request& request) {
  ListQuery q;
  KG_ASSIGN_OR_RETURN(q, ReadListQuery(caller, request));
  store::ServiceKeyPage page;
  if (!q.other_workspace) {
    KG_ASSIGN_OR_RETURN(page, ctx.keys.ListServiceKeys(caller, q.options));
  }
  std::vector<KeyView> views;
  KG_ASSIGN_OR_RETURN(views, ctx.viewer.Views(std::move(page.keys)));
  JsonWriter w;
  w.BeginObject().Key("data").BeginArray();
  for (const KeyView& view : views) {
    w.BeginObject();
    WriteKeyData(w, view);
    w.EndObject();
  }
  w.EndArray();
  // keygate's additions beside OpenRouter's shape (the SDK ignores them).
  w.Key("total").Int(page.total).Key("has_more").Bool(page.has_more);
  w.EndObject();
  return Json(200, w.Take());
}

Result<http::Response> KeyAnswer(ManagementContext& ctx, int status, keys::ServiceKey key,
                                 const std::string* secret,
                                 const keys::RotatedServiceKey* rotated) {
  KeyView view;
  if (secret != nullptr && rotated == nullptr) {
    view = ctx.viewer.ViewNew(std::move(key));  // created by this request: no usage yet
  } else {
    KG_ASSIGN_OR_RETURN(view, ctx.viewer.View(std::move(key)));
  }
  return Json(status, KeyDataDocument(view, secret, rotated));
}

// `workspace_id` in a create body must name the caller's own org (another org's is 404).
Status CheckWorkspaceClaim(const keys::Caller& caller, const json::object& body) {
  keys::Patch<std::string> workspace;
  KG_ASSIGN_OR_RETURN(workspace, FieldReader(body).String("workspace_id"));
  std::optional<std::string> claim;
  if (workspace.has_value() && workspace->has_value()) claim = **workspace;
  return keys::KeyService::CheckOrgClaim(caller, claim);
}

Result<http::Response> Create(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, /*allow_empty=*/false));
  keys::KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, ReadKeyFields(body, request.body));
  if (!fields.name.has_value()) return Error::InvalidArgument("name is required", "name");
  KG_RETURN_IF_ERROR(CheckWorkspaceClaim(caller, body));
  keys::IssuedServiceKey issued;
  KG_ASSIGN_OR_RETURN(issued, ctx.keys.CreateServiceKey(caller, fields, keys::KeySource::kRouter,
                                                        request.request_id));
  // spec: 201, not 200 (the SDK refuses any other status).
  return KeyAnswer(ctx, 201, std::move(issued.key), &issued.secret, nullptr);
}

std::string HashOf(const http::Request& request) { return std::string(request.PathParam("hash")); }

Result<http::Response> Get(ManagementContext& ctx, const keys::Caller& caller,
                           const http::Request& request) {
  keys::ServiceKey key;
  KG_ASSIGN_OR_RETURN(key, ctx.keys.GetServiceKey(caller, HashOf(request)));
  return KeyAnswer(ctx, 200, std::move(key), nullptr, nullptr);
}

Result<http::Response> Update(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  // spec: an empty body is valid and changes nothing.
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, /*allow_empty=*/true));
  keys::KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, ReadKeyFields(body, request.body));
  keys::ServiceKey key;
  KG_ASSIGN_OR_RETURN(
      key, ctx.keys.UpdateServiceKey(caller, HashOf(request), fields, request.request_id));
  return KeyAnswer(ctx, 200, std::move(key), nullptr, nullptr);
}

Result<http::Response> Delete(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  KG_RETURN_IF_ERROR(ctx.keys.DeleteServiceKey(caller, HashOf(request), request.request_id));
  // spec: 200 with a body, not 204 (the SDK refuses a 204).
  return Json(200, R"({"deleted":true})");
}

Result<http::Response> Rotate(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, /*allow_empty=*/true));
  keys::Patch<int64_t> grace;
  KG_ASSIGN_OR_RETURN(grace, FieldReader(body).Integer("grace_period_seconds"));
  const int64_t grace_seconds = grace.has_value() && grace->has_value() ? **grace : 0;
  keys::RotatedServiceKey rotated;
  KG_ASSIGN_OR_RETURN(rotated, ctx.keys.RotateServiceKey(caller, HashOf(request), grace_seconds,
                                                         request.request_id));
  keys::ServiceKey fresh = rotated.key;
  return KeyAnswer(ctx, 201, std::move(fresh), &rotated.secret, &rotated);
}

// CurrentKey's figures, from a service key's view or from a management credential.
struct CurrentKey {
  std::string name;
  std::string label;
  std::optional<MicroUsd> limit;
  std::optional<MicroUsd> limit_remaining;
  keys::ResetInterval limit_reset = keys::ResetInterval::kNever;
  bool include_byok_in_limit = false;
  keys::UsageTotals usage;
  bool is_management_key = false;
  std::string creator_user_id;
  std::string org_id;
  std::optional<UnixMillis> expires_at;
  std::optional<int64_t> rpm_limit;
  std::optional<int64_t> tpm_limit;
};

CurrentKey FromView(const KeyView& view) {
  const keys::ServiceKey& k = view.key;
  CurrentKey c;
  c.name = k.name;
  c.label = k.masked;
  c.limit = k.guardrails.credit_limit;
  c.limit_remaining = view.limit_remaining;
  c.limit_reset = k.guardrails.reset_interval;
  c.include_byok_in_limit = k.include_byok_in_limit;
  c.usage = view.usage;
  c.creator_user_id = k.creator_user_id;
  c.org_id = k.org_id;
  c.expires_at = k.guardrails.expires_at;
  c.rpm_limit = k.guardrails.rpm_limit;
  c.tpm_limit = k.guardrails.tpm_limit;
  return c;
}

// A provisioning key or an owner credential: no limits, no spend, management only.
CurrentKey FromManager(const keys::Caller& caller) {
  CurrentKey c;
  c.name = caller.name;
  c.label = caller.masked;
  c.is_management_key = true;
  c.org_id = caller.org_id;
  return c;
}

std::string CurrentKeyDocument(const CurrentKey& c) {
  JsonWriter w;
  w.BeginObject().Key("data").BeginObject();
  // keygate's addition (spec data-plane.md lists the name; OpenRouter's answer has none).
  w.Key("name").String(c.name);
  w.Key("label").String(c.label);
  w.Key("limit").UsdOrNull(c.limit);
  w.Key("limit_remaining").UsdOrNull(c.limit_remaining);
  w.Key("limit_reset").StringOrNull(keys::ToString(c.limit_reset));
  w.Key("include_byok_in_limit").Bool(c.include_byok_in_limit);
  w.Key("usage").Usd(c.usage.total);
  w.Key("usage_daily").Usd(c.usage.daily);
  w.Key("usage_weekly").Usd(c.usage.weekly);
  w.Key("usage_monthly").Usd(c.usage.monthly);
  for (const char* byok : {"byok_usage", "byok_usage_daily", "byok_usage_weekly",
                           "byok_usage_monthly"}) {
    w.Key(byok).Int(0);
  }
  w.Key("is_free_tier").Bool(false);
  w.Key("is_management_key").Bool(c.is_management_key);
  w.Key("is_provisioning_key").Bool(c.is_management_key);
  w.Key("creator_user_id").StringOrNull(c.creator_user_id);
  w.Key("organization_id").String(c.org_id);
  w.Key("workspace_id").String(c.org_id);
  w.Key("expires_at");
  if (c.expires_at) {
    w.String(FormatTimestamp(*c.expires_at));
  } else {
    w.Null();
  }
  w.Key("allowed_data_regions").BeginArray().String("global").EndArray();
  // keygate has no separate free-model quota: -1, like an unlimited rate limit.
  w.Key("free_model_daily_requests").BeginObject();
  w.Key("used").Int(0).Key("limit").Int(kUnlimited).Key("remaining").Int(kUnlimited);
  w.EndObject();
  w.Key("rate_limit").BeginObject();
  w.Key("requests").Int(c.rpm_limit.value_or(kUnlimited));
  w.Key("interval").String(kRateInterval);
  w.Key("note").String(c.rpm_limit ? "the key's rpm_limit: requests in any rolling 60 s window"
                                   : "no request rate limit (-1)");
  // keygate's addition: the key's tpm_limit (prompt plus completion tokens in any rolling 60 s
  // window), -1 when unlimited.
  w.Key("tokens").Int(c.tpm_limit.value_or(kUnlimited));
  w.EndObject();
  // keygate's additions: the current budget period's spend and the rolling-window figures.
  w.Key("usage_current_period").Usd(c.usage.current_period);
  w.Key("requests_current_minute").Int(c.usage.requests_current_minute);
  w.Key("tokens_current_minute").Int(c.usage.tokens_current_minute);
  w.EndObject().EndObject();
  return w.Take();
}

Result<http::Response> Current(ManagementContext& ctx, const keys::Caller& caller,
                               const http::Request&) {
  if (caller.kind != keys::CallerKind::kServiceKey) {
    return Json(200, CurrentKeyDocument(FromManager(caller)));
  }
  keys::ServiceKey key;
  KG_ASSIGN_OR_RETURN(key, ctx.keys.GetOwnServiceKey(caller));
  // spec §3: every successful answer carries the key's x-ratelimit-* (taking nothing here).
  std::string rate_limits = ctx.viewer.RateLimitLines(key);
  KeyView view;
  KG_ASSIGN_OR_RETURN(view, ctx.viewer.View(std::move(key)));
  http::Response response = Json(200, CurrentKeyDocument(FromView(view)));
  response.header_lines = std::move(rate_limits);
  return response;
}

using RouteFn = Result<http::Response> (*)(ManagementContext&, const keys::Caller&,
                                           const http::Request&);

http::Handler Route(ManagementContext& ctx, Audience audience, RouteFn fn) {
  return ManagementRoute(ctx, &RenderError, audience,
                         [&ctx, fn](const keys::Caller& caller, const http::Request& request) {
                           return fn(ctx, caller, request);
                         });
}

}  // namespace

void Register(http::Router& router, ManagementContext& context) {
  // Errors the server answers before a route runs (404, 405, 413, ...) in OpenRouter's shape.
  router.SetErrorRenderer("/api/v1/", &RenderError);
  // The router tolerates one trailing slash, so these also serve "/api/v1/keys/".
  router.Add("GET", "/api/v1/keys", Route(context, Audience::kManagers, &List));
  router.Add("POST", "/api/v1/keys", Route(context, Audience::kManagers, &Create));
  router.Add("GET", "/api/v1/keys/{hash}", Route(context, Audience::kManagers, &Get));
  router.Add("PATCH", "/api/v1/keys/{hash}", Route(context, Audience::kManagers, &Update));
  router.Add("DELETE", "/api/v1/keys/{hash}", Route(context, Audience::kManagers, &Delete));
  router.Add("POST", "/api/v1/keys/{hash}/rotate", Route(context, Audience::kManagers, &Rotate));
  router.Add("GET", "/api/v1/key", Route(context, Audience::kAnyKey, &Current));
}

}  // namespace keygate::dialects::openrouter
