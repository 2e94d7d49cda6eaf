// One statement execution with its parameters: what an operation's plan
// (ops.h) asks the pool (pool.h) to run. Owns its parameter values. A plain
// value, built on the loop thread and moved into a pool job; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/statements.h"

namespace torii::daemon {

// At most kMaxParams parameters (the pool refuses a command with more).
struct Command {
  static constexpr size_t kMaxParams = 16;
  Stmt stmt;
  std::vector<std::string> values;
  uint32_t null_mask = 0;  // bit i: parameter i is NULL

  Command(Stmt s) : stmt(s) {}
  Command& Add(std::string v) {
    values.push_back(std::move(v));
    return *this;
  }
  Command& AddNull() {
    if (values.size() < kMaxParams) null_mask |= 1u << values.size();
    values.emplace_back();
    return *this;
  }
  bool null(size_t i) const { return i < kMaxParams && ((null_mask >> i) & 1) != 0; }
  template <typename T>
  Command& AddOpt(const std::optional<T>& v) {
    if (v) return Add(ToParam(*v));
    return AddNull();
  }

 private:
  static std::string ToParam(const std::string& s) { return s; }
  static std::string ToParam(int64_t v) { return std::to_string(v); }
};

}  // namespace torii::daemon
