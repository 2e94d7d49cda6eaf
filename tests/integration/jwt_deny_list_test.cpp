// torii::JwtDenyList against the real daemon (issue 15): a reader thread
// checks jtis while another client revokes them; no jti whose jwt.revoked
// event was delivered is ever accepted afterwards, and the list ends up with
// every revocation. Stale (and fail-closed) when the publisher restarts,
// fresh again after a reload.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "request_fixture.h"
#include "eventually.h"
#include "torii/client.h"
#include "torii/jwt_deny_list.h"
#include "torii/subscriber.h"

namespace torii::test {
namespace {

class DenyListTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    DaemonOptions o;
    o.settings["events.heartbeat_ms"] = "100";
    o.settings["cleanup.interval_s"] = "0";
    return o;
  }
  std::unique_ptr<Subscriber> NewSubscriber() {
    SubscriberOptions so;
    so.endpoints = {daemon().event_endpoint()};
    so.families = {"jwt"};
    so.heartbeat_ms = 100;
    auto sub = Subscriber::Create(so);
    EXPECT_TRUE(sub.ok());
    return std::move(sub.value());
  }
  Client NewClient() {
    ClientOptions co;
    co.endpoints = {daemon().request_endpoint()};
    auto c = Client::Create(co);
    EXPECT_TRUE(c.ok());
    return std::move(c.value());
  }
  // Loads, polling the subscriber until it is live; false after 10 s.
  static bool LoadWithin(JwtDenyList& list, Subscriber& sub, int ms = 10000) {
    return Eventually([&] { return list.Refresh().ok() && !list.stale(); }, ms, [&] { sub.Poll(50); });
  }
};

TEST_F(DenyListTest, LoadsTheListAndAnswersLikeTheDaemon) {
  int64_t exp = NowMs() + 3600 * 1000;
  const std::string user = "0b5e3c1a-1111-4222-8333-444455556666";
  for (int i = 0; i < 30; i++) {
    ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "pre-" + std::to_string(i)}, {"expires_at", V(exp)}})).ok());
  }
  ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "gone"}, {"expires_at", V(NowMs() - 1000)}})).ok());
  int64_t cutoff_ms = NowMs() - 60000;
  ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", user}, {"issued_before", V(cutoff_ms)}})).ok());

  auto sub = NewSubscriber();
  Client client = NewClient();
  JwtDenyListOptions opt;
  opt.page_size = 7;  // several pages
  JwtDenyList list(client, *sub, opt);
  EXPECT_TRUE(list.stale());
  EXPECT_TRUE(list.revoked("anything"));  // fail closed before the load
  EXPECT_FALSE(list.Check("anything").revoked);
  ASSERT_TRUE(LoadWithin(list, *sub));
  EXPECT_EQ(list.jti_count(), 30u);
  EXPECT_EQ(list.user_count(), 1u);
  EXPECT_TRUE(list.revoked("pre-0"));
  EXPECT_TRUE(list.revoked("pre-29"));
  EXPECT_FALSE(list.revoked("gone"));
  EXPECT_FALSE(list.revoked("other"));
  EXPECT_TRUE(list.revoked("other", user, (cutoff_ms - 1000) * 1000));
  EXPECT_TRUE(list.revoked("other", "0B5E3C1A-1111-4222-8333-444455556666", (cutoff_ms - 1000) * 1000));
  EXPECT_FALSE(list.revoked("other", user, (cutoff_ms + 1000) * 1000));
  EXPECT_TRUE(list.revoked("other", user));  // no issued_at: the cutoff counts
  EXPECT_FALSE(list.revoked("other", "0b5e3c1a-1111-4222-8333-444455556667", 0));
}

TEST_F(DenyListTest, NeverAcceptsAJtiAfterItsRevocationWasDelivered) {
  constexpr int kRevokes = 300;
  std::atomic<bool> loaded{false}, stop{false};
  uint64_t accepted_after_delivery = 0, checks = 0;
  size_t delivered_count = 0;
  bool all_in_the_end = false;
  std::string failure;

  std::thread reader([&] {
    auto sub = NewSubscriber();
    Client client = NewClient();
    JwtDenyListOptions opt;
    opt.fail_closed = false;  // so that an accepted revoked jti would show
    JwtDenyList list(client, *sub, opt);
    std::set<std::string> delivered;
    // Added after the list's own listener: it sees each event right after the list did.
    sub->AddListener([&](const Event& e) {
      if (e.topic == "jwt.revoked") delivered.insert(std::string(e.Str("jti")));
    }, nullptr);
    if (!LoadWithin(list, *sub)) {
      failure = "the list never loaded";
      loaded = true;
      return;
    }
    loaded = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int i = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      sub->Poll(1);
      if (list.stale()) {
        failure = "the list went stale during the run";
        break;
      }
      // Every delivered jti, and some not yet revoked.
      for (const auto& jti : delivered) {
        checks++;
        if (!list.revoked(jti)) accepted_after_delivery++;
      }
      checks++;
      list.revoked("r-" + std::to_string(i++ % kRevokes));
      if (stop && delivered.size() >= kRevokes) break;
    }
    delivered_count = delivered.size();
    all_in_the_end = true;
    for (int k = 0; k < kRevokes; k++) {
      if (!list.revoked("r-" + std::to_string(k))) all_in_the_end = false;
    }
  });

  while (!loaded) std::this_thread::yield();
  WireClient writer(daemon().request_endpoint());
  int64_t exp = NowMs() + 3600 * 1000;
  for (int k = 0; k < kRevokes; k++) {
    Reply r = writer.Call("revoke_jwt", V::Map({{"jti", "r-" + std::to_string(k)}, {"expires_at", V(exp)}}));
    ASSERT_TRUE(r.ok()) << r.ToString();
  }
  stop = true;
  reader.join();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(delivered_count, static_cast<size_t>(kRevokes));
  EXPECT_EQ(accepted_after_delivery, 0u);
  EXPECT_GT(checks, static_cast<uint64_t>(kRevokes));
  EXPECT_TRUE(all_in_the_end);
}

TEST_F(DenyListTest, StaleWhenThePublisherRestartsUntilReloaded) {
  auto sub = NewSubscriber();
  Client client = NewClient();
  JwtDenyList list(client, *sub);
  ASSERT_TRUE(LoadWithin(list, *sub));
  EXPECT_FALSE(list.revoked("a"));
  // Stale conditions seen so far (the subscriber's start may count one).
  const uint64_t stale_before = list.stats().stale;

  ASSERT_EQ(daemon().Stop(), 0);
  // Revoked while no daemon publishes: the list cannot know.
  daemon().Start();
  ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "during"}, {"expires_at", V(NowMs() + 600000)}})).ok());
  // Stale: missed heartbeats and then the new epoch. stale() turns true as
  // soon as the subscriber is not live, which can be before a Poll has
  // delivered the on_stale that the counter counts: wait for the counter.
  EXPECT_TRUE(Eventually([&] { return list.stats().stale > stale_before; }, 10000, [&] { sub->Poll(50); }));
  EXPECT_TRUE(list.stale());
  EXPECT_TRUE(list.revoked("a"));  // fail closed
  JwtVerdict v = list.Check("a");
  EXPECT_TRUE(v.stale);
  EXPECT_FALSE(v.revoked);

  ASSERT_TRUE(LoadWithin(list, *sub));
  EXPECT_FALSE(list.stale());
  EXPECT_FALSE(list.revoked("a"));
  EXPECT_TRUE(list.revoked("during"));
}

}  // namespace
}  // namespace torii::test
