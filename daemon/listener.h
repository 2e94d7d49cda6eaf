// The dedicated LISTEN connection (not from the pool): turns the triggers'
// NOTIFY payloads on channel `torii_events` into published events. Owned
// by the Daemon; lives and runs on the loop thread (every callback too).
//
// A connection can look alive and deliver nothing, so a probe NOTIFYs a
// channel of this daemon's own every events.probe_interval_ms and expects
// it back within events.probe_timeout_ms; TCP keepalives and
// tcp_user_timeout cover a silent network path too. On any loss it
// reconnects with capped exponential backoff, forever; only once LISTEN is
// in place again does it publish torii.resync, because notifications sent
// while it was away are lost. Heartbeats pause while it is not listening, so
// subscribers also notice a long outage from their side.
//
// Probes go out on the timer whether or not earlier ones have come back
// (at most kMaxProbesOut at once): one slow round trip then delays only its
// own proof, not the next probe's sending, so under a loaded machine the
// lease lapses only when no probe sent within lease_ms has come back, not
// when two round trips in a row take half of it. The oldest probe still out
// must come back within probe_timeout_ms.
//
// Each probe that comes back (and the LISTEN itself) is a proof of life
// that renews the hot-session cache's lease (hot_sessions.h): on_alive gets
// the monotonic time, in microseconds of uv_hrtime(), at which the proving
// statement was sent. With a lease set, probes go out at least every
// lease_ms / 4, so that a healthy connection never lets it lapse, and
// heartbeats pause while it has lapsed (no proof sent within lease_ms has
// come back): a heartbeat tells subscribers that every event up to its
// `seqs` was published, which a silent connection cannot vouch for. So a
// subscriber sees a silent LISTEN connection as silence too, within
// lease_ms + 3 x heartbeat_ms, instead of after probe_timeout_ms.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pgconn.h"
#include "publisher.h"

namespace torii::daemon {

struct ListenerStats {
  uint64_t received = 0;     // notifications on torii_events
  uint64_t malformed = 0;    // payloads that were not a known event
  uint64_t reconnects = 0;
  uint64_t probes = 0;
  uint64_t probe_failures = 0;
  uint64_t probes_out = 0;  // sent, not heard back yet (filled in by stats())
  uint64_t probe_every_ms = 0;  // the interval in use: probe_interval_ms, or lease_ms / 4 if shorter
  uint64_t lease_lapses = 0;    // times no proof came back within lease_ms (heartbeats paused)
  int64_t last_probe_rtt_us = -1;
  double queue_usage = 0;    // pg_notification_queue_usage()
  bool listening = false;
  // The server behind the LISTEN connection (CheckServerIdentity): its
  // timeline (0 until known), and how many times a reconnect found another
  // server or timeline than before (a failover: a promoted standby).
  uint64_t timeline = 0;
  uint64_t server_changes = 0;
};

class Listener {
 public:
  Listener(uv_loop_t* loop, ConnectOptions options, Publisher& publisher, uint64_t heartbeat_ms,
           uint64_t probe_interval_ms, uint64_t probe_timeout_ms);
  ~Listener();

  // `on_listening` runs each time LISTEN is (re-)established.
  void Start(std::function<void()> on_listening);
  void Close();
  void SetTimings(uint64_t heartbeat_ms, uint64_t probe_interval_ms, uint64_t probe_timeout_ms);
  // The hot-session cache's hooks: each event (family, kind, its "id"; a
  // resync's id is empty) before it is published, and each loss of LISTEN.
  using OnEvent = std::function<void(std::string_view family, std::string_view kind, std::string_view id)>;
  void set_on_event(OnEvent on_event) { on_event_ = std::move(on_event); }
  void set_on_lost(std::function<void()> on_lost) { on_lost_ = std::move(on_lost); }
  // Each proof of life (see above); runs after on_listening on a (re)connect.
  void set_on_alive(std::function<void(uint64_t sent_mono_us)> on_alive) { on_alive_ = std::move(on_alive); }
  // Probes at least every lease_ms / 4, and pauses heartbeats while the
  // lease has lapsed; 0: every probe_interval_ms only, no pause.
  void SetLease(uint64_t lease_ms);
  ListenerStats stats() const {
    ListenerStats s = stats_;
    s.probes_out = probes_out_.size();
    return s;
  }

 private:
  void Connect();
  void OnConnected();
  void OnLost(const Error& why);
  void OnNotify(const char* channel, const char* payload);
  void SendProbe();
  uint64_t ProbeEveryMs() const;
  void StartProbing();
  // A proof of life sent at `sent_us`: renews the lease (on_alive) and
  // resumes heartbeats if they were paused.
  void Proven(uint64_t sent_us);
  void LeaseLapsed();
  void ArmProbeDeadline();
  void ProbeTimedOut();
  void Publish(const std::string& payload);
  void RefreshTenants(std::function<void()> then);
  // How often the tenants table is read again (on the probe timer).
  static constexpr uint64_t kTenantsRefreshMs = 5000;
  // Probes out at once, at most (see above); the timer's next tick sends
  // none past it.
  static constexpr size_t kMaxProbesOut = 16;
  void CheckServerIdentity();

  uv_loop_t* loop_;
  Publisher& publisher_;
  std::function<void()> on_listening_;
  OnEvent on_event_;
  std::function<void()> on_lost_;
  std::function<void(uint64_t)> on_alive_;
  std::unique_ptr<AsyncConn> conn_;
  ConnectOptions options_;
  std::string probe_channel_;
  uint64_t heartbeat_ms_;
  uint64_t probe_interval_ms_;
  uint64_t probe_timeout_ms_;
  uint64_t lease_ms_ = 0;
  uv_timer_t retry_timer_;
  uv_timer_t probe_timer_;
  uv_timer_t probe_deadline_;
  uv_timer_t lease_timer_;  // fires when the last proof's lease runs out
  bool heartbeat_paused_ = false;
  uint64_t tenants_refreshed_ms_ = 0;  // loop time of the last read of the tenants table
  bool tenants_error_logged_ = false;
  int backoff_ms_ = 0;
  struct ProbeOut {
    uint64_t seq;
    uint64_t sent_us;  // uv_hrtime() / 1000 when it was sent
  };
  uint64_t probe_seq_ = 0;
  std::deque<ProbeOut> probes_out_;  // sent, not heard back yet, oldest first
  bool started_before_ = false;
  bool closed_ = false;
  std::string system_id_;  // pg_control_system().system_identifier; empty until known
  ListenerStats stats_;
};

}  // namespace torii::daemon
