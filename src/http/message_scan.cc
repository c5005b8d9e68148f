#include "http/message_scan.h"

#include <algorithm>

#include "common/ascii.h"
#include "common/byte_words.h"

namespace keygate::http {
namespace {

// RFC 9110 tchar: the bytes of a method and a field name.
constexpr std::array<bool, 256> kTokenByte = [] {
  std::array<bool, 256> token{};
  for (int c = 0; c < 256; ++c) token[c] = IsAsciiAlnum(static_cast<char>(c));
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) token[static_cast<unsigned char>(c)] = true;
  return token;
}();

// Visible ASCII: the bytes of a request target.
constexpr bool IsVisible(unsigned char c) { return c > 0x20 && c < 0x7F; }

// The bytes of a field value or a reason phrase: visible ASCII, space and tab (no obs-text).
constexpr bool IsValueByte(unsigned char c) { return IsVisible(c) || c == ' ' || c == '\t'; }

constexpr bool IsBlank(char c) { return c == ' ' || c == '\t'; }

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Framing and connection fields seen in a head.
struct Framing {
  bool has_length = false;
  uint64_t length = 0;
  bool close = false;
  bool keep_alive = false;
};

// A cursor over the bytes that may hold a head: every read is checked against `end`, and
// running out gives up like any other surprise (the head is not whole yet, or over the limit).
class HeadCursor {
 public:
  HeadCursor(const char* p, const char* end) : p_(p), end_(end) {}

  const char* pos() const { return p_; }

  // A run of `pred` bytes, at least one, ended by `stop`; returns it and moves past `stop`.
  template <typename Pred>
  bool Run(Pred pred, char stop, std::string_view* out) {
    // On locals: a char load may alias the member p_, which would make the compiler store it
    // for every byte.
    const char* const start = p_;
    const char* const end = end_;
    const char* p = start;
    while (p < end && pred(static_cast<unsigned char>(*p))) ++p;
    if (p == start || p == end || *p != stop) return false;
    *out = std::string_view(start, static_cast<size_t>(p - start));
    p_ = p + 1;
    return true;
  }

  // "HTTP/1.0" or "HTTP/1.1".
  bool Version(int* version) {
    if (end_ - p_ < 8 || std::string_view(p_, 7) != "HTTP/1." || (p_[7] != '0' && p_[7] != '1')) {
      return false;
    }
    *version = p_[7] == '1' ? 11 : 10;
    p_ += 8;
    return true;
  }

  // " 200 OK\r\n" after the version: three digits (100 to 599) and a reason, maybe empty.
  bool Status(int* status) {
    if (end_ - p_ < 5 || p_[0] != ' ' || p_[1] < '1' || p_[1] > '5' || !IsDigit(p_[2]) ||
        !IsDigit(p_[3]) || p_[4] != ' ') {
      return false;
    }
    *status = (p_[1] - '0') * 100 + (p_[2] - '0') * 10 + (p_[3] - '0');
    p_ += 5;
    SkipValueBytes();
    return Crlf();
  }

  bool Crlf() {
    if (end_ - p_ < 2 || p_[0] != '\r' || p_[1] != '\n') return false;
    p_ += 2;
    return true;
  }

  // Value bytes up to a CRLF, then the CRLF; the value without surrounding blanks. Gives up on
  // an obs-fold (a line that starts with a blank).
  bool ValueLine(std::string_view* out) {
    while (p_ < end_ && IsBlank(*p_)) ++p_;
    const char* start = p_;
    SkipValueBytes();
    const char* stop = p_;
    if (!Crlf()) return false;
    while (stop > start && IsBlank(stop[-1])) --stop;
    *out = std::string_view(start, static_cast<size_t>(stop - start));
    return p_ == end_ || !IsBlank(*p_);
  }

  // The fields and the blank line after them.
  bool Fields(ScannedMessage* out, Framing* framing) {
    while (!Crlf()) {
      if (out->field_count == ScannedMessage::kMaxFields) return false;
      ScannedField& field = out->field_storage[out->field_count++];
      if (!Run([](unsigned char c) { return kTokenByte[c]; }, ':', &field.name) ||
          !ValueLine(&field.value) || !NoteFraming(field, framing)) {
        return false;
      }
    }
    return true;
  }

 private:
  // Moves past value bytes, sixteen or eight at a time while they last (an Authorization
  // value is long): a byte stops the block when it is below 0x20, DEL or above 0x7F; a tab,
  // the one value byte among them, is passed one at a time.
  void SkipValueBytes() {
    const char* p = p_;  // a local, as in Run()
    const char* const end = end_;
    for (;;) {
      const bool stopped = byte_words::SkipUnmarkedBlocks(&p, end, [](byte_words::Block b) {
        return byte_words::BelowOrHighMask(b, 0x20) | byte_words::EqualMask(b, 0x7F);
      });
      if (!stopped) {
        p = byte_words::SkipUnmarked(p, end, [](uint64_t w) {
          using namespace byte_words;
          return Below(w, 0x20) | Equal(w, 0x7F) | High(w);
        });
        while (p < end && IsValueByte(static_cast<unsigned char>(*p)) && *p != '\t') ++p;
      }
      if (p == end || *p != '\t') break;
      ++p;
    }
    p_ = p;
  }

  // Fields that frame the message or decide the connection: the plain forms are read, the
  // others give up.
  static bool NoteFraming(const ScannedField& field, Framing* framing) {
    const std::string_view name = field.name;
    const std::string_view value = field.value;
    if (FieldIEquals(name, "content-length")) {
      constexpr size_t kMaxDigits = 18;
      if (framing->has_length || value.empty() || value.size() > kMaxDigits) return false;
      uint64_t length = 0;
      for (char c : value) {
        if (!IsDigit(c)) return false;
        length = length * 10 + static_cast<uint64_t>(c - '0');
      }
      framing->has_length = true;
      framing->length = length;
      return true;
    }
    if (FieldIEquals(name, "connection")) {
      if (FieldIEquals(value, "close")) {
        framing->close = true;
      } else if (FieldIEquals(value, "keep-alive")) {
        framing->keep_alive = true;
      } else {
        return false;
      }
      return true;
    }
    // Expect: the session invites the body (100 Continue) on the Beast parser's path.
    return !FieldIEquals(name, "transfer-encoding") && !FieldIEquals(name, "upgrade") &&
           !FieldIEquals(name, "proxy-connection") && !FieldIEquals(name, "expect");
  }

  const char* p_;
  const char* end_;
};

// The bytes a head may take: Beast's parser refuses a head over its limit, and at the limit it
// decides.
const char* HeadWindowEnd(std::string_view bytes, size_t max_head_bytes) {
  const size_t window = max_head_bytes == 0 ? 0 : std::min(bytes.size(), max_head_bytes - 1);
  return bytes.data() + window;
}

// The body after a head ending at `head_end`, when all of it is in `bytes`.
bool TakeBody(std::string_view bytes, const char* head_end, const Framing& framing,
              uint64_t max_body_bytes, ScannedMessage* out) {
  const auto head_bytes = static_cast<size_t>(head_end - bytes.data());
  const uint64_t length = framing.has_length ? framing.length : 0;
  if (length > max_body_bytes || length > bytes.size() - head_bytes) return false;
  out->body = bytes.substr(head_bytes, static_cast<size_t>(length));
  out->size = head_bytes + static_cast<size_t>(length);
  out->keep_alive = out->version == 11 ? !framing.close : framing.keep_alive;
  return true;
}

}  // namespace

HeaderList LoweredHeaders(const ScannedMessage& message) {
  HeaderList headers;
  headers.reserve(message.field_count);
  for (const ScannedField& field : message.fields()) {
    headers.emplace_back(AsciiLowered(field.name), field.value);
  }
  return headers;
}

void LowerFieldNamesInPlace(char* bytes, const ScannedMessage& message) {
  for (const ScannedField& field : message.fields()) {
    AsciiLowerInPlace(bytes + (field.name.data() - bytes), field.name.size());
  }
}

bool ScanRequest(std::string_view bytes, const ScanLimits& limits, ScannedMessage* out) {
  HeadCursor cursor(bytes.data(), HeadWindowEnd(bytes, limits.max_head_bytes));
  out->field_count = 0;
  Framing framing;
  if (!cursor.Run([](unsigned char c) { return kTokenByte[c]; }, ' ', &out->method) ||
      !cursor.Run(IsVisible, ' ', &out->target) || !cursor.Version(&out->version) ||
      !cursor.Crlf() || !cursor.Fields(out, &framing)) {
    return false;
  }
  return TakeBody(bytes, cursor.pos(), framing, limits.max_body_bytes, out);
}

bool ScanResponse(std::string_view bytes, const ScanLimits& limits, ScannedMessage* out) {
  HeadCursor cursor(bytes.data(), HeadWindowEnd(bytes, limits.max_head_bytes));
  out->field_count = 0;
  Framing framing;
  if (!cursor.Version(&out->version) || out->version != 11 || !cursor.Status(&out->status) ||
      !cursor.Fields(out, &framing)) {
    return false;
  }
  // 1xx, 204 and 304 answers have no body; an answer without a length is framed otherwise; a
  // code above 599 is no HTTP status (the upstream client refuses it, after Beast's parser).
  if (out->status < 200 || out->status > 599 || out->status == 204 || out->status == 304 ||
      !framing.has_length) {
    return false;
  }
  return TakeBody(bytes, cursor.pos(), framing, limits.max_body_bytes, out);
}

}  // namespace keygate::http
