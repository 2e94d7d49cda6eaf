// The router's envelope: the frames before a request's body, kept to echo
// before its reply. One frame is stored inline, more in a vector.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "router.h"

namespace torii::daemon {
namespace {

std::string Text(zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }

TEST(EnvelopeTest, KeepsFramesInOrderInlineAndBeyond) {
  for (int n : {1, 2, 5}) {
    SCOPED_TRACE(n);
    Envelope env;
    EXPECT_TRUE(env.frames.empty());
    for (int i = 0; i < n; i++) env.frames.push_back(zmq::message_t(std::string("frame-") + std::to_string(i)));
    ASSERT_EQ(env.frames.size(), size_t(n));
    for (int i = 0; i < n; i++) EXPECT_EQ(Text(env.frames[size_t(i)]), "frame-" + std::to_string(i));
  }
}

TEST(EnvelopeTest, MovingEmptiesTheSource) {
  Envelope a;
  a.frames.push_back(zmq::message_t(std::string("identity")));
  a.frames.push_back(zmq::message_t(std::string("proxy")));
  Envelope b = std::move(a);
  EXPECT_EQ(a.frames.size(), 0u);  // NOLINT(bugprone-use-after-move): the point of the test
  ASSERT_EQ(b.frames.size(), 2u);
  EXPECT_EQ(Text(b.frames[0]), "identity");
  EXPECT_EQ(Text(b.frames[1]), "proxy");
  Envelope c;
  c.frames.push_back(zmq::message_t(std::string("old")));
  c = std::move(b);
  EXPECT_EQ(b.frames.size(), 0u);  // NOLINT(bugprone-use-after-move)
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(Text(c.frames[0]), "identity");
}

}  // namespace
}  // namespace torii::daemon
