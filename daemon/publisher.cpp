// Event publishing over PUB.
#include "publisher.h"

#include "security.h"
#include "torii/log.h"
#include "torii/values.h"
#include "uv_util.h"

namespace torii::daemon {

Publisher::Publisher(uv_loop_t* loop, zmq::context_t& ctx)
    : loop_(loop), socket_(ctx, zmq::socket_type::pub), epoch_(NewUuid()) {
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
    for (const auto& ep : endpoints) {
      if (auto st = BindEndpoint(socket_, ep); !st.ok()) return st;
      TLOG_INFO("publisher: publishing events on %s (epoch %s)", ep.c_str(), epoch_.c_str());
    }
  } catch (const zmq::error_t& e) {
    return Error::Internal("cannot publish events: " + std::string(e.what()));
  }
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
  if (socket_) socket_.close();
}

uint64_t Publisher::seq(const std::string& family) const {
  auto it = seqs_.find(family);
  return it == seqs_.end() ? 0 : it->second;
}

void Publisher::Publish(const std::string& family, const std::string& kind, uint32_t count, const Fill& fill,
                        std::optional<uint64_t> eid) {
  if (!socket_) return;
  uint64_t seq = ++seqs_[family];
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(count + (eid.has_value() ? 4 : 3));
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
  if (fill) fill(pk);
  std::string topic = family + "." + kind;
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
  Publish("torii", "resync", 1, [&](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, reason);
  }, eid);
}

void Publisher::OnHeartbeat(uv_timer_t* t) {
  auto* self = static_cast<Publisher*>(t->data);
  // The heartbeat's own seq is counted first, so `seqs` includes it.
  std::map<std::string, uint64_t> seqs = self->seqs_;
  seqs["torii"]++;
  self->Publish("torii", "heartbeat", 1, [&](Packer& pk) {
    PackStr(pk, "seqs");
    pk.pack_map(static_cast<uint32_t>(seqs.size()));
    for (const auto& [family, seq] : seqs) {
      PackStr(pk, family);
      pk.pack_uint64(seq);
    }
  });
}

}  // namespace torii::daemon
