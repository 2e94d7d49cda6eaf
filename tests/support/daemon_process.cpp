// Spawning, watching and stopping toriid for tests.
#include "daemon_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "eventually.h"
#include "pg_cluster.h"
#include "wire.h"

namespace torii::test {

namespace {

using Clock = std::chrono::steady_clock;

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

DaemonProcess::DaemonProcess(DaemonOptions options) : opt_(std::move(options)) {
  dir_ = MakeTempDir("toriid");
  if (opt_.ipc) {
    requests_ = "ipc://" + dir_ + "/requests.sock";
    events_ = "ipc://" + dir_ + "/events.sock";
  } else {
    requests_ = "tcp://127.0.0.1:" + std::to_string(FreePort());
    events_ = "tcp://127.0.0.1:" + std::to_string(FreePort());
  }
  database_url_ = opt_.database_url.empty() ? FreshDatabase() : opt_.database_url;
  config_path_ = dir_ + "/toriid.toml";
  log_path_ = dir_ + "/toriid.log";
  WriteConfig();
  try {
    Start();
  } catch (...) {
    Kill();
    RemoveTree(dir_);
    throw;
  }
}

DaemonProcess::~DaemonProcess() {
  Kill();
  if (g_before_daemon_removed != nullptr) g_before_daemon_removed(*this);
  RemoveTree(dir_);
}

void DaemonProcess::WriteConfig() {
  // Sections in a fixed order; tests override any key through settings.
  std::map<std::string, std::map<std::string, std::string>> sections;
  auto bound = [this](const std::string& ep) {
    return opt_.ipc ? ep : "tcp://" + opt_.bind_host + ep.substr(ep.rfind(':'));
  };
  sections["server"]["requests"] = "[" + TomlString(bound(requests_)) + "]";
  sections["server"]["events"] = "[" + TomlString(bound(events_)) + "]";
  sections["database"]["url"] = TomlString(database_url_);
  sections["log"]["level"] = TomlString("info");
  for (const auto& [name, value] : opt_.settings) {
    size_t dot = name.find('.');
    if (dot == std::string::npos) throw std::logic_error("setting '" + name + "' must be section.key");
    sections[name.substr(0, dot)][name.substr(dot + 1)] = value;
  }
  std::ofstream out(config_path_);
  out << "# written by the test harness\n";
  for (const auto& [section, keys] : sections) {
    out << "\n[" << section << "]\n";
    for (const auto& [k, v] : keys) out << k << " = " << v << "\n";
  }
  out << opt_.extra_toml << "\n";
  if (!out) throw std::runtime_error("cannot write " + config_path_);
}

void DaemonProcess::Start() {
  if (pid_ > 0) return;
  int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) throw std::runtime_error("cannot open " + log_path_);
  std::string binary = TORIID_BINARY;
  // The child's argv and environment are built before fork: only exec runs after it.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; e++) {
    std::string kv = *e;
    if (opt_.env.count(kv.substr(0, kv.find('='))) == 0) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : opt_.env) {
    if (!v.empty()) env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp;
  for (auto& kv : env_strings) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::vector<const char*> argv;
  for (const auto& w : opt_.wrapper) argv.push_back(w.c_str());
  for (const char* a : {binary.c_str(), "--config", config_path_.c_str()}) argv.push_back(a);
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    ::close(log);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    dup2(log, 1);
    dup2(log, 2);
    // Never outlive the test, even when it crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    execvpe(argv[0], const_cast<char* const*>(argv.data()), envp.data());
    _exit(127);
  }
  ::close(log);
  pid_ = pid;
  exit_status_ = -1;
  if (opt_.wait_ready) WaitReady(opt_.ready_timeout_ms);
}

void DaemonProcess::WaitReady(int timeout_ms) {
  WireClient client(requests_);
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // The ROUTER socket is bound before the pool is ready, so one ping sent
  // early is queued and answered once the daemon takes requests.
  client.SendRaw(Req{.op = V("ping"), .id = V("ready")}.Encode());
  for (;;) {
    Reply r = client.Recv(50);
    if (r.received && r.ok()) return;
    if (!running()) {
      throw std::runtime_error("toriid exited with status " + std::to_string(exit_status_) +
                               " before answering ping; log:" + LogTail());
    }
    if (Clock::now() > deadline) {
      throw std::runtime_error("toriid did not answer ping within " + std::to_string(timeout_ms) +
                               " ms; log:" + LogTail());
    }
  }
}

bool DaemonProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = DecodeStatus(status);
    pid_ = -1;
    return false;
  }
  return true;
}

void DaemonProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int DaemonProcess::Wait(int timeout_ms) {
  if (!Eventually([&] { return !running(); }, timeout_ms, [] { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }))
    return -2;
  return exit_status_;
}

int DaemonProcess::Stop(int timeout_ms) {
  if (pid_ <= 0) return exit_status_;
  kill(pid_, SIGTERM);
  int st = Wait(timeout_ms);
  if (st == -2) {
    Kill();
    return -1;
  }
  return st;
}

void DaemonProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_status_ = DecodeStatus(status);
  pid_ = -1;
}

std::string DaemonProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string DaemonProcess::LogTail(size_t lines) const { return LastLines(log(), lines); }

bool DaemonProcess::WaitForLog(const std::string& needle, int timeout_ms) const {
  return Eventually([&] { return log().find(needle) != std::string::npos; }, timeout_ms,
                    [] { std::this_thread::sleep_for(std::chrono::milliseconds(5)); });
}

}  // namespace torii::test
