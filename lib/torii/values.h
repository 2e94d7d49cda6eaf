// The protocol's value rules (PROTOCOL.md section 2, "Values"): uuids,
// emails, timestamps, session tokens and their digests. Pure functions,
// callable from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace torii {

// Parses a canonical 8-4-4-4-12 hex uuid in any case; returns it lower case.
std::optional<std::string> NormalizeUuid(std::string_view s);
// A random (version 4) uuid, lower case.
std::string NewUuid();
// The version 5 uuid of `name` in `namespace_uuid` (RFC 4122, SHA-1).
std::string UuidV5(std::string_view namespace_uuid, std::string_view name);

// At most 254 bytes, exactly one '@', something on each side.
bool ValidEmail(std::string_view s);

// Microseconds since the Unix epoch, UTC.
using Micros = int64_t;
Micros NowMicros();

// A new bearer token: 32 bytes from the CSPRNG, base64url, no padding (43 chars).
std::string NewSessionToken();
// SHA-256 of the token string's bytes: the sessions.token_hash value.
std::array<uint8_t, 32> TokenDigest(std::string_view token);

// base64url without padding.
std::string Base64UrlEncode(const uint8_t* data, size_t len);

// Hex, the one encoder and decoder of the tree: two lower-case digits a byte
// out; digits of either case in.
void AppendHex(std::string& out, const void* data, size_t len);
std::string HexEncode(std::string_view bytes);
// False on an odd length or a character that is not a hex digit; `out` is
// then unspecified.
bool HexDecode(std::string_view hex, std::string* out);
// bytea in PostgreSQL's hex output format: "\x" then two digits a byte.
bool DecodeByteaHex(std::string_view text, std::string* out);

}  // namespace torii
