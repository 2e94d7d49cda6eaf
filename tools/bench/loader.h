// The benchmark data loader: applies toriid's migrations, then replaces the
// contents of users, sessions and audit_logs with the deterministic data
// set of common.h, through COPY, in one transaction.
//
// The row triggers (events, audit) are disabled for the load inside that
// transaction (ALTER TABLE ... DISABLE TRIGGER USER needs only ownership),
// so a million sessions do not become a million NOTIFYs and audit rows; no
// other session ever sees the tables without their triggers. Blocking; for
// the bench tool and its smoke test. Run it before toriid starts (ALTER
// TABLE waits for every open transaction on the tables).
#pragma once

#include <cstdint>
#include <string>

#include "torii/error.h"

namespace torii::bench {

struct LoadOptions {
  std::string conninfo;
  uint64_t users = 100000;
  uint64_t sessions = 1000000;  // live ones (expire in 30 days)
  uint64_t expired = 0;         // then this many already expired
};

struct LoadReport {
  double seconds = 0;
  uint64_t users = 0, sessions = 0, expired = 0;
};

Result<LoadReport> LoadData(const LoadOptions& opt);

}  // namespace torii::bench
