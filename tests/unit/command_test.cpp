// A statement execution's parameters (daemon/ops/command.h): values and NULLs.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "ops/command.h"

namespace torii::daemon {
namespace {

TEST(CommandTest, NullsAreTrackedPerParameter) {
  Command c(Stmt::kGetSessionByToken);
  c.Add("a").AddNull().Add("").AddOpt(std::optional<std::string>()).AddOpt(std::optional<std::string>("x"));
  ASSERT_EQ(c.values.size(), 5u);
  EXPECT_FALSE(c.null(0));
  EXPECT_TRUE(c.null(1));
  EXPECT_FALSE(c.null(2));  // an empty string is not NULL
  EXPECT_TRUE(c.null(3));
  EXPECT_FALSE(c.null(4));
  EXPECT_EQ(c.values[4], "x");
  EXPECT_FALSE(c.null(Command::kMaxParams + 3));  // past the limit (the pool refuses such a command)
}

TEST(CommandTest, LastParameterWithinTheLimitCanBeNull) {
  Command c(Stmt::kGetSessionByToken);
  for (size_t i = 0; i + 1 < Command::kMaxParams; i++) c.Add("v");
  c.AddNull();
  ASSERT_EQ(c.values.size(), Command::kMaxParams);
  EXPECT_TRUE(c.null(Command::kMaxParams - 1));
  EXPECT_FALSE(c.null(Command::kMaxParams - 2));
}

}  // namespace
}  // namespace torii::daemon
