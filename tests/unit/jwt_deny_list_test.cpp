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

#include "msgpack_util.h"
#include "torii/protocol.h"

namespace torii {
namespace {

using test::Clock;
using test::Get;
using test::MsSince;
using test::S;

class FakeDaemon {
 public:
  explicit FakeDaemon(zmq::context_t& ctx) : router_(ctx, zmq::socket_type::router), pub_(ctx, zmq::socket_type::pub) {
    static std::atomic<int> n{0};
    int k = n++;
    requests_ = "inproc://deny-test-requests-" + std::to_string(k);
    events_ = "inproc://deny-test-events-" + std::to_string(k);
    router_.set(zmq::sockopt::linger, 0);
    pub_.set(zmq::sockopt::linger, 0);
    router_.bind(requests_);
    pub_.bind(events_);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeDaemon() {
    stop_ = true;
    thread_.join();
  }
  const std::string& requests() const { return requests_; }
  const std::string& events() const { return events_; }
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
    Queue({"jwt.revoked", jti, exp, false});
  }
  void RevokeUser(const std::string& user, Micros before) {
    StoreUser(user, before);
    Queue({"jwt.user_revoked", user, before, false});
  }
  // Burns one jwt seq: the next event shows a gap.
  void SkipSeq() { Queue({"", "", 0, true}); }
  void NewEpoch() { Queue({"epoch", "", 0, false}); }
  void Resync() { Queue({"torii.resync", "", 0, false}); }
  // Runs on the daemon thread before a page is answered.
  void BeforePage(std::function<void(FakeDaemon&)> f) {
    std::lock_guard<std::mutex> lock(mu_);
    before_page_ = std::move(f);
  }

 private:
  struct Q {
    std::string topic, key;
    Micros t;
    bool skip;
  };
  void Queue(Q q) {
    std::lock_guard<std::mutex> lock(mu_);
    queued_.push_back(std::move(q));
  }
  void Publish(const std::string& topic, const std::function<void(Packer&)>& extra, uint32_t keys) {
    std::string family = topic.substr(0, topic.find('.'));
    uint64_t seq = ++seqs_[family];
    msgpack::sbuffer b;
    Packer pk(b);
    pk.pack_map(3 + keys);
    PackStr(pk, "seq");
    pk.pack_uint64(seq);
    PackStr(pk, "epoch");
    PackStr(pk, epoch_);
    PackStr(pk, "at");
    PackTimestamp(pk, NowMicros());
    if (extra) extra(pk);
    pub_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    pub_.send(zmq::const_buffer(b.data(), b.size()), zmq::send_flags::none);
  }
  void Send(const Q& q) {
    if (q.skip) {
      seqs_["jwt"]++;
      return;
    }
    if (q.topic == "epoch") {
      epoch_ += "x";
      seqs_.clear();
      seqs_["jwt"] = 0;
      return;
    }
    if (q.topic == "torii.resync") {
      Publish(q.topic, [](Packer& pk) { PackStr(pk, "reason"); PackStr(pk, "test"); }, 1);
      return;
    }
    bool jti = q.topic == "jwt.revoked";
    Publish(q.topic, [&](Packer& pk) {
      if (jti) {
        PackStr(pk, "jti");
        PackStr(pk, q.key);
        PackStr(pk, "expires_at");
        PackTimestamp(pk, q.t);
        PackStr(pk, "user_id");
        pk.pack_nil();
      } else {
        PackStr(pk, "user_id");
        PackStr(pk, q.key);
        PackStr(pk, "issued_before");
        PackTimestamp(pk, q.t);
      }
    }, jti ? 3 : 2);
  }
  void Heartbeat() {
    std::map<std::string, uint64_t> seqs = seqs_;
    seqs["torii"]++;
    Publish("torii.heartbeat", [&](Packer& pk) {
      PackStr(pk, "seqs");
      pk.pack_map(static_cast<uint32_t>(seqs.size()));
      for (const auto& [f, s] : seqs) {
        PackStr(pk, f);
        pk.pack_uint64(s);
      }
    }, 1);
  }
  // A page of limit entries after the cursor: jtis by key, then users.
  void Answer(const std::vector<zmq::message_t>& frames) {
    pages_++;
    std::function<void(FakeDaemon&)> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hook = before_page_;
    }
    if (hook) hook(*this);
    auto body = msgpack::unpack(static_cast<const char*>(frames.back().data()), frames.back().size());
    const msgpack::object& root = body.get();
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
    msgpack::sbuffer b;
    Packer pk(b);
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
    for (size_t i = 0; i + 1 < frames.size(); i++) {
      router_.send(zmq::const_buffer(frames[i].data(), frames[i].size()), zmq::send_flags::sndmore);
    }
    router_.send(zmq::const_buffer(b.data(), b.size()), zmq::send_flags::none);
  }
  void Run() {
    auto last = Clock::now() - std::chrono::seconds(1);
    while (!stop_) {
      zmq::pollitem_t item{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(2));
      std::deque<Q> q;
      {
        std::lock_guard<std::mutex> lock(mu_);
        q.swap(queued_);
      }
      for (auto& e : q) Send(e);
      if (MsSince(last) >= 20) {
        Heartbeat();
        last = Clock::now();
      }
      for (;;) {
        std::vector<zmq::message_t> frames;
        zmq::message_t m;
        if (!router_.recv(m, zmq::recv_flags::dontwait)) break;
        frames.push_back(std::move(m));
        while (frames.back().more()) {
          zmq::message_t more;
          (void)router_.recv(more, zmq::recv_flags::none);
          frames.push_back(std::move(more));
        }
        Answer(frames);
      }
    }
  }

  zmq::socket_t router_, pub_;
  std::string requests_, events_;
  std::mutex mu_;
  std::map<std::string, Micros> jtis_, users_;
  std::deque<Q> queued_;
  std::function<void(FakeDaemon&)> before_page_;
  std::map<std::string, uint64_t> seqs_{{"jwt", 0}};
  std::string epoch_ = "fake-epoch";
  std::atomic<bool> stop_{false};
  std::atomic<int> pages_{0};
  std::thread thread_;
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
    co.endpoints = {daemon.requests()};
    co.context = &ctx;
    co.default_timeout_ms = 3000;
    auto c = Client::Create(co);
    EXPECT_TRUE(c.ok());
    client.emplace(std::move(c.value()));
    SubscriberOptions so;
    so.endpoints = {daemon.events()};
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
    auto start = Clock::now();
    while (MsSince(start) < 5000) {
      if (list->Refresh().ok() && !list->stale()) return true;
      sub->Poll(10);
    }
    return false;
  }
  bool WaitEvents(int n) {
    int target = events + n;
    auto start = Clock::now();
    while (events < target && MsSince(start) < 5000) sub->Poll(10);
    return events >= target;
  }
  bool WaitStale() {
    auto start = Clock::now();
    while (!list->stale() && MsSince(start) < 5000) sub->Poll(10);
    return list->stale();
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
  // A jti past its exp no longer counts.
  rig.daemon.Revoke("short", NowMicros() + 100000);
  ASSERT_TRUE(rig.WaitEvents(1));
  EXPECT_TRUE(rig.list->revoked("short"));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE(rig.list->revoked("short"));
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
    auto start = Clock::now();
    while (!rig.list->Check("during-" + std::to_string(k)).revoked && MsSince(start) < 2000) rig.sub->Poll(10);
    EXPECT_TRUE(rig.list->revoked("during-" + std::to_string(k))) << k;
  }
  for (int i = 0; i < 7; i++) EXPECT_TRUE(rig.list->revoked("p" + std::to_string(i)));
}

}  // namespace
}  // namespace torii
