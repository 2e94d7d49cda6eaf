// A start-serve-stop cycle of the daemon that exercises every part (pool,
// requests, events, cleanup, SIGHUP reload), then checks a clean exit. In
// the asan preset toriid is built with AddressSanitizer, LeakSanitizer and
// UBSan: a leak, a memory error or undefined behaviour makes it print a
// report and exit non-zero, which this test catches.
#include <gtest/gtest.h>

#include <csignal>

#include "event_sub.h"
#include "request_fixture.h"

namespace torii::test {
namespace {

TEST(LeakCheck, StartServeStopIsClean) {
  DaemonOptions o;
  o.settings["events.heartbeat_ms"] = "50";
  o.settings["cleanup.interval_s"] = "1";
  DaemonProcess d(o);
  EventSub sub(d.event_endpoint(), {"user.", "session.", "torii."});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());
  WireClient c(d.request_endpoint());
  Reply u = c.Call("create_user", V::Map({{"email", "leak@example.com"}, {"metadata", V::Map({{"a", V::Array({1, "x"})}})}}));
  ASSERT_TRUE(u.ok()) << u.ToString();
  std::string uid = u.result()["id"].str();
  Reply s = c.Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", 60}}));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(c.Call("get_session", V::Map({{"token", s.result()["token"].str()}})).ok());
  ASSERT_TRUE(c.Call("search_users", V::Map({{"query", "leak"}})).ok());
  ASSERT_TRUE(c.Call("list_audit").ok());
  ASSERT_TRUE(c.Call("cleanup_expired_sessions").ok());
  EXPECT_EQ(c.Call("get_user", V::Map({{"id", "not-a-uuid"}})).code(), "invalid_argument");
  c.SendRaw("\xc1 not msgpack");
  EXPECT_EQ(c.Recv(5000).code(), "bad_request");
  // A request that times out while its statement is queued behind nothing.
  Req r;
  r.op = V("list_users");
  r.timeout_ms = V(uint64_t{0});
  EXPECT_EQ(c.Call(r).code(), "timeout");
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("reloaded", 5000));
  ASSERT_TRUE(c.Call("delete_user", V::Map({{"id", uid}})).ok());
  ASSERT_FALSE(sub.WaitForTopic("user.deleted", 5000).topic.empty());

  int status = d.Stop(30000);
  std::string log = d.log();
  EXPECT_EQ(status, 0) << d.LogTail(60);
  for (const char* report : {"LeakSanitizer", "AddressSanitizer", "runtime error:"}) {
    EXPECT_EQ(log.find(report), std::string::npos) << report << " reported:\n" << d.LogTail(60);
  }
}

}  // namespace
}  // namespace torii::test
