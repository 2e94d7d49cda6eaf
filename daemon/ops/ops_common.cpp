// Shared by the operation families: column packing, common renderers and
// argument rules (see ops_common.h).
#include "ops/ops_common.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

void PackText(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  PackStr(pk, std::string_view(PQgetvalue(r, row, col), PQgetlength(r, row, col)));
}

void PackMicros(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  PackTimestamp(pk, std::strtoll(PQgetvalue(r, row, col), nullptr, 10));
}

void PackJsonb(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  PackJsonText(pk, std::string_view(PQgetvalue(r, row, col), PQgetlength(r, row, col)));
}

FieldColumns::FieldColumns(const PGresult* r, std::span<const Field> fields) : fields_(fields) {
  if (fields.size() > kMaxFields) {
    complete_ = false;
    fields_ = {};
    return;
  }
  for (size_t i = 0; i < fields.size(); i++) {
    cols_[i] = PQfnumber(r, fields[i].column);
    if (cols_[i] < 0) complete_ = false;
  }
}

void FieldColumns::Pack(Packer& pk, const PGresult* r, int row, size_t extra, const char* omit) const {
  size_t omitted = 0;
  for (const Field& f : fields_) {
    if (omit != nullptr && std::strcmp(f.key, omit) == 0) omitted++;
  }
  pk.pack_map(static_cast<uint32_t>(fields_.size() - omitted + extra));
  for (size_t i = 0; i < fields_.size(); i++) {
    if (omit != nullptr && std::strcmp(fields_[i].key, omit) == 0) continue;
    PackStr(pk, fields_[i].key);
    fields_[i].pack(pk, r, row, cols_[i]);
  }
}

void PackUint(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  pk.pack_uint64(std::strtoull(PQgetvalue(r, row, col), nullptr, 10));
}

bool ColumnIsTrue(const PGresult* r, int row, const char* column) {
  int col = PQfnumber(r, column);
  return col >= 0 && row >= 0 && row < PQntuples(r) && !PQgetisnull(r, row, col) &&
         std::strcmp(PQgetvalue(r, row, col), "t") == 0;
}

Error MissingColumns(std::string_view what) {
  return Error::Internal("the statement's result lacks a column of the " + std::string(what));
}

namespace {

constexpr Field kUserFields[] = {
    {"id", "id", PackText},
    {"email", "email", PackText},
    {"password_hash", "password_hash", PackText},
    {"email_verified_at", "email_verified_at_us", PackMicros},
    {"metadata", "metadata", PackJsonb},
    {"created_at", "created_at_us", PackMicros},
    {"updated_at", "updated_at_us", PackMicros},
    {"name", "name", PackText},
    {"locked_at", "locked_at_us", PackMicros},
};

}  // namespace

std::span<const Field> UserFields() { return kUserFields; }

void PackUser(Packer& pk, const PGresult* r, int row, const FieldColumns& user, bool with_hash) {
  user.Pack(pk, r, row, 0, with_hash ? nullptr : "password_hash");
}

void PackBytea(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  size_t n = 0;
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, col)), &n);
  if (!raw) {
    pk.pack_nil();
    return;
  }
  pk.pack_bin(static_cast<uint32_t>(n));
  pk.pack_bin_body(reinterpret_cast<const char*>(raw), static_cast<uint32_t>(n));
  PQfreemem(raw);
}

Status RenderUser(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such user");
  FieldColumns cols(r, UserFields());
  if (!cols.complete()) return MissingColumns("user");
  PackUser(pk, r, 0, cols, true);
  return {};
}

Status RenderDeletedCount(const PGresult* r, const Plan&, Packer& pk) {
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(CmdTuples(r));
  return {};
}

Status RenderEmpty(const PGresult*, const Plan&, Packer& pk) {
  pk.pack_map(0);
  return {};
}

uint64_t CmdTuples(const PGresult* r) {
  return std::strtoull(PQcmdTuples(const_cast<PGresult*>(r)), nullptr, 10);
}

Result<int> OneOf(const Args& args, const char* a, const char* b) {
  bool has_a = args.Find(a) && args.Find(a)->type != msgpack::type::NIL;
  bool has_b = args.Find(b) && args.Find(b)->type != msgpack::type::NIL;
  if (has_a && has_b) return Error::InvalidArgument(std::string("give '") + a + "' or '" + b + "', not both");
  if (!has_a && !has_b) return Error::InvalidArgument(std::string("missing required argument '") + a + "' or '" + b + "'");
  return has_a ? 0 : 1;
}

std::string DigestParam(std::string_view token) {
  auto d = TokenDigest(token);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

Result<std::string_view> TokenArg(const Args& args) {
  auto token = args.RequiredStrView("token");
  if (!token.ok()) return token;
  if (token->empty() || token->size() > kMaxTokenBytes) {
    return Error::InvalidArgument("'token' must be 1 to 1024 bytes");
  }
  return token;
}

Status AddExpiry(const Args& args, Command& cmd) {
  auto which = OneOf(args, "expires_at", "ttl_s");
  if (!which.ok()) return which.error();
  if (*which == 0) {
    auto at = args.Timestamp("expires_at");
    if (!at.ok()) return at.error();
    if (**at <= NowMicros()) return Error::InvalidArgument("'expires_at' is in the past");
    cmd.Add(std::to_string(**at)).AddNull();
  } else {
    auto ttl = args.Int("ttl_s");
    if (!ttl.ok()) return ttl.error();
    if (**ttl <= 0) return Error::InvalidArgument("'ttl_s' must be positive");
    if (**ttl > kMaxTtlS) return Error::InvalidArgument("'ttl_s' is more than 100 years");
    cmd.AddNull().Add(std::to_string(**ttl));
  }
  return {};
}

// ---- section 5, accounts (issue 19) ----

Status RenderUserNoHash(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such user");
  FieldColumns cols(r, UserFields());
  if (!cols.complete()) return MissingColumns("user");
  PackUser(pk, r, 0, cols, false);
  return {};
}

Status RenderExpiresAt(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::Internal("the statement returned no row");
  pk.pack_map(1);
  PackStr(pk, "expires_at");
  PackMicros(pk, r, 0, 0);
  return {};
}

namespace {

Error SizeError(std::string_view key, size_t min, size_t max) {
  return Error::InvalidArgument("'" + std::string(key) + "' must be " + std::to_string(min) + " to " +
                                std::to_string(max) + " bytes");
}

}  // namespace

Result<std::optional<std::string>> UserNameArg(const Args& args) {
  auto name = args.Str("name");
  if (!name.ok()) return name.error();
  if (*name && (*name)->size() > 255) return Error::InvalidArgument("'name' is longer than 255 bytes");
  return name;
}

Result<std::optional<std::string_view>> SizedStrArg(const Args& args, std::string_view key, size_t min, size_t max,
                                                    bool required) {
  auto s = args.StrView(key);
  if (!s.ok()) return s.error();
  if (!*s) {
    if (required) return Error::InvalidArgument("missing required argument '" + std::string(key) + "'");
    return s;
  }
  if ((*s)->size() < min || (*s)->size() > max) return SizeError(key, min, max);
  return s;
}

Result<std::optional<std::string_view>> BinArg(const Args& args, std::string_view key, size_t min, size_t max,
                                               bool required, bool str_ok) {
  const msgpack::object* o = args.Find(key);
  if (o == nullptr || o->type == msgpack::type::NIL) {
    if (required) return Error::InvalidArgument("missing required argument '" + std::string(key) + "'");
    return std::optional<std::string_view>();
  }
  std::string_view v;
  if (o->type == msgpack::type::BIN) {
    v = std::string_view(o->via.bin.ptr, o->via.bin.size);
  } else if (str_ok && o->type == msgpack::type::STR) {
    v = std::string_view(o->via.str.ptr, o->via.str.size);
  } else {
    return Error::BadRequest("'" + std::string(key) + "' must be " + (str_ok ? "binary or a string" : "binary") +
                             ", not " + MsgpackTypeName(*o));
  }
  if (v.size() < min || v.size() > max) return SizeError(key, min, max);
  return std::optional<std::string_view>(v);
}

Result<int64_t> TtlArg(const Args& args) {
  auto ttl = args.Int("ttl_s");
  if (!ttl.ok()) return ttl.error();
  if (!*ttl) return Error::InvalidArgument("missing required argument 'ttl_s'");
  if (**ttl <= 0) return Error::InvalidArgument("'ttl_s' must be positive");
  if (**ttl > kMaxTtlS) return Error::InvalidArgument("'ttl_s' is more than 100 years");
  return **ttl;
}

}  // namespace torii::daemon
