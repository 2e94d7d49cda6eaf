// Integration tests of toriid's embedded PostgreSQL (no database URL in the
// config): the real toriid binary with `database.data_dir` in a temporary
// folder and its request endpoint on a free tcp port.
//
// Covers: first start initialises the cluster and answers ping; SIGTERM
// exits 0 and stops postgres; a second start reuses the data and is fast;
// SIGKILL of toriid leaves no postgres behind; no PostgreSQL server found
// gives a clear error naming the Debian package; a second toriid on the same
// data folder refuses, naming the first, instead of using its server.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <msgpack.hpp>
#include <sstream>
#include <string>
#include <zmq.hpp>

#include "pg_cluster.h"
#include "eventually.h"
#include "torii/embedded_pg.h"

namespace {

namespace fs = std::filesystem;
using torii::test::Eventually;
using Clock = std::chrono::steady_clock;


std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True while `pid` exists and is not a zombie (a reparented postgres that
// init has not reaped yet has already stopped).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  char state = line[paren + 2];
  return state != 'Z' && state != 'X';
}

bool WaitGone(pid_t pid, int timeout_ms) {
  return Eventually([&] { return !Alive(pid); }, timeout_ms);
}

// One toriid child process with its own folder, config and log.
class Toriid {
 public:
  // `shared_data_dir`: use another Toriid's data folder (not owned).
  explicit Toriid(std::string shared_data_dir = "") : shared_data_dir_(std::move(shared_data_dir)) {
    std::string tmpl = "/tmp/torii-embed-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
    request_port_ = torii::test::FreePort();
    events_port_ = torii::test::FreePort();
    config_ = dir_ + "/toriid.toml";
    log_ = dir_ + "/toriid.log";
    std::ofstream(config_) << "[server]\nrequests = [\"tcp://127.0.0.1:" << request_port_ << "\"]\n"
                           << "events = [\"tcp://127.0.0.1:" << events_port_ << "\"]\n"
                           << "[database]\ndata_dir = \"" << data_dir() << "\"\n";
  }
  ~Toriid() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    // The postgres child dies with toriid (PR_SET_PDEATHSIG); wait for it so
    // the folder can go.
    if (pid_t pg = PostmasterPid(); pg > 0 && shared_data_dir_.empty()) WaitGone(pg, 30000);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string data_dir() const { return shared_data_dir_.empty() ? dir_ + "/pg" : shared_data_dir_; }
  const std::string& dir() const { return dir_; }
  std::string log() const { return ReadAll(log_); }
  pid_t pid() const { return pid_; }

  void Start(const std::vector<std::pair<std::string, std::string>>& env = {}) {
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      FILE* f = freopen(log_.c_str(), "a", stderr);
      if (f == nullptr) _exit(98);
      dup2(STDERR_FILENO, STDOUT_FILENO);
      unsetenv("TORII_DATABASE_URL");
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      execl(TORIID_BINARY, TORIID_BINARY, "--config", config_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }

  // Sends {"op":"ping"} until a reply arrives or the deadline passes; a
  // new REQ socket per attempt, because a REQ socket that timed out cannot
  // send again. Returns the reply body.
  std::string WaitPing(int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    msgpack::sbuffer body;
    msgpack::packer<msgpack::sbuffer> pk(body);
    pk.pack_map(1);
    pk.pack("op");
    pk.pack("ping");
    while (Clock::now() < deadline) {
      if (Exited()) return "";
      zmq::socket_t req(ctx_, zmq::socket_type::req);
      req.set(zmq::sockopt::linger, 0);
      req.set(zmq::sockopt::rcvtimeo, 200);
      req.connect("tcp://127.0.0.1:" + std::to_string(request_port_));
      req.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
      zmq::message_t reply;
      if (req.recv(reply, zmq::recv_flags::none)) return reply.to_string();
    }
    return "";
  }

  // True once the process has ended (and reaps it).
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = status;
      pid_ = -1;
      return true;
    }
    return false;
  }

  // Waits for the exit; returns the exit code, 128+signal, or -1 on deadline.
  int Wait(int timeout_ms) {
    if (!Eventually([&] { return Exited(); }, timeout_ms)) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }

  // The postmaster's pid from postmaster.pid; 0 when there is none.
  pid_t PostmasterPid() const {
    std::ifstream in(data_dir() + "/postmaster.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

 private:
  std::string shared_data_dir_;
  std::string dir_, config_, log_;
  int request_port_ = 0, events_port_ = 0;
  pid_t pid_ = -1;
  int status_ = 0;
  zmq::context_t ctx_;
};

void ExpectPingReply(const std::string& reply) {
  ASSERT_FALSE(reply.empty());
  auto oh = msgpack::unpack(reply.data(), reply.size());
  const auto& m = oh.get();
  ASSERT_EQ(m.type, msgpack::type::MAP);
  bool ok = false;
  int protocol = 0;
  for (uint32_t i = 0; i < m.via.map.size; i++) {
    auto key = m.via.map.ptr[i].key.as<std::string>();
    const auto& val = m.via.map.ptr[i].val;
    if (key == "ok") ok = val.as<bool>();
    if (key == "result" && val.type == msgpack::type::MAP) {
      for (uint32_t j = 0; j < val.via.map.size; j++) {
        if (val.via.map.ptr[j].key.as<std::string>() == "protocol") protocol = val.via.map.ptr[j].val.as<int>();
      }
    }
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(protocol, 1);
}

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TEST(EmbeddedPostgres, StartsServesStopsAndRestartsFastOnTheSameData) {
  Toriid d;
  auto t0 = Clock::now();
  d.Start();
  std::string reply = d.WaitPing(120000);
  ASSERT_FALSE(reply.empty()) << "no ping reply from the first start:\n" << d.log();
  double first = SecondsSince(t0);
  ExpectPingReply(reply);
  EXPECT_TRUE(fs::exists(d.data_dir() + "/PG_VERSION"));
  pid_t pg = d.PostmasterPid();
  ASSERT_GT(pg, 0);
  EXPECT_TRUE(Alive(pg));
  // No TCP listener: the embedded server speaks only on its private socket.
  std::string cmdline = ReadAll("/proc/" + std::to_string(pg) + "/cmdline");
  EXPECT_NE(cmdline.find(std::string("listen_addresses=\0", 18)), std::string::npos);
  auto version_mtime = fs::last_write_time(d.data_dir() + "/PG_VERSION");

  // SIGTERM: exit 0, postgres stopped.
  ASSERT_EQ(kill(d.pid(), SIGTERM), 0);
  EXPECT_EQ(d.Wait(30000), 0) << d.log();
  EXPECT_TRUE(WaitGone(pg, 10000)) << "postgres " << pg << " outlived toriid's SIGTERM";

  // Second start: the same cluster, no initdb, and quick.
  auto t1 = Clock::now();
  d.Start();
  reply = d.WaitPing(30000);
  ASSERT_FALSE(reply.empty()) << "no ping reply from the second start:\n" << d.log();
  double second = SecondsSince(t1);
  ExpectPingReply(reply);
  std::printf("[ timing   ] embedded first start %.2f s (initdb), second start %.2f s\n", first, second);
  EXPECT_LT(second, 5.0) << "a restart on existing data must take seconds";
  EXPECT_EQ(fs::last_write_time(d.data_dir() + "/PG_VERSION"), version_mtime);
  std::string log = d.log();
  size_t initialised = 0;
  for (size_t at = log.find("initialised"); at != std::string::npos; at = log.find("initialised", at + 1)) initialised++;
  EXPECT_EQ(initialised, 1u) << log;

  pid_t pg2 = d.PostmasterPid();
  ASSERT_GT(pg2, 0);
  ASSERT_EQ(kill(d.pid(), SIGTERM), 0);
  EXPECT_EQ(d.Wait(30000), 0) << d.log();
  EXPECT_TRUE(WaitGone(pg2, 10000));
}

TEST(EmbeddedPostgres, SigkillOfToriidLeavesNoPostgresBehind) {
  Toriid d;
  d.Start();
  std::string reply = d.WaitPing(120000);
  ASSERT_FALSE(reply.empty()) << d.log();
  pid_t pg = d.PostmasterPid();
  ASSERT_GT(pg, 0);
  ASSERT_TRUE(Alive(pg));
  ASSERT_EQ(kill(d.pid(), SIGKILL), 0);
  EXPECT_EQ(d.Wait(10000), 128 + SIGKILL);
  EXPECT_TRUE(WaitGone(pg, 15000)) << "postgres " << pg << " still running after toriid was killed";
  // And its backends are gone too: nothing holds the data directory's lock.
  EXPECT_TRUE(Eventually([&] { return !fs::exists(d.data_dir() + "/postmaster.pid"); }, 15000))
      << "postmaster.pid still there";
}

TEST(EmbeddedPostgres, ASecondToriidOnTheSameDataFolderRefusesAndNamesTheFirst) {
  Toriid first;
  first.Start();
  ASSERT_FALSE(first.WaitPing(120000).empty()) << first.log();
  pid_t pg = first.PostmasterPid();
  ASSERT_GT(pg, 0);

  Toriid second(first.data_dir());
  second.Start();
  int code = second.Wait(60000);
  std::string log = second.log();
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(code, -1) << "the second toriid kept running on a locked data folder:\n" << log;
  EXPECT_NE(log.find("already in use by PostgreSQL pid " + std::to_string(pg)), std::string::npos) << log;
  EXPECT_NE(log.find("toriid with pid " + std::to_string(first.pid())), std::string::npos) << log;
  EXPECT_NE(log.find("data_dir"), std::string::npos) << log;
  EXPECT_NE(log.find("[database] url"), std::string::npos) << log;
  EXPECT_EQ(log.find("embedded postgres: pid"), std::string::npos) << "it claimed a server:\n" << log;
  // The first one is untouched.
  EXPECT_TRUE(Alive(pg));
  EXPECT_EQ(first.PostmasterPid(), pg);
  ExpectPingReply(first.WaitPing(10000));
}

TEST(EmbeddedPostgres, NoServerInstalledNamesTheDebianPackage) {
  Toriid d;
  std::string empty = d.dir() + "/empty-bin";
  fs::create_directories(empty);
  d.Start({{"TORII_PG_BINDIR", empty}});
  int code = d.Wait(30000);
  std::string log = d.log();
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(code, -1) << "toriid did not exit:\n" << log;
  EXPECT_NE(log.find("postgresql"), std::string::npos) << log;
  EXPECT_NE(log.find("apt-get install"), std::string::npos) << log;
  EXPECT_NE(log.find("TORII_PG_BINDIR"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(d.data_dir() + "/PG_VERSION"));
}

TEST(EmbeddedPostgres, FindBinDirChecksTheOverride) {
  std::string tmpl = "/tmp/torii-bindir-XXXXXX";
  std::string empty = mkdtemp(tmpl.data());
  setenv("TORII_PG_BINDIR", empty.c_str(), 1);
  auto r = torii::EmbeddedPostgres::FindBinDir();
  unsetenv("TORII_PG_BINDIR");
  fs::remove_all(empty);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("'postgresql'"), std::string::npos) << r.error().message();

  // Without the override the installed server is found.
  auto found = torii::EmbeddedPostgres::FindBinDir();
  ASSERT_TRUE(found.ok()) << found.error().message();
  EXPECT_TRUE(fs::exists(found.value() + "/postgres"));
  EXPECT_TRUE(fs::exists(found.value() + "/initdb"));
}

}  // namespace
