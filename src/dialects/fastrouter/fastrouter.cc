#include "dialects/fastrouter/fastrouter.h"

#include <utility>

#include "common/json_writer.h"
#include "common/time_format.h"
#include "dialects/common/json_input.h"
#include "http/error_response.h"
#include "http/router.h"

namespace keygate::dialects::fastrouter {
namespace {

namespace json = boost::json;
using keys::KeyFields;

// Model field names → FastRouter's wire names, for error messages.
const std::vector<std::pair<std::string_view, std::string_view>> kWireNames = {
    {"name", "api_key_name"}, {"metadata", "metadata"}, {"expire_key", "expire_key"}};

http::Response RenderError(const Error& error) {
  return http::ErrorResponse(RenameParam(error, kWireNames));
}

void WriteTimestampOrNull(JsonWriter& w, const std::optional<UnixMillis>& ms) {
  if (ms) {
    w.String(FormatTimestamp(*ms));
  } else {
    w.Null();
  }
}

// The record of dialects.md (FastRouter).
void WriteRecord(JsonWriter& w, const KeyView& view) {
  const keys::ServiceKey& k = view.key;
  const keys::Guardrails& g = k.guardrails;
  w.Key("api_key_id_hash").String(k.hash);
  w.Key("api_key_name").String(k.name);
  w.Key("masked_key").String(k.masked);
  w.Key("org_id").String(k.org_id);
  w.Key("project_id").StringOrNull(k.project_id);
  w.Key("project_name").StringOrNull(k.project_name);
  w.Key("source").String(keys::ToString(k.source));
  w.Key("status").String(keys::ToString(view.status));
  w.Key("disabled").Bool(k.disabled);
  w.Key("models");
  if (g.models) w.StringArray(*g.models); else w.Null();
  w.Key("credit_limit").UsdOrNull(g.credit_limit);
  w.Key("reset_budget_interval").StringOrNull(keys::ToString(g.reset_interval));
  w.Key("expire_key");
  WriteTimestampOrNull(w, g.expires_at);
  w.Key("revoke_at");  // keygate's: a rotated key's end (audit M)
  WriteTimestampOrNull(w, k.revoke_at);
  w.Key("tpm_limit").IntOrNull(g.tpm_limit);
  w.Key("rpm_limit").IntOrNull(g.rpm_limit);
  w.Key("metadata").RawOrNull(k.metadata_json);
  w.Key("tags").StringArray(k.tags);
  w.Key("usage").BeginObject();
  w.Key("total").Usd(view.usage.total);
  w.Key("current_period").Usd(view.usage.current_period);
  w.Key("daily").Usd(view.usage.daily);
  w.Key("weekly").Usd(view.usage.weekly);
  w.Key("monthly").Usd(view.usage.monthly);
  w.EndObject();
  w.Key("budget_resets_at");
  WriteTimestampOrNull(w, view.budget_resets_at);
  w.Key("created_at").String(FormatTimestamp(k.created_at));
  w.Key("updated_at");
  WriteTimestampOrNull(w, k.updated_at);
  w.Key("last_used_at");
  WriteTimestampOrNull(w, k.last_used_at);
}

// Reads the guardrail fields shared by create and update from `body`, parsed from `text`.
Result<KeyFields> ReadKeyFields(const json::object& body, std::string_view text) {
  FieldReader r(body, text);
  KeyFields f;
  keys::Patch<std::string> name;
  KG_ASSIGN_OR_RETURN(name, r.String("api_key_name"));
  if (name.has_value()) {
    if (!name->has_value()) {
      return Error::InvalidArgument("api_key_name must not be null", "api_key_name");
    }
    f.name = **name;
  }
  KG_ASSIGN_OR_RETURN(f.project_id, r.String("project_id"));
  KG_ASSIGN_OR_RETURN(f.project_name, r.String("project_name"));
  KG_ASSIGN_OR_RETURN(f.credit_limit, r.Money("credit_limit"));
  KG_ASSIGN_OR_RETURN(f.reset_interval, r.Interval("reset_budget_interval"));
  KG_ASSIGN_OR_RETURN(f.expires_at, r.Timestamp("expire_key"));
  KG_ASSIGN_OR_RETURN(f.models, r.StringList("models"));
  KG_ASSIGN_OR_RETURN(f.tpm_limit, r.Integer("tpm_limit"));
  KG_ASSIGN_OR_RETURN(f.rpm_limit, r.Integer("rpm_limit"));
  // `metadata` wins over the older spelling `meta_data` when both are sent.
  KG_ASSIGN_OR_RETURN(f.metadata_json, r.ObjectJson("meta_data"));
  if (r.Has("metadata")) KG_ASSIGN_OR_RETURN(f.metadata_json, r.ObjectJson("metadata"));
  KG_ASSIGN_OR_RETURN(f.tags, r.StringList("tags"));
  KG_ASSIGN_OR_RETURN(f.disabled, r.Bool("disabled"));
  return f;
}

Result<std::optional<std::string>> ReadOrgClaim(const json::object& body) {
  keys::Patch<std::string> org;
  KG_ASSIGN_OR_RETURN(org, FieldReader(body).String("org_id"));
  if (!org.has_value()) return std::optional<std::string>{};
  return *org;
}

Result<std::string> ReadHash(const json::object& body) {
  keys::Patch<std::string> hash;
  KG_ASSIGN_OR_RETURN(hash, FieldReader(body).String("api_key_id_hash"));
  if (!hash.has_value() || !hash->has_value() || (*hash)->empty()) {
    return Error::InvalidArgument("api_key_id_hash is required", "api_key_id_hash");
  }
  return **hash;
}

Result<http::Response> RecordResponse(ManagementContext& ctx, int status, keys::ServiceKey key,
                                      const std::string* secret,
                                      const keys::RotatedServiceKey* rotated) {
  // A secret without a rotation: the key was created by this request (no usage yet).
  Result<KeyView> view = secret != nullptr && rotated == nullptr
                             ? Result<KeyView>(ctx.viewer.ViewNew(std::move(key)))
                             : ctx.viewer.View(std::move(key));
  if (!view.ok()) return view.error();
  JsonWriter w;
  w.BeginObject();
  WriteRecord(w, *view);
  if (secret != nullptr) w.Key("api_key").String(*secret);
  if (rotated != nullptr) {
    w.Key("replaces").BeginObject();
    w.Key("api_key_id_hash").String(rotated->old_hash);
    w.Key("revoke_at").String(FormatTimestamp(rotated->revoke_at));
    w.EndObject();
  }
  w.EndObject();
  return Json(status, w.Take());
}

Result<http::Response> Create(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, false));
  std::optional<std::string> org;
  KG_ASSIGN_OR_RETURN(org, ReadOrgClaim(body));
  KG_RETURN_IF_ERROR(keys::KeyService::CheckOrgClaim(caller, org));
  KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, ReadKeyFields(body, request.body));
  if (!fields.name.has_value()) {
    return Error::InvalidArgument("api_key_name is required", "api_key_name");
  }
  auto issued = ctx.keys.CreateServiceKey(caller, fields, keys::KeySource::kRouter,
                                          request.request_id);
  if (!issued.ok()) return issued.error();
  return RecordResponse(ctx, 201, std::move(issued->key), &issued->secret, nullptr);
}

// List filters come from the query string, the body, or both (the body wins).
Result<json::object> ListParameters(const http::Request& request) {
  json::object params;
  std::vector<std::pair<std::string, std::string>> query;
  KG_ASSIGN_OR_RETURN(query, ParseQuery(request.query));
  json::array tags;
  for (auto& [name, value] : query) {
    if (name == "tags" || name == "tags[]" || name == "tag") {
      // tags=a,b or tags=a&tags=b
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        std::string tag = value.substr(start, comma == std::string::npos ? comma : comma - start);
        if (!tag.empty()) tags.emplace_back(tag);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      params[name] = value;
    }
  }
  if (!tags.empty()) params["tags"] = std::move(tags);
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, true));
  for (auto& [name, value] : body) params[name] = value;
  return params;
}

// limit/offset may arrive as JSON numbers (body) or strings (query).
Result<std::optional<int64_t>> ReadCount(const json::object& params, std::string_view name) {
  auto it = params.find(name);
  if (it == params.end() || it->value().is_null()) return std::optional<int64_t>{};
  if (it->value().is_string()) {
    int64_t v;
    KG_ASSIGN_OR_RETURN(v, ParseIntegerParam(std::string_view(it->value().as_string()), name));
    return std::optional<int64_t>{v};
  }
  keys::Patch<int64_t> v;
  KG_ASSIGN_OR_RETURN(v, FieldReader(params).Integer(name));
  return *v;
}

Result<keys::ServiceKeyListOptions> ReadListOptions(const json::object& params) {
  FieldReader r(params);
  keys::ServiceKeyListOptions options;
  keys::Patch<std::string> text;
  KG_ASSIGN_OR_RETURN(text, r.String("project_id"));
  if (text && *text) options.project_id = **text;
  KG_ASSIGN_OR_RETURN(text, r.String("project_name"));
  if (text && *text) options.project_name = **text;
  KG_ASSIGN_OR_RETURN(text, r.String("search"));
  if (text && *text) options.search = **text;
  KG_ASSIGN_OR_RETURN(text, r.String("status"));
  if (text && *text) KG_ASSIGN_OR_RETURN(options.status, ParseStatusParam(**text, "status"));
  keys::Patch<std::vector<std::string>> tags;
  KG_ASSIGN_OR_RETURN(tags, r.StringList("tags"));
  if (tags && *tags) options.tags = **tags;
  std::optional<int64_t> count;
  KG_ASSIGN_OR_RETURN(count, ReadCount(params, "limit"));
  if (count) options.limit = *count;
  KG_ASSIGN_OR_RETURN(count, ReadCount(params, "offset"));
  if (count) options.offset = *count;
  return options;
}

Result<http::Response> List(ManagementContext& ctx, const keys::Caller& caller,
                            const http::Request& request) {
  json::object params;
  KG_ASSIGN_OR_RETURN(params, ListParameters(request));
  std::optional<std::string> org;
  KG_ASSIGN_OR_RETURN(org, ReadOrgClaim(params));
  KG_RETURN_IF_ERROR(keys::KeyService::CheckOrgClaim(caller, org));
  keys::ServiceKeyListOptions options;
  KG_ASSIGN_OR_RETURN(options, ReadListOptions(params));
  auto page = ctx.keys.ListServiceKeys(caller, options);
  if (!page.ok()) return page.error();
  auto views = ctx.viewer.Views(std::move(page->keys));
  if (!views.ok()) return views.error();
  JsonWriter w;
  w.BeginObject().Key("data").BeginArray();
  for (const KeyView& view : *views) {
    w.BeginObject();
    WriteRecord(w, view);
    w.EndObject();
  }
  w.EndArray();
  w.Key("total").Int(page->total);
  w.Key("limit").Int(options.limit);
  w.Key("offset").Int(options.offset);
  w.Key("has_more").Bool(page->has_more);
  w.EndObject();
  return Json(200, w.Take());
}

Result<http::Response> Update(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, false));
  std::optional<std::string> org;
  KG_ASSIGN_OR_RETURN(org, ReadOrgClaim(body));
  KG_RETURN_IF_ERROR(keys::KeyService::CheckOrgClaim(caller, org));
  std::string hash;
  KG_ASSIGN_OR_RETURN(hash, ReadHash(body));
  KeyFields fields;
  KG_ASSIGN_OR_RETURN(fields, ReadKeyFields(body, request.body));
  auto key = ctx.keys.UpdateServiceKey(caller, hash, fields, request.request_id);
  if (!key.ok()) return key.error();
  return RecordResponse(ctx, 200, std::move(*key), nullptr, nullptr);
}

Result<http::Response> Delete(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, false));
  std::optional<std::string> org;
  KG_ASSIGN_OR_RETURN(org, ReadOrgClaim(body));
  KG_RETURN_IF_ERROR(keys::KeyService::CheckOrgClaim(caller, org));
  std::string hash;
  KG_ASSIGN_OR_RETURN(hash, ReadHash(body));
  KG_RETURN_IF_ERROR(ctx.keys.DeleteServiceKey(caller, hash, request.request_id));
  JsonWriter w;
  w.BeginObject().Key("deleted").Bool(true).Key("api_key_id_hash").String(hash).EndObject();
  return Json(200, w.Take());
}

Result<http::Response> Rotate(ManagementContext& ctx, const keys::Caller& caller,
                              const http::Request& request) {
  json::object body;
  KG_ASSIGN_OR_RETURN(body, ParseObjectBody(request.body, false));
  std::optional<std::string> org;
  KG_ASSIGN_OR_RETURN(org, ReadOrgClaim(body));
  KG_RETURN_IF_ERROR(keys::KeyService::CheckOrgClaim(caller, org));
  std::string hash;
  KG_ASSIGN_OR_RETURN(hash, ReadHash(body));
  keys::Patch<int64_t> grace;
  KG_ASSIGN_OR_RETURN(grace, FieldReader(body).Integer("grace_period_seconds"));
  int64_t grace_seconds = grace && *grace ? **grace : 0;
  auto rotated = ctx.keys.RotateServiceKey(caller, hash, grace_seconds, request.request_id);
  if (!rotated.ok()) return rotated.error();
  keys::ServiceKey fresh = rotated->key;
  return RecordResponse(ctx, 201, std::move(fresh), &rotated->secret, &*rotated);
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
  router.Add("POST", "/prod/createServiceKey", Route(context, &Create));
  router.Add("GET", "/prod/getServiceKeys", Route(context, &List));
  router.Add("POST", "/prod/getServiceKeys", Route(context, &List));
  router.Add("POST", "/prod/updateServiceKey", Route(context, &Update));
  router.Add("POST", "/prod/deleteServiceKey", Route(context, &Delete));
  router.Add("POST", "/prod/rotateServiceKey", Route(context, &Rotate));
}

}  // namespace keygate::dialects::fastrouter
