// The load generator: N torii::Client connections (on one shared ZeroMQ
// context) driven by `threads` threads, as pgbench -c N -j threads does;
// each connection keeps up to `depth` requests in flight.
//
// Two modes:
// - max throughput (rate == 0): every connection refills its pipeline as
//   replies come; latency is reply time minus send time.
// - fixed rate (rate > 0 requests/s in total): each connection sends on a
//   schedule; latency is measured from the *intended* send time, so a
//   stall that delays later sends is charged to them (no coordinated
//   omission). Sends that fall due within one tick (100 us) go out
//   together. A connection never has more than max(depth, 1000) requests
//   in flight; when it would, the schedule falls behind and that shows up
//   as latency.
// Samples whose intended send time falls in the warm-up are dropped; all
// others are kept (percentiles are exact, over every sample).
//
// With `cleanup`, a separate connection calls cleanup_expired_sessions
// after the warm-up until it deletes nothing more; the measurement window
// is the cleanup's duration (at least `duration_s`).
//
// Blocking; prints a progress line per second on stderr when `progress`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common.h"
#include "torii/error.h"

namespace torii::bench {

enum class OpKind { kGetSession, kCreateSession, kMix, kGetUserByEmail, kPing };
Result<OpKind> ParseOpKind(const std::string& s);
const char* OpKindName(OpKind k);

struct LoadGenOptions {
  std::vector<std::string> endpoints;
  int connections = 8;
  int threads = 2;  // at most `connections`
  int depth = 1;
  double duration_s = 10;
  double warmup_s = 2;
  double rate = 0;  // requests/s in total; 0: as fast as possible
  // Fixed rate: a thread sends at most once per tick what fell due in it
  // (latency still counts from each request's intended send time).
  int tick_us = 100;
  OpKind op = OpKind::kGetSession;
  uint64_t users = 100000;     // key space: user index < users
  uint64_t sessions = 1000000; // key space: live session index < sessions
  int64_t timeout_ms = 5000;
  bool cleanup = false;
  // Plain-client mode: raw libzmq DEALER sockets (an empty delimiter frame,
  // then the msgpack body) and zmq_poll, requests packed and replies
  // decoded by hand with msgpack, the way a user of any language talks to
  // toriid; no torii::Client. Max-rate mode only.
  bool plain = false;
  // Plain client only: the request's `tenant` (empty: none, the default).
  std::string tenant;
  // Processes whose CPU time (user + system, /proc/PID/stat) is read at the
  // start and end of the measured window, by name: `cpu` the process
  // alone, `cpu_tree` the process and its direct children, with the children
  // that exited and were waited for meanwhile (a postmaster:
  // its backends). Reported per reply in that window.
  std::map<std::string, int> cpu, cpu_tree;
  // Disturbances beside the measured connections (plain DEALER sockets on
  // a thread of their own; they count neither in the throughput nor in the
  // latency):
  // - slow clients: `slow_clients` sockets that send get_session and never
  //   read a reply (a receive buffer of a few KiB, a receive high-water
  //   mark of 1): `slow_burst` requests each when the warm-up starts, then
  //   `slow_rate` requests/s each until the end;
  // - a storm: `storm_clients` sockets that connect during the measured
  //   window, spread evenly over its first `storm_ms`; each sends one
  //   request of `op` at once and reads its reply, then stays connected.
  int slow_clients = 0;
  int slow_burst = 200;
  double slow_rate = 10;
  int storm_clients = 0;
  int storm_ms = 1000;
  bool progress = true;
  uint64_t seed = 1;
};

// What the disturbances saw (LoadGenOptions' slow clients and storm).
struct DisturbReport {
  int slow_clients = 0;
  uint64_t slow_sent = 0;         // requests the slow clients sent
  int storm_clients = 0;
  uint64_t storm_ok = 0, storm_errors = 0, storm_unanswered = 0;
  double storm_all_served_ms = 0; // first connect to last reply (all answered) or to the end
  LatencySummary storm_latency;   // each storm client's one request
  nlohmann::json ToJson() const;
};

struct LoadGenReport {
  OpKind op = OpKind::kGetSession;
  int connections = 0, threads = 0, depth = 0;
  double rate = 0;
  double seconds = 0;        // measurement window
  uint64_t ok = 0;           // successful replies in the window
  uint64_t errors = 0;       // error replies (any code) in the window
  std::map<std::string, uint64_t> error_codes;
  double throughput = 0;     // ok replies per second
  LatencySummary latency;    // successful replies
  TailSpread tail;           // where in time the replies slower than p99 were sent
  double cleanup_s = 0;      // cleanup mode: how long the cleanup took
  uint64_t cleanup_deleted = 0;
  bool plain = false;
  DisturbReport disturb;
  // CPU microseconds per reply over the measured window, by name (options'
  // cpu and cpu_tree), and of this load generator itself ("client").
  std::map<std::string, double> cpu_us_per_reply;
  // The same for each `cpu` process split by thread name ("main" for its
  // first thread; a toriid's or libzmq user's I/O thread is "ZMQbg/IO/0").
  std::map<std::string, std::map<std::string, double>> cpu_us_per_reply_by_thread;
  nlohmann::json ToJson() const;
};

Result<LoadGenReport> RunLoad(const LoadGenOptions& opt);

}  // namespace torii::bench
