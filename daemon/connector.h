// Making a non-blocking libpq connection on the loop, for every connection
// the daemon opens (the pool's, the listener's and the janitor's): the
// parameters, the attempt's timer, skipping a host that timed out, the
// PQconnectPoll steps under uv_poll, and the socket watch they share.
//
// Loop thread only. PgConnector and PgSocketWatch are members of the
// connection that owns them; SkipTimedOutHost's per-URL state is shared by
// all connections of the process (that is its point).
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

// One connection attempt. Start() opens it with BuildConnectParams and
// drives PQconnectPoll from the owner's socket callbacks (OnSocket) until it
// is ready, fails, or connect_timeout_ms passes (the host it was waiting on
// is then skipped, see SkipTimedOutHost). A socket libuv refuses to watch
// fails the attempt at once (on the next loop turn, outside the caller's
// stack), since no callback would ever come for it.
//
// `done` runs once per Start: with the connection, non-blocking and now the
// caller's to PQfinish (its socket still watched by `socket`), or with the
// error, the attempt's connection already freed and its socket released.
// A failure to start at all is reported before Start returns. `done` may
// destroy the connector or Start it again.
class PgConnector {
 public:
  using Done = std::function<void(Result<PGconn*>&&)>;

  // `who` and `id` name the connection in log lines ("pool: conn" 3, or
  // "listener" 0: see NoteHost).
  PgConnector(uv_loop_t* loop, PgSocketWatch& socket, std::string who, uint64_t id)
      : loop_(loop), socket_(socket), who_(std::move(who)), id_(id) {}
  ~PgConnector() { Cancel(); }
  PgConnector(const PgConnector&) = delete;
  PgConnector& operator=(const PgConnector&) = delete;

  void Start(const ConnectOptions& options, Done done);
  bool connecting() const { return conn_ != nullptr; }
  // The owner's socket callback while connecting().
  void OnSocket();
  // Ends an attempt under way without a callback.
  void Cancel();

 private:
  void WatchConnecting(int events);
  void Fail(Error why);
  static void OnTimer(uv_timer_t* t);

  uv_loop_t* loop_;
  PgSocketWatch& socket_;
  std::string who_;
  uint64_t id_;
  std::string conninfo_;
  PGconn* conn_ = nullptr;
  std::string host_;  // the host libpq is connecting to (NoteHost)
  uv_timer_t* timer_ = nullptr;  // the attempt's deadline, or 0 ms after a refused socket
  int socket_error_ = 0;         // libuv's refusal of the socket, when the timer is for that
  Done done_;
};

}  // namespace torii::daemon
