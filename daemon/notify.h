// The systemd notification protocol (sd_notify): READY=1 once requests are
// served and events published, RELOADING=1 then READY=1 around a reload,
// STOPPING=1 on shutdown, WATCHDOG=1 at half of WATCHDOG_USEC from a loop
// timer (so a stuck loop stops feeding it), and a STATUS= line refreshed
// every few seconds. Without NOTIFY_SOCKET every call is a no-op.
// Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

namespace torii::daemon {

class Notifier {
 public:
  // `status` produces the STATUS= line (connections, requests/s).
  Notifier(uv_loop_t* loop, std::function<std::string()> status);
  ~Notifier();

  // Ready() after Reloading() ends the reload. Reloading() before the first
  // Ready() sends nothing, and neither does the Ready() that ends it.
  void Ready();
  void Reloading();
  void Stopping();
  void Close();

 private:
  static void OnWatchdog(uv_timer_t* t);
  static void OnStatus(uv_timer_t* t);
  void Send(const std::string& state);

  uv_loop_t* loop_;
  std::function<std::string()> status_;
  uv_timer_t watchdog_;
  uv_timer_t status_timer_;
  bool closed_ = false;
  bool ready_ = false;       // READY=1 has been sent
  bool skip_ready_ = false;  // the next Ready() ends a reload begun before ready_
};

}  // namespace torii::daemon
