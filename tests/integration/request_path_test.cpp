// The request path's wire contract (PROTOCOL.md section 2, "Framing",
// "Request body", "Reply body"): REQ and DEALER framing, envelope echo,
// malformed bodies, id echo, protocol version; against the real toriid on
// a fresh database.
#include <gtest/gtest.h>

#include <cmath>

#include "request_fixture.h"

namespace torii::test {
namespace {

class RequestPathTest : public RequestTest {};

TEST_F(RequestPathTest, ReqSocketGetsReply) {
  WireClient req(daemon().request_endpoint(), WireClient::Kind::kReq);
  req.SendRaw(Req{.op = V("ping"), .id = V(7)}.Encode());
  Reply r = req.Recv();
  ASSERT_TRUE(r.received);
  EXPECT_TRUE(r.envelope.empty()) << "REQ strips the delimiter itself";
  EXPECT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.id().i64(), 7);
  EXPECT_EQ(r.result()["protocol"].i64(), 1);
  EXPECT_TRUE(r.result()["version"].is_str());
  // A REQ socket alternates; a second round trip works too.
  req.SendRaw(Req{.op = V("ping")}.Encode());
  Reply r2 = req.Recv();
  ASSERT_TRUE(r2.received);
  EXPECT_TRUE(r2.ok());
  EXPECT_FALSE(r2.has_id());
}

TEST_F(RequestPathTest, DealerWithDelimiterGetsDelimiterBack) {
  WireClient d(daemon().request_endpoint(), WireClient::Kind::kDealer);
  d.SendRaw(Req{.op = V("ping"), .id = V("a")}.Encode());
  Reply r = d.Recv();
  ASSERT_TRUE(r.received);
  ASSERT_EQ(r.envelope.size(), 1u);
  EXPECT_EQ(r.envelope[0], "");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.id().str(), "a");
}

TEST_F(RequestPathTest, DealerWithoutDelimiterGetsBareBody) {
  WireClient d(daemon().request_endpoint(), WireClient::Kind::kDealerBare);
  d.SendRaw(Req{.op = V("ping"), .id = V(1)}.Encode());
  Reply r = d.Recv();
  ASSERT_TRUE(r.received);
  EXPECT_TRUE(r.envelope.empty());
  EXPECT_TRUE(r.ok()) << r.ToString();
}

TEST_F(RequestPathTest, ExtraEnvelopeFramesAreEchoed) {
  for (auto kind : {WireClient::Kind::kDealer, WireClient::Kind::kDealerBare}) {
    WireClient d(daemon().request_endpoint(), kind);
    std::string binary("\x00\x01\xff", 3);
    d.SendRaw(Req{.op = V("get_user"), .args = V::Map({{"id", "not-a-uuid"}}), .id = V(3)}.Encode(),
              {"route-1", binary, "route-3"});
    Reply r = d.Recv();
    ASSERT_TRUE(r.received);
    std::vector<std::string> want = {"route-1", binary, "route-3"};
    if (kind == WireClient::Kind::kDealer) want.push_back("");
    EXPECT_EQ(r.envelope, want);
    EXPECT_EQ(r.code(), "invalid_argument");
    EXPECT_EQ(r.id().i64(), 3);
  }
}

TEST_F(RequestPathTest, IdIsEchoedUnchangedAndAbsentWhenNotSent) {
  std::vector<V> ids = {V(0), V(-5), V(uint64_t{18446744073709551615ULL}), V("str"), V(nullptr), V(1.5),
                        V::Array({V(1), V("x")}), V::Map({{"k", V::Array({})}}), V::Bin("\x01\x02")};
  for (const V& id : ids) {
    client().SendRaw(Req{.op = V("ping"), .id = id}.Encode());
    Reply r = client().Recv();
    ASSERT_TRUE(r.received);
    EXPECT_TRUE(r.ok());
    ASSERT_TRUE(r.has_id());
    EXPECT_EQ(r.id().bytes(), id.Encode());
  }
  client().SendRaw(Req{.op = V("ping")}.Encode());
  Reply r = client().Recv();
  ASSERT_TRUE(r.received);
  EXPECT_FALSE(r.has_id());
  EXPECT_EQ(r.body.keys(), (std::vector<std::string>{"ok", "result"}));
  // Errors echo the id the same way.
  client().SendRaw(Req{.op = V("no_such_op"), .id = V("e1")}.Encode());
  Reply e = client().Recv();
  EXPECT_EQ(e.code(), "unknown_op");
  EXPECT_EQ(e.id().str(), "e1");
  EXPECT_EQ(e.body.keys(), (std::vector<std::string>{"id", "ok", "error"}));
  EXPECT_FALSE(e.message().empty());
}

struct Malformed {
  const char* name;
  std::string body;
  const char* code;
  bool echoes_id;
};

std::vector<Malformed> MalformedBodies() {
  std::string huge_str_header("\xdb\xff\xff\xff\xf0", 5);  // str32 claiming ~4 GB, no bytes
  return {
      {"empty", "", "bad_request", false},
      {"not msgpack", std::string("\xc1\xc1\xc1", 3), "bad_request", false},
      {"truncated map", std::string("\x82\xa2op", 4), "bad_request", false},
      {"oversized claim", huge_str_header, "bad_request", false},
      {"trailing bytes", V::Map({{"op", "ping"}}).Encode() + "x", "bad_request", false},
      {"array", V::Array({V("ping")}).Encode(), "bad_request", false},
      {"string", V("ping").Encode(), "bad_request", false},
      {"nil", V().Encode(), "bad_request", false},
      {"no op", Req{.id = V(9)}.Encode(), "bad_request", true},
      {"op not a string", Req{.op = V(5), .id = V(9)}.Encode(), "bad_request", true},
      {"op nil", Req{.op = V(), .id = V(9)}.Encode(), "bad_request", true},
      {"args not a map", Req{.op = V("ping"), .args = V::Array({}), .id = V(9)}.Encode(), "bad_request", true},
      {"args with int key", Req{.op = V("get_user"), .args = V::RawMap({{V(1), V("x")}}), .id = V(9)}.Encode(),
       "bad_request", true},
      {"non-string top key", V::RawMap({{V(1), V("x")}, {V("op"), V("ping")}}).Encode(), "bad_request", false},
      {"timeout_ms negative", Req{.op = V("ping"), .id = V(9), .timeout_ms = V(-1)}.Encode(), "bad_request", true},
      {"timeout_ms string", Req{.op = V("ping"), .id = V(9), .timeout_ms = V("1")}.Encode(), "bad_request", true},
      {"v string", Req{.op = V("ping"), .id = V(9), .v = V("1")}.Encode(), "bad_request", true},
      {"actor not a string", Req{.op = V("get_user"), .id = V(9), .actor = V(1)}.Encode(), "bad_request", true},
      {"v 2", Req{.op = V("ping"), .id = V(9), .v = V(2)}.Encode(), "unsupported_version", true},
      {"v 0", Req{.op = V("ping"), .id = V(9), .v = V(0)}.Encode(), "unsupported_version", true},
      {"v -1", Req{.op = V("ping"), .id = V(9), .v = V(-1)}.Encode(), "unsupported_version", true},
      {"unknown op", Req{.op = V("drop_everything"), .id = V(9)}.Encode(), "unknown_op", true},
      {"empty op", Req{.op = V(""), .id = V(9)}.Encode(), "unknown_op", true},
  };
}

TEST_F(RequestPathTest, MalformedBodiesGetErrorRepliesAndDaemonKeepsServing) {
  for (const auto& m : MalformedBodies()) {
    SCOPED_TRACE(m.name);
    client().SendRaw(m.body);
    Reply r = client().Recv();
    ASSERT_TRUE(r.received) << "no reply";
    ASSERT_TRUE(r.body.is_map()) << "reply is not a msgpack map";
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.code(), m.code) << r.ToString();
    EXPECT_FALSE(r.message().empty());
    if (m.echoes_id) {
      EXPECT_EQ(r.id().i64(), 9);
    } else {
      EXPECT_FALSE(r.has_id());
    }
    // Still serving after each.
    Reply p = Call("ping");
    ASSERT_TRUE(p.ok()) << p.ToString();
  }
  // And a database op still works.
  Value u = NewUser();
  EXPECT_TRUE(u["id"].is_str());
  EXPECT_TRUE(daemon().running());
}

TEST_F(RequestPathTest, VersionOneIsAccepted) {
  Reply r = client().Call(Req{.op = V("ping"), .v = V(1)});
  EXPECT_TRUE(r.ok()) << r.ToString();
}

TEST_F(RequestPathTest, OversizedFrameIsRefusedAndDaemonKeepsServing) {
  // max_message_bytes defaults to 1 MiB: ZeroMQ drops the peer's connection
  // for a larger frame; the daemon goes on serving others.
  {
    WireClient big(daemon().request_endpoint());
    std::string huge = Req{.op = V("create_user"),
                           .args = V::Map({{"email", "x@y.z"}, {"password_hash", std::string(2 << 20, 'a')}}),
                           .id = V(1)}
                           .Encode();
    big.SendRaw(huge);
    Reply r = big.Recv(500);
    EXPECT_FALSE(r.received && r.ok());
  }
  Reply p = Call("ping");
  EXPECT_TRUE(p.ok()) << p.ToString();
}

TEST_F(RequestPathTest, IpcEndpointsWork) {
  DaemonProcess ipc({.ipc = true});
  ASSERT_EQ(ipc.request_endpoint().rfind("ipc://", 0), 0u);
  WireClient c(ipc.request_endpoint());
  Reply r = c.Call("ping");
  EXPECT_TRUE(r.ok()) << r.ToString();
}

TEST_F(RequestPathTest, LocalOpsRefuseAnActor) {
  Reply r = client().Call(Req{.op = V("ping"), .actor = V("00000000-0000-0000-0000-000000000001")});
  EXPECT_EQ(r.code(), "invalid_argument") << r.ToString();
  Reply bad = client().Call(Req{.op = V("get_user"), .args = V::Map({{"id", "x"}}), .actor = V("nope")});
  EXPECT_EQ(bad.code(), "invalid_argument") << bad.ToString();
}

TEST_F(RequestPathTest, StatsCountRequestsAndErrors) {
  Reply before = Call("stats");
  ASSERT_TRUE(before.ok()) << before.ToString();
  Value s0 = before.result();
  for (const char* k : {"requests", "errors", "pool"}) EXPECT_TRUE(s0.has(k)) << k;
  for (const char* k : {"size", "idle", "busy", "waiting"}) EXPECT_TRUE(s0["pool"][k].is_int()) << k;
  EXPECT_GE(s0["pool"]["size"].i64(), 1);
  Call("ping");
  Call("no_such_op");
  Value s1 = Call("stats").result();
  EXPECT_EQ(s1["requests"].u64(), s0["requests"].u64() + 3);
  EXPECT_EQ(s1["errors"].u64(), s0["errors"].u64() + 1);
}

}  // namespace
}  // namespace torii::test
