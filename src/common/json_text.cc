#include "common/json_text.h"

#include "common/ascii.h"

namespace keygate {
namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsJsonSpace(s[i])) ++i;
  return i;
}

// `i` at a string's opening quote: the index past its closing quote (s.size() if unclosed).
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// `i` at a value's first byte: the index past the value (s.size() if it does not end).
size_t SkipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return s.size();
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return s.size();
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !IsJsonSpace(s[i])) ++i;
  return i;
}

// The four hex digits at `p` as a number. REQUIRES: four hex digits there.
unsigned HexQuad(const char* p) {
  unsigned value = 0;
  for (int i = 0; i < 4; ++i) value = value * 16 + static_cast<unsigned>(AsciiHexValue(p[i]));
  return value;
}

}  // namespace

std::vector<JsonMemberText> ObjectMembers(std::string_view text) {
  std::vector<JsonMemberText> members;
  size_t i = SkipSpace(text, 0);
  if (i >= text.size() || text[i] != '{') return members;
  i = SkipSpace(text, i + 1);
  while (i < text.size() && text[i] == '"') {
    const size_t name_end = SkipString(text, i);
    if (name_end < i + 2) break;
    const std::string_view raw_name = text.substr(i + 1, name_end - i - 2);
    i = SkipSpace(text, name_end);
    if (i >= text.size() || text[i] != ':') break;
    const size_t value_start = SkipSpace(text, i + 1);
    const size_t value_end = SkipValue(text, value_start);
    if (value_end <= value_start) break;
    members.push_back({raw_name, text.substr(value_start, value_end - value_start)});
    i = SkipSpace(text, value_end);
    if (i < text.size() && text[i] == ',') i = SkipSpace(text, i + 1);
  }
  return members;
}

std::vector<std::string_view> ArrayElements(std::string_view text) {
  std::vector<std::string_view> elements;
  size_t i = SkipSpace(text, 0);
  if (i >= text.size() || text[i] != '[') return elements;
  i = SkipSpace(text, i + 1);
  while (i < text.size() && text[i] != ']') {
    const size_t end = SkipValue(text, i);
    if (end <= i) break;
    elements.push_back(text.substr(i, end - i));
    i = SkipSpace(text, end);
    if (i < text.size() && text[i] == ',') i = SkipSpace(text, i + 1);
  }
  return elements;
}

void AppendUtf8(unsigned code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

std::string JsonUnescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out.push_back(raw[i]);
      continue;
    }
    const char kind = raw[++i];
    switch (kind) {
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        if (i + 4 >= raw.size()) break;  // cut short: not valid JSON
        unsigned code_point = HexQuad(raw.data() + i + 1);
        i += 4;
        // A high surrogate followed by an escaped low one: one code point.
        const bool pair = code_point >= 0xD800 && code_point < 0xDC00 && i + 6 < raw.size() &&
                          raw[i + 1] == '\\' && raw[i + 2] == 'u';
        if (pair) {
          const unsigned low = HexQuad(raw.data() + i + 3);
          if (low >= 0xDC00 && low < 0xE000) {
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          }
        }
        AppendUtf8(code_point, &out);
        break;
      }
      default: out.push_back(kind); break;  // " \ /
    }
  }
  return out;
}

bool JsonNameIs(std::string_view raw, std::string_view name) {
  if (raw.find('\\') == std::string_view::npos) return raw == name;
  return JsonUnescape(raw) == name;
}

std::string CompactJson(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size();) {
    if (value[i] == '"') {
      const size_t end = SkipString(value, i);
      out.append(value.substr(i, end - i));
      i = end;
    } else {
      if (!IsJsonSpace(value[i])) out.push_back(value[i]);
      ++i;
    }
  }
  return out;
}

}  // namespace keygate
