// The ZeroMQ socket of change events (PROTOCOL.md sections 3 and 6): frames
// [topic, msgpack body]; every body carries `seq` (per family, from 1),
// `epoch` (new at each start) and `at`, and `eid` (the database's event id,
// the same on every daemon) when the event came from a NOTIFY payload that
// carried one. A heartbeat timer publishes torii.heartbeat with the last seq
// of every family.
//
// Tenants: the default tenant's events keep their topic and body. Another
// tenant T's events go out as `@T/family.kind` with `tenant: T` in the
// body, and T has its own seqs (per family), its own `@T/torii.heartbeat`
// and its own `@T/torii.resync` whenever the default stream gets one; the
// epoch is shared. Tenants are known from AddTenant (the listener loads the
// tenants table) or from their first event.
//
// With CURVE on (a ZapHandler given), the socket is an XPUB with
// ZMQ_XPUB_MANUAL: the publisher receives each peer's (un)subscriptions
// and applies RewriteSubscription for the tenant the peer's key is bound
// to, so a bound subscriber receives only its tenant's events and its seqs
// have no holes from withheld events. Without CURVE no key can be bound and
// it stays a plain PUB socket. A binding changed by a reload applies to the
// peer's later (un)subscriptions; what it subscribed before stays until it
// unsubscribes or reconnects (and a revoked key's subscriptions end when it
// reconnects, as before).
//
// PUB drops messages for a subscriber whose queue (events.send_hwm) is full;
// subscribers see that as a seq gap. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "torii/error.h"
#include "torii/protocol.h"

namespace torii::daemon {

class ZapHandler;

struct PublisherStats {
  uint64_t published = 0;
  uint64_t dropped = 0;         // send refused (should not happen on PUB)
  uint64_t subscriptions = 0;   // (un)subscriptions received (XPUB)
  uint64_t refused_subscriptions = 0;  // from a key not in force, or outside the peer's tenant
  uint64_t tenants = 0;         // tenants other than the default with their own seqs
};

// The subscriptions applied for a peer that asked for `topic`: unchanged
// for an unbound peer (nullopt); `@T/` + topic for a peer bound to T; for a
// peer bound to the default tenant, `""` becomes `roots` (one prefix per
// default-stream family, "user." ...) and a topic starting with `@` none.
std::vector<std::string> RewriteSubscription(const std::optional<std::string>& tenant, const std::string& topic,
                                             const std::vector<std::string>& roots);

class Publisher {
 public:
  // Packs the event's own fields (the common keys are added); `count` is how
  // many key/value pairs it packs.
  using Fill = std::function<void(Packer& pk)>;

  // `zap`: the CURVE key handler (XPUB with subscription rewriting), or
  // nullptr (CURVE off: PUB). It must outlive the publisher.
  Publisher(uv_loop_t* loop, zmq::context_t& ctx, ZapHandler* zap = nullptr);
  ~Publisher();

  zmq::socket_t& socket() { return socket_; }
  Status Bind(const std::vector<std::string>& endpoints, int64_t send_hwm);
  void StartHeartbeat(uint64_t interval_ms);
  void StopHeartbeat();
  void Close();

  // `eid`: the payload's event id, published as `eid` (none for the
  // daemon's own heartbeats and resyncs). `tenant`: empty or "default" for
  // the default tenant; a tenant not known yet is added.
  void Publish(const std::string& family, const std::string& kind, uint32_t count, const Fill& fill,
               std::optional<uint64_t> eid = std::nullopt, const std::string& tenant = std::string());
  // torii.resync on the default stream and on every known tenant's.
  void Resync(const std::string& reason, std::optional<uint64_t> eid = std::nullopt);

  // Makes `family` known at seq 0 (if it is not yet), so heartbeats list it
  // before its first event and a subscriber sees a first event it missed.
  void AddFamily(const std::string& family);
  // Makes tenant `name` known (its families at seq 0), so it gets
  // heartbeats before its first event. The default tenant is always known;
  // false for an invalid name.
  bool AddTenant(const std::string& name);
  bool KnowsTenant(const std::string& name) const;
  const std::string& epoch() const { return epoch_; }
  uint64_t seq(const std::string& family) const;
  uint64_t seq(const std::string& tenant, const std::string& family) const;
  // The default tenant's seqs.
  const std::map<std::string, uint64_t>& seqs() const { return seqs_; }
  const PublisherStats& stats() const { return stats_; }

 private:
  static void OnHeartbeat(uv_timer_t* t);
  static void OnPoll(uv_poll_t* h, int status, int events);
  static void OnPrepare(uv_prepare_t* h);
  void Heartbeat(const std::string& tenant, const std::map<std::string, uint64_t>& seqs);
  std::map<std::string, uint64_t>& SeqsOf(const std::string& tenant);
  // Receives and applies the peers' pending (un)subscriptions (XPUB).
  void DrainSubscriptions();
  void Apply(const zmq::message_t& msg);

  uv_loop_t* loop_;
  ZapHandler* zap_;
  zmq::socket_t socket_;
  std::string epoch_;
  std::map<std::string, uint64_t> seqs_;  // the default tenant's
  std::map<std::string, std::map<std::string, uint64_t>> tenant_seqs_;  // every other known tenant's
  uv_timer_t heartbeat_;
  bool timer_started_ = false;
  uv_poll_t poll_;
  uv_prepare_t prepare_;
  bool watching_ = false;
  bool sent_since_drain_ = false;
  PublisherStats stats_;
};

}  // namespace torii::daemon
