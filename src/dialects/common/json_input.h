// Reading management request bodies and query strings into typed values, with errors that
// name the wire field (spec dialects.md "Common rules"). Used by every dialect's .cc file;
// include it only from .cc files (it pulls in Boost.JSON).
//
// Thread safety: stateless functions; a FieldReader is used by one thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "common/time_format.h"
#include "keys/key_service.h"

namespace keygate::dialects {

// Parses `body` as JSON whatever the Content-Type says. InvalidArgument for malformed JSON or a
// non-object; an empty (or all-whitespace) body is an empty object when `allow_empty`.
Result<boost::json::object> ParseObjectBody(std::string_view body, bool allow_empty);

// Query string → (name, value) pairs, percent-decoded ('+' is a space). InvalidArgument for a
// malformed escape.
Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

// Typed, null-aware reads of an object's fields. Each returns nullopt when the field is absent,
// an engaged-but-empty optional for an explicit null, or the value; a wrong type is
// InvalidArgument naming the field.
class FieldReader {
 public:
  // `text`, when given, is the JSON text `object` was parsed from: ObjectJson() then keeps a
  // member's numbers as written (1.0 stays 1.0, not 1E0).
  explicit FieldReader(const boost::json::object& object, std::string_view text = {})
      : object_(object), text_(text) {}

  bool Has(std::string_view name) const;
  Result<keys::Patch<std::string>> String(std::string_view name) const;
  Result<keys::Patch<int64_t>> Integer(std::string_view name) const;
  // A flag: absent is nullopt; null is refused as any other value but true or false (a flag
  // has no cleared state: "an explicit null clears it" would read as false, re-enabling a key
  // for a client that sends null for what it leaves alone).
  Result<std::optional<bool>> Bool(std::string_view name) const;
  // A JSON number or a decimal string of USD → micro-dollars. Negative values are refused.
  Result<keys::Patch<MicroUsd>> Money(std::string_view name) const;
  Result<keys::Patch<UnixMillis>> Timestamp(
      std::string_view name, TimestampStrictness strictness = TimestampStrictness::kLenient) const;
  Result<keys::Patch<std::vector<std::string>>> StringList(std::string_view name) const;
  // A JSON object, compact (metadata): its text as sent without the whitespace between tokens
  // when the reader has the body's text, else re-serialized.
  Result<keys::Patch<std::string>> ObjectJson(std::string_view name) const;
  // "daily" | "weekly" | "monthly" (case-insensitive) or null.
  Result<keys::Patch<keys::ResetInterval>> Interval(std::string_view name) const;

 private:
  const boost::json::object& object_;
  std::string_view text_;
};

// The value of the top-level member `name` of `text`, a JSON object already parsed as valid
// (the last one when the name repeats, as the parser keeps), as written but without whitespace
// between tokens; nullopt if absent or if `text` is not such an object.
std::optional<std::string> CompactMemberText(std::string_view text, std::string_view name);

// A wire-level parse of an integer query parameter: InvalidArgument naming `param` unless the
// whole text is a base-10 integer.
Result<int64_t> ParseIntegerParam(std::string_view text, std::string_view param);
// "true"/"false" (also 1/0).
Result<bool> ParseBoolParam(std::string_view text, std::string_view param);
// "active" | "disabled" | "expired" (case-insensitive, an optional API_KEY_STATUS_ prefix).
Result<keys::KeyStatus> ParseStatusParam(std::string_view text, std::string_view param);

// Renames the model's field names in an error to a dialect's wire names: `renames` maps
// model param → wire param; the message is rewritten too.
Error RenameParam(Error error, const std::vector<std::pair<std::string_view, std::string_view>>& renames);

}  // namespace keygate::dialects

// Assigns the value of a Result expression to `lhs`, or returns its error.
#define KG_ASSIGN_OR_RETURN(lhs, expr)               \
  do {                                               \
    auto kg_result_ = (expr);                        \
    if (!kg_result_.ok()) return kg_result_.error(); \
    lhs = std::move(kg_result_).value();             \
  } while (0)
