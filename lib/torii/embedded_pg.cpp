// Child-process PostgreSQL: initdb, start, wait, stop.
#include "torii/embedded_pg.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "torii/log.h"
#include "torii/pg.h"

namespace fs = std::filesystem;

namespace torii {

namespace {

struct Account {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<Account> ResolveAccount(const std::string& run_as) {
  Account a;
  if (geteuid() != 0) return a;
  struct passwd* pw = getpwnam(run_as.c_str());
  if (pw == nullptr) {
    return Error::Internal("toriid runs as root and PostgreSQL refuses to; the account '" + run_as +
                           "' (database.embedded_user) does not exist");
  }
  a.switch_user = true;
  a.uid = pw->pw_uid;
  a.gid = pw->pw_gid;
  return a;
}

// fork + exec with stdout/stderr appended to `log` (or /dev/null). With
// `pdeath`, the child gets SIGINT when this process dies. Returns the pid.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const Account& acct, const std::string& log, bool pdeath) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The server must not speak to systemd for toriid (NOTIFY_SOCKET) or take
  // its socket activation; the environment is built before fork.
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; e++) {
    std::string_view v(*e);
    if (v.rfind("NOTIFY_SOCKET=", 0) == 0 || v.rfind("WATCHDOG_", 0) == 0 || v.rfind("LISTEN_", 0) == 0) continue;
    env.push_back(*e);
  }
  env.push_back(nullptr);
  int out = ::open(log.empty() ? "/dev/null" : log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) return Error::Internal("cannot open " + log + ": " + std::strerror(errno));
  if (acct.switch_user && fchown(out, acct.uid, acct.gid) != 0) {
    // Not fatal: the file stays root's, and the child still writes through the fd.
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    ::close(out);
    return Error::Internal(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here.
    int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    setpgid(0, 0);  // keep terminal Ctrl-C away; toriid decides when postgres stops
    if (acct.switch_user) {
      if (setgroups(0, nullptr) != 0 || setgid(acct.gid) != 0 || setuid(acct.uid) != 0) _exit(126);
    }
    // After setuid, which would clear it.
    if (pdeath) {
      prctl(PR_SET_PDEATHSIG, SIGINT);
      if (getppid() != parent) _exit(1);
    }
    execve(args[0], args.data(), env.data());
    _exit(127);
  }
  ::close(out);
  return pid;
}

std::string TailOf(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > max_lines) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out;
}

Status ChownTree(const std::string& path, const Account& acct) {
  if (!acct.switch_user) return {};
  std::error_code ec;
  if (chown(path.c_str(), acct.uid, acct.gid) != 0) {
    return Error::Internal("cannot give " + path + " to the PostgreSQL account: " + std::strerror(errno));
  }
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (lchown(it->path().c_str(), acct.uid, acct.gid) != 0) {
      return Error::Internal("cannot give " + it->path().string() + " to the PostgreSQL account");
    }
  }
  return {};
}

// The running PostgreSQL that holds a data folder's lock (postmaster.pid),
// and what started it, when /proc tells.
struct LockHolder {
  pid_t pid = 0;
  pid_t parent = 0;
  std::string parent_name;  // the parent's command name, e.g. "toriid"
};

std::string ProcComm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

std::optional<LockHolder> RunningLockHolder(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return std::nullopt;  // a stale lock file
  LockHolder h;
  h.pid = static_cast<pid_t>(pid);
  // A lock file left by a crash whose pid now names another program is
  // stale too (PostgreSQL itself then takes the folder over).
  std::string comm = ProcComm(h.pid);
  if (!comm.empty() && comm.rfind("postgres", 0) != 0) return std::nullopt;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream rest(line.substr(paren + 1));
    char state = 0;
    long ppid = 0;
    if (rest >> state >> ppid && ppid > 1) {
      h.parent = static_cast<pid_t>(ppid);
      h.parent_name = ProcComm(h.parent);
    }
  }
  return h;
}

Error InUse(const std::string& data_dir, const LockHolder& h) {
  std::string who = "PostgreSQL pid " + std::to_string(h.pid);
  if (h.parent_name == "toriid") {
    who += ", the embedded database of the toriid with pid " + std::to_string(h.parent);
  } else if (h.parent > 0 && !h.parent_name.empty()) {
    who += ", started by '" + h.parent_name + "' pid " + std::to_string(h.parent);
  }
  return Error::Unavailable("the embedded database folder " + data_dir + " is already in use by " + who +
                            ": two servers cannot share one data folder. Either give this toriid its own folder "
                            "([database] data_dir), or share one server: set [database] url in every toriid to "
                            "that server (e.g. url = \"host=" + data_dir + " user=torii dbname=torii\" for the "
                            "other toriid's embedded one, which stops when that toriid stops; a standalone "
                            "PostgreSQL is better for several daemons)");
}

}  // namespace

EmbeddedPostgres::EmbeddedPostgres(EmbeddedPgOptions options) : opt_(std::move(options)) {
  if (opt_.socket_dir.empty()) opt_.socket_dir = opt_.data_dir;
}

EmbeddedPostgres::~EmbeddedPostgres() {
  if (pid_ > 0) (void)Stop(false);
}

Result<std::string> EmbeddedPostgres::FindBinDir() {
  if (const char* env = std::getenv("TORII_PG_BINDIR"); env && *env) {
    // An override that holds no server must say so, not fail later as an
    // unexplained initdb exit status.
    std::string dir(env);
    if (fs::exists(dir + "/postgres") && fs::exists(dir + "/initdb")) return dir;
    return Error::Unavailable("TORII_PG_BINDIR=" + dir +
                              " holds no PostgreSQL server (postgres and initdb): install the Debian package "
                              "'postgresql' (apt-get install postgresql) and point it at /usr/lib/postgresql/N/bin, "
                              "or unset it, or set [database] url");
  }
  std::error_code ec;
  std::string best;
  int best_version = 0;
  for (auto it = fs::directory_iterator("/usr/lib/postgresql", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    int v = std::atoi(it->path().filename().c_str());
    if (v > best_version && fs::exists(it->path() / "bin" / "postgres") && fs::exists(it->path() / "bin" / "initdb")) {
      best_version = v;
      best = (it->path() / "bin").string();
    }
  }
  if (!best.empty()) return best;
  if (FILE* p = popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[512] = {0};
    if (fgets(buf, sizeof(buf), p) != nullptr) {
      std::string dir(buf);
      while (!dir.empty() && (dir.back() == '\n' || dir.back() == ' ')) dir.pop_back();
      pclose(p);
      if (fs::exists(dir + "/postgres") && fs::exists(dir + "/initdb")) return dir;
    } else {
      pclose(p);
    }
  }
  return Error::Unavailable(
      "no PostgreSQL server is installed, and the config names no database: install the Debian package "
      "'postgresql' (apt-get install postgresql), or set [database] url");
}

std::string EmbeddedPostgres::DefaultDataDir() {
  if (geteuid() == 0) return "/var/lib/toriid/pg";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/toriid/pg";
  const char* home = std::getenv("HOME");
  if (home == nullptr) home = getpwuid(geteuid()) ? getpwuid(geteuid())->pw_dir : "/tmp";
  return std::string(home) + "/.local/share/toriid/pg";
}

Status EmbeddedPostgres::Init() {
  auto bindir = FindBinDir();
  if (!bindir.ok()) return bindir.error();
  bindir_ = *bindir;
  auto acct = ResolveAccount(opt_.run_as);
  if (!acct.ok()) return acct.error();

  std::error_code ec;
  if (fs::exists(opt_.data_dir + "/PG_VERSION")) return {};
  fs::create_directories(opt_.data_dir, ec);
  if (ec) return Error::Internal("cannot create " + opt_.data_dir + ": " + ec.message());
  fs::permissions(opt_.data_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (acct->switch_user) {
    // The account must reach the folder through its parents.
    for (fs::path p = fs::path(opt_.data_dir).parent_path(); p != p.root_path(); p = p.parent_path()) {
      struct stat st;
      if (stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0 && st.st_uid == 0) {
        if (chmod(p.c_str(), st.st_mode | S_IXOTH) != 0) break;
      }
    }
    if (auto st = ChownTree(opt_.data_dir, *acct); !st.ok()) return st;
  }
  std::string log = opt_.data_dir + "/../initdb.log";
  std::vector<std::string> argv = {bindir_ + "/initdb", "-D", opt_.data_dir, "-U", opt_.superuser,
                                   "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"};
  if (opt_.fast_initdb) argv.push_back("--no-sync");
  auto pid = Spawn(argv, *acct, log, true);
  if (!pid.ok()) return pid.error();
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fs::remove(opt_.data_dir + "/PG_VERSION", ec);
    return Error::Internal("initdb failed for " + opt_.data_dir + ":" + TailOf(log, 15));
  }
  fs::remove(log, ec);
  TLOG_INFO("embedded postgres: initialised %s", opt_.data_dir.c_str());
  return {};
}

std::string EmbeddedPostgres::ConnInfo(const std::string& dbname) const {
  return "host=" + opt_.socket_dir + " port=" + std::to_string(opt_.port) + " user=" + opt_.superuser +
         " dbname=" + dbname;
}

Status EmbeddedPostgres::Start(int timeout_ms) {
  if (pid_ > 0) return {};
  if (bindir_.empty()) {
    auto bindir = FindBinDir();
    if (!bindir.ok()) return bindir.error();
    bindir_ = *bindir;
  }
  auto acct = ResolveAccount(opt_.run_as);
  if (!acct.ok()) return acct.error();
  if (opt_.socket_dir.size() > 90) {
    return Error::InvalidArgument("the socket folder " + opt_.socket_dir + " is too long for a Unix socket path");
  }
  // Another server on this folder (a second toriid with the same data_dir):
  // ours would fail on the lock, and a ping would reach the other one.
  if (auto holder = RunningLockHolder(opt_.data_dir)) return InUse(opt_.data_dir, *holder);
  std::vector<std::string> argv = {bindir_ + "/postgres",
                                   "-D", opt_.data_dir,
                                   "-p", std::to_string(opt_.port),
                                   "-c", "listen_addresses=" + opt_.listen_addresses,
                                   "-c", "unix_socket_directories=" + opt_.socket_dir,
                                   "-c", "unix_socket_permissions=0700"};
  for (const auto& [k, v] : opt_.settings) {
    argv.push_back("-c");
    argv.push_back(k + "=" + v);
  }
  auto pid = Spawn(argv, *acct, LogPath(), true);
  if (!pid.ok()) return pid.error();
  pid_ = *pid;

  std::string conninfo = ConnInfo("postgres") + " connect_timeout=2";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    // The child's exit first, and the lock file's pid before trusting a
    // ping: the socket may be another server's (two toriids started on one
    // folder at once; the later postgres fails on the lock).
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (auto holder = RunningLockHolder(opt_.data_dir)) return InUse(opt_.data_dir, *holder);
      return Error::Unavailable("embedded postgres exited while starting:" + TailOf(LogPath(), 15));
    }
    if (PQping(conninfo.c_str()) == PQPING_OK) {
      auto holder = RunningLockHolder(opt_.data_dir);
      if (holder.has_value() && holder->pid == pid_) break;
      if (holder.has_value()) {
        (void)Stop(true);
        return InUse(opt_.data_dir, *holder);
      }
      // No lock file yet that names a live server: not ours yet either.
    }
    if (std::chrono::steady_clock::now() > deadline) {
      (void)Stop(true);
      return Error::Unavailable("embedded postgres did not accept connections within " +
                                std::to_string(timeout_ms) + " ms:" + TailOf(LogPath(), 15));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  TLOG_INFO("embedded postgres: pid %d serving %s on socket folder %s", static_cast<int>(pid_), opt_.data_dir.c_str(),
            opt_.socket_dir.c_str());
  return {};
}

Status EmbeddedPostgres::Stop(bool immediate, int timeout_ms) {
  if (pid_ <= 0) return {};
  kill(pid_, immediate ? SIGQUIT : SIGINT);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return {};
}

Status EmbeddedPostgres::Restart(bool immediate) {
  if (auto st = Stop(immediate); !st.ok()) return st;
  return Start();
}

Status EmbeddedPostgres::EnsureDatabase(const std::string& name) {
  auto conn = ConnectBlocking(ConnInfo("postgres"));
  if (!conn.ok()) return conn.error();
  auto found = ExecParamsBlocking(conn->get(), "SELECT 1 FROM pg_database WHERE datname = $1", {name.c_str()});
  if (!found.ok()) return found.error();
  if (PQntuples(found->get()) > 0) return {};
  auto created = ExecBlocking(conn->get(), "CREATE DATABASE " + QuoteIdent(conn->get(), name));
  if (!created.ok() && created.error().code() != Code::kDuplicate) return created.error();
  return {};
}

}  // namespace torii
