// torii::SessionCache: a bounded LRU read-through cache of `get_session`
// results, keyed by token, kept honest by a torii::Subscriber. The
// reference for cache-invalidation listeners (issue 4).
//
// Guarantee: once `delete_session` (or `delete_user`, or
// `delete_user_sessions`) has replied AND its event has been delivered to
// this cache (processed by the Subscriber's Poll(), which Get() itself calls
// before looking anything up), Get() never again returns that session. The
// same holds for `extend_session`/`update_user`: after their event is
// delivered, Get() returns what the database holds now.
//
// How:
// - Events of the cache's tenant only (options.tenant), when set.
// - session.* events evict that session id; user.updated and user.deleted
//   evict every session of that user; session.expired evicts the entries it
//   covers (expires_at <= its `before`).
// - on_stale (gap, epoch change, missed heartbeats, resync, malformed) drops
//   every entry. With a Subscriber on several daemons, on_stale comes only
//   when no other endpoint stayed live across the condition (the stale rule
//   in subscriber.h): the loss of one daemon of several keeps the entries,
//   and the others' events keep evicting them (each event once, by eid).
// - Nothing is cached unless the Subscriber was live() both when the
//   get_session was sent and when its reply is handled (live: at least one
//   endpoint has shown a clean heartbeat of its current epoch since its last
//   stale condition, and its heartbeats keep coming), and no on_stale
//   happened in between.
// - The read-through race: a get_session read before a change, whose reply
//   is handled after the change's event, is not cached. Each invalidating
//   event bumps a counter and records it against its session id and user
//   id while a get is in flight; the reply is cached only if neither id was
//   touched since the get was sent. Events that arrived during the call are
//   processed (Poll(0)) before that check.
// - Bounded staleness: a daemon that falls silent (frozen, a silent network
//   path) delivers no events and no error. The Subscriber declares an
//   endpoint stale after 3 x heartbeat_ms without a message, and Get()
//   polls it first, so by default an entry is served at most
//   3 x heartbeat_ms (3 s with the daemon's default events.heartbeat_ms)
//   after the last message of a live endpoint: a session deleted through
//   another daemon meanwhile is served for at most that long.
//   options.max_staleness_ms tightens it: an entry is served only while
//   the Subscriber's live_silence_ms() is below it; otherwise Get() goes to
//   the daemon (counted as silent_lookups) and keeps the entries, which
//   serve again once a live endpoint speaks (its heartbeat's seqs prove no
//   event was lost in the silence). Set it above heartbeat_ms (a healthy
//   daemon is silent for up to one heartbeat), e.g. 1.5 x heartbeat_ms.
//   The daemon's own LISTEN connection can fall silent too: see
//   docs/security.md for the bound end to end.
// - An entry is never served at or past its `expires_at` (local clock); it
//   is dropped and fetched again, and the daemon answers not_found.
// - not_found and other errors are not cached.
// Until the Subscriber has seen its first heartbeat every Get() goes to the
// daemon: correct, just not cached.
//
// Not thread-safe: the Client, the Subscriber and the cache belong to one
// thread. The cache registers a listener on the Subscriber in its
// constructor and removes it in its destructor; both must outlive it.
// Tokens are keyed by their SHA-256 digest, so the cache holds no token.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <msgpack.hpp>

#include "torii/client.h"
#include "torii/error.h"
#include "torii/subscriber.h"
#include "torii/values.h"

namespace torii {

struct SessionCacheOptions {
  size_t max_entries = 10000;
  // Deadline of each get_session; <= 0: the Client's default.
  int64_t timeout_ms = 0;
  // An entry is served only while a live endpoint sent a message less than
  // this long ago (see "Bounded staleness" above); <= 0: the Subscriber's
  // own bound, 3 x heartbeat_ms.
  int64_t max_staleness_ms = 0;
  // The tenant of the Client's requests ("default" for the default
  // tenant): only that tenant's events evict, so another tenant's deletion
  // of a session or user id never touches this cache. Empty: the Client's
  // tenant (ClientOptions::tenant, or the default tenant). The Subscriber
  // must follow that tenant's stream (SubscriberOptions::tenant: the same
  // name, or "*"; empty for the default tenant): otherwise the cache
  // caches nothing and every Get() goes to the daemon, with a warning at
  // construction, since the tenant's deletions would never reach it.
  std::string tenant;
};

// A session as get_session returned it. `object()` is the whole Session
// map (PROTOCOL.md section 2), valid while the CachedSession lives.
struct CachedSession {
  std::string id;
  std::string user_id;
  Micros expires_at = 0;
  Reply reply;

  const msgpack::object& object() const { return reply.result(); }
};

struct SessionCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;              // went to the daemon
  uint64_t evictions = 0;           // entries removed by events
  uint64_t expired = 0;             // entries dropped at their expires_at
  uint64_t capacity_evictions = 0;  // LRU victims
  uint64_t flushes = 0;             // whole-cache drops (on_stale, Clear)
  uint64_t not_cached_stale = 0;    // replies not cached: subscriber not live
  uint64_t not_cached_race = 0;     // replies not cached: an event touched them
  uint64_t silent_lookups = 0;      // sent to the daemon: silent past max_staleness_ms
};

class SessionCache {
 public:
  SessionCache(Client& client, Subscriber& subscriber, SessionCacheOptions options = {});
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  // The unexpired session of `token`, from the cache or the daemon.
  // Errors are the daemon's (not_found for an unknown or expired token) or
  // the Client's (timeout).
  Result<std::shared_ptr<const CachedSession>> Get(std::string_view token);

  // Drops every entry.
  void Clear();
  size_t size() const { return lru_.size(); }
  const SessionCacheStats& stats() const { return stats_; }

 private:
  struct Entry {
    std::string key;  // token digest
    std::shared_ptr<const CachedSession> session;
  };
  using Lru = std::list<Entry>;  // most recently used first

  void OnEvent(const Event& e);
  void OnStale();
  void DrainEvents();
  void Touch(const std::string& id);
  void Erase(Lru::iterator it);
  void EvictSession(const std::string& session_id);
  void EvictUser(const std::string& user_id);
  bool TouchedSince(const std::string& id, uint64_t gen) const;
  // A live endpoint spoke within options_.max_staleness_ms (true when unset).
  bool Fresh() const;
  bool covered_ = true;  // the subscriber follows the client's tenant

  Client& client_;
  Subscriber& subscriber_;
  SessionCacheOptions options_;
  int listener_ = 0;

  Lru lru_;
  std::unordered_map<std::string, Lru::iterator> by_key_;
  std::unordered_map<std::string, Lru::iterator> by_session_;
  std::unordered_map<std::string, std::unordered_set<std::string>> by_user_;  // user id -> session ids

  // Invalidation generations (the read-through race): `global_gen_` moves
  // on every flush; `event_gen_` on every invalidating event, and while a
  // get is in flight `touched_` remembers the last event_gen_ per session
  // id and user id.
  uint64_t global_gen_ = 0;
  uint64_t event_gen_ = 0;
  int in_flight_ = 0;
  std::unordered_map<std::string, uint64_t> touched_;

  SessionCacheStats stats_;
};

}  // namespace torii
