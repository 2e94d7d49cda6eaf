// Small libuv helpers. A handle's memory may be freed only in its close
// callback; CloseAndDelete wraps that for heap-allocated handles. Owns
// nothing; called on the loop thread that owns the handle.
#pragma once

#include <uv.h>

#include <cstdint>

namespace torii::daemon {

template <typename H>
void CloseAndDelete(H* h) {
  if (h == nullptr) return;
  uv_handle_t* base = reinterpret_cast<uv_handle_t*>(h);
  if (uv_is_closing(base)) return;
  uv_close(base, [](uv_handle_t* closed) { delete reinterpret_cast<H*>(closed); });
}

// Closes a handle embedded in a long-lived object (no delete).
template <typename H>
void CloseEmbedded(H* h) {
  uv_handle_t* base = reinterpret_cast<uv_handle_t*>(h);
  if (base->loop != nullptr && !uv_is_closing(base)) uv_close(base, nullptr);
}

// Milliseconds of the loop's cached clock.
inline uint64_t LoopNowMs(uv_loop_t* loop) { return uv_now(loop); }

}  // namespace torii::daemon
