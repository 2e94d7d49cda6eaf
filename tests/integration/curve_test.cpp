// Transport security of the real daemon (issue 10): CURVE on the request
// and event sockets with a ZAP handler of authorized keys, SIGHUP reloading
// them, refusal to start without an authorized-keys folder, and ipc://
// socket files of mode 0660.
//
// Each test writes its own key pairs with lib's curve helpers into a
// temporary folder; clients are lib's torii::Client and torii::Subscriber.
// "Gets nothing" is a request that times out and a subscriber that sees no
// message at all while an authorized one, on the same daemon, sees events.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon_process.h"
#include "eventually.h"
#include "pg_cluster.h"
#include "torii/client.h"
#include "torii/curve.h"
#include "torii/subscriber.h"

namespace torii::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How long a refused peer is given to show that nothing arrives. Long
// against a local CURVE handshake (milliseconds) and against the 100 ms
// heartbeats an admitted subscriber would get.
constexpr int kRefusedWindowMs = 1500;

CurveKeyPair NewPair() {
  auto p = GenerateCurveKeyPair();
  EXPECT_TRUE(p.ok()) << p.error().message();
  return *p;
}

class CurveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("torii-curve");
    keys_dir_ = dir_ + "/authorized";
    fs::create_directories(keys_dir_);
    server_ = NewPair();
    ASSERT_TRUE(WriteCurveKeyPair(dir_ + "/server", server_).ok());
    alice_ = NewPair();
    bob_ = NewPair();
    carol_ = NewPair();
    Authorize("alice.pub", alice_);
    Authorize("carol.pub", carol_);
    // Neither may stop the daemon or add a key: a dotfile is ignored, a
    // broken file is logged and skipped.
    std::ofstream(keys_dir_ + "/.alice.pub.swp") << bob_.public_key << "\n";
    std::ofstream(keys_dir_ + "/broken.pub") << "not a key\n";
  }

  void TearDown() override {
    daemon_.reset();
    RemoveTree(dir_);
  }

  void Authorize(const std::string& name, const CurveKeyPair& pair) {
    std::ofstream(keys_dir_ + "/" + name) << "# a client\n" << pair.public_key << "\n";
  }

  DaemonOptions CurveOptions() {
    DaemonOptions o;
    o.settings["security.curve_secret_key_file"] = TomlString(dir_ + "/server.key");
    o.settings["security.curve_authorized_keys_dir"] = TomlString(keys_dir_);
    o.settings["events.heartbeat_ms"] = "100";
    o.settings["cleanup.interval_s"] = "0";
    // The harness's readiness ping has no CURVE keys; StartDaemon() waits
    // with an authorized client instead.
    o.wait_ready = false;
    return o;
  }

  void StartDaemon() {
    daemon_ = std::make_unique<DaemonProcess>(CurveOptions());
    Client c = NewClient(&alice_);
    bool answered = false;
    Eventually(
        [&] {
          CallOptions co;
          co.timeout_ms = 200;
          answered = c.Call("ping", {}, co).ok();
          return answered || !daemon_->running();
        },
        30000, [] {});
    ASSERT_TRUE(answered || daemon_->running()) << "toriid exited:" << daemon_->LogTail();
    ASSERT_TRUE(answered) << "toriid never answered an authorized ping:" << daemon_->LogTail();
  }

  // A client with `pair` as its CURVE keys, or without CURVE for nullptr.
  Client NewClient(const CurveKeyPair* pair) {
    ClientOptions o;
    o.endpoints = {daemon_->request_endpoint()};
    o.default_timeout_ms = 5000;
    if (pair != nullptr) {
      o.server_public_key = server_.public_key;
      o.client_public_key = pair->public_key;
      o.client_secret_key = pair->secret_key;
    }
    auto c = Client::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(c.value());
  }

  std::unique_ptr<Subscriber> NewSubscriber(const CurveKeyPair* pair) {
    SubscriberOptions o;
    o.endpoints = {daemon_->event_endpoint()};
    o.heartbeat_ms = 100;
    o.deliver_torii_events = true;
    if (pair != nullptr) {
      o.server_public_key = server_.public_key;
      o.client_public_key = pair->public_key;
      o.client_secret_key = pair->secret_key;
    }
    auto s = Subscriber::Create(std::move(o));
    EXPECT_TRUE(s.ok()) << s.error().message();
    return std::move(s.value());
  }

  // A ping that must time out: nothing comes back to this peer.
  void ExpectNoReply(Client& c, const std::string& who) {
    CallOptions co;
    co.timeout_ms = kRefusedWindowMs;
    auto r = c.Call("ping", {}, co);
    ASSERT_FALSE(r.ok()) << who << " got a reply";
    EXPECT_EQ(r.error().code(), Code::kTimeout) << who << ": " << r.error().message();
  }

  std::string dir_, keys_dir_;
  CurveKeyPair server_, alice_, bob_, carol_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(CurveTest, AuthorizedClientIsServed) {
  StartDaemon();
  Client c = NewClient(&alice_);
  auto made = c.CallJson("create_user", {{"email", "curve@example.com"}});
  ASSERT_TRUE(made.ok()) << made.error().message();
  EXPECT_EQ((*made)["email"], "curve@example.com");
  // Good files counted, the broken one named, the dotfile silent.
  EXPECT_TRUE(daemon_->WaitForLog("2 authorized client keys", 1000)) << daemon_->LogTail();
  EXPECT_TRUE(daemon_->WaitForLog("broken.pub: not a 40-character Z85 key; skipped", 1000)) << daemon_->LogTail();
  EXPECT_EQ(daemon_->log().find(".alice.pub.swp"), std::string::npos);
  EXPECT_TRUE(daemon_->WaitForLog("server public key " + server_.public_key, 1000));
  // The secret key never reaches the log.
  EXPECT_EQ(daemon_->log().find(server_.secret_key), std::string::npos);
}

TEST_F(CurveTest, UnlistedKeyAndPlainClientGetNothing) {
  StartDaemon();
  Client unlisted = NewClient(&bob_);
  ExpectNoReply(unlisted, "a client with an unlisted key");
  Client plain = NewClient(nullptr);
  ExpectNoReply(plain, "a client without CURVE");
  // The refusal is ZAP's (not a mechanism mismatch alone): it is logged
  // with the refused public key.
  EXPECT_TRUE(daemon_->WaitForLog("client key " + bob_.public_key + " is not authorized", 5000)) << daemon_->LogTail();
  // The dotfile holding bob's key did not authorize him, and the daemon
  // still serves the authorized.
  Client alice = NewClient(&alice_);
  EXPECT_TRUE(alice.Call("ping").ok());
}

TEST_F(CurveTest, OnlyAuthorizedSubscribersGetEvents) {
  StartDaemon();
  auto authorized = NewSubscriber(&alice_);
  auto plain = NewSubscriber(nullptr);
  auto unlisted = NewSubscriber(&bob_);
  std::vector<std::string> topics;
  authorized->AddListener([&](const torii::Event& e) { topics.push_back(e.topic); }, nullptr);
  // The authorized one is connected once it is live (a heartbeat came).
  ASSERT_TRUE(Eventually([&] { return authorized->live(); }, 10000, [&] { authorized->Poll(50); }))
      << "the authorized subscriber never got a heartbeat";
  Client c = NewClient(&alice_);
  ASSERT_TRUE(c.CallJson("create_user", {{"email", "event@example.com"}}).ok());
  ASSERT_TRUE(Eventually([&] { return std::find(topics.begin(), topics.end(), "user.created") != topics.end(); },
                         10000, [&] { authorized->Poll(50); }))
      << "the authorized subscriber never got user.created";
  // Over the same span (and a window of ~15 heartbeats more) the others
  // received nothing at all: no heartbeat, no event.
  auto until = Clock::now() + std::chrono::milliseconds(kRefusedWindowMs);
  while (Clock::now() < until) {
    plain->Poll(20);
    unlisted->Poll(20);
  }
  EXPECT_EQ(plain->stats().messages, 0u) << "a SUB without CURVE received events";
  EXPECT_EQ(unlisted->stats().messages, 0u) << "a SUB with an unlisted key received events";
  EXPECT_GT(authorized->stats().heartbeats, 0u);
}

TEST_F(CurveTest, ReloadRevokesAndAddsKeys) {
  StartDaemon();
  Client alice = NewClient(&alice_);
  ASSERT_TRUE(alice.Call("ping").ok());
  Client bob_before = NewClient(&bob_);
  ExpectNoReply(bob_before, "bob before his key is added");

  // Alice's key goes, bob's comes; one SIGHUP applies both.
  ASSERT_TRUE(fs::remove(keys_dir_ + "/alice.pub"));
  Authorize("bob.pub", bob_);
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(daemon_->WaitForLog("1 keys revoked", 10000)) << daemon_->LogTail();

  // A new connection with alice's key is refused...
  Client alice_again = NewClient(&alice_);
  ExpectNoReply(alice_again, "a new connection with a revoked key");
  // ...and her connection from before the reload is not served either.
  ExpectNoReply(alice, "an old connection with a revoked key");
  // Bob, and carol who was never touched, are served.
  Client bob = NewClient(&bob_);
  auto r = bob.Call("ping");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  Client carol = NewClient(&carol_);
  EXPECT_TRUE(carol.Call("ping").ok());
}

TEST_F(CurveTest, ReloadWithUnreadableFolderKeepsKeys) {
  StartDaemon();
  // The folder vanishes: the reload is refused, the keys in force stay.
  fs::rename(keys_dir_, keys_dir_ + ".gone");
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(daemon_->WaitForLog("keeping the 2 authorized keys in force", 10000)) << daemon_->LogTail();
  Client carol = NewClient(&carol_);
  EXPECT_TRUE(carol.Call("ping").ok());
  fs::rename(keys_dir_ + ".gone", keys_dir_);
}

TEST_F(CurveTest, ReloadWithABrokenKeyFileKeepsKeysAndSaysSo) {
  StartDaemon();
  Client alice = NewClient(&alice_);
  ASSERT_TRUE(alice.Call("ping").ok());
  // A broken key file where the folder was: the reload cannot read the
  // folder, so the keys in force stay, and the log says the reload did not
  // take the keys.
  fs::rename(keys_dir_, keys_dir_ + ".moved");
  std::ofstream(keys_dir_) << "not a key\n";
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(
      daemon_->WaitForLog("daemon: reload: CURVE keys not reloaded, keeping the 2 authorized keys in force", 10000))
      << daemon_->LogTail();
  EXPECT_TRUE(daemon_->WaitForLog("the CURVE keys were not)", 5000)) << daemon_->LogTail();
  // The connection from before and a new one are served; an unlisted key
  // is still refused.
  auto r = alice.Call("ping");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  Client carol = NewClient(&carol_);
  EXPECT_TRUE(carol.Call("ping").ok());
  Client bob = NewClient(&bob_);
  ExpectNoReply(bob, "an unlisted key after a failed reload");
}

TEST_F(CurveTest, RefusesToStartWithoutAuthorizedKeys) {
  DaemonOptions o = CurveOptions();
  o.settings.erase("security.curve_authorized_keys_dir");
  daemon_ = std::make_unique<DaemonProcess>(o);
  EXPECT_EQ(daemon_->Wait(30000), 1) << daemon_->LogTail();
  EXPECT_NE(daemon_->log().find("security.curve_authorized_keys_dir is empty"), std::string::npos) << daemon_->LogTail();
}

TEST_F(CurveTest, RefusesToStartWithABadSecretKey) {
  std::ofstream(dir_ + "/bad.key") << "too short\n";
  DaemonOptions o = CurveOptions();
  o.settings["security.curve_secret_key_file"] = TomlString(dir_ + "/bad.key");
  daemon_ = std::make_unique<DaemonProcess>(o);
  EXPECT_EQ(daemon_->Wait(30000), 1) << daemon_->LogTail();
  EXPECT_NE(daemon_->log().find("bad.key: not a 40-character Z85 key"), std::string::npos) << daemon_->LogTail();
}

TEST_F(CurveTest, AuthorizedKeysWithoutCurveIsAnError) {
  DaemonOptions o = CurveOptions();
  o.settings.erase("security.curve_secret_key_file");
  daemon_ = std::make_unique<DaemonProcess>(o);
  EXPECT_EQ(daemon_->Wait(30000), 1) << daemon_->LogTail();
  EXPECT_NE(daemon_->log().find("curve_secret_key_file is not"), std::string::npos) << daemon_->LogTail();
}

mode_t FileMode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(IpcPermissions, SocketFilesAreOwnerAndGroupOnly) {
  DaemonOptions o;
  o.ipc = true;
  DaemonProcess d(o);  // waits until ping answers over ipc://
  const std::string req = d.request_endpoint().substr(6), ev = d.event_endpoint().substr(6);
  EXPECT_EQ(FileMode(req), 0660u) << req;
  EXPECT_EQ(FileMode(ev), 0660u) << ev;
  EXPECT_TRUE(S_ISSOCK([&] {
    struct stat st {};
    ::stat(req.c_str(), &st);
    return st.st_mode;
  }()));
}

}  // namespace
}  // namespace torii::test
