// Unit tests of lib/torii/protocol: request decoding (every bad_request
// case, versions, id echo, decoder limits), reply encoding, the argument
// getters' type rules, metadata between msgpack and JSON, and timestamps.
#include "torii/protocol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace torii {
namespace {

using Build = std::function<void(Packer&)>;

std::string Pack(const Build& build) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  build(pk);
  return std::string(buf.data(), buf.size());
}

void Str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

Status Decode(const std::string& body, Request* out, const DecodeLimits& limits = {}) {
  return DecodeRequest(body.data(), body.size(), limits, out);
}

// A request map with the given key/value builders.
std::string RequestBody(std::vector<std::pair<std::string, Build>> kvs) {
  return Pack([&](Packer& pk) {
    pk.pack_map(static_cast<uint32_t>(kvs.size()));
    for (auto& [k, v] : kvs) {
      Str(pk, k);
      v(pk);
    }
  });
}

Build S(std::string s) {
  return [s](Packer& pk) { Str(pk, s); };
}
Build I(int64_t v) {
  return [v](Packer& pk) { pk.pack_int64(v); };
}
const Build kNil = [](Packer& pk) { pk.pack_nil(); };

struct DecodeCase {
  const char* name;
  std::string body;
  Code want;
};

class DecodeErrorTest : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(DecodeErrorTest, Refused) {
  Request req;
  auto st = Decode(GetParam().body, &req);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(CodeName(st.error().code()), CodeName(GetParam().want)) << st.error().message();
  EXPECT_FALSE(st.error().message().empty());
}

std::string WithTrailingByte() { return RequestBody({{"op", S("ping")}}) + std::string(1, '\xc0'); }

INSTANTIATE_TEST_SUITE_P(
    Cases, DecodeErrorTest,
    ::testing::Values(
        DecodeCase{"Empty", "", Code::kBadRequest},
        DecodeCase{"NeverUsedByte", std::string(1, '\xc1'), Code::kBadRequest},
        DecodeCase{"TruncatedMap", std::string(1, '\x81'), Code::kBadRequest},
        DecodeCase{"TruncatedString", std::string("\x81\xa2op\xa4pi", 7), Code::kBadRequest},
        DecodeCase{"TrailingBytes", WithTrailingByte(), Code::kBadRequest},
        DecodeCase{"Array", Pack([](Packer& pk) { pk.pack_array(1); Str(pk, "ping"); }), Code::kBadRequest},
        DecodeCase{"String", Pack([](Packer& pk) { Str(pk, "ping"); }), Code::kBadRequest},
        DecodeCase{"Integer", Pack([](Packer& pk) { pk.pack_int(1); }), Code::kBadRequest},
        DecodeCase{"Nil", Pack([](Packer& pk) { pk.pack_nil(); }), Code::kBadRequest},
        DecodeCase{"NonStringKey", Pack([](Packer& pk) {
                     pk.pack_map(2);
                     Str(pk, "op");
                     Str(pk, "ping");
                     pk.pack_int(1);
                     pk.pack_int(2);
                   }), Code::kBadRequest},
        DecodeCase{"NoOp", RequestBody({{"args", [](Packer& pk) { pk.pack_map(0); }}}), Code::kBadRequest},
        DecodeCase{"EmptyMap", RequestBody({}), Code::kBadRequest},
        DecodeCase{"OpNotString", RequestBody({{"op", I(5)}}), Code::kBadRequest},
        DecodeCase{"OpNil", RequestBody({{"op", kNil}}), Code::kBadRequest},
        DecodeCase{"OpBinary", RequestBody({{"op", [](Packer& pk) { pk.pack_bin(4); pk.pack_bin_body("ping", 4); }}}),
                   Code::kBadRequest},
        DecodeCase{"ArgsArray", RequestBody({{"op", S("ping")}, {"args", [](Packer& pk) { pk.pack_array(0); }}}),
                   Code::kBadRequest},
        DecodeCase{"ArgsString", RequestBody({{"op", S("ping")}, {"args", S("x")}}), Code::kBadRequest},
        DecodeCase{"ArgsNonStringKey", RequestBody({{"op", S("ping")}, {"args", [](Packer& pk) {
                                                      pk.pack_map(1);
                                                      pk.pack_int(1);
                                                      pk.pack_int(2);
                                                    }}}),
                   Code::kBadRequest},
        DecodeCase{"TimeoutNegative", RequestBody({{"op", S("ping")}, {"timeout_ms", I(-1)}}), Code::kBadRequest},
        DecodeCase{"TimeoutString", RequestBody({{"op", S("ping")}, {"timeout_ms", S("100")}}), Code::kBadRequest},
        DecodeCase{"TimeoutFloat", RequestBody({{"op", S("ping")}, {"timeout_ms", [](Packer& pk) { pk.pack_double(1.5); }}}),
                   Code::kBadRequest},
        DecodeCase{"ActorInteger", RequestBody({{"op", S("ping")}, {"actor", I(7)}}), Code::kBadRequest},
        DecodeCase{"ActorNotUuid", RequestBody({{"op", S("ping")}, {"actor", S("not-a-uuid")}}), Code::kInvalidArgument},
        DecodeCase{"VersionString", RequestBody({{"op", S("ping")}, {"v", S("1")}}), Code::kBadRequest},
        DecodeCase{"VersionTwo", RequestBody({{"op", S("ping")}, {"v", I(2)}}), Code::kUnsupportedVersion},
        DecodeCase{"VersionZero", RequestBody({{"op", S("ping")}, {"v", I(0)}}), Code::kUnsupportedVersion},
        DecodeCase{"VersionNegative", RequestBody({{"op", S("ping")}, {"v", I(-1)}}), Code::kUnsupportedVersion},
        // The version is checked before the op, so a v2 client learns the
        // real reason even when its request looks different.
        DecodeCase{"VersionTwoWithoutOp", RequestBody({{"v", I(2)}}), Code::kUnsupportedVersion}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DecodeRequest, MinimalPing) {
  Request req;
  auto st = Decode(RequestBody({{"op", S("ping")}}), &req);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(req.op, "ping");
  EXPECT_EQ(req.args.type, msgpack::type::NIL);
  EXPECT_TRUE(req.id_raw.empty());
  EXPECT_FALSE(req.timeout_ms.has_value());
  EXPECT_FALSE(req.actor.has_value());
}

TEST(DecodeRequest, AllFields) {
  Request req;
  auto st = Decode(RequestBody({{"op", S("get_user")},
                                {"v", I(1)},
                                {"timeout_ms", I(250)},
                                {"actor", S("0A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9")},
                                {"future_key", S("ignored")},
                                {"args", [](Packer& pk) {
                                   pk.pack_map(1);
                                   Str(pk, "id");
                                   Str(pk, "x");
                                 }}}),
                   &req);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(req.op, "get_user");
  ASSERT_TRUE(req.timeout_ms.has_value());
  EXPECT_EQ(*req.timeout_ms, 250u);
  ASSERT_TRUE(req.actor.has_value());
  EXPECT_EQ(*req.actor, "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9");
  ASSERT_EQ(req.args.type, msgpack::type::MAP);
  EXPECT_EQ(req.args.via.map.size, 1u);
}

TEST(DecodeRequest, NilOptionalsAreAbsent) {
  Request req;
  auto st = Decode(RequestBody({{"op", S("ping")}, {"args", kNil}, {"timeout_ms", kNil}, {"actor", kNil}}), &req);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(req.args.type, msgpack::type::NIL);
  EXPECT_FALSE(req.timeout_ms.has_value());
  EXPECT_FALSE(req.actor.has_value());
}

// The id is echoed as the very bytes the client sent, for every kind of
// value a client may use (canonical msgpack encodings).
TEST(DecodeRequest, IdEchoPreservesBytes) {
  std::vector<Build> ids = {
      I(0), I(42), I(-1), I(-129), I(1LL << 40),
      [](Packer& pk) { pk.pack_uint64(std::numeric_limits<uint64_t>::max()); },
      S(""), S("req-7"), S(std::string(300, 'x')), kNil,
      [](Packer& pk) { pk.pack_true(); },
      [](Packer& pk) { pk.pack_double(0.25); },
      [](Packer& pk) { pk.pack_float(1.5f); },
      [](Packer& pk) { pk.pack_bin(3); pk.pack_bin_body("\x00\x01\x02", 3); },
      [](Packer& pk) { pk.pack_ext(2, 7); pk.pack_ext_body("ab", 2); },
      [](Packer& pk) {
        pk.pack_array(3);
        pk.pack_int(1);
        Str(pk, "two");
        pk.pack_map(1);
        Str(pk, "k");
        pk.pack_nil();
      },
  };
  for (size_t i = 0; i < ids.size(); i++) {
    SCOPED_TRACE(i);
    std::string id_bytes = Pack(ids[i]);
    Request req;
    auto st = Decode(RequestBody({{"id", ids[i]}, {"op", S("ping")}}), &req);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(req.id_raw, id_bytes);
    // And the reply carries them.
    std::string reply = EncodeErrorReply(req.id_raw, Error::NotFound("x"));
    auto oh = msgpack::unpack(reply.data(), reply.size());
    const auto& m = oh.get();
    ASSERT_EQ(m.type, msgpack::type::MAP);
    ASSERT_EQ(m.via.map.size, 3u);
    msgpack::sbuffer again;
    msgpack::pack(again, m.via.map.ptr[0].val);
    EXPECT_EQ(std::string(again.data(), again.size()), id_bytes);
  }
}

// A request that fails after its id was read still echoes the id.
TEST(DecodeRequest, IdIsKeptForErrorReplies) {
  for (const std::string& body : {RequestBody({{"id", I(9)}}), RequestBody({{"id", I(9)}, {"op", I(1)}}),
                                   RequestBody({{"op", S("x")}, {"id", I(9)}, {"v", I(3)}}),
                                   RequestBody({{"op", S("x")}, {"actor", S("nope")}, {"id", I(9)}})}) {
    Request req;
    ASSERT_FALSE(Decode(body, &req).ok());
    EXPECT_EQ(req.id_raw, std::string(1, '\x09'));
  }
}

TEST(Replies, ErrorReplyShape) {
  std::string reply = EncodeErrorReply("", Error::Duplicate("taken"));
  auto oh = msgpack::unpack(reply.data(), reply.size());
  const auto& m = oh.get();
  ASSERT_EQ(m.type, msgpack::type::MAP);
  ASSERT_EQ(m.via.map.size, 2u);  // no id key when the request had none
  EXPECT_EQ(m.via.map.ptr[0].key.as<std::string>(), "ok");
  EXPECT_FALSE(m.via.map.ptr[0].val.as<bool>());
  EXPECT_EQ(m.via.map.ptr[1].key.as<std::string>(), "error");
  const auto& err = m.via.map.ptr[1].val;
  ASSERT_EQ(err.type, msgpack::type::MAP);
  ASSERT_EQ(err.via.map.size, 2u);
  EXPECT_EQ(err.via.map.ptr[0].val.as<std::string>(), "duplicate");
  EXPECT_EQ(err.via.map.ptr[1].val.as<std::string>(), "taken");
}

TEST(Replies, OkReplyShape) {
  msgpack::sbuffer buf;
  BeginOkReply(buf, std::string("\xa1z", 2));
  Packer pk(buf);
  pk.pack_int(5);
  auto oh = msgpack::unpack(buf.data(), buf.size());
  const auto& m = oh.get();
  ASSERT_EQ(m.type, msgpack::type::MAP);
  ASSERT_EQ(m.via.map.size, 3u);
  EXPECT_EQ(m.via.map.ptr[0].key.as<std::string>(), "id");
  EXPECT_EQ(m.via.map.ptr[0].val.as<std::string>(), "z");
  EXPECT_EQ(m.via.map.ptr[1].key.as<std::string>(), "ok");
  EXPECT_TRUE(m.via.map.ptr[1].val.as<bool>());
  EXPECT_EQ(m.via.map.ptr[2].key.as<std::string>(), "result");
  EXPECT_EQ(m.via.map.ptr[2].val.as<int>(), 5);
}

// --- Decoder limits ---------------------------------------------------------

std::string NestedArrays(int depth) {
  return Pack([depth](Packer& pk) {
    pk.pack_map(2);
    Str(pk, "op");
    Str(pk, "ping");
    Str(pk, "id");
    for (int i = 0; i < depth; i++) pk.pack_array(1);
    pk.pack_nil();
  });
}

TEST(DecodeLimits, Depth) {
  DecodeLimits l;
  l.max_depth = 8;
  Request ok, deep;
  EXPECT_TRUE(Decode(NestedArrays(5), &ok, l).ok());
  auto st = Decode(NestedArrays(20), &deep, l);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kBadRequest);
  // The default limit also holds against a deep frame.
  Request deeper;
  EXPECT_EQ(Decode(NestedArrays(1000), &deeper).error().code(), Code::kBadRequest);
}

TEST(DecodeLimits, ArrayMapAndStringSizes) {
  DecodeLimits l;
  l.max_array = 4;
  l.max_map = 4;
  l.max_str = 8;
  auto with_id = [](Build b) { return RequestBody({{"op", S("ping")}, {"id", std::move(b)}}); };
  auto array_of = [](uint32_t n) {
    return [n](Packer& pk) {
      pk.pack_array(n);
      for (uint32_t i = 0; i < n; i++) pk.pack_nil();
    };
  };
  auto map_of = [](uint32_t n) {
    return [n](Packer& pk) {
      pk.pack_map(n);
      for (uint32_t i = 0; i < n; i++) {
        Str(pk, std::string(1, static_cast<char>('a' + i)));
        pk.pack_nil();
      }
    };
  };
  Request r;
  EXPECT_TRUE(Decode(with_id(array_of(4)), &r, l).ok());
  EXPECT_EQ(Decode(with_id(array_of(5)), &r, l).error().code(), Code::kBadRequest);
  EXPECT_TRUE(Decode(with_id(map_of(4)), &r, l).ok());
  EXPECT_EQ(Decode(with_id(map_of(5)), &r, l).error().code(), Code::kBadRequest);
  EXPECT_TRUE(Decode(with_id(S("12345678")), &r, l).ok());
  EXPECT_EQ(Decode(with_id(S("123456789")), &r, l).error().code(), Code::kBadRequest);
}

// Headers that claim huge sizes in a few bytes are refused by the limits,
// not by an allocation failure.
TEST(DecodeLimits, HugeClaimsInTinyFrames) {
  const std::vector<std::string> frames = {
      std::string("\xdd\xff\xff\xff\xff", 5),                  // array32 of 4G elements
      std::string("\xdf\xff\xff\xff\xff", 5),                  // map32 of 4G pairs
      std::string("\xdb\xff\xff\xff\xff", 5),                  // str32 of 4 GB
      std::string("\xc6\xff\xff\xff\xff", 5),                  // bin32 of 4 GB
      std::string("\xc9\xff\xff\xff\xff\x01", 6),              // ext32 of 4 GB
      std::string("\x81\xa2id\xdd\x00\x0f\x42\x40", 9),        // {"id": array of 1M}
  };
  for (const auto& f : frames) {
    Request r;
    auto st = Decode(f, &r);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), Code::kBadRequest) << st.error().message();
  }
}

// --- Args -------------------------------------------------------------------

class ArgsTest : public ::testing::Test {
 protected:
  // Decodes {"op":"x","args":{...}} and returns the Args.
  Args Make(std::vector<std::pair<std::string, Build>> kvs) {
    body_ = RequestBody({{"op", S("x")}, {"args", [kvs](Packer& pk) {
                           pk.pack_map(static_cast<uint32_t>(kvs.size()));
                           for (auto& [k, v] : kvs) {
                             Str(pk, k);
                             v(pk);
                           }
                         }}});
    auto st = Decode(body_, &req_);
    EXPECT_TRUE(st.ok());
    return Args(req_.args);
  }
  std::string body_;
  Request req_;
};

TEST_F(ArgsTest, Str) {
  Args a = Make({{"s", S("hello")}, {"n", kNil}, {"i", I(1)}, {"nul", S(std::string("a\0b", 3))}});
  EXPECT_EQ(**a.Str("s"), "hello");
  EXPECT_FALSE(a.Str("n")->has_value());
  EXPECT_FALSE(a.Str("absent")->has_value());
  EXPECT_EQ(a.Str("i").error().code(), Code::kBadRequest);
  EXPECT_EQ(a.Str("nul").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.RequiredStr("absent").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.RequiredStr("n").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.RequiredStr("i").error().code(), Code::kBadRequest);
  EXPECT_EQ(*a.RequiredStr("s"), "hello");
  EXPECT_TRUE(a.Has("n"));
  EXPECT_FALSE(a.Has("absent"));
}

TEST_F(ArgsTest, Int) {
  Args a = Make({{"p", I(7)},
                 {"neg", I(-7)},
                 {"max", I(std::numeric_limits<int64_t>::max())},
                 {"huge", [](Packer& pk) { pk.pack_uint64(std::numeric_limits<uint64_t>::max()); }},
                 {"f", [](Packer& pk) { pk.pack_double(1.5); }},
                 {"s", S("7")},
                 {"b", [](Packer& pk) { pk.pack_true(); }}});
  EXPECT_EQ(**a.Int("p"), 7);
  EXPECT_EQ(**a.Int("neg"), -7);
  EXPECT_EQ(**a.Int("max"), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(a.Int("absent")->has_value());
  EXPECT_EQ(a.Int("huge").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.Int("f").error().code(), Code::kBadRequest);
  EXPECT_EQ(a.Int("s").error().code(), Code::kBadRequest);
  EXPECT_EQ(a.Int("b").error().code(), Code::kBadRequest);
}

TEST_F(ArgsTest, UuidAndEmail) {
  Args a = Make({{"u", S("ABCDEF01-2345-6789-ABCD-EF0123456789")},
                 {"bad", S("abcdef01234567890abcdef0123456789")},
                 {"i", I(3)},
                 {"e", S("Alice@Example.com")},
                 {"e2", S("no-at-sign")}});
  EXPECT_EQ(**a.Uuid("u"), "abcdef01-2345-6789-abcd-ef0123456789");
  EXPECT_EQ(a.Uuid("bad").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.Uuid("i").error().code(), Code::kBadRequest);
  EXPECT_FALSE(a.Uuid("absent")->has_value());
  EXPECT_EQ(a.RequiredUuid("absent").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(*a.RequiredEmail("e"), "Alice@Example.com");  // case is kept
  EXPECT_EQ(a.RequiredEmail("e2").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.RequiredEmail("i").error().code(), Code::kBadRequest);
}

TEST_F(ArgsTest, TimestampAndMetadata) {
  Args a = Make({{"ms", I(1700000000123)},
                 {"s", S("2024-01-01")},
                 {"m", [](Packer& pk) {
                    pk.pack_map(1);
                    Str(pk, "k");
                    pk.pack_array(2);
                    pk.pack_int(1);
                    Str(pk, "v");
                  }},
                 {"arr", [](Packer& pk) { pk.pack_array(0); }},
                 {"binmeta", [](Packer& pk) {
                    pk.pack_map(1);
                    Str(pk, "k");
                    pk.pack_bin(1);
                    pk.pack_bin_body("x", 1);
                  }},
                 {"badutf8", [](Packer& pk) {
                    pk.pack_map(1);
                    Str(pk, "k");
                    Str(pk, "\xff\xfe");
                  }}});
  EXPECT_EQ(**a.Timestamp("ms"), 1700000000123000);
  EXPECT_EQ(a.Timestamp("s").error().code(), Code::kBadRequest);
  EXPECT_NE(a.Timestamp("s").error().message().find("'s'"), std::string::npos);
  EXPECT_FALSE(a.Timestamp("absent")->has_value());
  EXPECT_EQ(nlohmann::json::parse(**a.Metadata("m")), nlohmann::json::parse(R"({"k":[1,"v"]})"));
  EXPECT_EQ(a.Metadata("arr").error().code(), Code::kBadRequest);
  EXPECT_EQ(a.Metadata("binmeta").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.Metadata("badutf8").error().code(), Code::kInvalidArgument);
  EXPECT_FALSE(a.Metadata("absent")->has_value());
}

TEST_F(ArgsTest, OnlyKeys) {
  Args a = Make({{"email", S("a@b")}, {"metadata", kNil}});
  EXPECT_TRUE(a.OnlyKeys({"email", "metadata", "id"}).ok());
  auto st = a.OnlyKeys({"email"});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_NE(st.error().message().find("metadata"), std::string::npos);
  EXPECT_TRUE(Args(msgpack::object()).OnlyKeys({}).ok());
}

// --- Metadata ---------------------------------------------------------------

Result<nlohmann::json> MetaOf(const std::string& packed) {
  DecodeLimits big;
  big.max_depth = 1000;
  auto oh = UnpackBounded(packed.data(), packed.size(), big);
  if (!oh.ok()) return oh.error();
  return MetadataToJson(oh->get());
}

TEST(Metadata, NestedValues) {
  auto j = MetaOf(Pack([](Packer& pk) {
    pk.pack_map(8);
    Str(pk, "s");
    Str(pk, "ünï");
    Str(pk, "i");
    pk.pack_int64(-5);
    Str(pk, "u");
    pk.pack_uint64(std::numeric_limits<uint64_t>::max());
    Str(pk, "f");
    pk.pack_double(2.5);
    Str(pk, "f32");
    pk.pack_float(0.5f);
    Str(pk, "b");
    pk.pack_false();
    Str(pk, "n");
    pk.pack_nil();
    Str(pk, "nest");
    pk.pack_map(1);
    Str(pk, "a");
    pk.pack_array(2);
    pk.pack_map(0);
    pk.pack_array(0);
  }));
  ASSERT_TRUE(j.ok()) << j.error().message();
  EXPECT_EQ(j.value(), nlohmann::json::parse(R"({"s":"ünï","i":-5,"u":18446744073709551615,"f":2.5,"f32":0.5,
                                                 "b":false,"n":null,"nest":{"a":[{},[]]}})"));
}

struct MetaErrorCase {
  const char* name;
  std::string packed;
};

class MetadataErrorTest : public ::testing::TestWithParam<MetaErrorCase> {};

TEST_P(MetadataErrorTest, InvalidArgument) {
  auto j = MetaOf(GetParam().packed);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code(), Code::kInvalidArgument) << j.error().message();
}

std::string OneKey(Build v) {
  return Pack([v](Packer& pk) {
    pk.pack_map(1);
    Str(pk, "k");
    v(pk);
  });
}

std::string NestedMaps(int depth) {
  return Pack([depth](Packer& pk) {
    for (int i = 0; i < depth; i++) {
      pk.pack_map(1);
      Str(pk, "k");
    }
    pk.pack_nil();
  });
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MetadataErrorTest,
    ::testing::Values(
        MetaErrorCase{"NotAMap", Pack([](Packer& pk) { pk.pack_array(0); })},
        MetaErrorCase{"Binary", OneKey([](Packer& pk) { pk.pack_bin(1); pk.pack_bin_body("x", 1); })},
        MetaErrorCase{"Extension", OneKey([](Packer& pk) { pk.pack_ext(1, 5); pk.pack_ext_body("x", 1); })},
        MetaErrorCase{"Timestamp", OneKey([](Packer& pk) { PackTimestamp(pk, 0); })},
        MetaErrorCase{"IntegerKey", Pack([](Packer& pk) { pk.pack_map(1); pk.pack_int(1); pk.pack_nil(); })},
        MetaErrorCase{"NilKey", Pack([](Packer& pk) { pk.pack_map(1); pk.pack_nil(); pk.pack_nil(); })},
        MetaErrorCase{"NestedIntegerKey", OneKey([](Packer& pk) { pk.pack_map(1); pk.pack_int(1); pk.pack_nil(); })},
        MetaErrorCase{"NaN", OneKey([](Packer& pk) { pk.pack_double(std::nan("")); })},
        MetaErrorCase{"Infinity", OneKey([](Packer& pk) { pk.pack_double(HUGE_VAL); })},
        MetaErrorCase{"MinusInfinityFloat32", OneKey([](Packer& pk) { pk.pack_float(-HUGE_VALF); })},
        MetaErrorCase{"NaNInArray", OneKey([](Packer& pk) { pk.pack_array(2); pk.pack_int(1); pk.pack_double(NAN); })},
        MetaErrorCase{"NulInValue", OneKey(S(std::string("a\0b", 3)))},
        MetaErrorCase{"NulInKey", Pack([](Packer& pk) { pk.pack_map(1); Str(pk, std::string("k\0", 2)); pk.pack_nil(); })},
        MetaErrorCase{"TooDeep", NestedMaps(40)}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Metadata, DepthLimitAllowsReasonableNesting) {
  EXPECT_TRUE(MetaOf(NestedMaps(20)).ok());
}

TEST(Metadata, PackJsonRoundTrip) {
  const char* docs[] = {
      R"({})",
      R"({"a":1,"b":-2,"c":1.25,"d":"text","e":true,"f":null})",
      R"({"deep":{"x":[1,[2,[3,{"y":"z"}]]]},"empty":{"a":[],"o":{}}})",
      R"({"big":18446744073709551615,"small":-9223372036854775808,"tiny":1e-300})",
      R"({"unicode":"日本語 ✓ \u00e9","esc":"quote \" backslash \\ nl \n"})",
  };
  for (const char* text : docs) {
    SCOPED_TRACE(text);
    auto j = nlohmann::json::parse(text);
    std::string packed = Pack([&](Packer& pk) { PackJson(pk, j); });
    auto back = MetaOf(packed);
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back.value(), j);
    // From the text: the same document, keys in the text's order.
    std::string packed_text = Pack([&](Packer& pk) { PackJsonText(pk, text); });
    auto from_text = MetaOf(packed_text);
    ASSERT_TRUE(from_text.ok()) << from_text.error().message();
    EXPECT_EQ(from_text.value(), j);
    // With the keys sorted as the document sorts them, the very same bytes.
    std::string sorted = j.dump();
    EXPECT_EQ(Pack([&](Packer& pk) { PackJsonText(pk, sorted); }), packed);
  }
}

TEST(Metadata, PackJsonTextKeepsTheTextsKeyOrder) {
  // JSONB orders keys shorter first; the reply keeps that order.
  std::string packed = Pack([](Packer& pk) { PackJsonText(pk, R"({"b": 1, "aa": [true, {"z": null, "y": 2.5}]})"); });
  std::string want = Pack([](Packer& pk) {
    pk.pack_map(2);
    PackStr(pk, "b");
    pk.pack_int64(1);
    PackStr(pk, "aa");
    pk.pack_array(2);
    pk.pack_true();
    pk.pack_map(2);
    PackStr(pk, "z");
    pk.pack_nil();
    PackStr(pk, "y");
    pk.pack_double(2.5);
  });
  EXPECT_EQ(packed, want);
}

TEST(Metadata, PackJsonTextCountsLargeContainers) {
  // Counts past the one-byte forms (fixarray 15, fixmap 15) and nested ones.
  std::string text = "{";
  for (int i = 0; i < 300; i++) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":[" + std::to_string(i) + ",[],{}]";
  text += "}";
  auto j = nlohmann::json::parse(text);
  auto back = MetaOf(Pack([&](Packer& pk) { PackJsonText(pk, text); }));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back.value(), j);
  EXPECT_EQ(back.value().size(), 300u);
}

TEST(Metadata, PackJsonTextOfNonObjectsAndTrailingGarbage) {
  EXPECT_EQ(Pack([](Packer& pk) { PackJsonText(pk, "[1,2]"); }), Pack([](Packer& pk) {
              pk.pack_array(2);
              pk.pack_int64(1);
              pk.pack_int64(2);
            }));
  EXPECT_EQ(Pack([](Packer& pk) { PackJsonText(pk, "{} x"); }), std::string(1, '\xc0'));
  EXPECT_EQ(Pack([](Packer& pk) { PackJsonText(pk, ""); }), std::string(1, '\xc0'));
  EXPECT_EQ(Pack([](Packer& pk) { PackJsonText(pk, "{\"a\":[1,2}"); }), std::string(1, '\xc0'));
}

TEST(Metadata, PackJsonTextOfGarbageIsNil) {
  EXPECT_EQ(Pack([](Packer& pk) { PackJsonText(pk, "{not json"); }), std::string(1, '\xc0'));
}

// --- Timestamps -------------------------------------------------------------

std::string Ext(int8_t type, const std::string& data) {
  return Pack([&](Packer& pk) {
    pk.pack_ext(data.size(), type);
    pk.pack_ext_body(data.data(), static_cast<uint32_t>(data.size()));
  });
}

std::string BigEndian(uint64_t v, int n) {
  std::string s;
  for (int i = n - 1; i >= 0; i--) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

Result<Micros> TimestampOf(const std::string& packed) {
  auto oh = msgpack::unpack(packed.data(), packed.size());
  return TimestampFromObject(oh.get());
}

struct TsCase {
  const char* name;
  std::string packed;
  Micros want;
};

class TimestampTest : public ::testing::TestWithParam<TsCase> {};

TEST_P(TimestampTest, Decodes) {
  auto t = TimestampOf(GetParam().packed);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t.value(), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, TimestampTest,
    ::testing::Values(
        TsCase{"Ext32Epoch", Ext(-1, BigEndian(0, 4)), 0},
        TsCase{"Ext32", Ext(-1, BigEndian(1700000000, 4)), 1700000000000000},
        TsCase{"Ext32Max", Ext(-1, BigEndian(0xffffffffu, 4)), 4294967295000000},
        TsCase{"Ext64", Ext(-1, BigEndian(uint64_t{123456789} << 34 | 1700000000, 8)), 1700000000123456},
        TsCase{"Ext64BeyondUint32", Ext(-1, BigEndian(uint64_t{1000} << 34 | 5000000000ULL, 8)), 5000000000000001},
        TsCase{"Ext96", Ext(-1, BigEndian(500000000, 4) + BigEndian(1700000000, 8)), 1700000000500000},
        TsCase{"Ext96Negative", Ext(-1, BigEndian(500000000, 4) + BigEndian(static_cast<uint64_t>(-1), 8)), -500000},
        TsCase{"Ext96Year1", Ext(-1, BigEndian(0, 4) + BigEndian(static_cast<uint64_t>(-62135596800), 8)),
               -62135596800000000},
        TsCase{"Ext96SubMicroTruncates", Ext(-1, BigEndian(999, 4) + BigEndian(10, 8)), 10000000},
        TsCase{"IntegerMs", Pack([](Packer& pk) { pk.pack_uint64(1700000000123); }), 1700000000123000},
        TsCase{"IntegerMsZero", Pack([](Packer& pk) { pk.pack_int(0); }), 0},
        TsCase{"IntegerMsNegative", Pack([](Packer& pk) { pk.pack_int64(-1500); }), -1500000}),
    [](const auto& info) { return std::string(info.param.name); });

struct TsBadCase {
  const char* name;
  std::string packed;
  Code want;
};

class TimestampErrorTest : public ::testing::TestWithParam<TsBadCase> {};

TEST_P(TimestampErrorTest, Refused) {
  auto t = TimestampOf(GetParam().packed);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), GetParam().want) << t.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TimestampErrorTest,
    ::testing::Values(
        TsBadCase{"String", Pack([](Packer& pk) { Str(pk, "2024-01-01T00:00:00Z"); }), Code::kBadRequest},
        TsBadCase{"Float", Pack([](Packer& pk) { pk.pack_double(1.5); }), Code::kBadRequest},
        TsBadCase{"OtherExtType", Ext(5, BigEndian(0, 4)), Code::kBadRequest},
        TsBadCase{"WrongSize", Ext(-1, BigEndian(0, 5)), Code::kBadRequest},
        TsBadCase{"Ext64NanosTooLarge", Ext(-1, BigEndian(uint64_t{1000000000} << 34, 8)), Code::kBadRequest},
        TsBadCase{"Ext96NanosTooLarge", Ext(-1, BigEndian(1000000000, 4) + BigEndian(0, 8)), Code::kBadRequest},
        TsBadCase{"Ext96AfterYear9999", Ext(-1, BigEndian(0, 4) + BigEndian(253402300800, 8)), Code::kInvalidArgument},
        TsBadCase{"Ext96BeforeYear1", Ext(-1, BigEndian(0, 4) + BigEndian(static_cast<uint64_t>(-62135596801), 8)),
                  Code::kInvalidArgument},
        TsBadCase{"Ext96Int64Min", Ext(-1, BigEndian(0, 4) + BigEndian(uint64_t{1} << 63, 8)), Code::kInvalidArgument},
        TsBadCase{"IntegerMsHuge", Pack([](Packer& pk) { pk.pack_uint64(std::numeric_limits<uint64_t>::max()); }),
                  Code::kInvalidArgument},
        TsBadCase{"IntegerMsInt64Min", Pack([](Packer& pk) { pk.pack_int64(std::numeric_limits<int64_t>::min()); }),
                  Code::kInvalidArgument}),
    [](const auto& info) { return std::string(info.param.name); });

// PackTimestamp picks the smallest form, and reads back to the same value.
TEST(Timestamp, PackRoundTripAndForm) {
  struct Case {
    Micros us;
    size_t ext_size;
  } cases[] = {
      {0, 4},
      {1000000, 4},
      {1700000000000000, 4},
      {4294967295000000, 4},
      {4294967296000000, 8},  // 2^32 s: needs the 64-bit form
      {1700000000123456, 8},
      {1, 8},
      {(int64_t{1} << 34) * 1000000 - 1, 8},
      {(int64_t{1} << 34) * 1000000, 12},
      {-1, 12},
      {-500000, 12},
      {-62135596800000000, 12},
      {253402300799999999, 12},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.us);
    std::string packed = Pack([&](Packer& pk) { PackTimestamp(pk, c.us); });
    auto oh = msgpack::unpack(packed.data(), packed.size());
    ASSERT_EQ(oh.get().type, msgpack::type::EXT);
    EXPECT_EQ(oh.get().via.ext.type(), -1);
    EXPECT_EQ(oh.get().via.ext.size, c.ext_size);
    auto back = MicrosFromTimestamp(oh.get());
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, c.us);
  }
  // The exact bytes of the 32-bit form: fixext4 (d6), type -1, seconds.
  EXPECT_EQ(Pack([](Packer& pk) { PackTimestamp(pk, 1000000); }), std::string("\xd6\xff\x00\x00\x00\x01", 6));
}

TEST(Timestamp, MicrosFromTimestampRefusesNonTimestamps) {
  auto oh = msgpack::unpack("\x05", 1);
  EXPECT_FALSE(MicrosFromTimestamp(oh.get()).has_value());
  std::string bad = Ext(-1, BigEndian(0, 3));
  auto oh2 = msgpack::unpack(bad.data(), bad.size());
  EXPECT_FALSE(MicrosFromTimestamp(oh2.get()).has_value());
}

TEST(HasNul, Detects) {
  EXPECT_FALSE(HasNul("abc"));
  EXPECT_TRUE(HasNul(std::string_view("a\0", 2)));
  EXPECT_FALSE(HasNul(""));
}

}  // namespace
}  // namespace torii
