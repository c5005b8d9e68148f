// The model catalog as the data plane uses it: the configured providers and models plus, for
// each provider, its resolved upstream (address, TLS, API key header), and an index from a
// model's id to both. Built once per load or SIGHUP reload and then shared read-only; a reload
// swaps in a whole new one, so a call keeps the catalog it started with until it ends.
//
// Thread safety: immutable after ResolveCatalog(); safe to share between threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"
#include "config/config.h"
#include "proxy/upstream_client.h"

namespace keygate::proxy {

// A model of the catalog with the upstream of its provider.
struct ResolvedModel {
  const config::ModelConfig* config = nullptr;
  std::shared_ptr<const UpstreamTarget> target;  // null if the provider is not declared
};

// Model ids compared as config::Catalog::FindModel compares them: the provider part (before
// the first '/') case-insensitively, the rest exactly. The hash agrees with the comparison.
struct ModelIdHash {
  using is_transparent = void;
  size_t operator()(std::string_view id) const;
};
struct ModelIdEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};

struct ResolvedCatalog {
  ResolvedCatalog() = default;
  // The index points into `catalog`: a copy would point into the original.
  ResolvedCatalog(const ResolvedCatalog&) = delete;
  ResolvedCatalog& operator=(const ResolvedCatalog&) = delete;

  config::Catalog catalog;
  // By lower-case provider name.
  std::unordered_map<std::string, std::shared_ptr<const UpstreamTarget>> targets;

  // The model `id` (provider part case-insensitive) with its provider's upstream, or nullptr:
  // one hash lookup, however large the catalog (config::Catalog::FindModel reads every model).
  const ResolvedModel* Find(std::string_view id) const;

 private:
  friend Result<std::shared_ptr<const ResolvedCatalog>> ResolveCatalog(
      const config::Catalog& catalog, const config::GetEnv& getenv);

  // By model id (views into catalog.models); the first of two ids that compare equal wins, as
  // in FindModel.
  std::unordered_map<std::string_view, ResolvedModel, ModelIdHash, ModelIdEqual> models_;
};

// Resolves every provider of `catalog` (see MakeUpstreamTarget), reading API keys through
// `getenv`, and indexes its models. Returns InvalidArgument naming the provider if a base_url
// cannot be used.
Result<std::shared_ptr<const ResolvedCatalog>> ResolveCatalog(const config::Catalog& catalog,
                                                              const config::GetEnv& getenv);

}  // namespace keygate::proxy
