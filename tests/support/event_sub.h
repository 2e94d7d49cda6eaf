// A raw SUB socket for tests: subscribes to topic prefixes on a daemon's
// event endpoint and returns [topic, decoded body] pairs, independent of
// lib's torii::Subscriber so that tests check the wire contract itself.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "wire.h"

namespace torii::test {

struct Event {
  std::string topic;
  Value body;
  std::string raw;  // the body's bytes, for secret scans
};

class EventSub {
 public:
  // rcvhwm 0: unlimited, so a test that reads late still sees everything
  // the daemon's own send_hwm let through. rcvbuf > 0 fixes the kernel's
  // receive buffer (bytes) instead of letting it grow: a test of dropped
  // events needs every buffer on the way to be small.
  EventSub(const std::string& endpoint, std::vector<std::string> prefixes, int rcvhwm = 0, int rcvbuf = 0)
      : socket_(TestContext(), zmq::socket_type::sub) {
    socket_.set(zmq::sockopt::rcvhwm, rcvhwm);
    if (rcvbuf > 0) socket_.set(zmq::sockopt::rcvbuf, rcvbuf);
    socket_.set(zmq::sockopt::linger, 0);
    for (const auto& p : prefixes) socket_.set(zmq::sockopt::subscribe, p);
    socket_.connect(endpoint);
  }

  // The next event, or nullopt-like (topic empty) on deadline.
  Event Next(int timeout_ms) {
    Event e;
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) <= 0) return e;
    zmq::message_t topic, body;
    if (!socket_.recv(topic) || !topic.more() || !socket_.recv(body)) return e;
    e.topic = topic.to_string();
    e.raw = body.to_string();
    e.body = Value::Decode(e.raw);
    return e;
  }

  // Reads until `pred` matches or the deadline passes; every event read is
  // appended to `seen` when given.
  Event WaitFor(const std::function<bool(const Event&)>& pred, int timeout_ms, std::vector<Event>* seen = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      Event e = Next(static_cast<int>(left.count()));
      if (e.topic.empty()) return {};
      if (seen) seen->push_back(e);
      if (pred(e)) return e;
    }
  }
  Event WaitForTopic(const std::string& topic, int timeout_ms, std::vector<Event>* seen = nullptr) {
    return WaitFor([&](const Event& e) { return e.topic == topic; }, timeout_ms, seen);
  }

  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::socket_t socket_;
};

}  // namespace torii::test
