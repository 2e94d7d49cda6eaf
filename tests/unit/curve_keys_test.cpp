// lib/torii/curve: key pairs, key files (mode, no overwrite, comments,
// malformed text) and the authorized-keys folder (dotfiles, bad files,
// duplicates). No secret appears in an error message.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "pg_cluster.h"
#include "torii/curve.h"
#include "torii/subscriber.h"

namespace torii {
namespace {

namespace fs = std::filesystem;

class CurveKeysTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::MakeTempDir("torii-keys"); }
  void TearDown() override { test::RemoveTree(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ + "/" + name) << text; }
  std::string dir_;
};

TEST_F(CurveKeysTest, PairRoundTripsThroughFiles) {
  auto pair = GenerateCurveKeyPair();
  ASSERT_TRUE(pair.ok()) << pair.error().message();
  EXPECT_TRUE(IsZ85Key(pair->public_key));
  EXPECT_TRUE(IsZ85Key(pair->secret_key));
  EXPECT_NE(pair->public_key, pair->secret_key);
  auto derived = CurvePublicFromSecret(pair->secret_key);
  ASSERT_TRUE(derived.ok());
  EXPECT_EQ(*derived, pair->public_key);

  ASSERT_TRUE(WriteCurveKeyPair(dir_ + "/k", *pair).ok());
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_ + "/k.pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  auto sec = ReadCurveKeyFile(dir_ + "/k.key");
  auto pub = ReadCurveKeyFile(dir_ + "/k.pub");
  ASSERT_TRUE(sec.ok() && pub.ok());
  EXPECT_EQ(*sec, pair->secret_key);
  EXPECT_EQ(*pub, pair->public_key);

  // Never replaces an existing key, and leaves it intact.
  auto other = GenerateCurveKeyPair();
  ASSERT_TRUE(other.ok());
  auto st2 = WriteCurveKeyPair(dir_ + "/k", *other);
  ASSERT_FALSE(st2.ok());
  EXPECT_EQ(*ReadCurveKeyFile(dir_ + "/k.key"), pair->secret_key);
}

TEST_F(CurveKeysTest, MalformedKeyFiles) {
  auto pair = GenerateCurveKeyPair();
  ASSERT_TRUE(pair.ok());
  struct Case {
    std::string text;
    std::string why;  // empty: valid
  } cases[] = {
      {pair->secret_key + "\n", ""},
      {"  # comment\n\n\t" + pair->secret_key + "  \r\n# another\n", ""},
      {"", "no key"},
      {"# only a comment\n", "no key"},
      {pair->secret_key.substr(0, 39) + "\n", "not a 40-character Z85 key"},
      {pair->secret_key.substr(0, 39) + "~\n", "not a 40-character Z85 key"},  // '~' is not Z85
      {pair->secret_key + "\n" + pair->public_key + "\n", "more than one key"},
  };
  for (const auto& c : cases) {
    Write("case.key", c.text);
    auto r = ReadCurveKeyFile(dir_ + "/case.key");
    if (c.why.empty()) {
      ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message();
      EXPECT_EQ(*r, pair->secret_key);
    } else {
      ASSERT_FALSE(r.ok()) << c.text;
      EXPECT_NE(r.error().message().find(c.why), std::string::npos) << r.error().message();
      EXPECT_EQ(r.error().message().find(pair->secret_key.substr(0, 20)), std::string::npos) << "key text in an error";
    }
  }
  EXPECT_FALSE(ReadCurveKeyFile(dir_ + "/missing.key").ok());
  EXPECT_FALSE(CurvePublicFromSecret("short").ok());
}

TEST_F(CurveKeysTest, AuthorizedKeysFolder) {
  auto a = GenerateCurveKeyPair(), b = GenerateCurveKeyPair(), c = GenerateCurveKeyPair();
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  Write("a.pub", a->public_key + "\n");
  Write("a-again.pub", "# same key twice\n" + a->public_key + "\n");
  Write("b", b->public_key);
  Write(".c.pub", c->public_key + "\n");  // dotfile: ignored
  Write("junk.pub", "junk\n");
  fs::create_directories(dir_ + "/sub");
  std::ofstream(dir_ + "/sub/c.pub") << c->public_key << "\n";  // bound to tenant sub: not in `keys`

  auto keys = LoadAuthorizedKeys(dir_);
  ASSERT_TRUE(keys.ok()) << keys.error().message();
  EXPECT_EQ(keys->keys.size(), 2u);  // a (once) and b
  EXPECT_EQ(keys->files, (std::vector<std::string>{"a-again.pub", "a.pub", "b"}));
  ASSERT_EQ(keys->skipped.size(), 1u);
  EXPECT_EQ(keys->skipped[0], "junk.pub: not a 40-character Z85 key");
  auto raw_c = DecodeZ85Key(c->public_key);
  ASSERT_TRUE(raw_c.ok());
  EXPECT_EQ(std::count(keys->keys.begin(), keys->keys.end(), *raw_c), 0);
  auto raw_a = DecodeZ85Key(a->public_key);
  EXPECT_EQ(EncodeZ85Key(*raw_a), a->public_key);

  EXPECT_FALSE(LoadAuthorizedKeys(dir_ + "/none").ok());
}

TEST(SubscriberCurve, KeysAreAllOrNothing) {
  auto pair = GenerateCurveKeyPair();
  ASSERT_TRUE(pair.ok());
  SubscriberOptions o;
  o.endpoints = {"tcp://127.0.0.1:1"};
  o.server_public_key = pair->public_key;  // no client pair
  auto half = Subscriber::Create(o);
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().code(), Code::kInvalidArgument);
  o.client_public_key = pair->public_key;
  o.client_secret_key = pair->secret_key;
  auto full = Subscriber::Create(o);
  EXPECT_TRUE(full.ok()) << full.error().message();
}

}  // namespace
}  // namespace torii
