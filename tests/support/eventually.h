// Waiting for something to happen, the one way tests do it: poll a
// condition until it holds or a deadline passes. Never sleep for a fixed
// time and hope (STYLE.md, Tests).
#pragma once

#include <chrono>
#include <thread>

namespace torii::test {

// Calls `cond` until it returns true; false if it still does not after
// `timeout_ms`. Between calls it runs `wait` (for a subscriber, its Poll:
// wait for and handle what arrives) or sleeps 10 ms. `cond` is called once
// more after the deadline, so a condition that held at the last moment is
// not reported as missed.
template <typename Cond, typename Wait>
bool Eventually(Cond cond, int timeout_ms, Wait wait) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    wait();
  }
  return cond();
}

template <typename Cond>
bool Eventually(Cond cond, int timeout_ms = 10000) {
  return Eventually(cond, timeout_ms, [] { std::this_thread::sleep_for(std::chrono::milliseconds(10)); });
}

}  // namespace torii::test
