// Revocation latency of the daemon's session cache: readers hammer
// get_session on one session's token through toriid (plain DEALER sockets)
// while another writer revokes that session, then the next, `revocations`
// times. The writer is plain SQL (a DELETE over libpq) or, with
// `via_endpoint`, delete_session through a second daemon. Per revocation:
// - served_after_commit: the last OK reply's arrival minus the commit's
//   return to the writer (0 when none came later): how long the revoked
//   session was still served;
// - event: the commit to the session.deleted event's arrival at a
//   subscriber of the first daemon (which invalidates before publishing);
// - violations: OK replies to requests sent after that event arrived: a
//   revoked session served after the daemon processed its event. Must be 0.
// Blocking.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "torii/error.h"

namespace torii::bench {

struct RevokeOptions {
  std::string endpoint;         // the first daemon's requests
  std::string events;           // the first daemon's events
  std::string db;               // libpq conninfo: the plain-SQL writer
  std::string via_endpoint;     // set: revoke through this (second) daemon instead
  uint64_t users = 100000;      // sessions are created for users of the data set
  int revocations = 1000;
  int readers = 8;              // DEALER sockets, over two threads
  bool progress = true;
};

Result<nlohmann::json> RunRevoke(const RevokeOptions& opt);

}  // namespace torii::bench
