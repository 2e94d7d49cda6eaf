// Lookup batching (daemon/lookup_batch.h): which jobs may join a batch, how
// a batch is taken off the queue, the key array, the rows handed back to
// the members, and what a carrier needs when a member is given up on. No
// server: the batch's result is built with libpq's PGresult setters.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lookup_batch.h"
#include "pool_job.h"

namespace torii::daemon {
namespace {

std::unique_ptr<Job> Lookup(JobId id, std::string key, Stmt stmt = Stmt::kGetSessionByToken, bool groupable = true) {
  std::vector<Command> cmds;
  cmds.emplace_back(stmt);
  cmds.back().Add(std::move(key));
  // As BuildPlan makes it: the tenant after the statement's own parameters.
  if (Statement(stmt).tenant_param >= 0) cmds.back().Add("default");
  return std::make_unique<Job>(id, std::move(cmds), groupable, nullptr);
}

TEST(LookupBatches, OnlyGroupableSingleKeyLookupsWithABatchedFormMayJoin) {
  EXPECT_TRUE(LookupBatches::Batchable(*Lookup(1, "k")));
  EXPECT_FALSE(LookupBatches::Batchable(*Lookup(2, "k", Stmt::kGetSessionByToken, false))) << "a write or actor job";
  EXPECT_FALSE(LookupBatches::Batchable(*Lookup(3, "k", Stmt::kGetSessionById))) << "no batched form";
  auto two = Lookup(4, "k");
  two->cmds.emplace_back(Stmt::kGetSessionByToken);
  two->cmds.back().Add("k2");
  EXPECT_FALSE(LookupBatches::Batchable(*two)) << "two commands";
  std::vector<Command> null_key;
  null_key.emplace_back(Stmt::kGetSessionByToken);
  null_key.back().AddNull();
  EXPECT_FALSE(LookupBatches::Batchable(Job(5, std::move(null_key), true, nullptr))) << "a NULL key";
}

TEST(LookupBatches, ABatchHoldsTheLookupsOfOneTenant) {
  LookupBatches q;
  auto a = Lookup(1, "a"), b = Lookup(2, "b"), c = Lookup(3, "c");
  b->tenant = "acme";
  for (Job* j : {a.get(), b.get(), c.get()}) q.Push(j);
  EXPECT_EQ(q.TakeNext().size(), 1u) << "a, then acme's b";
  std::vector<Job*> next = q.TakeNext();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0], b.get());
  Command cmd = LookupBatches::BatchCommand({b.get()});
  EXPECT_EQ(cmd.values[1], "acme");
}

TEST(LookupBatches, TakesALoneLookupAloneAndABatchOfOneStatementUpToTheLimit) {
  std::vector<std::unique_ptr<Job>> jobs;
  LookupBatches q;
  jobs.push_back(Lookup(1, "a"));
  q.Push(jobs.back().get());
  EXPECT_EQ(q.TakeNext().size(), 1u);
  EXPECT_TRUE(q.empty());

  for (size_t i = 0; i < LookupBatches::kMaxBatch + 3; i++) {
    jobs.push_back(Lookup(10 + i, "k" + std::to_string(i)));
    q.Push(jobs.back().get());
  }
  std::vector<Job*> first = q.TakeNext();
  ASSERT_EQ(first.size(), LookupBatches::kMaxBatch);
  EXPECT_EQ(first[0]->id, 10u) << "oldest first";
  EXPECT_EQ(q.size(), 3u);
  EXPECT_TRUE(q.Remove(jobs.back().get()));
  EXPECT_FALSE(q.Remove(jobs.back().get()));
  EXPECT_EQ(q.TakeNext().size(), 2u);
  EXPECT_TRUE(q.empty());
}

TEST(LookupBatches, TheBatchedCommandCarriesEveryKeyAsABinaryByteaArray) {
  auto a = Lookup(1, "ab"), b = Lookup(2, "");
  Command cmd = LookupBatches::BatchCommand({a.get(), b.get()});
  EXPECT_EQ(cmd.stmt, Stmt::kGetSessionsByTokens);
  ASSERT_EQ(cmd.values.size(), 2u) << "the keys and the members' tenant";
  EXPECT_EQ(cmd.values[1], "default");
  const std::string& v = cmd.values[0];
  auto be32 = [&v](size_t at) {
    uint32_t x;
    memcpy(&x, v.data() + at, 4);
    return ntohl(x);
  };
  ASSERT_EQ(v.size(), 20u + 4 + 2 + 4);
  EXPECT_EQ(be32(0), 1u);   // dimensions
  EXPECT_EQ(be32(4), 0u);   // no NULLs
  EXPECT_EQ(be32(8), 17u);  // bytea
  EXPECT_EQ(be32(12), 2u);  // elements
  EXPECT_EQ(be32(20), 2u);
  EXPECT_EQ(v.substr(24, 2), "ab");
  EXPECT_EQ(be32(26), 0u);
}

TEST(LookupBatches, EachMemberGetsTheRowOfItsKeyOrNone) {
  // Two columns; the key (hex bytea) is the one named kBatchKeyColumn.
  PGresult* r = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
  PGresAttDesc attrs[2] = {{const_cast<char*>("id"), 0, 0, 0, 25, -1, -1},
                           {const_cast<char*>(kBatchKeyColumn), 0, 0, 0, 17, -1, -1}};
  ASSERT_EQ(PQsetResultAttrs(r, 2, attrs), 1);
  auto set = [r](int row, const char* id, const char* key) {
    PQsetvalue(r, row, 0, const_cast<char*>(id), static_cast<int>(strlen(id)));
    PQsetvalue(r, row, 1, const_cast<char*>(key), static_cast<int>(strlen(key)));
  };
  set(0, "s2", "\\x6b32");     // "k2"
  set(1, "s1", "\\x6B31");     // "k1", upper-case digits
  set(2, "bad", "\\x6g31");    // not hex: no member's
  auto k1 = Lookup(1, "k1"), k2 = Lookup(2, "k2"), k3 = Lookup(3, "k3"), k1again = Lookup(4, "k1");
  std::vector<int> rows = LookupBatches::MatchRows(r, {k1.get(), k2.get(), k3.get(), k1again.get()});
  EXPECT_EQ(rows, (std::vector<int>{1, 0, -1, 1}));
  EXPECT_EQ(LookupBatches::MatchRows(nullptr, {k1.get()}), std::vector<int>{-1});
  PQclear(r);
}

TEST(LookupBatches, ACarrierIsAbandonedWhenNoMemberWantsItAndCancelledWhenAllDeadlinesPassed) {
  auto a = Lookup(1, "a"), b = Lookup(2, "b");
  Job carrier(3, {}, true, nullptr);
  carrier.members = {a.get(), b.get()};
  using G = LookupBatches::AfterGone;
  a->abandoned = true;
  EXPECT_EQ(LookupBatches::OnMemberGone(carrier), G::kKeep);
  b->cancel_wanted = true;
  EXPECT_EQ(LookupBatches::OnMemberGone(carrier), G::kKeep) << "not sent: nothing to cancel";
  carrier.conn = reinterpret_cast<PoolConn*>(&carrier);  // any non-null: in flight
  EXPECT_EQ(LookupBatches::OnMemberGone(carrier), G::kCancel);
  carrier.cancel_wanted = true;
  EXPECT_EQ(LookupBatches::OnMemberGone(carrier), G::kKeep) << "already cancelled";
  b->abandoned = true;
  EXPECT_EQ(LookupBatches::OnMemberGone(carrier), G::kAbandon);
}

}  // namespace
}  // namespace torii::daemon
