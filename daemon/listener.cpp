// LISTEN connection: notifications in, events out.
#include "listener.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "torii/log.h"
#include "torii/tenant.h"
#include "torii/values.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

// How a payload key becomes an event body key.
enum class FieldType : uint8_t {
  kStr,        // a string; nil when missing
  kOptStr,     // a string; the key is left out when missing
  kMicros,     // int8 microseconds -> msgpack timestamp; nil when missing
  kUint,       // an unsigned number; 0 when missing
  kStrList,    // an array of strings; empty when missing
  kHexBin,     // lower-case hex text -> msgpack bin; nil when missing or not hex
};

struct FieldDef {
  const char* key;
  FieldType type;
};

// The body of each family.kind the triggers send (PROTOCOL.md sections 3
// and 5), besides the common keys the publisher adds. A payload of any
// other kind is counted as malformed and dropped.
struct EventDef {
  const char* family;
  const char* kind;
  std::vector<FieldDef> fields;
};

const std::vector<EventDef>& EventDefs() {
  using F = FieldType;
  static const std::vector<EventDef> defs = {
      {"user", "created", {{"id", F::kStr}, {"email", F::kStr}}},
      {"user", "updated", {{"id", F::kStr}, {"email", F::kStr}, {"changed", F::kStrList}, {"old_email", F::kOptStr}}},
      {"user", "deleted", {{"id", F::kStr}, {"email", F::kStr}}},
      {"session", "created", {{"id", F::kStr}, {"user_id", F::kStr}}},
      {"session", "updated", {{"id", F::kStr}, {"user_id", F::kStr}, {"expires_at", F::kMicros}}},
      {"session", "deleted", {{"id", F::kStr}, {"user_id", F::kStr}}},
      {"session", "expired", {{"count", F::kUint}, {"before", F::kMicros}}},
      {"jwt", "revoked", {{"jti", F::kStr}, {"expires_at", F::kMicros}, {"user_id", F::kStr}}},
      {"jwt", "user_revoked", {{"user_id", F::kStr}, {"issued_before", F::kMicros}}},
      // Section 5, accounts (schema/0010).
      {"oauth", "linked", {{"user_id", F::kStr}, {"provider", F::kStr}}},
      {"oauth", "unlinked", {{"user_id", F::kStr}, {"provider", F::kStr}}},
      {"passkey", "added", {{"user_id", F::kStr}, {"credential_id", F::kHexBin}}},
      {"passkey", "deleted", {{"user_id", F::kStr}, {"credential_id", F::kHexBin}}},
  };
  return defs;
}

const EventDef* FindEvent(const std::string& family, const std::string& kind) {
  for (const auto& d : EventDefs()) {
    if (family == d.family && kind == d.kind) return &d;
  }
  return nullptr;
}

bool Present(const nlohmann::json& j, const FieldDef& f) {
  auto it = j.find(f.key);
  return it != j.end() && it->is_string();
}

void PackField(Packer& pk, const nlohmann::json& j, const FieldDef& f) {
  PackStr(pk, f.key);
  auto it = j.find(f.key);
  bool found = it != j.end();
  switch (f.type) {
    case FieldType::kStr:
    case FieldType::kOptStr:
      if (found && it->is_string()) {
        PackStr(pk, it->get_ref<const std::string&>());
      } else {
        pk.pack_nil();
      }
      break;
    case FieldType::kMicros:
      if (found && it->is_number()) {
        PackTimestamp(pk, it->get<int64_t>());
      } else {
        pk.pack_nil();
      }
      break;
    case FieldType::kUint:
      pk.pack_uint64(found && it->is_number_unsigned() ? it->get<uint64_t>() : 0);
      break;
    case FieldType::kStrList: {
      static const nlohmann::json kEmpty = nlohmann::json::array();
      const auto& list = found && it->is_array() ? *it : kEmpty;
      pk.pack_array(static_cast<uint32_t>(list.size()));
      for (const auto& c : list) PackStr(pk, c.is_string() ? c.get_ref<const std::string&>() : "");
      break;
    }
    case FieldType::kHexBin: {
      std::string bytes;
      bool ok = found && it->is_string() && HexDecode(it->get_ref<const std::string&>(), &bytes);
      if (ok) {
        pk.pack_bin(static_cast<uint32_t>(bytes.size()));
        pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
      } else {
        pk.pack_nil();
      }
      break;
    }
  }
}

}  // namespace

Listener::Listener(uv_loop_t* loop, ConnectOptions options, Publisher& publisher, uint64_t heartbeat_ms,
                   uint64_t probe_interval_ms, uint64_t probe_timeout_ms)
    : loop_(loop),
      publisher_(publisher),
      options_(std::move(options)),
      heartbeat_ms_(heartbeat_ms),
      probe_interval_ms_(probe_interval_ms),
      probe_timeout_ms_(probe_timeout_ms) {
  std::string epoch = publisher_.epoch();
  probe_channel_ = "torii_probe_";
  for (char c : epoch) {
    if (c != '-') probe_channel_ += c;
  }
  options_.application_name = "toriid-listener";
  // Every family this daemon can publish is in heartbeats' `seqs` from the
  // start (at 0), so a subscriber can tell a dropped first event.
  for (const auto& d : EventDefs()) publisher_.AddFamily(d.family);
  for (uv_timer_t* t : {&retry_timer_, &probe_timer_, &probe_deadline_, &lease_timer_}) {
    uv_timer_init(loop_, t);
    t->data = this;
  }
}

Listener::~Listener() { Close(); }

void Listener::Start(std::function<void()> on_listening) {
  on_listening_ = std::move(on_listening);
  Connect();
}

void Listener::Close() {
  if (closed_) return;
  closed_ = true;
  if (conn_) conn_->Close("daemon stopping");
  conn_.reset();
  for (uv_timer_t* t : {&retry_timer_, &probe_timer_, &probe_deadline_, &lease_timer_}) {
    uv_timer_stop(t);
    CloseEmbedded(t);
  }
}

void Listener::SetTimings(uint64_t heartbeat_ms, uint64_t probe_interval_ms, uint64_t probe_timeout_ms) {
  heartbeat_ms_ = heartbeat_ms;
  probe_interval_ms_ = probe_interval_ms;
  probe_timeout_ms_ = probe_timeout_ms;
  if (stats_.listening) {
    if (!heartbeat_paused_) publisher_.StartHeartbeat(heartbeat_ms_);
    StartProbing();
  }
}

void Listener::SetLease(uint64_t lease_ms) {
  lease_ms_ = lease_ms;
  if (stats_.listening) StartProbing();
}

void Listener::Proven(uint64_t sent_us) {
  if (on_alive_) on_alive_(sent_us);
  if (lease_ms_ == 0) return;
  uint64_t now_us = uv_hrtime() / 1000;
  uint64_t ends_us = sent_us + lease_ms_ * 1000;
  if (ends_us <= now_us) return;  // the round trip took the whole lease: no renewal
  if (heartbeat_paused_) {
    heartbeat_paused_ = false;
    TLOG_INFO("listener: a probe came back; heartbeats resume");
    publisher_.StartHeartbeat(heartbeat_ms_);
  }
  uv_timer_start(&lease_timer_, [](uv_timer_t* t) { static_cast<Listener*>(t->data)->LeaseLapsed(); },
                 (ends_us - now_us + 999) / 1000, 0);
}

void Listener::LeaseLapsed() {
  if (!stats_.listening || heartbeat_paused_) return;
  heartbeat_paused_ = true;
  stats_.lease_lapses++;
  TLOG_WARN("listener: no probe came back within lease_ms (%lu ms); heartbeats paused until one does",
            (unsigned long)lease_ms_);
  publisher_.StopHeartbeat();
}

uint64_t Listener::ProbeEveryMs() const {
  if (lease_ms_ == 0) return probe_interval_ms_;
  return std::max<uint64_t>(1, std::min(probe_interval_ms_, lease_ms_ / 4));
}

void Listener::StartProbing() {
  stats_.probe_every_ms = ProbeEveryMs();
  uv_timer_start(&probe_timer_, [](uv_timer_t* t) { static_cast<Listener*>(t->data)->SendProbe(); },
                 stats_.probe_every_ms, stats_.probe_every_ms);
}

void Listener::Connect() {
  if (closed_) return;
  conn_ = std::make_unique<AsyncConn>(loop_, "listener", options_);
  conn_->set_on_notify([this](const char* channel, const char* payload) { OnNotify(channel, payload); });
  conn_->Connect([this] { OnConnected(); }, [this](const Error& why) { OnLost(why); });
}

void Listener::OnConnected() {
  std::string sql = "LISTEN torii_events; LISTEN " + probe_channel_;
  // LISTEN takes effect before its reply: anything committed after it was
  // sent will be delivered, so its reply is the first proof of life.
  uint64_t sent_us = uv_hrtime() / 1000;
  conn_->Query(sql, {}, [this, sent_us](Result<PgResult>&& r) {
    if (!r.ok()) {
      TLOG_WARN("listener: LISTEN failed: %s", r.error().message().c_str());
      conn_->Close("LISTEN failed");
      OnLost(r.error());
      return;
    }
    backoff_ms_ = 0;
    TLOG_INFO("listener: listening on torii_events");
    // The tenants first, so that each known tenant's stream gets the
    // resync and heartbeats too.
    RefreshTenants([this, sent_us] {
      stats_.listening = true;
      // Whatever happened while we were not listening is unknown.
      publisher_.Resync(started_before_ ? "the daemon's LISTEN connection was lost and re-established"
                                        : "the daemon started");
      started_before_ = true;
      CheckServerIdentity();
      publisher_.StartHeartbeat(heartbeat_ms_);
      probes_out_.clear();
      StartProbing();
      heartbeat_paused_ = false;
      if (on_listening_) on_listening_();
      Proven(sent_us);
    });
  });
}

// The tenants table (schema/0014), read on the LISTEN connection without
// blocking the loop: every tenant gets its own heartbeats and resyncs from
// the start, not only from its first event. A database without the table
// (an older schema) has the default tenant only. `then` runs after the
// answer, whatever it was.
void Listener::RefreshTenants(std::function<void()> then) {
  tenants_refreshed_ms_ = uv_now(loop_);
  // `*`: every tenant's row, whatever row-level security the table has
  // (local to this statement's transaction).
  conn_->Query("SELECT set_config('torii.tenant', '*', true); SELECT name FROM tenants", {},
               [this, conn = conn_.get(), then = std::move(then)](Result<PgResult>&& r) {
                 // Lost or closed meanwhile: the reconnect starts over.
                 if (closed_ || conn != conn_.get() || !conn_->ready()) return;
                 if (!r.ok()) {
                   if (!tenants_error_logged_) {
                     tenants_error_logged_ = true;
                     TLOG_INFO("listener: no tenants table to read (%s); only the default tenant's events get "
                               "heartbeats before their first event",
                               r.error().message().c_str());
                   }
                 } else {
                   for (int i = 0; i < PQntuples(r->get()); i++) {
                     std::string name = PQgetvalue(r->get(), i, 0);
                     if (!publisher_.AddTenant(name)) {
                       TLOG_WARN("listener: the tenants table names an invalid tenant; ignored");
                     }
                   }
                 }
                 if (then) then();
               });
}

// After each (re)connect: which server is this? A multi-host database.url
// (target_session_attrs=read-write) lands on whichever host is primary now,
// so after a failover the listener is on a promoted standby: same system
// identifier, a new timeline (or another system identifier when the URL
// names unrelated servers). Writes the old primary acknowledged but had not
// yet replicated (an asynchronous standby) are gone from the new one, and
// subscribers' caches may hold them: that is said out loud, in the log, in a
// torii.resync of its own and in `stats` (events.server_changes, timeline).
void Listener::CheckServerIdentity() {
  conn_->Query("SELECT system_identifier::text, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)"
               "::bigint FROM pg_control_system()",
               {}, [this](Result<PgResult>&& r) {
                 if (!r.ok() || PQntuples(r->get()) != 1) {
                   // Not fatal: e.g. a role without EXECUTE on pg_control_system().
                   TLOG_INFO("listener: cannot tell which database server this is: %s",
                             r.ok() ? "no row" : r.error().message().c_str());
                   return;
                 }
                 std::string system_id = PQgetvalue(r->get(), 0, 0);
                 uint64_t timeline = std::strtoull(PQgetvalue(r->get(), 0, 1), nullptr, 10);
                 uint64_t old_timeline = stats_.timeline;
                 bool other_system = !system_id_.empty() && system_id != system_id_;
                 bool changed = other_system || (!system_id_.empty() && timeline != old_timeline);
                 system_id_ = system_id;
                 stats_.timeline = timeline;
                 if (!changed) return;
                 stats_.server_changes++;
                 std::string what = other_system ? "another database server (its system identifier differs)"
                                                 : "a promoted server (timeline " + std::to_string(old_timeline) +
                                                       " -> " + std::to_string(timeline) + ")";
                 std::string reason = "the daemon reconnected to " + what +
                                      " after a failover; with an asynchronous standby, writes the old primary "
                                      "acknowledged but had not replicated are lost";
                 TLOG_WARN("listener: %s", reason.c_str());
                 publisher_.Resync(reason);
               });
}

void Listener::OnLost(const Error& why) {
  if (closed_) return;
  if (stats_.listening) {
    TLOG_WARN("listener: lost LISTEN connection: %s", why.message().c_str());
    stats_.reconnects++;
  }
  stats_.listening = false;
  if (on_lost_) on_lost_();
  // No heartbeats while events may be missing.
  uv_timer_stop(&probe_timer_);
  uv_timer_stop(&probe_deadline_);
  uv_timer_stop(&lease_timer_);
  probes_out_.clear();
  heartbeat_paused_ = false;
  publisher_.StopHeartbeat();
  backoff_ms_ = NextBackoffMs(backoff_ms_);
  // Release the connection after this callback has unwound.
  uv_timer_start(&retry_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<Listener*>(t->data);
    self->conn_.reset();
    self->Connect();
  }, backoff_ms_, 0);
}

void Listener::SendProbe() {
  if (!stats_.listening || probes_out_.size() >= kMaxProbesOut) return;
  // A tenant created since the last look gets heartbeats before its first
  // event (within kTenantsRefreshMs).
  if (uv_now(loop_) - tenants_refreshed_ms_ >= kTenantsRefreshMs) RefreshTenants(nullptr);
  probe_seq_++;
  probes_out_.push_back({probe_seq_, uv_hrtime() / 1000});
  stats_.probes++;
  if (probes_out_.size() == 1) ArmProbeDeadline();
  conn_->Query("SELECT pg_notify($1, $2), pg_notification_queue_usage()",
               {probe_channel_, std::to_string(probe_seq_)}, [this](Result<PgResult>&& r) {
                 if (!r.ok() || PQntuples(r->get()) != 1) return;
                 stats_.queue_usage = std::atof(PQgetvalue(r->get(), 0, 1));
                 if (stats_.queue_usage > 0.5) {
                   TLOG_WARN("listener: the NOTIFY queue is %.0f%% full: a listener somewhere is not reading",
                             stats_.queue_usage * 100);
                 }
               });
}

// The deadline of the oldest probe still out: probe_timeout_ms after it was sent.
void Listener::ArmProbeDeadline() {
  if (probes_out_.empty()) {
    uv_timer_stop(&probe_deadline_);
    return;
  }
  const uint64_t now_us = uv_hrtime() / 1000;
  const uint64_t due_us = probes_out_.front().sent_us + probe_timeout_ms_ * 1000;
  const uint64_t in_ms = due_us > now_us ? (due_us - now_us + 999) / 1000 : 0;
  uv_timer_start(&probe_deadline_, [](uv_timer_t* t) { static_cast<Listener*>(t->data)->ProbeTimedOut(); },
                 in_ms, 0);
}

void Listener::ProbeTimedOut() {
  if (probes_out_.empty() || !stats_.listening) return;
  stats_.probe_failures++;
  TLOG_WARN("listener: probe not heard back within %lu ms; reconnecting", (unsigned long)probe_timeout_ms_);
  probes_out_.clear();
  conn_->Close("probe timed out");
  OnLost(Error::Unavailable("probe timed out"));
}

void Listener::OnNotify(const char* channel, const char* payload) {
  if (probe_channel_ == channel) {
    // Probes come back in the order they were sent (NOTIFY delivers in
    // commit order); one whose statement failed never does, and is passed
    // over by the next that comes back.
    const uint64_t seq = std::strtoull(payload, nullptr, 10);
    if (probes_out_.empty() || seq < probes_out_.front().seq || seq > probes_out_.back().seq) return;
    while (probes_out_.front().seq < seq) probes_out_.pop_front();
    const uint64_t sent_us = probes_out_.front().sent_us;
    probes_out_.pop_front();
    ArmProbeDeadline();
    stats_.last_probe_rtt_us = static_cast<int64_t>(uv_hrtime() / 1000 - sent_us);
    // In commit order, every notification sent before the probe has
    // been handled before this one.
    Proven(sent_us);
    return;
  }
  stats_.received++;
  Publish(payload);
}

namespace {

// The reason published (and logged) for a database-wide torii.resync. Any
// session may NOTIFY, so it is rebuilt from what the payload may hold and
// never copies payload text unchecked:
// - a TRUNCATE (schema/0013): "source":"truncate" and one of the published
//   tables;
// - the operator's torii_resync(reason) (schema/0013): "source":"operator"
//   and a reason that torii_resync() limits to 200 characters without
//   control characters; checked again here (a raw NOTIFY skips it);
// - torii_bulk_import_summary() (schema/0007): the same sentence from the
//   two counts.
std::string DatabaseResyncReason(const nlohmann::json& j) {
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string source = str("source");
  if (source == "truncate") {
    const std::string table = str("table");
    for (const char* t : {"users", "sessions", "oauth_accounts", "passkeys", "jwt_revocations", "jwt_user_cutoffs"}) {
      if (table == t) return "TRUNCATE " + table + ": rows were deleted without per-row events";
    }
    return "TRUNCATE of a published table: rows were deleted without per-row events";
  }
  if (source == "operator") {
    std::string reason = str("reason");
    bool printable = !reason.empty() && reason.size() <= 800;  // 200 characters of up to 4 bytes
    for (unsigned char c : reason) printable = printable && c >= 0x20 && c != 0x7f;
    return printable ? "an operator's resync: " + reason : "an operator's resync";
  }
  auto count = [&](const char* k) -> std::string {
    return j.contains(k) && j[k].is_number_unsigned() ? std::to_string(j[k].get<uint64_t>()) : "?";
  };
  return "a bulk import wrote " + count("users") + " user(s) and " + count("sessions") +
         " session(s) without per-row events";
}

}  // namespace

void Listener::Publish(const std::string& payload) {
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (j.is_discarded() || !j.is_object()) {
    stats_.malformed++;
    TLOG_WARN("listener: ignoring a torii_events payload that is not a JSON object");
    return;
  }
  std::string family = str("f");
  std::string kind = str("k");
  if (on_event_) on_event_(family, kind, str("id"));
  // The database's event id (torii_emit, schema/0009): the same on every
  // daemon relaying this change, so subscribers of several daemons can
  // deduplicate. A payload without one (an older trigger) publishes none.
  std::optional<uint64_t> eid;
  if (auto it = j.find("eid"); it != j.end() && it->is_number_unsigned()) eid = it->get<uint64_t>();
  // The tenant whose rows changed (schema/0014 puts it in every payload);
  // absent: the default tenant.
  std::string tenant = str("tenant");
  if (family == "torii" && kind == "resync") {
    // Every tenant's stream gets it, whichever tenant's rows it was about
    // (schema/0014 names "*" for a TRUNCATE and the operator's resync).
    publisher_.Resync(DatabaseResyncReason(j), eid);
    return;
  }
  // "*": every tenant (a TRUNCATE or the operator's torii_resync(); only a
  // resync says so): published as the default stream's, which every
  // tenant's stream follows.
  if (tenant == "*") tenant.clear();
  if (!tenant.empty() && !IsValidTenantName(tenant)) {
    stats_.malformed++;
    TLOG_WARN("listener: ignoring a '%s.%s' payload with an invalid tenant name", family.c_str(), kind.c_str());
    return;
  }
  if (!publisher_.KnowsTenant(tenant) && stats_.listening) {
    // Its first event: the publisher adds it; look for other new ones too.
    RefreshTenants(nullptr);
  }
  if (const EventDef* def = FindEvent(family, kind)) {
    uint32_t count = 0;
    for (const auto& f : def->fields) count += f.type != FieldType::kOptStr || Present(j, f);
    publisher_.Publish(family, kind, count, [&](Packer& pk) {
      for (const auto& f : def->fields) {
        if (f.type != FieldType::kOptStr || Present(j, f)) PackField(pk, j, f);
      }
    }, eid, tenant);
  } else {
    stats_.malformed++;
    TLOG_WARN("listener: ignoring an unknown event kind '%s.%s'", family.c_str(), kind.c_str());
  }
}

}  // namespace torii::daemon
