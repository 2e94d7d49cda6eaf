// A steady mixed load for fault tests: several clients, each on its own
// WireClient and thread, send create_user / create_session (writes) and
// get_user (reads) until Stop(), and log every acknowledged write and every
// error with when its request was sent. The fault tests (faults_test.cpp,
// failover_test.cpp) then check that no acknowledged write was lost.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "wire.h"

namespace torii::test {

struct WriteLoadOptions {
  int clients = 4;
  std::string email_prefix = "load";  // created users are <prefix><client>-<n>@example.com
  int deadline_ms = 1000;             // each request's timeout_ms
  // A reply later than this counts as a hang (a reply a little after its
  // deadline is scheduling on a loaded machine).
  int hang_ms = 3000;
  // Error codes that are allowed answers (logged in `failures`); any other
  // error is `wrong`.
  std::set<std::string> allowed = {"unavailable", "timeout", "overloaded"};
  // not_found / foreign_key about an acknowledged user go to `missing_user`
  // instead of `wrong` (a failover to an asynchronous standby may lose it).
  bool user_may_vanish = false;
};

class WriteLoad {
 public:
  using Clock = std::chrono::steady_clock;
  struct Failure {
    Clock::time_point sent;
    std::string what;  // op: code
  };

  WriteLoad(std::string endpoint, WriteLoadOptions options = {});
  ~WriteLoad() { Stop(); }
  WriteLoad(const WriteLoad&) = delete;
  WriteLoad& operator=(const WriteLoad&) = delete;

  // Stops and joins the clients; the logs below may be read without `mu`
  // afterwards.
  void Stop();

  // The first write sent at or after `t` and acknowledged, or
  // Clock::time_point::max() when none is yet.
  Clock::time_point FirstWriteAckedAfter(Clock::time_point t);
  // Writes acknowledged so far.
  size_t AckedWrites();

  std::mutex mu;  // guards the logs while the clients run
  std::vector<std::string> acked_users;     // create_user answered ok
  std::vector<std::string> acked_sessions;  // create_session answered ok
  std::vector<std::pair<Clock::time_point, Clock::time_point>> write_acks;  // sent, answered
  std::vector<Failure> failures;            // allowed errors, with when sent
  std::vector<std::string> wrong;           // neither right nor an allowed error
  // user id -> reply, when user_may_vanish.
  std::vector<std::pair<std::string, std::string>> missing_user;
  std::map<std::string, int> codes;         // error code -> count
  std::atomic<int> ok{0};
  std::atomic<int> hangs{0};

 private:
  Reply Send(WireClient& c, const std::string& op, V args);
  bool Check(const Reply& r, const std::string& op, Clock::time_point sent, const std::string& user);
  void Run(int n);

  std::string endpoint_;
  WriteLoadOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// How many of `ids` are rows of `table` (by its id column).
int64_t CountIn(PGconn* c, const std::string& table, const std::vector<std::string>& ids);

}  // namespace torii::test
