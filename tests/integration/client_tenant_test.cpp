// torii::Client with ClientOptions::tenant against a real toriid (issue 26):
// one Client per tenant on one daemon. The same email signs up in two
// tenants as two users, a session of one tenant is not_found in the other,
// and a client naming a tenant nobody created gets not_found.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "daemon_process.h"
#include "torii/client.h"

namespace torii {
namespace {

using json = nlohmann::json;
using test::DaemonProcess;

Client ClientIn(const DaemonProcess& d, const std::string& tenant) {
  ClientOptions o;
  o.endpoints = {d.request_endpoint()};
  o.default_timeout_ms = 10000;
  o.tenant = tenant;
  auto c = Client::Create(o);
  if (!c.ok()) throw std::runtime_error(c.error().ToString());
  return std::move(c).value();
}

json Ok(Result<json> r, const char* what) {
  EXPECT_TRUE(r.ok()) << what << ": " << (r.ok() ? "" : r.error().ToString());
  return r.ok() ? *r : json();
}

TEST(ClientTenant, OneClientPerTenantKeepsUsersAndSessionsApart) {
  DaemonProcess d;
  Client plain = ClientIn(d, "");
  Ok(plain.CallJson("create_tenant", {{"name", "acme"}}), "create_tenant");
  Client acme = ClientIn(d, "acme");
  Client dflt = ClientIn(d, "default");  // naming the default tenant is the same as naming none

  json ua = Ok(acme.CallJson("create_user", {{"email", "ann@example.com"}}), "create_user in acme");
  json ud = Ok(plain.CallJson("create_user", {{"email", "ANN@example.com"}}), "create_user in default");
  ASSERT_NE(ua["id"], ud["id"]);
  auto again = acme.CallJson("create_user", {{"email", "Ann@Example.com"}});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kDuplicate) << "unique per tenant";
  EXPECT_EQ(Ok(acme.CallJson("get_user_by_email", {{"email", "ann@example.com"}}), "by email")["id"], ua["id"]);
  EXPECT_EQ(Ok(dflt.CallJson("get_user_by_email", {{"email", "ann@example.com"}}), "by email")["id"], ud["id"]);
  auto cross = plain.CallJson("get_user", {{"id", ua["id"]}});
  ASSERT_FALSE(cross.ok());
  EXPECT_EQ(cross.error().code(), Code::kNotFound);

  json sa = Ok(acme.CallJson("create_session", {{"user_id", ua["id"]}, {"ttl_s", 600}}), "create_session");
  json sd = Ok(plain.CallJson("create_session", {{"user_id", ud["id"]}, {"ttl_s", 600}}), "create_session");
  std::string ta = sa["token"], td = sd["token"];
  // Each session validates in its tenant, by token and by id, and nowhere else.
  EXPECT_EQ(Ok(acme.CallJson("get_session", {{"token", ta}}), "acme's session")["user_id"], ua["id"]);
  EXPECT_EQ(Ok(dflt.CallJson("get_session", {{"token", td}}), "default's session")["user_id"], ud["id"]);
  for (auto* c : {&plain, &dflt}) {
    for (json args : {json{{"token", ta}}, json{{"id", sa["id"]}}}) {
      auto r = c->CallJson("get_session", args);
      ASSERT_FALSE(r.ok()) << args.dump();
      EXPECT_EQ(r.error().code(), Code::kNotFound) << args.dump();
      auto del = c->CallJson("delete_session", args);
      ASSERT_FALSE(del.ok()) << args.dump();
      EXPECT_EQ(del.error().code(), Code::kNotFound) << args.dump();
    }
  }
  auto theirs = acme.CallJson("get_session", {{"token", td}});
  ASSERT_FALSE(theirs.ok());
  EXPECT_EQ(theirs.error().code(), Code::kNotFound);
  // The failed deletes changed nothing.
  EXPECT_EQ(Ok(acme.CallJson("get_session", {{"token", ta}}), "still there")["id"], sa["id"]);
  // A session for another tenant's user: that user is not there.
  auto foreign = acme.CallJson("create_session", {{"user_id", ud["id"]}, {"ttl_s", 600}});
  ASSERT_FALSE(foreign.ok());
  EXPECT_TRUE(foreign.error().code() == Code::kNotFound || foreign.error().code() == Code::kForeignKey)
      << foreign.error().ToString();

  // A tenant nobody created.
  Client ghost = ClientIn(d, "ghost");
  auto g = ghost.CallJson("get_user_by_email", {{"email", "ann@example.com"}});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), Code::kNotFound);
  EXPECT_NE(g.error().message().find("ghost"), std::string::npos) << g.error().message();
}

}  // namespace
}  // namespace torii
