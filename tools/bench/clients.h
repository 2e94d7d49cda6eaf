// Idle-connection footprint: opens N torii::Client connections (one shared
// ZeroMQ context), makes each answer one ping so the daemon really holds N
// peers, then samples a process's resident set size (VmRSS of /proc/PID/status,
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
};

Result<nlohmann::json> RunIdleClients(const IdleClientsOptions& opt);

// VmRSS of a process in KiB, or -1.
long RssKiB(int pid);

}  // namespace torii::bench
