// Lookup batching: which jobs may join, the batched command, and the
// mapping of the batch's rows back to its members.
#include "lookup_batch.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "ops/statements.h"
#include "pool_job.h"
#include "torii/values.h"

namespace torii::daemon {

bool LookupBatches::Batchable(const Job& job) {
  if (!job.groupable || job.cmds.size() != 1) return false;
  const Command& c = job.cmds[0];
  const StatementDef& def = Statement(c.stmt);
  // The key, and the tenant when the statement has one.
  const size_t params = def.tenant_param >= 0 ? 2 : 1;
  return def.batched != Stmt::kCount && c.values.size() == params && !c.null(0);
}

uint64_t LookupBatches::front_queued_at() const { return queue_.front()->queued_at_ms; }

bool LookupBatches::Remove(Job* job) {
  auto it = std::find(queue_.begin(), queue_.end(), job);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

std::deque<Job*> LookupBatches::TakeAll() {
  std::deque<Job*> all;
  all.swap(queue_);
  return all;
}

std::vector<Job*> LookupBatches::TakeNext() {
  std::vector<Job*> members{queue_.front()};
  queue_.pop_front();
  if (queue_.empty()) return members;
  Stmt stmt = members[0]->cmds[0].stmt;
  // One batch is one tenant's: its statement takes one tenant.
  while (!queue_.empty() && members.size() < kMaxBatch && queue_.front()->cmds[0].stmt == stmt &&
         queue_.front()->tenant == members[0]->tenant) {
    members.push_back(queue_.front());
    queue_.pop_front();
  }
  return members;
}

Command LookupBatches::BatchCommand(const std::vector<Job*>& members) {
  Command cmd(Statement(members[0]->cmds[0].stmt).batched);
  cmd.Add(BatchKeys(members.size(), [&members](size_t i) -> const std::string& { return members[i]->cmds[0].values[0]; }));
  if (Statement(cmd.stmt).tenant_param >= 0) cmd.Add(members[0]->tenant);
  return cmd;
}

std::vector<int> LookupBatches::MatchRows(const PGresult* res, const std::vector<Job*>& members) {
  std::vector<int> row_of(members.size(), -1);
  // Each row carries its key in the column named kBatchKeyColumn.
  int key_col = res != nullptr ? PQfnumber(res, kBatchKeyColumn) : -1;
  if (key_col < 0) return row_of;
  std::string key;
  for (int r = 0; r < PQntuples(res); r++) {
    if (!DecodeByteaHex(std::string_view(PQgetvalue(res, r, key_col), PQgetlength(res, r, key_col)), &key)) continue;
    for (size_t i = 0; i < members.size(); i++) {
      if (row_of[i] < 0 && members[i]->cmds[0].values[0] == key) row_of[i] = r;  // a repeated key: each copy
    }
  }
  return row_of;
}

LookupBatches::AfterGone LookupBatches::OnMemberGone(const Job& carrier) {
  bool all_abandoned = true, all_cancelled = true;
  for (const Job* m : carrier.members) {
    all_abandoned = all_abandoned && m->abandoned;
    all_cancelled = all_cancelled && (m->abandoned || m->cancel_wanted);
  }
  if (all_abandoned) return AfterGone::kAbandon;
  if (all_cancelled && carrier.conn != nullptr && !carrier.cancel_wanted) return AfterGone::kCancel;
  return AfterGone::kKeep;
}

}  // namespace torii::daemon
