// toriibench: the benchmark tools in one binary. Parses flags and calls
//   load     fill a database with the deterministic data set (loader.h)
//   run      load generator against toriid (loadgen.h)
//   events   commit-to-subscriber event latency (events.h)
//   clients  RSS of a process with N idle connected clients (clients.h)
//   revoke   how long a revoked session is still served from the cache (revoke.h)
//   floor    the cheapest plain libzmq ROUTER server, to measure (floor.h)
// Results go to stdout (JSON with --json); progress lines to stderr.
// Exit status: 0 success, 1 failure, 2 bad flags.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "clients.h"
#include "events.h"
#include "floor.h"
#include "loader.h"
#include "loadgen.h"
#include "revoke.h"

using namespace torii::bench;

namespace {

int Fail(const torii::Error& e) {
  std::fprintf(stderr, "toriibench: %s\n", e.ToString().c_str());
  return 1;
}

void PrintLoad(const LoadGenReport& r) {
  std::printf("%s: %d connections x depth %d%s: %.0f ok/s over %.1f s (%llu ok, %llu errors)\n",
              OpKindName(r.op), r.connections, r.depth,
              r.rate > 0 ? (", fixed rate " + std::to_string(int64_t(r.rate)) + "/s").c_str() : ", max rate",
              r.throughput, r.seconds, (unsigned long long)r.ok, (unsigned long long)r.errors);
  for (auto& [code, n] : r.error_codes) std::printf("  error %s: %llu\n", code.c_str(), (unsigned long long)n);
  for (auto& [name, us] : r.cpu_us_per_reply) {
    std::printf("  cpu %s: %.1f us per reply", name.c_str(), us);
    if (auto it = r.cpu_us_per_reply_by_thread.find(name); it != r.cpu_us_per_reply_by_thread.end()) {
      for (auto& [thread, t_us] : it->second) std::printf(", %s %.1f", thread.c_str(), t_us);
    }
    std::printf("\n");
  }
  std::printf("latency us: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", r.latency.p50_us,
              r.latency.p90_us, r.latency.p99_us, r.latency.p999_us, r.latency.max_us);
  if (r.tail.slow > 0) {
    std::printf("tail: %llu of the %llu replies slower than p99 were sent within the worst %llu of %llu %d ms windows\n",
                (unsigned long long)r.tail.slow_in_worst, (unsigned long long)r.tail.slow,
                (unsigned long long)r.tail.worst_windows, (unsigned long long)r.tail.windows, r.tail.window_ms);
  }
  if (r.disturb.slow_clients > 0) {
    std::printf("slow clients: %d sent %llu requests, read none\n", r.disturb.slow_clients,
                (unsigned long long)r.disturb.slow_sent);
  }
  if (r.disturb.storm_clients > 0) {
    std::printf("storm: %d clients, %llu ok, %llu errors, %llu unanswered, all served in %.0f ms, p99 %.0f us\n",
                r.disturb.storm_clients, (unsigned long long)r.disturb.storm_ok,
                (unsigned long long)r.disturb.storm_errors, (unsigned long long)r.disturb.storm_unanswered,
                r.disturb.storm_all_served_ms, r.disturb.storm_latency.p99_us);
  }
  if (r.cleanup_s > 0) {
    std::printf("cleanup: %llu rows in %.1f s\n", (unsigned long long)r.cleanup_deleted, r.cleanup_s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"toriibench: load data, generate load and measure toriid"};
  app.require_subcommand(1);
  bool json = false;
  app.add_flag("--json", json, "print the result as one JSON object");

  LoadOptions lo;
  auto* load = app.add_subcommand("load", "fill a database with the deterministic benchmark data set");
  load->add_option("--db", lo.conninfo, "libpq conninfo or URI")->required();
  load->add_option("--users", lo.users, "users")->capture_default_str();
  load->add_option("--sessions", lo.sessions, "live sessions")->capture_default_str();
  load->add_option("--expired", lo.expired, "expired sessions, after the live ones")->capture_default_str();

  LoadGenOptions go;
  std::string op = "get_session";
  bool quiet = false;
  std::vector<std::string> cpu_flags, cpu_tree_flags;
  auto* run = app.add_subcommand("run", "load generator");
  run->add_option("--endpoint", go.endpoints, "toriid request endpoint (repeatable)")->required();
  run->add_option("-c,--connections", go.connections, "connections (one Client each)")->capture_default_str();
  run->add_option("-j,--threads", go.threads, "threads driving the connections (as pgbench -j)")->capture_default_str();
  run->add_option("-d,--depth", go.depth, "requests in flight per connection (max-rate mode)")->capture_default_str();
  run->add_option("-t,--duration", go.duration_s, "measured seconds")->capture_default_str();
  run->add_option("-w,--warmup", go.warmup_s, "warm-up seconds, not measured")->capture_default_str();
  run->add_option("-r,--rate", go.rate, "fixed total rate in requests/s; 0: as fast as possible")->capture_default_str();
  run->add_option("--tick-us", go.tick_us, "fixed rate: sends falling due within a tick go out together")
      ->capture_default_str();
  run->add_option("--op", op, "get_session | create_session | mix (90/10) | get_user_by_email | ping")->capture_default_str();
  run->add_option("--users", go.users, "users in the data set")->capture_default_str();
  run->add_option("--sessions", go.sessions, "live sessions in the data set")->capture_default_str();
  run->add_option("--timeout-ms", go.timeout_ms, "request deadline")->capture_default_str();
  run->add_flag("--cleanup", go.cleanup, "measure while cleanup_expired_sessions runs");
  run->add_flag("--plain", go.plain, "raw libzmq DEALER sockets and zmq_poll instead of torii::Client");
  run->add_option("--tenant", go.tenant, "plain client: the requests' tenant (default: none, the default tenant)");
  run->add_option("--cpu", cpu_flags, "NAME=PID: report that process's CPU per reply over the window (repeatable)");
  run->add_option("--cpu-tree", cpu_tree_flags,
                  "NAME=PID: the same for the process and its children (a postmaster: its backends)");
  run->add_option("--slow-clients", go.slow_clients, "extra sockets that send get_session and never read")
      ->capture_default_str();
  run->add_option("--slow-burst", go.slow_burst, "requests each slow client sends at the start")->capture_default_str();
  run->add_option("--slow-rate", go.slow_rate, "then requests/s each slow client sends")->capture_default_str();
  run->add_option("--storm-clients", go.storm_clients,
                  "extra sockets connecting during the measured window, one request each")
      ->capture_default_str();
  run->add_option("--storm-ms", go.storm_ms, "the storm's connections spread over this long")->capture_default_str();
  run->add_flag("-q,--quiet", quiet, "no progress lines");

  EventLatencyOptions eo;
  auto* ev = app.add_subcommand("events", "commit-to-subscriber event latency");
  ev->add_option("--endpoint", eo.request_endpoints, "toriid request endpoint")->required();
  ev->add_option("--events", eo.event_endpoints, "toriid events endpoint")->required();
  ev->add_option("-r,--rate", eo.rate, "create_session writes/s")->capture_default_str();
  ev->add_option("-t,--duration", eo.duration_s, "measured seconds")->capture_default_str();
  ev->add_option("-w,--warmup", eo.warmup_s, "warm-up seconds")->capture_default_str();
  ev->add_option("--users", eo.users, "users in the data set")->capture_default_str();
  ev->add_option("--heartbeat-ms", eo.heartbeat_ms, "the daemon's events.heartbeat_ms")->capture_default_str();
  ev->add_flag("-q,--quiet", quiet, "no progress lines");

  IdleClientsOptions io;
  auto* cl = app.add_subcommand("clients", "RSS of a process with N idle connected clients");
  cl->add_option("--endpoint", io.endpoints, "toriid request endpoint")->required();
  cl->add_option("-n,--clients", io.clients, "connections")->capture_default_str();
  cl->add_option("--pid", io.pid, "process whose RSS to sample (toriid)")->capture_default_str();
  cl->add_option("--hold", io.hold_s, "seconds to stay connected")->capture_default_str();
  cl->add_option("--sessions", io.sessions, "> 0: each client asks get_session of a token below this instead of ping")
      ->capture_default_str();

  RevokeOptions ro;
  auto* rv = app.add_subcommand("revoke", "revocation latency of the daemon's session cache");
  rv->add_option("--endpoint", ro.endpoint, "the first toriid's request endpoint")->required();
  rv->add_option("--events", ro.events, "the first toriid's events endpoint")->required();
  rv->add_option("--db", ro.db, "libpq conninfo: revoke with plain SQL");
  rv->add_option("--via", ro.via_endpoint, "revoke with delete_session through this (second) toriid instead");
  rv->add_option("-n,--revocations", ro.revocations, "sessions revoked")->capture_default_str();
  rv->add_option("--readers", ro.readers, "reader sockets")->capture_default_str();
  rv->add_option("--users", ro.users, "users in the data set")->capture_default_str();
  rv->add_flag("-q,--quiet", quiet, "no progress lines");

  std::vector<std::string> floor_endpoints;
  auto* fl = app.add_subcommand("floor", "the cheapest plain libzmq ROUTER server (answers as a ping) until SIGTERM");
  fl->add_option("--endpoint", floor_endpoints, "endpoint to bind (repeatable)")->required();
  bool floor_session = false;
  fl->add_flag("--session-reply", floor_session,
               "answer every request with a session of the benchmark's data set (a cached get_session's reply)");

  CLI11_PARSE(app, argc, argv);

  if (*load) {
    auto r = LoadData(lo);
    if (!r.ok()) return Fail(r.error());
    if (json) {
      std::cout << nlohmann::json{{"users", r->users}, {"sessions", r->sessions}, {"expired", r->expired},
                                  {"seconds", r->seconds}}
                << "\n";
    } else {
      std::printf("loaded %llu users, %llu live and %llu expired sessions in %.1f s\n",
                  (unsigned long long)r->users, (unsigned long long)r->sessions, (unsigned long long)r->expired,
                  r->seconds);
    }
    return 0;
  }
  if (*run) {
    auto k = ParseOpKind(op);
    if (!k.ok()) return Fail(k.error());
    go.op = *k;
    go.progress = !quiet;
    for (auto [flags, into] : {std::pair{&cpu_flags, &go.cpu}, {&cpu_tree_flags, &go.cpu_tree}}) {
      for (const auto& f : *flags) {
        size_t eq = f.find('=');
        int pid = eq == std::string::npos ? 0 : std::atoi(f.c_str() + eq + 1);
        if (pid <= 0) return Fail(torii::Error::InvalidArgument("--cpu/--cpu-tree take NAME=PID, not '" + f + "'"));
        (*into)[f.substr(0, eq)] = pid;
      }
    }
    auto r = RunLoad(go);
    if (!r.ok()) return Fail(r.error());
    if (json) {
      std::cout << r->ToJson() << "\n";
    } else {
      PrintLoad(*r);
    }
    return 0;
  }
  if (*ev) {
    eo.progress = !quiet;
    auto r = RunEventLatency(eo);
    if (!r.ok()) return Fail(r.error());
    std::cout << (json ? r->dump() : r->dump(2)) << "\n";
    return 0;
  }
  if (*fl) {
    torii::Status st = RunFloorServer(floor_endpoints, floor_session);
    return st.ok() ? 0 : Fail(st.error());
  }
  if (*rv) {
    if (ro.db.empty() == ro.via_endpoint.empty()) return Fail(torii::Error::InvalidArgument("give --db or --via"));
    ro.progress = !quiet;
    auto r = RunRevoke(ro);
    if (!r.ok()) return Fail(r.error());
    std::cout << (json ? r->dump() : r->dump(2)) << "\n";
    return 0;
  }
  auto r = RunIdleClients(io);
  if (!r.ok()) return Fail(r.error());
  std::cout << (json ? r->dump() : r->dump(2)) << "\n";
  return 0;
}
