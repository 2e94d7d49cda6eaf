// Transport security of the daemon's ZeroMQ sockets: CURVE server options,
// the ZAP handler that admits only authorized client keys, and restrictive
// permissions on ipc:// socket files.
//
// CURVE alone encrypts but admits any client key; libzmq asks a ZAP handler
// (a REP socket on inproc://zeromq.zap.01 in the same context) about every
// new connection. ZapHandler is that handler, served on the libuv loop like
// the Router. It answers 200 for a CURVE key listed in
// security.curve_authorized_keys_dir and 400 for anything else (unknown key,
// another mechanism, another domain). The sockets set ZMQ_ZAP_DOMAIN "torii"
// and ZMQ_ZAP_ENFORCE_DOMAIN, so a missing handler refuses rather than
// admits. The 200 reply names the client's key (Z85) as its User-Id, which
// ZeroMQ attaches to every message of that connection; Admits() checks it
// against the keys in force now, so a key removed by a reload stops being
// served at once even on a connection opened before (requests only: a PUB
// socket cannot tell its subscribers apart, so an open SUB connection keeps
// receiving until it reconnects).
//
// Key binding (PROTOCOL.md section 6): a key file in a sub-folder
// `<curve_authorized_keys_dir>/<tenant>/` is authorized and bound to that
// tenant; BoundTenant() tells a message's tenant from its User-Id, for the
// request path (forbid another tenant) and the event socket (rewrite the
// peer's subscriptions into its tenant).
//
// Loop thread only. Start() must run before any CURVE socket binds.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "torii/error.h"

namespace torii::daemon {

// The ZAP domain of both sockets.
inline constexpr const char* kZapDomain = "torii";

// Reads the server's secret key file (warns when group or others may read
// it) and returns the secret key; logs the derived public key, which clients
// need. invalid_argument when the file is missing or malformed.
Result<std::string> LoadServerSecretKey(const std::string& path);

// Sets CURVE_SERVER, CURVE_SECRETKEY, ZAP_DOMAIN and ZAP_ENFORCE_DOMAIN on a
// socket that has not bound yet.
Status ApplyCurveServer(zmq::socket_t& socket, const std::string& secret_key);

// Binds `endpoint`; when it is an ipc:// file, the file gets mode 0660
// (owner and group): created under umask 0117 so that it is never open to
// others, then chmod'ed so that a looser umask of the process cannot widen
// it either. Abstract sockets (ipc://@name) have no file and no mode. An
// IPv6 address (tcp://[::1]:7420) turns on ZMQ_IPV6 for that bind only.
// Throws zmq::error_t like bind(); a failed chmod is an error Status.
Status BindEndpoint(zmq::socket_t& socket, const std::string& endpoint);
// The mode BindEndpoint gives ipc:// socket files.
inline constexpr unsigned kIpcSocketMode = 0660;

struct ZapStats {
  uint64_t allowed = 0;
  uint64_t denied = 0;
  uint64_t revoked_messages = 0;  // requests dropped by Admits()
  uint64_t reloads = 0;
};

class ZapHandler {
 public:
  ZapHandler(uv_loop_t* loop, zmq::context_t& ctx);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Loads the keys of `dir` (an unreadable folder is an error; bad files are
  // logged and skipped), binds inproc://zeromq.zap.01 and starts serving.
  Status Start(const std::string& dir);
  // Reloads the keys (SIGHUP). On error the keys in force stay, and the
  // caller says so (the error is not logged here).
  Status Reload(const std::string& dir);
  // True when a message came over a connection whose key is authorized now.
  bool Admits(const zmq::message_t& msg);
  // The tenant the message's key is bound to now (keys in a tenant's
  // sub-folder); nullopt for an unbound key, a message without a User-Id
  // (CURVE off) and a key not in force: check Admits() first, since nullopt
  // alone does not tell an unbound key from a revoked one. Works on any
  // message received from the ROUTER or the XPUB socket.
  std::optional<std::string> BoundTenant(const zmq::message_t& msg) const;
  void Close();

  size_t key_count() const { return keys_.size(); }
  size_t bound_key_count() const;
  const ZapStats& stats() const { return stats_; }

 private:
  Status Load(const std::string& dir);
  void Pump();
  void Answer(std::vector<zmq::message_t>& request);
  static void OnPoll(uv_poll_t* h, int status, int events);
  static void OnPrepare(uv_prepare_t* h);

  uv_loop_t* loop_;
  zmq::socket_t socket_;
  uv_poll_t poll_;
  uv_prepare_t prepare_;
  bool started_ = false;
  // Every authorized key, with the tenant it is bound to ("" when unbound).
  std::map<std::array<uint8_t, 32>, std::string> keys_;
  // Keys already logged as denied since the last reload: a refused client
  // retries every reconnect interval, and one line per key is enough.
  std::set<std::string> logged_denials_;
  ZapStats stats_;
};

}  // namespace torii::daemon
