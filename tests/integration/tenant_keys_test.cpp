// Client keys bound to a tenant (PROTOCOL.md section 6, docs/security.md):
// with CURVE on, a key file in <curve_authorized_keys_dir>/<tenant>/ binds
// its key to that tenant. Such a client's requests run in its tenant
// whatever they say; naming another tenant is forbidden; operations that
// span tenants (stats, cleanup, tenant admin) are refused to it. A key in
// the folder itself stays unbound and may act for every tenant.
//
// The requests are raw DEALER messages over CURVE, so that the test sends
// exactly the `tenant` key it means to (or none).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "daemon_process.h"
#include "eventually.h"
#include "pg_cluster.h"
#include "torii/curve.h"
#include "wire.h"

namespace torii::test {
namespace {

namespace fs = std::filesystem;

CurveKeyPair NewPair() {
  auto p = GenerateCurveKeyPair();
  EXPECT_TRUE(p.ok()) << p.error().message();
  return *p;
}

class TenantKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("torii-tenant-keys");
    keys_dir_ = dir_ + "/authorized";
    fs::create_directories(keys_dir_ + "/a");
    fs::create_directories(keys_dir_ + "/b");
    server_ = NewPair();
    ASSERT_TRUE(WriteCurveKeyPair(dir_ + "/server", server_).ok());
    admin_ = NewPair();
    alice_ = NewPair();
    bob_ = NewPair();
    std::ofstream(keys_dir_ + "/admin.pub") << admin_.public_key << "\n";
    std::ofstream(keys_dir_ + "/a/alice.pub") << alice_.public_key << "\n";
    std::ofstream(keys_dir_ + "/b/bob.pub") << bob_.public_key << "\n";
    DaemonOptions o;
    o.settings["security.curve_secret_key_file"] = TomlString(dir_ + "/server.key");
    o.settings["security.curve_authorized_keys_dir"] = TomlString(keys_dir_);
    o.settings["cleanup.interval_s"] = "0";
    o.wait_ready = false;  // the harness's ping has no CURVE keys
    daemon_ = std::make_unique<DaemonProcess>(o);
    bool answered = false;
    Eventually(
        [&] {
          answered = Call(admin_, "ping", V::Map({}), "", 200).ok();
          return answered || !daemon_->running();
        },
        30000, [] {});
    ASSERT_TRUE(answered) << "toriid never answered:" << daemon_->LogTail();
    ASSERT_TRUE(Call(admin_, "create_tenant", V::Map({{"name", "a"}})).ok());
    ASSERT_TRUE(Call(admin_, "create_tenant", V::Map({{"name", "b"}})).ok());
  }

  void TearDown() override {
    sockets_.clear();
    daemon_.reset();
    RemoveTree(dir_);
  }

  // One request from the client with `pair`; `tenant` empty: no tenant key.
  Reply Call(const CurveKeyPair& pair, const std::string& op, V args = V::Map({}), const std::string& tenant = "",
             int timeout_ms = 5000) {
    auto& s = sockets_[pair.public_key];
    if (!s) {
      s = std::make_unique<zmq::socket_t>(TestContext(), zmq::socket_type::dealer);
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::curve_serverkey, server_.public_key);
      s->set(zmq::sockopt::curve_publickey, pair.public_key);
      s->set(zmq::sockopt::curve_secretkey, pair.secret_key);
      s->connect(daemon_->request_endpoint());
    }
    Req req;
    req.op = V(op);
    req.args = std::move(args);
    req.id = V(++next_id_);
    if (!tenant.empty()) req.tenant = V(tenant);
    std::string body = req.Encode();
    s->send(zmq::message_t(), zmq::send_flags::sndmore);
    s->send(zmq::buffer(body), zmq::send_flags::none);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Reply{};
      zmq::pollitem_t item{static_cast<void*>(*s), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      Reply r;
      r.received = true;
      for (;;) {
        zmq::message_t frame;
        (void)s->recv(frame);
        r.raw = frame.to_string();
        if (!frame.more()) break;
      }
      r.body = Value::Decode(r.raw);
      if (r.id().u64() == next_id_) return r;
    }
  }

  std::string dir_, keys_dir_;
  CurveKeyPair server_, admin_, alice_, bob_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::map<std::string, std::unique_ptr<zmq::socket_t>> sockets_;
  uint64_t next_id_ = 0;
};

TEST_F(TenantKeysTest, ABoundKeyActsInItsTenantOnly) {
  // Without a tenant key: its own tenant.
  Reply made = Call(alice_, "create_user", V::Map({{"email", "alice@example.com"}}));
  ASSERT_TRUE(made.ok()) << made.ToString();
  const std::string id = made.result()["id"].str();
  EXPECT_TRUE(Call(admin_, "get_user", V::Map({{"id", id}}), "a").ok());
  EXPECT_EQ(Call(admin_, "get_user", V::Map({{"id", id}})).code(), "not_found") << "not in the default tenant";
  // Naming its own tenant is fine; naming another, or the default, is not.
  EXPECT_TRUE(Call(alice_, "get_user", V::Map({{"id", id}}), "a").ok());
  Reply other = Call(alice_, "get_user", V::Map({{"id", id}}), "b");
  EXPECT_EQ(other.code(), "forbidden") << other.ToString();
  EXPECT_EQ(Call(alice_, "create_user", V::Map({{"email", "x@example.com"}}), "default").code(), "forbidden");
  EXPECT_EQ(Call(admin_, "get_user_by_email", V::Map({{"email", "x@example.com"}})).code(), "not_found");
  // bob, bound to b, cannot see alice's user, named or not.
  EXPECT_EQ(Call(bob_, "get_user", V::Map({{"id", id}})).code(), "not_found");
  EXPECT_EQ(Call(bob_, "get_user", V::Map({{"id", id}}), "a").code(), "forbidden");
  // Operations that span tenants are refused to bound keys; ping is not.
  for (const char* op : {"stats", "cleanup_expired_sessions", "list_tenants"}) {
    EXPECT_EQ(Call(alice_, op).code(), "forbidden") << op;
  }
  EXPECT_EQ(Call(alice_, "create_tenant", V::Map({{"name", "c"}})).code(), "forbidden");
  EXPECT_TRUE(Call(alice_, "ping").ok());
  // The unbound key may do all of it.
  EXPECT_TRUE(Call(admin_, "cleanup_expired_sessions").ok());
  Reply stats = Call(admin_, "stats");
  ASSERT_TRUE(stats.ok()) << stats.ToString();
  Value a = stats.result()["tenants"]["a"];
  EXPECT_EQ(a["users"].u64(), 1u) << stats.result()["tenants"].ToString();
  EXPECT_EQ(a["sessions"].u64(), 0u);
  EXPECT_GE(a["requests"].u64(), 3u);
  EXPECT_TRUE(stats.result()["tenants"]["default"].is_map());
  EXPECT_TRUE(stats.result()["tenants"]["b"].is_map());
}

TEST_F(TenantKeysTest, ABoundSessionNeverValidatesInAnotherTenant) {
  Reply u = Call(alice_, "create_user", V::Map({{"email", "same@example.com"}}));
  Reply v = Call(bob_, "create_user", V::Map({{"email", "same@example.com"}}));
  ASSERT_TRUE(u.ok() && v.ok()) << u.ToString() << v.ToString();
  Reply s = Call(alice_, "create_session", V::Map({{"user_id", u.result()["id"].str()}, {"ttl_s", 600}}));
  ASSERT_TRUE(s.ok());
  const std::string token = s.result()["token"].str();
  for (int round = 0; round < 2; round++) {  // uncached, then cached
    EXPECT_TRUE(Call(alice_, "get_session", V::Map({{"token", token}})).ok());
    EXPECT_EQ(Call(bob_, "get_session", V::Map({{"token", token}})).code(), "not_found");
    EXPECT_EQ(Call(admin_, "get_session", V::Map({{"token", token}})).code(), "not_found");
    EXPECT_EQ(Call(admin_, "get_session", V::Map({{"token", token}}), "b").code(), "not_found");
  }
}

}  // namespace
}  // namespace torii::test
