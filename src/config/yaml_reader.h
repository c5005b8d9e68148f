// Internal to src/config: reading one YAML file with errors that point at a line. Every
// complaint becomes InvalidArgument "<file>:<line>: <key path>: <complaint>", the form the
// operator sees when keygate refuses to start.
//
// yaml-cpp throws; these helpers catch at the edge and return Result values, so nothing above
// them sees an exception.
//
// Thread safety: none; one YamlReader reads one file on one thread (yaml-cpp nodes are not
// thread-safe either).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/money.h"
#include "common/status.h"

namespace keygate::config::internal {

// Reads and parses the YAML file at `path`. Returns the document's root (a Null node for an
// empty file), or InvalidArgument "<path>: cannot read: <reason>" or
// "<path>:<line>: invalid YAML: <parser message>".
Result<YAML::Node> ParseYamlFile(const std::string& path);

// Whether `node` is a scalar written in quotes ("8192"): a string in YAML, whatever its text.
bool IsQuoted(const YAML::Node& node);

class YamlReader {
 public:
  // `file` is the name shown in messages (the path as the operator gave it).
  explicit YamlReader(std::string file) : file_(std::move(file)) {}

  // "<file>:<line>" for `node`, or "<file>" when yaml-cpp knows no position.
  std::string Where(const YAML::Node& node) const;
  // InvalidArgument "<file>:<line>: <path>: <complaint>"; `path` may be empty.
  Error ErrorAt(const YAML::Node& node, std::string_view path, std::string_view complaint) const;

  // The text of a scalar; "" for an absent or null node. InvalidArgument for a list or mapping.
  Result<std::string> Text(const YAML::Node& node, std::string_view path) const;
  // A decimal integer in [min, max]. InvalidArgument for anything else (null included).
  Result<int64_t> Integer(const YAML::Node& node, std::string_view path, int64_t min,
                          int64_t max) const;
  // A price in USD per million tokens ("0.15"), converted exactly to integer micro-dollars
  // with ParseUsd on the scalar's own text (never through a double). InvalidArgument for a
  // negative, non-decimal, over-precise (more than 6 decimals) or absurd value.
  Result<MicroUsd> UsdPerMtok(const YAML::Node& node, std::string_view path) const;

  using EntryVisitor = std::function<Status(const std::string& key, const YAML::Node& key_node,
                                            const YAML::Node& value)>;
  // Calls `visit` for each entry of the mapping `map` in file order, stopping at the first
  // error, which it returns. A null `map` has no entries. InvalidArgument when `map` is not a
  // mapping, a key is not a scalar, or a key appears twice (yaml-cpp keeps both silently).
  // Remembers where each empty value's key is, for Where().
  Status ForEachEntry(const YAML::Node& map, std::string_view path,
                      const EntryVisitor& visit) const;

 private:
  std::string file_;
  // Each empty value ForEachEntry visited, with its key's mark.
  mutable std::vector<std::pair<YAML::Node, YAML::Mark>> empty_values_;
};

// "<path>.<key>" or just "<key>" at the top level.
std::string JoinPath(std::string_view path, std::string_view key);
// "<path>[<index>]".
std::string IndexPath(std::string_view path, size_t index);

}  // namespace keygate::config::internal
