// Event latency: a writer creates sessions through toriid at a fixed rate
// while a torii::Subscriber in the same process records when each
// session.created event arrives. Three intervals per session:
// - txn_to_event: the row's created_at (now() in PostgreSQL = its
//   transaction's start, same machine and clock) to receipt: the
//   commit-to-receipt latency plus the INSERT's own short transaction, so an
//   upper bound of commit to receipt;
// - send_to_event: the request's intended send time to receipt;
// - reply_to_event: the reply's arrival to the event's (negative when the
//   event came first; such samples count as 0).
// Blocking.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "torii/error.h"

namespace torii::bench {

struct EventLatencyOptions {
  std::vector<std::string> request_endpoints;
  std::vector<std::string> event_endpoints;
  double rate = 1000;  // writes/s
  double duration_s = 10;
  double warmup_s = 2;
  uint64_t users = 100000;
  int64_t heartbeat_ms = 1000;
  bool progress = true;
};

Result<nlohmann::json> RunEventLatency(const EventLatencyOptions& opt);

}  // namespace torii::bench
