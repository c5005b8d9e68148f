#include "owner/owner_api.h"

#include <utility>

#include "common/json_writer.h"
#include "common/time_format.h"
#include "dialects/common/json_input.h"
#include "dialects/openrouter/key_data.h"
#include "http/router.h"
#include "limits/period.h"

namespace keygate::owner {
namespace {

namespace json = boost::json;
using dialects::FieldReader;

constexpr int64_t kDefaultUsageDays = 30;  // the console's chart
constexpr int64_t kMaxUsageDays = 366;
constexpr int64_t kDefaultRecentRequests = 50;
constexpr int64_t kMaxRecentRequests = 1000;
constexpr size_t kDateLength = 10;  // "2026-12-06" of an ISO 8601 timestamp
using dialects::Json;
using dialects::ManagementContext;

void WriteProvisioningKey(JsonWriter& w, const keys::ProvisioningKey& key) {
  w.BeginObject();
  w.Key("id").String(key.hash);
  w.Key("name").String(key.name);
  w.Key("masked_key").String(key.masked);
  w.Key("disabled").Bool(key.disabled);
  w.Key("created_at").String(FormatTimestamp(key.created_at));
  w.Key("last_used_at");
  if (key.last_used_at) w.String(FormatTimestamp(*key.last_used_at)); else w.Null();
  w.EndObject();
}

Result<http::Response> ListProvisioningKeys(ManagementContext& ctx, const keys::Caller& caller,
                                            const http::Request&) {
  auto list = ctx.keys.ListProvisioningKeys(caller);
  if (!list.ok()) return list.error();
  JsonWriter w;
  w.BeginObject().Key("data").BeginArray();
  for (const keys::ProvisioningKey& key : *list) WriteProvisioningKey(w, key);
  w.EndArray().EndObject();
  return Json(200, w.Take());
}

Result<std::string> RequiredName(const json::object& body) {
  keys::Patch<std::string> name;
  KG_ASSIGN_OR_RETURN(name, FieldReader(body).String("name"));
  if (!name || !*name || (*name)->empty()) {
    return Error::InvalidArgument("name is required", "name");
  }
  return **name;
}

Result<http::Response> CreateProvisioningKey(ManagementContext& ctx, const keys::Caller& caller,
                                             const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, dialects::ParseObjectBody(request.body, false));
  std::string name;
  KG_ASSIGN_OR_RETURN(name, RequiredName(body));
  auto issued = ctx.keys.CreateProvisioningKey(caller, name, request.request_id);
  if (!issued.ok()) return issued.error();
  JsonWriter w;
  w.BeginObject().Key("data");
  WriteProvisioningKey(w, issued->key);
  w.Key("key").String(issued->secret).EndObject();
  return Json(201, w.Take());
}

Result<http::Response> UpdateProvisioningKey(ManagementContext& ctx, const keys::Caller& caller,
                                             const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, dialects::ParseObjectBody(request.body, true));
  FieldReader r(body);
  std::optional<bool> flag;
  KG_ASSIGN_OR_RETURN(flag, r.Bool("disabled"));
  std::optional<std::string> name;
  if (r.Has("name")) KG_ASSIGN_OR_RETURN(name, RequiredName(body));
  auto key = ctx.keys.UpdateProvisioningKey(caller, std::string(request.PathParam("id")), name,
                                            flag, request.request_id);
  if (!key.ok()) return key.error();
  JsonWriter w;
  w.BeginObject().Key("data");
  WriteProvisioningKey(w, *key);
  w.EndObject();
  return Json(200, w.Take());
}

Result<http::Response> DeleteProvisioningKey(ManagementContext& ctx, const keys::Caller& caller,
                                             const http::Request& request) {
  KG_RETURN_IF_ERROR(ctx.keys.DeleteProvisioningKey(caller, std::string(request.PathParam("id")),
                                                    request.request_id));
  return Json(200, R"({"deleted":true})");
}

Result<http::Response> KeyResponse(ManagementContext& ctx, int status, keys::ServiceKey key,
                                   const std::string* secret,
                                   const keys::RotatedServiceKey* rotated) {
  auto view = ctx.viewer.View(std::move(key));
  if (!view.ok()) return view.error();
  JsonWriter w;
  w.BeginObject().Key("data").BeginObject();
  dialects::openrouter::WriteKeyData(w, *view);
  w.EndObject();
  if (secret != nullptr) w.Key("key").String(*secret);
  if (rotated != nullptr) {
    w.Key("replaces").BeginObject();
    w.Key("hash").String(rotated->old_hash);
    w.Key("revoke_at").String(FormatTimestamp(rotated->revoke_at));
    w.EndObject();
  }
  w.EndObject();
  return Json(status, w.Take());
}

Result<keys::ServiceKeyListOptions> ReadListOptions(const http::Request& request) {
  std::vector<std::pair<std::string, std::string>> query;
  KG_ASSIGN_OR_RETURN(query, dialects::ParseQuery(request.query));
  keys::ServiceKeyListOptions o;
  o.newest_first = true;
  for (auto& [name, value] : query) {
    if (name == "offset") KG_ASSIGN_OR_RETURN(o.offset, dialects::ParseIntegerParam(value, name));
    else if (name == "limit") KG_ASSIGN_OR_RETURN(o.limit, dialects::ParseIntegerParam(value, name));
    else if (name == "include_disabled") KG_ASSIGN_OR_RETURN(o.include_disabled, dialects::ParseBoolParam(value, name));
    else if (name == "status" && !value.empty()) KG_ASSIGN_OR_RETURN(o.status, dialects::ParseStatusParam(value, name));
    else if (name == "search") o.search = value;
    else if (name == "project_id") o.project_id = value;
    else if (name == "project_name") o.project_name = value;
    else if ((name == "tag" || name == "tags") && !value.empty()) o.tags.push_back(value);
    else if (name == "source" && !value.empty()) {
      if (value == "router") o.source = keys::KeySource::kRouter;
      else if (value == "workspace") o.source = keys::KeySource::kWorkspace;
      else return Error::InvalidArgument("source must be router or workspace", "source");
    }
  }
  return o;
}

Result<http::Response> ListKeys(ManagementContext& ctx, const keys::Caller& caller,
                                const http::Request& request) {
  keys::ServiceKeyListOptions options;
  KG_ASSIGN_OR_RETURN(options, ReadListOptions(request));
  auto page = ctx.keys.ListServiceKeys(caller, options);
  if (!page.ok()) return page.error();
  auto views = ctx.viewer.Views(std::move(page->keys));
  if (!views.ok()) return views.error();
  JsonWriter w;
  w.BeginObject().Key("data").BeginArray();
  for (const dialects::KeyView& view : *views) {
    w.BeginObject();
    dialects::openrouter::WriteKeyData(w, view);
    w.EndObject();
  }
  w.EndArray().Key("total").Int(page->total).Key("has_more").Bool(page->has_more).EndObject();
  return Json(200, w.Take());
}

Result<http::Response> CreateKey(ManagementContext& ctx, const keys::Caller& caller,
                                 const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, dialects::ParseObjectBody(request.body, false));
  keys::KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, dialects::openrouter::ReadKeyFields(body, request.body));
  // Owners make workspace keys in the console (spec §1 `source`).
  auto issued = ctx.keys.CreateServiceKey(caller, fields, keys::KeySource::kWorkspace,
                                          request.request_id);
  if (!issued.ok()) return issued.error();
  return KeyResponse(ctx, 201, std::move(issued->key), &issued->secret, nullptr);
}

Result<http::Response> GetKey(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  auto key = ctx.keys.GetServiceKey(caller, std::string(request.PathParam("hash")));
  if (!key.ok()) return key.error();
  return KeyResponse(ctx, 200, std::move(*key), nullptr, nullptr);
}

Result<http::Response> UpdateKey(ManagementContext& ctx, const keys::Caller& caller,
                                 const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, dialects::ParseObjectBody(request.body, true));
  keys::KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, dialects::openrouter::ReadKeyFields(body, request.body));
  auto key = ctx.keys.UpdateServiceKey(caller, std::string(request.PathParam("hash")), fields,
                                       request.request_id);
  if (!key.ok()) return key.error();
  return KeyResponse(ctx, 200, std::move(*key), nullptr, nullptr);
}

Result<http::Response> DeleteKey(ManagementContext& ctx, const keys::Caller& caller,
                                 const http::Request& request) {
  KG_RETURN_IF_ERROR(ctx.keys.DeleteServiceKey(caller, std::string(request.PathParam("hash")),
                                               request.request_id));
  return Json(200, R"({"deleted":true})");
}

Result<http::Response> RotateKey(ManagementContext& ctx, const keys::Caller& caller,
                                 const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, dialects::ParseObjectBody(request.body, true));
  keys::Patch<int64_t> grace;
  KG_ASSIGN_OR_RETURN(grace, FieldReader(body).Integer("grace_period_seconds"));
  auto rotated = ctx.keys.RotateServiceKey(caller, std::string(request.PathParam("hash")),
                                           grace && *grace ? **grace : 0, request.request_id);
  if (!rotated.ok()) return rotated.error();
  keys::ServiceKey fresh = rotated->key;
  return KeyResponse(ctx, 201, std::move(fresh), &rotated->secret, &*rotated);
}

Result<http::Response> ListAudit(ManagementContext& ctx, const keys::Caller& caller,
                                 const http::Request& request) {
  std::vector<std::pair<std::string, std::string>> query;
  KG_ASSIGN_OR_RETURN(query, dialects::ParseQuery(request.query));
  store::AuditQuery q;
  for (auto& [name, value] : query) {
    if (name == "actor") q.actor = value;
    else if (name == "key" || name == "target") q.target = value;
    else if (name == "limit") KG_ASSIGN_OR_RETURN(q.limit, dialects::ParseIntegerParam(value, name));
    else if (name == "before") KG_ASSIGN_OR_RETURN(q.before_id, dialects::ParseIntegerParam(value, name));
  }
  // The store names the cursor before_id; the query parameter is `before`.
  if (q.before_id < 0) return Error::InvalidArgument("before must be >= 0", "before");
  auto page = ctx.keys.ListAudit(caller, q);
  if (!page.ok()) return page.error();
  JsonWriter w;
  w.BeginObject().Key("data").BeginArray();
  for (const keys::AuditEntry& e : page->entries) {
    w.BeginObject();
    w.Key("id").Int(e.id);
    w.Key("at").String(FormatTimestamp(e.at));
    w.Key("actor").String(e.actor);
    w.Key("actor_name").String(e.actor_name);
    w.Key("action").String(e.action);
    w.Key("target").String(e.target);
    w.Key("changes").RawOrNull(e.changes_json);
    w.Key("request_id").StringOrNull(e.request_id);
    w.EndObject();
  }
  w.EndArray().Key("has_more").Bool(page->has_more);
  w.Key("next_before");
  if (page->has_more && !page->entries.empty()) w.Int(page->entries.back().id); else w.Null();
  w.EndObject();
  return Json(200, w.Take());
}

// A query parameter `name` in [min, max], `fallback` when absent; InvalidArgument naming it.
Result<int64_t> BoundedParam(const http::Request& request, std::string_view name, int64_t min,
                             int64_t max, int64_t fallback) {
  std::vector<std::pair<std::string, std::string>> query;
  KG_ASSIGN_OR_RETURN(query, dialects::ParseQuery(request.query));
  int64_t value = fallback;
  for (const auto& [param, text] : query) {
    if (param == name) KG_ASSIGN_OR_RETURN(value, dialects::ParseIntegerParam(text, name));
  }
  if (value < min || value > max) {
    return Error::InvalidArgument(std::string(name) + " must be between " + std::to_string(min) +
                                      " and " + std::to_string(max),
                                  std::string(name));
  }
  return value;
}

// GET /api/owner/usage/{hash}?days=N: the console's chart of a key (spec console.md), spend
// and requests per UTC day, its predecessors' included (a rotation keeps the spend).
Result<http::Response> KeyDailyUsage(ManagementContext& ctx, const keys::Caller& caller,
                                     const http::Request& request) {
  int64_t days = 0;
  KG_ASSIGN_OR_RETURN(days, BoundedParam(request, "days", 1, kMaxUsageDays, kDefaultUsageDays));
  auto key = ctx.keys.GetServiceKey(caller, std::string(request.PathParam("hash")));
  if (!key.ok()) return key.error();
  auto daily = ctx.viewer.Daily(*key, days);
  if (!daily.ok()) return daily.error();
  JsonWriter w;
  w.BeginObject().Key("hash").String(key->hash).Key("data").BeginArray();
  for (const store::DailyUsage& day : *daily) {
    w.BeginObject();
    w.Key("date").String(FormatTimestamp(day.day * limits::kMsPerDay).substr(0, kDateLength));
    w.Key("usage").Usd(day.cost);
    w.Key("requests").Int(day.requests);
    w.Key("tokens").Int(day.tokens);
    w.EndObject();
  }
  w.EndArray().EndObject();
  return Json(200, w.Take());
}

// GET /api/owner/usage/{hash}/requests?limit=N: a key's latest calls, newest first (spec
// console.md "the latest requests").
Result<http::Response> KeyRecentRequests(ManagementContext& ctx, const keys::Caller& caller,
                                         const http::Request& request) {
  int64_t limit = 0;
  KG_ASSIGN_OR_RETURN(limit, BoundedParam(request, "limit", 1, kMaxRecentRequests,
                                          kDefaultRecentRequests));
  auto key = ctx.keys.GetServiceKey(caller, std::string(request.PathParam("hash")));
  if (!key.ok()) return key.error();
  auto recent = ctx.viewer.Recent(*key, limit);
  if (!recent.ok()) return recent.error();
  JsonWriter w;
  w.BeginObject().Key("hash").String(key->hash).Key("data").BeginArray();
  for (const store::UsageRecord& record : *recent) {
    w.BeginObject();
    w.Key("request_id").String(record.request_id);
    w.Key("key_hash").String(record.key_hash);
    w.Key("model").String(record.model);
    w.Key("provider").String(record.provider);
    w.Key("prompt_tokens").Int(record.prompt_tokens);
    w.Key("completion_tokens").Int(record.completion_tokens);
    w.Key("usage").Usd(record.cost);
    w.Key("status").Int(record.status);
    w.Key("latency_ms").Int(record.latency_ms);
    w.Key("ttfb_ms").Int(record.ttfb_ms);
    w.Key("created_at").String(FormatTimestamp(record.at));
    w.EndObject();
  }
  w.EndArray().EndObject();
  return Json(200, w.Take());
}

using RouteFn = Result<http::Response> (*)(ManagementContext&, const keys::Caller&,
                                           const http::Request&);

http::Handler Route(ManagementContext& ctx, RouteFn fn) {
  return dialects::ManagementRoute(
      ctx, &dialects::openrouter::RenderError, dialects::Audience::kOwnersOnly,
      [&ctx, fn](const keys::Caller& caller, const http::Request& request) {
        return fn(ctx, caller, request);
      });
}

}  // namespace

void Register(http::Router& router, ManagementContext& context) {
  // Errors the server answers before a route runs (404, 405, 413, ...) in the owner API's
  // shape, OpenRouter's.
  router.SetErrorRenderer("/api/owner/", &dialects::openrouter::RenderError);
  router.Add("GET", "/api/owner/provisioning-keys", Route(context, &ListProvisioningKeys));
  router.Add("POST", "/api/owner/provisioning-keys", Route(context, &CreateProvisioningKey));
  router.Add("PATCH", "/api/owner/provisioning-keys/{id}", Route(context, &UpdateProvisioningKey));
  router.Add("DELETE", "/api/owner/provisioning-keys/{id}", Route(context, &DeleteProvisioningKey));
  router.Add("GET", "/api/owner/keys", Route(context, &ListKeys));
  router.Add("POST", "/api/owner/keys", Route(context, &CreateKey));
  router.Add("GET", "/api/owner/keys/{hash}", Route(context, &GetKey));
  router.Add("PATCH", "/api/owner/keys/{hash}", Route(context, &UpdateKey));
  router.Add("DELETE", "/api/owner/keys/{hash}", Route(context, &DeleteKey));
  router.Add("POST", "/api/owner/keys/{hash}/rotate", Route(context, &RotateKey));
  router.Add("GET", "/api/owner/audit", Route(context, &ListAudit));
  router.Add("GET", "/api/owner/usage/{hash}", Route(context, &KeyDailyUsage));
  router.Add("GET", "/api/owner/usage/{hash}/requests", Route(context, &KeyRecentRequests));
}

}  // namespace keygate::owner
