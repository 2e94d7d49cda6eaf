// torii::UserFromObject / SessionFromObject on hand-packed reply maps.
#include "torii/types.h"

#include <gtest/gtest.h>

#include "torii/protocol.h"

namespace torii {
namespace {

using Fill = std::function<void(Packer&)>;

msgpack::object_handle Pack(uint32_t n, const Fill& fill) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(n);
  fill(pk);
  return msgpack::unpack(buf.data(), buf.size());
}

void Key(Packer& pk, const std::string& k) { pk.pack(k); }

TEST(TypesTest, UserWithAndWithoutHash) {
  auto oh = Pack(7, [](Packer& pk) {
    Key(pk, "id"), pk.pack(std::string("0b7c5f0e-6a55-4a0f-9a53-0c6d3c6f2f11"));
    Key(pk, "email"), pk.pack(std::string("A@example.com"));
    Key(pk, "password_hash"), pk.pack(std::string("$argon2id$x"));
    Key(pk, "email_verified_at"), pk.pack_nil();
    Key(pk, "metadata"), pk.pack_map(1), Key(pk, "plan"), pk.pack(std::string("pro"));
    Key(pk, "created_at"), PackTimestamp(pk, 1700000000123456);
    Key(pk, "updated_at"), PackTimestamp(pk, 1700000001000000);
  });
  auto u = UserFromObject(oh.get());
  ASSERT_TRUE(u.ok()) << u.error().ToString();
  EXPECT_EQ(u->email, "A@example.com");
  EXPECT_EQ(u->password_hash.value_or(""), "$argon2id$x");
  EXPECT_FALSE(u->email_verified_at);
  EXPECT_EQ(u->metadata["plan"], "pro");
  EXPECT_EQ(u->created_at, 1700000000123456);

  auto listed = Pack(6, [](Packer& pk) {
    Key(pk, "id"), pk.pack(std::string("x"));
    Key(pk, "email"), pk.pack(std::string("b@example.com"));
    Key(pk, "email_verified_at"), PackTimestamp(pk, 5000000);
    Key(pk, "metadata"), pk.pack_nil();
    Key(pk, "created_at"), PackTimestamp(pk, 1);
    Key(pk, "updated_at"), PackTimestamp(pk, 2);
  });
  auto v = UserFromObject(listed.get());
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->password_hash);
  EXPECT_EQ(v->email_verified_at.value_or(0), 5000000);
  EXPECT_TRUE(v->metadata.is_null());
}

TEST(TypesTest, BrokenRecordsAreInternalErrors) {
  struct Case {
    const char* name;
    Fill fill;
    uint32_t n;
  };
  std::vector<Case> cases = {
      {"missing email", [](Packer& pk) { Key(pk, "id"), pk.pack(std::string("x")); }, 1},
      {"email not a string",
       [](Packer& pk) {
         Key(pk, "id"), pk.pack(std::string("x"));
         Key(pk, "email"), pk.pack(5);
         Key(pk, "created_at"), PackTimestamp(pk, 1);
         Key(pk, "updated_at"), PackTimestamp(pk, 1);
       },
       4},
      {"created_at an integer",
       [](Packer& pk) {
         Key(pk, "id"), pk.pack(std::string("x"));
         Key(pk, "email"), pk.pack(std::string("e@x"));
         Key(pk, "created_at"), pk.pack(1);
         Key(pk, "updated_at"), PackTimestamp(pk, 1);
       },
       4},
  };
  for (const auto& c : cases) {
    auto oh = Pack(c.n, c.fill);
    auto u = UserFromObject(oh.get());
    ASSERT_FALSE(u.ok()) << c.name;
    EXPECT_EQ(u.error().code(), Code::kInternal) << c.name;
  }
  auto not_map = msgpack::unpack("\x01", 1);
  EXPECT_FALSE(UserFromObject(not_map.get()).ok());
  EXPECT_FALSE(SessionFromObject(not_map.get()).ok());
}

TEST(TypesTest, SessionWithToken) {
  auto oh = Pack(8, [](Packer& pk) {
    Key(pk, "id"), pk.pack(std::string("s"));
    Key(pk, "user_id"), pk.pack(std::string("u"));
    Key(pk, "expires_at"), PackTimestamp(pk, 1800000000000000);
    Key(pk, "user_agent"), pk.pack(std::string("curl"));
    Key(pk, "ip_address"), pk.pack_nil();
    Key(pk, "metadata"), pk.pack_map(0);
    Key(pk, "created_at"), PackTimestamp(pk, 1700000000000000);
    Key(pk, "token"), pk.pack(std::string("t0k"));
  });
  auto s = SessionFromObject(oh.get());
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->user_id, "u");
  EXPECT_EQ(s->expires_at, 1800000000000000);
  EXPECT_EQ(s->user_agent.value_or(""), "curl");
  EXPECT_FALSE(s->ip_address);
  EXPECT_TRUE(s->metadata.is_object());
  EXPECT_EQ(s->token.value_or(""), "t0k");
}

// The Torii id rule, per tenant. The literals are Python's
// uuid.uuid5(UUID("6af69e92-..."), name): the Rust provider's tests hold the same.
TEST(TypesTest, ToriiIdsMapPerTenant) {
  const std::string usr = "usr_3yQBbNQ4E1WK6xqJ5";
  EXPECT_EQ(UserIdFromToriiId(usr), "e6d48606-e9dc-542f-abb0-e60a709a635f");
  EXPECT_EQ(UserIdFromToriiId(usr, "default"), UserIdFromToriiId(usr));
  EXPECT_EQ(UserIdFromToriiId(usr, "acme"), "e99616d9-cb80-547d-b235-37f6d65fb67d");
  EXPECT_NE(UserIdFromToriiId(usr, "acme"), UserIdFromToriiId(usr, "beta"));
  // A UUID is kept in the default tenant and mapped, case-blind, in any other.
  const std::string upper = "9F1C2B3A-0000-4000-8000-00000000000A";
  EXPECT_EQ(UserIdFromToriiId(upper), "9f1c2b3a-0000-4000-8000-00000000000a");
  EXPECT_EQ(UserIdFromToriiId(upper, "acme"), "909c7c3e-7a53-52a0-8f8d-665c1066a279");
  EXPECT_EQ(UserIdFromToriiId("9f1c2b3a-0000-4000-8000-00000000000a", "acme"), UserIdFromToriiId(upper, "acme"));
}

}  // namespace
}  // namespace torii
