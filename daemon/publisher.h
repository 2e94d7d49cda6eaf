// The ZeroMQ PUB socket of change events (PROTOCOL.md section 3): frames
// [topic, msgpack body]; every body carries `seq` (per family, from 1),
// `epoch` (new at each start) and `at`, and `eid` (the database's event id,
// the same on every daemon) when the event came from a NOTIFY payload that
// carried one. A heartbeat timer publishes torii.heartbeat with the last seq
// of every family.
//
// PUB drops messages for a subscriber whose queue (events.send_hwm) is full;
// subscribers see that as a seq gap. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "torii/error.h"
#include "torii/protocol.h"

namespace torii::daemon {

struct PublisherStats {
  uint64_t published = 0;
  uint64_t dropped = 0;  // send refused (should not happen on PUB)
};

class Publisher {
 public:
  // Packs the event's own fields (the common keys are added); `count` is how
  // many key/value pairs it packs.
  using Fill = std::function<void(Packer& pk)>;

  Publisher(uv_loop_t* loop, zmq::context_t& ctx);
  ~Publisher();

  zmq::socket_t& socket() { return socket_; }
  Status Bind(const std::vector<std::string>& endpoints, int64_t send_hwm);
  void StartHeartbeat(uint64_t interval_ms);
  void StopHeartbeat();
  void Close();

  // `eid`: the payload's event id, published as `eid` (none for the
  // daemon's own heartbeats and resyncs).
  void Publish(const std::string& family, const std::string& kind, uint32_t count, const Fill& fill,
               std::optional<uint64_t> eid = std::nullopt);
  void Resync(const std::string& reason, std::optional<uint64_t> eid = std::nullopt);

  // Makes `family` known at seq 0 (if it is not yet), so heartbeats list it
  // before its first event and a subscriber sees a first event it missed.
  void AddFamily(const std::string& family) { seqs_.emplace(family, 0); }
  const std::string& epoch() const { return epoch_; }
  uint64_t seq(const std::string& family) const;
  const std::map<std::string, uint64_t>& seqs() const { return seqs_; }
  const PublisherStats& stats() const { return stats_; }

 private:
  static void OnHeartbeat(uv_timer_t* t);

  uv_loop_t* loop_;
  zmq::socket_t socket_;
  std::string epoch_;
  std::map<std::string, uint64_t> seqs_;
  uv_timer_t heartbeat_;
  bool timer_started_ = false;
  PublisherStats stats_;
};

}  // namespace torii::daemon
