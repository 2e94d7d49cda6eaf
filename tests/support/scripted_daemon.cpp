// A scripted toriid for unit tests; see scripted_daemon.h.
#include "scripted_daemon.h"

#include <chrono>
#include <vector>

#include "msgpack_util.h"

namespace torii::test {

ScriptedDaemon::ScriptedDaemon(zmq::context_t& ctx, const std::string& name,
                               std::map<std::string, uint64_t> families)
    : router_(ctx, zmq::socket_type::router),
      pub_(ctx, zmq::socket_type::pub),
      families_(std::move(families)),
      seqs_(families_) {
  static std::atomic<int> n{0};
  int k = n++;
  requests_endpoint_ = "inproc://" + name + "-requests-" + std::to_string(k);
  events_endpoint_ = "inproc://" + name + "-events-" + std::to_string(k);
  router_.set(zmq::sockopt::linger, 0);
  pub_.set(zmq::sockopt::linger, 0);
  router_.bind(requests_endpoint_);
  pub_.bind(events_endpoint_);
}

void ScriptedDaemon::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ScriptedDaemon::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ScriptedDaemon::PublishLater(std::string topic, std::function<void(Packer&)> extra, uint32_t extra_keys) {
  std::lock_guard<std::mutex> lock(mu_);
  queued_.push_back([this, topic = std::move(topic), extra = std::move(extra), extra_keys] {
    Publish(topic, extra, extra_keys);
  });
}

void ScriptedDaemon::SkipSeqLater(std::string family) {
  std::lock_guard<std::mutex> lock(mu_);
  queued_.push_back([this, family = std::move(family)] { seqs_[family]++; });
}

void ScriptedDaemon::NewEpochLater() {
  std::lock_guard<std::mutex> lock(mu_);
  queued_.push_back([this] {
    epoch_ += "x";
    seqs_ = families_;
  });
}

void ScriptedDaemon::Publish(const std::string& topic, const std::function<void(Packer&)>& extra,
                             uint32_t extra_keys) {
  std::string family = topic.substr(0, topic.find('.'));
  uint64_t seq = ++seqs_[family];
  msgpack::sbuffer b;
  Packer pk(b);
  pk.pack_map(3 + extra_keys);
  PackStr(pk, "seq");
  pk.pack_uint64(seq);
  PackStr(pk, "epoch");
  PackStr(pk, epoch_);
  PackStr(pk, "at");
  PackTimestamp(pk, NowMicros());
  if (extra) extra(pk);
  pub_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  pub_.send(zmq::const_buffer(b.data(), b.size()), zmq::send_flags::none);
}

void ScriptedDaemon::Heartbeat() {
  std::map<std::string, uint64_t> seqs = seqs_;
  seqs["torii"]++;
  Publish("torii.heartbeat", [&](Packer& pk) {
    PackStr(pk, "seqs");
    pk.pack_map(static_cast<uint32_t>(seqs.size()));
    for (const auto& [f, s] : seqs) {
      PackStr(pk, f);
      pk.pack_uint64(s);
    }
  }, 1);
}

void ScriptedDaemon::Run() {
  auto last_heartbeat = Clock::now() - std::chrono::seconds(1);
  while (!stop_) {
    zmq::pollitem_t item{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(2));
    std::deque<std::function<void()>> q;
    {
      std::lock_guard<std::mutex> lock(mu_);
      q.swap(queued_);
    }
    for (auto& f : q) f();
    if (heartbeats_ && MsSince(last_heartbeat) >= 20) {
      Heartbeat();
      last_heartbeat = Clock::now();
    }
    for (;;) {
      std::vector<zmq::message_t> frames;
      zmq::message_t m;
      if (!router_.recv(m, zmq::recv_flags::dontwait)) break;
      frames.push_back(std::move(m));
      while (frames.back().more()) {
        zmq::message_t next;
        (void)router_.recv(next, zmq::recv_flags::none);
        frames.push_back(std::move(next));
      }
      auto body = msgpack::unpack(static_cast<const char*>(frames.back().data()), frames.back().size());
      msgpack::sbuffer b;
      Packer pk(b);
      Answer(body.get(), pk);
      for (size_t i = 0; i + 1 < frames.size(); i++) {
        router_.send(zmq::const_buffer(frames[i].data(), frames[i].size()), zmq::send_flags::sndmore);
      }
      router_.send(zmq::const_buffer(b.data(), b.size()), zmq::send_flags::none);
    }
  }
}

}  // namespace torii::test
