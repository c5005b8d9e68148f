// JSON text that a parser has already accepted, read as written: the members of an object with
// their raw text, member names decoded, values compacted. For keeping what a caller wrote
// (numbers of any size or precision, escapes, member order) where a parsed document would
// rewrite it: a body forwarded upstream, metadata returned as given.
//
// Every function REQUIRES text that a strict JSON parser accepted (the data plane's and the
// dialects' parsers run first); on other text the results are unspecified but stay inside it.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace keygate {

// One member of an object, as written: its name between the quotes (escapes not decoded) and
// its value's text (without the whitespace around it).
struct JsonMemberText {
  std::string_view raw_name;
  std::string_view value;
};

// The members of the object `text` (whitespace allowed around it), in order, repeated names
// included. Empty when `text` is not an object or the object is empty.
std::vector<JsonMemberText> ObjectMembers(std::string_view text);

// The elements of the array `text` (whitespace allowed around it and them), in order, each as
// written. Empty when `text` is not an array or the array is empty.
std::vector<std::string_view> ArrayElements(std::string_view text);

// The decoded text of a string's contents `raw` (between its quotes): escapes, surrogate pairs
// included, become UTF-8.
std::string JsonUnescape(std::string_view raw);

// Whether the string contents `raw` decode to `name`; decodes only when `raw` has an escape.
bool JsonNameIs(std::string_view raw, std::string_view name);

// Appends `code_point` (at most 0x10FFFF, not a surrogate) to `out` as UTF-8.
void AppendUtf8(unsigned code_point, std::string* out);

// `value` without the whitespace between its tokens (strings kept as written).
std::string CompactJson(std::string_view value);

}  // namespace keygate
