// Request lifecycle: decode, dispatch, deadline, reply.
#include "requests.h"

#include "metrics.h"
#include "torii/log.h"
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
  Job* job = nullptr;  // while the pool holds it
  bool cancelling = false;  // deadline passed, waiting for the cancel's outcome
  Plan plan;
  RequestMark mark = MetricsRequestStart();
};

Requests::Requests(uv_loop_t* loop, Router& router, Pool& pool, DecodeLimits limits)
    : loop_(loop), router_(router), pool_(pool), limits_(limits) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

Requests::~Requests() { Close(); }

void Requests::Close() {
  for (auto& [seq, ctx] : live_) {
    if (ctx->job != nullptr) pool_.Abandon(ctx->job);
    delete ctx;
  }
  live_.clear();
  deadlines_.clear();
  CloseEmbedded(&timer_);
}

void Requests::AddLocalOp(std::string name, LocalOp op) { local_[std::move(name)] = std::move(op); }

void Requests::OnMessage(Envelope&& env, zmq::message_t&& body) {
  stats_.requests++;
  auto* ctx = new Ctx;
  ctx->seq = next_seq_++;
  ctx->env = std::move(env);
  live_[ctx->seq] = ctx;
  ctx->deadline_it = deadlines_.end();

  Request req;
  Status decoded = DecodeRequest(static_cast<const char*>(body.data()), body.size(), limits_, &req);
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

  Args args(req.args);
  if (auto it = local_.find(req.op); it != local_.end()) {
    ctx->mark.op = MetricsOp(&it->second, it->first);
    if (req.actor) {
      ReplyError(ctx, Error::InvalidArgument("'" + req.op + "' does not take an actor"));
      return;
    }
    uint64_t seq = ctx->seq;
    it->second(args, [this, seq](Result<std::string> result) {
      auto found = live_.find(seq);
      if (found == live_.end()) return;  // already answered (timeout)
      if (result.ok()) {
        ReplyOk(found->second, result->data(), result->size());
      } else {
        ReplyError(found->second, result.error());
      }
    });
    return;
  }
  const OpDef* op = FindDatabaseOp(req.op);
  if (op == nullptr) {
    ReplyError(ctx, Error::UnknownOp("no operation named '" + req.op + "'"));
    return;
  }
  ctx->mark.op = MetricsOp(op, op->name);
  auto plan = BuildPlan(*op, args, req.actor);
  if (!plan.ok()) {
    ReplyError(ctx, plan.error());
    return;
  }
  ctx->plan = std::move(plan.value());
  uint64_t seq = ctx->seq;
  ctx->job = new Job(std::move(ctx->plan.cmds), [this, seq](Result<JobOutput>&& out) {
    OnJobDone(seq, std::move(out));
  });
  ctx->job->set_groupable(ctx->plan.read_only);
  pool_.Submit(ctx->job);  // may complete (fail) at once
}

void Requests::OnJobDone(uint64_t seq, Result<JobOutput>&& out) {
  auto found = live_.find(seq);
  if (found == live_.end()) return;
  Ctx* ctx = found->second;
  ctx->job = nullptr;
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
  Status st = batched ? plan.render_row(out->batch, out->row, plan, pk)
                      : plan.render(out->results[plan.main].get(), plan, pk);
  if (!st.ok()) {
    ReplyError(ctx, st.error());
    return;
  }
  SendReply(ctx);
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
  router_.Reply(ctx->env, reply_.data(), reply_.size());
  MetricsRequestDone(ctx->mark, Code::kOk);
  if (reply_.size() > kKeepReplyBytes) reply_ = msgpack::sbuffer();  // do not hold a rare huge page forever
  Finish(ctx);
}

void Requests::ReplyError(Ctx* ctx, const Error& e) {
  stats_.errors++;
  if (e.code() == Code::kOverloaded) stats_.overloaded++;
  std::string body = EncodeErrorReply(ctx->id_raw, e);
  router_.Reply(ctx->env, body.data(), body.size());
  MetricsRequestDone(ctx->mark, e.code());
  Finish(ctx);
}

void Requests::Finish(Ctx* ctx) {
  if (ctx->deadline_it != deadlines_.end()) deadlines_.erase(ctx->deadline_it);
  live_.erase(ctx->seq);
  delete ctx;
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
    if (ctx->job != nullptr && !ctx->cancelling) {
      if (self->pool_.CancelJob(ctx->job)) {
        ctx->cancelling = true;
        self->deadlines_.erase(ctx->deadline_it);
        ctx->deadline_it = self->deadlines_.emplace(now + kCancelGraceMs, ctx);
        continue;
      }
      ctx->job = nullptr;  // it was still queued: never ran, freed
    }
    if (ctx->job != nullptr) {
      self->pool_.Abandon(ctx->job);
      ctx->job = nullptr;
    }
    self->stats_.timeouts++;
    self->ReplyError(ctx, Error::Timeout("the request's deadline passed before it completed"));
  }
  self->ArmTimer();
}

void Requests::FailAll(const Error& error) {
  std::vector<Ctx*> all;
  for (auto& [seq, ctx] : live_) all.push_back(ctx);
  for (Ctx* ctx : all) {
    if (ctx->job != nullptr) {
      pool_.Abandon(ctx->job);
      ctx->job = nullptr;
    }
    ReplyError(ctx, error);
  }
}

}  // namespace torii::daemon
