// What the tests of several daemons on one database share (ha_daemons,
// ha_restart, resync): their daemon settings, a client over several
// endpoints, and making a user with sessions through it. Header only; the
// test's thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daemon_process.h"
#include "torii/client.h"
#include "torii/protocol.h"

namespace torii::test {

inline int64_t MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

// A daemon on `url` with 100 ms heartbeats (a stale condition shows within
// a third of a second) and no scheduled cleanup (nothing changes unasked).
inline DaemonOptions SharedDbOptions(const std::string& url) {
  DaemonOptions o;
  o.database_url = url;
  o.settings["events.heartbeat_ms"] = "100";
  o.settings["cleanup.interval_s"] = "0";
  return o;
}

// The string at `key` of a msgpack map; "" when absent or not a string.
inline std::string StrField(const msgpack::object& map, std::string_view key) {
  const msgpack::object* v = FindMapValue(map, key);
  return v != nullptr && v->type == msgpack::type::STR ? std::string(v->via.str.ptr, v->via.str.size) : "";
}

inline Client NewClient(const std::vector<std::string>& endpoints, int64_t timeout_ms) {
  ClientOptions co;
  co.endpoints = endpoints;
  co.default_timeout_ms = timeout_ms;
  auto c = Client::Create(co);
  EXPECT_TRUE(c.ok());
  return std::move(c.value());
}

struct SessionRef {
  std::string id, token;
};

// A new user with this email; its id, or "" (and a test failure) when the
// call failed.
inline std::string CreateUser(Client& client, const std::string& email) {
  auto u = client.Call("create_user", [&](Packer& pk) {
    pk.pack_map(1);
    PackStr(pk, "email");
    PackStr(pk, email);
  });
  EXPECT_TRUE(u.ok()) << u.error().ToString();
  return u.ok() ? StrField(u->result(), "id") : "";
}

// `n` sessions of `user_id` for ten minutes; a failed call is a test failure
// and leaves its session out.
inline std::vector<SessionRef> CreateSessions(Client& client, const std::string& user_id, int n) {
  std::vector<SessionRef> out;
  for (int i = 0; i < n; i++) {
    auto r = client.Call("create_session", [&](Packer& pk) {
      pk.pack_map(2);
      PackStr(pk, "user_id");
      PackStr(pk, user_id);
      PackStr(pk, "ttl_s");
      pk.pack_uint64(600);
    });
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    if (r.ok()) out.push_back({StrField(r->result(), "id"), StrField(r->result(), "token")});
  }
  return out;
}

}  // namespace torii::test
