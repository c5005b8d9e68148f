// What of the caller's headers goes upstream (ForwardableHeaders): end-to-end headers only,
// never a credential of the caller's, never one keygate sets itself.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/model_call.h"

namespace keygate::proxy {
namespace {

const std::vector<std::string> kPrefixes = {"sk-kg-", "pk-kg-", "ok-kg-"};

// As the data plane calls it for a caller without a bearer token.
http::HeaderList Forward(http::HeaderList headers) {
  return ForwardableHeaders(std::move(headers), "", kPrefixes);
}

TEST(ForwardableHeadersTest, KeepsEndToEndHeadersInOrderAndDropsTheRest) {
  http::HeaderList headers = {
      {"host", "gateway.example"},
      {"authorization", "Bearer sk-kg-caller-secret"},
      {"x-stainless-lang", "js"},
      {"content-type", "application/json"},
      {"content-length", "42"},
      {"content-encoding", "gzip"},
      {"connection", "keep-alive, x-hop"},
      {"x-hop", "named by Connection"},
      {"keep-alive", "timeout=5"},
      {"api-key", "azure-style-secret"},
      {"x-api-key", "anthropic-style-secret"},
      {"cookie", "session=1"},
      {"x-forwarded-for", "10.0.0.1"},
      {"forwarded", "for=10.0.0.1"},
      {"x-request-id", "req-1"},
      {"openai-organization", "org-caller"},
      {"x-goog-api-key", "the-callers-own-google-key"},
      {"x-auth-token", "a-token"},
      {"ocp-apim-subscription-key", "an-apim-key"},
      {"x-http-method-override", "DELETE"},
      {"x-http-method", "PUT"},
      {"x-method-override", "PATCH"},
      {"x-original-url", "/admin"},
      {"x-rewrite-url", "/admin"},
      {"accept-encoding", "gzip"},
      {"user-agent", "OpenAI/JS 4.77.0 with a long enough value to live on the heap"},
      {"te", "trailers"},
      {"x-custom", "kept"},
  };
  const http::HeaderList expected = {
      {"x-stainless-lang", "js"},
      {"user-agent", "OpenAI/JS 4.77.0 with a long enough value to live on the heap"},
      {"x-custom", "kept"},
  };
  EXPECT_EQ(Forward(std::move(headers)), expected);
}

// Audit N: a caller's keygate key sent in a header outside the list above (Google's, Azure
// APIM's, a generic token header) went to the provider. A header holding the caller's own
// secret anywhere, or any keygate key (a configured prefix and a key's random part), stays
// behind. A long token that is no keygate key (a JWT, a hex id) goes on (the review: the
// shape alone dropped about a quarter of JWTs).
TEST(ForwardableHeadersTest, AHeaderHoldingAKeygateKeyNeverGoesUpstream) {
  const std::string body = "Ab3" + std::string(40, 'x');  // a key's 43 random characters
  // Issued under a prefix no longer configured: it still authenticates (by its digest).
  const std::string caller = "legacy-" + body;
  const std::string other = "pk-kg-" + std::string(43, 'Q');
  http::HeaderList headers = {
      {"authorization", "Bearer " + caller},
      {"x-goog-api-key", caller},
      {"x-auth-token", "Bearer " + other},
      {"ocp-apim-subscription-key", "v=" + other + ";"},
      {"x-glued", caller + "abcdefghijklmnopq"},
      {"x-trace", "abc123"},
      {"x-jwt", "eyJhbGciOiJIUzI1NiJ9." + std::string(50, 'z') + ".sig"},
      {"x-hex48", "0123456789abcdef0123456789abcdef0123456789abcdef"},
      {"x-other-prefix", "zz-" + body},  // the shape without a keygate prefix: not a key here
  };
  const http::HeaderList expected = {
      {"x-trace", "abc123"},
      {"x-jwt", "eyJhbGciOiJIUzI1NiJ9." + std::string(50, 'z') + ".sig"},
      {"x-hex48", "0123456789abcdef0123456789abcdef0123456789abcdef"},
      {"x-other-prefix", "zz-" + body},
  };
  EXPECT_EQ(ForwardableHeaders(std::move(headers), caller, kPrefixes), expected);

  // A short prefix that ends in a letter: a key where one begins, not inside a long token.
  const std::vector<std::string> short_prefix = {"k"};
  http::HeaderList with_short = {
      {"x-key", "token=k" + body},
      {"x-token", "abk" + body},  // a run of 46 with a 'k' inside: no key begins there
      {"x-hex48", "k" + std::string(47, 'e')},  // 47 after it: longer than a key (audit P)
      {"x-jwt-sig", "h.p.k" + std::string(42, 'f')},  // 42 after it: shorter
  };
  const http::HeaderList short_expected = {{"x-token", "abk" + body},
                                           {"x-hex48", "k" + std::string(47, 'e')},
                                           {"x-jwt-sig", "h.p.k" + std::string(42, 'f')}};
  EXPECT_EQ(ForwardableHeaders(std::move(with_short), "", short_prefix), short_expected);
}

TEST(ForwardableHeadersTest, HeadersNamedByConnectionAreDroppedWhateverTheirCase) {
  // The Connection value is read while the kept headers move out: it must stay intact.
  http::HeaderList headers = {{"x-before", "1"},
                              {"connection", " X-Hop-One ,x-hop-two"},
                              {"x-hop-one", "a"},
                              {"x-middle", "2"},
                              {"x-hop-two", "b"},
                              {"x-after", "3"}};
  const http::HeaderList expected = {{"x-before", "1"}, {"x-middle", "2"}, {"x-after", "3"}};
  EXPECT_EQ(Forward(std::move(headers)), expected);
}

TEST(ForwardableHeadersTest, EveryConnectionLineNamesHeaders) {
  // Two Connection lines make one list (RFC 9110 §5.3): a header named in the second is as
  // hop-by-hop as one named in the first.
  http::HeaderList headers = {{"connection", "keep-alive"},
                              {"x-first", "1"},
                              {"connection", "\tX-Secret-Hop"},
                              {"x-secret-hop", "v1"},
                              {"x-kept", "2"}};
  const http::HeaderList expected = {{"x-first", "1"}, {"x-kept", "2"}};
  EXPECT_EQ(Forward(std::move(headers)), expected);
}

}  // namespace
}  // namespace keygate::proxy
