// gtest fixture for request-path tests: each test gets its own toriid on a
// fresh database of the shared cluster, and a DEALER client connected to
// it, plus small helpers for the records most tests need.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "daemon_process.h"
#include "pg_cluster.h"
#include "sql.h"
#include "wire.h"

namespace torii::test {

class RequestTest : public ::testing::Test {
 protected:
  // Override to change the daemon's config before it starts.
  virtual DaemonOptions Options() { return {}; }

  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>(Options());
    client_ = std::make_unique<WireClient>(daemon_->request_endpoint());
  }

  void TearDown() override {
    client_.reset();
    if (daemon_) {
      // No secret may reach the log: the harness never logs in with a password,
      // so a token or hash seen here came from a request.
      for (const auto& s : secrets_) {
        EXPECT_EQ(daemon_->log().find(s), std::string::npos) << "a secret reached the daemon's log: " << s;
      }
    }
    daemon_.reset();
  }

  DaemonProcess& daemon() { return *daemon_; }
  WireClient& client() { return *client_; }
  Reply Call(const std::string& op, V args = V::Map({}), int timeout_ms = 10000) {
    return client_->Call(op, std::move(args), timeout_ms);
  }

  // Remembers a value that must never appear in the daemon's log.
  void Secret(const std::string& s) {
    if (!s.empty()) secrets_.push_back(s);
  }

  // A user with a unique email; returns the User map.
  Value NewUser(const std::string& email = "") {
    std::string e = email.empty() ? "user" + std::to_string(++seq_) + "@example.com" : email;
    Reply r = Call("create_user", V::Map({{"email", e}, {"password_hash", "$argon2id$v=19$secret-hash-" + e}}));
    EXPECT_TRUE(r.ok()) << r.ToString();
    Secret("$argon2id$v=19$secret-hash-" + e);
    return r.result();
  }
  // A session of `user_id` living `ttl_s`; returns the Session map with its token.
  Value NewSession(const std::string& user_id, int64_t ttl_s = 3600) {
    Reply r = Call("create_session", V::Map({{"user_id", user_id}, {"ttl_s", ttl_s}}));
    EXPECT_TRUE(r.ok()) << r.ToString();
    Secret(r.result()["token"].str());
    return r.result();
  }
  // Plain SQL on the daemon's database, as another program would do it.
  void Sql(const std::string& sql) {
    PgConn c = Connect(daemon().database_url());
    Exec(c.get(), sql);
  }
  // Moves a session's expiry into the past, behind the daemon's back.
  void ExpireSession(const std::string& id) {
    Sql("UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE id = '" + id + "'");
  }

  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<WireClient> client_;
  std::vector<std::string> secrets_;
  int seq_ = 0;
};

// Milliseconds since the Unix epoch / since a steady start.
inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace torii::test
