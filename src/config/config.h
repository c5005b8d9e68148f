// keygate's configuration: the scalar settings of settings.h plus the upstream providers and
// the model catalog, read once from one YAML file (spec data-plane.md, "Configuration") and
// the environment into an immutable Config.
//
// Reload: SIGHUP re-reads only the catalog (providers and models) with LoadCatalog; the
// scalar settings (listen address, store, limits...) need a restart. LoadCatalog validates
// the whole file exactly as LoadConfig does, with the start's environment and overrides, so a
// reload never accepts a file that a restart would refuse; the caller swaps in the new Catalog
// only when it loaded cleanly.
//
// Every error is InvalidArgument and its message names the file, the line and the key:
//   "config.yaml:12: models[1].input_usd_per_mtok: must be a number ≥ 0, got '-1'"
// Environment overrides name the variable instead: "KEYGATE_LISTEN: must be HOST:PORT ...".
//
// Thread safety: Load* functions are reentrant (they touch only their arguments and the
// file); a loaded Config or Catalog is a value, safe to share read-only between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "config/settings.h"

namespace keygate::config {

// An OpenAI-compatible upstream (spec data-plane.md, "Models and providers").
struct ProviderConfig {
  std::string name;         // [a-z0-9._-]+, unique (case-insensitively) in the file
  std::string base_url;     // http(s)://host[:port][/path], no trailing '/'
  std::string api_key_env;  // env var holding its API key; empty = send no Authorization
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, in file order
  int connect_timeout_ms = 5000;
  int response_timeout_ms = 600000;
  // How long a pooled connection to it may stay idle before keygate closes it: below the
  // upstream server's own keep-alive, so that keygate never reuses one the server is closing.
  int idle_timeout_ms = 60000;
  // The one body member that carries a chat call's output cap upstream (the caller's, or the
  // model's max_output_tokens that the reservation counted on). "max_tokens" (every
  // OpenAI-compatible API) or "max_completion_tokens" (OpenAI's reasoning models refuse
  // max_tokens).
  std::string max_tokens_field = "max_tokens";
};

// A model id's most '/'-separated segments (provider included): GET /v1/models/{id} takes the
// id's slashes as path separators, and routes that many.
inline constexpr size_t kMaxModelIdSegments = 8;

// One callable model. Prices are integer micro-dollars per million tokens.
struct ModelConfig {
  std::string id;        // "provider/model" as written in the file
  std::string provider;  // the declared ProviderConfig::name it belongs to
  std::string upstream;  // model name sent upstream; defaults to the part of `id` after '/'
  MicroUsd input_micro_usd_per_mtok = 0;
  MicroUsd output_micro_usd_per_mtok = 0;
  int64_t context_tokens = 0;     // ≥ 1
  int64_t max_output_tokens = 0;  // 0..context_tokens; 0 for embedding models
};

// The reloadable part of the configuration.
struct Catalog {
  std::vector<ProviderConfig> providers;  // in file order
  std::vector<ModelConfig> models;        // in file order

  // The provider named `name` (ASCII case-insensitive), or nullptr. The pointer is valid while
  // this Catalog lives unmodified.
  const ProviderConfig* FindProvider(std::string_view name) const;
  // The model `id`, matching the provider part case-insensitively and the rest exactly
  // (spec: "matched case-insensitively on the provider part"), or nullptr. Linear in the
  // number of models; a caller on the hot path may build its own index once per Catalog.
  const ModelConfig* FindModel(std::string_view id) const;
};

// Everything `keygate serve` needs, immutable after LoadConfig.
struct Config {
  Settings settings;
  Catalog catalog;
};

// The environment, injected so that tests need not touch the process's: returns the value of
// the named variable or nullptr when it is unset. In production pass
// `[](const char* name) -> const char* { return std::getenv(name); }`.
using GetEnv = std::function<const char*(const char*)>;

// A command-line override: setting name (as in settings.h) and its text.
using SettingOverride = std::pair<std::string, std::string>;

// Loads the configuration. `path_or_empty` names the YAML file; empty means no file (defaults
// plus environment). Precedence, lowest first: defaults, file, environment (each setting's
// KEYGATE_* variable, applied when set, even to ""), then `overrides` (command-line flags).
// Returns the Config, or InvalidArgument, its message naming file, line and key, for: an
// unreadable file or invalid YAML; an unknown or duplicate key; a wrong type (a list where a
// scalar belongs...); a bad value (also from the environment or an override, named as such);
// a missing required provider or model key; a duplicate provider name or model id; a model id
// not of the form provider/model or whose provider is not declared; a base_url that is not
// http(s)://host[:port][/path]; overlapping key prefixes.
Result<Config> LoadConfig(const std::string& path_or_empty, const GetEnv& getenv,
                          const std::vector<SettingOverride>& overrides = {});

// Re-reads `path` for a reload (SIGHUP) and returns only its providers and models. The whole
// file is validated as by LoadConfig with `getenv` and the `overrides` the server started with,
// cross-setting rules included, and fails with the same errors: a reload accepts no file that
// the next start, with the same command line and environment, would refuse (audit DD: a file
// whose key prefixes overlapped was reloaded, and the next start refused it). REQUIRES: `path`
// is not empty.
Result<Catalog> LoadCatalog(const std::string& path, const GetEnv& getenv,
                            const std::vector<SettingOverride>& overrides = {});

// For each of the environment variable `names` that starts with KEYGATE_ but is neither a
// setting's variable nor a provider's `api_key_env` in `config`, a note saying so, with the
// nearest setting's variable when one is a typo away ("KEYGATE_LOGLEVEL: not a setting's
// variable, ignored (did you mean KEYGATE_LOG_LEVEL?)"): a misspelt override is otherwise
// silently ignored. Names only: values may be secrets.
std::vector<std::string> UnknownKeygateVariables(const std::vector<std::string>& names,
                                                 const Config& config);

}  // namespace keygate::config
