#include "proxy/resolved_catalog.h"

#include <utility>

#include "common/ascii.h"

namespace keygate::proxy {

std::shared_ptr<const UpstreamTarget> ResolvedCatalog::TargetFor(
    const config::ModelConfig& model) const {
  auto it = targets.find(AsciiLowered(model.provider));
  return it == targets.end() ? nullptr : it->second;
}

Result<std::shared_ptr<const ResolvedCatalog>> ResolveCatalog(const config::Catalog& catalog,
                                                              const config::GetEnv& getenv) {
  auto resolved = std::make_shared<ResolvedCatalog>();
  resolved->catalog = catalog;
  for (const config::ProviderConfig& provider : catalog.providers) {
    auto target = MakeUpstreamTarget(provider, getenv);
    if (!target.ok()) return target.error();
    resolved->targets[AsciiLowered(provider.name)] =
        std::make_shared<const UpstreamTarget>(std::move(*target));
  }
  return std::shared_ptr<const ResolvedCatalog>(std::move(resolved));
}

}  // namespace keygate::proxy
