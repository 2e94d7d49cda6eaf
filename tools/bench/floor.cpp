// A bare libzmq ROUTER server (see floor.h).
#include "floor.h"

#include <csignal>
#include <cstdio>
#include <ctime>

#include <msgpack.hpp>
#include <zmq.hpp>

#include "common.h"
#include "torii/protocol.h"

namespace torii::bench {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// A session of the benchmark's data set (loader.cpp's row for session 0),
// as toriid packs it (daemon/ops/ops_sessions.cpp, kSessionFields).
std::string PackedSession() {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  const int64_t now_us = static_cast<int64_t>(time(nullptr)) * 1000000;
  pk.pack_map(7);
  pk.pack("id");
  pk.pack(BenchSessionId(0));
  pk.pack("user_id");
  pk.pack(BenchUserId(0));
  pk.pack("expires_at");
  pk.pack(now_us + int64_t{30} * 86400 * 1000000);
  pk.pack("user_agent");
  pk.pack("bench/1.0");
  pk.pack("ip_address");
  pk.pack("127.0.0.1");
  pk.pack("metadata");
  pk.pack_map(0);
  pk.pack("created_at");
  pk.pack(now_us);
  return std::string(b.data(), b.size());
}

}  // namespace

Status RunFloorServer(const std::vector<std::string>& endpoints, bool session_reply) {
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
    const std::string session = session_reply ? PackedSession() : std::string();
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
      if (session_reply) {
        buf.write(session.data(), session.size());
      } else {
        pk.pack_map(2);
        pk.pack("version");
        pk.pack("floor");
        pk.pack("protocol");
        pk.pack(1);
      }
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
