// The types of the OpenAI request members that keygate forwards without acting on them
// (temperature, tools, seed...): spec §4 wants a wrong type refused with a 400 naming the
// member, never forwarded. Only types, and a sign where a negative value means nothing to any
// provider: ranges and enum values beyond that differ between OpenAI-compatible providers
// (a temperature of 1.5, a tool_choice of "any"), so those the upstream judges. Members not
// listed here (a provider's own extensions) are forwarded as written.
//
// Both parsers of a chat body (openai_request.cc and its fast path, chat_fast_parse.cc) hold
// members to this one table.
//
// Thread safety: immutable data and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/openai_request.h"

namespace keygate::proxy {

// The kinds of JSON value a member may hold, as bits.
enum JsonKind : unsigned {
  kJsonString = 1u << 0,
  kJsonNumber = 1u << 1,   // any number
  kJsonInteger = 1u << 2,  // a number of integral value (1, 1.0, 1e3); implied by kJsonNumber
  kJsonBool = 1u << 3,
  kJsonObject = 1u << 4,
  kJsonArray = 1u << 5,
  kJsonNull = 1u << 6,
};

struct ParamRule {
  std::string_view name;
  unsigned kinds = 0;         // JsonKind bits
  int64_t min = INT64_MIN;    // for a number: the least value accepted (0 or 1 where set)
  std::string_view expected;  // for the error: "a number or null"
  // For an array, the kinds of its elements; for an object, of its members' values (0: any).
  unsigned item_kinds = 0;
};

// The rule for the top-level member `name` of a body for `endpoint`, or nullptr when keygate
// does not check it here (read by the parsers themselves, or unknown: forwarded as written).
const ParamRule* FindParamRule(Endpoint endpoint, std::string_view name);

// The roles a chat message may have (OpenAI's: system, developer, user, assistant, tool,
// function).
bool IsKnownRole(std::string_view role);
// Those roles as a message says them: "system, developer, ... or function".
std::string KnownRolesText();

}  // namespace keygate::proxy
