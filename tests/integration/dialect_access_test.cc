// Who may do what (spec §2) on every route of the OpenRouter and router-keys v2 dialects: the
// tenant boundary (another org's key answers 404 exactly like a missing one), service keys
// (403 on management, 200 on GET /api/v1/key), disabled provisioning keys (401 everywhere),
// workspace keys (403 to a provisioning key, visible to the owner), missing credentials (401).
#include <gtest/gtest.h>

#include "integration/dialect_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

struct Route {
  std::string method;
  std::string path;
  std::string body;
};

// Every new route that names a key, aimed at `id`.
std::vector<Route> KeyRoutes(const std::string& id) {
  return {
      {"GET", "/api/v1/keys/" + id, ""},
      {"PATCH", "/api/v1/keys/" + id, R"({"name":"taken"})"},
      {"POST", "/api/v1/keys/" + id + "/rotate", R"({"grace_period_seconds":60})"},
      {"DELETE", "/api/v1/keys/" + id, ""},
      {"GET", "/v2/api-keys/" + id, ""},
      {"PATCH", "/v2/api-keys/" + id, R"({"name":"taken"})"},
      {"POST", "/v2/api-keys/" + id + "/rotate", R"({"grace_period_seconds":60})"},
      {"DELETE", "/v2/api-keys/" + id, ""},
  };
}

// Every new management route, including lists and creates.
std::vector<Route> ManagementRoutes(const std::string& id) {
  std::vector<Route> routes = KeyRoutes(id);
  routes.push_back({"GET", "/api/v1/keys", ""});
  routes.push_back({"GET", "/api/v1/keys/", ""});
  routes.push_back({"POST", "/api/v1/keys", R"({"name":"x"})"});
  routes.push_back({"GET", "/v2/api-keys", ""});
  routes.push_back({"POST", "/v2/api-keys", R"({"name":"x"})"});
  return routes;
}

class DialectAccessTest : public DialectTest {
 protected:
  // The status of `route` with `bearer`, checked to be in the route's dialect error shape.
  int StatusOf(const Route& route, const std::string& bearer) {
    Reply reply = Call(route.method, route.path, route.body, bearer);
    if (reply.status >= 400) {
      json::object body = Obj(reply);
      const bool v2 = route.path.rfind("/v2/", 0) == 0;
      if (v2) {
        EXPECT_EQ(body["code"], json::value(std::to_string(reply.status))) << reply.body;
      } else {
        EXPECT_EQ(body["error"].as_object()["code"], reply.status) << reply.body;
      }
    }
    return reply.status;
  }
};

TEST_F(DialectAccessTest, AnotherOrgsKeyIsNotFoundOnEveryRouteLikeAMissingOne) {
  json::object foreign_record = V2Create(b_.pk, R"({"name":"b-key","tags":["b"]})");
  const std::string foreign = Str(foreign_record["id"]);
  const std::string missing(64, 'a');
  for (const std::string& target : {foreign, missing}) {
    for (const std::string& bearer : {a_.pk, a_.owner_key}) {
      for (const Route& route : KeyRoutes(target)) {
        EXPECT_EQ(StatusOf(route, bearer), 404) << route.method << " " << route.path;
      }
    }
  }
  // Lists never show another org's keys.
  EXPECT_EQ(Obj(Call("GET", "/api/v1/keys", "", a_.pk))["data"].as_array().size(), 0u);
  EXPECT_EQ(Obj(Call("GET", "/v2/api-keys", "", a_.owner_key))["data"].as_array().size(), 0u);
  // And b's key is untouched.
  Reply b_view = Call("GET", "/v2/api-keys/" + foreign, "", b_.pk);
  ASSERT_EQ(b_view.status, 200) << b_view.body;
  EXPECT_EQ(Obj(b_view)["name"], "b-key");
  EXPECT_EQ(Call("GET", "/api/v1/key", "", Str(foreign_record["token"])).status, 200);
}

TEST_F(DialectAccessTest, ServiceKeysGet403OnManagementRoutesAndMayReadThemselves) {
  json::object created = V2Create(a_.pk, R"({"name":"svc"})");
  const std::string secret = Str(created["token"]);
  for (const Route& route : ManagementRoutes(Str(created["id"]))) {
    EXPECT_EQ(StatusOf(route, secret), 403) << route.method << " " << route.path;
  }
  EXPECT_EQ(Call("GET", "/api/v1/key", "", secret).status, 200);
}

TEST_F(DialectAccessTest, ADisabledProvisioningKeyGets401EverywhereUntilEnabledAgain) {
  const std::string id = OrCreateHash(a_, "made-before");
  ASSERT_EQ(Call("PATCH", "/api/owner/provisioning-keys/" + a_.pk_id, R"({"disabled":true})",
                 a_.owner_key)
                .status,
            200);
  for (const Route& route : ManagementRoutes(id)) {
    EXPECT_EQ(StatusOf(route, a_.pk), 401) << route.method << " " << route.path;
  }
  EXPECT_EQ(StatusOf({"GET", "/api/v1/key", ""}, a_.pk), 401);
  // The keys it made keep working, and the owner still manages them.
  EXPECT_EQ(Call("GET", "/api/v1/keys/" + id, "", a_.owner_key).status, 200);
  ASSERT_EQ(Call("PATCH", "/api/owner/provisioning-keys/" + a_.pk_id, R"({"disabled":false})",
                 a_.owner_key)
                .status,
            200);
  EXPECT_EQ(Call("GET", "/api/v1/keys/" + id, "", a_.pk).status, 200);
  EXPECT_EQ(Call("GET", "/v2/api-keys/" + id, "", a_.pk).status, 200);
}

TEST_F(DialectAccessTest, ProvisioningKeysCannotTouchWorkspaceKeysButOwnersCan) {
  Reply made = Call("POST", "/api/owner/keys", R"({"name":"console-key"})", a_.owner_key);
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string workspace = Str(Obj(made)["data"].as_object()["hash"]);
  for (const Route& route : KeyRoutes(workspace)) {
    EXPECT_EQ(StatusOf(route, a_.pk), 403) << route.method << " " << route.path;
  }
  EXPECT_EQ(StatusOf({"GET", "/v2/api-keys?source=workspace", ""}, a_.pk), 403);
  // A provisioning key's OpenRouter list shows router keys only; the owner's shows both.
  OrCreateHash(a_, "router-key");
  EXPECT_EQ(Obj(Call("GET", "/api/v1/keys", "", a_.pk))["data"].as_array().size(), 1u);
  EXPECT_EQ(Obj(Call("GET", "/api/v1/keys", "", a_.owner_key))["data"].as_array().size(), 2u);
  Reply listed = Call("GET", "/v2/api-keys?source=workspace", "", a_.owner_key);
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(Obj(listed)["data"].as_array().size(), 1u);
  EXPECT_EQ(Obj(listed)["data"].as_array()[0].as_object()["source"], "workspace");
  Reply patched = Call("PATCH", "/v2/api-keys/" + workspace, R"({"active":false})", a_.owner_key);
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(Obj(patched)["status"], "DISABLED");
  Reply rotated = Call("POST", "/api/v1/keys/" + workspace + "/rotate", "", a_.owner_key);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  EXPECT_EQ(Obj(rotated)["data"].as_object()["source"], "workspace");
}

TEST_F(DialectAccessTest, MissingOrUnknownCredentialsAre401OnEveryRoute) {
  const std::string id = OrCreateHash(a_, "target");
  std::vector<Route> routes = ManagementRoutes(id);
  routes.push_back({"GET", "/api/v1/key", ""});
  for (const Route& route : routes) {
    EXPECT_EQ(StatusOf(route, ""), 401) << route.method << " " << route.path;
    EXPECT_EQ(StatusOf(route, "pk-kg-notakey"), 401) << route.method << " " << route.path;
  }
  // Nothing was created or changed by the refused calls.
  Reply target = Call("GET", "/api/v1/keys/" + id, "", a_.pk);
  EXPECT_EQ(Obj(target)["data"].as_object()["name"], "target");
  EXPECT_EQ(Obj(Call("GET", "/api/v1/keys", "", a_.pk))["data"].as_array().size(), 1u);
}

}  // namespace
}  // namespace keygate::testing
