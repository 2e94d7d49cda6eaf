// Request decoding, reply encoding, argument rules, metadata and timestamps.
#include "torii/protocol.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace torii {

namespace {

constexpr size_t kMetadataMaxDepth = 32;

Error WrongType(std::string_view key, const char* want, const msgpack::object& o) {
  return Error::BadRequest("'" + std::string(key) + "' must be " + want + ", not " + MsgpackTypeName(o));
}


Result<nlohmann::json> ToJson(const msgpack::object& o, size_t depth) {
  if (depth > kMetadataMaxDepth) return Error::InvalidArgument("metadata is nested too deeply");
  switch (o.type) {
    case msgpack::type::NIL: return nlohmann::json(nullptr);
    case msgpack::type::BOOLEAN: return nlohmann::json(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER: return nlohmann::json(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return nlohmann::json(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      if (!std::isfinite(o.via.f64)) return Error::InvalidArgument("metadata holds NaN or an infinity");
      return nlohmann::json(o.via.f64);
    case msgpack::type::STR: {
      std::string s(o.via.str.ptr, o.via.str.size);
      if (HasNul(s)) return Error::InvalidArgument("metadata strings must not hold NUL characters");
      return nlohmann::json(std::move(s));
    }
    case msgpack::type::ARRAY: {
      nlohmann::json arr = nlohmann::json::array();
      for (uint32_t i = 0; i < o.via.array.size; i++) {
        auto el = ToJson(o.via.array.ptr[i], depth + 1);
        if (!el.ok()) return el.error();
        arr.push_back(std::move(el.value()));
      }
      return arr;
    }
    case msgpack::type::MAP: {
      nlohmann::json obj = nlohmann::json::object();
      for (uint32_t i = 0; i < o.via.map.size; i++) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) return Error::InvalidArgument("metadata keys must be strings");
        std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
        if (HasNul(key)) return Error::InvalidArgument("metadata keys must not hold NUL characters");
        auto val = ToJson(kv.val, depth + 1);
        if (!val.ok()) return val.error();
        obj[key] = std::move(val.value());
      }
      return obj;
    }
    case msgpack::type::BIN: return Error::InvalidArgument("metadata must not hold binary values");
    case msgpack::type::EXT: return Error::InvalidArgument("metadata must not hold extension values");
  }
  return Error::InvalidArgument("metadata holds an unknown msgpack type");
}

}  // namespace

void PackStr(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

namespace {
constexpr size_t kZoneChunkBytes = 512;
}  // namespace

Result<msgpack::object_handle> UnpackBounded(const char* data, size_t len, const DecodeLimits& l) {
  msgpack::unpack_limit limit(l.max_array, l.max_map, l.max_str, l.max_bin, l.max_ext, l.max_depth);
  size_t off = 0;
  try {
    // A small first chunk: a request or reply decodes into a few hundred
    // bytes, and allocations that small are served from malloc's per-thread
    // cache (the default 8 KiB chunk is not).
    auto zone = std::make_unique<msgpack::zone>(kZoneChunkBytes);
    msgpack::object obj = msgpack::unpack(*zone, data, len, off, nullptr, nullptr, limit);
    if (off != len) return Error::BadRequest("the body has bytes after its msgpack value");
    return msgpack::object_handle(obj, std::move(zone));
  } catch (const msgpack::depth_size_overflow&) {
    return Error::BadRequest("the body is nested too deeply");
  } catch (const msgpack::size_overflow& e) {
    return Error::BadRequest(std::string("the body exceeds a decoder limit (") + e.what() + ")");
  } catch (const msgpack::insufficient_bytes&) {
    return Error::BadRequest("the body is not valid msgpack (truncated)");
  } catch (const std::bad_alloc&) {
    return Error::BadRequest("the body is too large to decode");
  } catch (const std::exception&) {
    return Error::BadRequest("the body is not valid msgpack");
  }
}

Status DecodeRequest(const char* data, size_t len, const DecodeLimits& limits, Request* out) {
  auto unpacked = UnpackBounded(data, len, limits);
  if (!unpacked.ok()) return unpacked.error();
  out->handle = std::move(unpacked.value());
  const msgpack::object& root = out->handle.get();
  if (root.type != msgpack::type::MAP) return Error::BadRequest("the body must be a msgpack map");

  // The id first, so that every later error can echo it.
  const msgpack::object* op = nullptr;
  const msgpack::object* args = nullptr;
  const msgpack::object* v = nullptr;
  const msgpack::object* timeout = nullptr;
  const msgpack::object* actor = nullptr;
  const msgpack::object* tenant = nullptr;
  for (uint32_t i = 0; i < root.via.map.size; i++) {
    const auto& kv = root.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR) return Error::BadRequest("request keys must be strings");
    std::string_view k = AsStr(kv.key);
    if (k == "id") {
      msgpack::sbuffer idbuf(32);
      msgpack::pack(idbuf, kv.val);
      out->id_raw.assign(idbuf.data(), idbuf.size());
    } else if (k == "op") {
      op = &kv.val;
    } else if (k == "args") {
      args = &kv.val;
    } else if (k == "v") {
      v = &kv.val;
    } else if (k == "timeout_ms") {
      timeout = &kv.val;
    } else if (k == "actor") {
      actor = &kv.val;
    } else if (k == "tenant") {
      tenant = &kv.val;
    }
    // Other keys are ignored: room for later protocol additions.
  }
  if (v != nullptr) {
    if (v->type != msgpack::type::POSITIVE_INTEGER && v->type != msgpack::type::NEGATIVE_INTEGER) {
      return WrongType("v", "an integer", *v);
    }
    if (v->type == msgpack::type::NEGATIVE_INTEGER || v->via.u64 != 1) {
      return Error::UnsupportedVersion("this daemon speaks protocol version 1");
    }
  }
  if (op == nullptr) return Error::BadRequest("the request has no 'op'");
  if (op->type != msgpack::type::STR) return WrongType("op", "a string", *op);
  out->op.assign(op->via.str.ptr, op->via.str.size);
  if (args == nullptr || args->type == msgpack::type::NIL) {
    out->args = msgpack::object();
  } else if (args->type != msgpack::type::MAP) {
    return WrongType("args", "a map", *args);
  } else {
    for (uint32_t i = 0; i < args->via.map.size; i++) {
      if (args->via.map.ptr[i].key.type != msgpack::type::STR) return Error::BadRequest("argument keys must be strings");
    }
    out->args = *args;
  }
  if (timeout != nullptr && timeout->type != msgpack::type::NIL) {
    if (timeout->type != msgpack::type::POSITIVE_INTEGER) return WrongType("timeout_ms", "an unsigned integer", *timeout);
    out->timeout_ms = timeout->via.u64;
  }
  if (actor != nullptr && actor->type != msgpack::type::NIL) {
    if (actor->type != msgpack::type::STR) return WrongType("actor", "a uuid string", *actor);
    auto uuid = NormalizeUuid(AsStr(*actor));
    if (!uuid) return Error::InvalidArgument("'actor' is not a uuid");
    out->actor = std::move(*uuid);
  }
  if (tenant != nullptr && tenant->type != msgpack::type::NIL) {
    if (tenant->type != msgpack::type::STR) return WrongType("tenant", "a string", *tenant);
    std::string_view name = AsStr(*tenant);
    if (!IsValidTenantName(name)) {
      return Error::InvalidArgument("'tenant' must be 1 to 64 bytes of [a-z0-9_.-]");
    }
    out->tenant = std::string(name);
  }
  return {};
}

namespace {

// A reply map's start: its "id" (raw msgpack; none when empty) and "ok".
void PackReplyHead(msgpack::sbuffer& buf, Packer& pk, std::string_view id_raw, bool ok) {
  pk.pack_map(id_raw.empty() ? 2 : 3);
  if (!id_raw.empty()) {
    PackStr(pk, "id");
    buf.write(id_raw.data(), id_raw.size());
  }
  PackStr(pk, "ok");
  pk.pack(ok);
}

}  // namespace

void BeginOkReply(msgpack::sbuffer& buf, std::string_view id_raw) {
  Packer pk(buf);
  PackReplyHead(buf, pk, id_raw, true);
  PackStr(pk, "result");
}

std::string EncodeErrorReply(std::string_view id_raw, const Error& e) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  PackReplyHead(buf, pk, id_raw, false);
  PackStr(pk, "error");
  pk.pack_map(2);
  PackStr(pk, "code");
  PackStr(pk, CodeName(e.code()));
  PackStr(pk, "message");
  PackStr(pk, e.message());
  return std::string(buf.data(), buf.size());
}

Args::Args(const msgpack::object& map) : map_(map.type == msgpack::type::MAP ? &map : nullptr) {}

const msgpack::object* Args::Find(std::string_view key) const {
  return map_ != nullptr ? FindMapValue(*map_, key) : nullptr;
}

Status Args::OnlyKeys(std::initializer_list<std::string_view> allowed) const {
  if (map_ == nullptr) return {};
  for (uint32_t i = 0; i < map_->via.map.size; i++) {
    std::string_view k = AsStr(map_->via.map.ptr[i].key);
    bool ok = false;
    for (auto a : allowed) ok |= a == k;
    if (!ok) return Error::InvalidArgument("unknown argument '" + std::string(k) + "'");
  }
  return {};
}

Result<std::optional<std::string_view>> Args::StrView(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::optional<std::string_view>();
  if (o->type != msgpack::type::STR) return WrongType(key, "a string", *o);
  std::string_view s(o->via.str.ptr, o->via.str.size);
  if (HasNul(s)) return Error::InvalidArgument("'" + std::string(key) + "' must not hold NUL characters");
  return std::optional<std::string_view>(s);
}

Result<std::optional<std::string>> Args::Str(std::string_view key) const {
  auto s = StrView(key);
  if (!s.ok()) return s.error();
  if (!s.value()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(**s));
}

Result<std::optional<int64_t>> Args::Int(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::optional<int64_t>();
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return std::optional<int64_t>(o->via.i64);
  if (o->type == msgpack::type::POSITIVE_INTEGER) {
    if (o->via.u64 > static_cast<uint64_t>(INT64_MAX)) {
      return Error::InvalidArgument("'" + std::string(key) + "' is out of range");
    }
    return std::optional<int64_t>(static_cast<int64_t>(o->via.u64));
  }
  return WrongType(key, "an integer", *o);
}

Result<std::optional<bool>> Args::Bool(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::optional<bool>();
  if (o->type == msgpack::type::BOOLEAN) return std::optional<bool>(o->via.boolean);
  return WrongType(key, "a boolean", *o);
}

Result<std::optional<std::string>> Args::Uuid(std::string_view key) const {
  auto s = Str(key);
  if (!s.ok()) {
    // A uuid given as anything but a string is a type error.
    return s.error();
  }
  if (!s.value()) return std::optional<std::string>();
  auto u = NormalizeUuid(*s.value());
  if (!u) return Error::InvalidArgument("'" + std::string(key) + "' is not a uuid");
  return std::optional<std::string>(std::move(*u));
}

Result<std::optional<Micros>> Args::Timestamp(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::optional<Micros>();
  auto t = TimestampFromObject(*o);
  if (!t.ok()) {
    return Error(t.error().code(), "'" + std::string(key) + "': " + t.error().message());
  }
  return std::optional<Micros>(t.value());
}

Result<std::optional<std::string>> Args::Metadata(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::optional<std::string>();
  if (o->type != msgpack::type::MAP) return WrongType(key, "a map", *o);
  auto j = MetadataToJson(*o);
  if (!j.ok()) return j.error();
  try {
    return std::optional<std::string>(j->dump());
  } catch (const nlohmann::json::exception&) {
    return Error::InvalidArgument("'" + std::string(key) + "' holds a string that is not valid UTF-8");
  }
}

namespace {
Error MissingArgument(std::string_view key) {
  return Error::InvalidArgument("missing required argument '" + std::string(key) + "'");
}
}  // namespace

Result<std::string_view> Args::RequiredStrView(std::string_view key) const {
  auto s = StrView(key);
  if (!s.ok()) return s.error();
  if (!s.value()) return MissingArgument(key);
  return *s.value();
}

Result<std::string> Args::RequiredStr(std::string_view key) const {
  auto s = RequiredStrView(key);
  if (!s.ok()) return s.error();
  return std::string(*s);
}

Result<std::string> Args::RequiredUuid(std::string_view key) const {
  auto s = Uuid(key);
  if (!s.ok()) return s.error();
  if (!s.value()) return MissingArgument(key);
  return std::move(*s.value());
}

Result<std::string> Args::RequiredEmail(std::string_view key) const {
  auto s = RequiredStr(key);
  if (!s.ok()) return s;
  if (!ValidEmail(*s)) {
    return Error::InvalidArgument("'" + std::string(key) +
                                  "' is not an email (at most 254 bytes, one @ with text on each side)");
  }
  return s;
}

Result<nlohmann::json> MetadataToJson(const msgpack::object& o) {
  if (o.type != msgpack::type::MAP) return Error::InvalidArgument("metadata must be a map");
  return ToJson(o, 0);
}

void PackJson(Packer& pk, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: pk.pack_nil(); break;
    case nlohmann::json::value_t::boolean: j.get<bool>() ? pk.pack_true() : pk.pack_false(); break;
    case nlohmann::json::value_t::number_integer: pk.pack_int64(j.get<int64_t>()); break;
    case nlohmann::json::value_t::number_unsigned: pk.pack_uint64(j.get<uint64_t>()); break;
    case nlohmann::json::value_t::number_float: pk.pack_double(j.get<double>()); break;
    case nlohmann::json::value_t::string: PackStr(pk, j.get_ref<const std::string&>()); break;
    case nlohmann::json::value_t::array:
      pk.pack_array(static_cast<uint32_t>(j.size()));
      for (const auto& el : j) PackJson(pk, el);
      break;
    case nlohmann::json::value_t::object:
      pk.pack_map(static_cast<uint32_t>(j.size()));
      for (const auto& [k, v] : j.items()) {
        PackStr(pk, k);
        PackJson(pk, v);
      }
      break;
    case nlohmann::json::value_t::binary: {
      // Built by tools (json::binary), never parsed from JSON text.
      const auto& b = j.get_binary();
      pk.pack_bin(static_cast<uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<uint32_t>(b.size()));
      break;
    }
    default: pk.pack_nil(); break;
  }
}

namespace {

// JSON text to msgpack without a document in between. nlohmann's SAX parser
// records each value on a tape; a container's entry gets its element count
// as its elements arrive (msgpack puts the count before the elements), then
// one pass packs the tape. Tape and string arena are reused, so a reply's
// metadata costs no allocation once they have grown. Keys keep the text's
// order (JSONB's own) and a repeated key is packed twice, which JSONB output
// never has.
class JsonTape final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool Parse(std::string_view text) {
    tape_.clear();
    open_.clear();
    arena_.clear();
    return nlohmann::json::sax_parse(text.begin(), text.end(), this, nlohmann::json::input_format_t::json, true,
                                     false) &&
           open_.empty();
  }

  void Pack(Packer& pk) const {
    for (const Entry& e : tape_) {
      switch (e.kind) {
        case Kind::kNull: pk.pack_nil(); break;
        case Kind::kTrue: pk.pack_true(); break;
        case Kind::kFalse: pk.pack_false(); break;
        case Kind::kInt: pk.pack_int64(e.i); break;
        case Kind::kUint: pk.pack_uint64(e.u); break;
        case Kind::kDouble: pk.pack_double(e.d); break;
        case Kind::kStr: PackStr(pk, std::string_view(arena_).substr(e.off, e.len)); break;
        case Kind::kArray: pk.pack_array(e.n); break;
        case Kind::kMap: pk.pack_map(e.n); break;
      }
    }
  }

  bool null() override { return Scalar(Kind::kNull); }
  bool boolean(bool v) override { return Scalar(v ? Kind::kTrue : Kind::kFalse); }
  bool number_integer(number_integer_t v) override {
    Entry& e = Value(Kind::kInt);
    e.i = v;
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override {
    Entry& e = Value(Kind::kUint);
    e.u = v;
    return true;
  }
  bool number_float(number_float_t v, const string_t&) override {
    Entry& e = Value(Kind::kDouble);
    e.d = v;
    return true;
  }
  bool string(string_t& v) override {
    Str(Value(Kind::kStr), v);
    return true;
  }
  bool binary(binary_t&) override { return false; }  // not in JSON text
  bool start_object(std::size_t) override { return Open(Kind::kMap); }
  bool key(string_t& k) override {
    tape_[open_.back()].n++;  // a map counts its keys
    tape_.emplace_back(Kind::kStr);
    Str(tape_.back(), k);
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(Kind::kArray); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception&) override { return false; }

 private:
  enum class Kind : uint8_t { kNull, kTrue, kFalse, kInt, kUint, kDouble, kStr, kArray, kMap };
  struct Entry {
    explicit Entry(Kind k) : kind(k) {}
    Kind kind;
    uint32_t n = 0;  // containers: elements (arrays) or keys (maps)
    union {
      int64_t i;
      uint64_t u = 0;
      double d;
    };
    size_t off = 0, len = 0;  // strings: their bytes in arena_
  };

  // A value (not a key) starts: an array around it counts it.
  Entry& Value(Kind kind) {
    if (!open_.empty() && tape_[open_.back()].kind == Kind::kArray) tape_[open_.back()].n++;
    tape_.emplace_back(kind);
    return tape_.back();
  }
  bool Scalar(Kind kind) {
    Value(kind);
    return true;
  }
  bool Open(Kind kind) {
    Value(kind);
    open_.push_back(tape_.size() - 1);
    return true;
  }
  bool Close() {
    if (open_.empty()) return false;
    open_.pop_back();
    return true;
  }
  void Str(Entry& e, const string_t& v) {
    e.off = arena_.size();
    e.len = v.size();
    arena_.append(v);
  }

  std::vector<Entry> tape_;
  std::vector<size_t> open_;  // tape_ indexes of the containers still open
  std::string arena_;
};

}  // namespace

void PackJsonText(Packer& pk, std::string_view text) {
  if (text == "{}") {  // what most metadata is
    pk.pack_map(0);
    return;
  }
  thread_local JsonTape tape;
  if (!tape.Parse(text)) {
    pk.pack_nil();
    return;
  }
  tape.Pack(pk);
}

Result<Micros> TimestampFromObject(const msgpack::object& o) {
  // Bounds: years 1 to 9999 are what PostgreSQL's timestamptz and the
  // client libraries agree on; beyond them arithmetic would overflow.
  constexpr int64_t kMinSec = -62135596800;  // 0001-01-01
  constexpr int64_t kMaxSec = 253402300799;  // 9999-12-31T23:59:59
  int64_t sec = 0;
  int64_t nsec = 0;
  if (o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER) {
    int64_t ms = o.type == msgpack::type::NEGATIVE_INTEGER ? o.via.i64
                 : o.via.u64 > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX
                                                                : static_cast<int64_t>(o.via.u64);
    if (ms / 1000 < kMinSec || ms / 1000 > kMaxSec) return Error::InvalidArgument("timestamp out of range");
    return ms * 1000;
  }
  if (o.type != msgpack::type::EXT || o.via.ext.type() != -1) {
    return Error::BadRequest("a timestamp must be a msgpack timestamp (ext -1) or integer milliseconds");
  }
  const auto* p = reinterpret_cast<const uint8_t*>(o.via.ext.data());
  auto be = [p](int off, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[off + i];
    return v;
  };
  switch (o.via.ext.size) {
    case 4: sec = static_cast<int64_t>(be(0, 4)); break;
    case 8: {
      uint64_t v = be(0, 8);
      nsec = static_cast<int64_t>(v >> 34);
      sec = static_cast<int64_t>(v & 0x3ffffffffULL);
      break;
    }
    case 12:
      nsec = static_cast<int64_t>(be(0, 4));
      sec = static_cast<int64_t>(be(4, 8));
      break;
    default: return Error::BadRequest("a msgpack timestamp has 4, 8 or 12 bytes");
  }
  if (nsec > 999999999) return Error::BadRequest("timestamp nanoseconds out of range");
  if (sec < kMinSec || sec > kMaxSec) return Error::InvalidArgument("timestamp out of range");
  return sec * 1000000 + nsec / 1000;
}

void PackTimestamp(Packer& pk, Micros us) {
  int64_t sec = us / 1000000;
  int64_t rem = us % 1000000;
  if (rem < 0) {
    rem += 1000000;
    sec -= 1;
  }
  uint32_t nsec = static_cast<uint32_t>(rem * 1000);
  char b[12];
  if (sec >= 0 && (sec >> 34) == 0) {
    if (nsec == 0 && (sec >> 32) == 0) {
      uint32_t s = static_cast<uint32_t>(sec);
      for (int i = 0; i < 4; i++) b[i] = static_cast<char>(s >> (24 - 8 * i));
      pk.pack_ext(4, -1);
      pk.pack_ext_body(b, 4);
      return;
    }
    uint64_t v = static_cast<uint64_t>(nsec) << 34 | static_cast<uint64_t>(sec);
    for (int i = 0; i < 8; i++) b[i] = static_cast<char>(v >> (56 - 8 * i));
    pk.pack_ext(8, -1);
    pk.pack_ext_body(b, 8);
    return;
  }
  for (int i = 0; i < 4; i++) b[i] = static_cast<char>(nsec >> (24 - 8 * i));
  uint64_t s = static_cast<uint64_t>(sec);
  for (int i = 0; i < 8; i++) b[4 + i] = static_cast<char>(s >> (56 - 8 * i));
  pk.pack_ext(12, -1);
  pk.pack_ext_body(b, 12);
}

std::optional<Micros> MicrosFromTimestamp(const msgpack::object& o) {
  if (o.type != msgpack::type::EXT || o.via.ext.type() != -1) return std::nullopt;
  auto t = TimestampFromObject(o);
  if (!t.ok()) return std::nullopt;
  return t.value();
}

const msgpack::object* FindMapValue(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; i++) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && AsStr(kv.key) == key) return &kv.val;
  }
  return nullptr;
}

const char* MsgpackTypeName(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "an integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    case msgpack::type::EXT: return "an extension";
  }
  return "unknown";
}

}  // namespace torii
