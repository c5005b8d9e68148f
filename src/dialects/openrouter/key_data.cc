#include "dialects/openrouter/key_data.h"

#include "common/time_format.h"
#include "dialects/common/json_input.h"
#include "dialects/common/management.h"

namespace keygate::dialects::openrouter {
namespace {

const std::vector<std::pair<std::string_view, std::string_view>> kWireNames = {
    {"credit_limit", "limit"},
    {"reset_budget_interval", "limit_reset"},
    {"expire_key", "expires_at"},
};

void TimestampOrNull(JsonWriter& w, const std::optional<UnixMillis>& ms) {
  if (ms) {
    w.String(FormatTimestamp(*ms));
  } else {
    w.Null();
  }
}

}  // namespace

Result<keys::KeyFields> ReadKeyFields(const boost::json::object& body, std::string_view text) {
  FieldReader r(body, text);
  keys::KeyFields f;
  keys::Patch<std::string> name;
  KG_ASSIGN_OR_RETURN(name, r.String("name"));
  if (name.has_value()) {
    if (!name->has_value() || (*name)->empty()) {
      return Error::InvalidArgument("name must be a non-empty string", "name");
    }
    f.name = **name;
  }
  KG_ASSIGN_OR_RETURN(f.credit_limit, r.Money("limit"));
  KG_ASSIGN_OR_RETURN(f.reset_interval, r.Interval("limit_reset"));
  KG_ASSIGN_OR_RETURN(f.include_byok_in_limit, r.Bool("include_byok_in_limit"));
  KG_ASSIGN_OR_RETURN(f.disabled, r.Bool("disabled"));
  KG_ASSIGN_OR_RETURN(f.expires_at, r.Timestamp("expires_at", TimestampStrictness::kRfc3339Utc));
  KG_ASSIGN_OR_RETURN(f.creator_user_id, r.String("creator_user_id"));
  if (auto it = body.find("external"); it != body.end()) {
    if (it->value().is_null()) {
      f.external_user = std::optional<std::string>{};
    } else if (!it->value().is_object()) {
      return Error::InvalidArgument("external must be an object like {\"user\": \"...\"}",
                                    "external");
    } else {
      auto user = FieldReader(it->value().as_object()).String("user");
      if (!user.ok()) {
        return Error::InvalidArgument("external." + user.error().message, "external.user");
      }
      f.external_user = std::move(*user);
    }
  }
  KG_ASSIGN_OR_RETURN(f.models, r.StringList("models"));
  KG_ASSIGN_OR_RETURN(f.tpm_limit, r.Integer("tpm_limit"));
  KG_ASSIGN_OR_RETURN(f.rpm_limit, r.Integer("rpm_limit"));
  KG_ASSIGN_OR_RETURN(f.tags, r.StringList("tags"));
  KG_ASSIGN_OR_RETURN(f.metadata_json, r.ObjectJson("metadata"));
  KG_ASSIGN_OR_RETURN(f.project_id, r.String("project_id"));
  KG_ASSIGN_OR_RETURN(f.project_name, r.String("project_name"));
  return f;
}

void WriteKeyData(JsonWriter& w, const KeyView& view) {
  const keys::ServiceKey& k = view.key;
  const keys::Guardrails& g = k.guardrails;
  w.Key("hash").String(k.hash);
  w.Key("name").String(k.name);
  w.Key("label").String(k.masked);
  w.Key("disabled").Bool(k.disabled);
  w.Key("limit").UsdOrNull(g.credit_limit);
  w.Key("limit_remaining").UsdOrNull(view.limit_remaining);
  w.Key("limit_reset").StringOrNull(keys::ToString(g.reset_interval));
  w.Key("include_byok_in_limit").Bool(k.include_byok_in_limit);
  w.Key("usage").Usd(view.usage.total);
  w.Key("usage_daily").Usd(view.usage.daily);
  w.Key("usage_weekly").Usd(view.usage.weekly);
  w.Key("usage_monthly").Usd(view.usage.monthly);
  w.Key("byok_usage").Int(0);
  w.Key("byok_usage_daily").Int(0);
  w.Key("byok_usage_weekly").Int(0);
  w.Key("byok_usage_monthly").Int(0);
  w.Key("created_at").String(FormatTimestamp(k.created_at));
  w.Key("updated_at");
  TimestampOrNull(w, k.updated_at);
  w.Key("expires_at");
  TimestampOrNull(w, g.expires_at);
  w.Key("revoke_at");  // keygate's: a rotated key's end (audit M)
  TimestampOrNull(w, k.revoke_at);
  w.Key("creator_user_id").StringOrNull(k.creator_user_id);
  w.Key("external_user").StringOrNull(k.external_user);
  w.Key("workspace_id").String(k.org_id);
  // keygate's own fields.
  w.Key("source").String(keys::ToString(k.source));
  w.Key("status").String(keys::ToString(view.status));
  w.Key("masked_key").String(k.masked);
  w.Key("models");
  if (g.models) w.StringArray(*g.models); else w.Null();
  w.Key("tpm_limit").IntOrNull(g.tpm_limit);
  w.Key("rpm_limit").IntOrNull(g.rpm_limit);
  w.Key("tags").StringArray(k.tags);
  w.Key("metadata").RawOrNull(k.metadata_json);
  w.Key("project_id").StringOrNull(k.project_id);
  w.Key("project_name").StringOrNull(k.project_name);
  w.Key("usage_current_period").Usd(view.usage.current_period);
  w.Key("budget_resets_at");
  TimestampOrNull(w, view.budget_resets_at);
  w.Key("last_used_at");
  TimestampOrNull(w, k.last_used_at);
}

std::string KeyDataDocument(const KeyView& view, const std::string* secret,
                            const keys::RotatedServiceKey* rotated) {
  JsonWriter w;
  w.BeginObject().Key("data").BeginObject();
  WriteKeyData(w, view);
  w.EndObject();
  if (secret != nullptr) w.Key("key").String(*secret);
  if (rotated != nullptr) {
    w.Key("replaces").BeginObject();
    w.Key("hash").String(rotated->old_hash);
    w.Key("revoke_at").String(FormatTimestamp(rotated->revoke_at));
    w.EndObject();
  }
  w.EndObject();
  return w.Take();
}

http::Response RenderError(const Error& raw) {
  Error error = RenameParam(raw, kWireNames);
  const int status = HttpStatusFor(error.code);
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject();
  w.Key("code").Int(status);
  w.Key("message").String(error.message);
  w.Key("reason").String(ReasonOf(error));
  if (!error.param.empty()) w.Key("param").String(error.param);
  w.EndObject().EndObject();
  return Json(status, w.Take());
}

}  // namespace keygate::dialects::openrouter
