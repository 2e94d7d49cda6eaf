// A process held stopped (SIGSTOP) for as long as the object lives: a
// daemon or a PostgreSQL backend that falls silent without an error, as a
// silent network partition looks from the other side. The destructor sends
// SIGCONT, so every way out of a test (a failed ASSERT, an exception)
// thaws it; declare it after the DaemonProcess it stops, so that it is
// thawed before the daemon is told to stop.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "sql.h"

namespace torii::test {

class FrozenProcess {
 public:
  explicit FrozenProcess(pid_t pid) : pid_(pid) {
    if (pid_ <= 0 || kill(pid_, SIGSTOP) != 0) {
      throw std::runtime_error("cannot stop process " + std::to_string(pid_) + ": " + std::strerror(errno));
    }
  }
  ~FrozenProcess() { Thaw(); }
  FrozenProcess(const FrozenProcess&) = delete;
  FrozenProcess& operator=(const FrozenProcess&) = delete;

  void Thaw() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// Freezes the PostgreSQL backend of a toriid's LISTEN connection (by its
// application_name, in the database `admin` is connected to) while it is
// idle: stopped inside a probe's commit it would hold the lock that orders
// NOTIFY commits, and every writer with a trigger would wait for it. The
// state in pg_stat_activity is what the backend reported last, so an
// "idle" read after the stop means it is stopped between statements.
inline std::unique_ptr<FrozenProcess> FreezeListenerBackend(PGconn* admin) {
  for (int attempt = 0; attempt < 200; attempt++) {
    std::string pid = Scalar(admin, "SELECT pid FROM pg_stat_activity "
                                    "WHERE application_name = 'toriid-listener' AND datname = current_database()");
    auto frozen = std::make_unique<FrozenProcess>(static_cast<pid_t>(std::stol(pid)));
    if (Scalar(admin, "SELECT state FROM pg_stat_activity WHERE pid = " + pid) == "idle") return frozen;
    frozen.reset();
  }
  throw std::runtime_error("the listener's backend was never idle when stopped");
}

}  // namespace torii::test
