// Revocation latency (see revoke.h).
#include "revoke.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>
#include <unordered_map>

#include <zmq.hpp>

#include "common.h"
#include "torii/client.h"
#include "torii/pg.h"
#include "torii/protocol.h"
#include "torii/subscriber.h"

namespace torii::bench {

namespace {

constexpr int64_t kMs = 1000000;

struct Victim {
  std::string id, token;
  std::atomic<int64_t> event_ns{0};        // session.deleted seen by the subscriber
  std::atomic<int64_t> last_ok_recv_ns{0};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> not_found_after_event{0};
  std::atomic<uint64_t> violations{0};     // OK to a request sent after event_ns
  int64_t commit_ns = 0;
};

struct Shared {
  std::vector<std::unique_ptr<Victim>> victims;
  std::atomic<int> current{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> replies{0}, errors{0};
};

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load();
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

// Plain DEALER readers: get_session on the current victim's token, one
// request in flight per socket.
void Reader(int sockets, const std::string& endpoint, zmq::context_t& ctx, Shared& sh) {
  struct Sock {
    zmq::socket_t s;
    uint64_t id = 0;
    int victim = -1;
    int64_t sent_ns = 0;
  };
  std::vector<Sock> socks;
  std::vector<zmq_pollitem_t> items;
  for (int i = 0; i < sockets; i++) {
    socks.push_back({zmq::socket_t(ctx, zmq::socket_type::dealer)});
    socks.back().s.set(zmq::sockopt::linger, 0);
    socks.back().s.connect(endpoint);
  }
  for (Sock& k : socks) items.push_back({k.s.handle(), 0, ZMQ_POLLIN, 0});
  msgpack::sbuffer buf;
  uint64_t next_id = 1;
  auto send = [&](Sock& k) {
    int v = sh.current.load();
    buf.clear();
    Packer pk(buf);
    pk.pack_map(3);
    pk.pack("op");
    pk.pack("get_session");
    pk.pack("id");
    k.id = next_id++;
    pk.pack(k.id);
    pk.pack("args");
    pk.pack_map(1);
    pk.pack("token");
    pk.pack(sh.victims[size_t(v)]->token);
    k.victim = v;
    k.sent_ns = MonoNs();
    k.s.send(zmq::const_buffer("", 0), zmq::send_flags::sndmore);
    k.s.send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
  };
  for (Sock& k : socks) send(k);
  while (!sh.stop.load()) {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
    for (size_t n = 0; n < socks.size(); n++) {
      if (!(items[n].revents & ZMQ_POLLIN)) continue;
      Sock& k = socks[n];
      zmq::message_t m;
      bool answered = false;
      while (k.s.recv(m, zmq::recv_flags::dontwait)) {
        if (m.more()) continue;
        int64_t now = MonoNs();
        msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(m.data()), m.size());
        const msgpack::object& o = oh.get();
        bool ok = false;
        std::string code;
        uint64_t id = 0;
        ReadReplyFields(o, &id, &ok, &code);
        if (id != k.id) continue;
        answered = true;
        sh.replies++;
        Victim& v = *sh.victims[size_t(k.victim)];
        int64_t event = v.event_ns.load();
        if (ok) {
          v.ok++;
          AtomicMax(v.last_ok_recv_ns, now);
          if (event != 0 && k.sent_ns > event) v.violations++;
        } else if (code == "not_found") {
          if (event != 0 && k.sent_ns > event) v.not_found_after_event++;
        } else {
          sh.errors++;
        }
      }
      if (answered) send(k);
    }
  }
}

double Pct(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::max(0.0, std::ceil(p * double(v.size())) - 1));
  return double(v[std::min(i, v.size() - 1)]) / 1000.0;
}

}  // namespace

Result<nlohmann::json> RunRevoke(const RevokeOptions& opt) {
  if (opt.revocations < 1 || opt.readers < 1) return Error::InvalidArgument("revocations and readers must be >= 1");
  zmq::context_t ctx(1);
  Shared sh;
  ClientOptions co;
  co.endpoints = {opt.endpoint};
  co.context = &ctx;
  auto cl = Client::Create(co);
  if (!cl.ok()) return cl.error();
  std::unique_ptr<Client> writer;
  if (!opt.via_endpoint.empty()) {
    ClientOptions wo;
    wo.endpoints = {opt.via_endpoint};
    wo.context = &ctx;
    auto w = Client::Create(wo);
    if (!w.ok()) return w.error();
    writer = std::make_unique<Client>(std::move(*w));
  }
  std::unique_ptr<PgConn> sql;
  if (writer == nullptr) {
    auto c = ConnectBlocking(opt.db);
    if (!c.ok()) return c.error();
    sql = std::make_unique<PgConn>(std::move(*c));
  }
  // The sessions to revoke, created through the first daemon.
  std::unordered_map<std::string, int> by_id;
  for (int i = 0; i < opt.revocations; i++) {
    auto r = cl->CallJson("create_session",
                          {{"user_id", BenchUserId(uint64_t(i) % std::max<uint64_t>(opt.users, 1))}, {"ttl_s", 3600}});
    if (!r.ok()) return Error(r.error().code(), "create_session: " + r.error().message());
    auto v = std::make_unique<Victim>();
    v->id = (*r)["id"].get<std::string>();
    v->token = (*r)["token"].get<std::string>();
    by_id[v->id] = i;
    sh.victims.push_back(std::move(v));
  }
  auto before = cl->CallJson("stats", nullptr);

  SubscriberOptions so;
  so.endpoints = {opt.events};
  so.families = {"session"};
  so.context = &ctx;
  auto sub = Subscriber::Create(so);
  if (!sub.ok()) return sub.error();
  (*sub)->AddListener(
      [&](const Event& e) {
        if (e.kind != "deleted") return;
        auto it = by_id.find(std::string(e.Str("id")));
        if (it != by_id.end()) sh.victims[size_t(it->second)]->event_ns = MonoNs();
      },
      {});
  std::atomic<bool> sub_stop{false};
  // Until the first heartbeat the subscription may not be in place yet.
  auto live_deadline = MonoNs() + 10000 * kMs;
  while (!(*sub)->live() && MonoNs() < live_deadline) (*sub)->Poll(50);
  if (!(*sub)->live()) return Error::Unavailable("the event subscription never became live");
  std::thread sub_thread([&] {
    while (!sub_stop.load()) (*sub)->Poll(5);
  });

  std::vector<std::thread> readers;
  int per = std::max(1, opt.readers / 2);
  readers.emplace_back(Reader, per, opt.endpoint, std::ref(ctx), std::ref(sh));
  if (opt.readers - per > 0) readers.emplace_back(Reader, opt.readers - per, opt.endpoint, std::ref(ctx), std::ref(sh));

  uint64_t not_cached = 0, no_event = 0, write_errors = 0;
  auto wait_for = [](auto cond, int64_t ms) {
    int64_t deadline = MonoNs() + ms * kMs;
    while (!cond()) {
      if (MonoNs() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return true;
  };
  for (int i = 0; i < opt.revocations; i++) {
    Victim& v = *sh.victims[size_t(i)];
    sh.current = i;
    // Served (and so cached) a few times before it is revoked.
    if (!wait_for([&] { return v.ok.load() >= 3; }, 2000)) not_cached++;
    if (writer) {
      auto r = writer->CallJson("delete_session", {{"id", v.id}});
      v.commit_ns = MonoNs();
      if (!r.ok()) write_errors++;
    } else {
      auto r = ExecParamsBlocking(sql->get(), "DELETE FROM sessions WHERE id = $1::uuid", {v.id.c_str()});
      v.commit_ns = MonoNs();
      if (!r.ok()) write_errors++;
    }
    // Until the event is in and a lookup sent after it was answered.
    if (!wait_for([&] { return v.event_ns.load() != 0 && v.not_found_after_event.load() > 0; }, 5000)) no_event++;
    if (opt.progress && (i + 1) % 100 == 0) std::fprintf(stderr, "revoke: %d of %d\n", i + 1, opt.revocations);
  }
  sh.stop = true;
  for (auto& t : readers) t.join();
  sub_stop = true;
  sub_thread.join();
  auto after = cl->CallJson("stats", nullptr);

  std::vector<int64_t> served, event;
  uint64_t violations = 0, served_late = 0;
  for (auto& v : sh.victims) {
    violations += v->violations.load();
    int64_t last_ok = v->last_ok_recv_ns.load();
    int64_t s = last_ok > v->commit_ns ? last_ok - v->commit_ns : 0;
    served_late += s > 0;
    served.push_back(s);
    if (v->event_ns.load() != 0) event.push_back(std::max<int64_t>(0, v->event_ns.load() - v->commit_ns));
  }
  nlohmann::json j = {
      {"revocations", opt.revocations},
      {"writer", writer ? "delete_session through a second daemon" : "plain SQL DELETE"},
      {"readers", opt.readers},
      {"reader_replies", sh.replies.load()},
      {"reader_errors", sh.errors.load()},
      {"write_errors", write_errors},
      {"not_cached_before", not_cached},
      {"no_event", no_event},
      {"served_after_commit_ms", {{"p50", Pct(served, 0.5) / 1000}, {"p99", Pct(served, 0.99) / 1000},
                                  {"max", Pct(served, 1.0) / 1000}, {"revocations_served_after_commit", served_late}}},
      {"commit_to_event_ms", {{"p50", Pct(event, 0.5) / 1000}, {"p99", Pct(event, 0.99) / 1000},
                              {"max", Pct(event, 1.0) / 1000}}},
      {"violations", violations},
  };
  if (before.ok() && after.ok() && (*after).contains("cache")) {
    j["cache_hits"] = (*after)["cache"]["hits"].get<uint64_t>() - (*before)["cache"]["hits"].get<uint64_t>();
  }
  return j;
}

}  // namespace torii::bench
