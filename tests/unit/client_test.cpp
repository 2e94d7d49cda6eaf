// torii::Client against an in-process ROUTER socket scripted by each test:
// framing, id matching, error codes, timeouts and late replies, pipelining,
// the JSON bridge, several endpoints and CURVE.
#include "torii/client.h"

#include <poll.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "msgpack_util.h"
#include "eventually.h"
#include "torii/protocol.h"

namespace torii {
namespace {

using test::Clock;
using test::Eventually;
using test::Get;
using test::MsSince;
using test::S;

// A request as the scripted server saw it.
struct Incoming {
  std::string identity;
  size_t frames = 0;
  bool empty_delimiter = false;
  std::string op;
  uint64_t id = 0;
  msgpack::object_handle body;
  const msgpack::object& root() const { return body.get(); }
  const msgpack::object* args() const { return Get(root(), "args"); }
};

std::string OkBody(uint64_t id, const std::function<void(Packer&)>& result) {
  msgpack::sbuffer b;
  Packer pk(b);
  pk.pack_map(3);
  PackStr(pk, "id");
  pk.pack_uint64(id);
  PackStr(pk, "ok");
  pk.pack_true();
  PackStr(pk, "result");
  result(pk);
  return {b.data(), b.size()};
}

std::string ErrBody(uint64_t id, std::string_view code, std::string_view message) {
  msgpack::sbuffer b;
  Packer pk(b);
  pk.pack_map(3);
  PackStr(pk, "id");
  pk.pack_uint64(id);
  PackStr(pk, "ok");
  pk.pack_false();
  PackStr(pk, "error");
  pk.pack_map(2);
  PackStr(pk, "code");
  PackStr(pk, code);
  PackStr(pk, "message");
  PackStr(pk, message);
  return {b.data(), b.size()};
}

// A ROUTER socket on its own thread. For each request the handler decides
// what to send back, when, and with which framing, by calling Reply().
class ScriptedRouter {
 public:
  using Handler = std::function<void(const Incoming&, ScriptedRouter&)>;

  ScriptedRouter(zmq::context_t& ctx, Handler handler, zmq::socket_t* prepared = nullptr)
      : socket_(prepared ? std::move(*prepared) : zmq::socket_t(ctx, zmq::socket_type::router)),
        handler_(std::move(handler)) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndhwm, 0);
    socket_.set(zmq::sockopt::rcvhwm, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Run(); });
  }
  ~ScriptedRouter() {
    stop_ = true;
    thread_.join();
  }

  const std::string& endpoint() const { return endpoint_; }
  int requests() const { return requests_.load(); }

  // Called from the handler (server thread). `with_delimiter` false sends
  // [identity, body] only.
  void Reply(const Incoming& in, std::string body, int delay_ms = 0, bool with_delimiter = true) {
    scheduled_.push_back({Clock::now() + std::chrono::milliseconds(delay_ms), in.identity, std::move(body),
                          with_delimiter});
  }

 private:
  struct Out {
    Clock::time_point at;
    std::string identity;
    std::string body;
    bool delimiter;
  };

  void Run() {
    while (!stop_) {
      zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(2));
      for (;;) {
        std::vector<zmq::message_t> frames;
        zmq::message_t m;
        if (!socket_.recv(m, zmq::recv_flags::dontwait)) break;
        frames.push_back(std::move(m));
        while (frames.back().more()) {
          zmq::message_t next;
          (void)socket_.recv(next, zmq::recv_flags::none);
          frames.push_back(std::move(next));
        }
        Incoming in;
        in.identity = frames[0].to_string();
        in.frames = frames.size();
        in.empty_delimiter = frames.size() == 3 && frames[1].size() == 0;
        in.body = msgpack::unpack(static_cast<const char*>(frames.back().data()), frames.back().size());
        if (auto op = Get(in.root(), "op")) in.op = std::string(S(*op));
        if (auto id = Get(in.root(), "id")) in.id = id->via.u64;
        requests_++;
        handler_(in, *this);
      }
      auto now = Clock::now();
      for (auto it = scheduled_.begin(); it != scheduled_.end();) {
        if (it->at <= now) {
          socket_.send(zmq::buffer(it->identity), zmq::send_flags::sndmore);
          if (it->delimiter) socket_.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
          socket_.send(zmq::buffer(it->body), zmq::send_flags::none);
          it = scheduled_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  zmq::socket_t socket_;
  Handler handler_;
  std::string endpoint_;
  std::vector<Out> scheduled_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Replies to every request with {"op": op, "n": args.n} at once.
void EchoHandler(const Incoming& in, ScriptedRouter& r) {
  const msgpack::object* n = in.args() ? Get(*in.args(), "n") : nullptr;
  int64_t nv = n ? static_cast<int64_t>(n->via.u64) : -1;
  r.Reply(in, OkBody(in.id, [&](Packer& pk) {
            pk.pack_map(2);
            PackStr(pk, "op");
            PackStr(pk, in.op);
            PackStr(pk, "n");
            pk.pack_int64(nv);
          }));
}

Client MakeClient(std::vector<std::string> endpoints, int64_t timeout_ms = 2000) {
  ClientOptions o;
  o.endpoints = std::move(endpoints);
  o.default_timeout_ms = timeout_ms;
  auto c = Client::Create(std::move(o));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().ToString());
  return std::move(c.value());
}

auto ArgN(int64_t n) {
  return [n](Packer& pk) {
    pk.pack_map(1);
    PackStr(pk, "n");
    pk.pack_int64(n);
  };
}

TEST(ClientTest, CallSendsTheProtocolsRequestBodyAndReadsTheResult) {
  zmq::context_t ctx;
  std::mutex mu;
  Incoming seen;
  ScriptedRouter router(ctx, [&](const Incoming& in, ScriptedRouter& r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.identity = in.identity;
      seen.frames = in.frames;
      seen.empty_delimiter = in.empty_delimiter;
      seen.op = in.op;
      seen.id = in.id;
      msgpack::object_handle copy = msgpack::clone(in.root());
      seen.body = std::move(copy);
    }
    r.Reply(in, OkBody(in.id, [](Packer& pk) {
              pk.pack_map(2);
              PackStr(pk, "version");
              PackStr(pk, "9.9.9");
              PackStr(pk, "protocol");
              pk.pack_uint8(1);
            }));
  });
  Client client = MakeClient({router.endpoint()});
  CallOptions opts;
  opts.timeout_ms = 1234;
  opts.actor = "6f1c9a8e-0000-4000-8000-000000000001";
  auto r = client.Call("ping", ArgN(7), opts);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(S(*Get(r->result(), "version")), "9.9.9");
  EXPECT_EQ(Get(r->result(), "protocol")->via.u64, 1u);

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen.frames, 3u);  // identity, empty delimiter, body
  EXPECT_TRUE(seen.empty_delimiter);
  EXPECT_EQ(seen.op, "ping");
  EXPECT_GT(seen.id, 0u);
  const msgpack::object& b = seen.body.get();
  ASSERT_NE(Get(b, "v"), nullptr);
  EXPECT_EQ(Get(b, "v")->via.u64, 1u);
  ASSERT_NE(Get(b, "timeout_ms"), nullptr);
  EXPECT_EQ(Get(b, "timeout_ms")->via.u64, 1234u);
  ASSERT_NE(Get(b, "actor"), nullptr);
  EXPECT_EQ(S(*Get(b, "actor")), opts.actor);
  ASSERT_NE(Get(b, "args"), nullptr);
  EXPECT_EQ(Get(*Get(b, "args"), "n")->via.i64, 7);
}

// The keys of each request body, in order, as the router saw them.
std::vector<std::string> BodyKeys(const msgpack::object& body) {
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < body.via.map.size; i++) keys.emplace_back(S(body.via.map.ptr[i].key));
  return keys;
}

TEST(ClientTest, TenantIsSentOnlyWhenSet) {
  zmq::context_t ctx;
  std::mutex mu;
  std::vector<msgpack::object_handle> bodies;
  ScriptedRouter router(ctx, [&](const Incoming& in, ScriptedRouter& r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      bodies.push_back(msgpack::clone(in.root()));
    }
    r.Reply(in, OkBody(in.id, [](Packer& pk) { pk.pack_map(0); }));
  });
  // Unset: the body is exactly what it was before tenants.
  Client plain = MakeClient({router.endpoint()});
  ASSERT_TRUE(plain.Call("ping").ok());
  ClientOptions o;
  o.endpoints = {router.endpoint()};
  o.tenant = "acme";
  auto acme = Client::Create(o);
  ASSERT_TRUE(acme.ok()) << acme.error().ToString();
  ASSERT_TRUE(acme->Call("ping").ok());
  CallOptions as_user;
  as_user.actor = "6f1c9a8e-0000-4000-8000-000000000001";
  ASSERT_TRUE(acme->Call("get_user", {}, as_user).ok());

  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(BodyKeys(bodies[0].get()), (std::vector<std::string>{"v", "id", "op", "timeout_ms", "args"}));
  EXPECT_EQ(BodyKeys(bodies[1].get()), (std::vector<std::string>{"v", "id", "op", "timeout_ms", "tenant", "args"}));
  EXPECT_EQ(S(*Get(bodies[1].get(), "tenant")), "acme");
  EXPECT_EQ(BodyKeys(bodies[2].get()),
            (std::vector<std::string>{"v", "id", "op", "timeout_ms", "actor", "tenant", "args"}));
  EXPECT_EQ(S(*Get(bodies[2].get(), "tenant")), "acme");
}

TEST(ClientTest, CreateRejectsAMalformedTenant) {
  for (std::string bad : {std::string("Acme"), std::string("acme corp"), std::string(65, 'a'), std::string("a/b"),
                          std::string("@acme")}) {
    SCOPED_TRACE(bad);
    ClientOptions o;
    o.endpoints = {"tcp://127.0.0.1:1"};
    o.tenant = bad;
    auto r = Client::Create(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("[a-z0-9_.-]"), std::string::npos) << r.error().message();
  }
  ClientOptions longest;
  longest.endpoints = {"tcp://127.0.0.1:1"};
  longest.tenant = std::string(64, 'a');
  EXPECT_TRUE(Client::Create(longest).ok());
}

TEST(ClientTest, ArgsMayBeAlreadyPackedOrAbsent) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    const msgpack::object* a = in.args();
    bool is_map = a != nullptr && a->type == msgpack::type::MAP;
    uint32_t size = is_map ? a->via.map.size : 999;
    r.Reply(in, OkBody(in.id, [&](Packer& pk) { pk.pack_uint32(is_map ? size : 999); }));
  });
  Client client = MakeClient({router.endpoint()});
  auto none = client.Call("ping");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->result().via.u64, 0u);  // absent args are sent as {}

  msgpack::sbuffer packed;
  Packer pk(packed);
  pk.pack_map(2);
  PackStr(pk, "a");
  pk.pack_true();
  PackStr(pk, "b");
  pk.pack_nil();
  auto two = client.Call("ping", packed);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->result().via.u64, 2u);
}

TEST(ClientTest, ErrorRepliesMapToCodes) {
  struct Case {
    const char* wire;
    Code code;
  };
  const Case cases[] = {
      {"bad_request", Code::kBadRequest},   {"unsupported_version", Code::kUnsupportedVersion},
      {"unknown_op", Code::kUnknownOp},     {"invalid_argument", Code::kInvalidArgument},
      {"not_found", Code::kNotFound},       {"duplicate", Code::kDuplicate},
      {"foreign_key", Code::kForeignKey},   {"forbidden", Code::kForbidden},
      {"timeout", Code::kTimeout},          {"overloaded", Code::kOverloaded},
      {"unavailable", Code::kUnavailable},  {"storage", Code::kStorage},
      {"internal", Code::kInternal},        {"conflict", Code::kConflict},
      {"brand_new_code", Code::kInternal},
      {"ok", Code::kInternal},
  };
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    std::string code(S(*Get(*in.args(), "code")));
    r.Reply(in, ErrBody(in.id, code, "because " + code));
  });
  Client client = MakeClient({router.endpoint()});
  for (const auto& c : cases) {
    auto r = client.Call("fail", [&](Packer& pk) {
      pk.pack_map(1);
      PackStr(pk, "code");
      PackStr(pk, c.wire);
    });
    ASSERT_FALSE(r.ok()) << c.wire;
    EXPECT_EQ(r.error().code(), c.code) << c.wire;
    EXPECT_NE(r.error().message().find(std::string("because ") + c.wire), std::string::npos)
        << r.error().message();
    if (c.code == Code::kInternal && std::string_view(c.wire) != "internal") {
      EXPECT_NE(r.error().message().find(c.wire), std::string::npos);  // the unknown name is kept
    }
  }
}

TEST(ClientTest, TimeoutLeavesTheClientUsableAndDropsTheLateReply) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    int delay = in.op == "slow" ? 300 : 0;
    r.Reply(in, OkBody(in.id, [&](Packer& pk) { PackStr(pk, in.op); }), delay);
  });
  Client client = MakeClient({router.endpoint()});
  CallOptions quick;
  quick.timeout_ms = 100;
  auto start = Clock::now();
  auto slow = client.Call("slow", {}, quick);
  int64_t took = MsSince(start);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.error().code(), Code::kTimeout);
  EXPECT_GE(took, 95);
  EXPECT_LT(took, 290);
  EXPECT_EQ(client.in_flight(), 0u);

  // The late reply to "slow" arrives while this call waits; it must not be
  // taken for the answer.
  auto start2 = Clock::now();
  while (client.stats().dropped_replies == 0 && MsSince(start2) < 3000) {
    auto fast = client.Call("fast");
    ASSERT_TRUE(fast.ok()) << fast.error().ToString();
    EXPECT_EQ(S(fast->result()), "fast");
    client.Poll(20);
  }
  EXPECT_EQ(client.stats().dropped_replies, 1u);
  EXPECT_EQ(client.stats().timeouts, 1u);
  EXPECT_FALSE(client.Receive().has_value());  // nothing leaked into the async queue
}

TEST(ClientTest, RepliesWithUnknownIdsAreDropped) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    r.Reply(in, OkBody(in.id + 1000, [](Packer& pk) { PackStr(pk, "wrong"); }));
    r.Reply(in, "\xc1 not msgpack");  // undecodable
    r.Reply(in, OkBody(in.id, [](Packer& pk) { PackStr(pk, "right"); }), 20);
  });
  Client client = MakeClient({router.endpoint()});
  auto r = client.Call("ping");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(S(r->result()), "right");
  EXPECT_EQ(client.stats().dropped_replies, 2u);
}

TEST(ClientTest, AcceptsRepliesWithoutTheEmptyDelimiter) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    r.Reply(in, OkBody(in.id, [](Packer& pk) { pk.pack_uint8(42); }), 0, /*with_delimiter=*/false);
  });
  Client client = MakeClient({router.endpoint()});
  auto r = client.Call("ping");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result().via.u64, 42u);
}

TEST(ClientTest, PipelinesThousandsOfRequestsAndMatchesRepliesById) {
  constexpr int kRequests = 5000;
  zmq::context_t ctx;
  // The server holds every request and answers them all in reverse order,
  // so matching cannot rely on arrival order.
  std::vector<Incoming> held;
  ScriptedRouter router(ctx, [&held](const Incoming& in, ScriptedRouter& r) {
    held.push_back(Incoming{in.identity, in.frames, in.empty_delimiter, in.op, in.id, msgpack::clone(in.root())});
    if (held.size() < kRequests) return;
    for (auto it = held.rbegin(); it != held.rend(); ++it) EchoHandler(*it, r);
    held.clear();
  });
  Client client = MakeClient({router.endpoint()}, 10000);
  std::map<uint64_t, int64_t> sent;
  for (int i = 0; i < kRequests; i++) {
    uint64_t id = client.Send("echo", ArgN(i));
    ASSERT_TRUE(sent.emplace(id, i).second) << "duplicate id " << id;
  }
  EXPECT_EQ(client.in_flight(), static_cast<size_t>(kRequests));
  int got = 0;
  auto start = Clock::now();
  while (got < kRequests && MsSince(start) < 20000) {
    client.Poll(100);
    while (auto c = client.Receive()) {
      ASSERT_TRUE(c->reply.ok()) << c->reply.error().ToString();
      auto it = sent.find(c->id);
      ASSERT_NE(it, sent.end());
      EXPECT_EQ(Get(c->reply->result(), "n")->via.i64, it->second);
      sent.erase(it);
      got++;
    }
  }
  EXPECT_EQ(got, kRequests);
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(client.in_flight(), 0u);
  EXPECT_EQ(client.stats().dropped_replies, 0u);
}

TEST(ClientTest, AsyncRequestsTimeOutInPoll) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    if (in.op == "answered") EchoHandler(in, r);
  });
  Client client = MakeClient({router.endpoint()});
  CallOptions opts;
  opts.timeout_ms = 80;
  uint64_t a = client.Send("ignored", {}, opts);
  uint64_t b = client.Send("answered", ArgN(5), opts);
  uint64_t c = client.Send("ignored", {}, opts);
  std::map<uint64_t, Code> done;
  auto start = Clock::now();
  while (done.size() < 3 && MsSince(start) < 3000) {
    client.Poll(500);
    while (auto x = client.Receive()) done[x->id] = x->reply.ok() ? Code::kOk : x->reply.error().code();
  }
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[a], Code::kTimeout);
  EXPECT_EQ(done[b], Code::kOk);
  EXPECT_EQ(done[c], Code::kTimeout);
  EXPECT_EQ(client.in_flight(), 0u);
  // A Poll with nothing in flight waits its timeout and reports nothing.
  EXPECT_EQ(client.Poll(10), 0u);
}

TEST(ClientTest, BlockingCallKeepsOtherRepliesForReceive) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, EchoHandler);
  Client client = MakeClient({router.endpoint()});
  uint64_t pending = client.Send("echo", ArgN(1));
  auto r = client.Call("echo", ArgN(2));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Get(r->result(), "n")->via.i64, 2);
  Eventually([&] { return client.Poll(100) != 0; }, 3000, [] {});
  auto c = client.Receive();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->id, pending);
  EXPECT_EQ(Get(c->reply->result(), "n")->via.i64, 1);
}

// A blocking Call() returns at its own reply and leaves ZMQ_FD unarmed; a
// caller that waits on the fd re-arms it with Poll(0) (client.h), and the
// fd then signals the next reply.
TEST(ClientTest, ZmqFdSignalsTheNextReplyAfterCallAndPollZero) {
  zmq::context_t ctx;
  ScriptedRouter router(ctx, [](const Incoming& in, ScriptedRouter& r) {
    // The scripted server's own pace: the reply comes after the caller waits.
    if (in.op == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EchoHandler(in, r);
  });
  Client client = MakeClient({router.endpoint()});
  for (int round = 0; round < 3; round++) {
    ASSERT_TRUE(client.Call("echo", ArgN(round)).ok());
    uint64_t id = client.Send("slow", ArgN(round));
    client.Poll(0);
    ASSERT_FALSE(client.Receive().has_value()) << "the slow reply came before the wait";
    int fd = -1;
    size_t len = sizeof(fd);
    ASSERT_EQ(zmq_getsockopt(client.socket_handle(), ZMQ_FD, &fd, &len), 0);
    std::optional<Completion> got;
    auto start = Clock::now();
    while (!got.has_value() && MsSince(start) < 3000) {
      pollfd p{fd, POLLIN, 0};
      ASSERT_GT(::poll(&p, 1, 3000), 0) << "ZMQ_FD did not signal the reply";
      client.Poll(0);
      got = client.Receive();
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->id, id);
  }
}

TEST(ClientTest, UnreachableDaemonIsATimeout) {
  zmq::context_t ctx;
  std::string endpoint;
  {
    // Bind then close: a port on which nothing listens.
    zmq::socket_t s(ctx, zmq::socket_type::router);
    s.bind("tcp://127.0.0.1:*");
    endpoint = s.get(zmq::sockopt::last_endpoint);
  }
  Client client = MakeClient({endpoint}, 150);
  auto start = Clock::now();
  auto r = client.Call("ping");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kTimeout);
  EXPECT_GE(MsSince(start), 140);
}

TEST(ClientTest, SpreadsRequestsOverSeveralEndpoints) {
  zmq::context_t ctx;
  ScriptedRouter a(ctx, EchoHandler);
  ScriptedRouter b(ctx, EchoHandler);
  Client client = MakeClient({a.endpoint(), b.endpoint()});
  // DEALER round-robins over connected peers; wait until both have
  // answered once, then count.
  auto start = Clock::now();
  while ((a.requests() == 0 || b.requests() == 0) && MsSince(start) < 5000) {
    auto r = client.Call("echo", ArgN(1));
    ASSERT_TRUE(r.ok());
  }
  EXPECT_GT(a.requests(), 0);
  EXPECT_GT(b.requests(), 0);
}

// Polls the client until every endpoint is connected (several endpoints).
bool WaitConnected(Client& client, size_t n) {
  return Eventually(
      [&] {
        bool all = true;
        for (size_t i = 0; i < n; i++) all = all && client.connected(i);
        return all;
      },
      5000, [&] { client.Poll(10); });
}

// Replies to nothing: a daemon that hangs, or dies with the request.
void SwallowHandler(const Incoming&, ScriptedRouter&) {}

TEST(ClientTest, IdempotentOpsAreTheReadOnlyOnes) {
  for (const char* op : {"ping", "stats", "get_user", "get_session", "list_users", "search_users", "check_token",
                         "login_failures", "get_user_lock", "is_jwt_revoked", "list_jwt_revocations"}) {
    EXPECT_TRUE(IsIdempotentOp(op)) << op;
  }
  for (const char* op : {"create_user", "delete_session", "get_or_create_user", "take_oauth_state", "use_token",
                         "record_login_failure", "revoke_jwt", "no_such_op"}) {
    EXPECT_FALSE(IsIdempotentOp(op)) << op;
  }
}

TEST(ClientTest, ADroppedConnectionResendsReadsAndFailsWritesAtOnce) {
  zmq::context_t ctx;
  std::optional<ScriptedRouter> dead(std::in_place, ctx, SwallowHandler);
  ScriptedRouter alive(ctx, EchoHandler);
  const int64_t deadline = 4000;
  Client client = MakeClient({dead->endpoint(), alive.endpoint()}, deadline);
  ASSERT_TRUE(WaitConnected(client, 2));
  // Round-robin: half of these land on the daemon that never answers.
  std::vector<uint64_t> reads, writes;
  for (int i = 0; i < 4; i++) reads.push_back(client.Send("get_user", ArgN(i)));
  for (int i = 0; i < 4; i++) writes.push_back(client.Send("create_user", ArgN(10 + i)));
  auto start = Clock::now();
  Eventually([&] { return dead->requests() >= 4; }, 5000, [&] { client.Poll(10); });
  ASSERT_EQ(dead->requests(), 4);
  dead.reset();  // the daemon dies: its connection drops
  std::map<uint64_t, Completion> done;
  while (done.size() < 8 && MsSince(start) < 10000) {
    client.Poll(50);
    while (auto c = client.Receive()) done.emplace(c->id, std::move(*c));
  }
  ASSERT_EQ(done.size(), 8u);
  // Well before half the deadline: the drop, not a timer, settled them.
  EXPECT_LT(MsSince(start), deadline / 2);
  for (uint64_t id : reads) {
    ASSERT_TRUE(done.at(id).reply.ok()) << done.at(id).reply.error().ToString();
  }
  int unavailable = 0;
  for (uint64_t id : writes) {
    const auto& r = done.at(id).reply;
    if (r.ok()) continue;
    EXPECT_EQ(r.error().code(), Code::kUnavailable);
    EXPECT_NE(r.error().message().find("may or may not have been applied"), std::string::npos);
    unavailable++;
  }
  EXPECT_EQ(unavailable, 2);  // the writes on the dead daemon, never resent
  EXPECT_EQ(client.stats().lost, 2u);
  EXPECT_EQ(client.stats().retries, 2u);
  EXPECT_EQ(alive.requests(), 4 + 2);
  // Nothing waits behind the dead peer afterwards: every request goes to
  // the live one, reads and writes.
  EXPECT_FALSE(client.connected(0));
  for (int i = 0; i < 20; i++) {
    auto s = Clock::now();
    auto r = client.Call(i % 2 ? "create_user" : "get_user", ArgN(i));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_LT(MsSince(s), 1000);
  }
}

TEST(ClientTest, AReadUnansweredAtHalfItsDeadlineGoesToAnotherDaemon) {
  zmq::context_t ctx;
  ScriptedRouter hung(ctx, SwallowHandler);
  ScriptedRouter alive(ctx, EchoHandler);
  Client client = MakeClient({hung.endpoint(), alive.endpoint()}, 600);
  ASSERT_TRUE(WaitConnected(client, 2));
  int retried_reads = 0;
  for (int i = 0; i < 4; i++) {
    auto s = Clock::now();
    auto r = client.Call("get_session", ArgN(i));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    if (MsSince(s) >= 250) retried_reads++;
    EXPECT_LT(MsSince(s), 600);
  }
  EXPECT_GE(retried_reads, 1);
  EXPECT_EQ(client.stats().retries, static_cast<uint64_t>(retried_reads));
  // A write that lands on the hung daemon is not resent: it times out.
  int timeouts = 0;
  for (int i = 0; i < 4; i++) {
    auto r = client.Call("delete_session", ArgN(i));
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), Code::kTimeout);
      timeouts++;
    }
  }
  EXPECT_GE(timeouts, 1);
  EXPECT_EQ(client.stats().retries, static_cast<uint64_t>(retried_reads));
  // Every read reached the live daemon once, every write at most once.
  EXPECT_EQ(alive.requests(), 4 + (4 - timeouts));
  EXPECT_EQ(hung.requests(), retried_reads + timeouts);
}

TEST(ClientTest, WithNoDaemonConnectedARequestWaitsUnsentUntilItsDeadline) {
  std::vector<std::string> endpoints;
  {
    // Bind then close: ports on which nothing listens. The context's end
    // waits until the listeners are really closed.
    zmq::context_t ctx;
    for (int i = 0; i < 2; i++) {
      zmq::socket_t s(ctx, zmq::socket_type::router);
      s.set(zmq::sockopt::linger, 0);
      s.bind("tcp://127.0.0.1:*");
      endpoints.push_back(s.get(zmq::sockopt::last_endpoint));
    }
  }
  Client client = MakeClient(endpoints, 200);
  auto r = client.Call("create_user");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kTimeout);
  EXPECT_NE(r.error().message().find("not sent"), std::string::npos);
}

TEST(ClientTest, CreateRejectsBadOptions) {
  ClientOptions none;
  EXPECT_EQ(Client::Create(none).error().code(), Code::kInvalidArgument);
  ClientOptions bad_curve;
  bad_curve.endpoints = {"tcp://127.0.0.1:1"};
  bad_curve.server_public_key = "short";
  auto r = Client::Create(bad_curve);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  ClientOptions bad_endpoint;
  bad_endpoint.endpoints = {"nonsense://x"};
  EXPECT_FALSE(Client::Create(bad_endpoint).ok());
}

TEST(ClientTest, TalksCurveWhenGivenKeys) {
  if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  char server_pub[41], server_sec[41], client_pub[41], client_sec[41];
  ASSERT_EQ(zmq_curve_keypair(server_pub, server_sec), 0);
  ASSERT_EQ(zmq_curve_keypair(client_pub, client_sec), 0);
  zmq::context_t ctx;
  zmq::socket_t prepared(ctx, zmq::socket_type::router);
  prepared.set(zmq::sockopt::curve_server, 1);
  prepared.set(zmq::sockopt::curve_secretkey, std::string(server_sec));
  ScriptedRouter router(ctx, EchoHandler, &prepared);

  ClientOptions o;
  o.endpoints = {router.endpoint()};
  o.default_timeout_ms = 3000;
  o.server_public_key = server_pub;
  o.client_public_key = client_pub;
  o.client_secret_key = client_sec;
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto r = c->Call("echo", ArgN(3));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Get(r->result(), "n")->via.i64, 3);

  // The wrong server key: the handshake fails, which looks like silence.
  char other_pub[41], other_sec[41];
  ASSERT_EQ(zmq_curve_keypair(other_pub, other_sec), 0);
  o.server_public_key = other_pub;
  o.default_timeout_ms = 200;
  auto wrong = Client::Create(o);
  ASSERT_TRUE(wrong.ok());
  auto w = wrong->Call("echo", ArgN(3));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), Code::kTimeout);
}

TEST(ClientTest, CallJsonConvertsBothWays) {
  zmq::context_t ctx;
  std::mutex mu;
  std::map<std::string, msgpack::type::object_type> arg_types;
  ScriptedRouter router(ctx, [&](const Incoming& in, ScriptedRouter& r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      const msgpack::object& a = *in.args();
      for (uint32_t i = 0; i < a.via.map.size; i++) arg_types[std::string(S(a.via.map.ptr[i].key))] = a.via.map.ptr[i].val.type;
    }
    r.Reply(in, OkBody(in.id, [](Packer& pk) {
              pk.pack_map(6);
              PackStr(pk, "at");
              PackTimestamp(pk, 1704164645123456);  // 2024-01-02T03:04:05.123456Z
              PackStr(pk, "epoch0");
              PackTimestamp(pk, 0);
              PackStr(pk, "raw");
              pk.pack_bin(3);
              pk.pack_bin_body("\x01\x02\x03", 3);
              PackStr(pk, "list");
              pk.pack_array(3);
              pk.pack_int64(-5);
              pk.pack_nil();
              pk.pack_double(1.5);
              PackStr(pk, "flag");
              pk.pack_true();
              PackStr(pk, "nested");
              pk.pack_map(1);
              PackStr(pk, "k");
              PackStr(pk, "v");
            }));
  });
  Client client = MakeClient({router.endpoint()});
  nlohmann::json args = {{"when", "2024-01-02T03:04:05Z"}, {"n", 3},       {"neg", -4},
                         {"f", 2.5},                       {"b", false},    {"z", nullptr},
                         {"arr", {1, "two"}},              {"obj", {{"x", 1}}}};
  auto r = client.CallJson("anything", args);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(arg_types["when"], msgpack::type::STR);  // not turned into a timestamp
    EXPECT_EQ(arg_types["n"], msgpack::type::POSITIVE_INTEGER);
    EXPECT_EQ(arg_types["neg"], msgpack::type::NEGATIVE_INTEGER);
    EXPECT_EQ(arg_types["f"], msgpack::type::FLOAT64);
    EXPECT_EQ(arg_types["b"], msgpack::type::BOOLEAN);
    EXPECT_EQ(arg_types["z"], msgpack::type::NIL);
    EXPECT_EQ(arg_types["arr"], msgpack::type::ARRAY);
    EXPECT_EQ(arg_types["obj"], msgpack::type::MAP);
  }
  const nlohmann::json& j = r.value();
  EXPECT_EQ(j["at"], "2024-01-02T03:04:05.123456Z");
  EXPECT_EQ(j["epoch0"], "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(j["raw"], "AQID");
  EXPECT_EQ(j["list"], nlohmann::json::parse(R"([-5, null, 1.5])"));
  EXPECT_EQ(j["flag"], true);
  EXPECT_EQ(j["nested"]["k"], "v");

  auto bad = client.CallJson("anything", nlohmann::json::array({1}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Code::kInvalidArgument);
}

TEST(ClientTest, FormatsTimestampsBeforeTheEpoch) {
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatRfc3339(951782400000000), "2000-02-29T00:00:00.000000Z");
}

}  // namespace
}  // namespace torii
