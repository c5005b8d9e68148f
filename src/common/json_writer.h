// A small streaming JSON writer for responses: commas and escaping handled, money written as
// exact decimals (FormatUsd) rather than through a double's shortest form.
//
// Usage: JsonWriter w; w.BeginObject().Key("a").Int(1).Key("b").Null().EndObject();
// REQUIRES: calls form valid JSON (a Key before each value inside an object).
// Thread safety: one writer per thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/money.h"

namespace keygate {

class JsonWriter {
 public:
  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Already-serialized JSON (e.g. stored metadata). REQUIRES: `json` is valid JSON.
  JsonWriter& Raw(std::string_view json);
  JsonWriter& Usd(MicroUsd micros);

  // Conveniences: null when absent (or empty for strings).
  JsonWriter& StringOrNull(std::string_view value) { return value.empty() ? Null() : String(value); }
  JsonWriter& IntOrNull(const std::optional<int64_t>& v) { return v ? Int(*v) : Null(); }
  JsonWriter& UsdOrNull(const std::optional<MicroUsd>& v) { return v ? Usd(*v) : Null(); }
  JsonWriter& RawOrNull(std::string_view json) { return json.empty() ? Null() : Raw(json); }
  JsonWriter& StringArray(const std::vector<std::string>& values);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  JsonWriter& Open(char c);
  JsonWriter& Close(char c);
  void BeforeValue();

  std::string out_;
  bool need_comma_ = false;
  bool after_key_ = false;
};

}  // namespace keygate
