#include "proxy/resolved_catalog.h"

#include <cstdint>
#include <utility>

#include "common/ascii.h"

namespace keygate::proxy {
namespace {

// The provider part of `id` and the rest from its '/'; no '/': an id no model has.
bool SplitId(std::string_view id, std::string_view* provider, std::string_view* rest) {
  const size_t slash = id.find('/');
  if (slash == std::string_view::npos) return false;
  *provider = id.substr(0, slash);
  *rest = id.substr(slash);
  return true;
}

}  // namespace

size_t ModelIdHash::operator()(std::string_view id) const {
  // FNV-1a over the id with its provider part lower-cased: ids are short, and no copy is made.
  constexpr uint64_t kOffset = 14695981039346656037ULL;
  constexpr uint64_t kPrime = 1099511628211ULL;
  uint64_t hash = kOffset;
  const size_t slash = id.find('/');
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = i < slash ? AsciiLower(id[i]) : id[i];
    hash = (hash ^ static_cast<unsigned char>(c)) * kPrime;
  }
  return static_cast<size_t>(hash);
}

bool ModelIdEqual::operator()(std::string_view a, std::string_view b) const {
  std::string_view a_provider, a_rest, b_provider, b_rest;
  if (!SplitId(a, &a_provider, &a_rest) || !SplitId(b, &b_provider, &b_rest)) return a == b;
  return a_rest == b_rest && AsciiIEquals(a_provider, b_provider);
}

const ResolvedModel* ResolvedCatalog::Find(std::string_view id) const {
  if (id.find('/') == std::string_view::npos) return nullptr;
  const auto it = models_.find(id);
  return it == models_.end() ? nullptr : &it->second;
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
  for (const config::ModelConfig& model : resolved->catalog.models) {
    // The config refuses such an id (ResolveModelId); no call can name it either.
    if (model.id.find('/') == std::string::npos) continue;
    const auto target = resolved->targets.find(AsciiLowered(model.provider));
    resolved->models_.try_emplace(
        model.id, ResolvedModel{&model, target == resolved->targets.end() ? nullptr
                                                                           : target->second});
  }
  return std::shared_ptr<const ResolvedCatalog>(std::move(resolved));
}

}  // namespace keygate::proxy
