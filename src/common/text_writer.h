// Appends text to a std::string through a raw pointer, for the hot paths that assemble many
// short pieces (the head of every answer, every upstream request, the rate-limit lines): room
// is made once for an estimate of the total, then each piece is one copy after one bounds
// check, instead of std::string::append's capacity check, length update and terminator per
// piece. An estimate that falls short is never an overflow: the string grows, as append would.
// Until the writer is finished (Finish() or its destructor), the string also holds the unused
// room.
//
// Its append() and push_back() mirror std::string's, so that helpers written for either
// (AppendDecimal, common/ascii.h) serve both.
//
// Thread safety: one writer per string, on one thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace keygate {

class TextWriter {
 public:
  // Writes after what `out` holds, with room made for `estimate` bytes.
  TextWriter(std::string* out, size_t estimate) : out_(out) {
    const size_t used = out->size();
    out_->resize(used + estimate);
    p_ = out_->data() + used;
    end_ = out_->data() + out_->size();
  }
  ~TextWriter() { Finish(); }
  TextWriter(const TextWriter&) = delete;
  TextWriter& operator=(const TextWriter&) = delete;

  // Inlined even where used many times, so that a literal piece is a store or two.
  [[gnu::always_inline]] TextWriter& append(std::string_view text) {
    // A default view's data is null, and memcpy from null is UB even for no bytes (UBSan,
    // audit U). Folded away for a literal.
    if (text.empty()) return *this;
    if (static_cast<size_t>(end_ - p_) < text.size()) Grow(text.size());
    std::memcpy(p_, text.data(), text.size());
    p_ += text.size();
    return *this;
  }
  [[gnu::always_inline]] TextWriter& append(const char* text, size_t size) {
    return append(std::string_view(text, size));
  }
  [[gnu::always_inline]] TextWriter& push_back(char c) {
    if (p_ == end_) Grow(1);
    *p_++ = c;
    return *this;
  }

  // Trims the string to what was written. Idempotent; the writer must not be used after.
  void Finish() {
    if (out_ == nullptr) return;
    out_->resize(static_cast<size_t>(p_ - out_->data()));
    out_ = nullptr;
  }

 private:
  void Grow(size_t need) {
    const auto written = static_cast<size_t>(p_ - out_->data());
    out_->resize(std::max(out_->size() * 2, written + need));
    p_ = out_->data() + written;
    end_ = out_->data() + out_->size();
  }

  std::string* out_;
  char* p_;
  char* end_;
};

}  // namespace keygate
