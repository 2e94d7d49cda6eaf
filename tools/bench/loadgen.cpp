// Load generator (see loadgen.h). A few threads, each driving its share of
// the connections (one Client each: a Client belongs to one thread) and
// waiting on all of their sockets at once, as pgbench -j does.
#include "loadgen.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
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

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t SendOne(Client& cl, OpKind op, uint64_t& rng, const LoadGenOptions& opt, const CallOptions& co) {
  if (op == OpKind::kMix) op = SplitMix(rng) % 10 == 0 ? OpKind::kCreateSession : OpKind::kGetSession;
  switch (op) {
    case OpKind::kGetSession: {
      std::string token = BenchToken(SplitMix(rng) % std::max<uint64_t>(opt.sessions, 1));
      return cl.Send("get_session", [&](Packer& pk) {
        pk.pack_map(1);
        pk.pack("token");
        pk.pack(token);
      }, co);
    }
    case OpKind::kCreateSession: {
      std::string user = BenchUserId(SplitMix(rng) % std::max<uint64_t>(opt.users, 1));
      return cl.Send("create_session", [&](Packer& pk) {
        pk.pack_map(2);
        pk.pack("user_id");
        pk.pack(user);
        pk.pack("ttl_s");
        pk.pack(3600);
      }, co);
    }
    case OpKind::kGetUserByEmail: {
      std::string email = BenchEmail(SplitMix(rng) % std::max<uint64_t>(opt.users, 1));
      return cl.Send("get_user_by_email", [&](Packer& pk) {
        pk.pack_map(1);
        pk.pack("email");
        pk.pack(email);
      }, co);
    }
    default:
      return cl.Send("ping", {}, co);
  }
}

// One connection's state, driven by the thread that owns it.
struct Conn {
  std::optional<Client> cl;
  std::unordered_map<uint64_t, int64_t> intended;  // id -> intended send time
  uint64_t rng = 0;
  int64_t next = 0;  // fixed rate: the next intended send time
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
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    out.fatal = std::string("epoll_create1: ") + std::strerror(errno);
    return;
  }
  struct CloseFd {
    int fd;
    ~CloseFd() { close(fd); }
  } close_ep{ep};
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
      bool counted = t0 >= sh.window_start.load(std::memory_order_relaxed) &&
                     t0 < sh.window_end.load(std::memory_order_relaxed);
      if (done->reply.ok()) {
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
          out.codes[std::string(CodeName(done->reply.error().code()))]++;
        }
      }
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

nlohmann::json LoadGenReport::ToJson() const {
  nlohmann::json j = {{"op", OpKindName(op)},   {"connections", connections}, {"threads", threads}, {"depth", depth},
                      {"rate", rate},           {"seconds", seconds},         {"ok", ok},
                      {"errors", errors},       {"error_codes", error_codes}, {"throughput", throughput},
                      {"latency", latency.ToJson()}, {"tail", tail.ToJson()}};
  if (cleanup_s > 0) {
    j["cleanup_s"] = cleanup_s;
    j["cleanup_deleted"] = cleanup_deleted;
  }
  return j;
}

Result<LoadGenReport> RunLoad(const LoadGenOptions& opt) {
  if (opt.endpoints.empty()) return Error::InvalidArgument("no endpoint");
  if (opt.connections < 1 || opt.depth < 1) return Error::InvalidArgument("connections and depth must be >= 1");
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
    threads.emplace_back(Worker, first, last, std::cref(opt), std::ref(ctx), std::ref(sh), start, std::ref(results[t]));
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

  uint64_t last = 0;
  int64_t last_t = start;
  int64_t tick = start + 1000 * kMs;
  for (;;) {
    int64_t now = MonoNs();
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
  if (!opt.cleanup) sh.window_end = min_end;
  sh.stop = true;
  for (auto& t : threads) t.join();
  if (cleaner.joinable()) cleaner.join();

  LoadGenReport rep;
  rep.op = opt.op;
  rep.connections = opt.connections;
  rep.threads = nthreads;
  rep.depth = opt.depth;
  rep.rate = opt.rate;
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
  rep.tail = SpreadOfTail(all_sent, all, int64_t(rep.latency.p99_us * 1000), window_begin, window_end);
  return rep;
}

}  // namespace torii::bench
