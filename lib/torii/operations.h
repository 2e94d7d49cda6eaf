// The operations of PROTOCOL.md sections 2 and 5, once: each name with what
// a caller may rely on (read-only, safe to retry on another daemon). The
// daemon checks its own table against this one (tests/unit/ops_table_test),
// the C++ client decides retries from it, and the other clients are tested
// against it (tests/support/ops_table_main.cpp exports it). Pure constant data; any thread.
#pragma once

#include <span>
#include <string_view>

namespace torii {

struct OperationInfo {
  std::string_view name;
  // Writes nothing: the daemon may run it in one transaction with other reads.
  bool read_only;
  // Safe to send again, to this or another daemon, when no reply came: it
  // changes nothing, so a duplicate cannot do harm.
  bool retry_safe;
  // Answered by the daemon itself (ping, stats, ...), not by a statement.
  bool local;
};

// Every operation, in the order of PROTOCOL.md's tables.
std::span<const OperationInfo> Operations();
// nullptr when `name` is no operation.
const OperationInfo* FindOperation(std::string_view name);

}  // namespace torii
