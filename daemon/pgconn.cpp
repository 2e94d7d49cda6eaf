// One non-blocking libpq connection under uv_poll, outside the pool.
#include "pgconn.h"

#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

AsyncConn::AsyncConn(uv_loop_t* loop, std::string name, ConnectOptions options)
    : loop_(loop),
      name_(std::move(name)),
      opt_(std::move(options)),
      socket_(loop, this, [](void* o, int status, int events) { static_cast<AsyncConn*>(o)->OnPoll(status, events); }),
      connector_(loop, socket_, name_, 0) {}

AsyncConn::~AsyncConn() {
  on_lost_ = nullptr;
  Release();
}

void AsyncConn::Connect(std::function<void()> on_ready, std::function<void(const Error&)> on_lost) {
  Release();
  on_ready_ = std::move(on_ready);
  on_lost_ = std::move(on_lost);
  state_ = kConnecting;
  connector_.Start(opt_, [this](Result<PGconn*>&& conn) { OnConnected(std::move(conn)); });
}

void AsyncConn::OnConnected(Result<PGconn*>&& conn) {
  if (!conn.ok()) {
    Lose(conn.error().message());
    return;
  }
  conn_ = *conn;
  state_ = kReady;
  Watch(UV_READABLE);
  TLOG_DEBUG("%s: connected", name_.c_str());
  if (on_ready_) on_ready_();
  SendNext();
}

void AsyncConn::Watch(int events) {
  socket_.Watch(conn_, events);
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
    connector_.OnSocket();
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
  connector_.Cancel();
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
