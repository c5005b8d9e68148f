#include "config/yaml_reader.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace keygate::config::internal {
namespace {

constexpr size_t kMaxEchoedValueBytes = 64;

std::string Quoted(std::string_view text) {
  if (text.size() <= kMaxEchoedValueBytes) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, kMaxEchoedValueBytes)) + "…'";
}

std::string WhereMark(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return file;
  return file + ":" + std::to_string(mark.line + 1);  // yaml-cpp counts lines from 0
}

// Empty documents (`---` alone) read after the first before the text is taken for one that
// never ends.
constexpr int kMostEmptyDocuments = 1000;

// Where a document holds something other than a null, if it does: the parser's events, with
// no node built.
class DocumentContent final : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> start;
  std::optional<YAML::Mark> content;

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (!start) start = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Saw(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Saw(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Saw(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Saw(mark);
  }
  void OnMapEnd() override {}

 private:
  void Saw(const YAML::Mark& mark) {
    if (!content) content = mark;
  }
};

}  // namespace

// yaml-cpp tags a quoted scalar "!" and a plain one "?".
bool IsQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

Result<YAML::Node> ParseYamlFile(const std::string& path) {
  std::error_code ec;
  // A directory opens, then reads as nothing: it would pass for an empty config.
  if (std::filesystem::is_directory(path, ec)) {
    return Error::InvalidArgument(path + ": cannot read: is a directory, not a config file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::InvalidArgument(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Error::InvalidArgument(path + ": cannot read: " + std::strerror(errno));
  try {
    // One document: a second (after `---`) would be read by nothing, silently (audit V).
    // An empty one (a trailing `---`) holds nothing to miss (the review). Found by reading
    // the documents after the first one at a time, never all: yaml-cpp 0.7's LoadAll never
    // returns on a line starting with `,` (yaml-cpp#1040), growing until memory ran out, at a
    // start and at a SIGHUP's reload alike (audit CC).
    std::istringstream stream(text.str());
    YAML::Parser parser(stream);
    DocumentContent first;
    parser.HandleNextDocument(first);
    std::optional<YAML::Mark> second;
    for (int more = 0; more < kMostEmptyDocuments; ++more) {
      DocumentContent next;
      if (!parser.HandleNextDocument(next)) return YAML::Load(text.str());
      if (!second) second = next.start;
      if (next.content) {
        return Error::InvalidArgument(WhereMark(path, *next.content) +
                                      ": a second YAML document; the config is one document");
      }
    }
    return Error::InvalidArgument(
        (second ? WhereMark(path, *second) : path) +
        ": invalid YAML: it reads as empty documents without end (as yaml-cpp reads a line "
        "starting with a comma)");
  } catch (const YAML::Exception& e) {
    return Error::InvalidArgument(WhereMark(path, e.mark) + ": invalid YAML: " + e.msg);
  }
}

std::string YamlReader::Where(const YAML::Node& node) const {
  // yaml-cpp marks an empty value where the next token starts, often lines below: its entry's
  // key says where it is.
  if (node.IsDefined() && node.IsNull()) {
    for (const auto& [value, key_mark] : empty_values_) {
      if (value.is(node)) return WhereMark(file_, key_mark);
    }
  }
  return WhereMark(file_, node.Mark());
}

Error YamlReader::ErrorAt(const YAML::Node& node, std::string_view path,
                          std::string_view complaint) const {
  std::string message = Where(node) + ": ";
  if (!path.empty()) message += std::string(path) + ": ";
  message += complaint;
  return Error::InvalidArgument(std::move(message), std::string(path));
}

Result<std::string> YamlReader::Text(const YAML::Node& node, std::string_view path) const {
  if (!node.IsDefined() || node.IsNull()) return std::string();
  if (!node.IsScalar()) return ErrorAt(node, path, "must be a single value, not a list or mapping");
  return node.Scalar();
}

Result<int64_t> YamlReader::Integer(const YAML::Node& node, std::string_view path, int64_t min,
                                    int64_t max) const {
  std::string range = "must be an integer in " + std::to_string(min) + ".." + std::to_string(max);
  if (!node.IsDefined() || node.IsNull()) return ErrorAt(node, path, range);
  if (!node.IsScalar()) return ErrorAt(node, path, range + ", not a list or mapping");
  if (IsQuoted(node)) return ErrorAt(node, path, range + ", not a quoted string");
  const std::string& text = node.Scalar();
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < min || value > max) {
    return ErrorAt(node, path, range + ", got " + Quoted(text));
  }
  return value;
}

Result<MicroUsd> YamlReader::UsdPerMtok(const YAML::Node& node, std::string_view path) const {
  constexpr std::string_view kComplaint =
      "must be a number ≥ 0 (USD per million tokens, at most 6 decimals)";
  if (!node.IsDefined() || node.IsNull() || !node.IsScalar()) {
    return ErrorAt(node, path, kComplaint);
  }
  Result<MicroUsd> micros = ParseUsd(node.Scalar(), path);
  if (!micros.ok()) {
    return ErrorAt(node, path, std::string(kComplaint) + ", got " + Quoted(node.Scalar()));
  }
  return micros;
}

Status YamlReader::ForEachEntry(const YAML::Node& map, std::string_view path,
                                const EntryVisitor& visit) const {
  if (!map.IsDefined() || map.IsNull()) return OkStatus();
  if (!map.IsMap()) {
    return ErrorAt(map, path,
                   path.empty() ? "the document must be a mapping of keys to values"
                                : "must be a mapping of keys to values");
  }
  std::set<std::string> seen;
  for (const auto& entry : map) {
    // Copies, not references: the iterator hands out a temporary pair (node handles are cheap).
    const YAML::Node key_node = entry.first;
    const YAML::Node value = entry.second;
    if (!key_node.IsScalar()) return ErrorAt(key_node, path, "keys must be plain names");
    const std::string& key = key_node.Scalar();
    if (!seen.insert(key).second) {
      return ErrorAt(key_node, JoinPath(path, key), "duplicate key");
    }
    if (value.IsNull()) empty_values_.emplace_back(value, key_node.Mark());
    KG_RETURN_IF_ERROR(visit(key, key_node, value));
  }
  return OkStatus();
}

std::string JoinPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

std::string IndexPath(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

}  // namespace keygate::config::internal
