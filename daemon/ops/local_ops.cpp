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

}  // namespace

std::vector<LocalOpDef> LocalOps(LocalOpHooks hooks) {
  std::vector<LocalOpDef> ops;
  ops.push_back({"ping", [schema = hooks.schema_version](const Args&, LocalReply reply) { reply(PackPing(schema)); }});
  ops.push_back({"stats", [stats = hooks.stats](const Args&, LocalReply reply) { reply(stats()); }});
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
