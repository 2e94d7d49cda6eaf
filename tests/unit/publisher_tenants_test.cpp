// The event socket's tenants (PROTOCOL.md section 6): RewriteSubscription's
// rule, and a Publisher with CURVE (XPUB_MANUAL) on a libuv loop of this
// thread, with SUB peers whose keys are unbound, bound to a tenant and bound
// to the default tenant, each subscribed to everything (""). Events are
// published directly (the payloads the listener would turn into them).
#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "pg_cluster.h"
#include "publisher.h"
#include "security.h"
#include "torii/curve.h"
#include "torii/values.h"

namespace torii::daemon {
namespace {

namespace fs = std::filesystem;

TEST(RewriteSubscription, ByBinding) {
  const std::vector<std::string> roots = {"session.", "torii.", "user."};
  using V = std::vector<std::string>;
  // Unbound: unchanged, whatever it is.
  EXPECT_EQ(RewriteSubscription(std::nullopt, "", roots), V{""});
  EXPECT_EQ(RewriteSubscription(std::nullopt, "@b/user.", roots), V{"@b/user."});
  // Bound to acme: inside acme's stream, idempotent for its own prefix.
  EXPECT_EQ(RewriteSubscription(std::string("acme"), "", roots), V{"@acme/"});
  EXPECT_EQ(RewriteSubscription(std::string("acme"), "user.", roots), V{"@acme/user."});
  EXPECT_EQ(RewriteSubscription(std::string("acme"), "@acme/user.", roots), V{"@acme/user."});
  EXPECT_EQ(RewriteSubscription(std::string("acme"), "@b/user.", roots), V{"@acme/@b/user."});
  // Bound to the default tenant: "" is every default family, `@` nothing.
  EXPECT_EQ(RewriteSubscription(std::string("default"), "", roots), roots);
  EXPECT_EQ(RewriteSubscription(std::string("default"), "user.", roots), V{"user."});
  EXPECT_EQ(RewriteSubscription(std::string("default"), "u", roots), V{"u"});
  EXPECT_EQ(RewriteSubscription(std::string("default"), "@", roots), V{});
  EXPECT_EQ(RewriteSubscription(std::string("default"), "@b/", roots), V{});
}

CurveKeyPair NewPair() {
  auto p = GenerateCurveKeyPair();
  EXPECT_TRUE(p.ok());
  return *p;
}

struct Got {
  std::string topic;
  std::map<std::string, std::string> str;  // string-valued body keys
  uint64_t seq = 0;
  std::map<std::string, uint64_t> seqs;  // a heartbeat's
};

class PublisherTenantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeTempDir("torii-pubt");
    uv_loop_init(&loop_);
    server_ = NewPair();
    free_ = NewPair();
    acme_ = NewPair();
    dflt_ = NewPair();
    Write("free.pub", free_);
    Write("acme/acme.pub", acme_);
    Write("default/d.pub", dflt_);
    zap_ = std::make_unique<ZapHandler>(&loop_, ctx_);
    ASSERT_TRUE(zap_->Start(dir_ + "/keys").ok());
    pub_ = std::make_unique<Publisher>(&loop_, ctx_, zap_.get());
    pub_->AddFamily("jwt");
    ASSERT_TRUE(ApplyCurveServer(pub_->socket(), server_.secret_key).ok());
    ASSERT_TRUE(pub_->Bind({"tcp://127.0.0.1:*"}, 100000).ok());
    endpoint_ = pub_->socket().get(zmq::sockopt::last_endpoint);
  }
  void TearDown() override {
    subs_.clear();
    pub_->Close();
    zap_->Close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    pub_.reset();
    zap_.reset();
    uv_loop_close(&loop_);
    test::RemoveTree(dir_);
  }
  void Write(const std::string& name, const CurveKeyPair& p) {
    fs::path path(dir_ + "/keys/" + name);
    fs::create_directories(path.parent_path());
    std::ofstream(path) << p.public_key << "\n";
  }

  zmq::socket_t& Sub(const CurveKeyPair& me, const std::string& subscription = "") {
    subs_.emplace_back(ctx_, zmq::socket_type::sub);
    zmq::socket_t& s = subs_.back();
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::curve_serverkey, server_.public_key);
    s.set(zmq::sockopt::curve_publickey, me.public_key);
    s.set(zmq::sockopt::curve_secretkey, me.secret_key);
    s.set(zmq::sockopt::subscribe, subscription);
    s.connect(endpoint_);
    return s;
  }

  // Runs the loop until the publisher has received `n` subscriptions.
  void AwaitSubscriptions(uint64_t n) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (pub_->stats().subscriptions < n && std::chrono::steady_clock::now() < until) {
      // Not zmq::poll on the publisher's socket: that would take the
      // ZMQ_FD signal the loop waits for.
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    uv_run(&loop_, UV_RUN_NOWAIT);
    ASSERT_GE(pub_->stats().subscriptions, n);
  }

  // Every message `s` has now (after a short settle).
  std::vector<Got> Read(zmq::socket_t& s) {
    std::vector<Got> out;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < until) {
      zmq::message_t topic, body;
      if (!s.recv(topic, zmq::recv_flags::dontwait)) {
        zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, 1, std::chrono::milliseconds(20));
        continue;
      }
      EXPECT_TRUE(s.recv(body, zmq::recv_flags::none));
      Got g;
      g.topic = topic.to_string();
      auto h = msgpack::unpack(static_cast<const char*>(body.data()), body.size());
      const msgpack::object& m = h.get();
      for (uint32_t i = 0; i < m.via.map.size; i++) {
        const auto& kv = m.via.map.ptr[i];
        std::string key = kv.key.as<std::string>();
        if (kv.val.type == msgpack::type::STR) g.str[key] = kv.val.as<std::string>();
        if (key == "seq") g.seq = kv.val.as<uint64_t>();
        if (key == "seqs") g.seqs = kv.val.as<std::map<std::string, uint64_t>>();
      }
      out.push_back(std::move(g));
    }
    return out;
  }

  void Event(const std::string& family, const std::string& kind, const std::string& id, const std::string& tenant) {
    pub_->Publish(family, kind, 1, [&](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, id);
    }, std::nullopt, tenant);
  }

  std::string dir_;
  uv_loop_t loop_;
  zmq::context_t ctx_;
  CurveKeyPair server_, free_, acme_, dflt_;
  std::unique_ptr<ZapHandler> zap_;
  std::unique_ptr<Publisher> pub_;
  std::string endpoint_;
  std::list<zmq::socket_t> subs_;
};

TEST_F(PublisherTenantsTest, EachPeerGetsItsTenantsStream) {
  zmq::socket_t& unbound = Sub(free_);
  zmq::socket_t& acme = Sub(acme_);
  zmq::socket_t& dflt = Sub(dflt_);
  AwaitSubscriptions(3);

  Event("user", "created", "u1", "");
  Event("user", "created", "a1", "acme");
  Event("session", "deleted", "b1", "beta");
  Event("user", "created", "a2", "acme");
  Event("user", "created", "u2", "default");
  pub_->Resync("a test");
  EXPECT_TRUE(pub_->KnowsTenant("acme"));
  EXPECT_TRUE(pub_->KnowsTenant("beta"));
  EXPECT_EQ(pub_->stats().tenants, 2u);

  auto topics = [](const std::vector<Got>& v) {
    std::vector<std::string> out;
    for (const auto& g : v) out.push_back(g.topic + "#" + std::to_string(g.seq));
    return out;
  };
  using V = std::vector<std::string>;
  auto all = Read(unbound);
  EXPECT_EQ(topics(all), (V{"user.created#1", "@acme/user.created#1", "@beta/session.deleted#1",
                            "@acme/user.created#2", "user.created#2", "torii.resync#1", "@acme/torii.resync#1",
                            "@beta/torii.resync#1"}));
  ASSERT_EQ(all.size(), 8u);
  EXPECT_EQ(all[0].str.count("tenant"), 0u) << "the default tenant's body has no tenant key";
  EXPECT_EQ(all[1].str["tenant"], "acme");
  EXPECT_EQ(all[2].str["tenant"], "beta");
  EXPECT_EQ(all[7].str["tenant"], "beta");

  EXPECT_EQ(topics(Read(acme)), (V{"@acme/user.created#1", "@acme/user.created#2", "@acme/torii.resync#1"}));
  EXPECT_EQ(topics(Read(dflt)), (V{"user.created#1", "user.created#2", "torii.resync#1"}));
  EXPECT_EQ(pub_->seq("acme", "user"), 2u);
  EXPECT_EQ(pub_->seq("beta", "session"), 1u);
  EXPECT_EQ(pub_->seq("user"), 2u);
}

TEST_F(PublisherTenantsTest, HeartbeatsPerTenant) {
  zmq::socket_t& acme = Sub(acme_, "@acme/torii.");
  zmq::socket_t& unbound = Sub(free_, "@beta/torii.");
  AwaitSubscriptions(2);
  ASSERT_TRUE(pub_->AddTenant("acme"));
  ASSERT_TRUE(pub_->AddTenant("beta"));
  EXPECT_FALSE(pub_->AddTenant("Not Valid"));
  Event("session", "created", "a1", "acme");
  pub_->StartHeartbeat(10);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (std::chrono::steady_clock::now() < until) uv_run(&loop_, UV_RUN_NOWAIT);
  pub_->StopHeartbeat();

  auto got = Read(acme);
  ASSERT_FALSE(got.empty());
  for (const auto& g : got) {
    EXPECT_EQ(g.topic, "@acme/torii.heartbeat");
    EXPECT_EQ(g.str.at("tenant"), "acme");
  }
  // acme's heartbeat shows acme's seqs (one session event), its own torii
  // seq counting acme's heartbeats from 1, and every family.
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[0].seqs, (std::map<std::string, uint64_t>{{"jwt", 0}, {"session", 1}, {"torii", 1}, {"user", 0}}));
  auto beta = Read(unbound);
  ASSERT_FALSE(beta.empty());
  EXPECT_EQ(beta[0].topic, "@beta/torii.heartbeat");
  EXPECT_EQ(beta[0].seqs.at("session"), 0u);
}

// A SUB socket filters on its own subscriptions too, so a bound peer names
// its tenant's prefix (the rewrite keeps it) or subscribes to "".
TEST_F(PublisherTenantsTest, UnsubscribeMirrorsTheRewrite) {
  zmq::socket_t& acme = Sub(acme_, "@acme/user.");
  // Without the prefix: confined to acme's stream by the rewrite (and then
  // filtered out by the SUB itself), never the default tenant's user.*.
  zmq::socket_t& plain = Sub(acme_, "user.");
  AwaitSubscriptions(2);
  Event("user", "created", "a1", "acme");
  Event("user", "created", "u1", "");
  EXPECT_EQ(Read(acme).size(), 1u);
  EXPECT_EQ(Read(plain).size(), 0u);
  acme.set(zmq::sockopt::unsubscribe, "@acme/user.");
  AwaitSubscriptions(3);
  Event("user", "created", "a2", "acme");
  EXPECT_EQ(Read(acme).size(), 0u);
}

}  // namespace
}  // namespace torii::daemon
