// Idle-connection footprint (see clients.h).
#include "clients.h"

#include <sys/resource.h>

#include <fstream>
#include <thread>

#include <zmq.hpp>

#include "common.h"
#include "torii/client.h"

namespace torii::bench {

long RssKiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

Result<nlohmann::json> RunIdleClients(const IdleClientsOptions& opt) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  long before = opt.pid > 0 ? RssKiB(opt.pid) : -1;
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, opt.clients + 64);
  std::vector<Client> clients;
  clients.reserve(size_t(opt.clients));
  ClientOptions co;
  co.endpoints = opt.endpoints;
  co.context = &ctx;
  co.hwm = 1000;
  co.default_timeout_ms = 30000;
  int64_t t0 = MonoNs();
  for (int i = 0; i < opt.clients; i++) {
    auto c = Client::Create(co);
    if (!c.ok()) return Error::Internal("client " + std::to_string(i) + ": " + c.error().ToString());
    if (opt.sessions > 0) {
      std::string token = BenchToken(uint64_t(i) % opt.sessions);
      c->Send("get_session", [&](Packer& pk) {
        pk.pack_map(1);
        pk.pack("token");
        pk.pack(token);
      });
    } else {
      c->Send("ping");
    }
    clients.push_back(std::move(*c));
  }
  uint64_t answered = 0, errors = 0;
  for (auto& c : clients) {
    c.Poll(30000);
    if (auto r = c.Receive()) (r->reply.ok() ? answered : errors)++;
  }
  double connect_s = double(MonoNs() - t0) / 1e9;
  std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(opt.hold_s * 1000)));
  long after = opt.pid > 0 ? RssKiB(opt.pid) : -1;
  return nlohmann::json{{"clients", opt.clients},   {"answered", answered},        {"errors", errors},  {"connect_s", connect_s},
                        {"rss_kib_before", before}, {"rss_kib_connected", after}};
}

}  // namespace torii::bench
