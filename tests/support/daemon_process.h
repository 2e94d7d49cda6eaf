// The real toriid binary as a child process of a test.
//
// Writes a config file (PROTOCOL.md section 1 keys) into a fresh temporary
// folder: requests and events on free tcp://127.0.0.1 ports (or ipc://
// endpoints in the folder), database.url = a fresh database on the shared
// cluster unless the test names one, plus any settings the test adds.
// Spawns TORIID_BINARY --config FILE with stdout and stderr captured in a
// log file that stays readable after the process ends (tests scan it for
// secrets), and waits until `ping` answers.
//
// The child gets PR_SET_PDEATHSIG, and the destructor kills and reaps it,
// so no daemon outlives its test. Failures throw std::runtime_error with
// the tail of the daemon's log.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace torii::test {

struct DaemonOptions {
  std::string database_url = {};  // empty: FreshDatabase()
  bool ipc = false;          // ipc:// endpoints in the temp folder instead of tcp
  // Host of the tcp:// endpoints in the config ("0.0.0.0", "*", an interface
  // name...); the test's clients still connect through 127.0.0.1.
  std::string bind_host = "127.0.0.1";
  // A command line the daemon runs under (e.g. unshare ...); toriid's own
  // argv follows it.
  std::vector<std::string> wrapper = {};
  // "section.key" -> TOML value text, e.g. {"server.request_timeout_ms", "500"}.
  // Overrides the defaults above (server.requests, database.url, ...).
  std::map<std::string, std::string> settings = {};
  std::string extra_toml = {};  // appended verbatim after the generated sections
  bool wait_ready = true;    // Start() waits until ping answers
  int ready_timeout_ms = 30000;
  // Environment of the child on top of the test's own; an empty value
  // unsets the variable (e.g. NOTIFY_SOCKET, JOURNAL_STREAM, TORII_DATABASE_URL).
  std::map<std::string, std::string> env = {};
};

class DaemonProcess {
 public:
  explicit DaemonProcess(DaemonOptions options = {});  // starts it
  ~DaemonProcess();                                    // kills it if running, removes the folder
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Spawns again (after Stop/Kill) with the same config and endpoints.
  void Start();
  // Polls `ping` until it answers; throws with the log tail if the daemon
  // exits or the deadline passes.
  void WaitReady(int timeout_ms);

  void Signal(int sig);
  // SIGTERM, waits up to `timeout_ms`, returns the exit status (exit code,
  // or 128 + signal number when killed; -1 if it had to be SIGKILLed).
  int Stop(int timeout_ms = 30000);
  // Waits for the process to end by itself; nullopt-like -2 on deadline.
  int Wait(int timeout_ms);
  void Kill();
  bool running();

  const std::string& request_endpoint() const { return requests_; }
  const std::string& event_endpoint() const { return events_; }
  const std::string& database_url() const { return database_url_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& log_path() const { return log_path_; }
  const std::string& dir() const { return dir_; }
  std::string log() const;  // the whole log so far
  std::string LogTail(size_t lines = 30) const;
  // Polls the log until it contains `needle`; false on deadline.
  bool WaitForLog(const std::string& needle, int timeout_ms = 10000) const;
  pid_t pid() const { return pid_; }

 private:
  void WriteConfig();

  DaemonOptions opt_;
  std::string dir_;
  std::string requests_;
  std::string events_;
  std::string database_url_;
  std::string config_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

// When set, called with each DaemonProcess just before its folder (and log)
// is removed; tests/integration/logging_test.cpp scans every log for secrets.
inline void (*g_before_daemon_removed)(const DaemonProcess&) = nullptr;

// TOML basic string literal for `s` (quotes and escapes).
std::string TomlString(const std::string& s);

}  // namespace torii::test
