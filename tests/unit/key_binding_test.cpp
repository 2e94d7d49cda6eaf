// Binding a CURVE key to a tenant (PROTOCOL.md section 6): the authorized
// keys folder's tenant sub-folders (lib/torii/curve), tenant names and topic
// prefixes (lib/torii/tenant), and ZapHandler::BoundTenant on real messages:
// a ROUTER request and an XPUB subscription, each from a CURVE peer admitted
// by the handler on a libuv loop in this thread. The XPUB case checks what
// the event socket relies on: libzmq attaches the peer's User-Id to the
// subscription messages an XPUB_MANUAL socket hands over.
#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "pg_cluster.h"
#include "security.h"
#include "torii/curve.h"
#include "torii/tenant.h"

namespace torii {
namespace {

namespace fs = std::filesystem;

CurveKeyPair NewPair() {
  auto p = GenerateCurveKeyPair();
  EXPECT_TRUE(p.ok());
  return *p;
}

std::array<uint8_t, 32> Raw(const CurveKeyPair& p) { return *DecodeZ85Key(p.public_key); }

class KeyBindingTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::MakeTempDir("torii-bind"); }
  void TearDown() override { test::RemoveTree(dir_); }
  void Write(const std::string& name, const std::string& text) {
    fs::create_directories(fs::path(dir_ + "/" + name).parent_path());
    std::ofstream(dir_ + "/" + name) << text;
  }
  std::string dir_;
};

TEST(TenantNames, RuleAndTopicPrefix) {
  EXPECT_TRUE(IsValidTenantName("acme"));
  EXPECT_TRUE(IsValidTenantName("a.b-c_9"));
  EXPECT_TRUE(IsValidTenantName(std::string(64, 'x')));
  EXPECT_FALSE(IsValidTenantName(""));
  EXPECT_FALSE(IsValidTenantName(std::string(65, 'x')));
  EXPECT_FALSE(IsValidTenantName("Acme"));
  EXPECT_FALSE(IsValidTenantName("a/b"));
  EXPECT_FALSE(IsValidTenantName("a b"));
  EXPECT_FALSE(IsValidTenantName("@a"));

  EXPECT_EQ(TenantTopicPrefix("default"), "");
  EXPECT_EQ(TenantTopicPrefix(""), "");
  EXPECT_EQ(TenantTopicPrefix("acme"), "@acme/");

  std::string tenant, rest;
  ASSERT_TRUE(SplitTenantTopic("session.deleted", &tenant, &rest));
  EXPECT_EQ(tenant, "default");
  EXPECT_EQ(rest, "session.deleted");
  ASSERT_TRUE(SplitTenantTopic("@acme/session.deleted", &tenant, &rest));
  EXPECT_EQ(tenant, "acme");
  EXPECT_EQ(rest, "session.deleted");
  EXPECT_FALSE(SplitTenantTopic("@acme", &tenant, &rest));
  EXPECT_FALSE(SplitTenantTopic("@/user.created", &tenant, &rest));
  EXPECT_FALSE(SplitTenantTopic("@ACME/user.created", &tenant, &rest));
  // The default tenant never travels with a prefix.
  EXPECT_FALSE(SplitTenantTopic("@default/user.created", &tenant, &rest));
}

TEST_F(KeyBindingTest, SubFoldersBindTheirKeys) {
  auto free = NewPair(), a1 = NewPair(), a2 = NewPair(), b = NewPair(), both = NewPair(), twice = NewPair(),
       bad = NewPair();
  Write("free.pub", free.public_key + "\n");
  Write("acme/one.pub", "# bound to acme\n" + a1.public_key + "\n");
  Write("acme/two.pub", a2.public_key + "\n");
  Write("acme/.swp", b.public_key + "\n");         // dotfile: ignored
  Write("acme/nested/x.pub", b.public_key + "\n");  // sub-sub-folder: ignored
  Write("acme/junk.pub", "junk\n");
  Write("beta/b.pub", b.public_key + "\n");
  // Unbound and bound to one tenant: bound (the narrower grant).
  Write("both.pub", both.public_key + "\n");
  Write("beta/both.pub", both.public_key + "\n");
  // In two tenants' folders: refused.
  Write("acme/twice.pub", twice.public_key + "\n");
  Write("beta/twice.pub", twice.public_key + "\n");
  // Not a tenant name: not read.
  Write("Bad Name/k.pub", bad.public_key + "\n");
  Write(".hidden/k.pub", bad.public_key + "\n");

  auto keys = LoadAuthorizedKeys(dir_);
  ASSERT_TRUE(keys.ok()) << keys.error().message();
  EXPECT_EQ(keys->keys, (std::vector<std::array<uint8_t, 32>>{Raw(free)}));
  EXPECT_EQ(keys->files, (std::vector<std::string>{"both.pub", "free.pub"}));
  std::map<std::array<uint8_t, 32>, std::string> bound(keys->bound.begin(), keys->bound.end());
  EXPECT_EQ(bound.size(), 4u);
  EXPECT_EQ(bound[Raw(a1)], "acme");
  EXPECT_EQ(bound[Raw(a2)], "acme");
  EXPECT_EQ(bound[Raw(b)], "beta");
  EXPECT_EQ(bound[Raw(both)], "beta");
  EXPECT_EQ(bound.count(Raw(twice)), 0u);
  EXPECT_EQ(bound.count(Raw(bad)), 0u);
  std::string skipped;
  for (const auto& s : keys->skipped) skipped += s + "\n";
  EXPECT_NE(skipped.find("acme/junk.pub: not a 40-character Z85 key"), std::string::npos) << skipped;
  EXPECT_NE(skipped.find("Bad Name/: not a tenant name"), std::string::npos) << skipped;
  EXPECT_NE(skipped.find("key " + twice.public_key + " is in the folders of several tenants (acme, beta)"),
            std::string::npos)
      << skipped;
  EXPECT_EQ(keys->skipped.size(), 3u) << skipped;
}

// A ZapHandler on a libuv loop of this thread, a CURVE server socket of
// `type` it admits peers for, and helpers to run both until a message comes.
class ZapBindingTest : public KeyBindingTest {
 protected:
  void SetUp() override {
    KeyBindingTest::SetUp();
    uv_loop_init(&loop_);
    server_ = NewPair();
    free_ = NewPair();
    acme_ = NewPair();
    Write("keys/free.pub", free_.public_key + "\n");
    Write("keys/acme/acme.pub", acme_.public_key + "\n");
    zap_ = std::make_unique<daemon::ZapHandler>(&loop_, ctx_);
    ASSERT_TRUE(zap_->Start(dir_ + "/keys").ok());
  }
  void TearDown() override {
    zap_->Close();
    zap_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    KeyBindingTest::TearDown();
  }

  zmq::socket_t Server(zmq::socket_type type) {
    zmq::socket_t s(ctx_, type);
    s.set(zmq::sockopt::linger, 0);
    if (type == zmq::socket_type::xpub) s.set(zmq::sockopt::xpub_manual, 1);
    EXPECT_TRUE(daemon::ApplyCurveServer(s, server_.secret_key).ok());
    s.bind("tcp://127.0.0.1:*");
    return s;
  }

  zmq::socket_t Peer(zmq::socket_type type, const CurveKeyPair& me, const std::string& endpoint) {
    zmq::socket_t s(ctx_, type);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::curve_serverkey, server_.public_key);
    s.set(zmq::sockopt::curve_publickey, me.public_key);
    s.set(zmq::sockopt::curve_secretkey, me.secret_key);
    s.connect(endpoint);
    return s;
  }

  // Runs the loop (the ZAP handler) until `server` has a message.
  std::optional<zmq::message_t> Receive(zmq::socket_t& server) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      zmq::message_t m;
      if (server.recv(m, zmq::recv_flags::dontwait)) return m;
      zmq::pollitem_t items[] = {{server.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, std::chrono::milliseconds(5));
    }
    return std::nullopt;
  }

  uv_loop_t loop_;
  zmq::context_t ctx_;
  CurveKeyPair server_, free_, acme_;
  std::unique_ptr<daemon::ZapHandler> zap_;
};

TEST_F(ZapBindingTest, RouterRequestsTellTheirTenant) {
  EXPECT_EQ(zap_->key_count(), 2u);
  EXPECT_EQ(zap_->bound_key_count(), 1u);
  zmq::socket_t router = Server(zmq::socket_type::router);
  std::string ep = router.get(zmq::sockopt::last_endpoint);
  for (const auto* who : {&free_, &acme_}) {
    zmq::socket_t dealer = Peer(zmq::socket_type::dealer, *who, ep);
    dealer.send(zmq::str_buffer("hello"));
    auto routing = Receive(router);
    ASSERT_TRUE(routing.has_value()) << "no request came";
    zmq::message_t body;
    ASSERT_TRUE(router.recv(body, zmq::recv_flags::dontwait));
    EXPECT_TRUE(zap_->Admits(body));
    auto tenant = zap_->BoundTenant(body);
    if (who == &acme_) {
      ASSERT_TRUE(tenant.has_value());
      EXPECT_EQ(*tenant, "acme");
    } else {
      EXPECT_FALSE(tenant.has_value());
    }
  }
  // A message without a User-Id (CURVE off): unbound.
  zmq::message_t plain(std::string("x"));
  EXPECT_FALSE(zap_->BoundTenant(plain).has_value());
}

TEST_F(ZapBindingTest, XpubSubscriptionsCarryTheKeyAndReloadRebinds) {
  zmq::socket_t xpub = Server(zmq::socket_type::xpub);
  std::string ep = xpub.get(zmq::sockopt::last_endpoint);
  zmq::socket_t sub = Peer(zmq::socket_type::sub, acme_, ep);
  sub.set(zmq::sockopt::subscribe, "user.");
  auto m = Receive(xpub);
  ASSERT_TRUE(m.has_value()) << "no subscription came";
  ASSERT_EQ(m->to_string(), std::string("\x01user.", 6));
  EXPECT_TRUE(zap_->Admits(*m));
  auto tenant = zap_->BoundTenant(*m);
  ASSERT_TRUE(tenant.has_value()) << "libzmq did not attach the User-Id to the subscription";
  EXPECT_EQ(*tenant, "acme");

  // The key moves to another tenant's folder; SIGHUP's Reload rebinds it,
  // and its next subscription tells the new tenant.
  fs::create_directories(dir_ + "/keys/beta");
  fs::rename(dir_ + "/keys/acme/acme.pub", dir_ + "/keys/beta/acme.pub");
  ASSERT_TRUE(zap_->Reload(dir_ + "/keys").ok());
  sub.set(zmq::sockopt::subscribe, "session.");
  m = Receive(xpub);
  ASSERT_TRUE(m.has_value());
  tenant = zap_->BoundTenant(*m);
  ASSERT_TRUE(tenant.has_value());
  EXPECT_EQ(*tenant, "beta");

  // Removed: not admitted, and not taken for unbound by a careful caller.
  fs::remove(dir_ + "/keys/beta/acme.pub");
  ASSERT_TRUE(zap_->Reload(dir_ + "/keys").ok());
  sub.set(zmq::sockopt::subscribe, "jwt.");
  m = Receive(xpub);
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(zap_->Admits(*m));
  EXPECT_FALSE(zap_->BoundTenant(*m).has_value());
}

}  // namespace
}  // namespace torii
