// Replica promotion (issue 18): one toriid whose database.url names a
// primary and its streaming standby (libpq multi-host, target_session_
// attrs=read-write), a load of writes and reads, and a subscriber. The
// primary is stopped immediately (SIGQUIT: like a crash, no shutdown
// checkpoint, no goodbye to the standby) and the standby promoted with
// `pg_ctl promote`, as an HA manager would.
//
// Checked: every reply comes within its deadline, and the only errors are
// unavailable/timeout, and only during the switchover; service is back
// within a bound, and the gap (stop to first acknowledged write) is
// printed; the subscriber gets torii.resync saying the daemon reconnected
// to a promoted server (and `stats` counts it); events flow from the new
// primary. With a synchronous standby no acknowledged write is lost. With an
// asynchronous one, writes the old primary acknowledged but had not yet
// streamed are lost: the test counts them, prints them (later requests about
// a lost user get not_found / foreign_key, allowed only for a lost user), and
// asserts that the daemon said so (log warning, torii.resync reason, stats)
// instead of carrying on silently.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "event_sub.h"
#include "eventually.h"
#include "pg_standby.h"
#include "request_fixture.h"
#include "torii/pg.h"
#include "write_load.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kDeadlineMs = 1000;
// A reply a little after its deadline is scheduling on a loaded machine;
// past this it counts as a hang.
constexpr int kHangMs = kDeadlineMs + 2000;
// Errors are allowed from one deadline before the stop until this long
// after the first acknowledged write on the new primary (the pool's other
// connections are still in their reconnect backoff then).
constexpr int kSettleMs = 3000;
// Service must be back within this long after the stop.
constexpr int kRecoveryBoundMs = 10000;

int64_t MsSince(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t - t0).count();
}

// What a failed switchover leaves to go on: the daemon's log, both
// servers' logs (which name what each answered, and when) and the daemon's
// own view of its pool and listener.
std::string Evidence(const DaemonProcess& d, const PgCluster& primary, const PgStandby& standby, WireClient& admin) {
  Reply stats = admin.Call("stats", V::Map({}), 2000);
  return "\ndaemon log:" + d.LogTail(150) + "\nold primary's log:" + FileTail(primary.LogPath(), 40) +
         "\nstandby's log:" + FileTail(standby.LogPath(), 40) +
         "\nstats: " + (stats.received ? stats.ToString() : std::string("no reply"));
}

// A steady load of create_user / create_session (writes) and get_user
// (reads) from several clients; every reply is logged with when it was sent.
// Only unavailable and timeout are allowed answers; not_found / foreign_key
// about an acknowledged user are wrong unless that user was lost in the
// failover (asynchronous standby).
WriteLoadOptions LoadOptions() {
  WriteLoadOptions o;
  o.email_prefix = "fo";
  o.deadline_ms = kDeadlineMs;
  o.hang_ms = kHangMs;
  o.allowed = {"unavailable", "timeout"};
  o.user_may_vanish = true;
  return o;
}

struct Outcome {
  int64_t gap_ms = -1;           // stop to first acknowledged write
  int64_t lost_users = 0;        // acknowledged, missing on the new primary
  int64_t lost_sessions = 0;
  size_t acked_users = 0;
  size_t acked_sessions = 0;
};

// The whole scenario; `synchronous` picks the standby's mode.
Outcome RunFailover(bool synchronous) {
  Outcome out;
  PgClusterOptions co;
  co.durable_commits = true;  // the primary's own commits are flushed before they are acknowledged
  PgCluster primary(co);
  std::string url = primary.CreateDatabase();
  std::string db = DbNameOf(url);
  PgStandby standby(primary);
  if (synchronous) MakeReplicationSynchronous(primary);
  WaitForStandbyCaughtUp(primary);

  // libpq multi-host: each host is tried in turn until one accepts writes.
  const ClusterInfo& p = primary.info();
  const ClusterInfo& s = standby.info();
  DaemonOptions o;
  o.database_url = "host=" + p.host + "," + s.host + " port=" + std::to_string(p.port) + "," +
                   std::to_string(s.port) + " user=" + p.user + " dbname=" + db +
                   " target_session_attrs=read-write connect_timeout=2";
  o.settings["events.heartbeat_ms"] = "100";
  o.settings["database.max_connections"] = "4";
  // The pool's and the listener's connection steps (which host each attempt
  // is on) are debug lines; a failed switchover prints them.
  o.settings["log.level"] = "\"debug\"";
  DaemonProcess d(o);
  EventSub sub(d.event_endpoint(), {"torii.", "session."});
  EXPECT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());
  WireClient admin(d.request_endpoint());
  // The listener learns the server's identity just after LISTEN is in place.
  Reply before;
  Eventually(
      [&] {
        before = admin.Call("stats", V::Map({}), 5000);
        return before.ok() && before.result()["events"]["timeline"].u64() != 0;
      },
      5000);
  EXPECT_TRUE(before.ok()) << before.ToString();
  EXPECT_EQ(before.result()["events"]["server_changes"].u64(), 0u);
  EXPECT_EQ(before.result()["events"]["timeline"].u64(), 1u) << before.ToString();

  WriteLoad load(d.request_endpoint(), LoadOptions());
  EXPECT_TRUE(Eventually([&] { return load.AckedWrites() >= 20; })) << "the load never got going";

  auto t_stop = Clock::now();
  primary.Stop(/*immediate=*/true);
  auto t_stopped = Clock::now();
  standby.Promote();
  auto t_promoted = Clock::now();

  // Service back: the first write sent after the stop that was acknowledged.
  auto limit = t_stop + std::chrono::milliseconds(kRecoveryBoundMs);
  Clock::time_point back = Clock::time_point::max();
  Eventually(
      [&] {
        back = load.FirstWriteAckedAfter(t_stop);
        return back != Clock::time_point::max();
      },
      static_cast<int>(std::max<int64_t>(0, MsSince(Clock::now(), limit))));
  EXPECT_NE(back, Clock::time_point::max())
      << "no write acknowledged within " << kRecoveryBoundMs << " ms of the stop (the old primary was gone after "
      << MsSince(t_stop, t_stopped) << " ms, pg_ctl promote returned after " << MsSince(t_stop, t_promoted)
      << " ms)" << Evidence(d, primary, standby, admin);
  if (back == Clock::time_point::max()) return out;
  out.gap_ms = MsSince(t_stop, back);
  // Keep the load on the new primary past the settling window: until a
  // write sent after it is acknowledged.
  auto settled = back + std::chrono::milliseconds(kSettleMs);
  EXPECT_TRUE(Eventually([&] { return load.FirstWriteAckedAfter(settled) != Clock::time_point::max(); },
                         kSettleMs + 10000))
      << "no write acknowledged after the settling window" << Evidence(d, primary, standby, admin);
  load.Stop();

  // Requests: in time, and errors only around the switchover.
  EXPECT_EQ(load.hangs.load(), 0) << "requests hung past their deadline";
  for (const auto& w : load.wrong) ADD_FAILURE() << "wrong reply: " << w;
  auto window_from = t_stop - std::chrono::milliseconds(kDeadlineMs);
  auto window_to = back + std::chrono::milliseconds(kSettleMs);
  int outside = 0;
  for (const auto& f : load.failures) {
    if (f.sent < window_from || f.sent > window_to) {
      if (outside++ < 5) ADD_FAILURE() << f.what << " sent " << MsSince(t_stop, f.sent) << " ms after the stop";
    }
  }
  EXPECT_EQ(outside, 0) << "errors outside the switchover";

  // Writes: every acknowledged one on the new primary (or counted as lost).
  auto c = ConnectBlocking(standby.ConnInfo(db));
  EXPECT_TRUE(c.ok()) << c.error().message();
  if (!c.ok()) return out;
  out.acked_users = load.acked_users.size();
  out.acked_sessions = load.acked_sessions.size();
  out.lost_users = static_cast<int64_t>(out.acked_users) - CountIn(c->get(), "users", load.acked_users);
  out.lost_sessions = static_cast<int64_t>(out.acked_sessions) - CountIn(c->get(), "sessions", load.acked_sessions);
  // A request about a user the failover lost is answered not_found /
  // foreign_key: the loss showing through, not a wrong reply. About any
  // other user it is wrong.
  int about_lost = 0;
  for (const auto& [user, what] : load.missing_user) {
    if (CountIn(c->get(), "users", {user}) == 0) {
      about_lost++;
    } else {
      ADD_FAILURE() << "wrong reply about a user that exists: " << what;
    }
  }
  if (synchronous) {
    EXPECT_EQ(about_lost, 0) << "requests saw a lost user with a synchronous standby";
  }

  // The subscriber: torii.resync saying the server changed, then events
  // from the new primary.
  std::vector<Event> seen;
  Event told = sub.WaitFor(
      [](const Event& e) {
        return e.topic == "torii.resync" && e.body["reason"].str().find("promoted server") != std::string::npos;
      },
      5000, &seen);
  EXPECT_FALSE(told.topic.empty()) << "no torii.resync naming the promoted server; daemon log:\n" << d.LogTail(60);
  if (!told.topic.empty()) {
    EXPECT_NE(told.body["reason"].str().find("timeline 1 -> 2"), std::string::npos) << told.body.ToString();
    Event after = sub.WaitForTopic("session.created", 5000);
    EXPECT_FALSE(after.topic.empty()) << "no session event from the new primary after the resync";
  }
  EXPECT_TRUE(d.WaitForLog("reconnected to a promoted server (timeline 1 -> 2)", 5000)) << d.LogTail(60);
  Reply stats = admin.Call("stats", V::Map({}), 5000);
  EXPECT_TRUE(stats.ok()) << stats.ToString();
  EXPECT_GE(stats.result()["events"]["server_changes"].u64(), 1u) << stats.ToString();
  EXPECT_EQ(stats.result()["events"]["timeline"].u64(), 2u) << stats.ToString();

  std::string codes;
  for (auto& [code, n] : load.codes) codes += " " + code + "=" + std::to_string(n);
  std::printf(
      "%s standby: switchover gap %lld ms (stop to first acknowledged write; pg_ctl promote returned after %lld ms); "
      "%d ok replies, %zu users and %zu sessions acknowledged, %lld and %lld of them lost (%d later requests about "
      "a lost user); errors:%s\n",
      synchronous ? "synchronous" : "asynchronous", (long long)out.gap_ms, (long long)MsSince(t_stop, t_promoted),
      load.ok.load(), out.acked_users, out.acked_sessions, (long long)out.lost_users, (long long)out.lost_sessions,
      about_lost, codes.c_str());
  return out;
}

TEST(Failover, SynchronousStandbyPromotedLosesNoAcknowledgedWrite) {
  Outcome o = RunFailover(/*synchronous=*/true);
  EXPECT_GE(o.gap_ms, 0);
  EXPECT_GT(o.acked_sessions, 0u);
  EXPECT_EQ(o.lost_users, 0) << "an acknowledged create_user is missing on the new primary";
  EXPECT_EQ(o.lost_sessions, 0) << "an acknowledged create_session is missing on the new primary";
}

// With an asynchronous standby the primary acknowledges a commit once it is
// in its own WAL; whatever had not reached the standby when the primary died
// is gone after the promotion. That loss is the documented price of async
// replication (docs/ha.md); the daemon must not hide it: RunFailover asserts
// the warning, the resync reason and the stats counter.
TEST(Failover, AsynchronousStandbyPromotedIsAnnounced) {
  Outcome o = RunFailover(/*synchronous=*/false);
  EXPECT_GE(o.gap_ms, 0);
  EXPECT_GT(o.acked_sessions, 0u);
  // Lost writes are possible but bounded by what was in flight: never more
  // than a small share of what was acknowledged.
  EXPECT_LE(o.lost_users + o.lost_sessions, static_cast<int64_t>(o.acked_users + o.acked_sessions) / 2 + 1);
}

}  // namespace
}  // namespace torii::test
