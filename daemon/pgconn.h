// A single non-blocking libpq connection on the loop, outside the pool: the
// LISTEN connection and the janitor's connection use it. Queries run one at
// a time in order (simple protocol, text parameters); notifications are
// delivered as they arrive. A lost connection fails the queued queries and
// calls on_lost once; reconnecting is the owner's decision.
//
// Owned by its user (the Listener, the Janitor); it owns its PGconn and
// socket watch. Loop thread only. The owner must outlive it.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "connector.h"

namespace torii::daemon {

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
  void OnConnected(Result<PGconn*>&& conn);
  void Watch(int events);
  // The socket cannot be watched: lose the connection on the next turn,
  // outside the caller's stack.
  void LoseSoon();
  void OnPoll(int status, int events);
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
  PGconn* conn_ = nullptr;  // once connected
  PgSocketWatch socket_;
  PgConnector connector_;
  uv_timer_t* lose_timer_ = nullptr;
  std::deque<Pending> queue_;
  bool sent_ = false;  // the queue's head has been sent
  std::optional<Result<PgResult>> head_result_;
  std::function<void()> on_ready_;
  std::function<void(const Error&)> on_lost_;
  OnNotify on_notify_;
};

}  // namespace torii::daemon
