// The request path between the ROUTER socket and the pool: decodes each
// body, finds its operation, enforces its deadline, submits its statements,
// and sends exactly one reply (result, error, or timeout) per request.
//
// Owned by the Daemon; loop thread only. Owns each request's context
// (live_) from receipt until its reply is sent; the pool owns the request's
// job, known here by its JobId only. A job still running in the pool when
// its deadline passes is cancelled, then abandoned.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "hot_sessions.h"
#include "ops/ops.h"
#include "pool.h"
#include "router.h"
#include "torii/protocol.h"

namespace torii::daemon {

class RequestMetrics;
struct RequestMark;

struct RequestStats {
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t timeouts = 0;
  uint64_t overloaded = 0;
};

class Requests {
 public:
  // Completes a local operation: the packed result value, or an error.
  using LocalReply = std::function<void(Result<std::string>)>;
  using LocalOp = std::function<void(const Args& args, LocalReply reply)>;

  Requests(uv_loop_t* loop, Router& router, Pool& pool, DecodeLimits limits);
  ~Requests();

  // Operations answered by the daemon itself (ping, stats, ...).
  void AddLocalOp(std::string name, LocalOp op);
  void OnMessage(Envelope&& env, zmq::message_t&& body);

  void set_default_timeout_ms(uint64_t ms) { default_timeout_ms_ = ms; }
  // The hot-session cache get_session is answered from and the session
  // writes invalidate before their replies; nullptr: none.
  void set_hot_sessions(HotSessions* hot) { hot_ = hot; }
  // The per-operation counters /metrics serves (owned by Metrics, which
  // must outlive its use here); nullptr, the default: metrics are off.
  void set_metrics(RequestMetrics* metrics) { metrics_ = metrics; }
  // The tenant a request's client key is bound to (ZapHandler::BoundTenant),
  // nullopt when unbound; unset (the default): no key is bound (CURVE off).
  using BoundTenantFn = std::function<std::optional<std::string>(const zmq::message_t& body)>;
  void set_bound_tenant(BoundTenantFn fn) { bound_tenant_ = std::move(fn); }
  size_t in_flight() const { return live_.size(); }
  // Calls `on_idle` once, on a later loop turn, as soon as no request is
  // in flight (shutdown waits for that). Close() drops it.
  void WhenIdle(std::function<void()> on_idle);
  const RequestStats& stats() const { return stats_; }
  // Requests dispatched per tenant (stats' `tenants`).
  const std::unordered_map<std::string, uint64_t>& tenant_requests() const { return tenant_requests_; }
  // Answers every open request with `error` now (shutdown deadline).
  void FailAll(const Error& error);
  void Close();

 private:
  struct Ctx;
  // Answers a plain get_session by token from the cache, at once; false
  // when it cannot (another shape, or a miss: then `*looked_up` says the
  // cache was already asked).
  // The tenant a decoded request acts in: the one it names (else the
  // default), or the one its client's key is bound to; `forbidden` when a
  // bound key names another. Moves req.tenant out.
  struct TenantChoice {
    std::string tenant;
    bool bound = false;
    bool forbidden = false;
  };
  TenantChoice ChooseTenant(const zmq::message_t& body, Request& req) const;
  bool AnswerFromCache(Envelope& env, const TenantChoice& tenant, const Request& req, RequestMark& mark,
                       bool* looked_up);
  void ReplyOk(Ctx* ctx, const char* result, size_t len);
  // reply_, cleared and begun as an ok reply to `ctx`; the caller packs the
  // result into it, then SendReply sends it and ends the request.
  msgpack::sbuffer& StartOkReply(Ctx* ctx);
  void SendReply(Ctx* ctx);
  void ReplyError(Ctx* ctx, const Error& e);
  void Finish(Ctx* ctx);
  // Before any reply to a session write: invalidates what it changed.
  void InvalidateHot(Ctx* ctx);
  void FillHot(Ctx* ctx, const JobOutput& out, size_t result_at);
  void OnJobDone(uint64_t seq, Result<JobOutput>&& out);
  // A request naming a tenant not known yet: looks it up, then Dispatch
  // (or not_found).
  void CheckTenant(Ctx* ctx, std::unique_ptr<Request> req, std::string tenant);
  // Runs the decoded request in `tenant` (a local operation, or a plan).
  // hot_looked_up: AnswerFromCache already missed this request's cache key.
  void Dispatch(Ctx* ctx, Request& req, const std::string& tenant, bool hot_looked_up = false);
  void ArmTimer();
  static void OnTimer(uv_timer_t* t);
  static void OnIdleTimer(uv_timer_t* t);

  uv_loop_t* loop_;
  Router& router_;
  Pool& pool_;
  HotSessions* hot_ = nullptr;
  const OpDef* get_session_op_ = nullptr;  // the metrics' key for get_session
  RequestMetrics* metrics_ = nullptr;
  BoundTenantFn bound_tenant_;
  DecodeLimits limits_;
  uint64_t default_timeout_ms_ = 5000;
  std::unordered_map<std::string, LocalOp> local_;
  std::unordered_map<uint64_t, std::unique_ptr<Ctx>> live_;  // by seq
  std::multimap<uint64_t, Ctx*> deadlines_;                   // points into live_
  uv_timer_t timer_;
  uv_timer_t idle_timer_;
  std::function<void()> on_idle_;
  uint64_t timer_due_ = 0;
  uint64_t next_seq_ = 1;
  RequestStats stats_;
  // Tenants seen to exist (the default always does); others are looked up
  // once (CheckTenant).
  std::unordered_set<std::string> known_tenants_{std::string(kDefaultTenant)};
  std::unordered_map<std::string, uint64_t> tenant_requests_;
  msgpack::sbuffer reply_;  // reused for every reply (cleared, not freed)
};

}  // namespace torii::daemon
