// torii::Client: DEALER socket, request encoding, reply matching by id,
// deadlines, and the msgpack/JSON bridge.
#include "torii/client.h"

#include <poll.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>

#include <nlohmann/json.hpp>
#include <sodium.h>
#include <zmq.hpp>

#include "torii/operations.h"
#include "torii/tenant.h"
#include "torii/zmq_client.h"

namespace torii {

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Base64(const char* data, size_t len) {
  std::string out(sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(data), len,
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

// Replies may be large (a page of 1000 users), so the bounds are wider than
// a request's, but still bounded: a broken peer must not exhaust memory.
DecodeLimits ReplyLimits() {
  DecodeLimits l;
  l.max_array = 1000000;
  l.max_map = 1000000;
  l.max_depth = 64;
  l.max_str = 64 * 1024 * 1024;
  l.max_bin = 64 * 1024 * 1024;
  return l;
}

std::atomic<uint64_t> g_monitor_serial{0};

}  // namespace

bool IsIdempotentOp(std::string_view op) {
  const OperationInfo* info = FindOperation(op);
  return info != nullptr && info->retry_safe;
}

void RequestArgs::PackInto(Packer& pk, msgpack::sbuffer& buf) const {
  if (has_packed_) {
    buf.write(packed_.data(), packed_.size());
  } else if (call_ != nullptr) {
    call_(fn_, pk);
  } else {
    pk.pack_map(0);
  }
}

// In-flight bookkeeping. Ids are handed out in order, so the requests in
// flight are a window [base_id, next_id) of slots in a deque: no per-request
// node allocation, O(1) lookup by id. Deadlines live in a min-heap (a vector)
// with lazy deletion: an entry whose request already completed is skipped
// when it surfaces.
struct Client::Impl {
  ClientOptions options;
  ClientContext context;
  // One DEALER per endpoint when there are several (each with a monitor
  // that reports its connection), one DEALER connected to the endpoint when
  // there is one.
  struct Endpoint {
    std::optional<zmq::socket_t> socket;
    std::optional<zmq::socket_t> monitor;  // PAIR: the socket monitor's events
    int fd = -1;                           // ZMQ_FD of socket
    int monitor_fd = -1;
    bool connected = false;
  };
  std::vector<Endpoint> eps;
  bool multi = false;
  size_t next_endpoint = 0;  // round-robin
  std::vector<pollfd> pollfds;

  struct Slot {
    bool pending = false;
    // Several endpoints only: where it went (-1: not sent yet), whether it
    // may be sent again, and its encoded body for that.
    int endpoint = -1;
    bool idempotent = false;
    std::string body;
  };
  std::deque<Slot> slots;
  uint64_t base_id = 1;  // id of slots.front()
  uint64_t next_id = 1;
  size_t in_flight = 0;

  using Deadline = std::pair<int64_t, uint64_t>;  // (steady ms, id)
  std::vector<Deadline> deadlines;                // min-heap
  std::vector<Deadline> retries;                  // min-heap: idempotent resends at half the deadline
  std::deque<uint64_t> unsent;                    // ids waiting for a connected endpoint

  std::deque<Completion> ready;
  uint64_t waiting_id = 0;  // the id a blocking Call() waits for
  std::optional<Result<Reply>> waited;

  msgpack::sbuffer buf;
  zmq::message_t frame;
  ClientStats stats;
  DecodeLimits limits = ReplyLimits();

  bool IsPending(uint64_t id) const {
    return id >= base_id && id < next_id && slots[static_cast<size_t>(id - base_id)].pending;
  }

  void Complete(uint64_t id, Result<Reply> r) {
    slots[static_cast<size_t>(id - base_id)].pending = false;
    in_flight--;
    while (!slots.empty() && !slots.front().pending) {
      slots.pop_front();
      base_id++;
    }
    if (in_flight == 0) {  // only stale entries are left
      deadlines.clear();
      retries.clear();
      unsent.clear();
    }
    if (id == waiting_id) {
      waited.emplace(std::move(r));
    } else {
      ready.push_back(Completion{id, std::move(r)});
    }
  }

  Slot& SlotOf(uint64_t id) { return slots[static_cast<size_t>(id - base_id)]; }

  // Several endpoints: sends a pending request to the next connected
  // endpoint other than `exclude`. Returns false when there is none.
  // `retry_at`: when an idempotent request is sent to another endpoint if
  // still unanswered (0: never).
  bool Dispatch(uint64_t id, int exclude, int64_t retry_at) {
    const size_t n = eps.size();
    for (size_t k = 0; k < n; k++) {
      const size_t i = (next_endpoint + k) % n;
      if (static_cast<int>(i) == exclude || !eps[i].connected) continue;
      next_endpoint = i + 1;
      Slot& slot = SlotOf(id);
      try {
        auto sent = eps[i].socket->send(zmq::const_buffer(nullptr, 0),
                                        zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        if (!sent) {
          Complete(id, Error::Overloaded("client send queue is full (" + std::to_string(in_flight) + " in flight)"));
          return true;
        }
        (void)eps[i].socket->send(zmq::const_buffer(slot.body.data(), slot.body.size()), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        Complete(id, Error::Internal(std::string("zmq send: ") + e.what()));
        return true;
      }
      slot.endpoint = static_cast<int>(i);
      if (slot.idempotent && retry_at > 0) {
        retries.emplace_back(retry_at, id);
        std::push_heap(retries.begin(), retries.end(), std::greater<>());
      }
      return true;
    }
    return false;
  }

  uint64_t Send(std::string_view op, const RequestArgs& args, const CallOptions& opts) {
    const int64_t timeout = opts.timeout_ms > 0 ? opts.timeout_ms : options.default_timeout_ms;
    const uint64_t id = next_id++;
    slots.emplace_back();
    slots.back().pending = true;
    in_flight++;
    const int64_t now = NowMs();
    deadlines.emplace_back(now + timeout, id);
    std::push_heap(deadlines.begin(), deadlines.end(), std::greater<>());

    buf.clear();
    Packer pk(buf);
    pk.pack_map(5 + (opts.actor.empty() ? 0 : 1) + (options.tenant.empty() ? 0 : 1));
    PackStr(pk, "v");
    pk.pack_uint8(1);
    PackStr(pk, "id");
    pk.pack_uint64(id);
    PackStr(pk, "op");
    PackStr(pk, op);
    PackStr(pk, "timeout_ms");
    pk.pack_uint64(static_cast<uint64_t>(timeout));
    if (!opts.actor.empty()) {
      PackStr(pk, "actor");
      PackStr(pk, opts.actor);
    }
    if (!options.tenant.empty()) {
      PackStr(pk, "tenant");
      PackStr(pk, options.tenant);
    }
    PackStr(pk, "args");
    args.PackInto(pk, buf);

    if (multi) {
      Slot& slot = slots.back();
      slot.idempotent = IsIdempotentOp(op);
      slot.body.assign(buf.data(), buf.size());
      stats.sent++;
      if (!Dispatch(id, -1, now + timeout / 2)) unsent.push_back(id);
      return id;
    }

    // DEALER: an empty delimiter frame then the body, so that the reply
    // looks the same as for REQ. The multipart message is atomic, so only
    // the first frame can be refused.
    zmq::socket_t* socket = &*eps[0].socket;
    try {
      auto sent = socket->send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      if (!sent) {
        Complete(id, Error::Overloaded("client send queue is full (" + std::to_string(in_flight) + " in flight)"));
        return id;
      }
      (void)socket->send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      Complete(id, Error::Internal(std::string("zmq send: ") + e.what()));
      return id;
    }
    stats.sent++;
    return id;
  }

  void ExpireDeadlines(int64_t now) {
    while (!deadlines.empty() && deadlines.front().first <= now) {
      uint64_t id = deadlines.front().second;
      std::pop_heap(deadlines.begin(), deadlines.end(), std::greater<>());
      deadlines.pop_back();
      if (IsPending(id)) {
        stats.timeouts++;
        if (multi && SlotOf(id).endpoint < 0) {
          Complete(id, Error::Timeout("no daemon was connected within the deadline; the request was not sent"));
        } else {
          Complete(id, Error::Timeout("no reply within the deadline (daemon slow, overloaded or unreachable)"));
        }
      }
    }
  }

  // Several endpoints: idempotent requests unanswered at half their
  // deadline go to another connected endpoint as well (once).
  void DoRetries(int64_t now) {
    while (!retries.empty() && retries.front().first <= now) {
      uint64_t id = retries.front().second;
      std::pop_heap(retries.begin(), retries.end(), std::greater<>());
      retries.pop_back();
      if (!IsPending(id)) continue;
      const int from = SlotOf(id).endpoint;
      if (from >= 0 && Dispatch(id, from, 0)) stats.retries++;
    }
  }

  void OnConnected(size_t index) {
    eps[index].connected = true;
    std::deque<uint64_t> waiting;
    waiting.swap(unsent);
    const int64_t now = NowMs();
    for (uint64_t id : waiting) {
      if (!IsPending(id) || SlotOf(id).endpoint >= 0) continue;
      // The resend point stays half of what is left of the deadline.
      int64_t deadline = now;
      for (const auto& d : deadlines) {
        if (d.second == id) deadline = d.first;
      }
      if (!Dispatch(id, -1, now + (deadline - now) / 2)) unsent.push_back(id);
    }
  }

  // The connection of endpoint `index` dropped: what was in flight on it
  // will not be answered by it.
  void OnDisconnected(size_t index) {
    eps[index].connected = false;
    for (uint64_t id = base_id; id < next_id; id++) {
      if (!IsPending(id) || SlotOf(id).endpoint != static_cast<int>(index)) continue;
      if (SlotOf(id).idempotent) {
        SlotOf(id).endpoint = -1;
        if (Dispatch(id, static_cast<int>(index), 0)) {
          stats.retries++;
        } else {
          unsent.push_back(id);
        }
      } else {
        stats.lost++;
        Complete(id, Error::Unavailable("the connection to " + options.endpoints[index] +
                                        " dropped with the request in flight: it may or may not have been applied"));
      }
    }
  }

  void DrainMonitor(size_t index) {
    zmq::socket_t& m = *eps[index].monitor;
    for (;;) {
      zmq::message_t head;
      try {
        if (!m.recv(head, zmq::recv_flags::dontwait)) return;
        zmq::message_t addr;
        while (head.more() && m.recv(addr, zmq::recv_flags::none) && addr.more()) {
        }
      } catch (const zmq::error_t&) {
        return;
      }
      if (head.size() < 6) continue;
      uint16_t event = 0;
      std::memcpy(&event, head.data(), sizeof(event));
      if (event == ZMQ_EVENT_CONNECTED) {
        OnConnected(index);
      } else if (event == ZMQ_EVENT_DISCONNECTED) {
        OnDisconnected(index);
      }
    }
  }

  void HandleBody(const char* data, size_t len) {
    auto unpacked = UnpackBounded(data, len, limits);
    if (!unpacked.ok() || unpacked->get().type != msgpack::type::MAP) {
      stats.dropped_replies++;
      return;
    }
    const msgpack::object& root = unpacked->get();
    const msgpack::object* id_obj = nullptr;
    const msgpack::object* ok_obj = nullptr;
    const msgpack::object* result = nullptr;
    const msgpack::object* error = nullptr;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
      const auto& kv = root.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      std::string_view k = AsStr(kv.key);
      if (k == "id") id_obj = &kv.val;
      else if (k == "ok") ok_obj = &kv.val;
      else if (k == "result") result = &kv.val;
      else if (k == "error") error = &kv.val;
    }
    if (id_obj == nullptr || id_obj->type != msgpack::type::POSITIVE_INTEGER || !IsPending(id_obj->via.u64)) {
      stats.dropped_replies++;
      return;
    }
    const uint64_t id = id_obj->via.u64;
    stats.replies++;
    if (ok_obj != nullptr && ok_obj->type == msgpack::type::BOOLEAN && ok_obj->via.boolean) {
      msgpack::object r = result != nullptr ? *result : msgpack::object();
      Complete(id, Reply(std::move(unpacked.value()), r));
      return;
    }
    Code code = Code::kInternal;
    std::string message = "malformed error reply";
    if (error != nullptr && error->type == msgpack::type::MAP) {
      message.clear();
      for (uint32_t i = 0; i < error->via.map.size; i++) {
        const auto& kv = error->via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR) continue;
        if (AsStr(kv.key) == "code") {
          auto c = CodeFromName(AsStr(kv.val));
          // An unknown name (a newer daemon) is internal, and the message
          // keeps the name so nothing is lost.
          if (c.has_value() && *c != Code::kOk) {
            code = *c;
          } else {
            message = "unknown error code '" + std::string(AsStr(kv.val)) + "': " + message;
          }
        } else if (AsStr(kv.key) == "message") {
          message += std::string(AsStr(kv.val));
        }
      }
    }
    Complete(id, Error(code, std::move(message)));
  }

  // Reads every message that has arrived, without waiting.
  void DrainIncoming() {
    for (size_t i = 0; i < eps.size(); i++) {
      if (eps[i].monitor) DrainMonitor(i);
      DrainSocket(*eps[i].socket);
    }
  }

  enum class Received { kNothing, kBody, kBroken };

  // One message off `socket`: its first frame received with `flags` (an
  // error there is thrown), then the rest; the body is the last frame and
  // stays in `frame`, envelope frames before it are skipped. kNothing: no
  // message (EAGAIN, or the receive timeout); kBroken: it broke off after
  // its first frame, counted as dropped.
  Received ReceiveMessage(zmq::socket_t& socket, zmq::recv_flags flags) {
    if (!socket.recv(frame, flags)) return Received::kNothing;
    try {
      while (frame.more()) (void)socket.recv(frame, zmq::recv_flags::none);
    } catch (const zmq::error_t&) {
      stats.dropped_replies++;
      return Received::kBroken;
    }
    return Received::kBody;
  }

  void DrainSocket(zmq::socket_t& socket) {
    for (;;) {
      Received got;
      try {
        got = ReceiveMessage(socket, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t&) {
        return;
      }
      if (got == Received::kNothing) return;
      if (got == Received::kBroken) continue;
      HandleBody(static_cast<const char*>(frame.data()), frame.size());
      // A blocking Call() stops at its own reply: reading on until a
      // receive would block costs a poll() and a getpid() per call, and
      // the next Pump() reads before it waits anyway. (ZMQ_FD is then not
      // re-armed: a caller waiting on it drains with Poll(0) first.)
      if (waiting_id != 0 && waited.has_value()) return;
    }
  }

  // Call() with one endpoint: lets libzmq wait in a blocking receive,
  // bounded by the earliest deadline, until `done()`. A blocking receive
  // takes the signal a send may have consumed into account by itself (the
  // socket then has the message), so no read is needed before waiting, and
  // libzmq's own wait on its mailbox replaces a poll() of ZMQ_FD: per call,
  // two poll() and two getpid() fewer than Pump(). Leaves ZMQ_FD unarmed,
  // as socket_handle() says.
  template <typename Done>
  void AwaitOne(Done done) {
    zmq::socket_t& socket = *eps[0].socket;
    for (;;) {
      const int64_t now = NowMs();
      ExpireDeadlines(now);
      if (done()) return;
      // -1: no deadline left (cannot be while a Call() is in flight).
      const int64_t wait = deadlines.empty() ? -1 : std::max<int64_t>(0, deadlines.front().first - now);
      Received got;
      try {
        socket.set(zmq::sockopt::rcvtimeo, static_cast<int>(std::min<int64_t>(wait, INT32_MAX)));
        got = ReceiveMessage(socket, zmq::recv_flags::none);  // kNothing at the deadline: expired above
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (got == Received::kBody) HandleBody(static_cast<const char*>(frame.data()), frame.size());
    }
  }

  // Reads and expires until `done()` or until `until_ms` (steady; < 0:
  // forever). Wakes for the earliest deadline so timeouts are on time.
  template <typename Done>
  void Pump(int64_t until_ms, Done done) {
    for (;;) {
      DrainIncoming();
      int64_t now = NowMs();
      ExpireDeadlines(now);
      if (multi) DoRetries(now);
      if (done()) return;
      if (until_ms >= 0 && now >= until_ms) return;
      int64_t wait = until_ms < 0 ? -1 : until_ms - now;
      if (!deadlines.empty()) {
        int64_t to_deadline = std::max<int64_t>(0, deadlines.front().first - now);
        wait = wait < 0 ? to_deadline : std::min(wait, to_deadline);
      }
      if (!retries.empty()) {
        int64_t to_retry = std::max<int64_t>(0, retries.front().first - now);
        wait = wait < 0 ? to_retry : std::min(wait, to_retry);
      }
      // DrainIncoming ended with a receive that would block, and that re-arms
      // ZMQ_FD (libzmq processes its pending commands before it says
      // EAGAIN), so wait on the fd itself: zmq_poll would query ZMQ_EVENTS
      // before and after, a poll() and a getpid() more each time.
      // With several endpoints: every socket's and monitor's ZMQ_FD.
      for (auto& p : pollfds) p.revents = 0;
      if (::poll(pollfds.data(), pollfds.size(), wait < 0 ? -1 : static_cast<int>(std::min<int64_t>(wait, INT32_MAX))) <
              0 &&
          errno != EINTR) {
        throw zmq::error_t();
      }
    }
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::Create(ClientOptions options) {
  if (options.endpoints.empty()) return Error::InvalidArgument("the client needs at least one endpoint");
  if (!options.tenant.empty() && !IsValidTenantName(options.tenant)) {
    return Error::InvalidArgument("tenant: a tenant name is 1 to 64 bytes of [a-z0-9_.-]");
  }
  Result<bool> wanted = ClientCurveWanted(options.server_public_key, options.client_public_key,
                                          options.client_secret_key);
  if (!wanted.ok()) return wanted.error();
  const bool curve = *wanted;
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  if (impl->options.default_timeout_ms <= 0) impl->options.default_timeout_ms = 5000;
  try {
    impl->context.Use(impl->options.context);
    const size_t n = impl->options.endpoints.size();
    impl->multi = n > 1;
    impl->eps.resize(n);
    for (size_t i = 0; i < n; i++) {
      auto& ep = impl->eps[i];
      ep.socket.emplace(*impl->context, zmq::socket_type::dealer);
      zmq::socket_t& s = *ep.socket;
      // Linger 0: closing must not block on requests nobody will read.
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::sndhwm, impl->options.hwm);
      s.set(zmq::sockopt::rcvhwm, impl->options.hwm);
      if (curve) {
        const ClientOptions& o = impl->options;
        SetClientCurveKeys(s, o.server_public_key, o.client_public_key, o.client_secret_key);
      }
      if (impl->multi) {
        // The monitor first, so that the connection's first event is seen.
        std::string addr = "inproc://torii-client-monitor-" + std::to_string(getpid()) + "-" +
                           std::to_string(g_monitor_serial.fetch_add(1));
        if (zmq_socket_monitor(s.handle(), addr.c_str(), ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) {
          throw zmq::error_t();
        }
        ep.monitor.emplace(*impl->context, zmq::socket_type::pair);
        ep.monitor->set(zmq::sockopt::linger, 0);
        ep.monitor->connect(addr);
        ep.monitor_fd = ep.monitor->get(zmq::sockopt::fd);
        impl->pollfds.push_back(pollfd{ep.monitor_fd, POLLIN, 0});
      } else {
        // One endpoint: the request is queued for it even before it connects.
        ep.connected = true;
      }
      s.connect(impl->options.endpoints[i]);
      ep.fd = s.get(zmq::sockopt::fd);
      impl->pollfds.push_back(pollfd{ep.fd, POLLIN, 0});
    }
  } catch (const zmq::error_t& e) {
    return Error::Internal(std::string("cannot set up the request socket: ") + e.what());
  }
  return Client(std::move(impl));
}

uint64_t Client::Send(std::string_view op, RequestArgs args, const CallOptions& opts) {
  return impl_->Send(op, args, opts);
}

Result<Reply> Client::Call(std::string_view op, RequestArgs args, const CallOptions& opts) {
  Impl& im = *impl_;
  im.waited.reset();
  const uint64_t id = im.Send(op, args, opts);
  im.waiting_id = id;
  if (im.IsPending(id)) {
    auto waited = [&im] { return im.waited.has_value(); };
    if (im.multi) {
      im.Pump(-1, waited);
    } else {
      im.AwaitOne(waited);
    }
  }
  im.waiting_id = 0;
  if (!im.waited.has_value()) {
    // Send() completed it at once (queued as a ready completion before
    // waiting_id was set): take it back from the ready queue.
    for (auto it = im.ready.begin(); it != im.ready.end(); ++it) {
      if (it->id == id) {
        Result<Reply> r = std::move(it->reply);
        im.ready.erase(it);
        return r;
      }
    }
    return Error::Internal("request vanished");
  }
  Result<Reply> r = std::move(*im.waited);
  im.waited.reset();
  return r;
}

size_t Client::Poll(int64_t timeout_ms) {
  Impl& im = *impl_;
  int64_t until = timeout_ms < 0 ? -1 : NowMs() + timeout_ms;
  im.Pump(until, [&im] { return !im.ready.empty(); });
  return im.ready.size();
}

std::optional<Completion> Client::Receive() {
  if (impl_->ready.empty()) return std::nullopt;
  Completion c = std::move(impl_->ready.front());
  impl_->ready.pop_front();
  return c;
}

size_t Client::in_flight() const { return impl_->in_flight; }

void* Client::socket_handle() { return static_cast<void*>(*impl_->eps[0].socket); }

const std::string& Client::tenant() const { return impl_->options.tenant; }

bool Client::connected(size_t index) const { return index < impl_->eps.size() && impl_->eps[index].connected; }

const ClientStats& Client::stats() const { return impl_->stats; }

Result<nlohmann::json> Client::CallJson(std::string_view op, const nlohmann::json& args, const CallOptions& opts) {
  if (!args.is_null() && !args.is_object()) return Error::InvalidArgument("args must be a JSON object");
  auto pack = [&args](Packer& pk) {
    if (args.is_null()) {
      pk.pack_map(0);
    } else {
      PackJson(pk, args);
    }
  };
  auto r = Call(op, pack, opts);
  if (!r.ok()) return r.error();
  return MsgpackToJson(r->result());
}

std::string FormatRfc3339(Micros us) {
  using namespace std::chrono;
  sys_time<microseconds> t{microseconds(us)};
  auto day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss<microseconds> tod{t - day};
  char out[40];
  std::snprintf(out, sizeof(out), "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                static_cast<int>(tod.seconds().count()), static_cast<int>(tod.subseconds().count()));
  return out;
}

nlohmann::json MsgpackToJson(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      if (!std::isfinite(o.via.f64)) return nullptr;
      return o.via.f64;
    case msgpack::type::STR: return std::string(AsStr(o));
    case msgpack::type::BIN: return Base64(o.via.bin.ptr, o.via.bin.size);
    case msgpack::type::EXT:
      if (auto us = MicrosFromTimestamp(o)) return FormatRfc3339(*us);
      return Base64(o.via.ext.data(), o.via.ext.size);
    case msgpack::type::ARRAY: {
      nlohmann::json arr = nlohmann::json::array();
      for (uint32_t i = 0; i < o.via.array.size; i++) arr.push_back(MsgpackToJson(o.via.array.ptr[i]));
      return arr;
    }
    case msgpack::type::MAP: {
      nlohmann::json obj = nlohmann::json::object();
      for (uint32_t i = 0; i < o.via.map.size; i++) {
        const auto& kv = o.via.map.ptr[i];
        std::string key = kv.key.type == msgpack::type::STR ? std::string(AsStr(kv.key)) : MsgpackToJson(kv.key).dump();
        obj[key] = MsgpackToJson(kv.val);
      }
      return obj;
    }
  }
  return nullptr;
}

}  // namespace torii
