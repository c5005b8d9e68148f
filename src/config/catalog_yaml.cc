#include "config/catalog_yaml.h"

#include <algorithm>
#include <map>
#include <string>

namespace keygate::config::internal {
namespace {

constexpr int64_t kMinTimeoutMs = 1;
constexpr int64_t kMaxConnectTimeoutMs = 600'000;      // 10 minutes
constexpr int64_t kMaxResponseTimeoutMs = 86'400'000;  // a day: long streams are legitimate
constexpr int64_t kMaxIdleTimeoutMs = 3'600'000;       // an hour
constexpr int64_t kMaxContextTokens = 100'000'000;
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxModelNameBytes = 256;
constexpr int64_t kMaxPort = 65535;

constexpr std::string_view kProviderKeys =
    "name, base_url, api_key_env, headers, connect_timeout_ms, response_timeout_ms, "
    "idle_timeout_ms, max_tokens_field";
constexpr std::string_view kModelKeys =
    "id, upstream, input_usd_per_mtok, output_usd_per_mtok, context_tokens, max_output_tokens";

// Headers the proxy owns: framing, hop-by-hop (RFC 9110 §7.6.1) and the target host.
// Written by keygate on every upstream request (a configured copy would go beside it).
constexpr std::string_view kReservedHeaders[] = {
    "host",         "content-length",      "transfer-encoding", "connection",   "keep-alive",
    "te",           "trailer",             "upgrade",           "expect",       "content-type",
    "x-request-id", "proxy-authorization", "proxy-connection",  "accept-encoding",
};

char LowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), LowerChar);
  return out;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsProviderName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool IsEnvVarName(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsAlnum(c) || c == '_'; });
}

// RFC 9110 token.
bool IsHeaderName(std::string_view name) {
  constexpr std::string_view kTokenPunct = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
    return IsAlnum(c) || kTokenPunct.find(c) != std::string_view::npos;
  });
}

// Printable, no control characters (CR/LF would smuggle headers).
bool IsPrintable(std::string_view text, bool allow_space) {
  return std::all_of(text.begin(), text.end(), [&](char c) {
    auto u = static_cast<unsigned char>(c);
    if (u == ' ' || u == '\t') return allow_space;
    return u > 0x20 && u != 0x7f;
  });
}

bool IsReservedHeader(std::string_view lower_name) {
  // Proxy-* are hop-by-hop, between a client and its proxy: never a provider's.
  return lower_name.starts_with("proxy-") ||
         std::find(std::begin(kReservedHeaders), std::end(kReservedHeaders), lower_name) !=
             std::end(kReservedHeaders);
}

bool IsHostChar(char c) { return IsAlnum(c) || c == '.' || c == '-' || c == '_'; }

bool IsIpv6Char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

bool IsPort(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  int64_t port = std::stoll(std::string(text));
  return port >= 1 && port <= kMaxPort;
}

// host[:port] or [v6]:port, no user info.
bool IsAuthority(std::string_view authority) {
  std::string_view host = authority;
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return false;
    has_port = !after.empty();
    if (has_port) port = after.substr(1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), IsIpv6Char)) return false;
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
      host = authority.substr(0, colon);
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), IsHostChar)) return false;
  }
  return !has_port || IsPort(port);
}

struct ProviderDraft {
  ProviderConfig provider;
  bool has_name = false;
  bool has_base_url = false;
  YAML::Node headers_node;  // kept for the Authorization/api_key_env check
};

Status ParseHeaders(const YamlReader& reader, const YAML::Node& node, const std::string& path,
                    ProviderConfig* provider) {
  std::map<std::string, bool> seen_lower;
  return reader.ForEachEntry(
      node, path,
      [&](const std::string& name, const YAML::Node& key_node, const YAML::Node& value) -> Status {
        std::string field = JoinPath(path, name);
        if (!IsHeaderName(name))
          return reader.ErrorAt(key_node, field, "is not a valid header name");
        std::string lower = LowerAscii(name);
        if (IsReservedHeader(lower)) {
          return reader.ErrorAt(key_node, field,
                                "is set by keygate itself and cannot be configured");
        }
        if (!seen_lower.emplace(lower, true).second) {
          return reader.ErrorAt(key_node, field, "duplicate header (names are case-insensitive)");
        }
        Result<std::string> text = reader.Text(value, field);
        if (!text.ok()) return text.error();
        if (!IsPrintable(*text, /*allow_space=*/true)) {
          return reader.ErrorAt(value, field, "must not contain control characters");
        }
        provider->headers.emplace_back(name, std::move(*text));
        return OkStatus();
      });
}

Status ApplyProviderText(const YamlReader& reader, const std::string& key, const YAML::Node& value,
                         const std::string& field, ProviderDraft* draft) {
  Result<std::string> text = reader.Text(value, field);
  if (!text.ok()) return text.error();
  ProviderConfig& provider = draft->provider;
  if (key == "name") {
    if (!IsProviderName(*text)) {
      return reader.ErrorAt(value, field, "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
    }
    provider.name = std::move(*text);
    draft->has_name = true;
  } else if (key == "base_url") {
    if (!IsValidBaseUrl(*text)) {
      return reader.ErrorAt(value, field, "must be http(s)://host[:port][/path]");
    }
    while (text->back() == '/') text->pop_back();  // the proxy appends "/chat/completions"
    provider.base_url = std::move(*text);
    draft->has_base_url = true;
  } else if (key == "max_tokens_field") {
    if (*text != "max_tokens" && *text != "max_completion_tokens") {
      return reader.ErrorAt(value, field, "must be max_tokens or max_completion_tokens");
    }
    provider.max_tokens_field = std::move(*text);
  } else {  // api_key_env
    if (!text->empty() && !IsEnvVarName(*text)) {
      return reader.ErrorAt(value, field,
                            "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    provider.api_key_env = std::move(*text);
  }
  return OkStatus();
}

Status ApplyProviderField(const YamlReader& reader, const std::string& key,
                          const YAML::Node& key_node, const YAML::Node& value,
                          const std::string& path, ProviderDraft* draft) {
  std::string field = JoinPath(path, key);
  if (key == "name" || key == "base_url" || key == "api_key_env" || key == "max_tokens_field") {
    return ApplyProviderText(reader, key, value, field, draft);
  }
  if (key == "headers") {
    draft->headers_node = value;
    return ParseHeaders(reader, value, field, &draft->provider);
  }
  if (key == "connect_timeout_ms" || key == "response_timeout_ms") {
    bool connect = key == "connect_timeout_ms";
    Result<int64_t> ms = reader.Integer(value, field, kMinTimeoutMs,
                                        connect ? kMaxConnectTimeoutMs : kMaxResponseTimeoutMs);
    if (!ms.ok()) return ms.error();
    (connect ? draft->provider.connect_timeout_ms : draft->provider.response_timeout_ms) =
        static_cast<int>(*ms);
    return OkStatus();
  }
  if (key == "idle_timeout_ms") {
    Result<int64_t> ms = reader.Integer(value, field, kMinTimeoutMs, kMaxIdleTimeoutMs);
    if (!ms.ok()) return ms.error();
    draft->provider.idle_timeout_ms = static_cast<int>(*ms);
    return OkStatus();
  }
  return reader.ErrorAt(key_node, field,
                        "unknown key (expected " + std::string(kProviderKeys) + ")");
}

Result<ProviderConfig> ParseProvider(const YamlReader& reader, const YAML::Node& node,
                                     const std::string& path) {
  if (!node.IsMap()) return reader.ErrorAt(node, path, "must be a mapping with name and base_url");
  ProviderDraft draft;
  KG_RETURN_IF_ERROR(reader.ForEachEntry(
      node, path, [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
        return ApplyProviderField(reader, key, key_node, value, path, &draft);
      }));
  if (!draft.has_name) return reader.ErrorAt(node, path, "missing required key name");
  if (!draft.has_base_url) return reader.ErrorAt(node, path, "missing required key base_url");
  const ProviderConfig& provider = draft.provider;
  bool sets_authorization =
      std::any_of(provider.headers.begin(), provider.headers.end(),
                  [](const auto& h) { return LowerAscii(h.first) == "authorization"; });
  if (sets_authorization && !provider.api_key_env.empty()) {
    return reader.ErrorAt(draft.headers_node, JoinPath(path, "headers.Authorization"),
                          "conflicts with api_key_env, which already sets Authorization");
  }
  return std::move(draft.provider);
}

struct ModelDraft {
  ModelConfig model;
  YAML::Node id_node;
  YAML::Node max_output_node;
  bool has_input = false;
  bool has_output = false;
  bool has_context = false;
  bool has_max_output = false;
};

Status ApplyModelNumber(const YamlReader& reader, const std::string& key, const YAML::Node& value,
                        const std::string& field, ModelDraft* draft) {
  ModelConfig& model = draft->model;
  bool input = key == "input_usd_per_mtok";
  if (input || key == "output_usd_per_mtok") {
    Result<MicroUsd> price = reader.UsdPerMtok(value, field);
    if (!price.ok()) return price.error();
    (input ? model.input_micro_usd_per_mtok : model.output_micro_usd_per_mtok) = *price;
    (input ? draft->has_input : draft->has_output) = true;
    return OkStatus();
  }
  bool context = key == "context_tokens";
  Result<int64_t> tokens = reader.Integer(value, field, context ? 1 : 0, kMaxContextTokens);
  if (!tokens.ok()) return tokens.error();
  if (context) {
    model.context_tokens = *tokens;
    draft->has_context = true;
  } else {
    model.max_output_tokens = *tokens;
    draft->has_max_output = true;
    draft->max_output_node = value;
  }
  return OkStatus();
}

Status ApplyModelField(const YamlReader& reader, const std::string& key, const YAML::Node& key_node,
                       const YAML::Node& value, const std::string& path, ModelDraft* draft) {
  std::string field = JoinPath(path, key);
  if (key == "id" || key == "upstream") {
    Result<std::string> text = reader.Text(value, field);
    if (!text.ok()) return text.error();
    if (text->empty() || text->size() > kMaxModelNameBytes || !IsPrintable(*text, false)) {
      return reader.ErrorAt(value, field, "must be 1 to 256 printable characters without spaces");
    }
    if (key == "id") {
      draft->model.id = std::move(*text);
      draft->id_node = value;
    } else {
      draft->model.upstream = std::move(*text);
    }
    return OkStatus();
  }
  if (key == "input_usd_per_mtok" || key == "output_usd_per_mtok" || key == "context_tokens" ||
      key == "max_output_tokens") {
    return ApplyModelNumber(reader, key, value, field, draft);
  }
  return reader.ErrorAt(key_node, field, "unknown key (expected " + std::string(kModelKeys) + ")");
}

// spec data-plane.md: a model is named provider/model; the provider must be declared.
Status ResolveModelId(const YamlReader& reader, const std::string& path,
                      const std::vector<ProviderConfig>& providers, ModelDraft* draft) {
  ModelConfig& model = draft->model;
  std::string field = JoinPath(path, "id");
  size_t slash = model.id.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == model.id.size()) {
    return reader.ErrorAt(
        draft->id_node, field,
        "must be provider/model (e.g. openai/gpt-4o-mini), got '" + model.id + "'");
  }
  const auto segments =
      static_cast<size_t>(std::count(model.id.begin(), model.id.end(), '/')) + 1;
  if (model.id.find("//") != std::string::npos || model.id.back() == '/' ||
      segments > kMaxModelIdSegments) {
    // GET /v1/models/{id} sends the slashes as path separators: an empty segment, a trailing
    // '/' or one segment too many would make a model listed and callable but not retrievable.
    return reader.ErrorAt(draft->id_node, field,
                          "must be at most " + std::to_string(kMaxModelIdSegments) +
                              " non-empty segments separated by '/', got '" + model.id + "'");
  }
  if (model.id.find('*', slash + 1) != std::string::npos) {
    // Keys' models lists read '*' as every model of a provider: an id holding one could
    // only be allowed by that, or by no list at all.
    return reader.ErrorAt(draft->id_node, field,
                          "must not hold '*' in its model part (keys' models lists use "
                          "provider/* for every model of a provider), got '" + model.id + "'");
  }
  std::string provider_part = model.id.substr(0, slash);
  auto declared = std::find_if(providers.begin(), providers.end(), [&](const ProviderConfig& p) {
    return LowerAscii(p.name) == LowerAscii(provider_part);
  });
  if (declared == providers.end()) {
    return reader.ErrorAt(draft->id_node, field,
                          "provider '" + provider_part + "' is not declared under providers");
  }
  model.provider = declared->name;
  if (model.upstream.empty()) model.upstream = model.id.substr(slash + 1);
  return OkStatus();
}

Result<ModelConfig> ParseModel(const YamlReader& reader, const YAML::Node& node,
                               const std::string& path,
                               const std::vector<ProviderConfig>& providers) {
  if (!node.IsMap()) return reader.ErrorAt(node, path, "must be a mapping with id and prices");
  ModelDraft draft;
  KG_RETURN_IF_ERROR(reader.ForEachEntry(
      node, path, [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
        return ApplyModelField(reader, key, key_node, value, path, &draft);
      }));
  const std::pair<bool, std::string_view> required[] = {
      {draft.id_node.IsDefined(), "id"},           {draft.has_input, "input_usd_per_mtok"},
      {draft.has_output, "output_usd_per_mtok"},   {draft.has_context, "context_tokens"},
      {draft.has_max_output, "max_output_tokens"},
  };
  for (const auto& [present, key] : required) {
    if (!present) return reader.ErrorAt(node, path, "missing required key " + std::string(key));
  }
  KG_RETURN_IF_ERROR(ResolveModelId(reader, path, providers, &draft));
  if (draft.model.max_output_tokens > draft.model.context_tokens) {
    return reader.ErrorAt(
        draft.max_output_node, JoinPath(path, "max_output_tokens"),
        "must not exceed context_tokens (" + std::to_string(draft.model.context_tokens) + ")");
  }
  return std::move(draft.model);
}

// The identity used for duplicate detection and lookups: provider part case-folded.
std::string CanonicalModelId(std::string_view id) {
  size_t slash = id.find('/');
  return LowerAscii(id.substr(0, slash)) + std::string(id.substr(slash));
}

Status ParseProviders(const YamlReader& reader, const YAML::Node& node, Catalog* catalog) {
  if (!node.IsDefined() || node.IsNull()) return OkStatus();
  if (!node.IsSequence()) return reader.ErrorAt(node, "providers", "must be a list of providers");
  std::map<std::string, std::string> first_seen;  // lower-case name → "file:line"
  for (size_t i = 0; i < node.size(); ++i) {
    std::string path = IndexPath("providers", i);
    Result<ProviderConfig> provider = ParseProvider(reader, node[i], path);
    if (!provider.ok()) return provider.error();
    auto [it, inserted] = first_seen.emplace(LowerAscii(provider->name), reader.Where(node[i]));
    if (!inserted) {
      return reader.ErrorAt(
          node[i]["name"], JoinPath(path, "name"),
          "duplicate provider name '" + provider->name + "' (first at " + it->second + ")");
    }
    catalog->providers.push_back(std::move(*provider));
  }
  return OkStatus();
}

Status ParseModels(const YamlReader& reader, const YAML::Node& node, Catalog* catalog) {
  if (!node.IsDefined() || node.IsNull()) return OkStatus();
  if (!node.IsSequence()) return reader.ErrorAt(node, "models", "must be a list of models");
  std::map<std::string, std::string> first_seen;  // canonical id → "file:line"
  for (size_t i = 0; i < node.size(); ++i) {
    std::string path = IndexPath("models", i);
    Result<ModelConfig> model = ParseModel(reader, node[i], path, catalog->providers);
    if (!model.ok()) return model.error();
    auto [it, inserted] = first_seen.emplace(CanonicalModelId(model->id), reader.Where(node[i]));
    if (!inserted) {
      return reader.ErrorAt(node[i]["id"], JoinPath(path, "id"),
                            "duplicate model id '" + model->id + "' (first at " + it->second + ")");
    }
    catalog->models.push_back(std::move(*model));
  }
  return OkStatus();
}

}  // namespace

bool IsValidBaseUrl(std::string_view url) {
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
  } else {
    return false;
  }
  if (!IsPrintable(rest, /*allow_space=*/false)) return false;
  if (rest.find_first_of("?#@\\") != std::string_view::npos) return false;
  size_t slash = rest.find('/');
  return IsAuthority(rest.substr(0, slash));
}

Result<Catalog> ParseCatalog(const YamlReader& reader, const YAML::Node& providers,
                             const YAML::Node& models) {
  Catalog catalog;
  KG_RETURN_IF_ERROR(ParseProviders(reader, providers, &catalog));
  KG_RETURN_IF_ERROR(ParseModels(reader, models, &catalog));
  return catalog;
}

}  // namespace keygate::config::internal
