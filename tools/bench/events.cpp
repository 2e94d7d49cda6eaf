// Event latency measurement (see events.h).
#include "events.h"

#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <unordered_map>

#include "common.h"
#include "torii/client.h"
#include "torii/protocol.h"
#include "torii/subscriber.h"

namespace torii::bench {

namespace {

int64_t WallMicros() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  return int64_t(tv.tv_sec) * 1000000 + tv.tv_usec;
}

struct Written {
  int64_t intended_ns = 0;
  int64_t reply_ns = 0;
  int64_t created_us = 0;
};
struct Seen {
  int64_t recv_ns = 0;
  int64_t recv_wall_us = 0;
};

}  // namespace

Result<nlohmann::json> RunEventLatency(const EventLatencyOptions& opt) {
  if (opt.rate <= 0) return Error::InvalidArgument("rate must be > 0");
  SubscriberOptions so;
  so.endpoints = opt.event_endpoints;
  so.families = {"session"};
  so.heartbeat_ms = opt.heartbeat_ms;
  auto sub = Subscriber::Create(so);
  if (!sub.ok()) return sub.error();
  std::unordered_map<std::string, Seen> seen;
  seen.reserve(size_t(opt.rate * (opt.duration_s + opt.warmup_s) * 1.2) + 16);
  (*sub)->AddListener(
      [&](const Event& e) {
        if (e.kind != "created") return;
        seen[std::string(e.Str("id"))] = Seen{MonoNs(), WallMicros()};
      },
      nullptr);
  // A SUB socket misses what is published before its subscription lands;
  // the first heartbeat proves it is in place.
  int64_t live_deadline = MonoNs() + 3 * opt.heartbeat_ms * 1000000 + 2000000000;
  while (!(*sub)->live() && MonoNs() < live_deadline) (*sub)->Poll(50);
  if (!(*sub)->live()) return Error::Unavailable("no heartbeat from the events endpoint");

  std::unordered_map<std::string, Written> written;
  std::atomic<bool> writer_done{false};
  std::atomic<uint64_t> sent{0}, failed{0};
  std::string writer_error;
  const int64_t start = MonoNs();
  const int64_t warm_end = start + int64_t(opt.warmup_s * 1e9);
  const int64_t end = warm_end + int64_t(opt.duration_s * 1e9);

  std::thread writer([&] {
    ClientOptions co;
    co.endpoints = opt.request_endpoints;
    auto cl = Client::Create(co);
    if (!cl.ok()) {
      writer_error = cl.error().ToString();
      writer_done = true;
      return;
    }
    std::unordered_map<uint64_t, int64_t> intended;
    uint64_t rng = 12345;
    const int64_t interval = int64_t(1e9 / opt.rate);
    int64_t next = start;
    auto drain = [&] {
      while (auto c = cl->Receive()) {
        int64_t now = MonoNs();
        auto it = intended.find(c->id);
        if (it == intended.end()) continue;
        int64_t t0 = it->second;
        intended.erase(it);
        if (!c->reply.ok()) {
          failed++;
          continue;
        }
        const auto& r = c->reply->result();
        const auto* id = FindMapValue(r, "id");
        const auto* created = FindMapValue(r, "created_at");
        if (!id || id->type != msgpack::type::STR || !created) continue;
        auto us = MicrosFromTimestamp(*created);
        written[std::string(id->via.str.ptr, id->via.str.size)] = Written{t0, now, us ? *us : 0};
      }
    };
    while (MonoNs() < end) {
      int64_t now = MonoNs();
      while (next <= now && intended.size() < 10000) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        std::string user = BenchUserId((rng >> 33) % std::max<uint64_t>(opt.users, 1));
        uint64_t id = cl->Send("create_session", [&](Packer& pk) {
          pk.pack_map(2);
          pk.pack("user_id");
          pk.pack(user);
          pk.pack("ttl_s");
          pk.pack(3600);
        });
        intended.emplace(id, next);
        sent++;
        next += interval;
      }
      int64_t wait = next - MonoNs();
      if (wait >= 1000000) {
        cl->Poll(wait / 1000000);
      } else if (cl->Poll(0) == 0 && wait > 0) {
        std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(wait, 100000)));
      }
      drain();
    }
    int64_t deadline = MonoNs() + 10000000000;
    while (cl->in_flight() > 0 && MonoNs() < deadline) {
      cl->Poll(10);
      drain();
    }
    writer_done = true;
  });

  int64_t tick = start + 1000000000;
  while (!writer_done) {
    (*sub)->Poll(5);
    if (opt.progress && MonoNs() >= tick) {
      std::fprintf(stderr, "[%5.1fs] events at %.0f writes/s: %llu written, %zu events seen, %llu errors\n",
                   double(MonoNs() - start) / 1e9, opt.rate, (unsigned long long)sent.load(), seen.size(),
                   (unsigned long long)failed.load());
      tick += 1000000000;
    }
  }
  writer.join();
  if (!writer_error.empty()) return Error::Internal("writer: " + writer_error);
  // Events of the last writes may still be on their way.
  int64_t grace = MonoNs() + 2000000000;
  for (;;) {
    size_t missing = 0;
    for (auto& [id, w] : written) missing += seen.count(id) == 0;
    if (missing == 0 || MonoNs() > grace) break;
    (*sub)->Poll(20);
  }

  std::vector<int64_t> txn, send, reply;
  uint64_t measured = 0, missing = 0, event_first = 0;
  for (auto& [id, w] : written) {
    if (w.intended_ns < warm_end) continue;
    measured++;
    auto it = seen.find(id);
    if (it == seen.end()) {
      missing++;
      continue;
    }
    txn.push_back(std::max<int64_t>(0, (it->second.recv_wall_us - w.created_us) * 1000));
    send.push_back(std::max<int64_t>(0, it->second.recv_ns - w.intended_ns));
    int64_t d = it->second.recv_ns - w.reply_ns;
    if (d < 0) event_first++;
    reply.push_back(std::max<int64_t>(0, d));
  }
  nlohmann::json j = {{"rate", opt.rate},
                      {"seconds", opt.duration_s},
                      {"writes", measured},
                      {"write_errors", failed.load()},
                      {"events_missing", missing},
                      {"event_before_reply", event_first},
                      {"stale", (*sub)->stats().stale},
                      {"txn_to_event", Summarize(txn).ToJson()},
                      {"send_to_event", Summarize(send).ToJson()},
                      {"reply_to_event", Summarize(reply).ToJson()}};
  return j;
}

}  // namespace torii::bench
