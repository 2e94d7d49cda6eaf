// The account half of PROTOCOL.md section 5 (issue 19) through the real
// toriid: users' name and locked_at, get_or_create_user, OAuth accounts and
// state, passkeys and challenges. Success and error cases of every
// operation (a wrong type and an oversize argument each), single use under
// concurrency, the counter rule, cascades, row-level security (actor
// requests and a plain SQL role granted torii_actor), events from plain
// SQL, and no verifier or challenge in audit rows, events or the log.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "event_sub.h"
#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

class AccountsTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    DaemonOptions o;
    o.settings["events.heartbeat_ms"] = "100";
    return o;
  }

  // A subscriber known to be connected: it has seen a heartbeat.
  std::unique_ptr<EventSub> Subscribe(std::vector<std::string> prefixes) {
    prefixes.push_back("torii.heartbeat");
    auto sub = std::make_unique<EventSub>(daemon().event_endpoint(), prefixes);
    EXPECT_FALSE(sub->WaitForTopic("torii.heartbeat", 5000).topic.empty()) << "no heartbeat";
    return sub;
  }

  std::string Scalar1(const std::string& sql) {
    PgConn c = Connect(daemon().database_url());
    return Scalar(c.get(), sql);
  }

  Reply CallAs(const std::string& actor, const std::string& op, V args) {
    return client().Call(Req{.op = V(op), .args = std::move(args), .actor = V(actor)});
  }

  Value Link(const std::string& user_id, const std::string& provider, const std::string& subject) {
    Reply r = Call("link_oauth_account", V::Map({{"user_id", user_id}, {"provider", provider}, {"subject", subject}}));
    EXPECT_TRUE(r.ok()) << r.ToString();
    return r.result();
  }

  Value AddPasskey(const std::string& user_id, const std::string& cred, int64_t sign_count = 0) {
    Reply r = Call("add_passkey", V::Map({{"user_id", user_id},
                                          {"credential_id", V::Bin(cred)},
                                          {"public_key", V::Bin("pk-of-" + cred)},
                                          {"sign_count", sign_count}}));
    EXPECT_TRUE(r.ok()) << r.ToString();
    return r.result();
  }
};

// The bytes of a msgpack bin value ("" for anything else).
std::string Bin(const Value& v) {
  const msgpack::object* o = v.object();
  if (o == nullptr || o->type != msgpack::type::BIN) return "";
  return std::string(o->via.bin.ptr, o->via.bin.size);
}

bool IsBin(const Value& v) { return v.object() && v.object()->type == msgpack::type::BIN; }

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Runs `n` threads, each with its own connection, released at once.
template <typename F>
std::vector<Reply> Concurrently(const std::string& endpoint, int n, F call) {
  std::vector<Reply> replies(n);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; i++) {
    threads.emplace_back([&, i] {
      WireClient c(endpoint);
      c.Call("ping");  // connected before the race starts
      ready++;
      while (ready.load() < n) std::this_thread::yield();
      replies[i] = call(c, i);
    });
  }
  for (auto& t : threads) t.join();
  return replies;
}

// ---- users: name, locked_at --------------------------------------------------

// create_user and update_user take email_verified_at (a Torii NewUser may
// come verified, and Torii's update(&User) replaces it, clearing included).
TEST_F(AccountsTest, EmailVerifiedAtOnCreateAndUpdate) {
  int64_t at_ms = NowMs() - 5000;
  Reply c = Call("create_user", V::Map({{"email", "verified@example.com"}, {"email_verified_at", at_ms}}));
  ASSERT_TRUE(c.ok()) << c.ToString();
  EXPECT_EQ(c.result()["email_verified_at"].micros(), at_ms * 1000);
  std::string id = c.result()["id"].str();
  Reply cl = Call("update_user", V::Map({{"id", id}, {"email_verified_at", nullptr}}));
  ASSERT_TRUE(cl.ok()) << cl.ToString();
  EXPECT_TRUE(cl.result()["email_verified_at"].is_nil());
  Reply set = Call("update_user", V::Map({{"id", id}, {"email_verified_at", at_ms + 1}}));
  ASSERT_TRUE(set.ok()) << set.ToString();
  EXPECT_EQ(set.result()["email_verified_at"].micros(), (at_ms + 1) * 1000);
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"email_verified_at", "yesterday"}})).code(), "bad_request");
  Value plain = NewUser();
  EXPECT_TRUE(plain["email_verified_at"].is_nil());
}

TEST_F(AccountsTest, UserNameAndLockedAt) {
  Reply c = Call("create_user", V::Map({{"email", "named@example.com"}, {"name", "Ann Example"}}));
  ASSERT_TRUE(c.ok()) << c.ToString();
  std::string id = c.result()["id"].str();
  EXPECT_EQ(c.result()["name"].str(), "Ann Example");
  EXPECT_TRUE(c.result()["locked_at"].is_nil());
  Value plain = NewUser();
  EXPECT_TRUE(plain["name"].is_nil());
  EXPECT_TRUE(plain["locked_at"].is_nil());

  auto sub = Subscribe({"user."});
  int64_t lock_ms = NowMs() - 1000;
  Reply u = Call("update_user", V::Map({{"id", id}, {"locked_at", lock_ms}, {"name", "Ann B"}}));
  ASSERT_TRUE(u.ok()) << u.ToString();
  EXPECT_EQ(u.result()["name"].str(), "Ann B");
  EXPECT_EQ(u.result()["locked_at"].micros(), lock_ms * 1000);
  Event e = sub->WaitForTopic("user.updated", 5000);
  ASSERT_FALSE(e.topic.empty());
  std::set<std::string> changed;
  for (size_t i = 0; i < e.body["changed"].size(); i++) changed.insert(e.body["changed"][i].str());
  EXPECT_TRUE(changed.count("locked_at") && changed.count("name")) << e.body.ToString();

  Reply g = Call("get_user", V::Map({{"id", id}}));
  EXPECT_EQ(g.result()["locked_at"].micros(), lock_ms * 1000);
  Reply l = Call("list_users");
  ASSERT_TRUE(l.ok());
  bool seen = false;
  for (size_t i = 0; i < l.result()["users"].size(); i++) {
    if (l.result()["users"][i]["id"].str() == id) {
      seen = true;
      EXPECT_EQ(l.result()["users"][i]["name"].str(), "Ann B");
    }
  }
  EXPECT_TRUE(seen);

  // nil clears either; a name alone is enough to update.
  Reply cl = Call("update_user", V::Map({{"id", id}, {"locked_at", nullptr}, {"name", nullptr}}));
  ASSERT_TRUE(cl.ok()) << cl.ToString();
  EXPECT_TRUE(cl.result()["locked_at"].is_nil());
  EXPECT_TRUE(cl.result()["name"].is_nil());
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"name", "N"}})).result()["name"].str(), "N");

  // Errors change nothing.
  std::string long_name(256, 'n');
  EXPECT_EQ(Call("create_user", V::Map({{"email", "x@example.com"}, {"name", long_name}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_user", V::Map({{"email", "x@example.com"}, {"name", 5}})).code(), "bad_request");
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"name", long_name}})).code(), "invalid_argument");
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"locked_at", "yesterday"}})).code(), "bad_request");
  EXPECT_EQ(Call("get_user_by_email", V::Map({{"email", "x@example.com"}})).code(), "not_found");
  EXPECT_EQ(Call("get_user", V::Map({{"id", id}})).result()["name"].str(), "N");
  // The 255-byte limit holds in the database too.
  EXPECT_EQ(Call("create_user", V::Map({{"email", "y@example.com"}, {"name", std::string(255, 'n')}})).code(), "");
}

// ---- get_or_create_user ------------------------------------------------------

TEST_F(AccountsTest, GetOrCreateUser) {
  Reply a = Call("get_or_create_user", V::Map({{"email", "Goc@Example.com"}, {"name", "G"},
                                              {"metadata", V::Map({{"k", "v"}})}}));
  ASSERT_TRUE(a.ok()) << a.ToString();
  EXPECT_TRUE(a.result()["created"].boolean());
  Value u = a.result()["user"];
  EXPECT_EQ(u["email"].str(), "Goc@Example.com");
  EXPECT_EQ(u["name"].str(), "G");
  EXPECT_EQ(u["metadata"]["k"].str(), "v");
  EXPECT_FALSE(u.has("password_hash")) << "not one of the results that carry the hash";
  std::string audits = Scalar1("SELECT count(*) FROM audit_logs");

  // Found case-insensitively; nothing is written (no audit row, no event).
  Reply b = Call("get_or_create_user", V::Map({{"email", "goc@example.COM"}, {"name", "other"}}));
  ASSERT_TRUE(b.ok()) << b.ToString();
  EXPECT_FALSE(b.result()["created"].boolean());
  EXPECT_EQ(b.result()["user"]["id"].str(), u["id"].str());
  EXPECT_EQ(b.result()["user"]["name"].str(), "G") << "an existing user is returned as it is";
  EXPECT_EQ(Scalar1("SELECT count(*) FROM audit_logs"), audits);

  // With an id: the Torii id rule's UUID.
  std::string id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  Reply c = Call("get_or_create_user", V::Map({{"email", "byid@example.com"}, {"id", id}}));
  ASSERT_TRUE(c.ok()) << c.ToString();
  EXPECT_EQ(c.result()["user"]["id"].str(), id);
  EXPECT_EQ(Call("get_or_create_user", V::Map({{"email", "other@example.com"}, {"id", id}})).code(), "duplicate")
      << "an id taken by another email";

  EXPECT_EQ(Call("get_or_create_user", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_or_create_user", V::Map({{"email", "nope"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_or_create_user", V::Map({{"email", 7}})).code(), "bad_request");
  EXPECT_EQ(Call("get_or_create_user", V::Map({{"email", std::string(250, 'a') + "@b.io"}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("get_or_create_user", V::Map({{"email", "z@example.com"}, {"name", std::string(300, 'n')}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("get_or_create_user", V::Map({{"email", "z@example.com"}, {"password_hash", "h"}})).code(),
            "invalid_argument");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM users WHERE email = 'z@example.com'"), "0");
}

TEST_F(AccountsTest, ConcurrentGetOrCreateUserMakesOneUser) {
  for (int round = 0; round < 3; round++) {
    std::string email = "race" + std::to_string(round) + "@example.com";
    auto replies = Concurrently(daemon().request_endpoint(), 10, [&](WireClient& c, int i) {
      // Differently cased each: one user all the same.
      std::string e = email;
      if (i % 2) e[0] = 'R';
      return c.Call("get_or_create_user", V::Map({{"email", e}}));
    });
    std::set<std::string> ids;
    int created = 0;
    for (const auto& r : replies) {
      ASSERT_TRUE(r.ok()) << r.ToString();
      ids.insert(r.result()["user"]["id"].str());
      created += r.result()["created"].boolean();
    }
    EXPECT_EQ(ids.size(), 1u);
    EXPECT_EQ(created, 1);
    EXPECT_EQ(Scalar1("SELECT count(*) FROM users WHERE lower(email) = '" + email + "'"), "1");
  }
}

// ---- OAuth accounts ----------------------------------------------------------

TEST_F(AccountsTest, LinkGetListUnlinkOAuthAccounts) {
  Value u = NewUser();
  Value other = NewUser();
  std::string uid = u["id"].str();
  Value a = Link(uid, "github", "12345");
  EXPECT_EQ(Sorted(a.keys()), Sorted({"user_id", "provider", "subject", "created_at", "updated_at", "user_torii_id"}));
  EXPECT_EQ(a["user_id"].str(), uid);
  EXPECT_EQ(a["provider"].str(), "github");
  EXPECT_EQ(a["subject"].str(), "12345");
  EXPECT_TRUE(a["created_at"].is_timestamp());

  // The same triple again: the existing link, unchanged.
  Value again = Link(uid, "github", "12345");
  EXPECT_EQ(again["created_at"].micros(), a["created_at"].micros());
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_accounts"), "1");
  // The pair for another user: duplicate, nothing changes.
  Reply dup = Call("link_oauth_account",
                   V::Map({{"user_id", other["id"].str()}, {"provider", "github"}, {"subject", "12345"}}));
  EXPECT_EQ(dup.code(), "duplicate") << dup.ToString();
  EXPECT_EQ(Scalar1("SELECT user_id::text FROM oauth_accounts"), uid);
  // Same subject at another provider is another account.
  Link(uid, "google.com", "12345");
  Link(uid, "github", "777");

  Reply g = Call("get_oauth_account", V::Map({{"provider", "github"}, {"subject", "12345"}}));
  ASSERT_TRUE(g.ok()) << g.ToString();
  EXPECT_EQ(g.result()["user_id"].str(), uid);
  Reply gu = Call("get_user_by_oauth", V::Map({{"provider", "github"}, {"subject", "12345"}}));
  ASSERT_TRUE(gu.ok()) << gu.ToString();
  EXPECT_EQ(gu.result()["id"].str(), uid);
  EXPECT_EQ(gu.result()["email"].str(), u["email"].str());
  EXPECT_FALSE(gu.result().has("password_hash"));
  EXPECT_EQ(Call("get_oauth_account", V::Map({{"provider", "github"}, {"subject", "none"}})).code(), "not_found");
  EXPECT_EQ(Call("get_user_by_oauth", V::Map({{"provider", "gitlab"}, {"subject", "12345"}})).code(), "not_found");

  Reply l = Call("list_oauth_accounts", V::Map({{"user_id", uid}}));
  ASSERT_TRUE(l.ok()) << l.ToString();
  ASSERT_EQ(l.result()["accounts"].size(), 3u);
  EXPECT_EQ(l.result()["accounts"][0]["subject"].str(), "12345") << "oldest first";
  EXPECT_EQ(l.result()["accounts"][0]["provider"].str(), "github");
  EXPECT_EQ(l.result()["accounts"][2]["subject"].str(), "777");
  EXPECT_EQ(Call("list_oauth_accounts", V::Map({{"user_id", other["id"].str()}})).result()["accounts"].size(), 0u);

  // unlink: one subject, then the rest of a provider.
  Reply un = Call("unlink_oauth_account", V::Map({{"user_id", uid}, {"provider", "github"}, {"subject", "777"}}));
  ASSERT_TRUE(un.ok()) << un.ToString();
  EXPECT_EQ(un.result()["deleted"].u64(), 1u);
  EXPECT_EQ(Call("unlink_oauth_account", V::Map({{"user_id", other["id"].str()}, {"provider", "github"}}))
                .result()["deleted"]
                .u64(),
            0u)
      << "another user's pair is not unlinked";
  EXPECT_EQ(Call("unlink_oauth_account", V::Map({{"user_id", uid}, {"provider", "github"}})).result()["deleted"].u64(),
            1u);
  EXPECT_EQ(Call("get_oauth_account", V::Map({{"provider", "github"}, {"subject", "12345"}})).code(), "not_found");
  EXPECT_EQ(Call("list_oauth_accounts", V::Map({{"user_id", uid}})).result()["accounts"].size(), 1u);
  // After an unlink the pair is free for another user.
  Link(other["id"].str(), "github", "12345");
}

TEST_F(AccountsTest, OAuthAccountErrors) {
  Value u = NewUser();
  std::string uid = u["id"].str();
  auto link = [&](V provider, V subject, V user = V()) {
    return Call("link_oauth_account", V::Map({{"user_id", user.Encode() == V().Encode() ? V(uid) : user},
                                              {"provider", provider},
                                              {"subject", subject}}))
        .code();
  };
  EXPECT_EQ(link("GitHub", "1"), "invalid_argument") << "upper case";
  EXPECT_EQ(link("git hub", "1"), "invalid_argument");
  EXPECT_EQ(link("", "1"), "invalid_argument");
  EXPECT_EQ(link(std::string(65, 'a'), "1"), "invalid_argument") << "oversize provider";
  EXPECT_EQ(link(std::string(64, 'a'), "1"), "") << "64 bytes is the limit";
  EXPECT_EQ(link("github", std::string(256, 's')), "invalid_argument") << "oversize subject";
  EXPECT_EQ(link("github", ""), "invalid_argument");
  EXPECT_EQ(link("github", 5), "bad_request") << "wrong type";
  EXPECT_EQ(link(5, "1"), "bad_request");
  EXPECT_EQ(link("github", V::Bin("1")), "bad_request");
  EXPECT_EQ(link("github", "1", "not-a-uuid"), "invalid_argument");
  EXPECT_EQ(link("github", "1", "0f8fad5b-d9cb-469f-a165-70867728950e"), "foreign_key") << "no such user";
  EXPECT_EQ(Call("link_oauth_account", V::Map({{"user_id", uid}, {"provider", "github"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("link_oauth_account", V::Map({{"user_id", uid}, {"provider", "github"}, {"subject", "1"},
                                              {"extra", 1}}))
                .code(),
            "invalid_argument");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_accounts"), "1");

  for (const char* op : {"get_oauth_account", "get_user_by_oauth"}) {
    SCOPED_TRACE(op);
    EXPECT_EQ(Call(op, V::Map({{"provider", "github"}})).code(), "invalid_argument");
    EXPECT_EQ(Call(op, V::Map({{"provider", "github"}, {"subject", 1}})).code(), "bad_request");
    EXPECT_EQ(Call(op, V::Map({{"provider", "github"}, {"subject", std::string(256, 's')}})).code(),
              "invalid_argument");
    EXPECT_EQ(Call(op, V::Map({{"provider", "Bad!"}, {"subject", "1"}})).code(), "invalid_argument");
  }
  EXPECT_EQ(Call("list_oauth_accounts", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_oauth_accounts", V::Map({{"user_id", 1}})).code(), "bad_request");
  EXPECT_EQ(Call("list_oauth_accounts", V::Map({{"user_id", "x"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("unlink_oauth_account", V::Map({{"user_id", uid}})).code(), "invalid_argument");
  EXPECT_EQ(Call("unlink_oauth_account", V::Map({{"user_id", uid}, {"provider", "github"}, {"subject", 2}})).code(),
            "bad_request");
  EXPECT_EQ(Call("unlink_oauth_account",
                 V::Map({{"user_id", uid}, {"provider", "github"}, {"subject", std::string(256, 's')}}))
                .code(),
            "invalid_argument");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_accounts"), "1");
}

// ---- OAuth state ---------------------------------------------------------------

TEST_F(AccountsTest, OAuthStateIsTakenOnce) {
  std::string verifier = "pkce-verifier-" + std::to_string(getpid()) + "-Zq8xV";
  Secret(verifier);
  int64_t before = NowMs();
  Reply p = Call("put_oauth_state", V::Map({{"state", "csrf-1"}, {"verifier", verifier}, {"ttl_s", 600}}));
  ASSERT_TRUE(p.ok()) << p.ToString();
  ASSERT_TRUE(p.result()["expires_at"].is_timestamp());
  EXPECT_GE(p.result()["expires_at"].micros() / 1000, before + 600 * 1000 - 5000);
  EXPECT_LE(p.result()["expires_at"].micros() / 1000, NowMs() + 600 * 1000 + 5000);

  // Replaced under the same state.
  std::string verifier2 = verifier + "-second";
  Secret(verifier2);
  ASSERT_TRUE(Call("put_oauth_state", V::Map({{"state", "csrf-1"}, {"verifier", verifier2}, {"ttl_s", 600}})).ok());
  Reply t = Call("take_oauth_state", V::Map({{"state", "csrf-1"}}));
  ASSERT_TRUE(t.ok()) << t.ToString();
  EXPECT_EQ(t.result()["verifier"].str(), verifier2);
  EXPECT_EQ(Call("take_oauth_state", V::Map({{"state", "csrf-1"}})).code(), "not_found") << "single use";
  EXPECT_EQ(Call("take_oauth_state", V::Map({{"state", "never"}})).code(), "not_found");

  // Expired: not found, and gone.
  ASSERT_TRUE(Call("put_oauth_state", V::Map({{"state", "old"}, {"verifier", verifier}, {"ttl_s", 600}})).ok());
  Sql("UPDATE oauth_states SET expires_at = now() - interval '1 second' WHERE state = 'old'");
  EXPECT_EQ(Call("take_oauth_state", V::Map({{"state", "old"}})).code(), "not_found");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_states"), "0");

  // Errors.
  auto put = [&](V state, V ver, V ttl) {
    return Call("put_oauth_state", V::Map({{"state", state}, {"verifier", ver}, {"ttl_s", ttl}})).code();
  };
  EXPECT_EQ(put("s", "v", 0), "invalid_argument");
  EXPECT_EQ(put("s", "v", -5), "invalid_argument");
  EXPECT_EQ(put("s", "v", int64_t{200LL * 366 * 24 * 3600}), "invalid_argument");
  EXPECT_EQ(put("s", "v", "60"), "bad_request");
  EXPECT_EQ(put(std::string(256, 's'), "v", 60), "invalid_argument") << "oversize state";
  EXPECT_EQ(put("s", std::string(256, 'v'), 60), "invalid_argument") << "oversize verifier";
  EXPECT_EQ(put("", "v", 60), "invalid_argument");
  EXPECT_EQ(put("s", "", 60), "invalid_argument");
  EXPECT_EQ(put(5, "v", 60), "bad_request");
  EXPECT_EQ(put("s", V::Bin("v"), 60), "bad_request");
  EXPECT_EQ(Call("put_oauth_state", V::Map({{"state", "s"}, {"verifier", "v"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("take_oauth_state", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("take_oauth_state", V::Map({{"state", 1}})).code(), "bad_request");
  EXPECT_EQ(Call("take_oauth_state", V::Map({{"state", std::string(256, 's')}})).code(), "invalid_argument");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_states"), "0");

  // Never in an audit row.
  EXPECT_EQ(Scalar1("SELECT count(*) FROM audit_logs WHERE coalesce(old_data::text, '') || "
                    "coalesce(new_data::text, '') LIKE '%pkce-verifier%'"),
            "0");
}

TEST_F(AccountsTest, ConcurrentTakesOfOneStateOrChallengeHaveOneWinner) {
  for (int round = 0; round < 3; round++) {
    std::string key = "race-" + std::to_string(round);
    ASSERT_TRUE(Call("put_oauth_state", V::Map({{"state", key}, {"verifier", "v" + key}, {"ttl_s", 60}})).ok());
    ASSERT_TRUE(
        Call("put_passkey_challenge", V::Map({{"challenge_id", key}, {"challenge", V::Bin("c" + key)}, {"ttl_s", 60}}))
            .ok());
    for (const char* op : {"take_oauth_state", "take_passkey_challenge"}) {
      SCOPED_TRACE(op);
      std::string k = std::string(op) == "take_oauth_state" ? "state" : "challenge_id";
      auto replies = Concurrently(daemon().request_endpoint(), 10,
                                  [&](WireClient& c, int) { return c.Call(op, V::Map({{k, key}})); });
      int won = 0, not_found = 0;
      for (const auto& r : replies) {
        if (r.ok()) won++;
        if (r.code() == "not_found") not_found++;
      }
      EXPECT_EQ(won, 1);
      EXPECT_EQ(not_found, 9);
    }
  }
}

// ---- passkeys -------------------------------------------------------------------

TEST_F(AccountsTest, PasskeyLifecycle) {
  Value u = NewUser();
  std::string uid = u["id"].str();
  std::string cred("\x00\x01\xfe\xff-cred", 8);
  Reply a = Call("add_passkey", V::Map({{"user_id", uid},
                                        {"credential_id", V::Bin(cred)},
                                        {"public_key", V::Bin(std::string("\x30\x59\x00pk", 5))},
                                        {"name", "YubiKey"}}));
  ASSERT_TRUE(a.ok()) << a.ToString();
  Value p = a.result();
  EXPECT_EQ(Sorted(p.keys()),
            Sorted({"credential_id", "user_id", "public_key", "name", "sign_count", "created_at", "last_used_at",
                    "user_torii_id"}));
  ASSERT_TRUE(IsBin(p["credential_id"]));
  EXPECT_EQ(Bin(p["credential_id"]), cred);
  EXPECT_EQ(Bin(p["public_key"]), std::string("\x30\x59\x00pk", 5));
  EXPECT_EQ(p["name"].str(), "YubiKey");
  EXPECT_EQ(p["sign_count"].u64(), 0u);
  EXPECT_TRUE(p["last_used_at"].is_nil());
  EXPECT_EQ(Call("add_passkey", V::Map({{"user_id", NewUser()["id"].str()},
                                        {"credential_id", V::Bin(cred)},
                                        {"public_key", V::Bin("k")}}))
                .code(),
            "duplicate");

  Reply g = Call("get_passkey", V::Map({{"credential_id", V::Bin(cred)}}));
  ASSERT_TRUE(g.ok()) << g.ToString();
  EXPECT_EQ(g.result()["user_id"].str(), uid);
  EXPECT_EQ(Call("get_passkey", V::Map({{"credential_id", V::Bin("nope")}})).code(), "not_found");

  AddPasskey(uid, "second", 10);
  Reply l = Call("list_passkeys", V::Map({{"user_id", uid}}));
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l.result()["passkeys"].size(), 2u);
  EXPECT_EQ(Bin(l.result()["passkeys"][0]["credential_id"]), cred) << "oldest first";
  EXPECT_EQ(l.result()["passkeys"][1]["sign_count"].u64(), 10u);

  Reply d = Call("delete_passkey", V::Map({{"credential_id", V::Bin(cred)}}));
  ASSERT_TRUE(d.ok()) << d.ToString();
  EXPECT_EQ(d.result()["deleted"].u64(), 1u);
  EXPECT_EQ(Call("delete_passkey", V::Map({{"credential_id", V::Bin(cred)}})).code(), "not_found");
  AddPasskey(uid, "third");
  Reply da = Call("delete_user_passkeys", V::Map({{"user_id", uid}}));
  ASSERT_TRUE(da.ok());
  EXPECT_EQ(da.result()["deleted"].u64(), 2u);
  EXPECT_EQ(Call("list_passkeys", V::Map({{"user_id", uid}})).result()["passkeys"].size(), 0u);
  // The public key never reaches the audit log.
  EXPECT_EQ(Scalar1("SELECT count(*) FROM audit_logs WHERE table_name = 'passkeys'"), "6");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM audit_logs WHERE table_name = 'passkeys' AND "
                    "(old_data ? 'public_key' OR new_data ? 'public_key')"),
            "0");
  Reply la = Call("list_audit", V::Map({{"table", "passkeys"}}));
  ASSERT_TRUE(la.ok()) << la.ToString();
  EXPECT_EQ(la.result()["entries"].size(), 6u);
}

TEST_F(AccountsTest, UsePasskeyCounterRule) {
  Value u = NewUser();
  std::string uid = u["id"].str();
  AddPasskey(uid, "counted", 5);
  auto use = [&](V count) {
    return Call("use_passkey", V::Map({{"credential_id", V::Bin("counted")}, {"sign_count", count}}));
  };
  Reply r = use(6);
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["sign_count"].u64(), 6u);
  ASSERT_TRUE(r.result()["last_used_at"].is_timestamp());
  int64_t used_at = r.result()["last_used_at"].micros();

  for (int64_t stale : {6, 3}) {
    Reply c = use(stale);
    EXPECT_EQ(c.code(), "conflict") << stale << " " << c.ToString();
  }
  Reply g = Call("get_passkey", V::Map({{"credential_id", V::Bin("counted")}}));
  EXPECT_EQ(g.result()["sign_count"].u64(), 6u) << "a conflict changes nothing";
  EXPECT_EQ(g.result()["last_used_at"].micros(), used_at);

  // 0 or no count: the authenticator keeps none; the stored count stays.
  Reply z = use(0);
  ASSERT_TRUE(z.ok()) << z.ToString();
  EXPECT_EQ(z.result()["sign_count"].u64(), 6u);
  Reply none = Call("use_passkey", V::Map({{"credential_id", V::Bin("counted")}}));
  ASSERT_TRUE(none.ok()) << none.ToString();
  EXPECT_EQ(use(int64_t{4294967295LL}).result()["sign_count"].u64(), 4294967295u);

  // A stored 0 accepts any count.
  AddPasskey(uid, "zero", 0);
  EXPECT_EQ(Call("use_passkey", V::Map({{"credential_id", V::Bin("zero")}, {"sign_count", 1}}))
                .result()["sign_count"]
                .u64(),
            1u);

  EXPECT_EQ(Call("use_passkey", V::Map({{"credential_id", V::Bin("missing")}, {"sign_count", 1}})).code(), "not_found");
  EXPECT_EQ(use(-1).code(), "invalid_argument");
  EXPECT_EQ(use(int64_t{4294967296LL}).code(), "invalid_argument");
  EXPECT_EQ(use("7").code(), "bad_request");

  // Concurrent uses with one count: exactly one succeeds.
  auto replies = Concurrently(daemon().request_endpoint(), 10, [&](WireClient& c, int) {
    return c.Call("use_passkey", V::Map({{"credential_id", V::Bin("zero")}, {"sign_count", 50}}));
  });
  int ok = 0, conflict = 0;
  for (const auto& x : replies) {
    ok += x.ok();
    conflict += x.code() == "conflict";
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(conflict, 9);
}

TEST_F(AccountsTest, PasskeyErrors) {
  std::string uid = NewUser()["id"].str();
  auto add = [&](V cred, V key, V extra_name = V(), V count = V()) {
    return Call("add_passkey", V::Map({{"user_id", uid},
                                       {"credential_id", cred},
                                       {"public_key", key},
                                       {"name", extra_name},
                                       {"sign_count", count}}))
        .code();
  };
  EXPECT_EQ(add("cred-as-string", V::Bin("k")), "bad_request") << "credential ids are binary";
  EXPECT_EQ(add(V::Bin("c"), "key-as-string"), "bad_request");
  EXPECT_EQ(add(V::Bin(std::string(1024, 'c')), V::Bin("k")), "invalid_argument") << "oversize credential id";
  EXPECT_EQ(add(V::Bin(""), V::Bin("k")), "invalid_argument");
  EXPECT_EQ(add(V::Bin("c"), V::Bin(std::string(4097, 'k'))), "invalid_argument") << "oversize public key";
  EXPECT_EQ(add(V::Bin("c"), V::Bin("k"), std::string(256, 'n')), "invalid_argument");
  EXPECT_EQ(add(V::Bin("c"), V::Bin("k"), 5), "bad_request");
  EXPECT_EQ(add(V::Bin("c"), V::Bin("k"), V(), -1), "invalid_argument");
  EXPECT_EQ(add(V::Bin("c"), V::Bin("k"), V(), "1"), "bad_request");
  EXPECT_EQ(Call("add_passkey", V::Map({{"credential_id", V::Bin("c")}, {"public_key", V::Bin("k")}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("add_passkey", V::Map({{"user_id", "0f8fad5b-d9cb-469f-a165-70867728950e"},
                                        {"credential_id", V::Bin("c")},
                                        {"public_key", V::Bin("k")}}))
                .code(),
            "foreign_key");
  EXPECT_EQ(add(V::Bin(std::string(1023, 'c')), V::Bin(std::string(4096, 'k'))), "") << "the limits themselves";
  EXPECT_EQ(Scalar1("SELECT count(*) FROM passkeys"), "1");

  for (const char* op : {"get_passkey", "delete_passkey", "use_passkey"}) {
    SCOPED_TRACE(op);
    EXPECT_EQ(Call(op, V::Map({})).code(), "invalid_argument");
    EXPECT_EQ(Call(op, V::Map({{"credential_id", "text"}})).code(), "bad_request");
    EXPECT_EQ(Call(op, V::Map({{"credential_id", V::Bin(std::string(1024, 'c'))}})).code(), "invalid_argument");
  }
  for (const char* op : {"list_passkeys", "delete_user_passkeys"}) {
    SCOPED_TRACE(op);
    EXPECT_EQ(Call(op, V::Map({})).code(), "invalid_argument");
    EXPECT_EQ(Call(op, V::Map({{"user_id", 3}})).code(), "bad_request");
    EXPECT_EQ(Call(op, V::Map({{"user_id", std::string(100, 'a')}})).code(), "invalid_argument");
  }
  EXPECT_EQ(Scalar1("SELECT count(*) FROM passkeys"), "1");
}

TEST_F(AccountsTest, PasskeyChallenges) {
  std::string uid = NewUser()["id"].str();
  std::string challenge = "challenge-bytes-" + std::to_string(getpid()) + "-Qm3";
  Secret(challenge);
  Reply p = Call("put_passkey_challenge",
                 V::Map({{"challenge_id", "reg-1"}, {"challenge", V::Bin(challenge)}, {"ttl_s", 300}, {"user_id", uid}}));
  ASSERT_TRUE(p.ok()) << p.ToString();
  EXPECT_TRUE(p.result()["expires_at"].is_timestamp());
  Reply t = Call("take_passkey_challenge", V::Map({{"challenge_id", "reg-1"}}));
  ASSERT_TRUE(t.ok()) << t.ToString();
  EXPECT_EQ(Bin(t.result()["challenge"]), challenge);
  EXPECT_EQ(t.result()["user_id"].str(), uid);
  EXPECT_EQ(Call("take_passkey_challenge", V::Map({{"challenge_id", "reg-1"}})).code(), "not_found") << "single use";

  // A str challenge is accepted; no user is nil; a put replaces.
  ASSERT_TRUE(Call("put_passkey_challenge", V::Map({{"challenge_id", "login"}, {"challenge", "first"}, {"ttl_s", 300}}))
                  .ok());
  ASSERT_TRUE(
      Call("put_passkey_challenge", V::Map({{"challenge_id", "login"}, {"challenge", challenge}, {"ttl_s", 300}})).ok());
  Reply t2 = Call("take_passkey_challenge", V::Map({{"challenge_id", "login"}}));
  ASSERT_TRUE(t2.ok()) << t2.ToString();
  EXPECT_EQ(Bin(t2.result()["challenge"]), challenge) << "returned as binary";
  EXPECT_TRUE(t2.result()["user_id"].is_nil());

  ASSERT_TRUE(Call("put_passkey_challenge", V::Map({{"challenge_id", "old"}, {"challenge", "c"}, {"ttl_s", 300}})).ok());
  Sql("UPDATE passkey_challenges SET expires_at = now() - interval '1 second'");
  EXPECT_EQ(Call("take_passkey_challenge", V::Map({{"challenge_id", "old"}})).code(), "not_found");

  auto put = [&](V id, V ch, V ttl, V user = V()) {
    return Call("put_passkey_challenge", V::Map({{"challenge_id", id}, {"challenge", ch}, {"ttl_s", ttl}, {"user_id", user}}))
        .code();
  };
  EXPECT_EQ(put(std::string(256, 'i'), "c", 60), "invalid_argument") << "oversize id";
  EXPECT_EQ(put("i", V::Bin(std::string(1025, 'c')), 60), "invalid_argument") << "oversize challenge";
  EXPECT_EQ(put("i", V::Bin(""), 60), "invalid_argument");
  EXPECT_EQ(put("i", 5, 60), "bad_request");
  EXPECT_EQ(put(5, "c", 60), "bad_request");
  EXPECT_EQ(put("i", "c", 0), "invalid_argument");
  EXPECT_EQ(put("i", "c", 60, "nope"), "invalid_argument");
  EXPECT_EQ(Call("take_passkey_challenge", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("take_passkey_challenge", V::Map({{"challenge_id", V::Bin("x")}})).code(), "bad_request");
  EXPECT_EQ(Call("take_passkey_challenge", V::Map({{"challenge_id", std::string(256, 'i')}})).code(),
            "invalid_argument");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM passkey_challenges"), "0");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM audit_logs WHERE coalesce(old_data::text, '') || "
                    "coalesce(new_data::text, '') LIKE '%challenge-bytes%'"),
            "0");
}

// ---- cascade, RLS, actor -----------------------------------------------------

TEST_F(AccountsTest, DeletingAUserDeletesItsAccountsAndPasskeys) {
  auto sub = Subscribe({"oauth.", "passkey."});
  std::string uid = NewUser()["id"].str();
  std::string keep = NewUser()["id"].str();
  Link(uid, "github", "1");
  Link(uid, "google", "2");
  AddPasskey(uid, "p1");
  Link(keep, "github", "3");
  AddPasskey(keep, "p2");
  ASSERT_TRUE(Call("delete_user", V::Map({{"id", uid}})).ok());
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_accounts WHERE user_id = '" + uid + "'"), "0");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM passkeys WHERE user_id = '" + uid + "'"), "0");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_accounts"), "1");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM passkeys"), "1");
  // The cascade publishes.
  int unlinked = 0, deleted = 0;
  std::vector<Event> seen;
  sub->WaitFor([&](const Event& e) {
    if (e.topic == "oauth.unlinked" && e.body["user_id"].str() == uid) unlinked++;
    if (e.topic == "passkey.deleted" && e.body["user_id"].str() == uid) deleted++;
    return unlinked == 2 && deleted == 1;
  }, 5000, &seen);
  EXPECT_EQ(unlinked, 2);
  EXPECT_EQ(deleted, 1);
}

TEST_F(AccountsTest, ActorSeesOnlyItsOwnAccountsAndPasskeys) {
  std::string a = NewUser()["id"].str();
  std::string b = NewUser()["id"].str();
  Link(b, "github", "b-1");
  AddPasskey(b, "b-key");

  // Its own rows work.
  Reply own = CallAs(a, "link_oauth_account", V::Map({{"user_id", a}, {"provider", "github"}, {"subject", "a-1"}}));
  ASSERT_TRUE(own.ok()) << own.ToString();
  ASSERT_TRUE(CallAs(a, "add_passkey", V::Map({{"user_id", a}, {"credential_id", V::Bin("a-key")},
                                                {"public_key", V::Bin("k")}}))
                  .ok());
  EXPECT_EQ(CallAs(a, "list_oauth_accounts", V::Map({{"user_id", a}})).result()["accounts"].size(), 1u);
  EXPECT_TRUE(CallAs(a, "use_passkey", V::Map({{"credential_id", V::Bin("a-key")}})).ok());
  EXPECT_EQ(CallAs(a, "get_user_by_oauth", V::Map({{"provider", "github"}, {"subject", "a-1"}})).result()["id"].str(), a);

  // Another user's rows: invisible, or forbidden to write.
  EXPECT_EQ(CallAs(a, "get_oauth_account", V::Map({{"provider", "github"}, {"subject", "b-1"}})).code(), "not_found");
  EXPECT_EQ(CallAs(a, "get_user_by_oauth", V::Map({{"provider", "github"}, {"subject", "b-1"}})).code(), "not_found");
  EXPECT_EQ(CallAs(a, "list_oauth_accounts", V::Map({{"user_id", b}})).result()["accounts"].size(), 0u);
  EXPECT_EQ(CallAs(a, "unlink_oauth_account", V::Map({{"user_id", b}, {"provider", "github"}})).result()["deleted"].u64(),
            0u);
  EXPECT_EQ(CallAs(a, "link_oauth_account", V::Map({{"user_id", b}, {"provider", "x"}, {"subject", "1"}})).code(),
            "forbidden");
  EXPECT_EQ(CallAs(a, "link_oauth_account", V::Map({{"user_id", a}, {"provider", "github"}, {"subject", "b-1"}})).code(),
            "duplicate")
      << "a pair linked to a user the actor cannot see";
  EXPECT_EQ(CallAs(a, "get_passkey", V::Map({{"credential_id", V::Bin("b-key")}})).code(), "not_found");
  EXPECT_EQ(CallAs(a, "use_passkey", V::Map({{"credential_id", V::Bin("b-key")}})).code(), "not_found");
  EXPECT_EQ(CallAs(a, "delete_passkey", V::Map({{"credential_id", V::Bin("b-key")}})).code(), "not_found");
  EXPECT_EQ(CallAs(a, "delete_user_passkeys", V::Map({{"user_id", b}})).result()["deleted"].u64(), 0u);
  EXPECT_EQ(CallAs(a, "list_passkeys", V::Map({{"user_id", b}})).result()["passkeys"].size(), 0u);
  EXPECT_EQ(CallAs(a, "add_passkey", V::Map({{"user_id", b}, {"credential_id", V::Bin("x")},
                                             {"public_key", V::Bin("k")}}))
                .code(),
            "forbidden");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_accounts WHERE user_id = '" + b + "'"), "1");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM passkeys WHERE user_id = '" + b + "' AND last_used_at IS NULL"), "1");
  // The actor is recorded in the audit rows of its own changes.
  EXPECT_EQ(Scalar1("SELECT actor::text FROM audit_logs WHERE table_name = 'oauth_accounts' ORDER BY seq DESC LIMIT 1"),
            a);

  // State and challenge operations are refused for any actor.
  EXPECT_EQ(CallAs(a, "put_oauth_state", V::Map({{"state", "s"}, {"verifier", "v"}, {"ttl_s", 60}})).code(),
            "forbidden");
  EXPECT_EQ(CallAs(a, "take_oauth_state", V::Map({{"state", "s"}})).code(), "forbidden");
  EXPECT_EQ(CallAs(a, "put_passkey_challenge", V::Map({{"challenge_id", "c"}, {"challenge", "x"}, {"ttl_s", 60}})).code(),
            "forbidden");
  EXPECT_EQ(CallAs(a, "take_passkey_challenge", V::Map({{"challenge_id", "c"}})).code(), "forbidden");
  EXPECT_EQ(Scalar1("SELECT count(*) FROM oauth_states") + Scalar1("SELECT count(*) FROM passkey_challenges"), "00");
}

// The addition user_torii_id: every OAuthAccount and Passkey names its
// user's metadata.torii_id (nil when absent), read in the same statement;
// for an actor, its own users row is visible, so its own rows carry it.
TEST_F(AccountsTest, ResultsCarryTheUsersToriiId) {
  std::string torii_id = "usr_3yQBbNQ4E1WK6xqJ5";
  std::string email = "torii-id@example.com";
  Reply created = Call("create_user", V::Map({{"email", email}, {"metadata", V::Map({{"torii_id", torii_id}})}}));
  ASSERT_TRUE(created.ok()) << created.ToString();
  std::string a = created.result()["id"].str();
  std::string plain = NewUser()["id"].str();  // no torii_id

  EXPECT_EQ(Link(a, "github", "tid-1")["user_torii_id"].str(), torii_id);
  EXPECT_TRUE(Link(plain, "github", "tid-2")["user_torii_id"].is_nil());
  EXPECT_TRUE(Link(plain, "github", "tid-2").has("user_torii_id"));
  Reply got = Call("get_oauth_account", V::Map({{"provider", "github"}, {"subject", "tid-1"}}));
  ASSERT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ(got.result()["user_torii_id"].str(), torii_id);
  EXPECT_EQ(got.result()["user_id"].str(), a);
  Reply listed = Call("list_oauth_accounts", V::Map({{"user_id", a}}));
  ASSERT_EQ(listed.result()["accounts"].size(), 1u);
  EXPECT_EQ(listed.result()["accounts"][0]["user_torii_id"].str(), torii_id);

  EXPECT_EQ(AddPasskey(a, "tid-key")["user_torii_id"].str(), torii_id);
  EXPECT_TRUE(AddPasskey(plain, "plain-key")["user_torii_id"].is_nil());
  Reply pk = Call("get_passkey", V::Map({{"credential_id", V::Bin("tid-key")}}));
  ASSERT_TRUE(pk.ok()) << pk.ToString();
  EXPECT_EQ(pk.result()["user_torii_id"].str(), torii_id);
  Reply used = Call("use_passkey", V::Map({{"credential_id", V::Bin("tid-key")}, {"sign_count", 3}}));
  ASSERT_TRUE(used.ok()) << used.ToString();
  EXPECT_EQ(used.result()["user_torii_id"].str(), torii_id);
  Reply conflict = Call("use_passkey", V::Map({{"credential_id", V::Bin("tid-key")}, {"sign_count", 2}}));
  EXPECT_EQ(conflict.code(), "conflict");
  Reply pks = Call("list_passkeys", V::Map({{"user_id", a}}));
  ASSERT_EQ(pks.result()["passkeys"].size(), 1u);
  EXPECT_EQ(pks.result()["passkeys"][0]["user_torii_id"].str(), torii_id);

  // As the user itself, under row-level security.
  Reply own = CallAs(a, "get_oauth_account", V::Map({{"provider", "github"}, {"subject", "tid-1"}}));
  ASSERT_TRUE(own.ok()) << own.ToString();
  EXPECT_EQ(own.result()["user_torii_id"].str(), torii_id);
  Reply own_pk = CallAs(a, "get_passkey", V::Map({{"credential_id", V::Bin("tid-key")}}));
  ASSERT_TRUE(own_pk.ok()) << own_pk.ToString();
  EXPECT_EQ(own_pk.result()["user_torii_id"].str(), torii_id);

  // A changed torii_id is read at each request (no copy is kept).
  ASSERT_TRUE(Call("update_user", V::Map({{"id", a}, {"metadata", V::Map({})}})).ok());
  EXPECT_TRUE(Call("get_passkey", V::Map({{"credential_id", V::Bin("tid-key")}})).result()["user_torii_id"].is_nil());
}

TEST_F(AccountsTest, SqlRoleGrantedToriiActorSeesOnlyItsAccountsAndPasskeys) {
  std::string a = NewUser()["id"].str();
  std::string b = NewUser()["id"].str();
  Link(a, "github", "a-1");
  Link(b, "github", "b-1");
  AddPasskey(a, "a-key");
  AddPasskey(b, "b-key");
  ASSERT_TRUE(Call("put_oauth_state", V::Map({{"state", "s"}, {"verifier", "v"}, {"ttl_s", 60}})).ok());

  PgConn owner = Connect(daemon().database_url());
  std::string role = "acct_" + std::to_string(getpid()) + "_" +
                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
  Exec(owner.get(), "CREATE ROLE " + role + " LOGIN");
  Exec(owner.get(), "GRANT torii_actor TO " + role);
  {
    PgConn svc = Connect(daemon().database_url() + " user=" + role);
    PGconn* c = svc.get();
    EXPECT_EQ(Scalar(c, "SELECT count(*) FROM oauth_accounts"), "0") << "no torii.user_id: nothing visible";
    EXPECT_EQ(Scalar(c, "SELECT count(*) FROM passkeys"), "0");
    Exec(c, "SELECT set_config('torii.user_id', $1, false)", {a.c_str()});
    EXPECT_EQ(Scalar(c, "SELECT string_agg(subject, ',') FROM oauth_accounts"), "a-1");
    EXPECT_EQ(Scalar(c, "SELECT string_agg(convert_from(credential_id, 'UTF8'), ',') FROM passkeys"), "a-key");
    EXPECT_EQ(Scalar(c, "WITH d AS (DELETE FROM oauth_accounts WHERE user_id = '" + b + "' RETURNING 1) "
                        "SELECT count(*) FROM d"),
              "0");
    EXPECT_EQ(Scalar(c, "WITH u AS (UPDATE passkeys SET sign_count = 99 WHERE user_id = '" + b + "' RETURNING 1) "
                        "SELECT count(*) FROM u"),
              "0");
    EXPECT_EQ(FailState(c, "INSERT INTO oauth_accounts (user_id, provider, subject) VALUES ('" + b + "', 'x', '1')"),
              "42501");
    EXPECT_EQ(FailState(c, "INSERT INTO passkeys (user_id, credential_id, public_key) VALUES ('" + b +
                               "', '\\x01', '\\x02')"),
              "42501");
    EXPECT_EQ(FailState(c, "UPDATE passkeys SET user_id = '" + b + "' WHERE user_id = '" + a + "'"), "42501");
    // No privilege at all on the client secrets.
    EXPECT_EQ(FailState(c, "SELECT count(*) FROM oauth_states"), "42501");
    EXPECT_EQ(FailState(c, "SELECT count(*) FROM passkey_challenges"), "42501");
    // Its own rows it may change.
    Exec(c, "DELETE FROM oauth_accounts WHERE user_id = '" + a + "'");
  }
  Exec(owner.get(), "DROP ROLE " + role);
  EXPECT_EQ(Scalar(owner.get(), "SELECT string_agg(subject, ',') FROM oauth_accounts"), "b-1");
  EXPECT_EQ(Scalar(owner.get(), "SELECT count(*) FROM passkeys"), "2");
  EXPECT_EQ(Scalar(owner.get(), "SELECT sign_count FROM passkeys WHERE user_id = '" + b + "'"), "0");
}

// ---- events ----------------------------------------------------------------------

TEST_F(AccountsTest, EventsFromPlainSqlAndHeartbeatSeqs) {
  // Before any account event, heartbeats already list the new families at 0.
  auto beat_sub = std::make_unique<EventSub>(daemon().event_endpoint(), std::vector<std::string>{"torii.heartbeat"});
  Event beat = beat_sub->WaitForTopic("torii.heartbeat", 5000);
  ASSERT_FALSE(beat.topic.empty());
  ASSERT_TRUE(beat.body["seqs"].has("oauth")) << beat.body.ToString();
  ASSERT_TRUE(beat.body["seqs"].has("passkey")) << beat.body.ToString();
  EXPECT_EQ(beat.body["seqs"]["oauth"].u64(), 0u);
  EXPECT_EQ(beat.body["seqs"]["passkey"].u64(), 0u);

  auto sub = Subscribe({"oauth.", "passkey."});
  std::string uid = NewUser()["id"].str();
  std::string verifier = "verifier-in-no-event-" + std::to_string(getpid());
  Secret(verifier);
  Sql("INSERT INTO oauth_accounts (user_id, provider, subject) VALUES ('" + uid + "', 'github', 'sql-1')");
  Event e = sub->WaitForTopic("oauth.linked", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["user_id"].str(), uid);
  EXPECT_EQ(e.body["provider"].str(), "github");
  EXPECT_EQ(e.body["seq"].u64(), 1u);
  EXPECT_TRUE(e.body["at"].is_timestamp());
  EXPECT_FALSE(e.body.has("subject"));

  Sql("INSERT INTO passkeys (user_id, credential_id, public_key) VALUES ('" + uid +
      "', '\\x00ff10', '\\x5345435245542d4b4559')");  // public key "SECRET-KEY"
  Event pa = sub->WaitForTopic("passkey.added", 5000);
  ASSERT_FALSE(pa.topic.empty());
  EXPECT_EQ(pa.body["user_id"].str(), uid);
  ASSERT_TRUE(IsBin(pa.body["credential_id"])) << pa.body.ToString();
  EXPECT_EQ(Bin(pa.body["credential_id"]), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(pa.body["seq"].u64(), 1u) << "its own family's seq";
  EXPECT_EQ(pa.raw.find("SECRET-KEY"), std::string::npos);

  // A use publishes nothing; a delete does.
  ASSERT_TRUE(Call("use_passkey", V::Map({{"credential_id", V::Bin(std::string("\x00\xff\x10", 3))}})).ok());
  Sql("DELETE FROM passkeys WHERE user_id = '" + uid + "'");
  Event pd = sub->WaitFor([](const Event& x) { return x.topic.rfind("passkey.", 0) == 0; }, 5000);
  EXPECT_EQ(pd.topic, "passkey.deleted");
  EXPECT_EQ(pd.body["seq"].u64(), 2u);
  EXPECT_EQ(Bin(pd.body["credential_id"]), std::string("\x00\xff\x10", 3));

  Sql("DELETE FROM oauth_accounts WHERE subject = 'sql-1'");
  Event un = sub->WaitForTopic("oauth.unlinked", 5000);
  ASSERT_FALSE(un.topic.empty());
  EXPECT_EQ(un.body["seq"].u64(), 2u);

  // State and challenge writes publish nothing at all.
  auto all = Subscribe({""});
  ASSERT_TRUE(Call("put_oauth_state", V::Map({{"state", "st"}, {"verifier", verifier}, {"ttl_s", 60}})).ok());
  ASSERT_TRUE(Call("take_oauth_state", V::Map({{"state", "st"}})).ok());
  ASSERT_TRUE(
      Call("put_passkey_challenge", V::Map({{"challenge_id", "c"}, {"challenge", verifier}, {"ttl_s", 60}})).ok());
  ASSERT_TRUE(Call("take_passkey_challenge", V::Map({{"challenge_id", "c"}})).ok());
  Link(uid, "marker", "m");  // the last event: everything before it has arrived
  std::vector<Event> seen;
  ASSERT_FALSE(all->WaitForTopic("oauth.linked", 5000, &seen).topic.empty());
  for (const auto& x : seen) {
    EXPECT_TRUE(x.topic == "oauth.linked" || x.topic.rfind("torii.", 0) == 0) << x.topic;
    EXPECT_EQ(x.raw.find(verifier), std::string::npos);
  }
  // list_audit's table filter knows the new tables.
  Reply la = Call("list_audit", V::Map({{"table", "oauth_accounts"}}));
  ASSERT_TRUE(la.ok()) << la.ToString();
  EXPECT_EQ(la.result()["entries"].size(), 3u);
  EXPECT_EQ(Call("list_audit", V::Map({{"table", "oauth_states"}})).code(), "invalid_argument");
}

}  // namespace
}  // namespace torii::test
