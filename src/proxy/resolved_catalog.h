// The model catalog as the data plane uses it: the configured providers and models plus, for
// each provider, its resolved upstream (address, TLS, API key header). Built once per load or
// SIGHUP reload and then shared read-only; a reload swaps in a whole new one, so a call keeps
// the catalog it started with until it ends.
//
// Thread safety: immutable after ResolveCatalog(); safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"
#include "config/config.h"
#include "proxy/upstream_client.h"

namespace keygate::proxy {

struct ResolvedCatalog {
  config::Catalog catalog;
  // By lower-case provider name.
  std::unordered_map<std::string, std::shared_ptr<const UpstreamTarget>> targets;

  // The model `id` (provider part case-insensitive), or nullptr.
  const config::ModelConfig* FindModel(std::string_view id) const { return catalog.FindModel(id); }
  // The upstream of `model`'s provider, or nullptr if the provider is not declared.
  std::shared_ptr<const UpstreamTarget> TargetFor(const config::ModelConfig& model) const;
};

// Resolves every provider of `catalog` (see MakeUpstreamTarget), reading API keys through
// `getenv`. Returns InvalidArgument naming the provider if a base_url cannot be used.
Result<std::shared_ptr<const ResolvedCatalog>> ResolveCatalog(const config::Catalog& catalog,
                                                              const config::GetEnv& getenv);

}  // namespace keygate::proxy
