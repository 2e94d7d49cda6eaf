// torii::Subscriber: SUB sockets, event decoding, and per-endpoint
// seq/epoch/heartbeat tracking that turns "may have missed something" into
// on_stale calls.
#include "torii/subscriber.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include <zmq.hpp>

#include "torii/protocol.h"
#include "torii/tenant.h"
#include "torii/zmq_client.h"

namespace torii {

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A flood must not keep Poll() from checking deadlines and returning.
constexpr size_t kMaxMessagesPerSocketPerPoll = 10000;

// The key of a family's seq: the family for the default tenant (as before
// tenants), `@T/family` for tenant T.
std::string SeqKey(const std::string& tenant, std::string_view family) {
  return TenantTopicPrefix(tenant) + std::string(family);
}

}  // namespace

std::string_view Event::Str(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type != msgpack::type::STR) return {};
  return AsStr(*o);
}

const msgpack::object* Event::Find(std::string_view key) const { return FindMapValue(body(), key); }

std::string_view StaleKindName(StaleKind kind) {
  switch (kind) {
    case StaleKind::kGap: return "gap";
    case StaleKind::kEpochChange: return "epoch_change";
    case StaleKind::kMissedHeartbeats: return "missed_heartbeats";
    case StaleKind::kResync: return "resync";
    case StaleKind::kMalformed: return "malformed";
  }
  return "unknown";
}

std::string StaleReason::ToString() const {
  std::string s(StaleKindName(kind));
  switch (kind) {
    case StaleKind::kGap:
      s += " on " + family;
      if (!tenant.empty() && tenant != kDefaultTenant) s += " of tenant " + tenant;
      s += " (epoch " + epoch + ", expected seq " + std::to_string(expected) + ", got " +
           std::to_string(got) + ")";
      break;
    case StaleKind::kEpochChange: s += " (epoch " + old_epoch + " -> " + epoch + ")"; break;
    case StaleKind::kMissedHeartbeats:
    case StaleKind::kResync:
    case StaleKind::kMalformed:
      s += " (epoch " + (epoch.empty() ? std::string("unknown") : epoch) + ")";
      break;
  }
  s += " on endpoint #" + std::to_string(endpoint);
  if (!detail.empty()) s += ": " + detail;
  return s;
}

struct Subscriber::Impl {
  SubscriberOptions options;
  ClientContext context;

  // What we know about the daemon behind one endpoint.
  struct Endpoint {
    std::optional<zmq::socket_t> socket;
    std::string epoch;                     // empty until the first message
    std::map<std::string, uint64_t> seqs;  // SeqKey(tenant, family) -> last seq seen (this epoch)
    int64_t last_message_ms = 0;           // steady clock; connect time at first
    bool silence_reported = false;         // kMissedHeartbeats fired for this silence
    bool caught_up = false;                // a clean heartbeat since the last stale condition
    uint64_t caught_up_tick = 0;           // `tick` when caught_up last became true
    std::optional<uint64_t> last_eid;      // eid of the last event received: its stream position
  };
  std::vector<Endpoint> endpoints;

  // Several endpoints: the dedup window. An eid is in `seen` once it was
  // delivered; its value has bit i set when endpoint i received it in its
  // current segment (cleared at i's next stale condition). `order` is the
  // insertion order, for the bound.
  bool dedup = false;
  // options.tenant "*" with families: everything is subscribed, the
  // families are filtered here.
  bool local_filter = false;
  std::unordered_map<uint64_t, uint64_t> seen;
  std::deque<uint64_t> order;
  // Stale conditions waiting for another endpoint to receive the eid of
  // their endpoint's position (the stale rule in the header).
  struct Held {
    StaleReason reason;
    uint64_t eid;
    int64_t deadline_ms;
  };
  std::vector<Held> held;
  // The quiet-case vouch (the header's stale rule): `tick` orders the
  // moments endpoints become caught up and the anchor; `anchor` is the tick
  // of the first live() call that answered true since the last report (or
  // since construction). A cache checks live() before it reads anything it
  // caches and drops everything at a report, so nothing it holds was read
  // before the anchor. Empty: nothing cached since the last report. Set
  // from the const live(), hence mutable.
  mutable uint64_t tick = 0;
  mutable std::optional<uint64_t> anchor;

  struct Listener {
    int handle;
    EventFn on_event;
    StaleFn on_stale;
  };
  std::vector<Listener> listeners;
  int next_handle = 1;

  uint64_t stale_generation = 0;
  SubscriberStats stats;
  zmq::message_t topic_frame;
  zmq::message_t body_frame;

  bool Subscribed(std::string_view family) const {
    if (options.families.empty()) return true;
    return std::find(options.families.begin(), options.families.end(), family) != options.families.end();
  }

  bool EndpointLive(size_t i, int64_t now) const {
    const Endpoint& ep = endpoints[i];
    return ep.caught_up && !ep.silence_reported && now - ep.last_message_ms < 3 * options.heartbeat_ms;
  }

  bool AnyOtherLive(size_t index, int64_t now) const {
    for (size_t i = 0; i < endpoints.size(); i++) {
      if (i != index && EndpointLive(i, now)) return true;
    }
    return false;
  }

  // An endpoint other than `index` that is live and has been caught up,
  // with no stale condition, since before anything was cached (at or before
  // the anchor; any live one while nothing is cached): every event since
  // the anchor reached it or is on its way.
  bool AnyOtherLiveSinceAnchor(size_t index, int64_t now) const {
    for (size_t i = 0; i < endpoints.size(); i++) {
      if (i != index && EndpointLive(i, now) && (!anchor.has_value() || endpoints[i].caught_up_tick <= *anchor)) {
        return true;
      }
    }
    return false;
  }

  // A clean heartbeat: the endpoint is caught up (a new live stretch).
  void CaughtUp(size_t index) {
    Endpoint& ep = endpoints[index];
    if (ep.caught_up) return;
    ep.caught_up = true;
    ep.caught_up_tick = ++tick;
  }

  // A stale condition on an endpoint: it starts a new segment, and reaches
  // the listeners unless another endpoint vouches for it (the header's
  // stale rule). `absorbable` false: always reported.
  void Stale(StaleReason reason, bool absorbable = true) {
    const size_t a = reason.endpoint;
    Endpoint& ep = endpoints[a];
    ep.caught_up = false;
    if (!dedup) {
      Report(reason);
      return;
    }
    const uint64_t mine = uint64_t{1} << a;
    for (auto& kv : seen) kv.second &= ~mine;
    const int64_t now = NowMs();
    if (!absorbable || !AnyOtherLive(a, now)) {
      Report(reason);
      return;
    }
    // An endpoint live since before anything was cached has every change
    // a cache could miss, wherever A's position is: the only vouch when A
    // has none (the quiet case), and the one that needs no position when
    // the other endpoint's baseline came after A's last eid.
    if (AnyOtherLiveSinceAnchor(a, now)) {
      stats.absorbed++;
      return;
    }
    if (!ep.last_eid.has_value()) {
      Report(reason);
      return;
    }
    auto it = seen.find(*ep.last_eid);
    if (it == seen.end()) {  // left the window: nothing to vouch with
      Report(reason);
      return;
    }
    for (size_t i = 0; i < endpoints.size(); i++) {
      if (i != a && (it->second & (uint64_t{1} << i)) != 0 && EndpointLive(i, now)) {
        stats.absorbed++;
        return;
      }
    }
    held.push_back(Held{std::move(reason), *ep.last_eid, now + 3 * options.heartbeat_ms});
  }

  void Report(const StaleReason& reason) {
    stale_generation++;
    stats.stale++;
    // Caches drop everything now: what they hold from here on is read
    // after their next live() check.
    anchor.reset();
    for (size_t i = 0; i < listeners.size(); i++) {
      if (listeners[i].on_stale) listeners[i].on_stale(reason);
    }
  }

  void Deliver(const Event& e) {
    stats.events++;
    for (size_t i = 0; i < listeners.size(); i++) {
      if (listeners[i].on_event) listeners[i].on_event(e);
    }
  }

  void Gap(size_t index, const std::string& tenant, const std::string& family, uint64_t expected, uint64_t got,
           std::string detail) {
    StaleReason r;
    r.kind = StaleKind::kGap;
    r.endpoint = index;
    r.family = family;
    r.tenant = tenant;
    r.epoch = endpoints[index].epoch;
    r.expected = expected;
    r.got = got;
    r.detail = std::move(detail);
    Stale(std::move(r));
  }

  void Malformed(size_t index, std::string detail) {
    stats.malformed++;
    StaleReason r;
    r.kind = StaleKind::kMalformed;
    r.endpoint = index;
    r.epoch = endpoints[index].epoch;
    r.detail = std::move(detail);
    Stale(std::move(r));
  }

  // Endpoint `index` received `eid` in its current segment. Returns false
  // for a duplicate (already delivered). Settles held conditions waiting
  // for this eid from another endpoint.
  bool RecordEid(size_t index, uint64_t eid) {
    endpoints[index].last_eid = eid;
    if (!dedup) return true;
    const uint64_t mine = uint64_t{1} << index;
    bool fresh = false;
    auto it = seen.find(eid);
    if (it == seen.end()) {
      while (order.size() >= options.dedup_window) {
        seen.erase(order.front());
        order.pop_front();
      }
      seen.emplace(eid, mine);
      order.push_back(eid);
      fresh = true;
    } else {
      it->second |= mine;
    }
    for (size_t i = 0; i < held.size();) {
      if (held[i].eid == eid && held[i].reason.endpoint != index) {
        stats.absorbed++;
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        i++;
      }
    }
    return fresh;
  }

  // A heartbeat's `seqs` against what we saw. Returns false on a gap.
  bool CheckHeartbeat(size_t index, const Event& e) {
    Endpoint& ep = endpoints[index];
    const msgpack::object* seqs = e.Find("seqs");
    if (seqs == nullptr || seqs->type != msgpack::type::MAP) {
      Malformed(index, "torii.heartbeat without a seqs map");
      return false;
    }
    bool clean = true;
    for (uint32_t i = 0; i < seqs->via.map.size; i++) {
      const auto& kv = seqs->via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::POSITIVE_INTEGER) continue;
      std::string family(AsStr(kv.key));
      // The torii family is checked by the heartbeat's own seq.
      if (family == "torii" || !Subscribed(family)) continue;
      uint64_t shown = kv.val.via.u64;
      // A tenant's heartbeat shows that tenant's seqs.
      auto it = ep.seqs.find(SeqKey(e.tenant, family));
      if (it == ep.seqs.end()) {
        ep.seqs.emplace(SeqKey(e.tenant, family), shown);  // the baseline for a family not seen yet
      } else if (shown != it->second) {
        Gap(index, e.tenant, family, it->second + 1, shown,
            shown > it->second ? "the heartbeat shows messages we did not receive"
                               : "the heartbeat shows a seq behind what we received");
        it->second = shown;
        clean = false;
      }
    }
    // A subscribed family the heartbeat does not list has published
    // nothing yet: its first message must be seq 1.
    for (const auto& f : options.families) {
      if (f != "torii") ep.seqs.emplace(SeqKey(e.tenant, f), 0);
    }
    return clean;
  }

  void Process(size_t index, const char* topic_data, size_t topic_len, const char* body, size_t body_len) {
    Endpoint& ep = endpoints[index];
    std::string tenant, rest;
    if (!SplitTenantTopic(std::string_view(topic_data, topic_len), &tenant, &rest)) {
      Malformed(index, "an event topic with a malformed tenant prefix");
      return;
    }
    std::string_view topic(rest);
    size_t dot = topic.find('.');
    if (dot == std::string_view::npos) {
      Malformed(index, "an event topic without a '.'");
      return;
    }
    auto unpacked = UnpackBounded(body, body_len, DecodeLimits{});
    if (!unpacked.ok() || unpacked->get().type != msgpack::type::MAP) {
      Malformed(index, "an event body that is not a msgpack map (" + std::string(topic) + ")");
      return;
    }
    Event e;
    e.handle = std::move(unpacked.value());
    e.topic.assign(topic);
    e.tenant = std::move(tenant);
    e.family.assign(topic.substr(0, dot));
    e.kind.assign(topic.substr(dot + 1));
    e.endpoint = index;
    const msgpack::object* seq = e.Find("seq");
    const msgpack::object* epoch = e.Find("epoch");
    if (seq == nullptr || seq->type != msgpack::type::POSITIVE_INTEGER || epoch == nullptr ||
        epoch->type != msgpack::type::STR) {
      Malformed(index, "an event without seq or epoch (" + e.topic + ")");
      return;
    }
    e.seq = seq->via.u64;
    e.epoch.assign(AsStr(*epoch));
    if (const msgpack::object* eid = e.Find("eid"); eid != nullptr && eid->type == msgpack::type::POSITIVE_INTEGER) {
      e.eid = eid->via.u64;
    }
    if (const msgpack::object* at = e.Find("at")) {
      if (auto us = MicrosFromTimestamp(*at)) e.at = *us;
    }

    if (ep.epoch != e.epoch) {
      if (!ep.epoch.empty()) {
        StaleReason r;
        r.kind = StaleKind::kEpochChange;
        r.endpoint = index;
        r.old_epoch = ep.epoch;
        r.epoch = e.epoch;
        r.detail = "the daemon restarted";
        ep.epoch = e.epoch;
        ep.seqs.clear();
        Stale(std::move(r));
      } else {
        ep.epoch = e.epoch;
      }
    }

    bool clean = true;
    const std::string key = SeqKey(e.tenant, e.family);
    auto it = ep.seqs.find(key);
    if (it == ep.seqs.end()) {
      ep.seqs.emplace(key, e.seq);  // first of its family: the baseline
    } else {
      if (e.seq != it->second + 1) {
        Gap(index, e.tenant, e.family, it->second + 1, e.seq,
            e.seq > it->second + 1 ? "" : "the seq went backwards within one epoch");
        clean = false;
      }
      it->second = e.seq;
    }

    // After the seq checks: a gap is judged at the position before this
    // event, and this event opens the new segment.
    const bool fresh = !e.eid.has_value() || RecordEid(index, *e.eid);
    if (!fresh) stats.duplicates++;

    const bool torii = e.family == "torii";
    if (torii && e.kind == "heartbeat") {
      stats.heartbeats++;
      if (CheckHeartbeat(index, e) && clean) CaughtUp(index);
    } else if (torii && e.kind == "resync" && fresh) {
      StaleReason r;
      r.kind = StaleKind::kResync;
      r.endpoint = index;
      r.epoch = ep.epoch;
      r.detail = std::string(e.Str("reason"));
      if (r.detail.empty()) r.detail = "torii.resync";
      // With an eid it came from the database (e.g. a bulk import): every
      // daemon relays it and no endpoint can vouch for it.
      Stale(std::move(r), !e.eid.has_value());
    }
    // Every tenant's stream ("*") comes whole; `families` is kept here.
    const bool wanted = torii ? options.deliver_torii_events : (!local_filter || Subscribed(e.family));
    if (fresh && wanted) Deliver(e);
  }

  // An endpoint with messages waiting has been heard from now, before any
  // endpoint's messages are processed: otherwise, after a while without
  // Poll(), the first endpoint drained would judge its stale conditions
  // (the stale rule asks whether another endpoint is live) against the
  // others' old last_message_ms, though their messages sit in their
  // sockets. Draining sets the same time anyway.
  void MarkWaiting() {
    const int64_t now = NowMs();
    for (auto& ep : endpoints) {
      try {
        if ((ep.socket->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) ep.last_message_ms = now;
      } catch (const zmq::error_t&) {
      }
    }
  }

  // Reads what has arrived on one socket. Returns the number of messages.
  size_t Drain(size_t index) {
    zmq::socket_t& s = *endpoints[index].socket;
    size_t n = 0;
    while (n < kMaxMessagesPerSocketPerPoll) {
      try {
        auto r = s.recv(topic_frame, zmq::recv_flags::dontwait);
        if (!r) break;
      } catch (const zmq::error_t&) {
        break;
      }
      n++;
      stats.messages++;
      Endpoint& ep = endpoints[index];
      ep.last_message_ms = NowMs();
      ep.silence_reported = false;
      if (!topic_frame.more()) {
        Malformed(index, "an event with one frame");
        continue;
      }
      (void)s.recv(body_frame, zmq::recv_flags::none);
      if (body_frame.more()) {
        while (body_frame.more()) (void)s.recv(body_frame, zmq::recv_flags::none);
        Malformed(index, "an event with more than two frames");
        continue;
      }
      Process(index, static_cast<const char*>(topic_frame.data()), topic_frame.size(),
              static_cast<const char*>(body_frame.data()), body_frame.size());
    }
    return n;
  }

  // Reports held stale conditions past their deadline, or all of them when
  // no other endpoint is live any more; returns the ms until the next
  // deadline (-1: none).
  int64_t CheckHeld(int64_t now) {
    int64_t next = -1;
    for (size_t i = 0; i < held.size();) {
      if (now >= held[i].deadline_ms || !AnyOtherLive(held[i].reason.endpoint, now)) {
        StaleReason r = std::move(held[i].reason);
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
        if (r.detail.empty()) {
          r.detail = "no other endpoint vouched for it";
        } else {
          r.detail += "; no other endpoint vouched for it";
        }
        Report(r);
        i = 0;  // a listener may not change `held`, but restart cheaply anyway
        next = -1;
        continue;
      }
      int64_t due = held[i].deadline_ms - now;
      if (next < 0 || due < next) next = due;
      i++;
    }
    return next;
  }

  // Fires kMissedHeartbeats for endpoints silent past 3 intervals; returns
  // the ms until the next such deadline (-1: none pending).
  int64_t CheckDeadlines(int64_t now) {
    const int64_t limit = 3 * options.heartbeat_ms;
    int64_t next = -1;
    for (size_t i = 0; i < endpoints.size(); i++) {
      Endpoint& ep = endpoints[i];
      if (ep.silence_reported) continue;
      int64_t due = ep.last_message_ms + limit;
      if (now >= due) {
        ep.silence_reported = true;
        StaleReason r;
        r.kind = StaleKind::kMissedHeartbeats;
        r.endpoint = i;
        r.epoch = ep.epoch;
        r.detail = "no message for " + std::to_string(now - ep.last_message_ms) + " ms (3 heartbeats of " +
                   std::to_string(options.heartbeat_ms) + " ms)";
        Stale(std::move(r));
      } else if (next < 0 || due - now < next) {
        next = due - now;
      }
    }
    int64_t held_next = CheckHeld(now);
    if (held_next >= 0 && (next < 0 || held_next < next)) next = held_next;
    return next;
  }
};

Subscriber::Subscriber(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Subscriber::~Subscriber() = default;

Result<std::unique_ptr<Subscriber>> Subscriber::Create(SubscriberOptions options) {
  if (options.endpoints.empty()) return Error::InvalidArgument("the subscriber needs at least one endpoint");
  if (options.heartbeat_ms <= 0) return Error::InvalidArgument("heartbeat_ms must be positive");
  if (options.endpoints.size() > 64) return Error::InvalidArgument("the subscriber takes at most 64 endpoints");
  if (options.dedup_window == 0) options.dedup_window = 1;
  Result<bool> wanted = ClientCurveWanted(options.server_public_key, options.client_public_key,
                                          options.client_secret_key);
  if (!wanted.ok()) return wanted.error();
  const bool curve = *wanted;
  for (auto& f : options.families) {
    if (!f.empty() && f.back() == '.') f.pop_back();
  }
  // An empty family name means "everything", like no families at all.
  if (std::find(options.families.begin(), options.families.end(), "") != options.families.end()) {
    options.families.clear();
  }
  const bool every_tenant = options.tenant == "*";
  if (!options.tenant.empty() && !every_tenant && !IsValidTenantName(options.tenant)) {
    return Error::InvalidArgument("tenant must be empty, \"*\" or 1 to 64 bytes of [a-z0-9_.-]");
  }
  // The tenant's topic prefix ("" for the default tenant and "*").
  const std::string prefix = every_tenant ? std::string() : TenantTopicPrefix(options.tenant);
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->dedup = impl->options.endpoints.size() > 1;
  impl->local_filter = every_tenant && !impl->options.families.empty();
  try {
    impl->context.Use(impl->options.context);
    const int64_t now = NowMs();
    impl->endpoints.resize(impl->options.endpoints.size());
    for (size_t i = 0; i < impl->endpoints.size(); i++) {
      auto& ep = impl->endpoints[i];
      ep.socket.emplace(*impl->context, zmq::socket_type::sub);
      ep.socket->set(zmq::sockopt::linger, 0);
      ep.socket->set(zmq::sockopt::rcvhwm, impl->options.rcvhwm);
      if (curve) {
        SetClientCurveKeys(*ep.socket, impl->options.server_public_key, impl->options.client_public_key,
                           impl->options.client_secret_key);
      }
      if (impl->options.families.empty() || every_tenant) {
        ep.socket->set(zmq::sockopt::subscribe, prefix);
      } else {
        // "torii." last: subscriptions reach the publisher in order, so the
        // first heartbeat proves the family subscriptions are in place too.
        for (const auto& f : impl->options.families) {
          if (f != "torii") ep.socket->set(zmq::sockopt::subscribe, prefix + f + ".");
        }
        ep.socket->set(zmq::sockopt::subscribe, prefix + "torii.");
      }
      ep.socket->connect(impl->options.endpoints[i]);
      ep.last_message_ms = now;
    }
  } catch (const zmq::error_t& e) {
    return Error::Internal(std::string("cannot set up the event socket: ") + e.what());
  }
  return std::unique_ptr<Subscriber>(new Subscriber(std::move(impl)));
}

int Subscriber::AddListener(EventFn on_event, StaleFn on_stale) {
  int h = impl_->next_handle++;
  impl_->listeners.push_back(Impl::Listener{h, std::move(on_event), std::move(on_stale)});
  return h;
}

void Subscriber::RemoveListener(int handle) {
  auto& l = impl_->listeners;
  l.erase(std::remove_if(l.begin(), l.end(), [handle](const Impl::Listener& x) { return x.handle == handle; }),
          l.end());
}

size_t Subscriber::Poll(int64_t timeout_ms) {
  Impl& im = *impl_;
  const int64_t until = timeout_ms < 0 ? -1 : NowMs() + timeout_ms;
  std::vector<zmq::pollitem_t> items;
  for (auto& ep : im.endpoints) items.push_back({static_cast<void*>(*ep.socket), 0, ZMQ_POLLIN, 0});
  for (;;) {
    im.MarkWaiting();
    size_t n = 0;
    for (size_t i = 0; i < im.endpoints.size(); i++) n += im.Drain(i);
    // Deadlines after draining: messages that waited in the socket while
    // nobody polled are not a silence.
    int64_t now = NowMs();
    int64_t next_deadline = im.CheckDeadlines(now);
    if (n > 0) return n;
    if (until >= 0 && now >= until) return 0;
    int64_t wait = until < 0 ? -1 : until - now;
    if (next_deadline >= 0) wait = wait < 0 ? next_deadline : std::min(wait, next_deadline);
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(wait));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

bool Subscriber::live() const {
  const int64_t now = NowMs();
  for (size_t i = 0; i < impl_->endpoints.size(); i++) {
    if (impl_->EndpointLive(i, now)) {
      if (!impl_->anchor.has_value()) impl_->anchor = ++impl_->tick;
      return true;
    }
  }
  return false;
}

bool Subscriber::endpoint_live(size_t index) const {
  return index < impl_->endpoints.size() && impl_->EndpointLive(index, NowMs());
}

int64_t Subscriber::live_silence_ms() const {
  const int64_t now = NowMs();
  int64_t best = -1;
  for (size_t i = 0; i < impl_->endpoints.size(); i++) {
    if (!impl_->EndpointLive(i, now)) continue;
    int64_t silence = now - impl_->endpoints[i].last_message_ms;
    if (best < 0 || silence < best) best = silence;
  }
  return best;
}

uint64_t Subscriber::stale_generation() const { return impl_->stale_generation; }

const SubscriberStats& Subscriber::stats() const { return impl_->stats; }

const std::string& Subscriber::tenant() const { return impl_->options.tenant; }

std::vector<int> Subscriber::fds() const {
  std::vector<int> out;
  for (const auto& ep : impl_->endpoints) out.push_back(ep.socket->get(zmq::sockopt::fd));
  return out;
}

}  // namespace torii
