// Money as integer micro-dollars (1 USD = 1,000,000). Never double in arithmetic; doubles
// appear only at the JSON edge, where a number must be written.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace keygate {

using MicroUsd = int64_t;
inline constexpr MicroUsd kMicrosPerUsd = 1'000'000;
// Upper bound for any configured amount: one trillion USD keeps every sum far from overflow.
inline constexpr MicroUsd kMaxMicroUsd = 1'000'000'000'000 * kMicrosPerUsd;

// Parses a decimal USD amount ("150", "0.25", or in exponent form "1.5e2") into micro-dollars.
// Returns InvalidArgument (naming `param`) for a malformed, negative-signed or over-precise
// (more than 6 decimals) value, or one above kMaxMicroUsd. Decimals past the sixth are
// judged as UsdFromDouble judges the same amount: zeros, or what a double's own error
// explains, are rounded away ("1.0000000", "0.30000000000000004"); others are refused.
Result<MicroUsd> ParseUsd(std::string_view text, std::string_view param);

// Converts a JSON number of USD into micro-dollars. Returns InvalidArgument for NaN,
// infinities, a value above kMaxMicroUsd in magnitude, or one with more than 6 decimals, as
// ParseUsd does for the same amount written as a string (the binary double's own error is not
// counted as a decimal). Up to ~$300M; a double cannot tell micro-dollars past ~$4.5 billion.
Result<MicroUsd> UsdFromDouble(double usd, std::string_view param);

// Formats micro-dollars as a decimal string without trailing zeros ("42", "0.000123").
std::string FormatUsd(MicroUsd micros);

// The value as a double, for writing a JSON number.
inline double UsdAsDouble(MicroUsd micros) {
  return static_cast<double>(micros) / static_cast<double>(kMicrosPerUsd);
}

// Cost of `input_tokens` at `input_price` plus `output_tokens` at `output_price` (micro-dollars
// per million tokens), summed exactly and then rounded up once (so a call is never charged a
// micro-dollar for each part's rounding), so that a reservation is never below the real charge;
// saturates at the largest MicroUsd. Monotonic in each count. REQUIRES: counts and prices >= 0.
MicroUsd CostForTokens(int64_t input_tokens, MicroUsd input_price, int64_t output_tokens,
                       MicroUsd output_price);

}  // namespace keygate
