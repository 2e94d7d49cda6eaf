// A scripted toriid for unit tests of the client-side caches (SessionCache,
// JwtDenyList): a ROUTER that answers requests and a PUB that sends
// heartbeats and the events a test queues, both inproc and both on one
// thread, so that "the event was published before the reply" is exact.
//
// A test derives from it, keeps its table in the derived class (guarded by
// its own mutex: the test thread changes it, the daemon thread reads it),
// implements Answer(), calls Start() at the end of its constructor and
// Stop() at the start of its destructor (the thread calls Answer(), which
// uses the derived members).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "torii/protocol.h"

namespace torii::test {

class ScriptedDaemon {
 public:
  // `name` tells the inproc endpoints of several daemons apart in a log;
  // `families` are the event families whose seq the heartbeat reports from
  // the start.
  ScriptedDaemon(zmq::context_t& ctx, const std::string& name, std::map<std::string, uint64_t> families);
  virtual ~ScriptedDaemon() { Stop(); }
  ScriptedDaemon(const ScriptedDaemon&) = delete;
  ScriptedDaemon& operator=(const ScriptedDaemon&) = delete;

  const std::string& requests_endpoint() const { return requests_endpoint_; }
  const std::string& events_endpoint() const { return events_endpoint_; }

  // Heartbeats every 20 ms while on (the default).
  void SetHeartbeats(bool on) { heartbeats_ = on; }
  // Queues for the daemon thread: an event, published with the next seq of
  // its family; a burnt seq (the next event of the family shows a gap); a
  // new epoch, every seq back to 0.
  void PublishLater(std::string topic, std::function<void(Packer&)> extra, uint32_t extra_keys);
  void SkipSeqLater(std::string family);
  void NewEpochLater();

  // Daemon thread only (Answer() and the hooks it runs).
  void Publish(const std::string& topic, const std::function<void(Packer&)>& extra, uint32_t extra_keys);

 protected:
  void Start();
  void Stop();
  // Daemon thread: packs the whole reply body (id, ok, result or error) to
  // the request `request`.
  virtual void Answer(const msgpack::object& request, Packer& reply) = 0;

 private:
  void Heartbeat();
  void Run();

  zmq::socket_t router_;
  zmq::socket_t pub_;
  std::string requests_endpoint_;
  std::string events_endpoint_;
  std::mutex mu_;  // guards queued_
  std::deque<std::function<void()>> queued_;
  const std::map<std::string, uint64_t> families_;
  std::map<std::string, uint64_t> seqs_;  // daemon thread
  std::string epoch_ = "fake-epoch";      // daemon thread
  std::atomic<bool> heartbeats_{true};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace torii::test
