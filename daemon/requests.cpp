// Request lifecycle: decode, dispatch, deadline, reply.
#include "requests.h"

#include <cstdlib>

#include "ops/ops_common.h"
#include "ops/ops_sessions.h"
#include "request_metrics.h"
#include "torii/log.h"
#include "torii/values.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

// How long after its deadline a request whose statement was sent waits for
// the server to confirm the cancel, before it is answered unconfirmed.
constexpr uint64_t kCancelGraceMs = 1000;
// The reply buffer is kept between replies up to this size.
constexpr size_t kKeepReplyBytes = 1 << 20;

}  // namespace

struct Requests::Ctx {
  uint64_t seq = 0;
  Envelope env;
  std::string id_raw;
  std::multimap<uint64_t, Ctx*>::iterator deadline_it;
  JobId job = 0;  // while the pool runs it
  bool cancelling = false;  // deadline passed, waiting for the cancel's outcome
  bool hot_fill = false;  // a get_session miss whose row goes into the cache
  uint64_t hot_gen = 0;   // the cache's generation when it was sent
  Plan plan;
  RequestMark mark;  // per-operation metrics, when they are on
  // While the tenant it names is looked up (not yet known to exist).
  std::unique_ptr<Request> waiting;
  bool bound = false;  // its client key is bound to its tenant
};

Requests::Requests(uv_loop_t* loop, Router& router, Pool& pool, DecodeLimits limits)
    : loop_(loop), router_(router), pool_(pool), limits_(limits) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  uv_timer_init(loop_, &idle_timer_);
  idle_timer_.data = this;
}

Requests::~Requests() { Close(); }

void Requests::Close() {
  for (auto& [seq, ctx] : live_) {
    if (ctx->job != 0) pool_.Abandon(ctx->job);
  }
  deadlines_.clear();
  live_.clear();
  on_idle_ = nullptr;
  CloseEmbedded(&timer_);
  CloseEmbedded(&idle_timer_);
}

void Requests::AddLocalOp(std::string name, LocalOp op) { local_[std::move(name)] = std::move(op); }

Requests::TenantChoice Requests::ChooseTenant(const zmq::message_t& body, Request& req) const {
  TenantChoice c;
  c.tenant = req.tenant ? std::move(*req.tenant) : std::string(kDefaultTenant);
  if (bound_tenant_) {
    // A client key bound to a tenant (PROTOCOL.md section 6) acts in it
    // whatever it names, and naming another is refused.
    if (std::optional<std::string> bound = bound_tenant_(body)) {
      c.forbidden = req.tenant.has_value() && c.tenant != *bound;
      c.tenant = std::move(*bound);
      c.bound = true;
    }
  }
  return c;
}

// The shape of a get_session the cache may answer before anything else is
// built for it: no actor, a deadline, no top-level key but op, id, args, v,
// timeout_ms and tenant, and args exactly {"token": a string of 1 to 1024
// bytes}, which BuildGetSession turns into a cache lookup by digest and
// nothing else. Any other shape takes the general path (and gets its
// error, or the same lookup, there).
// This runs before the checks OnMessage makes after decoding: it takes the
// same tenant (ChooseTenant) and leaves to the general path every request
// those checks may refuse: a bound key naming another tenant, a tenant not
// known yet. A check added there that can refuse a get_session or change
// what it reads must be made here too, or keep such requests off this path.
bool Requests::AnswerFromCache(Envelope& env, const TenantChoice& choice, const Request& req, RequestMark& mark,
                               bool* looked_up) {
  if (req.actor || req.op != "get_session" || req.timeout_ms.value_or(default_timeout_ms_) == 0) return false;
  const msgpack::object& root = req.handle.get();
  for (uint32_t i = 0; i < root.via.map.size; i++) {
    std::string_view k(root.via.map.ptr[i].key.via.str.ptr, root.via.map.ptr[i].key.via.str.size);
    if (k != "op" && k != "id" && k != "args" && k != "v" && k != "timeout_ms" && k != "tenant") return false;
  }
  const msgpack::object& a = req.args;
  if (a.type != msgpack::type::MAP || a.via.map.size != 1) return false;
  const msgpack::object_kv& kv = a.via.map.ptr[0];
  if (kv.key.type != msgpack::type::STR || std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) != "token" ||
      kv.val.type != msgpack::type::STR || kv.val.via.str.size == 0 || kv.val.via.str.size > kMaxTokenBytes) {
    return false;
  }
  const std::string& tenant = choice.tenant;
  if (choice.forbidden || (tenant != kDefaultTenant && known_tenants_.count(tenant) == 0)) return false;
  auto digest = TokenDigest(std::string_view(kv.val.via.str.ptr, kv.val.via.str.size));
  std::string_view digest_view(reinterpret_cast<const char*>(digest.data()), digest.size());
  // The lease is judged on the clock the listener's probes are timed by.
  const std::string* hit =
      tenant == kDefaultTenant
          ? hot_->FindByDigest(digest_view, NowMicros(), uv_hrtime() / 1000)
          : hot_->FindByDigest(HotDigestKey(tenant, digest_view), NowMicros(), uv_hrtime() / 1000);
  *looked_up = true;
  if (hit == nullptr) return false;
  tenant_requests_[tenant]++;
  reply_.clear();
  BeginOkReply(reply_, req.id_raw);
  reply_.write(hit->data(), hit->size());
  router_.Reply(env, reply_.data(), reply_.size());
  if (metrics_ != nullptr) {
    if (get_session_op_ == nullptr) get_session_op_ = FindDatabaseOp("get_session");
    mark.op = metrics_->Op(get_session_op_, "get_session");
    metrics_->Done(mark, Code::kOk);
  }
  return true;
}

void Requests::OnMessage(Envelope&& env, zmq::message_t&& body) {
  stats_.requests++;
  RequestMark mark;
  if (metrics_ != nullptr) mark = metrics_->Start();
  Request req;
  Status decoded = DecodeRequest(static_cast<const char*>(body.data()), body.size(), limits_, &req);
  // A cache hit is answered here, with no per-request state: no context, no
  // deadline, no plan. A lookup that missed is not repeated below.
  TenantChoice tenant;
  if (decoded.ok()) tenant = ChooseTenant(body, req);
  bool hot_looked_up = false;
  if (decoded.ok() && hot_ != nullptr && AnswerFromCache(env, tenant, req, mark, &hot_looked_up)) return;

  const uint64_t seq = next_seq_++;
  Ctx* ctx = live_.emplace(seq, std::make_unique<Ctx>()).first->second.get();
  ctx->seq = seq;
  ctx->env = std::move(env);
  ctx->deadline_it = deadlines_.end();
  ctx->mark = mark;
  ctx->id_raw = std::move(req.id_raw);
  if (!decoded.ok()) {
    ReplyError(ctx, decoded.error());
    return;
  }
  uint64_t timeout = req.timeout_ms.value_or(default_timeout_ms_);
  if (timeout == 0) {
    // A deadline of now: nothing can complete by it.
    stats_.timeouts++;
    ReplyError(ctx, Error::Timeout("timeout_ms is 0"));
    return;
  }
  ctx->deadline_it = deadlines_.emplace(uv_now(loop_) + timeout, ctx);
  ArmTimer();

  if (tenant.forbidden) {
    ReplyError(ctx, Error::Forbidden("this client's key is bound to another tenant"));
    return;
  }
  ctx->bound = tenant.bound;
  if (tenant.tenant != kDefaultTenant && known_tenants_.count(tenant.tenant) == 0) {
    CheckTenant(ctx, std::make_unique<Request>(std::move(req)), std::move(tenant.tenant));
    return;
  }
  Dispatch(ctx, req, tenant.tenant, hot_looked_up);
}

void Requests::CheckTenant(Ctx* ctx, std::unique_ptr<Request> req, std::string tenant) {
  ctx->waiting = std::move(req);
  Command check(Stmt::kTenantExists);
  check.Add(tenant);
  std::vector<Command> cmds;
  cmds.push_back(std::move(check));
  const uint64_t seq = ctx->seq;
  JobId job = pool_.Submit(std::move(cmds), true, [this, seq, tenant](Result<JobOutput>&& out) {
    auto found = live_.find(seq);
    if (found == live_.end()) return;
    Ctx* ctx = found->second.get();
    ctx->job = 0;
    if (!out.ok()) {
      if (ctx->cancelling) {
        stats_.timeouts++;
        ReplyError(ctx, Error::Timeout("the request's deadline passed before it completed"));
        return;
      }
      ReplyError(ctx, out.error());
      return;
    }
    if (out->results.empty() || PQntuples(out->results[0].get()) == 0) {
      ReplyError(ctx, Error::NotFound("no tenant named '" + tenant + "'"));
      return;
    }
    known_tenants_.insert(tenant);  // tenants are never deleted by the daemon
    std::unique_ptr<Request> req = std::move(ctx->waiting);
    Dispatch(ctx, *req, tenant);
  });
  if (job != 0) ctx->job = job;
}

void Requests::Dispatch(Ctx* ctx, Request& req, const std::string& tenant, bool hot_looked_up) {
  const uint64_t seq = ctx->seq;
  tenant_requests_[tenant]++;
  Args args(req.args);
  if (auto it = local_.find(req.op); it != local_.end()) {
    if (metrics_ != nullptr) ctx->mark.op = metrics_->Op(&it->second, it->first);
    // stats and cleanup act on every tenant; ping on none.
    if (ctx->bound && req.op != "ping") {
      ReplyError(ctx, Error::Forbidden("'" + req.op + "' spans tenants: not for a key bound to a tenant"));
      return;
    }
    if (req.actor) {
      ReplyError(ctx, Error::InvalidArgument("'" + req.op + "' does not take an actor"));
      return;
    }
    it->second(args, [this, seq](Result<std::string> result) {
      auto found = live_.find(seq);
      if (found == live_.end()) return;  // already answered (timeout)
      if (result.ok()) {
        ReplyOk(found->second.get(), result->data(), result->size());
      } else {
        ReplyError(found->second.get(), result.error());
      }
    });
    return;
  }
  const OpDef* op = FindDatabaseOp(req.op);
  if (op == nullptr) {
    ReplyError(ctx, Error::UnknownOp("no operation named '" + req.op + "'"));
    return;
  }
  if (metrics_ != nullptr) ctx->mark.op = metrics_->Op(op, op->name);
  if (ctx->bound && op->spans_tenants) {
    ReplyError(ctx, Error::Forbidden("'" + req.op + "' spans tenants: not for a key bound to a tenant"));
    return;
  }
  auto plan = BuildPlan(*op, args, req.actor, tenant);
  if (!plan.ok()) {
    ReplyError(ctx, plan.error());
    return;
  }
  ctx->plan = std::move(plan.value());
  // Without an actor only: row-level security may hide a session from one.
  if (hot_ != nullptr && ctx->plan.hot.read && ctx->plan.read_only) {
    const HotKey& key = ctx->plan.hot;
    if (!hot_looked_up) {
      // The lease is judged on the clock the listener's probes are timed by.
      uint64_t mono_us = uv_hrtime() / 1000;
      const std::string* hit = key.kind == HotKey::kDigest ? hot_->FindByDigest(key.value, NowMicros(), mono_us)
                                                            : hot_->FindById(key.value, NowMicros(), mono_us,
                                                                             ctx->plan.tenant);
      if (hit != nullptr) {
        ReplyOk(ctx, hit->data(), hit->size());
        return;
      }
    }
    // Only a lookup by token knows the digest an entry is keyed by.
    ctx->hot_fill = key.kind == HotKey::kDigest && hot_->active();
    ctx->hot_gen = hot_->generation();
  }
  JobId job = pool_.Submit(std::move(ctx->plan.cmds), ctx->plan.read_only,
                           [this, seq](Result<JobOutput>&& out) { OnJobDone(seq, std::move(out)); }, ctx->plan.tenant);
  // 0: it failed at once, and the request is answered and gone.
  if (job != 0) ctx->job = job;
}

void Requests::OnJobDone(uint64_t seq, Result<JobOutput>&& out) {
  auto found = live_.find(seq);
  if (found == live_.end()) return;
  Ctx* ctx = found->second.get();
  ctx->job = 0;
  if (!out.ok()) {
    if (ctx->cancelling) {
      stats_.timeouts++;
      ReplyError(ctx, Error::Timeout("the request's deadline passed before it completed"));
      return;
    }
    ReplyError(ctx, out.error());
    return;
  }
  const Plan& plan = ctx->plan;
  const bool batched = out->batch != nullptr;
  if (batched ? plan.render_row == nullptr : plan.main >= out->results.size()) {
    ReplyError(ctx, Error::Internal("missing statement result"));
    return;
  }
  Packer pk(StartOkReply(ctx));
  size_t result_at = reply_.size();
  Status st = batched ? plan.render_row(out->batch, out->row, plan, pk)
                      : plan.render(out->results[plan.main].get(), plan, pk);
  if (!st.ok()) {
    ReplyError(ctx, st.error());
    return;
  }
  if (ctx->hot_fill) FillHot(ctx, *out, result_at);
  SendReply(ctx);
}

void Requests::FillHot(Ctx* ctx, const JobOutput& out, size_t result_at) {
  const PGresult* r = out.batch;
  int row = out.row;
  if (r == nullptr) {
    r = out.results[ctx->plan.main].get();
    row = PQntuples(r) > 0 ? 0 : -1;
  }
  auto session = ReadSessionRow(r, row);
  if (!session) return;
  std::string_view id = session->id, user_id = session->user_id;
  int64_t expires_at = session->expires_at_us;
  // Only live sessions: get_session with include_expired may read an
  // expired one, which the cache must never answer a plain lookup with.
  if (expires_at <= NowMicros()) return;
  std::string_view packed(reply_.data() + result_at, reply_.size() - result_at);
  hot_->Insert(ctx->hot_gen, ctx->plan.hot.value, id, user_id, expires_at, packed, ctx->plan.tenant);
}

void Requests::ReplyOk(Ctx* ctx, const char* result, size_t len) {
  StartOkReply(ctx).write(result, len);
  SendReply(ctx);
}

msgpack::sbuffer& Requests::StartOkReply(Ctx* ctx) {
  reply_.clear();
  BeginOkReply(reply_, ctx->id_raw);
  return reply_;
}

void Requests::SendReply(Ctx* ctx) {
  InvalidateHot(ctx);
  router_.Reply(ctx->env, reply_.data(), reply_.size());
  if (metrics_ != nullptr) metrics_->Done(ctx->mark, Code::kOk);
  if (reply_.size() > kKeepReplyBytes) reply_ = msgpack::sbuffer();  // do not hold a rare huge page forever
  Finish(ctx);
}

void Requests::ReplyError(Ctx* ctx, const Error& e) {
  stats_.errors++;
  if (e.code() == Code::kOverloaded) stats_.overloaded++;
  std::string body = EncodeErrorReply(ctx->id_raw, e);
  InvalidateHot(ctx);
  router_.Reply(ctx->env, body.data(), body.size());
  if (metrics_ != nullptr) metrics_->Done(ctx->mark, e.code());
  Finish(ctx);
}

// Whatever the outcome (an error or a timeout may still have committed).
void Requests::InvalidateHot(Ctx* ctx) {
  const HotKey& key = ctx->plan.hot;
  if (hot_ == nullptr || key.read || key.kind == HotKey::kNone) return;
  switch (key.kind) {
    case HotKey::kDigest: hot_->InvalidateDigest(key.value); break;
    case HotKey::kId: hot_->InvalidateId(key.value); break;
    case HotKey::kUser: hot_->InvalidateUser(key.value); break;
    case HotKey::kExpired: hot_->EvictExpired(NowMicros()); break;
    case HotKey::kNone: break;
  }
}

void Requests::Finish(Ctx* ctx) {
  if (ctx->deadline_it != deadlines_.end()) deadlines_.erase(ctx->deadline_it);
  live_.erase(ctx->seq);  // frees ctx
  if (live_.empty() && on_idle_) uv_timer_start(&idle_timer_, OnIdleTimer, 0, 0);
}

void Requests::WhenIdle(std::function<void()> on_idle) {
  on_idle_ = std::move(on_idle);
  if (live_.empty()) uv_timer_start(&idle_timer_, OnIdleTimer, 0, 0);
}

void Requests::OnIdleTimer(uv_timer_t* t) {
  auto* self = static_cast<Requests*>(t->data);
  if (!self->live_.empty() || !self->on_idle_) return;
  auto cb = std::move(self->on_idle_);
  self->on_idle_ = nullptr;
  cb();
}

void Requests::ArmTimer() {
  if (deadlines_.empty()) {
    uv_timer_stop(&timer_);
    timer_due_ = 0;
    return;
  }
  uint64_t due = deadlines_.begin()->first;
  if (timer_due_ == due && uv_is_active(reinterpret_cast<uv_handle_t*>(&timer_))) return;
  uint64_t now = uv_now(loop_);
  timer_due_ = due;
  uv_timer_start(&timer_, OnTimer, due > now ? due - now : 0, 0);
}

void Requests::OnTimer(uv_timer_t* t) {
  auto* self = static_cast<Requests*>(t->data);
  uint64_t now = uv_now(self->loop_);
  self->timer_due_ = 0;
  while (!self->deadlines_.empty() && self->deadlines_.begin()->first <= now) {
    Ctx* ctx = self->deadlines_.begin()->second;
    // A statement already sent may still commit until the cancel lands, so
    // `timeout` is only said once the server confirms the transaction did
    // not: the reply then says what really happened. Only if the server does
    // not answer within the grace period is the job given up on unconfirmed.
    if (ctx->job != 0 && !ctx->cancelling) {
      if (self->pool_.CancelJob(ctx->job)) {
        ctx->cancelling = true;
        self->deadlines_.erase(ctx->deadline_it);
        ctx->deadline_it = self->deadlines_.emplace(now + kCancelGraceMs, ctx);
        continue;
      }
      ctx->job = 0;  // it was still queued: never ran, freed
    }
    if (ctx->job != 0) {
      self->pool_.Abandon(ctx->job);
      ctx->job = 0;
    }
    self->stats_.timeouts++;
    self->ReplyError(ctx, Error::Timeout("the request's deadline passed before it completed"));
  }
  self->ArmTimer();
}

void Requests::FailAll(const Error& error) {
  std::vector<Ctx*> all;
  for (auto& [seq, ctx] : live_) all.push_back(ctx.get());
  for (Ctx* ctx : all) {
    if (ctx->job != 0) {
      pool_.Abandon(ctx->job);
      ctx->job = 0;
    }
    ReplyError(ctx, error);
  }
}

}  // namespace torii::daemon
