// Many requests at once through the real toriid: 10,000 pipelined on one
// DEALER (the regression test for a missed ZMQ_FD edge: a reply sent from a
// database callback can swallow the edge of incoming requests, which then
// sit unread), and 1,000 from 50 concurrent clients. Every request must be
// answered exactly once, and replies must match their requests by id.
// Session lookups that wait together run as one batched statement: each
// still gets its own row (or not_found), and its own deadline.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "request_fixture.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

class RequestLoadTest : public RequestTest {};

TEST_F(RequestLoadTest, TenThousandPipelinedOnOneDealerAllAnsweredAndMatched) {
  constexpr uint64_t kN = 10000;
  std::vector<std::string> users;
  for (int i = 0; i < 4; i++) users.push_back(NewUser()["id"].str());
  // Request i: ping when i % 5 == 0 (answered by the daemon itself), else
  // get_user of users[i % 4] (a database round trip).
  auto body = [&](uint64_t i) {
    if (i % 5 == 0) return Req{.op = V("ping"), .id = V(i)}.Encode();
    return Req{.op = V("get_user"), .args = V::Map({{"id", users[i % 4]}}), .id = V(i)}.Encode();
  };
  std::vector<uint8_t> seen(kN, 0);
  uint64_t sent = 0, received = 0, failures = 0, mismatches = 0;
  auto deadline = Clock::now() + std::chrono::seconds(120);
  // Send as fast as the socket takes them, reading replies in between.
  while (received < kN) {
    while (sent < kN) {
      if (!client().TrySendRaw(body(sent))) break;
      sent++;
    }
    Reply r = client().Recv(sent == kN ? 1000 : 0);
    if (!r.received) {
      ASSERT_LT(Clock::now(), deadline) << "stalled: sent " << sent << ", received " << received;
      continue;
    }
    received++;
    uint64_t id = r.id().u64();
    ASSERT_TRUE(r.id().is_int()) << r.ToString();
    ASSERT_LT(id, kN);
    EXPECT_EQ(seen[id], 0) << "reply " << id << " twice";
    seen[id]++;
    if (!r.ok()) {
      failures++;
      if (failures < 5) ADD_FAILURE() << "request " << id << ": " << r.ToString();
      continue;
    }
    if (id % 5 == 0) {
      mismatches += r.result()["protocol"].i64() != 1;
    } else {
      mismatches += r.result()["id"].str() != users[id % 4];
    }
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_EQ(mismatches, 0u);
  for (uint64_t i = 0; i < kN; i++) ASSERT_EQ(seen[i], 1) << "request " << i;
  // Nothing extra arrives.
  EXPECT_FALSE(client().Recv(100).received);
  Reply stats = Call("stats");
  EXPECT_GE(stats.result()["requests"].u64(), kN);
  EXPECT_EQ(stats.result()["undeliverable"].u64(), 0u);
}

TEST_F(RequestLoadTest, ThousandFromFiftyConcurrentClients) {
  constexpr int kClients = 50;
  constexpr int kEach = 20;
  std::string uid = NewUser()["id"].str();
  std::atomic<int> ok{0}, bad{0}, lost{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; c++) {
    threads.emplace_back([&, c] {
      // Every fifth client is REQ (one at a time); the rest pipeline on DEALER.
      bool req = c % 5 == 0;
      WireClient w(daemon().request_endpoint(), req ? WireClient::Kind::kReq : WireClient::Kind::kDealer);
      std::vector<int> seen(kEach, 0);
      auto check = [&](const Reply& r) {
        if (!r.received) {
          lost++;
          return false;
        }
        int64_t id = r.id().i64();
        bool good = r.ok() && id >= c * 1000 && id < c * 1000 + kEach && seen[id - c * 1000]++ == 0;
        // Odd requests read the user; even ones create a session for it.
        if (good && id % 2 == 1) good = r.result()["id"].str() == uid;
        if (good && id % 2 == 0) good = r.result()["user_id"].str() == uid;
        (good ? ok : bad)++;
        return true;
      };
      auto body = [&](int i) {
        int64_t id = c * 1000 + i;
        if (id % 2 == 1) return Req{.op = V("get_user"), .args = V::Map({{"id", uid}}), .id = V(id)}.Encode();
        return Req{.op = V("create_session"), .args = V::Map({{"user_id", uid}, {"ttl_s", 60}}), .id = V(id)}
            .Encode();
      };
      if (req) {
        for (int i = 0; i < kEach; i++) {
          w.SendRaw(body(i));
          if (!check(w.Recv(60000))) return;
        }
        return;
      }
      for (int i = 0; i < kEach; i++) w.SendRaw(body(i));
      for (int i = 0; i < kEach; i++) {
        if (!check(w.Recv(60000))) return;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(ok.load(), kClients * kEach);
  Reply list = Call("list_sessions", V::Map({{"user_id", uid}}));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list.result()["sessions"].size(), static_cast<size_t>(kClients * kEach / 2));
}

TEST_F(RequestLoadTest, PipelinedSessionLookupsAreBatchedAndEachGetsItsOwnAnswer) {
  // Live sessions of two users, one expired session, and unknown tokens.
  std::vector<std::string> users = {NewUser()["id"].str(), NewUser()["id"].str()};
  std::vector<Value> live;
  for (int i = 0; i < 12; i++) live.push_back(NewSession(users[i % 2]));
  Value expired = NewSession(users[0]);
  ExpireSession(expired["id"].str());
  Reply before = Call("stats");
  ASSERT_TRUE(before.ok());
  uint64_t batches0 = before.result()["pool"]["lookup_batches"].u64();
  uint64_t batched0 = before.result()["pool"]["batched_lookups"].u64();

  // Request i asks for: a live session (repeats included, so one batch can
  // hold a token twice), the expired one, or a token that never existed.
  constexpr uint64_t kN = 3000;
  auto kind = [](uint64_t i) { return i % 7 == 3 ? 1 : i % 7 == 5 ? 2 : 0; };
  auto body = [&](uint64_t i) {
    std::string token = kind(i) == 0   ? live[i % live.size()]["token"].str()
                        : kind(i) == 1 ? expired["token"].str()
                                       : "no-such-token-" + std::to_string(i);
    return Req{.op = V("get_session"), .args = V::Map({{"token", token}}), .id = V(i)}.Encode();
  };
  std::vector<uint8_t> seen(kN, 0);
  uint64_t sent = 0, received = 0, wrong = 0;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (received < kN) {
    while (sent < kN && client().TrySendRaw(body(sent))) sent++;
    Reply r = client().Recv(sent == kN ? 1000 : 0);
    if (!r.received) {
      ASSERT_LT(Clock::now(), deadline) << "stalled: sent " << sent << ", received " << received;
      continue;
    }
    received++;
    ASSERT_TRUE(r.id().is_int()) << r.ToString();
    uint64_t id = r.id().u64();
    ASSERT_LT(id, kN);
    EXPECT_EQ(seen[id]++, 0) << "reply " << id << " twice";
    bool good;
    if (kind(id) == 0) {
      const Value& want = live[id % live.size()];
      good = r.ok() && r.result()["id"].str() == want["id"].str() &&
             r.result()["user_id"].str() == want["user_id"].str() &&
             r.result()["expires_at"].micros() == want["expires_at"].micros();
    } else {
      good = r.code() == "not_found";
    }
    if (!good && ++wrong < 5) ADD_FAILURE() << "request " << id << " (kind " << kind(id) << "): " << r.ToString();
  }
  EXPECT_EQ(wrong, 0u);
  Reply after = Call("stats");
  ASSERT_TRUE(after.ok());
  uint64_t batches = after.result()["pool"]["lookup_batches"].u64() - batches0;
  uint64_t batched = after.result()["pool"]["batched_lookups"].u64() - batched0;
  // Pipelined lookups did share statements: more lookups than batches.
  EXPECT_GT(batches, 0u);
  EXPECT_GT(batched, batches * 2) << batches << " batches for " << batched << " lookups";
  EXPECT_LE(batched, kN);
}

TEST_F(RequestLoadTest, BatchedLookupsHeldByALockTimeOutOnTimeThenServeAgain) {
  Value s = NewSession(NewUser()["id"].str());
  // Another session takes the table lock that every read waits for.
  PgConn locker = Connect(daemon().database_url());
  Exec(locker.get(), "BEGIN");
  Exec(locker.get(), "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE");
  constexpr int kN = 40, kTimeout = 400;
  auto start = Clock::now();
  for (int i = 0; i < kN; i++) {
    client().SendRaw(Req{.op = V("get_session"), .args = V::Map({{"token", s["token"].str()}}), .id = V(i),
                         .timeout_ms = V(kTimeout)}
                         .Encode());
  }
  int timeouts = 0;
  for (int i = 0; i < kN; i++) {
    Reply r = client().Recv(10000);
    ASSERT_TRUE(r.received) << "reply " << i << " missing";
    timeouts += r.code() == "timeout";
  }
  int64_t took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  EXPECT_EQ(timeouts, kN);
  // The batch was cancelled once all of its members gave up: the replies
  // came with the deadline, not after the lock.
  EXPECT_LT(took, kTimeout + 700);
  Exec(locker.get(), "ROLLBACK");
  Reply r = Call("get_session", V::Map({{"token", s["token"].str()}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["id"].str(), s["id"].str());
}

// A connection storm beside clients that send and never read: 20 DEALERs
// with the smallest receive buffers queue 500 get_session each and read
// nothing (their replies pile up in the daemon or are dropped there, never
// waited for), then 100 clients connect at once and pipeline lookups and
// pings. Every request of the 100 must be answered, once, correctly; the
// never-reading ones keep sending meanwhile. No timing is asserted beyond a
// generous deadline.
TEST_F(RequestLoadTest, StormOfClientsAllAnsweredBesideClientsThatNeverRead) {
  constexpr int kSlow = 20, kSlowEach = 500, kClients = 100, kEach = 6;
  std::string uid = NewUser()["id"].str();
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; i++) tokens.push_back(NewSession(uid)["token"].str());
  auto lookup = [&](int64_t id) {
    if (id % 3 == 0) return Req{.op = V("ping"), .id = V(id)}.Encode();
    return Req{.op = V("get_session"), .args = V::Map({{"token", tokens[size_t(id) % tokens.size()]}}), .id = V(id)}
        .Encode();
  };
  std::vector<zmq::socket_t> slow;
  auto send_slow = [&](int n) {
    for (auto& s : slow) {
      for (int i = 0; i < n; i++) {
        std::string body = lookup(1 + i * 3);
        if (!s.send(zmq::const_buffer("", 0), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) break;
        s.send(zmq::const_buffer(body.data(), body.size()), zmq::send_flags::none);
      }
    }
  };
  for (int i = 0; i < kSlow; i++) {
    zmq::socket_t s(TestContext(), zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvhwm, 1);
    s.set(zmq::sockopt::rcvbuf, 4096);
    s.connect(daemon().request_endpoint());
    slow.push_back(std::move(s));
  }
  send_slow(kSlowEach);

  std::vector<std::unique_ptr<WireClient>> clients;
  for (int c = 0; c < kClients; c++) {
    clients.push_back(std::make_unique<WireClient>(daemon().request_endpoint()));
    for (int i = 0; i < kEach; i++) clients.back()->SendRaw(lookup(c * 100 + i));
  }
  send_slow(kSlowEach);
  int ok = 0, bad = 0, lost = 0;
  for (int c = 0; c < kClients; c++) {
    std::vector<int> seen(kEach, 0);
    for (int i = 0; i < kEach; i++) {
      Reply r = clients[size_t(c)]->Recv(60000);
      if (!r.received) {
        lost++;
        break;
      }
      int64_t id = r.id().i64();
      bool good = r.ok() && id >= c * 100 && id < c * 100 + kEach && seen[size_t(id - c * 100)]++ == 0;
      if (good && id % 3 != 0) good = r.result()["user_id"].str() == uid;
      if (good && id % 3 == 0) good = r.result()["protocol"].i64() == 1;
      if (!good && bad++ < 5) ADD_FAILURE() << "client " << c << ": " << r.ToString();
      ok += good;
    }
  }
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(ok, kClients * kEach);
  // The daemon still answers, and has read the never-reading clients' requests.
  Reply stats = Call("stats");
  ASSERT_TRUE(stats.ok()) << stats.ToString();
  EXPECT_GE(stats.result()["requests"].u64(), uint64_t(kClients * kEach));
}

}  // namespace
}  // namespace torii::test
