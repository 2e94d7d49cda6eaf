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
//   message. Two endpoints of the same daemon deliver its events twice
//   (harmless for invalidation).
// - on_stale(reason) is called whenever an endpoint may have missed events:
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
// - live(): true when every endpoint has, since it was connected and since
//   its last stale condition, delivered a heartbeat of its current epoch
//   whose `seqs` showed nothing missed, and is within its heartbeat
//   deadline. Right after construction live() is false: a SUB socket misses
//   whatever is published before its subscription reaches the publisher, and
//   the first heartbeat is what proves we are caught up.
// - The first message seen of a family (per endpoint and epoch) sets the
//   baseline; only later skips are gaps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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
  // Receive high-water mark per socket, in messages (ZeroMQ drops beyond
  // it; the seq gap then tells).
  int rcvhwm = 100000;
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
  std::string topic;   // "session.deleted"
  std::string family;  // "session"
  std::string kind;    // "deleted"
  uint64_t seq = 0;
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
  uint64_t heartbeats = 0;
  uint64_t stale = 0;      // on_stale calls
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

  bool live() const;
  // Bumped at every on_stale: a cheap way to notice "something went stale
  // since I last looked".
  uint64_t stale_generation() const;
  const SubscriberStats& stats() const;
  // The ZeroMQ file descriptors (ZMQ_FD, edge-triggered: after readiness,
  // call Poll(0) until it returns 0), for an outer event loop.
  std::vector<int> fds() const;

 private:
  struct Impl;
  explicit Subscriber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace torii
