// Lookup batching: read-only lookups of one key (a session by token, ...)
// that wait in the same loop turn go to the server as one statement over an
// array of their keys (the statement's `batched` form), under a carrier job;
// each member then reads its own row of the carrier's result.
//
// Owns the queue of lookups waiting for a connection, not the jobs in it
// (those stay Pool::jobs_'s, pool_job.h). Loop thread only; no I/O.
#pragma once

#include <arpa/inet.h>
#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "pool.h"

namespace torii::daemon {

struct Job;

// n keys (key_at(i) for i < n) as a binary one-dimensional bytea[]
// (array_recv's format), built in one allocation.
template <typename KeyAt>
std::string BatchKeys(size_t n, KeyAt key_at) {
  auto put_be32 = [](std::string& out, uint32_t v) {
    v = htonl(v);
    out.append(reinterpret_cast<const char*>(&v), 4);
  };
  constexpr uint32_t kByteaOid = 17;
  size_t bytes = 20;
  for (size_t i = 0; i < n; i++) bytes += 4 + key_at(i).size();
  std::string out;
  out.reserve(bytes);
  put_be32(out, 1);  // dimensions
  put_be32(out, 0);  // no NULLs
  put_be32(out, kByteaOid);
  put_be32(out, static_cast<uint32_t>(n));
  put_be32(out, 1);  // lower bound
  for (size_t i = 0; i < n; i++) {
    const std::string& k = key_at(i);
    put_be32(out, static_cast<uint32_t>(k.size()));
    out += k;
  }
  return out;
}

class LookupBatches {
 public:
  // Keys per lookup batch: enough that one statement answers a loop turn's
  // lookups on a busy daemon, few enough that one batch stays short.
  static constexpr size_t kMaxBatch = 64;

  // Whether `job` may join a batch: one groupable command whose statement
  // has a batched form, with a non-NULL key (and its tenant). A batch holds
  // the lookups of one tenant.
  static bool Batchable(const Job& job);

  void Push(Job* job) { queue_.push_back(job); }
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  uint64_t front_queued_at() const;
  // Takes `job` out of the queue; false when it was not in it.
  bool Remove(Job* job);
  std::deque<Job*> TakeAll();
  // The next lookup, alone when no other waits (the plain statement is
  // cheaper), else with up to kMaxBatch - 1 more of the same statement
  // that wait right behind it.
  std::vector<Job*> TakeNext();

  // The batched statement over the members' keys.
  static Command BatchCommand(const std::vector<Job*>& members);
  // Each member's row of the batch's result (the row whose key, the last
  // column, is its key; a repeated key gets it for each copy), or -1.
  static std::vector<int> MatchRows(const PGresult* res, const std::vector<Job*>& members);
  // What a carrier needs once one of its members was given up on: nothing,
  // abandoning (no member wants an answer), or cancelling (every member's
  // deadline passed while it runs).
  enum class AfterGone { kKeep, kAbandon, kCancel };
  static AfterGone OnMemberGone(const Job& carrier);

 private:
  std::deque<Job*> queue_;
};

}  // namespace torii::daemon
