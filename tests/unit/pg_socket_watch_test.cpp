// PgSocketWatch: a libpq socket under uv_poll, and what happens when libuv
// refuses it, there and in its owners (AsyncConn, Pool). The connections go
// to a listening socket of the test's own (no server answers it), which is
// enough for libpq to have a socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <optional>
#include <string>

#include "pgconn.h"
#include "pool.h"

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

// A uv_poll handle left on a descriptor that was then closed, as a missed
// Release would leave it. The next socket opened gets the same number, and
// libuv refuses to watch it while this handle exists (UV_EEXIST).
class StaleRegistration {
 public:
  explicit StaleRegistration(uv_loop_t* loop) : loop_(loop) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(uv_poll_init(loop, &poll_, fd), 0);
    EXPECT_EQ(uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t*, int, int) {}), 0);
    uv_run(loop, UV_RUN_NOWAIT);  // libuv adds it to epoll while it is open
    close(fd);
  }
  ~StaleRegistration() {
    uv_poll_stop(&poll_);
    bool closed = false;
    poll_.data = &closed;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
    while (!closed) uv_run(loop_, UV_RUN_NOWAIT);
  }

 private:
  uv_loop_t* loop_;
  uv_poll_t poll_;
};

struct Seen {
  int calls = 0;
  int events = 0;
};

class PgSocketWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    conn_ = PQconnectStart(Conninfo().c_str());
    ASSERT_NE(conn_, nullptr);
    ASSERT_NE(PQstatus(conn_), CONNECTION_BAD) << PQerrorMessage(conn_);
    ASSERT_GE(PQsocket(conn_), 0);
  }
  void TearDown() override {
    if (conn_ != nullptr) PQfinish(conn_);
    // Close callbacks, and the deferred frees of a pool's connections.
    for (int i = 0; i < 100 && uv_loop_alive(&loop_); i++) uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  std::string Conninfo() const {
    return "hostaddr=127.0.0.1 port=" + std::to_string(listening_.port()) + " dbname=x user=x";
  }
  // Runs the loop until `done()`, for at most 5 s.
  template <typename Done>
  void RunUntil(Done done) {
    uv_timer_t deadline;
    uv_timer_init(&loop_, &deadline);
    uv_timer_start(&deadline, [](uv_timer_t* t) { uv_stop(t->loop); }, 5000, 0);
    while (!done() && uv_is_active(reinterpret_cast<uv_handle_t*>(&deadline))) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
  void RunUntilCalled(const Seen& seen) {
    RunUntil([&seen] { return seen.calls > 0; });
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

// The owners give such a connection up at once. Without that it would wait
// out the minute of connect_timeout_ms set here, and the test its 5 s.
TEST_F(PgSocketWatchTest, AsyncConnLosesAConnectionItCannotWatch) {
  StaleRegistration stale(&loop_);
  AsyncConn conn(&loop_, "test", ConnectOptions{Conninfo(), "disable", 60000, 10000, "toriid-test"});
  bool ready = false;
  std::optional<std::string> lost;
  conn.Connect([&ready] { ready = true; }, [&lost](const Error& e) { lost = e.message(); });
  RunUntil([&lost] { return lost.has_value(); });
  ASSERT_TRUE(lost.has_value()) << "the connection was not given up";
  EXPECT_NE(lost->find("cannot watch its socket"), std::string::npos) << *lost;
  EXPECT_FALSE(ready);
}

TEST_F(PgSocketWatchTest, PoolCountsAConnectionItCannotWatchAsAFailedConnect) {
  StaleRegistration stale(&loop_);
  PoolOptions o;
  o.conninfo = Conninfo();
  o.ssl_mode = "disable";
  o.connect_timeout_ms = 60000;
  Pool pool(&loop_, o);
  std::optional<Status> started;
  pool.Start([&started](Status st) { started = std::move(st); });
  RunUntil([&started] { return started.has_value(); });
  ASSERT_TRUE(started.has_value()) << "the pool never gave up its first connection";
  ASSERT_FALSE(started->ok());
  EXPECT_NE(started->error().message().find("cannot watch its socket"), std::string::npos)
      << started->error().message();
  EXPECT_GE(pool.Stats().connect_failures, 1u);
  pool.Close(Error::Unavailable("the test is over"));
}

}  // namespace
}  // namespace torii::daemon
