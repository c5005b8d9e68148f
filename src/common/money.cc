#include "common/money.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace keygate {
namespace {

constexpr int kMaxDecimals = 6;
// A double's own error when it holds a decimal amount and is multiplied by a million (two
// roundings), relative to the value: what it may differ from a whole number of micro-dollars by
// without the difference being a decimal past the sixth.
constexpr double kDoubleNoise = 3e-16;
constexpr const char* kOverPrecise = "must have at most 6 decimals (micro-dollars)";

Error BadAmount(std::string_view param, std::string_view why) {
  return Error::InvalidArgument(std::string(param) + " " + std::string(why), std::string(param));
}

// "1.5e-3" written out as "0.0015" (a JSON number's exponent form, which a client that turns
// small amounts into strings may send: Python's str(0.00005) is "5e-05"). Refused: text that is
// not digits with at most one '.', then an exponent; an amount too large for any limit; one
// whose first digit lies past the 400th decimal (every digit past the sixth, as for a double
// so small that it is not 0).
Result<std::string> WithoutExponent(std::string_view text, std::string_view param) {
  const size_t e = text.find_first_of("eE");
  if (e == std::string_view::npos) return std::string(text);
  const Error malformed = BadAmount(param, "must be a decimal USD amount");
  std::string_view exponent = text.substr(e + 1);
  const std::string_view mantissa = text.substr(0, e);
  bool negative = false;
  if (!exponent.empty() && (exponent.front() == '+' || exponent.front() == '-')) {
    negative = exponent.front() == '-';
    exponent.remove_prefix(1);
  }
  if (exponent.empty() || mantissa.empty()) return malformed;
  int64_t shift = 0;
  for (char c : exponent) {
    if (c < '0' || c > '9') return malformed;
    shift = std::min<int64_t>(shift * 10 + (c - '0'), 1'000'000'000);  // saturates, no overflow
  }
  if (negative) shift = -shift;
  std::string digits;
  int64_t point = -1;  // digits before the point, once seen
  for (char c : mantissa) {
    if (c == '.') {
      if (point >= 0) return malformed;
      point = static_cast<int64_t>(digits.size());
    } else {
      digits += c;  // checked by ParsePlainUsd
    }
  }
  if (point < 0) point = static_cast<int64_t>(digits.size());
  if (digits.empty()) return malformed;
  // Leading zeros moved out of the way, so that the point's place says how large the amount is.
  const size_t zeros = std::min(digits.find_first_not_of('0'), digits.size());
  digits.erase(0, zeros);
  if (digits.empty()) return std::string("0");
  const int64_t at = point - static_cast<int64_t>(zeros) + shift;  // the point's place
  if (at > 20) return BadAmount(param, "is too large");  // 10^20 USD and more
  if (at < -400) return BadAmount(param, kOverPrecise);
  if (at <= 0) return "0." + std::string(static_cast<size_t>(-at), '0') + digits;
  if (static_cast<size_t>(at) >= digits.size()) {
    return digits + std::string(static_cast<size_t>(at) - digits.size(), '0');
  }
  return digits.substr(0, static_cast<size_t>(at)) + "." + digits.substr(static_cast<size_t>(at));
}

// A decimal amount without sign or exponent (ParseUsd).
Result<MicroUsd> ParsePlainUsd(std::string_view text, std::string_view param) {
  MicroUsd whole = 0;
  size_t i = 0;
  bool any_digit = false;
  for (; i < text.size() && text[i] != '.'; ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return BadAmount(param, "must be a decimal USD amount");
    whole = whole * 10 + (c - '0');
    any_digit = true;
    if (whole > kMaxMicroUsd / kMicrosPerUsd) return BadAmount(param, "is too large");
  }
  MicroUsd frac = 0;
  int decimals = 0;
  double beyond = 0;  // the decimals past the sixth, as a fraction of a micro-dollar
  double scale = 0.1;
  bool beyond_nonzero = false;  // (`beyond` is 0 when its digits lie past a double's range)
  if (i < text.size()) {  // at '.'
    for (++i; i < text.size(); ++i) {
      char c = text[i];
      if (c < '0' || c > '9') return BadAmount(param, "must be a decimal USD amount");
      any_digit = true;
      if (++decimals <= kMaxDecimals) {
        frac = frac * 10 + (c - '0');
      } else {
        beyond += (c - '0') * scale;
        scale /= 10;
        beyond_nonzero = beyond_nonzero || c != '0';
      }
    }
  }
  if (!any_digit) return BadAmount(param, "must be a decimal USD amount");
  for (int d = decimals; d < kMaxDecimals; ++d) frac *= 10;
  MicroUsd total = whole * kMicrosPerUsd + frac;
  if (beyond_nonzero) {
    // Judged as the same amount sent as a JSON number is (UsdFromDouble): trailing zeros, or
    // digits a double's noise explains ("0.30000000000000004", a client's 0.1 + 0.2 printed),
    // round to the micro-dollar; a real seventh decimal is refused.
    // Capped far below half a micro-dollar: past ~$3M a double's noise would let a real seventh
    // decimal through, and a string is how such amounts are meant to be written exactly.
    constexpr double kMostNoise = 1e-3;
    const double tolerance =
        std::min((static_cast<double>(total) + beyond) * kDoubleNoise, kMostNoise);
    const double off = beyond < 0.5 ? beyond : 1 - beyond;  // from the nearest micro-dollar
    // A positive amount below half a micro-dollar is not 0, however small (as for a double).
    if (off > tolerance || (total == 0 && beyond < 0.5)) return BadAmount(param, kOverPrecise);
    if (beyond >= 0.5) ++total;
  }
  if (total > kMaxMicroUsd) return BadAmount(param, "is too large");
  return total;
}

}  // namespace

Result<MicroUsd> ParseUsd(std::string_view text, std::string_view param) {
  if (text.empty()) return BadAmount(param, "must be a decimal USD amount");
  const bool minus = text.front() == '-';
  if (minus || text.front() == '+') text.remove_prefix(1);
  const Result<std::string> plain = WithoutExponent(text, param);
  if (!plain.ok()) return plain.error();
  Result<MicroUsd> amount = ParsePlainUsd(*plain, param);
  // "-0" is zero, as the number -0 is; anything else below zero is refused.
  if (minus && amount.ok() && *amount != 0) return BadAmount(param, "must not be negative");
  return amount;
}

Result<MicroUsd> UsdFromDouble(double usd, std::string_view param) {
  if (!std::isfinite(usd)) return BadAmount(param, "must be a finite number");
  const double exact = usd * static_cast<double>(kMicrosPerUsd);
  const double micros = std::round(exact);
  if (std::fabs(micros) > static_cast<double>(kMaxMicroUsd)) return BadAmount(param, "is too large");
  // The double's own error (two roundings: the decimal, then the product) stays below
  // 2.3e-16 of the value; anything more is a decimal past the sixth. Exact to the micro-dollar
  // up to ~$300M; past ~$4.5 billion a double holds no micro-dollars at all (write a string).
  if (std::fabs(exact - micros) > std::fabs(exact) * kDoubleNoise) {
    return BadAmount(param, kOverPrecise);
  }
  return static_cast<MicroUsd>(micros);
}

std::string FormatUsd(MicroUsd micros) {
  bool negative = micros < 0;
  uint64_t abs = negative ? static_cast<uint64_t>(-(micros + 1)) + 1 : static_cast<uint64_t>(micros);
  std::string out = std::to_string(abs / kMicrosPerUsd);
  uint64_t frac = abs % kMicrosPerUsd;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, kMaxDecimals - digits.size(), '0');
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return negative ? "-" + out : out;
}

MicroUsd CostForTokens(int64_t input_tokens, MicroUsd input_price, int64_t output_tokens,
                       MicroUsd output_price) {
  constexpr int64_t kTokensPerMillion = 1'000'000;
  // 128-bit intermediate: a count (< 2^63) times a price (< 2^63), twice, fits in 2^127.
  const __int128 exact = static_cast<__int128>(input_tokens) * input_price +
                         static_cast<__int128>(output_tokens) * output_price;
  const __int128 cost = (exact + kTokensPerMillion - 1) / kTokensPerMillion;
  constexpr MicroUsd kMax = std::numeric_limits<MicroUsd>::max();
  return cost > kMax ? kMax : static_cast<MicroUsd>(cost);
}

}  // namespace keygate
