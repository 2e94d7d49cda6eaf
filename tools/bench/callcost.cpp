// toriicallcost: the CPU a blocking call costs its caller, torii::Client
// against the simplest client a user of libzmq would write.
//
//   toriicallcost --endpoint tcp://HOST:PORT [--calls N] [--rounds R]
//
// Alternating rounds, in this one process: N pings through
// torii::Client::Call(), then N through a raw DEALER (an empty delimiter
// frame and a msgpack body sent, blocking receives, the reply unpacked and
// its id checked). Each round's CPU time (getrusage of the process: the
// caller's thread and libzmq's I/O thread) over its calls; prints one JSON
// object with the medians, in microseconds per call.
//
// Self-contained (only Client::Create and Client::Call of lib/torii), so the
// benchmark can also build it against an older lib/torii for a before and
// after in one run. Exit status: 0 success, 1 failure, 2 bad flags.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <zmq.hpp>

#include "torii/client.h"

namespace {

double CpuUs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One round of `calls` pings through torii::Client; CPU us per call, or a
// negative value if a call failed.
double LibRound(torii::Client& client, int calls) {
  double t0 = CpuUs();
  for (int i = 0; i < calls; i++) {
    if (!client.Call("ping", {}).ok()) return -1;
  }
  return (CpuUs() - t0) / calls;
}

// The same through a raw DEALER socket.
double RawRound(zmq::socket_t& s, int calls, uint64_t& next_id) {
  msgpack::sbuffer buf;
  double t0 = CpuUs();
  for (int i = 0; i < calls; i++) {
    uint64_t id = next_id++;
    buf.clear();
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(4);
    pk.pack("v");
    pk.pack(1);
    pk.pack("id");
    pk.pack(id);
    pk.pack("op");
    pk.pack("ping");
    pk.pack("args");
    pk.pack_map(0);
    s.send(zmq::const_buffer("", 0), zmq::send_flags::sndmore);
    s.send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
    zmq::message_t m;
    do {
      if (!s.recv(m, zmq::recv_flags::none)) return -1;
    } while (m.more());
    msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(m.data()), m.size());
    const msgpack::object& o = oh.get();
    bool ok = false, ours = false;
    if (o.type == msgpack::type::MAP) {
      for (uint32_t k = 0; k < o.via.map.size; k++) {
        const auto& kv = o.via.map.ptr[k];
        if (kv.key.type != msgpack::type::STR) continue;
        std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
        if (key == "id") ours = kv.val.type == msgpack::type::POSITIVE_INTEGER && kv.val.via.u64 == id;
        if (key == "ok") ok = kv.val.type == msgpack::type::BOOLEAN && kv.val.via.boolean;
      }
    }
    if (!ok || !ours) return -1;
  }
  return (CpuUs() - t0) / calls;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint;
  int calls = 20000, rounds = 5;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 < argc && a == "--endpoint") {
      endpoint = argv[++i];
    } else if (i + 1 < argc && a == "--calls") {
      calls = std::atoi(argv[++i]);
    } else if (i + 1 < argc && a == "--rounds") {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: toriicallcost --endpoint EP [--calls N] [--rounds R]\n");
      return 2;
    }
  }
  if (endpoint.empty() || calls <= 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: toriicallcost --endpoint EP [--calls N] [--rounds R]\n");
    return 2;
  }
  torii::ClientOptions opt;
  opt.endpoints = {endpoint};
  auto client = torii::Client::Create(opt);
  if (!client.ok()) {
    std::fprintf(stderr, "toriicallcost: %s\n", client.error().ToString().c_str());
    return 1;
  }
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(endpoint);
  uint64_t next_id = 1;
  // Warm both up (connection, first allocations), then alternate.
  if (LibRound(*client, std::min(calls, 1000)) < 0 || RawRound(raw, std::min(calls, 1000), next_id) < 0) {
    std::fprintf(stderr, "toriicallcost: a warm-up ping failed\n");
    return 1;
  }
  std::vector<double> lib, plain;
  for (int r = 0; r < rounds; r++) {
    double l = LibRound(*client, calls);
    double p = RawRound(raw, calls, next_id);
    if (l < 0 || p < 0) {
      std::fprintf(stderr, "toriicallcost: a ping failed\n");
      return 1;
    }
    lib.push_back(l);
    plain.push_back(p);
  }
  std::printf("{\"calls\": %d, \"rounds\": %d, \"lib_us\": %.2f, \"raw_us\": %.2f}\n", calls, rounds, Median(lib),
              Median(plain));
  return 0;
}
