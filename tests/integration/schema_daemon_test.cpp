// The PostgreSQL features of issue 6 through the real toriid: search_users
// (0004), list_audit (0003) and requests with `actor` under row-level
// security (0005). Each test has its own daemon on a fresh database and
// checks what changed, or did not, with plain SQL on that database.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

class SchemaDaemonTest : public RequestTest {
 protected:
  PGconn* Sql() {
    if (!sql_) {
      auto c = ConnectBlocking(daemon().database_url());
      if (!c.ok()) throw std::runtime_error("connect: " + c.error().ToString());
      sql_ = std::move(c.value());
    }
    return sql_.get();
  }
  std::string Scalar(const std::string& query) {
    auto r = ExecBlocking(Sql(), query);
    if (!r.ok()) throw std::runtime_error(query + ": " + r.error().ToString());
    if (PQntuples(r->get()) != 1) throw std::runtime_error(query + ": expected one row");
    return PQgetisnull(r->get(), 0, 0) ? "<null>" : PQgetvalue(r->get(), 0, 0);
  }
  // Everything about users and sessions, to compare before and after.
  std::string Snapshot() {
    return Scalar(
        "SELECT (SELECT coalesce(string_agg(u::text, '|' ORDER BY id), '') FROM users u) || '#' || "
        "(SELECT coalesce(string_agg(s::text, '|' ORDER BY id), '') FROM sessions s)");
  }

  Reply As(const std::string& actor, const std::string& op, V args) {
    Req r;
    r.op = V(op);
    r.args = std::move(args);
    r.actor = V(actor);
    return client().Call(std::move(r));
  }

  std::vector<std::string> SearchEmails(const std::string& query, int64_t limit = 20, int64_t offset = 0) {
    Reply r = Call("search_users", V::Map({{"query", query}, {"limit", limit}, {"offset", offset}}));
    EXPECT_TRUE(r.ok()) << query << ": " << r.ToString();
    std::vector<std::string> out;
    Value users = r.result()["users"];
    for (size_t i = 0; i < users.size(); i++) {
      EXPECT_FALSE(users[i].has("password_hash")) << "search results never carry the hash";
      out.push_back(users[i]["email"].str());
    }
    return out;
  }

  PgConn sql_;
};

using Emails = std::vector<std::string>;

TEST_F(SchemaDaemonTest, SearchFindsEmailPartsAndMetadataRankedBestFirst) {
  ASSERT_TRUE(Call("create_user", V::Map({{"email", "quentin.smith@example.com"},
                                          {"password_hash", "$argon2id$search-secret"},
                                          {"metadata", V::Map({{"bio", "keeps the old lighthouse"}})}}))
                  .ok());
  Secret("$argon2id$search-secret");
  ASSERT_TRUE(Call("create_user", V::Map({{"email", "anna@lighthouse.org"}})).ok());
  ASSERT_TRUE(Call("create_user", V::Map({{"email", "bob@other.net"},
                                          {"metadata", V::Map({{"note", "quentin is a neighbour"}})}}))
                  .ok());

  EXPECT_EQ(SearchEmails("smith"), Emails({"quentin.smith@example.com"}));
  EXPECT_EQ(SearchEmails("example"), Emails({"quentin.smith@example.com"}));
  EXPECT_EQ(SearchEmails("quentin.smith@example.com"), Emails({"quentin.smith@example.com"}));
  EXPECT_EQ(SearchEmails("QUENTIN.Smith@Example.com"), Emails({"quentin.smith@example.com"}));
  EXPECT_EQ(SearchEmails("neighbour"), Emails({"bob@other.net"})) << "a metadata word";
  // Email (weight A) ranks above metadata (weight B).
  EXPECT_EQ(SearchEmails("quentin"), Emails({"quentin.smith@example.com", "bob@other.net"}));
  EXPECT_EQ(SearchEmails("lighthouse"), Emails({"anna@lighthouse.org", "quentin.smith@example.com"}));
  EXPECT_EQ(SearchEmails("lighthouse -anna"), Emails({"quentin.smith@example.com"})) << "web-search syntax";
  // Limit and offset page through the same order.
  EXPECT_EQ(SearchEmails("quentin", 1), Emails({"quentin.smith@example.com"}));
  EXPECT_EQ(SearchEmails("quentin", 1, 1), Emails({"bob@other.net"}));
  EXPECT_EQ(SearchEmails("quentin", 100, 2), Emails({}));
  // Nothing to search for is an empty list, not an error.
  EXPECT_EQ(SearchEmails("the and of"), Emails({}));
  EXPECT_EQ(SearchEmails(""), Emails({}));
  EXPECT_EQ(SearchEmails("zzzunknown"), Emails({}));

  EXPECT_EQ(Call("search_users", V::Map({{"query", "x"}, {"limit", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("search_users", V::Map({{"query", "x"}, {"limit", 101}})).code(), "invalid_argument");
  EXPECT_EQ(Call("search_users", V::Map({{"query", "x"}, {"offset", -1}})).code(), "invalid_argument");
  EXPECT_EQ(Call("search_users", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("search_users", V::Map({{"query", 5}})).code(), "bad_request") << "wrong type";
  Reply dflt = Call("search_users", V::Map({{"query", "quentin"}}));
  ASSERT_TRUE(dflt.ok()) << dflt.ToString();
  EXPECT_EQ(dflt.result()["users"].size(), 2u);
}

// Issue 17: any part of an address a user can see, or the whole address, in
// any case, finds it (0012): hyphenated, dotted, plus-tagged and underscored
// local parts, runs of parts across the '@', the domain.
TEST_F(SchemaDaemonTest, SearchFindsHyphenatedDottedAndTaggedAddressParts) {
  for (const char* email : {"jean-luc@example.com", "jean.luc@other.org", "bob+news@mail.net", "the-who@band.com",
                            "anne_marie@x.io", "zed@example.com"}) {
    ASSERT_TRUE(Call("create_user", V::Map({{"email", email}})).ok()) << email;
  }
  // Both Jean-Lucs have the parts "jean" then "luc"; the spelling typed ranks first.
  EXPECT_EQ(SearchEmails("jean-luc"), Emails({"jean-luc@example.com", "jean.luc@other.org"}));
  EXPECT_EQ(SearchEmails("JEAN-LUC"), Emails({"jean-luc@example.com", "jean.luc@other.org"}));
  EXPECT_EQ(SearchEmails("jean.luc"), Emails({"jean.luc@other.org", "jean-luc@example.com"}));
  EXPECT_EQ(SearchEmails("Jean.Luc"), Emails({"jean.luc@other.org", "jean-luc@example.com"}));
  EXPECT_EQ(SearchEmails("jean-luc@example.com"), Emails({"jean-luc@example.com"}));
  EXPECT_EQ(SearchEmails("Jean-Luc@EXAMPLE.com"), Emails({"jean-luc@example.com"}));
  EXPECT_EQ(SearchEmails("JEAN.LUC@OTHER.ORG"), Emails({"jean.luc@other.org"}));
  EXPECT_EQ(SearchEmails("luc@example.com"), Emails({"jean-luc@example.com"})) << "a run of parts across the @";
  EXPECT_EQ(SearchEmails("luc"), Emails({"jean-luc@example.com", "jean.luc@other.org"}));
  EXPECT_EQ(SearchEmails("bob+news"), Emails({"bob+news@mail.net"}));
  EXPECT_EQ(SearchEmails("BOB+NEWS"), Emails({"bob+news@mail.net"}));
  EXPECT_EQ(SearchEmails("news"), Emails({"bob+news@mail.net"}));
  EXPECT_EQ(SearchEmails("bob+news@mail"), Emails({"bob+news@mail.net"}));
  EXPECT_EQ(SearchEmails("bob+news@mail.net"), Emails({"bob+news@mail.net"}));
  EXPECT_EQ(SearchEmails("mail.net"), Emails({"bob+news@mail.net"}));
  EXPECT_EQ(SearchEmails("the-who"), Emails({"the-who@band.com"})) << "a compound of stopwords";
  EXPECT_EQ(SearchEmails("anne_marie"), Emails({"anne_marie@x.io"}));
  EXPECT_EQ(SearchEmails("anne-marie"), Emails({"anne_marie@x.io"}));
  Emails domain = SearchEmails("example.com");  // equal ranks: in id order
  std::sort(domain.begin(), domain.end());
  EXPECT_EQ(domain, Emails({"jean-luc@example.com", "zed@example.com"}));
  // Parts must be consecutive and in order to match as one word; web-search
  // syntax still applies around such words.
  EXPECT_EQ(SearchEmails("luc-jean"), Emails({}));
  EXPECT_EQ(SearchEmails("jean-news"), Emails({}));
  EXPECT_EQ(SearchEmails("jean-luc -example"), Emails({"jean.luc@other.org"}));
  EXPECT_EQ(SearchEmails("example.com -jean-luc"), Emails({"zed@example.com"}));
  EXPECT_EQ(SearchEmails("\"jean-luc example\""), Emails({"jean-luc@example.com"}));
}

TEST_F(SchemaDaemonTest, ListAuditPagesNewestFirstWithoutDuplicatesOrGaps) {
  Value user = NewUser();
  std::string uid = user["id"].str();
  Value other = NewUser();
  for (int i = 0; i < 24; i++) {
    ASSERT_TRUE(Call("update_user", V::Map({{"id", uid}, {"metadata", V::Map({{"n", i}})}})).ok());
  }
  Value session = NewSession(uid);
  // The record's rows as they stand, newest first.
  std::string expected = Scalar("SELECT string_agg(id::text, ',' ORDER BY seq DESC) FROM audit_logs WHERE record_id = '" +
                                uid + "'");
  std::vector<std::string> got;
  std::set<std::string> seen;
  std::optional<std::string> cursor;
  int pages = 0;
  for (;;) {
    std::vector<std::pair<std::string, V>> args = {{"record_id", uid}, {"limit", 7}};
    if (cursor) args.push_back({"before", *cursor});
    Reply r = Call("list_audit", V::Map(args));
    ASSERT_TRUE(r.ok()) << r.ToString();
    pages++;
    Value entries = r.result()["entries"];
    for (size_t i = 0; i < entries.size(); i++) {
      Value e = entries[i];
      EXPECT_EQ(e.keys().size(), 8u) << e.ToString();
      EXPECT_EQ(e["table"].str(), "users");
      EXPECT_EQ(e["record_id"].str(), uid);
      EXPECT_TRUE(e["created_at"].is_timestamp());
      EXPECT_TRUE(e["actor"].is_nil());
      EXPECT_FALSE(e["new_data"].has("password_hash"));
      EXPECT_FALSE(e["old_data"].has("password_hash"));
      EXPECT_TRUE(seen.insert(e["id"].str()).second) << "duplicate " << e["id"].str();
      got.push_back(e["id"].str());
    }
    // Writes between pages are newer than every cursor: they never shift
    // what the following pages return.
    ASSERT_TRUE(Call("update_user", V::Map({{"id", uid}, {"metadata", V::Map({{"late", pages}})}})).ok());
    if (r.result()["next"].is_nil()) break;
    cursor = r.result()["next"].str();
    ASSERT_LT(pages, 10);
  }
  std::string joined;
  for (const auto& id : got) joined += (joined.empty() ? "" : ",") + id;
  EXPECT_EQ(joined, expected);
  EXPECT_EQ(got.size(), 25u);  // insert + 24 updates
  EXPECT_EQ(pages, 4);

  Reply first = Call("list_audit", V::Map({{"limit", 1}}));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.result()["entries"][0]["operation"].str(), "UPDATE") << "newest first";
  Reply sessions = Call("list_audit", V::Map({{"table", "sessions"}}));
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions.result()["entries"].size(), 1u);
  EXPECT_EQ(sessions.result()["entries"][0]["record_id"].str(), session["id"].str());
  EXPECT_EQ(sessions.result()["entries"][0]["operation"].str(), "INSERT");
  EXPECT_FALSE(sessions.result()["entries"][0]["new_data"].has("token_hash"));
  EXPECT_TRUE(sessions.result()["next"].is_nil());
  Reply both = Call("list_audit", V::Map({{"record_id", other["id"].str()}, {"table", "users"}}));
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both.result()["entries"].size(), 1u);

  EXPECT_EQ(Call("list_audit", V::Map({{"table", "audit_logs"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_audit", V::Map({{"limit", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_audit", V::Map({{"limit", 1001}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_audit", V::Map({{"before", "abc"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_audit", V::Map({{"record_id", "nope"}})).code(), "invalid_argument");

  // No secret anywhere in the table.
  std::string text = Scalar("SELECT string_agg(a::text, '|') FROM audit_logs a");
  for (const auto& s : secrets_) EXPECT_EQ(text.find(s), std::string::npos) << s;
  std::string digest = Scalar("SELECT encode(token_hash, 'hex') FROM sessions LIMIT 1");
  EXPECT_EQ(text.find(digest), std::string::npos);
  EXPECT_EQ(text.find("\\x" + digest), std::string::npos);
}

TEST_F(SchemaDaemonTest, ActorSeesAndChangesOnlyItsOwnRows) {
  Value a = NewUser("alice@example.com");
  Value b = NewUser("bob@example.com");
  std::string aid = a["id"].str(), bid = b["id"].str();
  Value as = NewSession(aid);
  Value bs = NewSession(bid);
  std::string b_token = bs["token"].str(), b_sid = bs["id"].str();
  std::string before = Snapshot();
  std::string audit_before = Scalar("SELECT count(*) FROM audit_logs");

  struct Case {
    const char* op;
    V args;
    const char* code;
  };
  std::vector<Case> cases = {
      {"get_user", V::Map({{"id", bid}}), "not_found"},
      {"get_user_by_email", V::Map({{"email", "bob@example.com"}}), "not_found"},
      {"update_user", V::Map({{"id", bid}, {"email", "taken@example.com"}}), "not_found"},
      {"update_user", V::Map({{"id", bid}, {"password_hash", "$argon2id$evil"}}), "not_found"},
      {"verify_email", V::Map({{"id", bid}}), "not_found"},
      {"delete_user", V::Map({{"id", bid}}), "not_found"},
      {"create_user", V::Map({{"email", "new@example.com"}}), "forbidden"},
      {"create_user", V::Map({{"email", "new2@example.com"}, {"id", bid}}), "forbidden"},
      {"create_session", V::Map({{"user_id", bid}, {"ttl_s", 60}}), "forbidden"},
      {"get_session", V::Map({{"token", b_token}}), "not_found"},
      {"get_session", V::Map({{"id", b_sid}}), "not_found"},
      {"extend_session", V::Map({{"token", b_token}, {"ttl_s", 99999}}), "not_found"},
      {"extend_session", V::Map({{"id", b_sid}, {"ttl_s", 99999}}), "not_found"},
      {"delete_session", V::Map({{"token", b_token}}), "not_found"},
      {"delete_session", V::Map({{"id", b_sid}}), "not_found"},
      {"list_audit", V::Map({}), "forbidden"},
  };
  for (auto& c : cases) {
    Reply r = As(aid, c.op, c.args);
    EXPECT_EQ(r.code(), c.code) << c.op << ": " << r.ToString();
  }
  // Operations that return collections see only the actor's rows.
  Reply users = As(aid, "list_users", V::Map({}));
  ASSERT_TRUE(users.ok()) << users.ToString();
  ASSERT_EQ(users.result()["users"].size(), 1u);
  EXPECT_EQ(users.result()["users"][0]["id"].str(), aid);
  Reply found = As(aid, "search_users", V::Map({{"query", "example"}}));
  ASSERT_TRUE(found.ok()) << found.ToString();
  ASSERT_EQ(found.result()["users"].size(), 1u);
  EXPECT_EQ(found.result()["users"][0]["id"].str(), aid);
  Reply listed = As(aid, "list_sessions", V::Map({{"user_id", bid}}));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed.result()["sessions"].size(), 0u);
  Reply wiped = As(aid, "delete_user_sessions", V::Map({{"user_id", bid}}));
  ASSERT_TRUE(wiped.ok());
  EXPECT_EQ(wiped.result()["deleted"].u64(), 0u);

  EXPECT_EQ(Snapshot(), before) << "nothing changed";
  EXPECT_EQ(Scalar("SELECT count(*) FROM audit_logs"), audit_before);

  // The actor's own rows work as usual, and are audited with the actor.
  Reply own = As(aid, "update_user", V::Map({{"id", aid}, {"metadata", V::Map({{"k", "v"}})}}));
  ASSERT_TRUE(own.ok()) << own.ToString();
  Reply mine = As(aid, "create_session", V::Map({{"user_id", aid}, {"ttl_s", 60}}));
  ASSERT_TRUE(mine.ok()) << mine.ToString();
  Secret(mine.result()["token"].str());
  Reply got = As(aid, "get_session", V::Map({{"token", as["token"].str()}}));
  EXPECT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ(Scalar("SELECT string_agg(DISTINCT actor::text, ',') FROM audit_logs WHERE actor IS NOT NULL"), aid);
  EXPECT_EQ(Scalar("SELECT count(*) FROM audit_logs WHERE actor IS NOT NULL"), "2");

  // The role switch ended with each request: the same pooled connections
  // serve requests without an actor, which see everything again.
  Reply all = Call("list_users", V::Map({}));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.result()["users"].size(), 2u);
  EXPECT_TRUE(Call("get_user", V::Map({{"id", bid}})).ok());

  EXPECT_EQ(As("not-a-uuid", "get_user", V::Map({{"id", aid}})).code(), "invalid_argument");
  Reply stranger = As("99999999-9999-4999-8999-999999999999", "get_user", V::Map({{"id", aid}}));
  EXPECT_EQ(stranger.code(), "not_found");
}

}  // namespace
}  // namespace torii::test
