// Setting up a non-blocking libpq connection under uv_poll.
#include "connector.h"

#include <map>
#include <string_view>

#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

std::vector<std::string> SplitList(const char* v) {
  std::vector<std::string> out;
  if (v == nullptr || *v == '\0') return out;
  std::string s(v);
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// The host, hostaddr and port lists of a conninfo (comma-separated; port
// may be one value for all hosts).
struct HostLists {
  std::vector<std::string> host, hostaddr, port;
  size_t hosts() const { return std::max(host.size(), hostaddr.size()); }
};

HostLists ParseHostLists(const std::string& conninfo) {
  HostLists h;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    PQfreemem(err);
    return h;
  }
  for (PQconninfoOption* o = opts; o->keyword != nullptr; o++) {
    std::string_view k = o->keyword;
    if (k == "host") h.host = SplitList(o->val);
    if (k == "hostaddr") h.hostaddr = SplitList(o->val);
    if (k == "port") h.port = SplitList(o->val);
  }
  PQconninfoFree(opts);
  return h;
}

std::string RotatedList(const std::vector<std::string>& list, size_t by) {
  std::string out;
  for (size_t i = 0; i < list.size(); i++) {
    if (i > 0) out += ',';
    out += list[(i + by) % list.size()];
  }
  return out;
}

// Per conninfo: how many hosts of its list the attempts now start after.
std::map<std::string, size_t>& HostOffsets() {
  static std::map<std::string, size_t> offsets;
  return offsets;
}

}  // namespace

void SkipTimedOutHost(PGconn* conn, const std::string& conninfo) {
  const char* at_host = conn != nullptr ? PQhost(conn) : nullptr;
  const char* at_port = conn != nullptr ? PQport(conn) : nullptr;
  HostLists h = ParseHostLists(conninfo);
  const size_t n = h.hosts();
  if (at_host == nullptr || n < 2) return;
  size_t& offset = HostOffsets()[conninfo];
  const std::vector<std::string>& names = h.host.size() == n ? h.host : h.hostaddr;
  for (size_t i = 0; i < n; i++) {
    const size_t at = (i + offset) % n;  // position i of the list the attempt used
    if (names[at] != at_host) continue;
    if (h.port.size() == n && at_port != nullptr && h.port[at] != at_port) continue;
    offset = (at + 1) % n;
    TLOG_WARN("database: host %s port %s did not answer within database.connect_timeout_ms; attempts now start at "
              "the host after it",
              at_host, at_port != nullptr ? at_port : "");
    return;
  }
}

void BuildConnectParams(const ConnectOptions& o, std::vector<std::string>& storage, std::vector<const char*>& keys,
                        std::vector<const char*>& vals) {
  storage.clear();
  storage.reserve(8);
  auto add = [&](const char* k, std::string v) {
    storage.push_back(std::move(v));
    keys.push_back(k);
  };
  add("sslmode", o.ssl_mode);
  add("application_name", o.application_name);
  add("keepalives", "1");
  add("keepalives_idle", std::to_string(std::max(1, o.tcp_user_timeout_ms / 3000)));
  add("keepalives_interval", "1");
  add("keepalives_count", "3");
  if (o.tcp_user_timeout_ms > 0) add("tcp_user_timeout", std::to_string(o.tcp_user_timeout_ms));
  add("dbname", o.conninfo);
  // After the conninfo, so that these override its lists: the hosts in the
  // order SkipTimedOutHost left them.
  if (auto it = HostOffsets().find(o.conninfo); it != HostOffsets().end() && it->second != 0) {
    HostLists h = ParseHostLists(o.conninfo);
    const size_t n = h.hosts();
    if (h.host.size() == n) add("host", RotatedList(h.host, it->second));
    if (h.hostaddr.size() == n) add("hostaddr", RotatedList(h.hostaddr, it->second));
    if (h.port.size() == n) add("port", RotatedList(h.port, it->second));
  }
  for (const auto& s : storage) vals.push_back(s.c_str());
  keys.push_back(nullptr);
  vals.push_back(nullptr);
}

void NoteHost(PGconn* conn, std::string* last, const char* who, uint64_t id) {
  const char* host = PQhost(conn);
  if (host == nullptr || *last == host) return;
  *last = host;
  if (id != 0) {
    TLOG_DEBUG("%s %lu: trying host %s port %s", who, (unsigned long)id, host, PQport(conn));
  } else {
    TLOG_DEBUG("%s: trying host %s port %s", who, host, PQport(conn));
  }
}

void PgSocketWatch::Watch(PGconn* conn, int events) {
  int fd = PQsocket(conn);
  if (fd < 0) return;
  if (poll_ != nullptr && fd != fd_) Release();
  if (poll_ == nullptr) {
    poll_ = new uv_poll_t;
    // Fails with UV_EEXIST while another handle of the loop still watches
    // this descriptor number.
    if (int err = uv_poll_init(loop_, poll_, fd); err != 0) {
      delete poll_;
      poll_ = nullptr;
      Fail("uv_poll_init", err);
      return;
    }
    poll_->data = this;
    fd_ = fd;
    events_ = 0;
  }
  if (events == events_) return;
  int err = uv_poll_start(poll_, events, [](uv_poll_t* p, int status, int ev) {
    auto* self = static_cast<PgSocketWatch*>(p->data);
    self->cb_(self->owner_, status, ev);
  });
  if (err != 0) {
    Fail("uv_poll_start", err);
    return;
  }
  events_ = events;
}

void PgSocketWatch::Fail(const char* what, int err) {
  if (error_ == 0) TLOG_ERROR("cannot watch a database socket: %s: %s", what, uv_strerror(err));
  error_ = err;
}

void PgSocketWatch::Release() {
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    CloseAndDelete(poll_);
    poll_ = nullptr;
  }
  fd_ = -1;
  events_ = 0;
  error_ = 0;
}

void PgConnector::Start(const ConnectOptions& options, Done done) {
  Cancel();
  done_ = std::move(done);
  conninfo_ = options.conninfo;
  std::vector<std::string> storage;
  std::vector<const char*> keys, vals;
  BuildConnectParams(options, storage, keys, vals);
  conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
  if (id_ != 0) {
    TLOG_DEBUG("%s %lu: connecting", who_.c_str(), (unsigned long)id_);
  } else {
    TLOG_DEBUG("%s: connecting", who_.c_str());
  }
  host_.clear();
  if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    Fail(ErrorFromConn(conn_));
    return;
  }
  NoteHost(conn_, &host_, who_.c_str(), id_);
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_start(timer_, OnTimer, static_cast<uint64_t>(options.connect_timeout_ms), 0);
  // As if PQconnectPoll had returned PGRES_POLLING_WRITING.
  WatchConnecting(UV_WRITABLE);
}

void PgConnector::OnTimer(uv_timer_t* t) {
  auto* self = static_cast<PgConnector*>(t->data);
  if (self->socket_error_ != 0) {
    self->Fail(Error::Unavailable(std::string("cannot watch its socket: ") + uv_strerror(self->socket_error_)));
    return;
  }
  SkipTimedOutHost(self->conn_, self->conninfo_);
  self->Fail(Error::Unavailable("connection attempt timed out"));
}

void PgConnector::WatchConnecting(int events) {
  socket_.WatchConnecting(conn_, events);
  if (socket_.error() == 0 || socket_error_ != 0) return;
  // No callback will come for this socket: give up on the next turn.
  socket_error_ = socket_.error();
  uv_timer_stop(timer_);
  uv_timer_start(timer_, OnTimer, 0, 0);
}

void PgConnector::OnSocket() {
  if (conn_ == nullptr || socket_error_ != 0) return;
  PostgresPollingStatusType st = PQconnectPoll(conn_);
  NoteHost(conn_, &host_, who_.c_str(), id_);
  switch (st) {
    case PGRES_POLLING_READING: WatchConnecting(UV_READABLE); return;
    case PGRES_POLLING_WRITING: WatchConnecting(UV_WRITABLE); return;
    case PGRES_POLLING_FAILED: Fail(ErrorFromConn(conn_)); return;
    case PGRES_POLLING_OK: break;
    default: return;
  }
  if (PQsetnonblocking(conn_, 1) != 0) {
    Fail(ErrorFromConn(conn_));
    return;
  }
  PGconn* conn = conn_;
  conn_ = nullptr;
  CloseAndDelete(timer_);
  timer_ = nullptr;
  Done done = std::move(done_);
  done_ = nullptr;
  done(Result<PGconn*>(conn));
}

void PgConnector::Fail(Error why) {
  Done done = std::move(done_);
  Cancel();
  if (done) done(Result<PGconn*>(std::move(why)));
}

void PgConnector::Cancel() {
  if (timer_ != nullptr) {
    uv_timer_stop(timer_);
    CloseAndDelete(timer_);
    timer_ = nullptr;
  }
  socket_error_ = 0;
  done_ = nullptr;
  if (conn_ != nullptr) {
    socket_.Release();
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

}  // namespace torii::daemon
