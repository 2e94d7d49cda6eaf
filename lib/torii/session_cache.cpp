// torii::SessionCache: LRU of get_session results with event-driven
// eviction and the invalidation generations that close the read-through race.
#include "torii/session_cache.h"

#include <optional>
#include <utility>

#include "torii/log.h"
#include "torii/protocol.h"
#include "torii/tenant.h"

namespace torii {

namespace {

std::string StrKey(const msgpack::object& map, std::string_view key) {
  const msgpack::object* o = FindMapValue(map, key);
  if (o == nullptr || o->type != msgpack::type::STR) return {};
  return std::string(AsStr(*o));
}

}  // namespace

SessionCache::SessionCache(Client& client, Subscriber& subscriber, SessionCacheOptions options)
    : client_(client), subscriber_(subscriber), options_(options) {
  if (options_.max_entries == 0) options_.max_entries = 1;
  // The client's requests act in one tenant; the subscriber must follow
  // that tenant's stream, or its deletions would never reach this cache.
  // A subscriber of the default stream is live on the default tenant's
  // heartbeats alone, so without this check a cache in front of another
  // tenant's client would serve sessions deleted since.
  const std::string client_tenant = client.tenant().empty() ? std::string(kDefaultTenant) : client.tenant();
  const std::string& followed = subscriber.tenant();
  covered_ = followed == "*" || followed == client_tenant || (followed.empty() && client_tenant == kDefaultTenant);
  if (!covered_) {
    TLOG_WARN("session cache: its client acts in tenant '%s' but its subscriber follows %s%s%s; "
              "nothing will be cached (set SubscriberOptions::tenant to the client's tenant)",
              client_tenant.c_str(), followed.empty() ? "the default tenant" : "tenant '",
              followed.empty() ? "" : followed.c_str(), followed.empty() ? "" : "'");
  }
  if (options_.tenant.empty()) options_.tenant = client_tenant;
  listener_ = subscriber_.AddListener([this](const Event& e) { OnEvent(e); },
                                      [this](const StaleReason&) { OnStale(); });
}

SessionCache::~SessionCache() { subscriber_.RemoveListener(listener_); }

void SessionCache::Clear() {
  stats_.flushes++;
  lru_.clear();
  by_key_.clear();
  by_session_.clear();
  by_user_.clear();
  global_gen_++;
}

void SessionCache::OnStale() { Clear(); }

void SessionCache::DrainEvents() {
  while (subscriber_.Poll(0) > 0) {
  }
}

void SessionCache::Touch(const std::string& id) {
  if (id.empty()) return;
  event_gen_++;
  // Only a get in flight can race; with none, nothing needs remembering.
  if (in_flight_ > 0) touched_[id] = event_gen_;
}

bool SessionCache::TouchedSince(const std::string& id, uint64_t gen) const {
  auto it = touched_.find(id);
  return it != touched_.end() && it->second > gen;
}

void SessionCache::Erase(Lru::iterator it) {
  const CachedSession& s = *it->session;
  by_session_.erase(s.id);
  auto u = by_user_.find(s.user_id);
  if (u != by_user_.end()) {
    u->second.erase(s.id);
    if (u->second.empty()) by_user_.erase(u);
  }
  by_key_.erase(it->key);
  lru_.erase(it);
}

void SessionCache::EvictSession(const std::string& session_id) {
  auto it = by_session_.find(session_id);
  if (it == by_session_.end()) return;
  stats_.evictions++;
  Erase(it->second);
}

void SessionCache::EvictUser(const std::string& user_id) {
  auto u = by_user_.find(user_id);
  if (u == by_user_.end()) return;
  // Copy: Erase() edits the set being walked.
  std::unordered_set<std::string> ids = u->second;
  for (const auto& id : ids) EvictSession(id);
}

void SessionCache::OnEvent(const Event& e) {
  if (!options_.tenant.empty() && e.tenant != options_.tenant) return;  // another tenant's rows
  if (e.family == "session") {
    if (e.kind == "expired") {
      // A cleanup summary names no ids: drop what it covers. Without a
      // readable `before`, drop everything rather than guess.
      const msgpack::object* before = e.Find("before");
      std::optional<Micros> b = before != nullptr ? MicrosFromTimestamp(*before) : std::nullopt;
      if (!b.has_value()) {
        Clear();
        return;
      }
      for (auto it = lru_.begin(); it != lru_.end();) {
        auto next = std::next(it);
        if (it->session->expires_at <= *b) {
          stats_.evictions++;
          Erase(it);
        }
        it = next;
      }
      return;
    }
    std::string id(e.Str("id"));
    Touch(id);
    EvictSession(id);
  } else if (e.family == "user") {
    if (e.kind == "created") return;  // a new user has no cached sessions
    std::string id(e.Str("id"));
    Touch(id);
    EvictUser(id);
  }
}

bool SessionCache::Fresh() const {
  if (options_.max_staleness_ms <= 0) return true;
  int64_t silence = subscriber_.live_silence_ms();
  return silence >= 0 && silence < options_.max_staleness_ms;
}

Result<std::shared_ptr<const CachedSession>> SessionCache::Get(std::string_view token) {
  // Events that already arrived come first: an eviction they carry must
  // win over the lookup below.
  DrainEvents();

  auto digest = TokenDigest(token);
  std::string key(reinterpret_cast<const char*>(digest.data()), digest.size());
  const bool fresh = covered_ && Fresh();
  if (!fresh) stats_.silent_lookups++;
  auto found = fresh ? by_key_.find(key) : by_key_.end();
  if (found != by_key_.end()) {
    auto it = found->second;
    if (NowMicros() < it->session->expires_at) {
      stats_.hits++;
      lru_.splice(lru_.begin(), lru_, it);
      return it->session;
    }
    stats_.expired++;
    Erase(it);
  }

  stats_.misses++;
  const bool live_at_start = subscriber_.live();
  const uint64_t global_at_start = global_gen_;
  const uint64_t event_at_start = event_gen_;
  in_flight_++;
  CallOptions opts;
  opts.timeout_ms = options_.timeout_ms;
  auto reply = client_.Call(
      "get_session",
      [token](Packer& pk) {
        pk.pack_map(1);
        pk.pack_str(5);
        pk.pack_str_body("token", 5);
        pk.pack_str(static_cast<uint32_t>(token.size()));
        pk.pack_str_body(token.data(), static_cast<uint32_t>(token.size()));
      },
      opts);
  // Events that arrived while we waited are handled before deciding
  // whether the reply may be cached.
  DrainEvents();
  in_flight_--;

  auto finish = [this] {
    if (in_flight_ == 0) touched_.clear();
  };
  if (!reply.ok()) {
    finish();
    return reply.error();
  }

  const msgpack::object& r = reply->result();
  auto session = std::make_shared<CachedSession>();
  session->id = StrKey(r, "id");
  session->user_id = StrKey(r, "user_id");
  const msgpack::object* exp = FindMapValue(r, "expires_at");
  std::optional<Micros> expires = exp != nullptr ? MicrosFromTimestamp(*exp) : std::nullopt;
  if (session->id.empty() || !expires.has_value()) {
    finish();
    return Error::Internal("get_session returned a malformed session");
  }
  session->expires_at = *expires;
  session->reply = std::move(reply.value());

  bool cache = true;
  if (!covered_ || !live_at_start || !subscriber_.live() || global_gen_ != global_at_start) {
    stats_.not_cached_stale++;
    cache = false;
  } else if (TouchedSince(session->id, event_at_start) || TouchedSince(session->user_id, event_at_start)) {
    stats_.not_cached_race++;
    cache = false;
  } else if (NowMicros() >= session->expires_at) {
    cache = false;
  }
  finish();

  std::shared_ptr<const CachedSession> out = std::move(session);
  if (!cache) return out;

  // A token maps to one session; a stale entry of the same key (replaced
  // between lookup and insert) goes first.
  if (auto old = by_key_.find(key); old != by_key_.end()) Erase(old->second);
  if (auto old = by_session_.find(out->id); old != by_session_.end()) Erase(old->second);
  lru_.push_front(Entry{key, out});
  by_key_[key] = lru_.begin();
  by_session_[out->id] = lru_.begin();
  if (!out->user_id.empty()) by_user_[out->user_id].insert(out->id);
  while (lru_.size() > options_.max_entries) {
    stats_.capacity_evictions++;
    Erase(std::prev(lru_.end()));
  }
  return out;
}

}  // namespace torii
