// The daemon's operations (daemon/ops) against the protocol's table
// (torii/operations.h): every row implemented, nothing implemented that is
// not a row, local and database operations where the table says.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "ops/local_ops.h"
#include "ops/ops.h"
#include "torii/client.h"
#include "torii/operations.h"

namespace torii::daemon {
namespace {

std::set<std::string> TableNames(bool local) {
  std::set<std::string> names;
  for (const OperationInfo& op : Operations()) {
    if (op.local == local) names.emplace(op.name);
  }
  return names;
}

TEST(OpsTableTest, DatabaseOperationsAreTheTablesNonLocalRows) {
  std::set<std::string> daemon;
  for (const OpDef* op : DatabaseOps()) EXPECT_TRUE(daemon.emplace(op->name).second) << op->name;
  EXPECT_EQ(daemon, TableNames(false));
}

TEST(OpsTableTest, LocalOperationsAreTheTablesLocalRows) {
  std::set<std::string> daemon;
  for (const LocalOpDef& op : LocalOps({})) EXPECT_TRUE(daemon.emplace(op.name).second) << op.name;
  EXPECT_EQ(daemon, TableNames(true));
}

TEST(OpsTableTest, NamesAreUniqueAndFound) {
  std::set<std::string_view> seen;
  for (const OperationInfo& op : Operations()) {
    EXPECT_TRUE(seen.insert(op.name).second) << op.name;
    EXPECT_EQ(FindOperation(op.name), &op);
  }
  EXPECT_EQ(FindOperation("no_such_op"), nullptr);
}

TEST(OpsTableTest, OnlyReadOnlyOperationsAreRetrySafe) {
  for (const OperationInfo& op : Operations()) {
    if (op.retry_safe) {
      EXPECT_TRUE(op.read_only) << op.name;
    }
    EXPECT_EQ(IsIdempotentOp(op.name), op.retry_safe) << op.name;
  }
}

// Every Stmt is defined once, by a family (statements.cpp stops the daemon
// otherwise), under a name of its own.
TEST(OpsTableTest, EveryStatementIsDefinedOnceUnderItsOwnName) {
  std::set<std::string> names;
  for (int i = 0; i < kStatementCount; i++) {
    const StatementDef& def = Statement(static_cast<Stmt>(i));
    EXPECT_EQ(static_cast<int>(def.id), i);
    EXPECT_TRUE(names.emplace(def.name).second) << def.name;
    EXPECT_NE(def.sql, nullptr);
  }
}

}  // namespace
}  // namespace torii::daemon
