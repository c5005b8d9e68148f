#include "proxy/upstream_client.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace keygate::proxy {
namespace {

config::ProviderConfig Provider(const std::string& base_url, const std::string& key_env = "") {
  config::ProviderConfig provider;
  provider.name = "p";
  provider.base_url = base_url;
  provider.api_key_env = key_env;
  provider.headers = {{"OpenAI-Beta", "assistants=v2"}};
  return provider;
}

const char* FakeEnv(const char* name) {
  if (std::strcmp(name, "EMPTY_KEY") == 0) return "";
  return std::strcmp(name, "P_KEY") == 0 ? "secret-value" : nullptr;
}

TEST(UpstreamTargetTest, ResolvesSchemeHostPortAndPath) {
  auto https = MakeUpstreamTarget(Provider("https://api.openai.com/v1/"), FakeEnv);
  ASSERT_TRUE(https.ok());
  EXPECT_TRUE(https->tls);
  EXPECT_EQ(https->host, "api.openai.com");
  EXPECT_EQ(https->port, 443);
  EXPECT_EQ(https->host_header, "api.openai.com");
  EXPECT_EQ(https->base_path, "/v1");
  EXPECT_EQ(https->PoolKey(), "https://api.openai.com:443");
  EXPECT_EQ(https->pool_key, "https://api.openai.com:443");  // made once, for every call
  EXPECT_EQ(https->idle_timeout, std::chrono::milliseconds(60000));  // the default
  config::ProviderConfig vllm = Provider("http://127.0.0.1:9090");
  vllm.idle_timeout_ms = 4000;  // below uvicorn's 5 s keep-alive
  EXPECT_EQ(MakeUpstreamTarget(vllm, FakeEnv)->idle_timeout, std::chrono::milliseconds(4000));
  auto http = MakeUpstreamTarget(Provider("http://127.0.0.1:9090"), FakeEnv);
  ASSERT_TRUE(http.ok());
  EXPECT_FALSE(http->tls);
  EXPECT_EQ(http->port, 9090);
  EXPECT_EQ(http->base_path, "");
  EXPECT_EQ(http->host_header, "127.0.0.1:9090");
  auto v6 = MakeUpstreamTarget(Provider("http://[::1]:8000/openai/v1"), FakeEnv);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8000);
  EXPECT_EQ(v6->host_header, "[::1]:8000");
  EXPECT_EQ(v6->base_path, "/openai/v1");
}

TEST(UpstreamTargetTest, RefusesMalformedUrls) {
  for (const char* url : {"ftp://x", "http://", "http://:80", "http://host:99999", "http://[::1",
                          "http://host:12ab", "api.openai.com"}) {
    EXPECT_FALSE(MakeUpstreamTarget(Provider(url), FakeEnv).ok()) << url;
  }
}

TEST(UpstreamTargetTest, TheApiKeyComesFromTheEnvironmentAfterTheProvidersHeaders) {
  auto target = MakeUpstreamTarget(Provider("https://x/v1", "P_KEY"), FakeEnv);
  ASSERT_TRUE(target.ok());
  ASSERT_EQ(target->headers.size(), 2u);
  EXPECT_EQ(target->headers[0].first, "OpenAI-Beta");
  EXPECT_EQ(target->headers[1].second, "Bearer secret-value");
  EXPECT_TRUE(target->unusable_reason.empty());
}

// Audit V: credentials written among a provider's headers are secrets an upstream must not
// echo to a caller, as its API key is.
TEST(UpstreamTargetTest, CredentialsAmongTheHeadersAreSecretsToo) {
  config::ProviderConfig provider = Provider("https://x/v1", "P_KEY");
  provider.headers = {{"Authorization", "Bearer  literal-bearer-1"},
                      {"X-Api-Key", "x-api-key-value-1"},
                      {"OCP-Apim-Subscription-Key", "azure-value-1"},
                      {"x-auth-token", "Token=abc-def-ghi"},
                      {"Cookie", "a=b; session=xyz"},
                      {"api-key", "short"},  // shorter than any secret looked for
                      {"X-Title", "my-application-name"},
                      {"x-keygate-env", "production"},  // "keygate" is no "key" (audit X)
                      {"x-portkey-provider", "azure-openai"},
                      {"X-JWT-Assertion", "eyJhbGciOiJIUzI1NiJ9"},
                      {"HTTP-Referer", "https://example.com/app"}};
  auto target = MakeUpstreamTarget(provider, FakeEnv);
  ASSERT_TRUE(target.ok());
  const std::vector<std::string> expected = {"literal-bearer-1", "x-api-key-value-1",
                                             "azure-value-1",    "Token=abc-def-ghi",
                                             "a=b; session=xyz", "eyJhbGciOiJIUzI1NiJ9",
                                             "secret-value"};
  EXPECT_EQ(target->secrets, expected);
  // A provider without any: nothing to look for on its answers.
  EXPECT_TRUE(MakeUpstreamTarget(Provider("https://x/v1"), FakeEnv)->secrets.empty());
}

TEST(UpstreamTargetTest, AMissingApiKeyMakesTheProviderUnusableWithoutStoppingKeygate) {
  auto target = MakeUpstreamTarget(Provider("https://x/v1", "UNSET_KEY"), FakeEnv);
  ASSERT_TRUE(target.ok());
  EXPECT_NE(target->unusable_reason.find("UNSET_KEY is not set"), std::string::npos);
  EXPECT_EQ(target->headers.size(), 1u);
  // Set, but to nothing: said so (audit V: "is not set" misled).
  auto empty = MakeUpstreamTarget(Provider("https://x/v1", "EMPTY_KEY"), FakeEnv);
  ASSERT_TRUE(empty.ok());
  EXPECT_NE(empty->unusable_reason.find("EMPTY_KEY is empty"), std::string::npos);
}

}  // namespace
}  // namespace keygate::proxy
