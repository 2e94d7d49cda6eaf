// Load generator (see loadgen.h). A few threads, each driving its share of
// the connections (one Client each: a Client belongs to one thread) and
// waiting on all of their sockets at once, as pgbench -j does.
#include "loadgen.h"

#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <sstream>
#include <unordered_map>

#include <zmq.hpp>

#include "torii/client.h"

namespace torii::bench {

namespace {

constexpr int64_t kMs = 1000000;

struct Shared {
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<bool> stop{false};
  // Samples count when their intended send time is in [window_start, window_end).
  std::atomic<int64_t> window_start{0};
  std::atomic<int64_t> window_end{INT64_MAX};
};

struct ThreadResult {
  std::vector<int64_t> lat, sent;  // latency and intended send time of each measured reply
  uint64_t ok = 0, errors = 0;
  std::map<std::string, uint64_t> codes;
  std::string fatal;
};

// Counts a reply to a request intended at t0 and answered at now: in the
// totals, and in `out` when t0 is in the measured window.
void CountReply(Shared& sh, ThreadResult& out, int64_t t0, int64_t now, bool ok, std::string_view code) {
  bool counted = t0 >= sh.window_start.load(std::memory_order_relaxed) &&
                 t0 < sh.window_end.load(std::memory_order_relaxed);
  if (ok) {
    sh.completed.fetch_add(1, std::memory_order_relaxed);
    if (counted) {
      out.ok++;
      out.lat.push_back(now - t0);
      out.sent.push_back(t0);
    }
  } else {
    sh.failed.fetch_add(1, std::memory_order_relaxed);
    if (counted) {
      out.errors++;
      out.codes[std::string(code)]++;
    }
  }
}

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// One request's operation and its key, drawn from the options' key space.
struct Draw {
  OpKind op;
  std::string key;
};

Draw DrawOp(OpKind op, uint64_t& rng, const LoadGenOptions& opt) {
  if (op == OpKind::kMix) op = SplitMix(rng) % 10 == 0 ? OpKind::kCreateSession : OpKind::kGetSession;
  switch (op) {
    case OpKind::kGetSession: return {op, BenchToken(SplitMix(rng) % std::max<uint64_t>(opt.sessions, 1))};
    case OpKind::kCreateSession: return {op, BenchUserId(SplitMix(rng) % std::max<uint64_t>(opt.users, 1))};
    case OpKind::kGetUserByEmail: return {op, BenchEmail(SplitMix(rng) % std::max<uint64_t>(opt.users, 1))};
    default: return {OpKind::kPing, {}};
  }
}

void PackArgs(const Draw& d, Packer& pk) {
  switch (d.op) {
    case OpKind::kGetSession:
      pk.pack_map(1);
      pk.pack("token");
      pk.pack(d.key);
      break;
    case OpKind::kCreateSession:
      pk.pack_map(2);
      pk.pack("user_id");
      pk.pack(d.key);
      pk.pack("ttl_s");
      pk.pack(3600);
      break;
    case OpKind::kGetUserByEmail:
      pk.pack_map(1);
      pk.pack("email");
      pk.pack(d.key);
      break;
    default:
      pk.pack_map(0);
  }
}

uint64_t SendOne(Client& cl, OpKind op, uint64_t& rng, const LoadGenOptions& opt, const CallOptions& co) {
  Draw d = DrawOp(op, rng, opt);
  if (d.op == OpKind::kPing) return cl.Send("ping", {}, co);
  return cl.Send(OpKindName(d.op), [&](Packer& pk) { PackArgs(d, pk); }, co);
}

// One connection's state, driven by the thread that owns it.
struct Conn {
  std::optional<Client> cl;
  std::unordered_map<uint64_t, int64_t> intended;  // id -> intended send time
  uint64_t rng = 0;
  int64_t next = 0;  // fixed rate: the next intended send time
};

// An epoll instance for one worker thread, closed when the thread is done
// with it (fd < 0 if it could not be made: errno says why).
struct Epoll {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  Epoll() = default;
  Epoll(const Epoll&) = delete;
  Epoll& operator=(const Epoll&) = delete;
  ~Epoll() {
    if (fd >= 0) close(fd);
  }
};

// Drives connections [first, last) from one thread: sends what is due,
// waits on all of their ZMQ_FDs at once with epoll (microsecond timeouts),
// reads the replies. zmq_poll would ask every socket for ZMQ_EVENTS twice
// per wait, two system calls each: more than the requests themselves cost.
void Worker(int first, int last, const LoadGenOptions& opt, zmq::context_t& ctx, Shared& sh, int64_t start_ns,
            ThreadResult& out) {
  std::vector<Conn> conns(size_t(last - first));
  const bool fixed = opt.rate > 0;
  const int64_t interval = fixed ? int64_t(1e9 * opt.connections / opt.rate) : 0;
  const size_t cap = fixed ? size_t(std::max(opt.depth, 1000)) : size_t(std::max(opt.depth, 1));
  const int64_t tick_ns = int64_t(opt.tick_us) * 1000;
  Epoll epoll;
  if (epoll.fd < 0) {
    out.fatal = std::string("epoll_create1: ") + std::strerror(errno);
    return;
  }
  const int ep = epoll.fd;
  for (int i = first; i < last; i++) {
    ClientOptions co;
    co.endpoints = opt.endpoints;
    co.default_timeout_ms = opt.timeout_ms;
    co.context = &ctx;
    auto created = Client::Create(co);
    if (!created.ok()) {
      out.fatal = created.error().ToString();
      return;
    }
    Conn& c = conns[size_t(i - first)];
    c.cl.emplace(std::move(*created));
    c.rng = opt.seed * 7919 + uint64_t(i) * 104729;
    c.intended.reserve(cap * 2);
    // Stagger the connections' schedules so they do not all fire together.
    c.next = start_ns + (fixed ? interval * i / opt.connections : 0);
    int fd = -1;
    size_t len = sizeof(fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = uint32_t(i - first);
    if (zmq_getsockopt(c.cl->socket_handle(), ZMQ_FD, &fd, &len) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      out.fatal = std::string("cannot watch the socket: ") + std::strerror(errno);
      return;
    }
  }
  out.lat.reserve(1 << 16);
  out.sent.reserve(1 << 16);
  CallOptions call;
  call.timeout_ms = opt.timeout_ms;

  // Reads every reply the connection has, until ZeroMQ says none is left.
  // Client::Poll(0) receives until a receive would block, which re-arms
  // ZMQ_FD (libzmq processes its pending commands first), so no ZMQ_EVENTS
  // query is needed after it: that would be a poll() and a getpid() more.
  auto drain = [&](Conn& c) {
    c.cl->Poll(0);
    while (auto done = c.cl->Receive()) {
      int64_t now = MonoNs();
      auto it = c.intended.find(done->id);
      if (it == c.intended.end()) continue;
      int64_t t0 = it->second;
      c.intended.erase(it);
      CountReply(sh, out, t0, now, done->reply.ok(),
                 done->reply.ok() ? std::string_view() : CodeName(done->reply.error().code()));
    }
  };

  std::vector<epoll_event> fired(conns.size());
  int64_t sweep_at = MonoNs() + 50 * kMs;
  while (!sh.stop.load(std::memory_order_relaxed)) {
    int64_t now = MonoNs();
    int64_t due = now + 50 * kMs;
    for (Conn& c : conns) {
      size_t before = c.intended.size();
      if (!fixed) {
        while (c.intended.size() < cap) c.intended.emplace(SendOne(*c.cl, opt.op, c.rng, opt, call), MonoNs());
      } else {
        while (c.next <= now && c.intended.size() < cap) {
          c.intended.emplace(SendOne(*c.cl, opt.op, c.rng, opt, call), c.next);
          c.next += interval;
        }
        due = std::min(due, c.next);
      }
      // Sending may have taken the signal of a reply that came meanwhile
      // (ZeroMQ processes its commands then), so read before waiting.
      if (c.intended.size() != before) drain(c);
    }
    // Fixed rate: what falls due within one tick goes out together (its
    // latency still counts from its own intended time).
    int64_t wait_ns = std::max<int64_t>(fixed ? tick_ns - (MonoNs() - now) : 0, due - MonoNs());
    wait_ns = std::max<int64_t>(0, wait_ns);
    timespec ts{time_t(wait_ns / 1000000000), long(wait_ns % 1000000000)};
    int n = epoll_pwait2(ep, fired.data(), int(fired.size()), &ts, nullptr);
    for (int k = 0; k < n; k++) drain(conns[fired[size_t(k)].data.u32]);
    // Now and then every client, so that local deadlines expire even on a
    // connection that went silent.
    if (MonoNs() >= sweep_at) {
      for (Conn& c : conns) drain(c);
      sweep_at = MonoNs() + 50 * kMs;
    }
  }
  // Let the requests in flight finish so that the window's last samples
  // are not lost (they are the slowest ones in a stall).
  int64_t deadline = MonoNs() + (opt.timeout_ms + 1000) * kMs;
  for (;;) {
    size_t left = 0;
    for (Conn& c : conns) left += c.cl->in_flight();
    if (left == 0 || MonoNs() >= deadline) break;
    timespec ts{0, 10 * 1000000};
    epoll_pwait2(ep, fired.data(), int(fired.size()), &ts, nullptr);
    for (Conn& c : conns) drain(c);
  }
}

// A request body as the plain client packs it: {op, id, timeout_ms, args}.
void PackPlainRequest(msgpack::sbuffer& buf, const Draw& d, uint64_t id, int64_t timeout_ms,
                      const std::string& tenant) {
  buf.clear();
  Packer pk(buf);
  pk.pack_map(tenant.empty() ? 4 : 5);
  if (!tenant.empty()) {
    pk.pack("tenant");
    pk.pack(tenant);
  }
  pk.pack("op");
  pk.pack(OpKindName(d.op));
  pk.pack("id");
  pk.pack(id);
  pk.pack("timeout_ms");
  pk.pack(timeout_ms);
  pk.pack("args");
  PackArgs(d, pk);
}

// The plain-client worker: what a user without torii::Client writes. One
// DEALER socket per connection; a request is an empty delimiter frame and
// a msgpack map {op, id, args, timeout_ms}; the reply is decoded with
// msgpack::unpack and matched by id. The thread waits on all of its
// sockets' ZMQ_FDs with epoll (as Worker does: zmq_poll over a thousand
// sockets would ask each for ZMQ_EVENTS at every wait), and reads a socket
// until a receive would block, which re-arms its ZMQ_FD.
void PlainWorker(int first, int last, const LoadGenOptions& opt, zmq::context_t& ctx, Shared& sh, int64_t start_ns,
                 ThreadResult& out) {
  struct PConn {
    zmq::socket_t s;
    std::unordered_map<uint64_t, int64_t> sent;  // id -> send time
    uint64_t rng = 0;
    uint64_t next_id = 1;
  };
  std::vector<PConn> conns;
  conns.reserve(size_t(last - first));
  Epoll epoll;
  if (epoll.fd < 0) {
    out.fatal = std::string("epoll_create1: ") + std::strerror(errno);
    return;
  }
  const int ep = epoll.fd;
  try {
    for (int i = first; i < last; i++) {
      PConn c;
      c.s = zmq::socket_t(ctx, zmq::socket_type::dealer);
      c.s.set(zmq::sockopt::linger, 0);
      for (const auto& e : opt.endpoints) c.s.connect(e);
      c.rng = opt.seed * 7919 + uint64_t(i) * 104729;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = uint32_t(i - first);
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c.s.get(zmq::sockopt::fd), &ev) != 0) {
        out.fatal = std::string("cannot watch the socket: ") + std::strerror(errno);
        return;
      }
      conns.push_back(std::move(c));
    }
  } catch (const zmq::error_t& e) {
    out.fatal = std::string("plain client: ") + e.what();
    return;
  }
  while (MonoNs() < start_ns) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const size_t cap = size_t(std::max(opt.depth, 1));
  msgpack::sbuffer buf;
  auto send = [&](PConn& c) {
    uint64_t id = c.next_id++;
    PackPlainRequest(buf, DrawOp(opt.op, c.rng, opt), id, opt.timeout_ms, opt.tenant);
    c.s.send(zmq::const_buffer("", 0), zmq::send_flags::sndmore);
    c.s.send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
    c.sent.emplace(id, MonoNs());
  };
  auto on_reply = [&](PConn& c, const zmq::message_t& body) {
    int64_t now = MonoNs();
    uint64_t id = 0;
    bool ok = false;
    std::string code = "undecodable";
    try {
      msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(body.data()), body.size());
      ReadReplyFields(oh.get(), &id, &ok, &code);
    } catch (const std::exception&) {
    }
    auto it = c.sent.find(id);
    if (it == c.sent.end()) return;
    int64_t t0 = it->second;
    c.sent.erase(it);
    CountReply(sh, out, t0, now, ok, code);
  };
  // Reads until a receive would block (that re-arms ZMQ_FD); true when a
  // reply came, so the connection has room to send again.
  auto drain = [&](PConn& c) {
    zmq::message_t m;
    bool any = false;
    while (c.s.recv(m, zmq::recv_flags::dontwait)) {
      if (m.more()) continue;  // the empty delimiter
      on_reply(c, m);
      any = true;
    }
    return any;
  };
  // Connections with room for more requests: all of them at first, then
  // those whose replies came.
  std::vector<uint32_t> refill, next_refill;
  for (uint32_t k = 0; k < conns.size(); k++) refill.push_back(k);
  std::vector<epoll_event> fired(std::max<size_t>(conns.size(), 1));
  out.lat.reserve(1 << 16);
  out.sent.reserve(1 << 16);
  try {
    int64_t sweep_at = MonoNs() + 50 * kMs;
    while (!sh.stop.load(std::memory_order_relaxed)) {
      while (!refill.empty()) {
        next_refill.clear();
        for (uint32_t k : refill) {
          PConn& c = conns[k];
          while (c.sent.size() < cap) send(c);
          // Sending may have taken the signal of a reply that came
          // meanwhile (ZeroMQ processes its commands then): read first.
          if (drain(c)) next_refill.push_back(k);
        }
        refill.swap(next_refill);
      }
      timespec ts{0, 50 * 1000000};
      int n = epoll_pwait2(ep, fired.data(), int(fired.size()), &ts, nullptr);
      for (int i = 0; i < n; i++) {
        uint32_t k = fired[size_t(i)].data.u32;
        if (drain(conns[k])) refill.push_back(k);
      }
      if (MonoNs() >= sweep_at) {  // a signal taken by a send without a reply to read yet
        for (uint32_t k = 0; k < conns.size(); k++) {
          if (drain(conns[k]) || conns[k].sent.size() < cap) refill.push_back(k);
        }
        sweep_at = MonoNs() + 50 * kMs;
      }
    }
    int64_t deadline = MonoNs() + (opt.timeout_ms + 1000) * kMs;
    for (;;) {
      size_t left = 0;
      for (PConn& c : conns) left += c.sent.size();
      if (left == 0 || MonoNs() >= deadline) break;
      timespec ts{0, 10 * 1000000};
      epoll_pwait2(ep, fired.data(), int(fired.size()), &ts, nullptr);
      for (PConn& c : conns) drain(c);
    }
  } catch (const zmq::error_t& e) {
    out.fatal = std::string("plain client: ") + e.what();
  }
}

// The disturbances of LoadGenOptions (slow clients, a storm) on one thread
// from `start_ns` until `sh.stop`, on a ZeroMQ context of their own: other
// clients of the daemon, not sharing the measured connections' I/O thread
// (whose handshakes would otherwise delay the measured replies here).
void Disturber(const LoadGenOptions& opt, Shared& sh, int64_t start_ns, int64_t window_ns, DisturbReport& rep,
               std::string& fatal) {
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, 65536);
  rep.slow_clients = opt.slow_clients;
  rep.storm_clients = opt.storm_clients;
  msgpack::sbuffer buf;
  uint64_t rng = opt.seed * 31337;
  uint64_t next_id = 1;
  auto send = [&](zmq::socket_t& s, OpKind op, uint64_t id) {
    PackPlainRequest(buf, DrawOp(op, rng, opt), id, opt.timeout_ms, opt.tenant);
    if (!s.send(zmq::const_buffer("", 0), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    s.send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
    return true;
  };
  try {
    std::vector<zmq::socket_t> slow;
    for (int i = 0; i < opt.slow_clients; i++) {
      zmq::socket_t s(ctx, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::rcvhwm, 1);
      s.set(zmq::sockopt::rcvbuf, 4096);
      for (const auto& e : opt.endpoints) s.connect(e);
      slow.push_back(std::move(s));
    }
    struct Storm {
      zmq::socket_t s;
      int64_t sent_at = 0;
      bool done = false;
    };
    std::vector<Storm> storm;
    storm.reserve(size_t(std::max(opt.storm_clients, 0)));
    std::vector<int64_t> storm_lat;
    while (MonoNs() < start_ns) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (auto& s : slow) {
      for (int k = 0; k < opt.slow_burst; k++) rep.slow_sent += send(s, OpKind::kGetSession, next_id++) ? 1 : 0;
    }
    const int64_t slow_every = opt.slow_rate > 0 ? int64_t(1e9 / opt.slow_rate) : INT64_MAX;
    int64_t slow_next = MonoNs() + slow_every;
    int64_t storm_first = 0, storm_last_reply = 0;
    size_t storm_left = 0;
    std::vector<zmq_pollitem_t> items;
    while (!sh.stop.load(std::memory_order_relaxed)) {
      int64_t now = MonoNs();
      if (!slow.empty() && now >= slow_next) {
        for (auto& s : slow) rep.slow_sent += send(s, OpKind::kGetSession, next_id++) ? 1 : 0;
        slow_next += slow_every;
      }
      // The storm's sockets: the i-th connects at window + i * storm_ms / n.
      while (int(storm.size()) < opt.storm_clients &&
             now >= window_ns + int64_t(opt.storm_ms) * kMs * int64_t(storm.size()) / opt.storm_clients) {
        Storm st{zmq::socket_t(ctx, zmq::socket_type::dealer)};
        st.s.set(zmq::sockopt::linger, 0);
        for (const auto& e : opt.endpoints) st.s.connect(e);
        st.sent_at = MonoNs();
        if (storm.empty()) storm_first = st.sent_at;
        send(st.s, opt.op, 1);
        storm.push_back(std::move(st));
        storm_left++;
        items.push_back({storm.back().s.handle(), 0, ZMQ_POLLIN, 0});
        for (size_t k = 0; k < storm.size(); k++) items[k].socket = storm[k].s.handle();  // moved on growth
      }
      if (storm_left > 0) {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(1));
        for (size_t k = 0; k < items.size(); k++) {
          if (!(items[k].revents & ZMQ_POLLIN) || storm[k].done) continue;
          zmq::message_t m;
          while (storm[k].s.recv(m, zmq::recv_flags::dontwait)) {
            if (m.more()) continue;
            uint64_t id = 0;
            bool ok = false;
            std::string code;
            try {
              msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(m.data()), m.size());
              ReadReplyFields(oh.get(), &id, &ok, &code);
            } catch (const std::exception&) {
            }
            int64_t t = MonoNs();
            storm[k].done = true;
            storm_left--;
            storm_last_reply = t;
            (ok ? rep.storm_ok : rep.storm_errors)++;
            storm_lat.push_back(t - storm[k].sent_at);
          }
        }
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    rep.storm_unanswered = storm_left + size_t(opt.storm_clients - int(storm.size()));
    if (!storm.empty()) {
      rep.storm_all_served_ms = double((storm_left == 0 ? storm_last_reply : MonoNs()) - storm_first) / 1e6;
    }
    rep.storm_latency = Summarize(storm_lat);
  } catch (const zmq::error_t& e) {
    fatal = std::string("disturbance: ") + e.what();
  }
}

// utime + stime in microseconds from one line of /proc/PID/stat (or of a
// thread's /proc/PID/task/TID/stat), plus cutime + cstime (the CPU of its
// children that have exited and been waited for) with `reaped`; -1 if it
// cannot be read.
int64_t StatCpuUs(const std::string& line, bool reaped = false) {
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  uint64_t ticks = 0;
  for (int i = 3; i <= 17 && rest >> field; i++) {
    if (i == 14 || i == 15 || (reaped && (i == 16 || i == 17))) ticks += std::stoull(field);
  }
  return int64_t(ticks * 1000000 / uint64_t(sysconf(_SC_CLK_TCK)));
}

// utime + stime of a process in microseconds (/proc/PID/stat), with its
// reaped children's (see StatCpuUs); -1 if gone.
int64_t ProcCpuUs(int pid, bool reaped = false) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  return StatCpuUs(line, reaped);
}

// CPU microseconds of each thread of a process so far, by thread name
// (/proc/PID/task/TID/stat; the first thread is "main"). Threads of the same
// name add up.
std::map<std::string, int64_t> ThreadCpuUs(int pid) {
  std::map<std::string, int64_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    int tid = std::atoi(e->d_name);
    if (tid <= 0) continue;
    std::ifstream f(dir + "/" + e->d_name + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    size_t open = line.find('('), close = line.rfind(')');
    int64_t us = StatCpuUs(line);
    if (open == std::string::npos || close < open || us < 0) continue;
    out[tid == pid ? "main" : line.substr(open + 1, close - open - 1)] += us;
  }
  closedir(d);
  return out;
}

int ProcParent(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string state;
  int ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// Per process, its CPU so far; children of `tree` roots are found again at
// every sample (backends come and go), and counted from when first seen.
struct CpuSample {
  std::map<int, int64_t> by_pid;
};

CpuSample SampleCpu(const std::vector<int>& pids, const std::vector<int>& trees) {
  CpuSample s;
  for (int p : pids) s.by_pid[p] = ProcCpuUs(p);
  if (!trees.empty()) {
    // A tree's root with the CPU of its children that exited: a child that
    // ends within the window (a backend whose client left) moves its CPU
    // from the children's sum into the root's (the postmaster reaps it at
    // once), so the total neither drops nor loses it.
    for (int p : trees) s.by_pid[p] = ProcCpuUs(p, true);
    if (DIR* d = opendir("/proc")) {
      while (dirent* e = readdir(d)) {
        int pid = std::atoi(e->d_name);
        if (pid <= 0) continue;
        int parent = ProcParent(pid);
        if (std::find(trees.begin(), trees.end(), parent) != trees.end()) s.by_pid[pid] = ProcCpuUs(pid);
      }
      closedir(d);
    }
  }
  return s;
}

// CPU microseconds the processes of `roots` (and, for trees, the children)
// used between two samples.
int64_t CpuBetween(const CpuSample& a, const CpuSample& b, const std::vector<int>& pids, const std::vector<int>& trees) {
  int64_t sum = 0;
  for (const auto& [pid, us1] : b.by_pid) {
    bool mine = std::find(pids.begin(), pids.end(), pid) != pids.end() ||
                std::find(trees.begin(), trees.end(), pid) != trees.end();
    if (!mine && !trees.empty()) mine = std::find(trees.begin(), trees.end(), ProcParent(pid)) != trees.end();
    if (!mine || us1 < 0) continue;
    auto it = a.by_pid.find(pid);
    int64_t us0 = it != a.by_pid.end() && it->second >= 0 ? it->second : 0;
    sum += us1 - us0;
  }
  // A tree's child gone since the first sample: its whole CPU is in its
  // root's reaped children's now, so what it had used before the window
  // comes off.
  for (const auto& [pid, us0] : a.by_pid) {
    bool root = std::find(pids.begin(), pids.end(), pid) != pids.end() ||
                std::find(trees.begin(), trees.end(), pid) != trees.end();
    auto it = b.by_pid.find(pid);
    if (!root && us0 > 0 && (it == b.by_pid.end() || it->second < 0)) sum -= us0;
  }
  return sum;
}

int64_t SelfCpuUs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

}  // namespace

Result<OpKind> ParseOpKind(const std::string& s) {
  if (s == "get_session") return OpKind::kGetSession;
  if (s == "create_session") return OpKind::kCreateSession;
  if (s == "mix") return OpKind::kMix;
  if (s == "get_user_by_email") return OpKind::kGetUserByEmail;
  if (s == "ping") return OpKind::kPing;
  return Error::InvalidArgument("unknown op '" + s +
                                "' (get_session, create_session, mix, get_user_by_email, ping)");
}

const char* OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kGetSession: return "get_session";
    case OpKind::kCreateSession: return "create_session";
    case OpKind::kMix: return "mix";
    case OpKind::kGetUserByEmail: return "get_user_by_email";
    case OpKind::kPing: return "ping";
  }
  return "?";
}

nlohmann::json DisturbReport::ToJson() const {
  return {{"slow_clients", slow_clients},       {"slow_sent", slow_sent},
          {"storm_clients", storm_clients},     {"storm_ok", storm_ok},
          {"storm_errors", storm_errors},       {"storm_unanswered", storm_unanswered},
          {"storm_all_served_ms", storm_all_served_ms}, {"storm_latency", storm_latency.ToJson()}};
}

nlohmann::json LoadGenReport::ToJson() const {
  nlohmann::json j = {{"op", OpKindName(op)},   {"connections", connections}, {"threads", threads}, {"depth", depth},
                      {"rate", rate},           {"seconds", seconds},         {"ok", ok},
                      {"errors", errors},       {"error_codes", error_codes}, {"throughput", throughput},
                      {"latency", latency.ToJson()}, {"tail", tail.ToJson()}};
  j["client"] = plain ? "plain" : "torii::Client";
  if (disturb.slow_clients > 0 || disturb.storm_clients > 0) j["disturb"] = disturb.ToJson();
  if (!cpu_us_per_reply.empty()) j["cpu_us_per_reply"] = cpu_us_per_reply;
  if (!cpu_us_per_reply_by_thread.empty()) j["cpu_us_per_reply_by_thread"] = cpu_us_per_reply_by_thread;
  if (cleanup_s > 0) {
    j["cleanup_s"] = cleanup_s;
    j["cleanup_deleted"] = cleanup_deleted;
  }
  return j;
}

Result<LoadGenReport> RunLoad(const LoadGenOptions& opt) {
  if (opt.endpoints.empty()) return Error::InvalidArgument("no endpoint");
  if (opt.connections < 1 || opt.depth < 1) return Error::InvalidArgument("connections and depth must be >= 1");
  if (!opt.tenant.empty() && !opt.plain) {
    return Error::InvalidArgument("--tenant needs the plain client (--plain)");
  }
  if (opt.plain && (opt.rate > 0 || opt.cleanup)) {
    return Error::InvalidArgument("the plain client runs at max rate only (no --rate, no --cleanup)");
  }
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;  // a socket per connection, and libzmq's own
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, 65536);
  Shared sh;
  const int64_t start = MonoNs() + 50 * kMs;  // time for every thread to connect
  const int64_t warm_end = start + int64_t(opt.warmup_s * 1e9);
  const int64_t min_end = warm_end + int64_t(opt.duration_s * 1e9);
  sh.window_start = warm_end;
  sh.window_end = opt.cleanup ? INT64_MAX : min_end;

  const int nthreads = std::clamp(opt.threads, 1, opt.connections);
  std::vector<ThreadResult> results(static_cast<size_t>(nthreads));
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; t++) {
    int first = int(int64_t(opt.connections) * t / nthreads), last = int(int64_t(opt.connections) * (t + 1) / nthreads);
    threads.emplace_back(opt.plain ? PlainWorker : Worker, first, last, std::cref(opt), std::ref(ctx), std::ref(sh), start, std::ref(results[t]));
  }

  DisturbReport disturb;
  std::string disturb_fatal;
  std::thread disturber;
  if (opt.slow_clients > 0 || opt.storm_clients > 0) {
    disturber = std::thread(Disturber, std::cref(opt), std::ref(sh), start, warm_end, std::ref(disturb),
                            std::ref(disturb_fatal));
  }

  // Cleanup mode: one more connection runs the cleanup after the warm-up.
  std::atomic<bool> cleanup_done{!opt.cleanup};
  std::atomic<int64_t> cleanup_t0{0}, cleanup_t1{0};
  std::atomic<uint64_t> deleted{0};
  std::string cleanup_error;
  std::thread cleaner;
  if (opt.cleanup) {
    cleaner = std::thread([&] {
      while (MonoNs() < warm_end) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ClientOptions co;
      co.endpoints = opt.endpoints;
      co.context = &ctx;
      auto cl = Client::Create(co);
      cleanup_t0 = MonoNs();
      sh.window_start = cleanup_t0.load();
      if (!cl.ok()) {
        cleanup_error = cl.error().ToString();
      } else {
        CallOptions call;
        call.timeout_ms = 30 * 60 * 1000;
        for (;;) {  // one pass may stop at its time budget: repeat until nothing is left
          auto r = cl->Call("cleanup_expired_sessions", {}, call);
          if (!r.ok()) {
            cleanup_error = r.error().ToString();
            break;
          }
          uint64_t n = 0;
          const auto& m = r->result();
          if (m.type == msgpack::type::MAP) {
            for (uint32_t i = 0; i < m.via.map.size; i++) {
              const auto& kv = m.via.map.ptr[i];
              if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) ==
                                                           "deleted" &&
                  kv.val.type == msgpack::type::POSITIVE_INTEGER) {
                n = kv.val.via.u64;
              }
            }
          }
          deleted += n;
          if (n == 0) break;
        }
      }
      cleanup_t1 = MonoNs();
      sh.window_end = cleanup_t1.load();
      cleanup_done = true;
    });
  }

  // CPU of the named processes over the measured window (not the warm-up).
  struct Watched {
    std::string name;
    std::vector<int> pids, trees;
    CpuSample at_start;
    std::map<std::string, int64_t> threads_at_start;  // `cpu` (one process) only
  };
  std::vector<Watched> watched;
  for (const auto& [name, pid] : opt.cpu) watched.push_back({name, {pid}, {}, {}, {}});
  for (const auto& [name, pid] : opt.cpu_tree) watched.push_back({name, {}, {pid}, {}, {}});
  bool sampled = false;
  uint64_t completed_at_start = 0;
  int64_t self_at_start = 0, sampled_at = 0;

  uint64_t last = 0;
  int64_t last_t = start;
  int64_t tick = start + 1000 * kMs;
  for (;;) {
    int64_t now = MonoNs();
    if (!sampled && now >= warm_end) {
      sampled = true;
      sampled_at = now;
      completed_at_start = sh.completed.load();
      self_at_start = SelfCpuUs();
      for (Watched& w : watched) {
        w.at_start = SampleCpu(w.pids, w.trees);
        if (w.trees.empty()) w.threads_at_start = ThreadCpuUs(w.pids[0]);
      }
    }
    if (now >= min_end && cleanup_done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(50, std::max<int64_t>(1, (tick - now) / kMs))));
    now = MonoNs();
    if (now >= tick) {  // also without progress lines: a tick left behind would wake this thread every 1 ms
      if (opt.progress) {
        uint64_t c = sh.completed.load();
        double rate = double(c - last) * 1e9 / double(now - last_t);
        std::fprintf(stderr, "[%5.1fs] %s %s: %9.0f replies/s, %llu errors%s\n", double(now - start) / 1e9,
                     OpKindName(opt.op), now < warm_end ? "warm-up" : "measure", rate,
                     (unsigned long long)sh.failed.load(), opt.cleanup && !cleanup_done ? ", cleanup running" : "");
        last = c;
        last_t = now;
      }
      tick += 1000 * kMs;
    }
  }
  int64_t end = MonoNs();
  std::map<std::string, double> cpu_per_reply;
  std::map<std::string, std::map<std::string, double>> cpu_by_thread;
  if (sampled) {
    uint64_t replies = sh.completed.load() - completed_at_start;
    double n = double(std::max<uint64_t>(replies, 1));
    for (Watched& w : watched) {
      CpuSample at_end = SampleCpu(w.pids, w.trees);
      cpu_per_reply[w.name] = double(CpuBetween(w.at_start, at_end, w.pids, w.trees)) / n;
      if (!w.trees.empty()) continue;
      for (const auto& [thread, us1] : ThreadCpuUs(w.pids[0])) {
        auto it = w.threads_at_start.find(thread);
        cpu_by_thread[w.name][thread] = double(us1 - (it != w.threads_at_start.end() ? it->second : 0)) / n;
      }
    }
    cpu_per_reply["client"] = double(SelfCpuUs() - self_at_start) / n;
    (void)sampled_at;
  }
  if (!opt.cleanup) sh.window_end = min_end;
  sh.stop = true;
  for (auto& t : threads) t.join();
  if (cleaner.joinable()) cleaner.join();
  if (disturber.joinable()) disturber.join();
  if (!disturb_fatal.empty()) return Error::Internal(disturb_fatal);

  LoadGenReport rep;
  rep.op = opt.op;
  rep.connections = opt.connections;
  rep.threads = nthreads;
  rep.depth = opt.depth;
  rep.rate = opt.rate;
  rep.plain = opt.plain;
  rep.disturb = std::move(disturb);
  rep.cpu_us_per_reply = std::move(cpu_per_reply);
  rep.cpu_us_per_reply_by_thread = std::move(cpu_by_thread);
  std::vector<int64_t> all, all_sent;
  for (auto& r : results) {
    if (!r.fatal.empty()) return Error::Internal("connection: " + r.fatal);
    rep.ok += r.ok;
    rep.errors += r.errors;
    for (auto& [k, v] : r.codes) rep.error_codes[k] += v;
    all.insert(all.end(), r.lat.begin(), r.lat.end());
    all_sent.insert(all_sent.end(), r.sent.begin(), r.sent.end());
    std::vector<int64_t>().swap(r.lat);
    std::vector<int64_t>().swap(r.sent);
  }
  if (opt.cleanup) {
    if (!cleanup_error.empty()) return Error::Internal("cleanup: " + cleanup_error);
    rep.cleanup_s = double(cleanup_t1 - cleanup_t0) / 1e9;
    rep.cleanup_deleted = deleted;
    rep.seconds = rep.cleanup_s;
  } else {
    rep.seconds = double(std::min(end, min_end) - warm_end) / 1e9;
  }
  rep.throughput = rep.seconds > 0 ? double(rep.ok) / rep.seconds : 0;
  const int64_t window_begin = sh.window_start.load(), window_end = opt.cleanup ? cleanup_t1.load() : min_end;
  std::vector<int64_t> sorted = all;
  rep.latency = Summarize(sorted);
  // Rounded, not truncated: p99_us is a sample in ns / 1000, and 258.013 * 1000
  // is 258012.99999999997, which would count the samples equal to p99 as slower.
  rep.tail = SpreadOfTail(all_sent, all, std::llround(rep.latency.p99_us * 1000), window_begin, window_end);
  return rep;
}

}  // namespace torii::bench
