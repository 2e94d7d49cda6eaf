// The daemon's own operations: argument checks and reply bodies.
#include "ops/local_ops.h"

namespace torii::daemon {

namespace {

std::string PackPing(uint64_t schema_version) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(3);
  PackStr(pk, "version");
  PackStr(pk, TORII_VERSION);
  PackStr(pk, "protocol");
  pk.pack_uint64(1);
  PackStr(pk, "schema");  // lets a client check the schema without SQL
  pk.pack_uint64(schema_version);
  return std::string(buf.data(), buf.size());
}

std::string PackDeleted(uint64_t n) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(n);
  return std::string(buf.data(), buf.size());
}

// The map `base` with one more key, `key`, whose value is the packed `value`.
std::string WithKey(const std::string& base, std::string_view key, const std::string& value) {
  msgpack::object_handle h = msgpack::unpack(base.data(), base.size());
  const msgpack::object& m = h.get();
  if (m.type != msgpack::type::MAP) return base;
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(m.via.map.size + 1);
  for (uint32_t i = 0; i < m.via.map.size; i++) {
    pk.pack(m.via.map.ptr[i].key);
    pk.pack(m.via.map.ptr[i].val);
  }
  PackStr(pk, key);
  buf.write(value.data(), value.size());
  return std::string(buf.data(), buf.size());
}

}  // namespace

std::vector<LocalOpDef> LocalOps(LocalOpHooks hooks) {
  std::vector<LocalOpDef> ops;
  ops.push_back({"ping", [schema = hooks.schema_version](const Args&, LocalReply reply) { reply(PackPing(schema)); }});
  ops.push_back({"stats", [stats = hooks.stats, tenants = hooks.tenants](const Args&, LocalReply reply) {
                   if (!tenants) {
                     reply(stats());
                     return;
                   }
                   // The counters are read once the tenants' counts are in.
                   tenants([stats, reply = std::move(reply)](Result<std::string> t) {
                     reply(t.ok() ? WithKey(stats(), "tenants", *t) : stats());
                   });
                 }});
  ops.push_back({"cleanup_expired_sessions", [cleanup = hooks.cleanup](const Args& args, LocalReply reply) {
                   if (auto st = args.OnlyKeys({}); !st.ok()) {
                     reply(st.error());
                     return;
                   }
                   cleanup([reply = std::move(reply)](Result<uint64_t> n) {
                     if (!n.ok()) {
                       reply(n.error());
                       return;
                     }
                     reply(PackDeleted(*n));
                   });
                 }});
  return ops;
}

}  // namespace torii::daemon
