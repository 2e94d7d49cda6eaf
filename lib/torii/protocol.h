// The wire codec of PROTOCOL.md section 2: request bodies in, reply bodies
// out, argument access with the protocol's type rules, metadata between
// msgpack and JSON, and timestamps. Shared by the daemon, the client
// library, the CLI and the tests. Pure; callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json_fwd.hpp>

#include "torii/error.h"
#include "torii/tenant.h"
#include "torii/values.h"

namespace torii {

using Packer = msgpack::packer<msgpack::sbuffer>;

// Bounds on what one request body may unpack to, so that a small frame
// cannot make the decoder allocate without limit.
struct DecodeLimits {
  size_t max_depth = 32;
  size_t max_array = 100000;
  size_t max_map = 10000;
  size_t max_str = 16 * 1024 * 1024;
  size_t max_bin = 16 * 1024 * 1024;
  size_t max_ext = 1024;
};

// Unpacks a msgpack buffer within limits. Error: bad_request.
Result<msgpack::object_handle> UnpackBounded(const char* data, size_t len, const DecodeLimits& limits);

struct Request {
  std::string op;
  msgpack::object args;                 // a MAP, or NIL when absent; lives in `handle`
  std::string id_raw;                   // the `id` value as msgpack bytes; empty: no id
  std::optional<uint64_t> timeout_ms;
  std::optional<std::string> actor;     // normalised uuid
  std::optional<std::string> tenant;    // a valid tenant name (tenant.h); absent: the default tenant
  msgpack::object_handle handle;
};


// Decodes a request body. On failure `out->id_raw` is still filled when the
// body had a readable id, so the error reply can echo it.
Status DecodeRequest(const char* data, size_t len, const DecodeLimits& limits, Request* out);

// Reply bodies. `id_raw` is Request::id_raw (empty: no id key).
// Begins {"id"?, "ok": true, "result": ...}; the caller packs the result
// value next, exactly one msgpack object.
void BeginOkReply(msgpack::sbuffer& buf, std::string_view id_raw);
std::string EncodeErrorReply(std::string_view id_raw, const Error& e);

// Reading a map of arguments by key with the protocol's rules: a key of the
// wrong type is bad_request; a missing required one invalid_argument.
class Args {
 public:
  explicit Args(const msgpack::object& map);  // NIL means {}

  // nullptr when absent. A present nil is returned as a NIL object.
  const msgpack::object* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // Refuses keys outside `allowed` (invalid_argument "unknown argument").
  Status OnlyKeys(std::initializer_list<std::string_view> allowed) const;

  // Optional getters: nullopt when absent or nil.
  Result<std::optional<std::string>> Str(std::string_view key) const;
  // As Str, without a copy: a view into the request's message.
  Result<std::optional<std::string_view>> StrView(std::string_view key) const;
  Result<std::optional<int64_t>> Int(std::string_view key) const;
  Result<std::optional<bool>> Bool(std::string_view key) const;
  Result<std::optional<std::string>> Uuid(std::string_view key) const;
  Result<std::optional<Micros>> Timestamp(std::string_view key) const;
  // Metadata map as JSON text; nullopt when absent or nil.
  Result<std::optional<std::string>> Metadata(std::string_view key) const;

  // Required getters: invalid_argument when absent or nil.
  Result<std::string> RequiredStr(std::string_view key) const;
  // As RequiredStr, without a copy: a view into the request's message.
  Result<std::string_view> RequiredStrView(std::string_view key) const;
  Result<std::string> RequiredUuid(std::string_view key) const;
  Result<std::string> RequiredEmail(std::string_view key) const;

 private:
  const msgpack::object* map_ = nullptr;
};

// Metadata: a msgpack map with string keys, to JSON. Binary, extension,
// non-string keys, NaN and infinities are invalid_argument; depth is bounded.
Result<nlohmann::json> MetadataToJson(const msgpack::object& o);
// Packs JSON (as stored in JSONB) as msgpack.
void PackJson(Packer& pk, const nlohmann::json& j);
// Packs JSON text (JSONB's output) without building a document; map keys
// keep the text's order. A parse failure packs nil.
void PackJsonText(Packer& pk, std::string_view json_text);

// Timestamps: msgpack ext -1 (32, 64 or 96-bit form) or integer milliseconds.
Result<Micros> TimestampFromObject(const msgpack::object& o);
// Packs microseconds as a msgpack timestamp (ext -1).
void PackTimestamp(Packer& pk, Micros us);
// Reads a msgpack timestamp ext back to microseconds.
std::optional<Micros> MicrosFromTimestamp(const msgpack::object& o);

// The bytes of a msgpack str (the caller has checked that it is one).
inline std::string_view AsStr(const msgpack::object& o) { return {o.via.str.ptr, o.via.str.size}; }
// The value of `key` in a msgpack map, or nullptr (not a map, or no such
// string key).
const msgpack::object* FindMapValue(const msgpack::object& map, std::string_view key);
// "a string", "an integer", ...: a value's type, for error messages.
const char* MsgpackTypeName(const msgpack::object& o);

// Packs a msgpack str (keys and string values alike).
void PackStr(Packer& pk, std::string_view s);

// Strings that go to PostgreSQL as text must not hold NUL bytes.
bool HasNul(std::string_view s);

}  // namespace torii
