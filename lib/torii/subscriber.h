// torii::Subscriber: the change-event side of PROTOCOL.md section 3. SUB
// sockets on one or more `events` endpoints, event decoding, and the
// bookkeeping that tells a cache when it may have missed something.
//
// Contract:
// - Not thread-safe: one thread owns a Subscriber and drives it with
//   Poll(). Callbacks run inside Poll(), on that thread; they may call
//   live() and the other accessors, but must not call Poll() again.
// - One SUB socket per endpoint, each tracked on its own: the epoch of the
//   daemon behind it, the last seq per family, the time of its last
//   message. Every endpoint is assumed to relay the same database (several
//   daemons on one database, or one daemon twice).
// - A stale condition on an endpoint is one of:
//   * kGap: a family's seq skipped (expected N, got M), or a heartbeat's
//     `seqs` shows a family beyond the last seq seen (a dropped last
//     message), or went backwards;
//   * kEpochChange: a new epoch on an endpoint that had one (the daemon
//     restarted);
//   * kMissedHeartbeats: no message of any kind for 3 x heartbeat_ms
//     (reported once per silence, also when nothing ever arrived);
//   * kResync: a `torii.resync` event (its reason is in `detail`);
//   * kMalformed: an undecodable message on a subscribed topic (it may have
//     been an invalidation).
//   After one, the endpoint is not live until its next clean heartbeat, and
//   its seq tracking starts again from the next message (a new "segment":
//   the messages of an endpoint since its last stale condition, each seq
//   checked against the one before).
// - An endpoint is live when, since it was connected and since its last
//   stale condition, it has delivered a heartbeat of its current epoch whose
//   `seqs` showed nothing missed, and it is within its heartbeat deadline.
//   live() is true while AT LEAST ONE endpoint is live. Right after
//   construction live() is false: a SUB socket misses whatever is published
//   before its subscription reaches the publisher, and the first heartbeat
//   is what proves we are caught up.
// - Several endpoints (event ids). Every event a daemon relays from the
//   database carries `eid`, the same on every daemon; events are delivered
//   once: an eid already delivered (within the window below) is dropped,
//   whichever endpoint brought it first. Events without an eid (heartbeats,
//   a daemon's own resync, older daemons) are never deduplicated.
// - The stale rule, several endpoints: a stale condition on endpoint A
//   reaches on_stale unless another endpoint vouches for it. Let x be the
//   eid of the last event A delivered before the condition (A's position in
//   the database's event stream; every daemon relays that stream in the
//   same order, the order PostgreSQL delivers notifications). Endpoint B
//   vouches when it receives event x within its current segment while it
//   is live: B's stream after x is then complete, or B itself will report a
//   stale condition, which is judged by this same rule. So:
//   * if B already received x in its current segment and is live, the
//     condition is absorbed at once (counted in stats().absorbed);
//   * otherwise, if some other endpoint is live, the condition is held for
//     up to 3 x heartbeat_ms waiting for a live endpoint to receive x
//     (B lagging behind A); absorbed if one does, reported otherwise;
//   * B also vouches, with or without a position x, when B is live and
//     has been caught up, with no stale condition, since before anything
//     was cached. That is the only vouch in the quiet case: when A never
//     delivered an event with an eid, it has no position (everything A
//     failed to deliver came after A's start). It also covers a busy A
//     whose last eid x reached B before B's baseline (so B never records
//     it). "Since before anything was cached" means since before the
//     "anchor", the first call of
//     live() that answered true after the last reported stale condition
//     (or after construction). A cache checks live() before it reads what
//     it caches and drops everything at each report (SessionCache and
//     JwtDenyList do; a cache of your own must too), so every entry it
//     holds was read after the anchor, and every change after the anchor
//     reached B or is still on its way from B (or B reports a stale
//     condition of its own, judged by this same rule). With no anchor
//     (nothing cached since the last report) any live B vouches. This is
//     checked first and absorbs at once. It keeps a quiet service's cache
//     (nothing changed since it connected) through the restart of one of
//     its daemons, as the position rule keeps a busy one's;
//   * it is reported at once (and a held one at that moment) when no other
//     endpoint is live, when A has no position and no other endpoint has
//     been live since before the anchor (B itself restarted since, or
//     became live only after the anchor), when x has left the window, and
//     always for a torii.resync that carries an eid (a database-wide
//     resync: a bulk import, a TRUNCATE, torii_resync(); every daemon
//     relays it, it is reported once).
//   Poll() counts an endpoint with messages waiting in its socket as heard
//   from before it processes any endpoint's messages, so a subscriber
//   polled rarely judges one endpoint's condition against the others'
//   present, not against their last message before the pause.
//   With one endpoint every stale condition is reported, as before.
//   Consequence for a cache: while on_stale is not called, every change is
//   delivered (once) or still on its way from a live endpoint; a cache
//   flushes only when no endpoint stayed live across the gap (both daemons
//   restarted one after the other, the only live one restarted), or on a
//   database-wide resync.
// - Memory: the dedup window holds the last `dedup_window` eids (default
//   65536, about 60 bytes each: ~4 MB), kept only with two or more
//   endpoints. An eid older than the window arriving again is delivered a
//   second time (harmless for invalidation), and a stale condition whose
//   position left the window is reported.
// - The first message seen of a family (per endpoint and epoch) sets the
//   baseline; only later skips are gaps.
// - Tenants (PROTOCOL.md section 6): a non-default tenant T's events come
//   as `@T/family.kind`; the prefix is stripped (Event::topic is
//   `family.kind`, Event::tenant is T, "default" without a prefix), and
//   seqs, heartbeats and gaps are tracked per (tenant, family): T's
//   heartbeat `@T/torii.heartbeat` vouches for T's families only. Which
//   tenants' events arrive is SubscriberOptions::tenant, and the daemon
//   confines a key bound to a tenant to that tenant's stream whatever it
//   subscribes to.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include "torii/error.h"
#include "torii/values.h"

namespace zmq {
class context_t;
}

namespace torii {

struct SubscriberOptions {
  std::vector<std::string> endpoints;
  // Families to receive ("user", "session"; a trailing '.' is allowed).
  // "torii." is always subscribed. Empty: every family.
  std::vector<std::string> families;
  // The daemon's events.heartbeat_ms; silence for 3 x this is stale.
  int64_t heartbeat_ms = 1000;
  // Pass torii.* events (heartbeat, resync) to on_event too.
  bool deliver_torii_events = false;
  // Whose events: empty, as before tenants: the default tenant's `families`
  // (with no families, everything the daemon sends this key: every
  // tenant's for an unbound key); a tenant name: that tenant's stream
  // (`@T/` prefixed subscriptions: what a key bound to T must use, its SUB
  // socket filters out topics it did not subscribe to); "*": every tenant's
  // stream (subscribes to everything, keeps `families` locally).
  std::string tenant;
  // Receive high-water mark per socket, in messages (ZeroMQ drops beyond
  // it; the seq gap then tells).
  int rcvhwm = 100000;
  // With two or more endpoints: how many recent event ids are remembered
  // for deduplication and for the stale rule (at least 1).
  size_t dedup_window = 65536;
  // A ZeroMQ context to share (required for inproc://); not owned. Null:
  // the Subscriber owns its own.
  zmq::context_t* context = nullptr;
  // CURVE (all three Z85, 40 characters each) or all empty for none: the
  // daemon's public key and this subscriber's own key pair.
  std::string server_public_key;
  std::string client_public_key;
  std::string client_secret_key;
};

// One decoded event. `body()` and the strings are valid for as long as the
// Event lives.
struct Event {
  std::string topic;   // "session.deleted" (a tenant's `@T/` prefix stripped)
  std::string tenant = "default";  // the tenant whose rows changed
  std::string family;  // "session"
  std::string kind;    // "deleted"
  uint64_t seq = 0;
  std::optional<uint64_t> eid;  // the database's event id, when the body has one
  std::string epoch;
  Micros at = 0;
  size_t endpoint = 0;  // index into SubscriberOptions::endpoints
  msgpack::object_handle handle;

  const msgpack::object& body() const { return handle.get(); }
  // The string value of a body key; empty when absent or not a string.
  std::string_view Str(std::string_view key) const;
  // The body value of a key, or nullptr.
  const msgpack::object* Find(std::string_view key) const;
};

enum class StaleKind { kGap, kEpochChange, kMissedHeartbeats, kResync, kMalformed };
std::string_view StaleKindName(StaleKind kind);

struct StaleReason {
  StaleKind kind = StaleKind::kGap;
  size_t endpoint = 0;       // index into SubscriberOptions::endpoints
  std::string family;        // kGap
  std::string tenant;        // kGap: the tenant of `family` ("default" for the default tenant)
  std::string epoch;         // the epoch now tracked (kEpochChange: the new one)
  std::string old_epoch;     // kEpochChange
  uint64_t expected = 0;     // kGap: the next seq we expected
  uint64_t got = 0;          // kGap: the seq seen (or shown by a heartbeat)
  std::string detail;        // kResync: the daemon's reason; otherwise more words
  // One line for logs, e.g. "gap on session (epoch e, expected seq 3, got 5)".
  std::string ToString() const;
};

struct SubscriberStats {
  uint64_t messages = 0;   // every message received
  uint64_t events = 0;     // events passed to listeners
  uint64_t duplicates = 0; // events dropped: their eid was already delivered
  uint64_t heartbeats = 0;
  uint64_t stale = 0;      // on_stale calls
  uint64_t absorbed = 0;   // stale conditions another endpoint vouched for
  uint64_t malformed = 0;
};

class Subscriber {
 public:
  using EventFn = std::function<void(const Event&)>;
  using StaleFn = std::function<void(const StaleReason&)>;

  // Creates and connects the SUB sockets. invalid_argument for no
  // endpoints, heartbeat_ms <= 0 or malformed CURVE keys; internal for a
  // ZeroMQ failure.
  static Result<std::unique_ptr<Subscriber>> Create(SubscriberOptions options);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Listeners are called in the order added. Returns a handle for
  // RemoveListener. Either function may be empty.
  int AddListener(EventFn on_event, StaleFn on_stale);
  void RemoveListener(int handle);

  // Waits up to `timeout_ms` (0: no wait, < 0: forever) for messages,
  // processes every message that arrived, and checks heartbeat deadlines
  // (waking at the next one, so a silence is reported on time). Returns
  // the number of messages processed; returns early once it processed any.
  size_t Poll(int64_t timeout_ms);

  // True while at least one endpoint is live (see the contract). The first
  // call that answers true after a reported stale condition marks the
  // moment caching may start (the stale rule's anchor): check it before
  // reading anything you cache.
  bool live() const;
  // Whether endpoint `index` is live on its own.
  bool endpoint_live(size_t index) const;
  // Milliseconds since the newest message (of any kind) from an endpoint
  // that is live now was processed by Poll(); -1 while none is live. A cache's bound on staleness
  // (SessionCacheOptions::max_staleness_ms): live() alone allows up to
  // 3 x heartbeat_ms of silence.
  int64_t live_silence_ms() const;
  // Bumped at every on_stale: a cheap way to notice "something went stale
  // since I last looked".
  uint64_t stale_generation() const;
  const SubscriberStats& stats() const;
  // SubscriberOptions::tenant: whose stream this subscriber follows.
  const std::string& tenant() const;
  // The ZeroMQ file descriptors (ZMQ_FD, edge-triggered: after readiness,
  // call Poll(0) until it returns 0), for an outer event loop.
  std::vector<int> fds() const;

 private:
  struct Impl;
  explicit Subscriber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace torii
