// ROUTER socket under libuv.
#include "router.h"

#include "security.h"
#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

constexpr int kBudget = 512;     // messages per pass before yielding to the loop
constexpr size_t kMaxFrames = 64;  // envelope frames a request may carry
// Replies queued for one client connection that is not reading them. Past
// it a reply to that client is dropped (never waited for: every send is
// non-blocking), so a client that sends and never reads costs at most this
// many replies of memory, and never holds up the loop or other clients.
constexpr int kReplyHwm = 10000;
// Connections waiting to be accepted, per listening endpoint (the kernel
// caps it at net.core.somaxconn). libzmq's default of 100 overflows when
// hundreds of clients connect at once: the kernel drops the SYNs past it and
// those clients retry a second later.
constexpr int kBacklog = 4096;

}  // namespace

Router::Router(uv_loop_t* loop, zmq::context_t& ctx, OnMessage on_message)
    : loop_(loop), socket_(ctx, zmq::socket_type::router), on_message_(std::move(on_message)) {}

Router::~Router() { Close(); }

Status Router::Bind(const std::vector<std::string>& endpoints, int64_t max_message_bytes) {
  try {
    socket_.set(zmq::sockopt::router_mandatory, 1);
    socket_.set(zmq::sockopt::maxmsgsize, max_message_bytes);
    socket_.set(zmq::sockopt::sndhwm, kReplyHwm);
    socket_.set(zmq::sockopt::rcvhwm, 100000);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::backlog, kBacklog);
    for (const auto& ep : endpoints) {
      if (auto st = BindEndpoint(socket_, ep); !st.ok()) return st;
      TLOG_INFO("router: listening on %s", ep.c_str());
    }
  } catch (const zmq::error_t& e) {
    return Error::Internal("cannot listen for requests: " + std::string(e.what()));
  }
  if (started_) return {};
  if (int err = uv_poll_init(loop_, &poll_, socket_.get(zmq::sockopt::fd)); err != 0) {
    return Error::Internal(std::string("cannot watch the request socket: ") + uv_strerror(err));
  }
  poll_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  started_ = true;
  return {};
}

void Router::Start() {
  if (!started_) return;
  receiving_ = true;
  uv_poll_start(&poll_, UV_READABLE, OnPoll);
  uv_prepare_start(&prepare_, OnPrepare);
  Pump();
}

void Router::StopReceiving() {
  receiving_ = false;
  if (!started_) return;
  uv_poll_stop(&poll_);
  uv_idle_stop(&idle_);
}

void Router::Close() {
  if (!started_) return;
  started_ = false;
  receiving_ = false;
  CloseEmbedded(&poll_);
  CloseEmbedded(&prepare_);
  CloseEmbedded(&idle_);
  socket_.close();
}

void Router::OnPoll(uv_poll_t* h, int, int) { static_cast<Router*>(h->data)->Pump(); }
// Before the loop blocks. A receive that would block re-arms ZMQ_FD, and
// only a send can take its signal after that (libzmq processes commands on
// the send path too); with no send since, the fd is armed and this pass
// would only cost a poll() and a getpid() per loop turn.
void Router::OnPrepare(uv_prepare_t* h) {
  auto* self = static_cast<Router*>(h->data);
  if (self->sent_since_drain_) self->Pump();
}

void Router::OnIdle(uv_idle_t* h) { static_cast<Router*>(h->data)->Pump(); }

void Router::Pump() {
  if (!receiving_ || !started_) return;
  // Reads until a receive would block. That last receive re-arms the
  // edge-triggered ZMQ_FD: before it says EAGAIN, libzmq processes every
  // pending command (as a ZMQ_EVENTS query would) and marks the socket's
  // pipes and mailbox asleep, so the next message signals the fd. Asking
  // ZMQ_EVENTS around the reads would cost a poll() and a getpid() more
  // each. Replies sent later in the turn may take a signal (a send can
  // process commands); the prepare hook pumps again before the loop blocks.
  for (int n = 0; n < kBudget; n++) {
    Envelope env;
    zmq::message_t part;
    bool ok = true;
    bool drained = false;
    for (;;) {
      zmq::recv_result_t r;
      try {
        r = socket_.recv(part, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t& e) {
        TLOG_WARN("router: receive failed: %s", e.what());
        ok = false;
        break;
      }
      if (!r) {
        // Nothing at a message boundary: all read. (Mid-message cannot
        // happen: multipart messages are delivered whole.)
        drained = env.frames.empty();
        ok = false;
        break;
      }
      if (!part.more()) break;
      if (env.frames.size() < kMaxFrames) {
        env.frames.push_back(std::move(part));
      } else {
        ok = false;  // keep reading the message to its end, then drop it
      }
      part = zmq::message_t();
    }
    if (drained) {
      sent_since_drain_ = false;
      uv_idle_stop(&idle_);
      return;
    }
    if (!ok || env.frames.empty()) {
      // A message of only one frame cannot come from ROUTER (it adds the
      // peer identity), so this is a broken or oversized envelope.
      stats_.malformed_frames++;
      continue;
    }
    stats_.received++;
    on_message_(std::move(env), std::move(part));
  }
  // Budget spent with messages left: poll again without blocking.
  uv_idle_start(&idle_, OnIdle);
}

void Router::Reply(Envelope& env, const char* body, size_t len) {
  if (!started_) return;
  sent_since_drain_ = true;
  try {
    for (size_t i = 0; i < env.frames.size(); i++) {
      zmq::message_t copy;
      copy.move(env.frames[i]);
      auto r = socket_.send(copy, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      if (!r) {
        stats_.undeliverable++;
        return;
      }
    }
    zmq::message_t msg(body, len);
    auto r = socket_.send(msg, zmq::send_flags::dontwait);
    if (!r) {
      stats_.undeliverable++;
      return;
    }
    stats_.replied++;
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: the peer left (ROUTER_MANDATORY); never fatal.
    stats_.undeliverable++;
    TLOG_DEBUG("router: reply not delivered: %s", e.what());
  }
}

}  // namespace torii::daemon
