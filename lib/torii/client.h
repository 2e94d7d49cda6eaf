// torii::Client: the request side of PROTOCOL.md section 2 over a ZeroMQ
// DEALER socket. A blocking Call(), a pipelined asynchronous Send()/Poll()/
// Receive() API with replies matched by `id`, and a JSON bridge for tools.
//
// Contract:
// - Not thread-safe: one Client per thread (ZeroMQ sockets are not
//   thread-safe either). A Client may be moved to another thread between
//   uses, never used from two at once.
// - Every request carries a unique integer `id`; replies are matched by it.
//   A reply whose id is not in flight (it came after its request timed out,
//   or was never ours) is dropped and counted in stats().dropped_replies, so
//   the client stays usable after a timeout (unlike a REQ socket).
// - A request not answered by its deadline completes with Error::Timeout.
//   ZeroMQ cannot tell "daemon down" from "daemon slow": an unreachable
//   daemon is also a Timeout. The request stays queued in ZeroMQ and may
//   still reach a daemon that comes up later; the daemon then counts its own
//   `timeout_ms` from receipt, so a write the caller gave up on may still be
//   applied. Retry only idempotent operations blindly.
// - Error replies become an Error whose code is CodeFromName(code), or
//   internal for a code name this client does not know.
// - With several endpoints (several daemons on one database), the client
//   keeps one DEALER socket per endpoint and watches each connection
//   (a ZeroMQ socket monitor), so no request waits behind a dead daemon:
//   * a request goes to the next connected endpoint, round-robin; while no
//     endpoint is connected it waits in the client, unsent, until one
//     connects or its deadline passes (then Timeout: it was never sent);
//   * when an endpoint's connection drops, the requests in flight on it are
//     resent to another connected endpoint if their op is idempotent
//     (IsIdempotentOp), under the same id and the same overall deadline;
//     any other request completes at once with Error::Unavailable, and it
//     MAY OR MAY NOT have been applied (the daemon may have died before or
//     after running it): writes are never retried blindly;
//   * an idempotent request with no reply at half its deadline is also sent
//     to another connected endpoint (a daemon that hangs without dropping
//     the connection); the first reply wins, the other is dropped.
//   With one endpoint nothing of this applies: one socket, no monitor.
// - Idempotent (read-only) ops, safe to send twice: ping, stats, get_user,
//   get_user_by_email, get_session, list_users, search_users,
//   list_sessions, list_audit, get_oauth_account, get_user_by_oauth,
//   list_oauth_accounts, get_passkey, list_passkeys, check_token,
//   login_failures, get_user_lock, is_jwt_revoked, list_jwt_revocations.
//   Everything else (including get_or_create_user and the take_* ops) is
//   a write.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json_fwd.hpp>

#include "torii/error.h"
#include "torii/protocol.h"

namespace zmq {
class context_t;
}

namespace torii {

struct ClientOptions {
  // Request endpoints (tcp:// or ipc://, or inproc:// with `context`).
  std::vector<std::string> endpoints;
  // Deadline of a request when CallOptions does not give one.
  int64_t default_timeout_ms = 5000;
  // CURVE (all three Z85, 40 characters each) or all empty for none.
  std::string server_public_key;
  std::string client_public_key;
  std::string client_secret_key;
  // Send and receive high-water marks, in messages. Large enough that
  // thousands of pipelined requests never hit them.
  int hwm = 100000;
  // A ZeroMQ context to share (required for inproc:// endpoints); not
  // owned, must outlive the Client. Null: the Client owns its own.
  zmq::context_t* context = nullptr;
  // The tenant every request acts in (PROTOCOL.md section 6), sent as the
  // request's `tenant` key. Empty: the key is not sent and the daemon uses
  // the default tenant (or the tenant the client's CURVE key is bound to),
  // so a client that never sets it sends the same bytes as before tenants.
  // One Client per tenant: an application serving several tenants keeps
  // one Client each. Create() refuses a name that is not 1 to 64 bytes of
  // [a-z0-9_.-] (invalid_argument); whether the tenant exists is the
  // daemon's answer (not_found on the first request).
  std::string tenant;
};

struct CallOptions {
  // The request's deadline; <= 0 means ClientOptions::default_timeout_ms.
  // It is sent as `timeout_ms`, so the daemon gives up at the same time.
  int64_t timeout_ms = 0;
  // Optional uuid of the user on whose behalf the request acts (`actor`).
  std::string actor;
};

// Whether `op` is safe to retry (OperationInfo::retry_safe, torii/operations.h):
// such a request may be sent to a second daemon when the first one fails.
bool IsIdempotentOp(std::string_view op);

// A request's arguments: nothing (`{}`), an already-packed msgpack map, or
// a callback that packs exactly one map. Non-owning: the bytes or the
// callback must outlive the Send()/Call() that takes it (a temporary at
// the call site is fine). No allocation.
class RequestArgs {
 public:
  RequestArgs() = default;
  // `packed_map` is the msgpack encoding of one map.
  RequestArgs(std::string_view packed_map) : packed_(packed_map), has_packed_(true) {}
  RequestArgs(const msgpack::sbuffer& packed_map)
      : packed_(packed_map.data(), packed_map.size()), has_packed_(true) {}
  template <typename F, typename = std::enable_if_t<std::is_invocable_v<F&, Packer&>>>
  RequestArgs(F&& pack_fn)
      : fn_(const_cast<void*>(static_cast<const void*>(&pack_fn))),
        call_([](void* f, Packer& pk) { (*static_cast<std::remove_reference_t<F>*>(f))(pk); }) {}

  bool empty() const { return !has_packed_ && call_ == nullptr; }
  // Packs the args value (a map) into `pk`.
  void PackInto(Packer& pk, msgpack::sbuffer& buf) const;

 private:
  std::string_view packed_;
  bool has_packed_ = false;
  void* fn_ = nullptr;
  void (*call_)(void*, Packer&) = nullptr;
};

// A successful reply. Owns the decoded body; result() points into it and is
// valid as long as the Reply lives (moving the Reply keeps it valid).
class Reply {
 public:
  Reply() = default;
  Reply(msgpack::object_handle handle, msgpack::object result)
      : handle_(std::move(handle)), result_(result) {}

  const msgpack::object& result() const { return result_; }

 private:
  msgpack::object_handle handle_;
  msgpack::object result_;
};

// One finished asynchronous request: its id and its outcome.
struct Completion {
  uint64_t id = 0;
  Result<Reply> reply = Error::Internal("empty completion");
};

struct ClientStats {
  uint64_t sent = 0;
  uint64_t replies = 0;          // replies matched to a request in flight
  uint64_t timeouts = 0;         // requests completed with a local timeout
  uint64_t dropped_replies = 0;  // late, unknown-id or undecodable replies
  uint64_t retries = 0;          // idempotent requests sent to another endpoint
  uint64_t lost = 0;             // writes failed as unavailable: their daemon's connection dropped
};

class Client {
 public:
  // Creates the DEALER socket and connects it to every endpoint. Fails with
  // invalid_argument for no endpoints, malformed CURVE keys or a malformed
  // tenant name, internal for
  // a ZeroMQ failure (e.g. a malformed endpoint). Connecting does not wait
  // for the daemon.
  static Result<Client> Create(ClientOptions options);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Blocking: sends one request and waits for its reply or its deadline.
  // Replies to other requests (Send()) that arrive meanwhile are kept for
  // Receive().
  Result<Reply> Call(std::string_view op, RequestArgs args = {}, const CallOptions& opts = {});

  // Asynchronous: queues one request and returns its id (never 0). If
  // ZeroMQ refuses the message at once (HWM reached), the request completes
  // with `overloaded` and shows up in Receive() like any other.
  uint64_t Send(std::string_view op, RequestArgs args = {}, const CallOptions& opts = {});
  // Waits up to `timeout_ms` (0: do not wait; < 0: forever) until at least
  // one completion is ready, reading arrived replies and expiring deadlines.
  // Returns how many completions are ready for Receive().
  size_t Poll(int64_t timeout_ms);
  // Pops one ready completion, without waiting; nullopt when none is ready.
  std::optional<Completion> Receive();
  // Requests sent and not yet completed.
  size_t in_flight() const;
  // The DEALER socket, for a caller that waits on many clients in one
  // thread (zmq_poll, or epoll on its ZMQ_FD): when it is readable, Poll(0)
  // reads the replies. ZMQ_FD is edge-triggered and is re-armed only by
  // Poll(): call Poll(0) after Send() or Call() and before waiting on it (a
  // send may take its signal, and Call() returns at its own reply).
  // Only for polling; sending or receiving on it breaks the client. With
  // several endpoints it is the first endpoint's socket only: poll such a
  // client with Poll() instead.
  void* socket_handle();
  // Whether endpoint `index` is connected now (several endpoints only: with
  // one, always true as far as the client knows).
  bool connected(size_t index) const;
  // ClientOptions::tenant: the tenant named in every request (empty: none).
  const std::string& tenant() const;

  // JSON bridge for tools: `args` (a JSON object or null) is packed as
  // msgpack as is (strings stay strings, even ones that look like
  // timestamps); the result is converted with MsgpackToJson.
  Result<nlohmann::json> CallJson(std::string_view op, const nlohmann::json& args, const CallOptions& opts = {});

  const ClientStats& stats() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// msgpack to JSON for display: timestamps (ext -1) become RFC 3339 UTC
// strings with microseconds ("2024-05-01T12:00:00.000000Z"), binary and
// other extensions base64 (standard alphabet, padded), non-string map keys
// their JSON text, NaN and infinities null.
nlohmann::json MsgpackToJson(const msgpack::object& o);
// RFC 3339 UTC with microseconds, e.g. "1970-01-01T00:00:00.000000Z".
std::string FormatRfc3339(Micros us);

}  // namespace torii
