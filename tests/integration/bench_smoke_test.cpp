// CI smoke run of the benchmark tools (tools/bench, the toriibench binary):
// the loader fills a fresh database with a tiny data set, then the load
// generator, the event-latency probe and the idle-clients probe each run
// for about a second against a real toriid. It checks that they run, that
// every request succeeds and that the reports carry numbers; it asserts no
// timing (CI machines vary).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon_process.h"
#include "pg_cluster.h"

#ifndef TORIIBENCH_BINARY
#error "TORIIBENCH_BINARY is set by tools/bench/CMakeLists.txt"
#endif
#ifndef TORIICALLCOST_BINARY
#error "TORIICALLCOST_BINARY is set by tools/bench/CMakeLists.txt"
#endif

namespace torii::test {
namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// Runs toriibench with `args` (progress lines on stderr go to the test
// log); returns its stdout, parsed as one JSON object.
nlohmann::json Bench(const std::vector<std::string>& args, const std::string& binary = TORIIBENCH_BINARY) {
  std::string cmd = ShellQuote(binary) + (binary == TORIIBENCH_BINARY ? " --json" : "");
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("toriibench failed (status " + std::to_string(status) + "): " + cmd + "\n" + out);
  }
  return nlohmann::json::parse(out);
}

constexpr int kUsers = 50, kSessions = 500, kExpired = 300;

class BenchSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = FreshDatabase();
    auto load = Bench({"load", "--db", db_, "--users", std::to_string(kUsers), "--sessions",
                       std::to_string(kSessions), "--expired", std::to_string(kExpired)});
    EXPECT_EQ(load["users"], kUsers);
    EXPECT_EQ(load["sessions"], kSessions);
    EXPECT_GE(load["seconds"].get<double>(), 0.0);
    daemon_ = std::make_unique<DaemonProcess>(DaemonOptions{
        .database_url = db_, .settings = {{"events.heartbeat_ms", "200"}, {"cleanup.interval_s", "3600"}}});
  }

  std::vector<std::string> RunArgs(const std::string& op) {
    return {"run", "--endpoint", daemon_->request_endpoint(), "--op", op, "-c", "2", "-d", "4", "-t", "1", "-w",
            "0.2", "--users", std::to_string(kUsers), "--sessions", std::to_string(kSessions), "-q"};
  }

  static void ExpectAllOk(const nlohmann::json& r) {
    SCOPED_TRACE(r.dump());
    EXPECT_GT(r["ok"].get<uint64_t>(), 0u);
    EXPECT_EQ(r["errors"].get<uint64_t>(), 0u);
    EXPECT_GT(r["throughput"].get<double>(), 0.0);
    EXPECT_EQ(r["latency"]["count"], r["ok"]);
    EXPECT_GT(r["latency"]["p50_us"].get<double>(), 0.0);
    EXPECT_LE(r["latency"]["p50_us"].get<double>(), r["latency"]["p99_us"].get<double>());
    EXPECT_LE(r["latency"]["p99_us"].get<double>(), r["latency"]["max_us"].get<double>());
    // Strictly slower than p99 (nearest rank): at most 1% of the samples.
    EXPECT_GT(r["tail"]["windows"].get<uint64_t>(), 0u);
    EXPECT_LE(r["tail"]["slow"].get<uint64_t>(), r["latency"]["count"].get<uint64_t>() / 100);
    EXPECT_LE(r["tail"]["slow_in_worst"].get<uint64_t>(), r["tail"]["slow"].get<uint64_t>());
  }

  std::string db_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(BenchSmokeTest, LoadedTokensAreFoundByEveryOperationMix) {
  // get_session succeeds only if the loader's digests match the tokens the
  // generator recomputes: a not_found would be counted as an error.
  for (const char* op : {"get_session", "get_user_by_email", "create_session", "mix"}) {
    SCOPED_TRACE(op);
    ExpectAllOk(Bench(RunArgs(op)));
  }
}

// The plain-client mode (raw DEALER sockets waited on with epoll), with the CPU-per-reply
// accounting of the daemon's process.
TEST_F(BenchSmokeTest, PlainClientRunsEveryOperationAndReportsCpu) {
  for (const char* op : {"get_session", "ping", "mix"}) {
    SCOPED_TRACE(op);
    auto args = RunArgs(op);
    args.insert(args.end(), {"--plain", "--cpu", "toriid=" + std::to_string(daemon_->pid())});
    auto r = Bench(args);
    ExpectAllOk(r);
    EXPECT_EQ(r["client"], "plain");
    ASSERT_TRUE(r.contains("cpu_us_per_reply")) << r.dump();
    EXPECT_GT(r["cpu_us_per_reply"]["toriid"].get<double>(), 0.0) << r.dump();
    EXPECT_GT(r["cpu_us_per_reply"]["client"].get<double>(), 0.0) << r.dump();
    // Split by thread: the loop thread and libzmq's I/O thread.
    const auto& threads = r["cpu_us_per_reply_by_thread"]["toriid"];
    ASSERT_TRUE(threads.contains("main") && threads.contains("ZMQbg/IO/0")) << r.dump();
    EXPECT_GT(threads["main"].get<double>() + threads["ZMQbg/IO/0"].get<double>(), 0.0) << r.dump();
  }
}

// The disturbances of tools/bench-capacity beside a measured run: clients
// that send and never read, and a storm of connections within the window
// (each answered once); and a get_session storm of idle clients.
TEST_F(BenchSmokeTest, SlowClientsAndAStormAreReported) {
  auto args = RunArgs("get_session");
  args.insert(args.end(), {"--plain", "--slow-clients", "3", "--slow-burst", "50", "--storm-clients", "20",
                           "--storm-ms", "300"});
  auto r = Bench(args);
  ExpectAllOk(r);
  SCOPED_TRACE(r.dump());
  const auto& d = r["disturb"];
  EXPECT_EQ(d["slow_clients"], 3);
  EXPECT_GE(d["slow_sent"].get<uint64_t>(), 150u);
  EXPECT_EQ(d["storm_clients"], 20);
  EXPECT_EQ(d["storm_ok"], 20u);
  EXPECT_EQ(d["storm_errors"], 0u);
  EXPECT_EQ(d["storm_unanswered"], 0u);
  EXPECT_GT(d["storm_all_served_ms"].get<double>(), 0.0);
  EXPECT_EQ(d["storm_latency"]["count"], 20u);

  auto c = Bench({"clients", "--endpoint", daemon_->request_endpoint(), "-n", "30", "--hold", "0", "--sessions",
                  std::to_string(kSessions), "--pid", std::to_string(daemon_->pid())});
  EXPECT_EQ(c["answered"], 30u) << c.dump();
  EXPECT_EQ(c["errors"], 0u) << c.dump();
  EXPECT_GT(c["rss_kib_connected"].get<long>(), 0) << c.dump();
}

// toriibench floor (the bare ROUTER server the benchmark measures as the
// floor) answers the plain client's pings, and stops on SIGTERM.
TEST_F(BenchSmokeTest, FloorServerAnswersPlainPings) {
  std::string endpoint = "tcp://127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> argv_s = {TORIIBENCH_BINARY, "floor", "--endpoint", endpoint};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, TORIIBENCH_BINARY, nullptr, nullptr, argv.data(), environ), 0);
  // The plain client connects before or after the bind: ZeroMQ reconnects.
  auto r = Bench({"run", "--endpoint", endpoint, "--op", "ping", "-c", "2", "-d", "1", "-t", "1", "-w", "0.2", "-q",
                  "--plain", "--cpu", "floor=" + std::to_string(pid)});
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  ExpectAllOk(r);
  EXPECT_TRUE(r["cpu_us_per_reply_by_thread"]["floor"].contains("main")) << r.dump();
}

// toriicallcost: Client::Call and the raw DEALER both complete their pings
// against the daemon and report a CPU cost per call.
TEST_F(BenchSmokeTest, CallCostReportsBothClients) {
  auto r = Bench({"--endpoint", daemon_->request_endpoint(), "--calls", "200", "--rounds", "2"}, TORIICALLCOST_BINARY);
  SCOPED_TRACE(r.dump());
  EXPECT_EQ(r["calls"], 200);
  EXPECT_GT(r["lib_us"].get<double>(), 0.0);
  EXPECT_GT(r["raw_us"].get<double>(), 0.0);
}

// The revocation probe: a few revocations by plain SQL, none served after
// its event.
TEST_F(BenchSmokeTest, RevokeReportsNoRevokedSessionServedAfterItsEvent) {
  auto r = Bench({"revoke", "--endpoint", daemon_->request_endpoint(), "--events", daemon_->event_endpoint(),
                  "--db", db_, "-n", "20", "--readers", "2", "--users", std::to_string(kUsers), "-q"});
  SCOPED_TRACE(r.dump());
  EXPECT_EQ(r["revocations"], 20);
  EXPECT_EQ(r["write_errors"], 0);
  EXPECT_EQ(r["no_event"], 0);
  EXPECT_EQ(r["violations"], 0);
  EXPECT_GT(r["reader_replies"].get<uint64_t>(), 40u);
  EXPECT_GT(r["cache_hits"].get<uint64_t>(), 0u);
}

TEST_F(BenchSmokeTest, FixedRateCleanupEventsAndIdleClientsReport) {
  auto args = RunArgs("get_session");
  args.insert(args.end(), {"--rate", "200"});
  auto fixed = Bench(args);
  ExpectAllOk(fixed);
  // 200/s for ~1 s: roughly 200 samples, certainly more than a handful.
  EXPECT_GT(fixed["ok"].get<uint64_t>(), 50u);

  args.push_back("--cleanup");
  auto cleanup = Bench(args);
  EXPECT_EQ(cleanup["cleanup_deleted"].get<uint64_t>(), uint64_t(kExpired)) << cleanup.dump();
  EXPECT_EQ(cleanup["errors"].get<uint64_t>(), 0u) << cleanup.dump();

  auto ev = Bench({"events", "--endpoint", daemon_->request_endpoint(), "--events", daemon_->event_endpoint(),
                   "--rate", "100", "-t", "1", "-w", "0.2", "--users", std::to_string(kUsers),
                   "--heartbeat-ms", "200", "-q"});
  SCOPED_TRACE(ev.dump());
  EXPECT_GT(ev["writes"].get<uint64_t>(), 0u);
  EXPECT_EQ(ev["write_errors"].get<uint64_t>(), 0u);
  EXPECT_EQ(ev["events_missing"].get<uint64_t>(), 0u);
  EXPECT_EQ(ev["txn_to_event"]["count"], ev["writes"]);

  auto idle = Bench({"clients", "--endpoint", daemon_->request_endpoint(), "-n", "20", "--pid",
                     std::to_string(daemon_->pid()), "--hold", "0.1"});
  EXPECT_EQ(idle["answered"], 20) << idle.dump();
  EXPECT_GT(idle["rss_kib_connected"].get<long>(), 0) << idle.dump();
}

}  // namespace
}  // namespace torii::test
