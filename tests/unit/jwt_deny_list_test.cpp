// torii::JwtDenyList over a scripted daemon: a ROUTER that pages
// list_jwt_revocations from an in-memory list and a PUB that sends
// heartbeats and jwt.* events, inproc on one thread. Covers the paged load,
// events applied, fail-closed and fail-open while stale, stale on a seq gap,
// an epoch change and a resync until the next load, expiry of jtis, and
// events that arrive during a load.
#include "torii/jwt_deny_list.h"

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "eventually.h"
#include "msgpack_util.h"
#include "scripted_daemon.h"
#include "torii/protocol.h"

namespace torii {
namespace {

using test::Eventually;
using test::Get;
using test::S;

// The scripted daemon (tests/support/scripted_daemon.h): the stored list
// that list_jwt_revocations pages through, guarded by `mu_`.
class FakeDaemon : public test::ScriptedDaemon {
 public:
  explicit FakeDaemon(zmq::context_t& ctx) : ScriptedDaemon(ctx, "deny-test", {{"jwt", 0}}) { Start(); }
  ~FakeDaemon() override { Stop(); }
  int pages() const { return pages_.load(); }

  // The stored list (what list_jwt_revocations pages through).
  void Store(const std::string& jti, Micros exp) {
    std::lock_guard<std::mutex> lock(mu_);
    jtis_[jti] = exp;
  }
  void StoreUser(const std::string& user, Micros before) {
    std::lock_guard<std::mutex> lock(mu_);
    users_[user] = before;
  }
  // Stores and publishes jwt.revoked (as the daemon does after the commit).
  void Revoke(const std::string& jti, Micros exp) {
    Store(jti, exp);
    PublishLater("jwt.revoked", [jti, exp](Packer& pk) {
      PackStr(pk, "jti");
      PackStr(pk, jti);
      PackStr(pk, "expires_at");
      PackTimestamp(pk, exp);
      PackStr(pk, "user_id");
      pk.pack_nil();
    }, 3);
  }
  void RevokeUser(const std::string& user, Micros before) {
    StoreUser(user, before);
    PublishLater("jwt.user_revoked", [user, before](Packer& pk) {
      PackStr(pk, "user_id");
      PackStr(pk, user);
      PackStr(pk, "issued_before");
      PackTimestamp(pk, before);
    }, 2);
  }
  // Burns one jwt seq: the next event shows a gap.
  void SkipSeq() { SkipSeqLater("jwt"); }
  void NewEpoch() { NewEpochLater(); }
  void Resync() {
    PublishLater("torii.resync", [](Packer& pk) { PackStr(pk, "reason"); PackStr(pk, "test"); }, 1);
  }
  // Runs on the daemon thread before a page is answered.
  void BeforePage(std::function<void(FakeDaemon&)> f) {
    std::lock_guard<std::mutex> lock(mu_);
    before_page_ = std::move(f);
  }

 private:
  // A page of limit entries after the cursor: jtis by key, then users.
  void Answer(const msgpack::object& root, Packer& pk) override {
    pages_++;
    std::function<void(FakeDaemon&)> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hook = before_page_;
    }
    if (hook) hook(*this);
    uint64_t id = Get(root, "id")->via.u64;
    const msgpack::object* args = Get(root, "args");
    int64_t limit = Get(*args, "limit")->via.i64;
    const msgpack::object* after = Get(*args, "after");
    std::string cur = after ? std::string(S(*after)) : "";
    std::vector<std::pair<std::string, Micros>> js, us;
    std::string next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Micros now = NowMicros();
      int64_t n = 0;
      for (const auto& [k, v] : jtis_) {
        if (v <= now || (!cur.empty() && (cur[0] == 'u' || "j" + k <= cur))) continue;
        if (n == limit) break;
        js.emplace_back(k, v);
        n++;
        next = "j" + k;
      }
      for (const auto& [k, v] : users_) {
        if (!cur.empty() && cur[0] == 'u' && "u" + k <= cur) continue;
        if (n == limit) break;
        us.emplace_back(k, v);
        n++;
        next = "u" + k;
      }
      if (n < limit) next.clear();
    }
    pk.pack_map(3);
    PackStr(pk, "id");
    pk.pack_uint64(id);
    PackStr(pk, "ok");
    pk.pack_true();
    PackStr(pk, "result");
    pk.pack_map(3);
    PackStr(pk, "jtis");
    pk.pack_array(static_cast<uint32_t>(js.size()));
    for (const auto& [k, v] : js) {
      pk.pack_map(2);
      PackStr(pk, "jti");
      PackStr(pk, k);
      PackStr(pk, "expires_at");
      PackTimestamp(pk, v);
    }
    PackStr(pk, "users");
    pk.pack_array(static_cast<uint32_t>(us.size()));
    for (const auto& [k, v] : us) {
      pk.pack_map(2);
      PackStr(pk, "user_id");
      PackStr(pk, k);
      PackStr(pk, "issued_before");
      PackTimestamp(pk, v);
    }
    PackStr(pk, "next");
    if (next.empty()) {
      pk.pack_nil();
    } else {
      PackStr(pk, next);
    }
  }

  std::mutex mu_;
  std::map<std::string, Micros> jtis_, users_;
  std::function<void(FakeDaemon&)> before_page_;
  std::atomic<int> pages_{0};
};

struct Rig {
  zmq::context_t ctx;
  FakeDaemon daemon{ctx};
  std::optional<Client> client;
  std::unique_ptr<Subscriber> sub;
  std::unique_ptr<JwtDenyList> list;
  int events = 0;

  explicit Rig(bool fail_closed = true) {
    ClientOptions co;
    co.endpoints = {daemon.requests_endpoint()};
    co.context = &ctx;
    co.default_timeout_ms = 3000;
    auto c = Client::Create(co);
    EXPECT_TRUE(c.ok());
    client.emplace(std::move(c.value()));
    SubscriberOptions so;
    so.endpoints = {daemon.events_endpoint()};
    so.families = {"jwt"};
    so.context = &ctx;
    so.heartbeat_ms = 1000;
    auto s = Subscriber::Create(so);
    EXPECT_TRUE(s.ok());
    sub = std::move(s.value());
    sub->AddListener([this](const Event&) { events++; }, nullptr);
    JwtDenyListOptions o;
    o.fail_closed = fail_closed;
    o.page_size = 3;
    list = std::make_unique<JwtDenyList>(*client, *sub, o);
  }
  ~Rig() {
    list.reset();
    sub.reset();
    client.reset();
  }
  bool Load() {
    return Eventually([&] { return list->Refresh().ok() && !list->stale(); }, 5000, [&] { sub->Poll(10); });
  }
  bool WaitEvents(int n) {
    int target = events + n;
    return Eventually([&] { return events >= target; }, 5000, [&] { sub->Poll(10); });
  }
  bool WaitStale() {
    return Eventually([&] { return list->stale(); }, 5000, [&] { sub->Poll(10); });
  }
};

Micros InOneHour() { return NowMicros() + 3600LL * 1000000; }
const char* kUser = "0b5e3c1a-1111-4222-8333-444455556666";

TEST(JwtDenyListTest, LoadsEveryPageThenAnswersInMemory) {
  Rig rig;
  for (int i = 0; i < 10; i++) rig.daemon.Store("j" + std::to_string(i), InOneHour());
  rig.daemon.Store("expired", NowMicros() - 1000000);
  rig.daemon.StoreUser(kUser, NowMicros() - 60000000);
  EXPECT_TRUE(rig.list->stale());
  EXPECT_TRUE(rig.list->revoked("x"));  // fail closed before a load
  ASSERT_TRUE(rig.Load());
  EXPECT_EQ(rig.daemon.pages(), 4);  // 11 entries, 3 a page
  EXPECT_EQ(rig.list->jti_count(), 10u);
  EXPECT_EQ(rig.list->user_count(), 1u);
  int pages = rig.daemon.pages();
  EXPECT_TRUE(rig.list->revoked("j0"));
  EXPECT_TRUE(rig.list->revoked("j9"));
  EXPECT_FALSE(rig.list->revoked("expired"));
  EXPECT_FALSE(rig.list->revoked("x"));
  EXPECT_TRUE(rig.list->revoked("x", kUser, NowMicros() - 120000000));
  EXPECT_FALSE(rig.list->revoked("x", kUser, NowMicros()));
  EXPECT_TRUE(rig.list->revoked("x", kUser));
  EXPECT_EQ(rig.daemon.pages(), pages);  // no request per check
}

TEST(JwtDenyListTest, EventsAreApplied) {
  Rig rig;
  ASSERT_TRUE(rig.Load());
  EXPECT_FALSE(rig.list->revoked("late"));
  rig.daemon.Revoke("late", InOneHour());
  rig.daemon.RevokeUser(kUser, NowMicros());
  ASSERT_TRUE(rig.WaitEvents(2));
  EXPECT_TRUE(rig.list->revoked("late"));
  EXPECT_TRUE(rig.list->revoked("x", kUser, NowMicros() - 1000000));
  EXPECT_FALSE(rig.list->stale());
  EXPECT_EQ(rig.list->stats().events, 2u);
  // A jti past its exp no longer counts. The exp is a second ahead, so the
  // first check runs before it; one that ran later (a stalled machine)
  // proves nothing either way and is not held against the list.
  Micros exp = NowMicros() + 1000000;
  rig.daemon.Revoke("short", exp);
  ASSERT_TRUE(rig.WaitEvents(1));
  bool listed = rig.list->revoked("short");
  if (NowMicros() < exp) {
    EXPECT_TRUE(listed) << "revoked and not yet expired";
  }
  EXPECT_TRUE(Eventually([&] { return !rig.list->revoked("short"); }, 5000)) << "still revoked after its exp";
  rig.list->PurgeExpired();
  EXPECT_EQ(rig.list->jti_count(), 1u);
}

TEST(JwtDenyListTest, AGapMakesItStaleUntilTheNextLoad) {
  Rig rig(/*fail_closed=*/false);
  ASSERT_TRUE(rig.Load());
  rig.daemon.SkipSeq();
  rig.daemon.Revoke("after-gap", InOneHour());
  ASSERT_TRUE(rig.WaitStale());
  JwtVerdict v = rig.list->Check("unknown");
  EXPECT_TRUE(v.stale);
  EXPECT_FALSE(v.revoked);
  EXPECT_FALSE(rig.list->revoked("unknown"));  // fail open by choice
  ASSERT_TRUE(rig.Load());
  EXPECT_TRUE(rig.list->revoked("after-gap"));
  EXPECT_FALSE(rig.list->stale());
}

TEST(JwtDenyListTest, EpochChangeAndResyncMakeItStale) {
  Rig rig;
  ASSERT_TRUE(rig.Load());
  rig.daemon.NewEpoch();
  ASSERT_TRUE(rig.WaitStale());
  EXPECT_TRUE(rig.list->revoked("anything"));  // fail closed
  ASSERT_TRUE(rig.Load());
  EXPECT_FALSE(rig.list->revoked("anything"));
  rig.daemon.Resync();
  ASSERT_TRUE(rig.WaitStale());
  EXPECT_TRUE(rig.list->revoked("anything"));
  ASSERT_TRUE(rig.Load());
  EXPECT_FALSE(rig.list->stale());
}

TEST(JwtDenyListTest, EventsDuringTheLoadCount) {
  Rig rig;
  for (int i = 0; i < 7; i++) rig.daemon.Store("p" + std::to_string(i), InOneHour());
  std::atomic<int> n{0};
  // Between pages a revocation is stored and published: whether it lands in
  // a page or only in an event, it must be in the list after the load.
  rig.daemon.BeforePage([&n](FakeDaemon& d) {
    int k = n++;
    if (k < 3) d.Revoke("during-" + std::to_string(k), InOneHour());
  });
  ASSERT_TRUE(rig.Load());
  ASSERT_TRUE(rig.WaitEvents(0));
  for (int k = 0; k < 3; k++) {
    Eventually([&] { return rig.list->Check("during-" + std::to_string(k)).revoked; }, 2000,
               [&] { rig.sub->Poll(10); });
    EXPECT_TRUE(rig.list->revoked("during-" + std::to_string(k))) << k;
  }
  for (int i = 0; i < 7; i++) EXPECT_TRUE(rig.list->revoked("p" + std::to_string(i)));
}

}  // namespace
}  // namespace torii
