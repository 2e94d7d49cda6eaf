// Event publishing over PUB, or XPUB with per-tenant subscription rewriting.
#include "publisher.h"

#include "security.h"
#include "torii/log.h"
#include "torii/tenant.h"
#include "torii/values.h"
#include "uv_util.h"

namespace torii::daemon {

std::vector<std::string> RewriteSubscription(const std::optional<std::string>& tenant, const std::string& topic,
                                             const std::vector<std::string>& roots) {
  if (!tenant.has_value()) return {topic};
  if (*tenant == kDefaultTenant) {
    if (topic.empty()) return roots;
    if (topic[0] == '@') return {};
    return {topic};
  }
  // Idempotent: a peer that already names its own tenant's prefix keeps it.
  std::string prefix = TenantTopicPrefix(*tenant);
  if (topic.rfind(prefix, 0) == 0) return {topic};
  return {prefix + topic};
}

Publisher::Publisher(uv_loop_t* loop, zmq::context_t& ctx, ZapHandler* zap)
    : loop_(loop),
      zap_(zap),
      socket_(ctx, zap != nullptr ? zmq::socket_type::xpub : zmq::socket_type::pub),
      epoch_(NewUuid()) {
  // Families start at seq 0 (nothing published); the first message is 1.
  seqs_["user"] = 0;
  seqs_["session"] = 0;
  seqs_["torii"] = 0;
}

Publisher::~Publisher() { Close(); }

Status Publisher::Bind(const std::vector<std::string>& endpoints, int64_t send_hwm) {
  try {
    socket_.set(zmq::sockopt::sndhwm, static_cast<int>(send_hwm));
    socket_.set(zmq::sockopt::linger, 0);
    if (zap_ != nullptr) socket_.set(zmq::sockopt::xpub_manual, 1);
    for (const auto& ep : endpoints) {
      if (auto st = BindEndpoint(socket_, ep); !st.ok()) return st;
      TLOG_INFO("publisher: publishing events on %s (epoch %s)", ep.c_str(), epoch_.c_str());
    }
  } catch (const zmq::error_t& e) {
    return Error::Internal("cannot publish events: " + std::string(e.what()));
  }
  if (zap_ == nullptr || watching_) return {};
  // XPUB: the peers' subscriptions come in as messages to apply.
  if (int err = uv_poll_init(loop_, &poll_, socket_.get(zmq::sockopt::fd)); err != 0) {
    return Error::Internal(std::string("cannot watch the event socket: ") + uv_strerror(err));
  }
  poll_.data = this;
  uv_prepare_init(loop_, &prepare_);
  prepare_.data = this;
  watching_ = true;
  uv_poll_start(&poll_, UV_READABLE, OnPoll);
  uv_prepare_start(&prepare_, OnPrepare);
  return {};
}

void Publisher::StartHeartbeat(uint64_t interval_ms) {
  if (!timer_started_) {
    uv_timer_init(loop_, &heartbeat_);
    heartbeat_.data = this;
    timer_started_ = true;
  }
  uv_timer_start(&heartbeat_, OnHeartbeat, interval_ms, interval_ms);
}

void Publisher::StopHeartbeat() {
  if (timer_started_) uv_timer_stop(&heartbeat_);
}

void Publisher::Close() {
  if (timer_started_) {
    uv_timer_stop(&heartbeat_);
    CloseEmbedded(&heartbeat_);
    timer_started_ = false;
  }
  if (watching_) {
    watching_ = false;
    CloseEmbedded(&poll_);
    CloseEmbedded(&prepare_);
  }
  if (socket_) socket_.close();
}

void Publisher::AddFamily(const std::string& family) {
  seqs_.emplace(family, 0);
  for (auto& [tenant, seqs] : tenant_seqs_) seqs.emplace(family, 0);
}

bool Publisher::AddTenant(const std::string& name) {
  if (!IsValidTenantName(name)) return false;
  if (name == kDefaultTenant || tenant_seqs_.count(name) != 0) return true;
  auto& seqs = tenant_seqs_[name];
  for (const auto& [family, seq] : seqs_) seqs.emplace(family, 0);
  stats_.tenants = tenant_seqs_.size();
  TLOG_INFO("publisher: tenant %s gets its own event stream (@%s/)", name.c_str(), name.c_str());
  return true;
}

bool Publisher::KnowsTenant(const std::string& name) const {
  return name.empty() || name == kDefaultTenant || tenant_seqs_.count(name) != 0;
}

std::map<std::string, uint64_t>& Publisher::SeqsOf(const std::string& tenant) {
  if (tenant.empty() || tenant == kDefaultTenant) return seqs_;
  return tenant_seqs_[tenant];
}

uint64_t Publisher::seq(const std::string& family) const { return seq(kDefaultTenant, family); }

uint64_t Publisher::seq(const std::string& tenant, const std::string& family) const {
  const std::map<std::string, uint64_t>* seqs = &seqs_;
  if (!tenant.empty() && tenant != kDefaultTenant) {
    auto t = tenant_seqs_.find(tenant);
    if (t == tenant_seqs_.end()) return 0;
    seqs = &t->second;
  }
  auto it = seqs->find(family);
  return it == seqs->end() ? 0 : it->second;
}

void Publisher::Publish(const std::string& family, const std::string& kind, uint32_t count, const Fill& fill,
                        std::optional<uint64_t> eid, const std::string& tenant) {
  if (!socket_) return;
  const bool other = !tenant.empty() && tenant != kDefaultTenant;
  if (other && !AddTenant(tenant)) {
    stats_.dropped++;
    TLOG_WARN("publisher: dropped a %s.%s event of an invalid tenant name", family.c_str(), kind.c_str());
    return;
  }
  uint64_t seq = ++SeqsOf(tenant)[family];
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(count + (eid.has_value() ? 4 : 3) + (other ? 1 : 0));
  PackStr(pk, "seq");
  pk.pack_uint64(seq);
  if (eid.has_value()) {
    PackStr(pk, "eid");
    pk.pack_uint64(*eid);
  }
  PackStr(pk, "epoch");
  PackStr(pk, epoch_);
  PackStr(pk, "at");
  PackTimestamp(pk, NowMicros());
  if (other) {
    // Absent for the default tenant: its events are exactly as before.
    PackStr(pk, "tenant");
    PackStr(pk, tenant);
  }
  if (fill) fill(pk);
  std::string topic = TenantTopicPrefix(tenant) + family + "." + kind;
  sent_since_drain_ = true;
  try {
    zmq::message_t t(topic.data(), topic.size());
    zmq::message_t b(buf.data(), buf.size());
    if (!socket_.send(t, zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
        !socket_.send(b, zmq::send_flags::dontwait)) {
      stats_.dropped++;
      return;
    }
    stats_.published++;
  } catch (const zmq::error_t& e) {
    stats_.dropped++;
    TLOG_WARN("publisher: send failed: %s", e.what());
  }
}

void Publisher::Resync(const std::string& reason, std::optional<uint64_t> eid) {
  TLOG_INFO("publisher: torii.resync (%s)", reason.c_str());
  auto fill = [&](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, reason);
  };
  Publish("torii", "resync", 1, fill, eid);
  // Every tenant's cache may hold what was missed. The copies carry the
  // same eid: a subscriber deduplicates eids per tenant.
  std::vector<std::string> tenants;
  for (const auto& [t, seqs] : tenant_seqs_) tenants.push_back(t);
  for (const auto& t : tenants) Publish("torii", "resync", 1, fill, eid, t);
}

void Publisher::Heartbeat(const std::string& tenant, const std::map<std::string, uint64_t>& current) {
  // The heartbeat's own seq is counted first, so `seqs` includes it.
  std::map<std::string, uint64_t> seqs = current;
  seqs["torii"]++;
  Publish("torii", "heartbeat", 1, [&](Packer& pk) {
    PackStr(pk, "seqs");
    pk.pack_map(static_cast<uint32_t>(seqs.size()));
    for (const auto& [family, seq] : seqs) {
      PackStr(pk, family);
      pk.pack_uint64(seq);
    }
  }, std::nullopt, tenant);
}

void Publisher::OnHeartbeat(uv_timer_t* t) {
  auto* self = static_cast<Publisher*>(t->data);
  self->Heartbeat(kDefaultTenant, self->seqs_);
  std::vector<std::string> tenants;
  for (const auto& [tenant, seqs] : self->tenant_seqs_) tenants.push_back(tenant);
  for (const auto& tenant : tenants) self->Heartbeat(tenant, self->tenant_seqs_[tenant]);
}

void Publisher::OnPoll(uv_poll_t* h, int, int) { static_cast<Publisher*>(h->data)->DrainSubscriptions(); }

// Before the loop blocks: a send may have taken ZMQ_FD's signal (libzmq
// processes commands on the send path), so drain once more after sends.
void Publisher::OnPrepare(uv_prepare_t* h) {
  auto* self = static_cast<Publisher*>(h->data);
  if (self->sent_since_drain_) self->DrainSubscriptions();
}

void Publisher::DrainSubscriptions() {
  if (!watching_ || !socket_) return;
  // Until a receive would block: that one re-arms the edge-triggered
  // ZMQ_FD. Each message is applied before the next receive, because an
  // XPUB_MANUAL socket applies ZMQ_SUBSCRIBE to the peer of the last
  // message received.
  for (;;) {
    zmq::message_t msg;
    try {
      if (!socket_.recv(msg, zmq::recv_flags::dontwait)) break;
    } catch (const zmq::error_t& e) {
      TLOG_WARN("publisher: receiving subscriptions failed: %s", e.what());
      break;
    }
    Apply(msg);
  }
  sent_since_drain_ = false;
}

void Publisher::Apply(const zmq::message_t& msg) {
  const auto* data = static_cast<const char*>(msg.data());
  if (msg.size() == 0 || (data[0] != 0 && data[0] != 1)) return;  // not a subscription (XSUB data): ignored
  const bool subscribe = data[0] == 1;
  const std::string topic(data + 1, msg.size() - 1);
  stats_.subscriptions++;
  // A peer whose pipe ended: libzmq hands its remaining subscriptions over
  // as unsubscriptions without metadata, and has removed them already.
  if (!subscribe && zmq_msg_gets(const_cast<zmq_msg_t*>(msg.handle()), "User-Id") == nullptr) return;
  if (!zap_->Admits(msg)) {
    // A key revoked since the peer connected: nothing new for it.
    stats_.refused_subscriptions++;
    return;
  }
  std::vector<std::string> roots;
  std::optional<std::string> tenant = zap_->BoundTenant(msg);
  if (tenant.has_value() && *tenant == kDefaultTenant) {
    for (const auto& [family, seq] : seqs_) roots.push_back(family + ".");
  }
  std::vector<std::string> applied = RewriteSubscription(tenant, topic, roots);
  if (applied.empty()) stats_.refused_subscriptions++;
  try {
    for (const auto& t : applied) {
      if (subscribe) {
        socket_.set(zmq::sockopt::subscribe, t);
      } else {
        socket_.set(zmq::sockopt::unsubscribe, t);
      }
    }
  } catch (const zmq::error_t& e) {
    TLOG_WARN("publisher: applying a subscription failed: %s", e.what());
  }
}

}  // namespace torii::daemon
