// The ZeroMQ ROUTER socket that takes requests, joined to the libuv loop.
//
// ZMQ_FD is edge-triggered: it signals a change, not a level. So the socket
// is read until a receive would block (which re-arms the fd) after every
// wakeup, and a uv_prepare reads again before the loop blocks if a reply
// was sent since that last receive, because a send may have consumed the
// edge. A budget per pass keeps
// a flood of requests from starving database results; leftovers keep a
// uv_idle running so the loop polls without blocking.
//
// Loop thread only. Messages are [envelope frames..., body]; Reply() sends
// the same envelope back before the reply body.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "torii/error.h"

namespace torii::daemon {

// The frames before a request's body (the peer's identity, and any a proxy
// added), echoed before the reply. Nearly always one: it is kept inline.
class Frames {
 public:
  Frames() = default;
  Frames(Frames&& o) noexcept
      : first_(std::move(o.first_)), more_(std::move(o.more_)), n_(std::exchange(o.n_, 0)) {}
  Frames& operator=(Frames&& o) noexcept {
    first_ = std::move(o.first_);
    more_ = std::move(o.more_);
    n_ = std::exchange(o.n_, 0);
    return *this;
  }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  void push_back(zmq::message_t&& m) {
    if (n_ == 0) {
      first_ = std::move(m);
    } else {
      more_.push_back(std::move(m));
    }
    n_++;
  }
  zmq::message_t& operator[](size_t i) { return i == 0 ? first_ : more_[i - 1]; }

 private:
  zmq::message_t first_;
  std::vector<zmq::message_t> more_;
  size_t n_ = 0;
};

struct Envelope {
  Frames frames;
};

struct RouterStats {
  uint64_t received = 0;
  uint64_t replied = 0;
  uint64_t undeliverable = 0;  // peer gone (EHOSTUNREACH) or its queue full
  uint64_t malformed_frames = 0;
};

class Router {
 public:
  using OnMessage = std::function<void(Envelope&& env, zmq::message_t&& body)>;

  Router(uv_loop_t* loop, zmq::context_t& ctx, OnMessage on_message);
  ~Router();

  // Binds every endpoint; sets ROUTER_MANDATORY, MAXMSGSIZE and HWMs; joins
  // ZMQ_FD to the loop (not yet polled: see Start).
  Status Bind(const std::vector<std::string>& endpoints, int64_t max_message_bytes);
  // Applies CURVE server options before Bind (see security.h).
  zmq::socket_t& socket() { return socket_; }
  // Starts and stops taking messages; replies still go out when stopped.
  // Start does nothing before a successful Bind.
  void Start();
  void StopReceiving();
  void Close();

  void Reply(Envelope& env, const char* body, size_t len);
  const RouterStats& stats() const { return stats_; }

 private:
  void Pump();
  static void OnPoll(uv_poll_t* h, int status, int events);
  static void OnPrepare(uv_prepare_t* h);
  static void OnIdle(uv_idle_t* h);

  uv_loop_t* loop_;
  zmq::socket_t socket_;
  OnMessage on_message_;
  uv_poll_t poll_;
  uv_prepare_t prepare_;
  uv_idle_t idle_;
  bool receiving_ = false;
  bool started_ = false;
  // A send since the last receive that would block: the fd may not be armed.
  bool sent_since_drain_ = false;
  RouterStats stats_;
};

}  // namespace torii::daemon
