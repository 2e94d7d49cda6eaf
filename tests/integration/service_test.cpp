// toriid as a systemd service: the sd_notify conversation, seen from a Unix
// datagram socket that plays systemd's part (NOTIFY_SOCKET points at it).
//
// READY=1 only once requests are answered and events published;
// RELOADING=1 (with MONOTONIC_USEC) then READY=1 around SIGHUP, also when
// the new config is refused; WATCHDOG=1 at half of WATCHDOG_USEC, and not
// at all when WATCHDOG_PID names another process; STOPPING=1 on SIGTERM,
// then exit status 0.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "daemon_process.h"
#include "event_sub.h"
#include "pg_cluster.h"
#include "wire.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

// One datagram as systemd would see it, with when it arrived.
struct Note {
  std::string text;
  Clock::time_point at;
  bool has(const std::string& assignment) const {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line == assignment) return true;
    }
    return false;
  }
  std::string value(const std::string& key) const {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    }
    return "";
  }
};

// The systemd side of sd_notify: a bound SOCK_DGRAM socket in a temp folder.
class NotifySocket {
 public:
  NotifySocket() {
    dir_ = MakeTempDir("notify");
    path_ = dir_ + "/notify.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket(AF_UNIX) failed");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(addr.sun_path)) throw std::runtime_error("notify socket path too long: " + path_);
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error("bind " + path_ + " failed");
    }
  }
  ~NotifySocket() {
    ::close(fd_);
    RemoveTree(dir_);
  }
  const std::string& path() const { return path_; }

  // The next datagram, or text empty on deadline.
  Note Recv(int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (timeout_ms <= 0) tv = {0, 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    Note note;
    note.at = Clock::now();
    if (n > 0) note.text.assign(buf, static_cast<size_t>(n));
    if (n > 0) all_.push_back(note);
    return note;
  }

  // Reads until a datagram carries `assignment` (e.g. "READY=1"); every
  // datagram read on the way is kept in `seen`. Text empty on deadline.
  Note WaitFor(const std::string& assignment, int timeout_ms, std::vector<Note>* seen = nullptr) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return {};
      Note n = Recv(static_cast<int>(left));
      if (n.text.empty()) continue;
      if (seen) seen->push_back(n);
      if (n.has(assignment)) return n;
    }
  }

  const std::vector<Note>& all() const { return all_; }

 private:
  std::string dir_, path_;
  int fd_ = -1;
  std::vector<Note> all_;
};

DaemonOptions NotifyOptions(const NotifySocket& sock, std::map<std::string, std::string> env = {}) {
  DaemonOptions o;
  o.wait_ready = false;  // the test itself watches for READY=1
  o.settings["events.heartbeat_ms"] = "100";
  env["NOTIFY_SOCKET"] = sock.path();
  env.emplace("WATCHDOG_USEC", "");
  env.emplace("WATCHDOG_PID", "");
  o.env = std::move(env);
  return o;
}

uint64_t MonotonicUsec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

TEST(NotifyConversation, ReadyAfterServingThenReloadThenStop) {
  NotifySocket sock;
  DaemonProcess d(NotifyOptions(sock));

  std::vector<Note> before;
  Note ready = sock.WaitFor("READY=1", 30000, &before);
  ASSERT_FALSE(ready.text.empty()) << "no READY=1 within 30 s; log:" << d.LogTail();
  for (const auto& n : before) {
    EXPECT_FALSE(n.has("RELOADING=1") || n.has("STOPPING=1")) << n.text;
  }
  EXPECT_NE(ready.value("STATUS").find("connections"), std::string::npos) << ready.text;

  // READY=1 promises service: a ping sent now, on a fresh connection, is
  // answered at once (not after some later start-up step) ...
  WireClient client(d.request_endpoint());
  Reply pong = client.Call("ping", V::Map({}), 2000);
  ASSERT_TRUE(pong.received) << "READY=1 was sent but ping got no reply within 2 s";
  EXPECT_TRUE(pong.ok()) << pong.ToString();
  // ... and events flow: heartbeats arrive every events.heartbeat_ms.
  EventSub sub(d.event_endpoint(), {"torii.heartbeat"});
  EXPECT_FALSE(sub.WaitForTopic("torii.heartbeat", 3000).topic.empty()) << "no heartbeat after READY=1";

  // SIGHUP: RELOADING=1 stamped with CLOCK_MONOTONIC, then READY=1.
  uint64_t before_hup = MonotonicUsec();
  d.Signal(SIGHUP);
  Note reloading = sock.WaitFor("RELOADING=1", 10000);
  ASSERT_FALSE(reloading.text.empty()) << "no RELOADING=1 after SIGHUP; log:" << d.LogTail();
  uint64_t stamp = std::stoull(reloading.value("MONOTONIC_USEC").empty() ? "0" : reloading.value("MONOTONIC_USEC"));
  EXPECT_GE(stamp, before_hup) << reloading.text;
  EXPECT_LE(stamp, MonotonicUsec()) << reloading.text;
  std::vector<Note> during;
  Note reloaded = sock.WaitFor("READY=1", 10000, &during);
  ASSERT_FALSE(reloaded.text.empty()) << "no READY=1 after RELOADING=1; log:" << d.LogTail();
  EXPECT_TRUE(d.WaitForLog("daemon: reloaded", 5000)) << d.LogTail();
  EXPECT_TRUE(client.Call("ping", V::Map({}), 2000).ok());

  // SIGTERM: STOPPING=1, then a clean exit.
  d.Signal(SIGTERM);
  Note stopping = sock.WaitFor("STOPPING=1", 10000);
  EXPECT_FALSE(stopping.text.empty()) << "no STOPPING=1 after SIGTERM; log:" << d.LogTail();
  EXPECT_EQ(d.Wait(30000), 0) << d.LogTail();
  // Nothing claims readiness after STOPPING=1.
  bool after_stop = false;
  for (const auto& n : sock.all()) {
    if (after_stop) {
      EXPECT_FALSE(n.has("READY=1")) << n.text;
    }
    after_stop |= n.has("STOPPING=1");
  }
}

TEST(NotifyConversation, RefusedReloadKeepsRunningConfigAndSaysWhy) {
  NotifySocket sock;
  DaemonProcess d(NotifyOptions(sock));
  ASSERT_FALSE(sock.WaitFor("READY=1", 30000).text.empty()) << d.LogTail();

  // Break one key (line known) in an otherwise unchanged file.
  std::ifstream in(d.config_path());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  size_t at = text.find("level = \"info\"");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, std::string("level = \"info\"").size(), "level = \"loud\"");
  int line = 1;
  for (size_t i = 0; i < at; i++) line += text[i] == '\n';
  std::ofstream(d.config_path(), std::ios::trunc) << text;

  d.Signal(SIGHUP);
  ASSERT_FALSE(sock.WaitFor("RELOADING=1", 10000).text.empty()) << d.LogTail();
  // Still ready: a refused reload does not take the service down.
  ASSERT_FALSE(sock.WaitFor("READY=1", 10000).text.empty()) << d.LogTail();
  std::string why = d.config_path() + ":" + std::to_string(line) + ": log.level";
  ASSERT_TRUE(d.WaitForLog("reload refused, keeping the running config", 5000)) << d.LogTail();
  EXPECT_NE(d.log().find(why), std::string::npos) << "the refusal should name " << why << d.LogTail();
  EXPECT_EQ(d.log().find("daemon: reloaded"), std::string::npos) << d.LogTail();

  // The running config (log.level info) still rules: info lines still appear
  // and requests are served.
  WireClient client(d.request_endpoint());
  EXPECT_TRUE(client.Call("ping", V::Map({}), 2000).ok());
  d.Signal(SIGTERM);
  EXPECT_TRUE(d.WaitForLog("daemon: stopped", 10000)) << d.LogTail();
  EXPECT_EQ(d.Wait(30000), 0);
}

TEST(NotifyConversation, WatchdogEveryHalfOfWatchdogUsec) {
  NotifySocket sock;
  // WATCHDOG_PID unset: the watchdog is meant for whoever reads WATCHDOG_USEC.
  DaemonProcess d(NotifyOptions(sock, {{"WATCHDOG_USEC", "400000"}}));
  ASSERT_FALSE(sock.WaitFor("READY=1", 30000).text.empty()) << d.LogTail();
  EXPECT_TRUE(d.WaitForLog("systemd watchdog every 200 ms", 2000)) << d.LogTail();

  std::vector<Clock::time_point> pings;
  auto until = Clock::now() + std::chrono::milliseconds(2000);
  while (Clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    Note n = sock.Recv(static_cast<int>(std::max<int64_t>(1, left)));
    if (n.has("WATCHDOG=1")) pings.push_back(n.at);
  }
  // 2 s at one per 200 ms: about 10. A loose band still catches "never",
  // "at the full period" (5) and "far too often".
  ASSERT_GE(pings.size(), 7u) << "watchdog pings in 2 s: " << pings.size();
  EXPECT_LE(pings.size(), 13u) << "watchdog pings in 2 s: " << pings.size();
  double mean_ms =
      std::chrono::duration<double, std::milli>(pings.back() - pings.front()).count() / (pings.size() - 1);
  EXPECT_GT(mean_ms, 150.0);
  EXPECT_LT(mean_ms, 280.0);
  // Every gap stays well inside the 400 ms the watchdog allows.
  for (size_t i = 1; i < pings.size(); i++) {
    double gap_ms = std::chrono::duration<double, std::milli>(pings[i] - pings[i - 1]).count();
    EXPECT_LT(gap_ms, 380.0) << "gap " << i;
  }
  EXPECT_EQ(d.Stop(), 0);
}

TEST(NotifyConversation, NoWatchdogWhenWatchdogPidIsAnotherProcess) {
  NotifySocket sock;
  // WATCHDOG_PID names the test process, not the daemon: the variables were
  // meant for someone else, so the daemon must not feed the watchdog.
  DaemonProcess d(NotifyOptions(sock, {{"WATCHDOG_USEC", "400000"}, {"WATCHDOG_PID", std::to_string(getpid())}}));
  ASSERT_FALSE(sock.WaitFor("READY=1", 30000).text.empty()) << d.LogTail();
  Note n = sock.WaitFor("WATCHDOG=1", 1000);
  EXPECT_TRUE(n.text.empty()) << "WATCHDOG=1 sent although WATCHDOG_PID is another process";
  for (const auto& seen : sock.all()) EXPECT_FALSE(seen.has("WATCHDOG=1")) << seen.text;
  EXPECT_EQ(d.Stop(), 0);
}

TEST(NotifyConversation, WithoutNotifySocketTheDaemonRunsAsUsual) {
  DaemonOptions o;
  o.env = {{"NOTIFY_SOCKET", ""}, {"WATCHDOG_USEC", ""}};
  DaemonProcess d(o);  // waits for ping
  EXPECT_EQ(d.log().find("sd_notify failed"), std::string::npos);
  EXPECT_EQ(d.Stop(), 0) << d.LogTail();
}

}  // namespace
}  // namespace torii::test
