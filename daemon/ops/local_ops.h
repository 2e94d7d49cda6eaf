// The operations the daemon answers itself, without a statement of the
// request path: ping, stats and cleanup_expired_sessions (PROTOCOL.md
// section 2). Owns their argument checks and reply bodies; what they need
// from the running daemon (its counters, the janitor) comes in as hooks, so
// this file does no I/O. Built and called on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "torii/protocol.h"

namespace torii::daemon {

// Completes a local operation: the packed result value, or an error. Called
// once, now or later on the loop thread.
using LocalReply = std::function<void(Result<std::string>)>;
using LocalFn = std::function<void(const Args& args, LocalReply reply)>;

struct LocalOpDef {
  std::string name;
  LocalFn run;
};

struct LocalOpHooks {
  // The schema version this daemon runs on (ping's `schema`).
  uint64_t schema_version = 0;
  // The packed `stats` result.
  std::function<std::string()> stats;
  // The value of stats' `tenants` key, packed ({name: {users, sessions,
  // requests}}), or an error (stats is then answered without it); empty:
  // no such key.
  std::function<void(std::function<void(Result<std::string>)> done)> tenants;
  // Runs one cleanup pass now; `done` gets the number of sessions it deleted.
  std::function<void(std::function<void(Result<uint64_t>)> done)> cleanup;
};

// The local operations, each a row of the protocol's table with `local` set.
std::vector<LocalOpDef> LocalOps(LocalOpHooks hooks);

}  // namespace torii::daemon
