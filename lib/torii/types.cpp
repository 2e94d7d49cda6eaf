// Typed records from reply maps.
#include "torii/types.h"

#include "torii/client.h"
#include "torii/protocol.h"
#include "torii/tenant.h"

namespace torii {

namespace {

class MapReader {
 public:
  explicit MapReader(const msgpack::object& o) : o_(o) {}
  bool is_map() const { return o_.type == msgpack::type::MAP; }

  const msgpack::object* Find(std::string_view key) const { return FindMapValue(o_, key); }

  // Required string; records the first problem.
  std::string Str(std::string_view key) {
    const msgpack::object* v = Find(key);
    if (v == nullptr || v->type != msgpack::type::STR) {
      Fail(key, "a string");
      return {};
    }
    return std::string(v->via.str.ptr, v->via.str.size);
  }
  std::optional<std::string> OptStr(std::string_view key) {
    const msgpack::object* v = Find(key);
    if (v == nullptr || v->type == msgpack::type::NIL) return std::nullopt;
    if (v->type != msgpack::type::STR) {
      Fail(key, "a string or nil");
      return std::nullopt;
    }
    return std::string(v->via.str.ptr, v->via.str.size);
  }
  Micros Time(std::string_view key) {
    const msgpack::object* v = Find(key);
    auto t = v ? MicrosFromTimestamp(*v) : std::nullopt;
    if (!t) {
      Fail(key, "a timestamp");
      return 0;
    }
    return *t;
  }
  std::optional<Micros> OptTime(std::string_view key) {
    const msgpack::object* v = Find(key);
    if (v == nullptr || v->type == msgpack::type::NIL) return std::nullopt;
    auto t = MicrosFromTimestamp(*v);
    if (!t) Fail(key, "a timestamp or nil");
    return t;
  }
  nlohmann::json Json(std::string_view key) {
    const msgpack::object* v = Find(key);
    return v ? MsgpackToJson(*v) : nlohmann::json();
  }

  const std::optional<Error>& error() const { return error_; }

 private:
  void Fail(std::string_view key, const char* want) {
    if (!error_) error_ = Error::Internal("reply field '" + std::string(key) + "' is not " + want);
  }

  const msgpack::object& o_;
  std::optional<Error> error_;
};

}  // namespace

Result<User> UserFromObject(const msgpack::object& o) {
  MapReader r(o);
  if (!r.is_map()) return Error::Internal("a User must be a map");
  User u;
  u.id = r.Str("id");
  u.email = r.Str("email");
  u.password_hash = r.OptStr("password_hash");
  u.email_verified_at = r.OptTime("email_verified_at");
  u.metadata = r.Json("metadata");
  u.created_at = r.Time("created_at");
  u.updated_at = r.Time("updated_at");
  u.name = r.OptStr("name");
  u.locked_at = r.OptTime("locked_at");
  if (r.error()) return *r.error();
  return u;
}

Result<Session> SessionFromObject(const msgpack::object& o) {
  MapReader r(o);
  if (!r.is_map()) return Error::Internal("a Session must be a map");
  Session s;
  s.id = r.Str("id");
  s.user_id = r.Str("user_id");
  s.expires_at = r.Time("expires_at");
  s.user_agent = r.OptStr("user_agent");
  s.ip_address = r.OptStr("ip_address");
  s.metadata = r.Json("metadata");
  s.created_at = r.Time("created_at");
  s.token = r.OptStr("token");
  if (r.error()) return *r.error();
  return s;
}

std::string UserIdFromToriiId(std::string_view torii_id, std::string_view tenant) {
  std::optional<std::string> uuid = NormalizeUuid(torii_id);
  if (tenant.empty() || tenant == kDefaultTenant) return uuid ? *uuid : UuidV5(kToriiIdNamespace, torii_id);
  std::string name(tenant);
  name += '/';
  name += uuid ? std::string_view(*uuid) : torii_id;
  return UuidV5(kToriiIdNamespace, name);
}

}  // namespace torii
