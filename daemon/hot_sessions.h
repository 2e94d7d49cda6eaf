// The hot-session cache: recent get_session answers kept in memory so that
// a repeated lookup by token (or by id) is answered with no SQL. Coherent
// with the database as far as the LISTEN stream is (docs/protocol.md):
//
//  - a hit checks expires_at against the daemon's clock at read time;
//  - this daemon's own writes to sessions invalidate before their reply;
//  - other writers' changes invalidate when their event arrives (OnEvent,
//    fed by the Listener; its rules are listed there);
//  - while the LISTEN connection is not in place the cache holds nothing
//    and is bypassed; it fills again only once LISTEN is re-established;
//  - the lease: a connection can also fall silent (no error, nothing
//    delivered), so an entry is served only while the listener has proven
//    itself alive within `lease_us`: a self-notify probe (or the LISTEN
//    itself) sent less than `lease_us` ago has come back. NOTIFY delivers in
//    commit order, so every change committed before that probe was sent has
//    been applied here already; a change committed later is served stale for
//    less than `lease_us` at worst. While the lease has lapsed lookups fall
//    through to the database (counted as `lease_lapsed`); entries are kept,
//    since a probe coming back proves their invalidations arrived, and a
//    reconnect empties the cache (Activate);
//  - a load that was in flight when an invalidation of its key (its
//    digest, its id or its user) or a global one arrived is not inserted:
//    every invalidation takes a new generation, and a load remembers the
//    generation it started in.
//
// Entries are keyed by the token's digest (prefixed with the tenant's name
// outside the default tenant: HotDigestKey, ops.h), with an id -> digest index
// (events carry the session id only) and a user -> ids index (user
// deletions). Least recently used entries go first past `capacity`.
// Loop thread only.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace torii::daemon {

// An event of the LISTEN stream as the cache reads it (Listener::OnEvent):
// its family and kind, and its "id" (empty for a resync, and where a
// trigger summarised many rows in one event).
struct StreamEvent {
  std::string_view family;
  std::string_view kind;
  std::string_view id;
};

struct HotSessionStats {
  uint64_t hits = 0;
  uint64_t misses = 0;       // looked up while active, not found (or expired)
  uint64_t bypassed = 0;     // looked up while inactive (LISTEN not in place)
  uint64_t inserts = 0;
  uint64_t evictions = 0;    // entries removed by an invalidation or expiry
  uint64_t capacity_evictions = 0;  // least recently used, past the bound
  uint64_t stale_drops = 0;  // loads not inserted: invalidated while in flight
  uint64_t invalidations = 0;
  uint64_t resets = 0;       // global invalidations (listener lost, resync)
  uint64_t lease_lapsed = 0; // looked up while active but the lease had lapsed
};

class HotSessions {
 public:
  // `lease_us`: how long one proof of the listener's life lets entries be
  // served (see the lease above).
  HotSessions(size_t capacity, uint64_t lease_us) : capacity_(capacity), lease_us_(lease_us) {}

  bool enabled() const { return capacity_ > 0; }
  bool active() const { return capacity_ > 0 && active_; }
  // LISTEN is in place (again): a global invalidation, then entries may be
  // inserted. Loads begun before this are dropped. The lease starts lapsed:
  // Renew follows with the LISTEN's own proof.
  void Activate();
  // LISTEN is lost, stale or reconnecting: empty and bypassed from now on.
  void Deactivate();

  // The listener proved itself alive: a probe (or the LISTEN) sent at
  // `sent_mono_us` (a monotonic clock, the one lookups pass) came back.
  // An older proof than the one held changes nothing.
  void Renew(uint64_t sent_mono_us);
  void set_lease_us(uint64_t lease_us) { lease_us_ = lease_us; }
  uint64_t lease_us() const { return lease_us_; }
  // Active, and the last proof is younger than the lease at `mono_us`.
  bool Leased(uint64_t mono_us) const {
    return active() && renewed_ && mono_us < renewed_at_us_ + lease_us_;
  }
  // Microseconds since the last proof at `mono_us`; -1 with none since
  // Activate.
  int64_t LeaseAgeUs(uint64_t mono_us) const {
    return renewed_ ? static_cast<int64_t>(mono_us - renewed_at_us_) : -1;
  }

  // The packed session map (no token) for `digest`, or nullptr; checks
  // the entry's expiry against `now_us` (the wall clock, as expires_at)
  // and the lease against `mono_us`. Counts hits, misses, bypasses and
  // lookups with the lease lapsed.
  const std::string* FindByDigest(std::string_view digest, int64_t now_us, uint64_t mono_us);
  // By session id, only an entry of `tenant` (ids are unique across
  // tenants; another tenant's entry is a miss, as in the database).
  const std::string* FindById(std::string_view id, int64_t now_us, uint64_t mono_us,
                              std::string_view tenant = "default");

  // The generation a load starts in; hand it back to Insert.
  uint64_t generation() const { return gen_; }
  // Inserts a loaded row unless its key was invalidated after `load_gen`.
  // `digest` is the key of the digest in its tenant (HotDigestKey, ops.h).
  void Insert(uint64_t load_gen, std::string_view digest, std::string_view id, std::string_view user_id,
              int64_t expires_at_us, std::string_view packed, std::string_view tenant = "default");

  // Invalidations: remove the entries and mark the key, so that loads in
  // flight are not inserted.
  void InvalidateDigest(std::string_view digest);
  void InvalidateId(std::string_view id);
  void InvalidateUser(std::string_view user_id);
  // Removes every entry expired at `now_us` (expired rows were deleted).
  void EvictExpired(int64_t now_us);
  // Everything (bulk import, listener loss).
  void InvalidateAll();

  // What another writer's change, announced by its event, takes out:
  //  - session.updated, session.deleted: that session (by id);
  //  - session.expired: every entry expired at `now_us` (cleanup deleted
  //    the expired rows);
  //  - user.deleted: that user's sessions;
  //  - torii.resync: everything (events were lost while LISTEN was away);
  //  - an event of those kinds without an id: everything;
  //  - any other event: nothing.
  void OnEvent(const StreamEvent& event, int64_t now_us);

  size_t size() const { return by_digest_.size(); }
  size_t capacity() const { return capacity_; }
  // Approximate bytes held by entries and indexes.
  size_t memory_bytes() const;
  const HotSessionStats& stats() const { return stats_; }

 private:
  struct Entry {
    std::string digest;
    std::string id;
    std::string user_id;
    int64_t expires_at_us = 0;
    std::string packed;
    std::string tenant;
  };
  using Lru = std::list<Entry>;

  void Erase(Lru::iterator it);
  const std::string* Hit(Lru::iterator it, int64_t now_us);
  // False (and counted) when a lookup at `mono_us` may not use the cache.
  bool Usable(uint64_t mono_us);
  void Mark(char kind, std::string_view key);
  bool MarkedSince(char kind, std::string_view key, uint64_t load_gen) const;

  size_t capacity_;
  uint64_t lease_us_;
  bool active_ = false;
  bool renewed_ = false;          // a proof since Activate
  uint64_t renewed_at_us_ = 0;    // when the last proof was sent
  uint64_t gen_ = 1;
  Lru lru_;                 // most recently used first
  std::unordered_map<std::string_view, Lru::iterator> by_digest_;  // views into Entry::digest
  std::unordered_map<std::string_view, Lru::iterator> by_id_;      // views into Entry::id
  // user -> ids (views into Entry::id). The key owns its text: the entry
  // that first named a user may go while that user's others stay.
  std::unordered_map<std::string, std::unordered_set<std::string_view>> by_user_;
  // Recently invalidated keys ("d"/"i"/"u" + key) -> generation. Past
  // kMaxMarks they are replaced by one global mark (loads_before_), which
  // drops every load in flight: conservative, and bounded.
  std::unordered_map<std::string, uint64_t> marks_;
  uint64_t loads_before_ = 0;  // loads that started before this are dropped
  size_t entry_bytes_ = 0;
  HotSessionStats stats_;
};

}  // namespace torii::daemon
