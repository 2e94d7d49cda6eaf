// A bare libzmq ROUTER server (see floor.h).
#include "floor.h"

#include <csignal>
#include <cstdio>

#include <msgpack.hpp>
#include <zmq.hpp>

#include "torii/protocol.h"

namespace torii::bench {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

}  // namespace

Status RunFloorServer(const std::vector<std::string>& endpoints) {
  struct sigaction sa{};
  sa.sa_handler = OnSignal;  // no SA_RESTART: the blocking receive returns EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  try {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::router);
    s.set(zmq::sockopt::linger, 0);
    for (const auto& ep : endpoints) s.bind(ep);
    std::fprintf(stderr, "toriibench floor: serving\n");
    msgpack::sbuffer buf;
    zmq::message_t peer, delim, body;
    while (g_stop == 0) {
      // [peer, empty delimiter, body] from a DEALER that sends ["", body].
      try {
        if (!s.recv(peer)) continue;
        if (!peer.more() || !s.recv(delim) || !delim.more() || !s.recv(body)) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      // More frames than a request has: read the message to its end.
      while (body.more() && s.recv(body)) {
      }
      uint64_t id = 0;
      try {
        msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(body.data()), body.size());
        const msgpack::object* v = FindMapValue(oh.get(), "id");
        if (v != nullptr && v->type == msgpack::type::POSITIVE_INTEGER) id = v->via.u64;
      } catch (const std::exception&) {
        continue;
      }
      buf.clear();
      msgpack::packer<msgpack::sbuffer> pk(buf);
      pk.pack_map(3);
      pk.pack("id");
      pk.pack(id);
      pk.pack("ok");
      pk.pack(true);
      pk.pack("result");
      pk.pack_map(2);
      pk.pack("version");
      pk.pack("floor");
      pk.pack("protocol");
      pk.pack(1);
      s.send(peer, zmq::send_flags::sndmore);
      s.send(delim, zmq::send_flags::sndmore);
      s.send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    return Error::Internal(std::string("floor server: ") + e.what());
  }
  return {};
}

}  // namespace torii::bench
