// Idle-connection footprint: opens N torii::Client connections (one shared
// ZeroMQ context) at once, makes each answer one request (a ping, or with
// `sessions` > 0 a get_session of a data-set token below it) so the daemon
// really holds N peers (the time until all are answered is a connection
// storm's), then samples a process's resident set size (VmRSS of /proc/PID/status,
// normally toriid's) while they stay connected. Raises this process's
// open-file limit to its hard maximum first (each connection is a socket).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "torii/error.h"

namespace torii::bench {

struct IdleClientsOptions {
  std::vector<std::string> endpoints;
  int clients = 1000;
  int pid = 0;          // whose RSS to sample; 0: none
  double hold_s = 2;    // how long to stay connected (RSS is sampled at the end)
  uint64_t sessions = 0;  // > 0: each asks get_session of token i % sessions instead of ping
};

Result<nlohmann::json> RunIdleClients(const IdleClientsOptions& opt);

// VmRSS of a process in KiB, or -1.
long RssKiB(int pid);

}  // namespace torii::bench
