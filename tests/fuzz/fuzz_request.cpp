// libFuzzer target: torii::DecodeRequest on arbitrary bytes, as the daemon
// calls it on every request frame, then the argument getters on whatever
// decoded, and the reply encoders with the echoed id.
//
// Invariants checked beyond "no crash, no sanitizer report": an error reply
// always decodes as a msgpack map, and an id that was read is one complete
// msgpack value.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "torii/protocol.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void ExerciseArgs(const torii::Args& args) {
  for (const char* key : {"id", "email", "user_id", "token", "metadata", "expires_at", "ttl_s", "limit", "at"}) {
    (void)args.Str(key);
    (void)args.Int(key);
    (void)args.Uuid(key);
    (void)args.Timestamp(key);
    (void)args.Metadata(key);
    (void)args.RequiredEmail(key);
  }
  (void)args.OnlyKeys({"id", "email"});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Small limits as well as the defaults, so the limit paths are reached
  // by small inputs.
  torii::DecodeLimits small;
  small.max_depth = 4;
  small.max_array = 8;
  small.max_map = 8;
  small.max_str = 64;
  small.max_bin = 64;
  small.max_ext = 16;
  for (const auto& limits : {torii::DecodeLimits{}, small}) {
    torii::Request req;
    auto st = torii::DecodeRequest(reinterpret_cast<const char*>(data), size, limits, &req);
    if (!req.id_raw.empty()) {
      auto oh = torii::UnpackBounded(req.id_raw.data(), req.id_raw.size(), torii::DecodeLimits{});
      Check(oh.ok());
    }
    if (st.ok()) {
      ExerciseArgs(torii::Args(req.args));
      msgpack::sbuffer buf;
      torii::BeginOkReply(buf, req.id_raw);
      torii::Packer pk(buf);
      pk.pack_nil();
      auto reply = msgpack::unpack(buf.data(), buf.size());
      Check(reply.get().type == msgpack::type::MAP);
    } else {
      std::string reply = torii::EncodeErrorReply(req.id_raw, st.error());
      auto oh = msgpack::unpack(reply.data(), reply.size());
      Check(oh.get().type == msgpack::type::MAP);
    }
  }
  return 0;
}
