#include "stats.h"

#include <boost/json.hpp>

namespace mock_upstream {

void LastRequest::AddHeader(std::string_view name, std::string_view value) {
  if (header_count == headers.size()) headers.emplace_back();
  auto& [stored_name, stored_value] = headers[header_count++];
  stored_name.assign(name);
  for (char& c : stored_name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  stored_value.assign(value);
}

Stats::Stats(size_t slot_count) {
  slots_.reserve(slot_count);
  for (size_t i = 0; i < slot_count; ++i) slots_.push_back(std::make_unique<Slot>());
}

void Stats::Count(RequestKind kind, Counters* counters) {
  ++counters->requests;
  switch (kind) {
    case RequestKind::kChatStream:
      ++counters->streams;
      ++counters->chat;
      break;
    case RequestKind::kChat:
      ++counters->chat;
      break;
    case RequestKind::kEmbeddings:
      ++counters->embeddings;
      break;
    case RequestKind::kOther:
    case RequestKind::kControl:
      break;
  }
}

namespace {

boost::json::value BodyAsJson(const std::string& body) {
  if (body.empty()) return nullptr;
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(body, ec);
  if (ec) return boost::json::string(body);
  return parsed;
}

boost::json::object HeadersAsJson(const LastRequest& last) {
  boost::json::object headers;
  for (size_t i = 0; i < last.header_count; ++i) {
    const auto& [name, value] = last.headers[i];
    auto it = headers.find(name);
    if (it == headers.end()) {
      headers[name] = value;
    } else {  // a repeated field: join as HTTP does (RFC 9110 §5.3)
      std::string joined(it->value().as_string());
      it->value() = joined + ", " + value;
    }
  }
  return headers;
}

}  // namespace

std::string Stats::SnapshotJson() const {
  Counters total;
  const Slot* latest = nullptr;
  std::vector<std::unique_lock<std::mutex>> locks;  // hold all: a consistent snapshot
  locks.reserve(slots_.size());
  for (const auto& slot : slots_) {
    locks.emplace_back(slot->mu);
    total.requests += slot->counters.requests;
    total.chat += slot->counters.chat;
    total.embeddings += slot->counters.embeddings;
    total.streams += slot->counters.streams;
    total.connections += slot->counters.connections;
    total.strays += slot->counters.strays;
    if (slot->last.sequence != 0 &&
        (latest == nullptr || slot->last.sequence > latest->last.sequence)) {
      latest = slot.get();
    }
  }
  boost::json::object out;
  out["requests"] = total.requests;
  out["chat"] = total.chat;
  out["embeddings"] = total.embeddings;
  out["streams"] = total.streams;
  out["connections"] = total.connections;
  out["strays"] = total.strays;
  out["last_authorization"] = nullptr;
  out["last_headers"] = boost::json::object();
  out["last_body"] = nullptr;
  if (latest != nullptr) {
    const LastRequest& last = latest->last;
    if (last.has_authorization) out["last_authorization"] = last.authorization;
    out["last_headers"] = HeadersAsJson(last);
    out["last_body"] = BodyAsJson(last.body);
  }
  return boost::json::serialize(out);
}

void Stats::Reset() {
  for (const auto& slot : slots_) {
    std::lock_guard<std::mutex> lock(slot->mu);
    slot->counters = Counters();
    slot->last.sequence = 0;
    slot->last.header_count = 0;
    slot->last.has_authorization = false;
    slot->last.authorization.clear();
    slot->last.body.clear();
  }
}

}  // namespace mock_upstream
