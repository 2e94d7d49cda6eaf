// CURVE options, the ZAP handler and ipc:// socket permissions.
#include "security.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "torii/curve.h"
#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

// A draft option in libzmq 4.3's header, present in its library since 4.2.3;
// the header hides it unless ZMQ_BUILD_DRAFT_API, so name it here.
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
constexpr int kZapEnforceDomain = 93;
#else
constexpr int kZapEnforceDomain = ZMQ_ZAP_ENFORCE_DOMAIN;
#endif

std::string FrameText(const zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }

}  // namespace

Result<std::string> LoadServerSecretKey(const std::string& path) {
  auto secret = ReadCurveKeyFile(path);
  if (!secret.ok()) return Error::InvalidArgument("security.curve_secret_key_file: " + secret.error().message());
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    TLOG_WARN("security: %s may be read by group or others (mode %03o); it should be 0600", path.c_str(),
              static_cast<unsigned>(st.st_mode & 0777));
  }
  auto pub = CurvePublicFromSecret(*secret);
  if (!pub.ok()) return Error::InvalidArgument("security.curve_secret_key_file: " + pub.error().message());
  // The public key is what clients configure; it is not a secret.
  TLOG_INFO("security: CURVE on; server public key %s", pub->c_str());
  return secret;
}

Status ApplyCurveServer(zmq::socket_t& socket, const std::string& secret_key) {
  if (!zmq_has("curve")) return Error::Internal("this libzmq was built without CURVE");
  try {
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, secret_key);
    socket.set(zmq::sockopt::zap_domain, kZapDomain);
  } catch (const zmq::error_t& e) {
    return Error::Internal(std::string("cannot set the CURVE options: ") + e.what());
  }
  // Without a ZAP handler libzmq would admit every CURVE client; with this
  // a missing handler means refusal. Our handler is bound before the
  // sockets and closed after them, so this is a second line of defence.
  int one = 1;
  if (zmq_setsockopt(socket.handle(), kZapEnforceDomain, &one, sizeof(one)) != 0) {
    TLOG_WARN("security: this libzmq lacks ZMQ_ZAP_ENFORCE_DOMAIN (%s); relying on the ZAP handler alone",
              zmq_strerror(zmq_errno()));
  }
  return {};
}

Status BindEndpoint(zmq::socket_t& socket, const std::string& endpoint) {
  const bool ipc = endpoint.rfind("ipc://", 0) == 0 && endpoint.rfind("ipc://@", 0) != 0;
  if (!ipc) {
    // libzmq binds an IPv6 address only with ZMQ_IPV6, which would also turn
    // `*` and interface names into IPv6 binds: on for IPv6 addresses alone.
    if (endpoint.rfind("tcp://", 0) == 0) {
      std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
      socket.set(zmq::sockopt::ipv6, host.find(':') != std::string::npos);
    }
    socket.bind(endpoint);
    return {};
  }
  // libzmq creates the socket file inside bind(); the umask decides its
  // first mode. The loop has not started, no other thread creates files.
  mode_t old = ::umask(0117);
  try {
    socket.bind(endpoint);
  } catch (...) {
    ::umask(old);
    throw;
  }
  ::umask(old);
  // The actual path (a `*` in the endpoint is resolved by libzmq).
  std::string bound = socket.get(zmq::sockopt::last_endpoint);
  std::string path = bound.rfind("ipc://", 0) == 0 ? bound.substr(6) : endpoint.substr(6);
  if (::chmod(path.c_str(), kIpcSocketMode) != 0) {
    return Error::Internal("cannot restrict " + path + ": " + std::strerror(errno));
  }
  return {};
}

ZapHandler::ZapHandler(uv_loop_t* loop, zmq::context_t& ctx) : loop_(loop), socket_(ctx, zmq::socket_type::rep) {}

ZapHandler::~ZapHandler() { Close(); }

Status ZapHandler::Load(const std::string& dir) {
  if (dir.empty()) {
    return Error::InvalidArgument(
        "security.curve_authorized_keys_dir is empty: with CURVE on, the daemon admits only listed client keys "
        "(an empty folder admits nobody)");
  }
  auto loaded = LoadAuthorizedKeys(dir);
  if (!loaded.ok()) return Error::InvalidArgument("security.curve_authorized_keys_dir: " + loaded.error().message());
  for (const auto& why : loaded->skipped) TLOG_WARN("security: authorized key %s/%s; skipped", dir.c_str(), why.c_str());
  keys_.clear();
  for (const auto& k : loaded->keys) keys_.emplace(k, std::string());
  std::set<std::string> tenants;
  for (const auto& [k, tenant] : loaded->bound) {
    keys_[k] = tenant;
    tenants.insert(tenant);
  }
  logged_denials_.clear();
  if (loaded->bound.empty()) {
    TLOG_INFO("security: %zu authorized client keys from %s", keys_.size(), dir.c_str());
  } else {
    TLOG_INFO("security: %zu authorized client keys from %s (%zu of them bound to %zu tenants)", keys_.size(),
              dir.c_str(), loaded->bound.size(), tenants.size());
  }
  return {};
}

Status ZapHandler::Start(const std::string& dir) {
  if (auto st = Load(dir); !st.ok()) return st;
  try {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return Error::Internal(std::string("cannot start the ZAP handler: ") + e.what());
  }
  if (int err = uv_poll_init(loop_, &poll_, socket_.get(zmq::sockopt::fd)); err != 0) {
    return Error::Internal(std::string("cannot watch the ZAP socket: ") + uv_strerror(err));
  }
  poll_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  started_ = true;
  uv_poll_start(&poll_, UV_READABLE, OnPoll);
  uv_prepare_start(&prepare_, OnPrepare);
  return {};
}

Status ZapHandler::Reload(const std::string& dir) {
  auto before = keys_;
  if (auto st = Load(dir); !st.ok()) return st;
  stats_.reloads++;
  size_t removed =
      std::count_if(before.begin(), before.end(), [this](const auto& k) { return keys_.count(k.first) == 0; });
  size_t rebound = std::count_if(before.begin(), before.end(), [this](const auto& k) {
    auto it = keys_.find(k.first);
    return it != keys_.end() && it->second != k.second;
  });
  if (rebound > 0) {
    TLOG_INFO("security: %zu keys changed tenant binding; their requests follow the new binding now, their event "
              "subscriptions when they subscribe again or reconnect",
              rebound);
  }
  if (removed > 0) {
    TLOG_INFO("security: %zu keys revoked; their requests are refused now, their event subscriptions end when they "
              "reconnect",
              removed);
  }
  return {};
}

namespace {

// The key our 200 reply named as the connection's User-Id; false when the
// message has none (no ZAP approval, or CURVE off).
bool UserKey(const zmq::message_t& msg, std::array<uint8_t, 32>* raw) {
  // zmq_msg_gets takes a non-const message but only reads its metadata.
  const char* user = zmq_msg_gets(const_cast<zmq_msg_t*>(msg.handle()), "User-Id");
  return user != nullptr && std::strlen(user) == kZ85KeyLength && zmq_z85_decode(raw->data(), user) != nullptr;
}

}  // namespace

bool ZapHandler::Admits(const zmq::message_t& msg) {
  // Set by our 200 reply for this connection; absent means no ZAP approval.
  std::array<uint8_t, 32> raw{};
  bool ok = UserKey(msg, &raw) && keys_.count(raw) != 0;
  if (!ok) stats_.revoked_messages++;
  return ok;
}

std::optional<std::string> ZapHandler::BoundTenant(const zmq::message_t& msg) const {
  std::array<uint8_t, 32> raw{};
  if (!UserKey(msg, &raw)) return std::nullopt;
  auto it = keys_.find(raw);
  if (it == keys_.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

size_t ZapHandler::bound_key_count() const {
  return std::count_if(keys_.begin(), keys_.end(), [](const auto& k) { return !k.second.empty(); });
}

void ZapHandler::Close() {
  if (!started_) return;
  started_ = false;
  CloseEmbedded(&poll_);
  CloseEmbedded(&prepare_);
  socket_.close();
}

void ZapHandler::OnPoll(uv_poll_t* h, int, int) { static_cast<ZapHandler*>(h->data)->Pump(); }
void ZapHandler::OnPrepare(uv_prepare_t* h) { static_cast<ZapHandler*>(h->data)->Pump(); }

void ZapHandler::Pump() {
  // ZMQ_FD is edge-triggered: drain until ZMQ_EVENTS shows nothing. A REP
  // socket takes the next request only after the reply, so every request
  // gets one, even a malformed one.
  while (started_ && (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) {
    std::vector<zmq::message_t> request;
    try {
      for (;;) {
        zmq::message_t part;
        if (!socket_.recv(part, zmq::recv_flags::dontwait)) break;
        bool more = part.more();
        request.push_back(std::move(part));
        if (!more) break;
      }
    } catch (const zmq::error_t& e) {
      TLOG_WARN("security: ZAP receive failed: %s", e.what());
      return;
    }
    if (request.empty()) return;
    Answer(request);
  }
}

void ZapHandler::Answer(std::vector<zmq::message_t>& request) {
  // RFC 27: version, request id, domain, address, routing id, mechanism,
  // credentials (CURVE: the client's 32-byte public key).
  std::string status = "400", text = "not authorized", user;
  std::string address = request.size() > 3 ? FrameText(request[3]) : "?";
  std::string why;
  if (request.size() < 6 || FrameText(request[0]) != "1.0") {
    why = "malformed ZAP request";
  } else if (FrameText(request[2]) != kZapDomain) {
    why = "domain is not " + std::string(kZapDomain);
  } else if (FrameText(request[5]) != "CURVE" || request.size() != 7 || request[6].size() != 32) {
    why = "mechanism " + FrameText(request[5]) + " is not CURVE";
  } else {
    std::array<uint8_t, 32> raw{};
    std::memcpy(raw.data(), request[6].data(), raw.size());
    user = EncodeZ85Key(raw);
    if (keys_.count(raw) != 0) {
      status = "200";
      text = "OK";
    } else {
      why = "client key " + user + " is not authorized";
      user.clear();
    }
  }
  if (status == "200") {
    stats_.allowed++;
    TLOG_DEBUG("security: admitted %s (key %s)", address.c_str(), user.c_str());
  } else {
    stats_.denied++;
    // Public keys and addresses only; nothing here is a secret.
    if (logged_denials_.size() < 1000 && logged_denials_.insert(why).second) {
      TLOG_WARN("security: refused a connection from %s: %s", address.c_str(), why.c_str());
    } else {
      TLOG_DEBUG("security: refused a connection from %s: %s", address.c_str(), why.c_str());
    }
  }
  std::string request_id = request.size() > 1 ? FrameText(request[1]) : "";
  try {
    const std::string version = "1.0";
    const std::string* frames[] = {&version, &request_id, &status, &text, &user};
    for (const std::string* f : frames) {
      zmq::message_t m(f->data(), f->size());
      (void)socket_.send(m, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    }
    zmq::message_t metadata;  // empty: no metadata
    (void)socket_.send(metadata, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    TLOG_WARN("security: ZAP reply failed: %s", e.what());
  }
}

}  // namespace torii::daemon
