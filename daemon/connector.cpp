// One non-blocking libpq connection under uv_poll.
#include "pgconn.h"

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

AsyncConn::AsyncConn(uv_loop_t* loop, std::string name, ConnectOptions options)
    : loop_(loop),
      name_(std::move(name)),
      opt_(std::move(options)),
      socket_(loop, this, [](void* o, int status, int events) { static_cast<AsyncConn*>(o)->OnPoll(status, events); }) {}

AsyncConn::~AsyncConn() {
  on_lost_ = nullptr;
  Release();
}

void AsyncConn::Connect(std::function<void()> on_ready, std::function<void(const Error&)> on_lost) {
  Release();
  on_ready_ = std::move(on_ready);
  on_lost_ = std::move(on_lost);
  std::vector<std::string> storage;
  std::vector<const char*> keys, vals;
  BuildConnectParams(opt_, storage, keys, vals);
  conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
  TLOG_DEBUG("%s: connecting", name_.c_str());
  host_.clear();
  if (conn_ != nullptr) NoteHost(conn_, &host_, name_.c_str(), 0);
  state_ = kConnecting;
  if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    Lose(ErrorFromConn(conn_).message());
    return;
  }
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  connect_timer_ = new uv_timer_t;
  uv_timer_init(loop_, connect_timer_);
  connect_timer_->data = this;
  uv_timer_start(connect_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<AsyncConn*>(t->data);
    SkipTimedOutHost(self->conn_, self->opt_.conninfo);
    self->Lose("connection attempt timed out");
  }, opt_.connect_timeout_ms, 0);
  Watch(UV_WRITABLE);
}

void AsyncConn::Watch(int events) {
  socket_.Watch(conn_, events);
  if (socket_.error() != 0) LoseSoon();
}

void AsyncConn::WatchConnecting(int events) {
  socket_.WatchConnecting(conn_, events);
  if (socket_.error() != 0) LoseSoon();
}

void AsyncConn::LoseSoon() {
  if (lose_timer_ != nullptr) return;
  lose_timer_ = new uv_timer_t;
  uv_timer_init(loop_, lose_timer_);
  lose_timer_->data = this;
  uv_timer_start(lose_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<AsyncConn*>(t->data);
    self->Lose(std::string("cannot watch its socket: ") + uv_strerror(self->socket_.error()));
  }, 0, 0);
}

void AsyncConn::OnPoll(int status, int events) {
  if (state_ == kConnecting) {
    ContinueConnect();
    return;
  }
  if (state_ != kReady) return;
  if (status < 0) {
    Lose(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  if (events & UV_WRITABLE) {
    int r = PQflush(conn_);
    if (r < 0) {
      Lose("write failed");
      return;
    }
    Watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
  }
  if (events & UV_READABLE) Read();
}

void AsyncConn::ContinueConnect() {
  PostgresPollingStatusType st = PQconnectPoll(conn_);
  NoteHost(conn_, &host_, name_.c_str(), 0);
  switch (st) {
    case PGRES_POLLING_READING: WatchConnecting(UV_READABLE); return;
    case PGRES_POLLING_WRITING: WatchConnecting(UV_WRITABLE); return;
    case PGRES_POLLING_FAILED: Lose(ErrorFromConn(conn_).message()); return;
    case PGRES_POLLING_OK: break;
    default: return;
  }
  CloseAndDelete(connect_timer_);
  connect_timer_ = nullptr;
  PQsetnonblocking(conn_, 1);
  state_ = kReady;
  Watch(UV_READABLE);
  TLOG_DEBUG("%s: connected", name_.c_str());
  if (on_ready_) on_ready_();
  SendNext();
}

void AsyncConn::Query(std::string sql, std::vector<std::optional<std::string>> params, Done done) {
  if (state_ == kClosed || state_ == kIdle) {
    done(Error::Unavailable(name_ + ": not connected"));
    return;
  }
  queue_.push_back({std::move(sql), std::move(params), std::move(done)});
  SendNext();
}

void AsyncConn::SendNext() {
  if (state_ != kReady || sent_ || queue_.empty()) return;
  Pending& p = queue_.front();
  std::vector<const char*> values;
  for (const auto& v : p.params) values.push_back(v ? v->c_str() : nullptr);
  // Without parameters the simple protocol runs, which allows several
  // statements in one string (LISTEN a; LISTEN b).
  int sent = values.empty() ? PQsendQuery(conn_, p.sql.c_str())
                            : PQsendQueryParams(conn_, p.sql.c_str(), static_cast<int>(values.size()), nullptr,
                                                values.data(), nullptr, nullptr, 0);
  if (sent != 1) {
    Lose(std::string("send failed: ") + PQerrorMessage(conn_));
    return;
  }
  sent_ = true;
  head_result_.reset();
  int r = PQflush(conn_);
  if (r < 0) {
    Lose("write failed");
    return;
  }
  Watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
}

void AsyncConn::Read() {
  if (PQconsumeInput(conn_) != 1) {
    Lose(std::string("read failed: ") + PQerrorMessage(conn_));
    return;
  }
  while (sent_ && !PQisBusy(conn_)) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) {
      // The head query is complete.
      Pending p = std::move(queue_.front());
      queue_.pop_front();
      sent_ = false;
      Result<PgResult> out = head_result_ ? std::move(*head_result_) : Result<PgResult>(Error::Internal("no result"));
      head_result_.reset();
      p.done(std::move(out));
      if (state_ != kReady) return;  // the callback closed us
      SendNext();
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      if (!head_result_ || head_result_->ok()) head_result_.emplace(PgResult(r));
      else PQclear(r);
    } else {
      if (!head_result_ || head_result_->ok()) head_result_.emplace(ErrorFromResult(r));
      PQclear(r);
    }
  }
  while (PGnotify* n = PQnotifies(conn_)) {
    if (on_notify_) on_notify_(n->relname, n->extra);
    PQfreemem(n);
    if (state_ != kReady) return;
  }
  if (PQstatus(conn_) == CONNECTION_BAD) Lose("connection lost");
}

void AsyncConn::Lose(const std::string& why) {
  if (state_ == kClosed) return;
  TLOG_WARN("%s: disconnected (%s)", name_.c_str(), why.c_str());
  Release();
  state_ = kClosed;
  std::deque<Pending> q;
  q.swap(queue_);
  sent_ = false;
  for (auto& p : q) p.done(Error::Unavailable(name_ + ": connection lost: " + why));
  if (on_lost_) {
    auto cb = on_lost_;
    cb(Error::Unavailable(why));
  }
}

void AsyncConn::Close(const std::string& reason) {
  if (state_ == kClosed || state_ == kIdle) {
    Release();
    state_ = kClosed;
    return;
  }
  on_lost_ = nullptr;
  Lose(reason);
}

void AsyncConn::Release() {
  if (connect_timer_ != nullptr) {
    uv_timer_stop(connect_timer_);
    CloseAndDelete(connect_timer_);
    connect_timer_ = nullptr;
  }
  if (lose_timer_ != nullptr) {
    uv_timer_stop(lose_timer_);
    CloseAndDelete(lose_timer_);
    lose_timer_ = nullptr;
  }
  socket_.Release();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

}  // namespace torii::daemon
