// Small helpers for unit tests that read msgpack replies and time things.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include <msgpack.hpp>

namespace torii::test {

using Clock = std::chrono::steady_clock;

inline int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// A msgpack str as a view (the object must be a STR).
inline std::string_view S(const msgpack::object& o) { return {o.via.str.ptr, o.via.str.size}; }

// The value under a string key of a msgpack map; nullptr when absent.
inline const msgpack::object* Get(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; i++) {
    if (map.via.map.ptr[i].key.type == msgpack::type::STR && S(map.via.map.ptr[i].key) == key) {
      return &map.via.map.ptr[i].val;
    }
  }
  return nullptr;
}

}  // namespace torii::test
