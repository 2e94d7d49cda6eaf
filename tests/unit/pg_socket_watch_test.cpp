// PgSocketWatch: a libpq socket under uv_poll, and what happens when libuv
// refuses it. The connection goes to a listening socket of the test's own
// (no server answers it), which is enough for libpq to have a socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <string>

#include "pgconn.h"

namespace torii::daemon {
namespace {

// A TCP socket listening on a free loopback port; the kernel completes
// connections to it without anyone calling accept().
class Listening {
 public:
  Listening() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd_, 4) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    port_ = ntohs(a.sin_port);
  }
  ~Listening() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct Seen {
  int calls = 0;
  int events = 0;
};

class PgSocketWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    std::string conninfo = "host=127.0.0.1 port=" + std::to_string(listening_.port()) + " dbname=x user=x";
    conn_ = PQconnectStart(conninfo.c_str());
    ASSERT_NE(conn_, nullptr);
    ASSERT_NE(PQstatus(conn_), CONNECTION_BAD) << PQerrorMessage(conn_);
    ASSERT_GE(PQsocket(conn_), 0);
  }
  void TearDown() override {
    if (conn_ != nullptr) PQfinish(conn_);
    uv_run(&loop_, UV_RUN_NOWAIT);  // close callbacks
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  // Runs the loop until the watch has called back, for at most 5 s.
  void RunUntilCalled(const Seen& seen) {
    uv_timer_t deadline;
    uv_timer_init(&loop_, &deadline);
    uv_timer_start(&deadline, [](uv_timer_t* t) { uv_stop(t->loop); }, 5000, 0);
    while (seen.calls == 0 && uv_is_active(reinterpret_cast<uv_handle_t*>(&deadline))) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }

  static void OnEvent(void* owner, int status, int events) {
    auto* seen = static_cast<Seen*>(owner);
    if (status == 0) seen->events |= events;
    seen->calls++;
  }

  Listening listening_;
  uv_loop_t loop_{};
  PGconn* conn_ = nullptr;
};

TEST_F(PgSocketWatchTest, CallsBackWhenTheSocketIsReady) {
  Seen seen;
  PgSocketWatch watch(&loop_, &seen, OnEvent);
  watch.Watch(conn_, UV_WRITABLE);
  EXPECT_EQ(watch.error(), 0);
  RunUntilCalled(seen);
  EXPECT_GE(seen.calls, 1);
  EXPECT_TRUE(seen.events & UV_WRITABLE);
  watch.Release();
}

TEST_F(PgSocketWatchTest, ARefusedSocketIsReportedNotIgnored) {
  // Another handle of the loop still watches the descriptor number, as a
  // stale registration would: libuv refuses a second one (UV_EEXIST).
  uv_poll_t other;
  ASSERT_EQ(uv_poll_init(&loop_, &other, PQsocket(conn_)), 0);
  ASSERT_EQ(uv_poll_start(&other, UV_READABLE, [](uv_poll_t*, int, int) {}), 0);
  Seen seen;
  PgSocketWatch watch(&loop_, &seen, OnEvent);
  watch.Watch(conn_, UV_WRITABLE);
  EXPECT_EQ(watch.error(), UV_EEXIST);
  // Asking again keeps the error: the owner is to give the connection up.
  watch.Watch(conn_, UV_READABLE | UV_WRITABLE);
  EXPECT_EQ(watch.error(), UV_EEXIST);

  // Once the other handle is gone, a fresh start watches the socket.
  uv_poll_stop(&other);
  uv_close(reinterpret_cast<uv_handle_t*>(&other), nullptr);
  watch.Release();
  EXPECT_EQ(watch.error(), 0);
  watch.Watch(conn_, UV_WRITABLE);
  EXPECT_EQ(watch.error(), 0);
  RunUntilCalled(seen);
  EXPECT_TRUE(seen.events & UV_WRITABLE);
  watch.Release();
}

}  // namespace
}  // namespace torii::daemon
