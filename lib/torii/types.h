// The protocol's records as C++ values (PROTOCOL.md section 2: User,
// Session), decoded from reply results. For callers that want typed fields
// instead of walking msgpack maps; the wire stays the source of truth.
#pragma once

#include <optional>
#include <string>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "torii/error.h"
#include "torii/values.h"

namespace torii {

struct User {
  std::string id;
  std::string email;
  std::optional<std::string> password_hash;  // absent in search and list results
  std::optional<Micros> email_verified_at;
  nlohmann::json metadata;                   // null when the row holds none
  Micros created_at = 0;
  Micros updated_at = 0;
  std::optional<std::string> name;      // section 5
  std::optional<Micros> locked_at;      // section 5: the login guard's lock
};

struct Session {
  std::string id;
  std::string user_id;
  Micros expires_at = 0;
  std::optional<std::string> user_agent;
  std::optional<std::string> ip_address;
  nlohmann::json metadata;
  Micros created_at = 0;
  std::optional<std::string> token;  // only in create_session's result
};

// Decode a User or Session map; a missing required key or a key of the
// wrong type is internal (the daemon broke the contract).
Result<User> UserFromObject(const msgpack::object& o);
Result<Session> SessionFromObject(const msgpack::object& o);

// Torii's own user ids ("usr_" + base58, or anything else but a UUID) and
// toriid's UUID users.id: the one rule every client follows (docs/torii.md),
// and `torii migrate` too. A UUID (any case) is kept, lower-cased; any other
// id becomes UUIDv5(kToriiIdNamespace, id), and the original belongs in
// the user's metadata as "torii_id". Deterministic, so an adapter creates
// and finds a user by Torii's id in one round trip (get_user, or
// get_or_create_user with `id`).
//
// In a tenant other than the default one (`tenant` not empty and not
// "default") every id, a UUID too, becomes UUIDv5(kToriiIdNamespace,
// tenant + "/" + id, a UUID lower-cased first): users.id is unique across
// tenants, so the same Torii database imported into two tenants, or two
// applications that happen to use the same ids, must not share a uuid. The
// id is then always kept in metadata.torii_id. A client acting for a
// tenant passes that tenant (docs/torii.md, "Tenants").
inline constexpr const char* kToriiIdNamespace = "6af69e92-7b68-53eb-b1a6-0f7f935d8f4b";
std::string UserIdFromToriiId(std::string_view torii_id, std::string_view tenant = {});

}  // namespace torii
