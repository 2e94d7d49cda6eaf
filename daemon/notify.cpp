// sd_notify through libsystemd.
#include "notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

Notifier::Notifier(uv_loop_t* loop, std::function<std::string()> status) : loop_(loop), status_(std::move(status)) {
  uv_timer_init(loop_, &watchdog_);
  watchdog_.data = this;
  uv_timer_init(loop_, &status_timer_);
  status_timer_.data = this;
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    uint64_t half_ms = std::max<uint64_t>(1, usec / 2000);
    uv_timer_start(&watchdog_, OnWatchdog, half_ms, half_ms);
    TLOG_INFO("notify: systemd watchdog every %lu ms", (unsigned long)half_ms);
  }
}

Notifier::~Notifier() { Close(); }

void Notifier::Close() {
  if (closed_) return;
  closed_ = true;
  uv_timer_stop(&watchdog_);
  uv_timer_stop(&status_timer_);
  CloseEmbedded(&watchdog_);
  CloseEmbedded(&status_timer_);
}

void Notifier::Send(const std::string& state) {
  int r = sd_notify(0, state.c_str());
  if (r < 0) TLOG_DEBUG("notify: sd_notify failed: %d", r);
}

void Notifier::Ready() {
  if (skip_ready_) {
    // The end of a reload that came before the daemon was ready: not READY.
    skip_ready_ = false;
    return;
  }
  ready_ = true;
  Send("READY=1\nSTATUS=" + status_());
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&status_timer_))) {
    uv_timer_start(&status_timer_, OnStatus, 5000, 5000);
  }
}

void Notifier::Reloading() {
  // A SIGHUP during start-up still reloads, but systemd must not hear
  // RELOADING/READY before the real READY=1 (requests served, LISTEN in place).
  if (!ready_) {
    skip_ready_ = true;
    return;
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t usec = static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void Notifier::Stopping() { Send("STOPPING=1\nSTATUS=stopping"); }

void Notifier::OnWatchdog(uv_timer_t* t) { static_cast<Notifier*>(t->data)->Send("WATCHDOG=1"); }

void Notifier::OnStatus(uv_timer_t* t) {
  auto* self = static_cast<Notifier*>(t->data);
  self->Send("STATUS=" + self->status_());
}

}  // namespace torii::daemon
