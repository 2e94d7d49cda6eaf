// torii::JwtDenyList: the JWT deny-list of PROTOCOL.md section 5, held in
// memory by a service that verifies JWTs, kept current by a
// torii::Subscriber (events jwt.revoked and jwt.user_revoked), loaded with
// list_jwt_revocations through a torii::Client. Checking a JWT never goes
// to the daemon.
//
// Guarantee: while stale() is false, revoked(jti, user_id, issued_at) is
// true for every JWT that was revoked (revoke_jwt, or revoke_user_jwts for
// its user with a cutoff after its issued_at) before the last successful
// Load(), or whose revocation event has been delivered to this list
// (processed by the Subscriber's Poll(), which revoked() itself calls before
// answering). Until the JWT's expires_at (by the local clock) for a jti;
// per-user cutoffs stay until the next Load().
//
// Stale, exactly when the session cache would drop its entries: before the
// first successful Load(); on any on_stale of the Subscriber (a seq gap, an
// epoch change, missed heartbeats, a resync, a malformed message); and
// whenever the Subscriber is not live() (so at most 3 x heartbeat_ms after
// the last message of a live endpoint: a frozen daemon, a silent network
// path), or, with options.max_staleness_ms set, whenever its
// live_silence_ms() is not below that bound (this one passes by itself once
// a live endpoint speaks again: its heartbeat's seqs prove no event was
// lost meanwhile). Otherwise it stays stale until a Load()
// that began and ended with the Subscriber live and saw no stale condition
// in between. While stale, revoked() still answers from what it holds
// (revocations are never undone, so what it holds is still revoked), and
// returns `true` for everything else when options.fail_closed is set (the
// default): the caller chooses whether an unknown state denies. Check()
// gives both answers.
//
// Load(): pages through list_jwt_revocations. Events that arrive during
// the load are applied too: revocations only grow (a jti is added, a
// cutoff only moves forward), so the order of page and event does not
// matter.
//
// Not thread-safe: the Client, the Subscriber and the list belong to one
// thread. The list registers a listener on the Subscriber in its
// constructor and removes it in its destructor; both must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "torii/client.h"
#include "torii/error.h"
#include "torii/subscriber.h"
#include "torii/values.h"

namespace torii {

struct JwtDenyListOptions {
  // While stale, revoked() answers true for a JWT it does not know.
  bool fail_closed = true;
  // Deadline of each list_jwt_revocations call; <= 0: the Client's default.
  int64_t timeout_ms = 0;
  // Page size of the load (1..1000).
  int64_t page_size = 1000;
  // Stale while no live endpoint sent a message this recently (see above);
  // <= 0: the Subscriber's own bound, 3 x heartbeat_ms. Set it above
  // heartbeat_ms: a healthy daemon is silent for up to one heartbeat.
  int64_t max_staleness_ms = 0;
  // The tenant of the Client's requests ("default" for the default
  // tenant): only that tenant's revocation events apply, so another
  // tenant's revocation of the same jti or user id never denies here.
  // Empty: every tenant's events apply (fails safe: more is denied).
  std::string tenant;
};

struct JwtVerdict {
  bool revoked = false;  // listed, or before its user's cutoff
  bool stale = false;    // the list may be missing revocations
};

struct JwtDenyListStats {
  uint64_t loads = 0;         // successful Load() calls
  uint64_t failed_loads = 0;  // Load() calls that left the list stale
  uint64_t events = 0;        // jwt.* events applied
  uint64_t stale = 0;         // stale conditions seen
  uint64_t checks = 0;
  uint64_t denied = 0;        // revoked() answers of true
};

class JwtDenyList {
 public:
  JwtDenyList(Client& client, Subscriber& subscriber, JwtDenyListOptions options = {});
  ~JwtDenyList();
  JwtDenyList(const JwtDenyList&) = delete;
  JwtDenyList& operator=(const JwtDenyList&) = delete;

  // Loads the whole unexpired list. unavailable when the Subscriber is not
  // live (wait for its first heartbeat and try again) or went stale during
  // the load; the Client's or daemon's error when a page failed. On success
  // stale() is false.
  Status Load();
  // Load() only if stale(); cheap otherwise.
  Status Refresh() { return stale() ? Load() : Status(); }

  // In memory. `user_id` (a uuid, any case) empty: no cutoff applies; `issued_at` nullopt
  // with a user_id: any cutoff of that user counts (the JWT cannot show it
  // is newer), as is_jwt_revoked does.
  JwtVerdict Check(std::string_view jti, std::string_view user_id = {}, std::optional<Micros> issued_at = {});
  // Check()'s `revoked`, or options.fail_closed when stale and not known revoked.
  bool revoked(std::string_view jti, std::string_view user_id = {}, std::optional<Micros> issued_at = {});

  bool stale() const;
  // Drops jtis past their expires_at (also done by each Load()).
  void PurgeExpired();
  size_t jti_count() const { return jtis_.size(); }
  size_t user_count() const { return users_.size(); }
  const JwtDenyListStats& stats() const { return stats_; }

 private:
  void OnEvent(const Event& e);
  void OnStale();
  void DrainEvents();
  void AddJti(std::string jti, Micros expires_at);
  void AddCutoff(std::string user_id, Micros issued_before);

  Client& client_;
  Subscriber& subscriber_;
  JwtDenyListOptions options_;
  int listener_ = 0;
  bool stale_ = true;
  std::unordered_map<std::string, Micros> jtis_;   // jti -> the JWT's exp
  std::unordered_map<std::string, Micros> users_;  // user id -> issued_before
  JwtDenyListStats stats_;
};

}  // namespace torii
