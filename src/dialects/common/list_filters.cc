#include "dialects/common/list_filters.h"

#include <string>

#include "dialects/common/json_input.h"

namespace keygate::dialects {
namespace {

// "a,b" and repeated parameters both add tags; empty items are skipped.
void AddTags(std::string_view value, std::vector<std::string>* tags) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view tag = value.substr(0, comma);
    if (!tag.empty()) tags->emplace_back(tag);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace

Result<bool> ApplyFleetFilter(std::string_view name, std::string_view value,
                              keys::ServiceKeyListOptions* options) {
  if (name == "tag" || name == "tags" || name == "tags[]") {
    AddTags(value, &options->tags);
    return true;
  }
  if (name == "project_id") {
    options->project_id = std::string(value);
    return true;
  }
  if (name == "project_name") {
    options->project_name = std::string(value);
    return true;
  }
  if (name == "search") {
    options->search = std::string(value);
    return true;
  }
  if (name == "status") {
    if (value.empty()) {
      options->status.reset();
    } else {
      KG_ASSIGN_OR_RETURN(options->status, ParseStatusParam(value, name));
    }
    return true;
  }
  return false;
}

}  // namespace keygate::dialects
