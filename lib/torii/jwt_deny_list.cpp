// torii::JwtDenyList: the in-memory JWT deny-list, loaded in pages and kept
// current by jwt.* events (see jwt_deny_list.h).
#include "torii/jwt_deny_list.h"

#include <utility>

#include "torii/protocol.h"

namespace torii {

namespace {

std::optional<std::string> StrKey(const msgpack::object& map, std::string_view key) {
  const msgpack::object* o = FindMapValue(map, key);
  if (o == nullptr || o->type != msgpack::type::STR) return std::nullopt;
  return std::string(AsStr(*o));
}

std::optional<Micros> TimeKey(const msgpack::object& map, std::string_view key) {
  const msgpack::object* o = FindMapValue(map, key);
  return o != nullptr ? MicrosFromTimestamp(*o) : std::nullopt;
}

}  // namespace

JwtDenyList::JwtDenyList(Client& client, Subscriber& subscriber, JwtDenyListOptions options)
    : client_(client), subscriber_(subscriber), options_(options) {
  if (options_.page_size < 1 || options_.page_size > 1000) options_.page_size = 1000;
  listener_ = subscriber_.AddListener([this](const Event& e) { OnEvent(e); },
                                      [this](const StaleReason&) { OnStale(); });
}

JwtDenyList::~JwtDenyList() { subscriber_.RemoveListener(listener_); }

bool JwtDenyList::stale() const {
  if (stale_ || !subscriber_.live()) return true;
  if (options_.max_staleness_ms <= 0) return false;
  int64_t silence = subscriber_.live_silence_ms();
  return silence < 0 || silence >= options_.max_staleness_ms;
}

void JwtDenyList::OnStale() {
  stats_.stale++;
  stale_ = true;
}

void JwtDenyList::DrainEvents() {
  while (subscriber_.Poll(0) > 0) {
  }
}

void JwtDenyList::AddJti(std::string jti, Micros expires_at) {
  auto [it, inserted] = jtis_.emplace(std::move(jti), expires_at);
  if (!inserted && it->second < expires_at) it->second = expires_at;
}

void JwtDenyList::AddCutoff(std::string user_id, Micros issued_before) {
  auto [it, inserted] = users_.emplace(std::move(user_id), issued_before);
  if (!inserted && it->second < issued_before) it->second = issued_before;
}

void JwtDenyList::OnEvent(const Event& e) {
  if (e.family != "jwt") return;
  if (!options_.tenant.empty() && e.tenant != options_.tenant) return;  // another tenant's revocation
  const msgpack::object& body = e.body();
  if (e.kind == "revoked") {
    auto jti = StrKey(body, "jti");
    auto exp = TimeKey(body, "expires_at");
    if (!jti || !exp) {
      OnStale();  // a revocation we cannot apply: we may miss it
      return;
    }
    stats_.events++;
    AddJti(std::move(*jti), *exp);
  } else if (e.kind == "user_revoked") {
    auto user = StrKey(body, "user_id");
    auto before = TimeKey(body, "issued_before");
    if (!user || !before) {
      OnStale();
      return;
    }
    stats_.events++;
    AddCutoff(std::move(*user), *before);
  }
}

Status JwtDenyList::Load() {
  DrainEvents();
  if (!subscriber_.live()) {
    stats_.failed_loads++;
    return Error::Unavailable("the event subscriber is not live yet (no clean heartbeat); load again later");
  }
  const uint64_t gen = subscriber_.stale_generation();
  CallOptions opts;
  opts.timeout_ms = options_.timeout_ms;
  std::string after;
  for (;;) {
    auto reply = client_.Call(
        "list_jwt_revocations",
        [&](Packer& pk) {
          pk.pack_map(after.empty() ? 1 : 2);
          PackStr(pk, "limit");
          pk.pack_int64(options_.page_size);
          if (!after.empty()) {
            PackStr(pk, "after");
            PackStr(pk, after);
          }
        },
        opts);
    if (!reply.ok()) {
      stats_.failed_loads++;
      return reply.error();
    }
    const msgpack::object& r = reply->result();
    const msgpack::object* jtis = FindMapValue(r, "jtis");
    const msgpack::object* users = FindMapValue(r, "users");
    if (jtis == nullptr || jtis->type != msgpack::type::ARRAY || users == nullptr ||
        users->type != msgpack::type::ARRAY) {
      stats_.failed_loads++;
      return Error::Internal("list_jwt_revocations returned a malformed page");
    }
    for (uint32_t i = 0; i < jtis->via.array.size; i++) {
      auto jti = StrKey(jtis->via.array.ptr[i], "jti");
      auto exp = TimeKey(jtis->via.array.ptr[i], "expires_at");
      if (!jti || !exp) {
        stats_.failed_loads++;
        return Error::Internal("list_jwt_revocations returned a malformed entry");
      }
      AddJti(std::move(*jti), *exp);
    }
    for (uint32_t i = 0; i < users->via.array.size; i++) {
      auto user = StrKey(users->via.array.ptr[i], "user_id");
      auto before = TimeKey(users->via.array.ptr[i], "issued_before");
      if (!user || !before) {
        stats_.failed_loads++;
        return Error::Internal("list_jwt_revocations returned a malformed entry");
      }
      AddCutoff(std::move(*user), *before);
    }
    auto next = StrKey(r, "next");
    if (!next) break;
    after = std::move(*next);
    DrainEvents();  // keep the subscriber's queue short on a long load
  }
  // Events that arrived during the load are applied before deciding.
  DrainEvents();
  if (!subscriber_.live() || subscriber_.stale_generation() != gen) {
    stats_.failed_loads++;
    return Error::Unavailable("the event stream went stale during the load; load again");
  }
  PurgeExpired();
  stale_ = false;
  stats_.loads++;
  return {};
}

void JwtDenyList::PurgeExpired() {
  Micros now = NowMicros();
  for (auto it = jtis_.begin(); it != jtis_.end();) {
    if (it->second <= now) {
      it = jtis_.erase(it);
    } else {
      ++it;
    }
  }
}

JwtVerdict JwtDenyList::Check(std::string_view jti, std::string_view user_id, std::optional<Micros> issued_at) {
  DrainEvents();
  stats_.checks++;
  JwtVerdict v;
  v.stale = stale();
  if (auto it = jtis_.find(std::string(jti)); it != jtis_.end() && it->second > NowMicros()) v.revoked = true;
  if (!v.revoked && !user_id.empty()) {
    std::string lower(user_id);  // uuids come lower case from the daemon; accepted in any case
    for (char& c : lower) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    auto u = users_.find(lower);
    if (u != users_.end() && (!issued_at || *issued_at < u->second)) v.revoked = true;
  }
  return v;
}

bool JwtDenyList::revoked(std::string_view jti, std::string_view user_id, std::optional<Micros> issued_at) {
  JwtVerdict v = Check(jti, user_id, issued_at);
  bool deny = v.revoked || (v.stale && options_.fail_closed);
  if (deny) stats_.denied++;
  return deny;
}

}  // namespace torii
