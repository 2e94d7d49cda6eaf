// A single non-blocking libpq connection on the loop, outside the pool: the
// LISTEN connection and the janitor's connection use it. Queries run one at
// a time in order (simple protocol, text parameters); notifications are
// delivered as they arrive. A lost connection fails the queued queries and
// calls on_lost once; reconnecting is the owner's decision.
//
// Loop thread only. The owner must outlive it.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "torii/error.h"
#include "torii/pg.h"

namespace torii::daemon {

struct ConnectOptions {
  std::string conninfo;
  std::string ssl_mode = "prefer";
  int connect_timeout_ms = 30000;
  int tcp_user_timeout_ms = 10000;
  std::string application_name = "toriid";
};

// Reconnect backoff after a failed or lost connection, shared by the pool
// and the listener: 50 ms doubling up to 1 s. The cap bounds how long the
// daemon stays down after the database is back (a failover: a standby just
// promoted); an attempt on a server that is down costs a refused connect.
inline int NextBackoffMs(int previous_ms) { return previous_ms == 0 ? 50 : std::min(1000, previous_ms * 2); }

// libpq keywords for PQconnectStartParams: our defaults (sslmode, keepalives,
// tcp_user_timeout) first, then the configured string, which overrides them.
// `storage` keeps the strings alive; the arrays end with nullptr.
void BuildConnectParams(const ConnectOptions& o, std::vector<std::string>& storage, std::vector<const char*>& keys,
                        std::vector<const char*>& vals);

// Debug log of the host a connection attempt is on, when it differs from
// `*last` (libpq moves down a multi-host list inside PQconnectPoll): which
// server an attempt is waiting for is what a stuck failover needs to show.
// `id` 0: `who` names the connection by itself.
void NoteHost(PGconn* conn, std::string* last, const char* who, uint64_t id);

// A database URL with several hosts: libpq tries them in order, and does
// not apply the URL's connect_timeout to a non-blocking connect, so a host
// that accepts the connection and never answers (a dead machine behind a
// live address, a hung server) would take every attempt's whole
// connect_timeout_ms, and the hosts after it would never be tried. Called
// when an attempt timed out: the next attempts of every connection of this
// URL (the pool's, the listener's, the janitor's) start at the host after
// the one it was waiting on. Loop thread only.
void SkipTimedOutHost(PGconn* conn, const std::string& conninfo);

// One uv_poll_t on a libpq connection's socket. Re-registers when libpq
// moves to another socket (PQconnectPoll does, trying the next address).
// The handle's memory is freed in its close callback, after Release().
class PgSocketWatch {
 public:
  using Callback = void (*)(void* owner, int status, int events);
  PgSocketWatch(uv_loop_t* loop, void* owner, Callback cb) : loop_(loop), owner_(owner), cb_(cb) {}
  ~PgSocketWatch() { Release(); }
  PgSocketWatch(const PgSocketWatch&) = delete;
  PgSocketWatch& operator=(const PgSocketWatch&) = delete;

  // Polls PQsocket(conn) for `events` (UV_READABLE | UV_WRITABLE). When
  // libuv refuses the socket (uv_poll_init or uv_poll_start fails), logs it
  // and keeps the error in error() until the next Release(): the owner must
  // then give the connection up, for no callback will come.
  void Watch(PGconn* conn, int events);
  // The same during PQconnectPoll, which may close its socket and open
  // another that gets the same descriptor number (next address of a host):
  // a registration kept by number would then watch nothing, so register anew.
  void WatchConnecting(PGconn* conn, int events) {
    Release();
    Watch(conn, events);
  }
  void Release();
  // The libuv error of the last failed Watch, 0 when the socket is watched.
  int error() const { return error_; }

 private:
  void Fail(const char* what, int err);

  uv_loop_t* loop_;
  void* owner_;
  Callback cb_;
  uv_poll_t* poll_ = nullptr;
  int fd_ = -1;
  int events_ = 0;
  int error_ = 0;
};

class AsyncConn {
 public:
  using Done = std::function<void(Result<PgResult>&&)>;
  using OnNotify = std::function<void(const char* channel, const char* payload)>;

  AsyncConn(uv_loop_t* loop, std::string name, ConnectOptions options);
  ~AsyncConn();
  AsyncConn(const AsyncConn&) = delete;
  AsyncConn& operator=(const AsyncConn&) = delete;

  // Starts connecting; `on_ready` or `on_lost` follows.
  void Connect(std::function<void()> on_ready, std::function<void(const Error&)> on_lost);
  void set_on_notify(OnNotify cb) { on_notify_ = std::move(cb); }
  bool ready() const { return state_ == kReady; }
  const std::string& name() const { return name_; }

  // Queues a statement; `done` gets its last result or its error.
  void Query(std::string sql, std::vector<std::optional<std::string>> params, Done done);
  // Drops the connection (reason is logged); queued queries fail.
  void Close(const std::string& reason);

 private:
  enum State { kIdle, kConnecting, kReady, kClosed };
  void Watch(int events);
  void WatchConnecting(int events);
  // The socket cannot be watched: lose the connection on the next turn,
  // outside the caller's stack.
  void LoseSoon();
  void OnPoll(int status, int events);
  void ContinueConnect();
  void SendNext();
  void Read();
  void Lose(const std::string& why);
  void Release();

  struct Pending {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    Done done;
  };

  uv_loop_t* loop_;
  std::string name_;
  ConnectOptions opt_;
  State state_ = kIdle;
  PGconn* conn_ = nullptr;
  std::string host_;  // the host libpq is connecting to (NoteHost)
  PgSocketWatch socket_;
  uv_timer_t* connect_timer_ = nullptr;
  uv_timer_t* lose_timer_ = nullptr;
  std::deque<Pending> queue_;
  bool sent_ = false;  // the queue's head has been sent
  std::optional<Result<PgResult>> head_result_;
  std::function<void()> on_ready_;
  std::function<void(const Error&)> on_lost_;
  OnNotify on_notify_;
};

}  // namespace torii::daemon
