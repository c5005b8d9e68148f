// Internal to src/config: turns the `providers:` and `models:` sections of the config file into
// a validated Catalog (spec data-plane.md, "Models and providers").
//
// Thread safety: pure function of its arguments.
#pragma once

#include <yaml-cpp/yaml.h>

#include "common/status.h"
#include "config/config.h"
#include "config/yaml_reader.h"

namespace keygate::config::internal {

// Parses `providers` (a sequence of mappings, or absent/null) and then `models` against them.
// Returns the Catalog, or InvalidArgument at the offending line for: a wrong type; an unknown,
// duplicate or missing required key; a bad name, base_url, env var name, header or timeout; a
// duplicate provider name or model id; a model id not "provider/model" or naming an undeclared
// provider; a bad price or token count.
Result<Catalog> ParseCatalog(const YamlReader& reader, const YAML::Node& providers,
                             const YAML::Node& models);

// True when `url` is http(s)://host[:port][/path] with no user info, query or fragment.
bool IsValidBaseUrl(std::string_view url);

}  // namespace keygate::config::internal
