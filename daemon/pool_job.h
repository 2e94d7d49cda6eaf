// A job inside the pool: one request's commands and the callback that hears
// how they ended, plus where the pool has put it. Internal to the pool
// (pool.cpp, pool_conn.cpp, lookup_batch.cpp); callers only see a JobId.
//
// Owned by Pool::jobs_, and only there: the queues, a connection's
// in-flight list and a batch's member list hold plain pointers to jobs
// that stay in jobs_ until Pool::Free, which every path out of the pool
// ends in. Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pool.h"

namespace torii::daemon {

class PoolConn;

struct Job {
  Job(JobId i, std::vector<Command> c, bool g, JobDone d)
      : id(i), cmds(std::move(c)), done(std::move(d)), groupable(g) {}
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const JobId id;
  std::vector<Command> cmds;
  JobDone done;  // empty for a batch's carrier (its members have theirs)
  // May share one Sync with the other groupable jobs of a loop turn (see
  // Pool::Submit). Cleared for a job retried after its group failed.
  bool groupable;
  uint64_t queued_at_ms = 0;
  bool abandoned = false;      // the caller gave up: freed, never answered
  bool cancel_wanted = false;  // deadline passed; cancel it, but still report how it ended
  bool retried = false;        // already run again once after a cancel that hit it by mistake
  std::string tenant = "default";  // torii.tenant while it runs (Pool::Submit)
  PoolConn* conn = nullptr;    // the connection it is in flight on, else nullptr
  // Lookup batches (lookup_batch.h): a carrier runs the batched statement
  // for its members; a member points to its carrier until answered.
  std::vector<Job*> members;
  Job* carrier = nullptr;
};

}  // namespace torii::daemon
