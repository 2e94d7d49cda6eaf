// Prints the protocol's operation table (torii/operations.h) as JSON, one
// array of {"name", "read_only", "retry_safe", "local"}: what the clients in
// other languages are tested against (lib/python/tests/test_operations.py).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "torii/operations.h"

int main() {
  nlohmann::json all = nlohmann::json::array();
  for (const torii::OperationInfo& op : torii::Operations()) {
    all.push_back({{"name", op.name}, {"read_only", op.read_only}, {"retry_safe", op.retry_safe}, {"local", op.local}});
  }
  std::printf("%s\n", all.dump(1).c_str());
  return 0;
}
