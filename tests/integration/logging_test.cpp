// toriid's logging and config commands, through the real binary:
//  - under JOURNAL_STREAM (naming stderr) every line starts with a "<N>"
//    priority; otherwise with a UTC timestamp and level;
//  - log.level is reloadable;
//  - --check-config exits 0, or 2 naming file, line and key;
//  - --print-config redacts the database password and says which URL source
//    wins (TORII_DATABASE_URL over database.url_file over database.url);
//  - no secret in any daemon log of the whole test run: every DaemonProcess
//    of this test binary (all integration tests link into it) has its log
//    scanned, just before its folder is removed, for password hashes,
//    session tokens and database passwords.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.h"
#include "eventually.h"
#include "pg_cluster.h"
#include "wire.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

// Database passwords the tests of this file put in URLs; none may be logged.
const char* const kDbPasswords[] = {"hunter2-url-Pw", "file-Pw-7731", "env-Pw-5519"};

// ---------------------------------------------------------------------------
// The secret scan of every daemon log.

// What a log line must never hold. Hashes: every hash the tests create has
// the "$argon2" / "$2b$" form; the request fixture's carry "secret-hash-".
// Tokens: 32 random bytes as base64url are 43 characters with upper case,
// lower case and digits mixed (identifiers in logs are not). Passwords in a
// database URL must show as ****.
std::string FindSecret(const std::string& line) {
  for (const char* marker : {"$argon2", "$2b$", "$2y$", "$scrypt$", "secret-hash-"}) {
    if (line.find(marker) != std::string::npos) return std::string("password hash marker ") + marker;
  }
  for (const char* pw : kDbPasswords) {
    if (line.find(pw) != std::string::npos) return "database password";
  }
  static const std::regex token(R"((^|[^A-Za-z0-9_-])([A-Za-z0-9_-]{43})($|[^A-Za-z0-9_-]))");
  for (std::sregex_iterator it(line.begin(), line.end(), token), end; it != end; ++it) {
    std::string t = (*it)[2];
    bool upper = false, lower = false, digit = false;
    for (char c : t) {
      upper |= c >= 'A' && c <= 'Z';
      lower |= c >= 'a' && c <= 'z';
      digit |= c >= '0' && c <= '9';
    }
    if (upper && lower && digit) return "token-shaped string";
  }
  static const std::regex uri_password(R"([a-z]+://[^:/@?\s]*:([^@/?\s]*)@)", std::regex::icase);
  std::smatch m;
  if (std::regex_search(line, m, uri_password) && m[1] != "****") return "password in a database URI";
  static const std::regex kv_password(R"((^|\s)password\s*=\s*('[^']*'|\S+))", std::regex::icase);
  if (std::regex_search(line, m, kv_password) && m[2] != "****" && m[2] != "'****'") {
    return "password= in a connection string";
  }
  return "";
}

// Returns "" or a description of the first secret in `log`.
std::string ScanLog(const std::string& log) {
  std::istringstream in(log);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    std::string what = FindSecret(line);
    // The line itself is not echoed: it holds the secret.
    if (!what.empty()) return "line " + std::to_string(n) + ": " + what;
  }
  return "";
}

void ScanBeforeRemoval(const DaemonProcess& d) {
  std::string found = ScanLog(d.log());
  if (!found.empty()) ADD_FAILURE() << "a secret reached a daemon log (" << d.log_path() << "): " << found;
}

// Installed at start-up, so that it covers every test in this binary.
const bool kScanInstalled = [] {
  g_before_daemon_removed = &ScanBeforeRemoval;
  return true;
}();

TEST(SecretScan, RecognisesWhatItLooksFor) {
  ASSERT_TRUE(kScanInstalled);
  // A scan that finds nothing could be a scan that looks at nothing.
  EXPECT_NE(FindSecret("created $argon2id$v=19$m=65536$abc"), "");
  EXPECT_NE(FindSecret("token dGhpc2lzYXRva2VuX0FCQ0RFRkdISUpLTE1OT1BRUlN end"), "");
  EXPECT_NE(FindSecret("daemon: database postgresql://torii:s3cret@db/torii"), "");
  EXPECT_NE(FindSecret("daemon: database host=db password=s3cret dbname=torii"), "");
  EXPECT_NE(FindSecret("url hunter2-url-Pw"), "");
  // What the daemon does log.
  EXPECT_EQ(FindSecret("daemon: database postgresql://torii:****@db/torii"), "");
  EXPECT_EQ(FindSecret("daemon: database host=/tmp/x port=5432 user=postgres dbname=torii_test_4_17"), "");
  EXPECT_EQ(FindSecret("2026-01-01T00:00:00.000Z INFO  pool: conn 3: idle -> busy (user 0b4a3f8e-1f6e-4d3e-9a47-"
                       "0123456789ab)"),
            "");
}

// ---------------------------------------------------------------------------
// Running toriid for a command (not as a DaemonProcess).

struct RunResult {
  int status = -1;  // exit code, 128+signal, -1 on deadline
  std::string out, err;
};

enum class Journal { kUnset, kStderr, kOtherFile };

RunResult RunToriid(const std::vector<std::string>& args, std::map<std::string, std::string> env = {},
                    Journal journal = Journal::kUnset, int timeout_ms = 30000) {
  std::string dir = MakeTempDir("toriid-run");
  std::string out_path = dir + "/out", err_path = dir + "/err";
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  struct stat st {};
  fstat(journal == Journal::kStderr ? err : out, &st);
  env["JOURNAL_STREAM"] = journal == Journal::kUnset ? "" : std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  env.emplace("TORII_DATABASE_URL", "");
  env.emplace("NOTIFY_SOCKET", "");

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; e++) {
    std::string kv = *e;
    if (env.count(kv.substr(0, kv.find('='))) == 0) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : env) {
    if (!v.empty()) env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp;
  for (auto& kv : env_strings) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings{TORIID_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(out);
  ::close(err);
  RunResult r;
  int status = 0;
  if (Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout_ms)) {
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  RemoveTree(dir);
  EXPECT_EQ(ScanLog(r.out + r.err), "") << "a secret in toriid's output";
  return r;
}

// A config file in a temp folder, removed with the object.
struct ConfigFile {
  std::string dir = MakeTempDir("toriid-conf");
  std::string path = dir + "/toriid.toml";
  explicit ConfigFile(const std::string& text) { std::ofstream(path) << text; }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  }
  ~ConfigFile() { RemoveTree(dir); }
};

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// ---------------------------------------------------------------------------
// Journal priorities and timestamps.

TEST(Logging, JournalStreamGivesPriorityPrefixes) {
  // --migrate logs info lines (database, schema version) and exits.
  ConfigFile conf("[database]\nurl = " + TomlString(FreshDatabase()) + "\n");
  RunResult r = RunToriid({"--config", conf.path, "--migrate"}, {}, Journal::kStderr);
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = Lines(r.err);
  ASSERT_GE(lines.size(), 2u) << r.err;
  for (const auto& l : lines) EXPECT_TRUE(std::regex_search(l, std::regex(R"(^<[0-7]>\S)"))) << l;
  EXPECT_NE(r.err.find("<6>daemon: schema at version"), std::string::npos) << r.err;

  // An error is <3>: a database that is not there.
  ConfigFile bad("[database]\nurl = \"host=/nonexistent-torii port=1 dbname=x\"\nconnect_timeout_ms = 500\n");
  RunResult e = RunToriid({"--config", bad.path, "--migrate"}, {}, Journal::kStderr);
  EXPECT_EQ(e.status, 1) << e.err;
  EXPECT_TRUE(std::regex_search(e.err, std::regex(R"((^|\n)<3>toriid: )"))) << e.err;
}

TEST(Logging, WithoutJournalStreamLinesAreTimestamped) {
  ConfigFile conf("[database]\nurl = " + TomlString(FreshDatabase()) + "\n");
  // JOURNAL_STREAM inherited but naming another file (stderr redirected
  // away from the journal) counts as unset.
  for (Journal j : {Journal::kUnset, Journal::kOtherFile}) {
    RunResult r = RunToriid({"--config", conf.path, "--migrate"}, {}, j);
    ASSERT_EQ(r.status, 0) << r.err;
    auto lines = Lines(r.err);
    ASSERT_GE(lines.size(), 2u) << r.err;
    for (const auto& l : lines) {
      EXPECT_TRUE(std::regex_search(l, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO |WARN |ERROR|DEBUG) )")))
          << l;
    }
  }
}

TEST(Logging, LogLevelIsReloadable) {
  // NOTIFY_SOCKET names a socket that is not there, so every sd_notify
  // (RELOADING=1, READY=1 on each reload) fails and logs at debug: a debug
  // line that a reload is sure to produce.
  std::string dir = MakeTempDir("notify-absent");
  DaemonOptions o;  // log.level = "info"
  o.env = {{"NOTIFY_SOCKET", dir + "/absent.sock"}, {"WATCHDOG_USEC", ""}};
  DaemonProcess d(o);
  RemoveTree(dir);
  WireClient client(d.request_endpoint());
  auto set_level = [&](const std::string& level) {
    std::ifstream in(d.config_path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = std::regex_replace(ss.str(), std::regex(R"(level = "\w+")"), "level = \"" + level + "\"");
    std::ofstream(d.config_path(), std::ios::trunc) << text;
  };
  // A request that goes through the pool.
  auto pool_request = [&] {
    Reply r = client.Call("get_user", V::Map({{"id", "00000000-0000-4000-8000-000000000001"}}));
    ASSERT_TRUE(r.received);
  };
  pool_request();
  EXPECT_EQ(d.log().find(" DEBUG "), std::string::npos) << "debug lines at level info";

  // The n-th occurrence of `needle` in the log, polled for; npos on deadline.
  auto nth = [&](const std::string& needle, int n) {
    size_t at = std::string::npos;
    Eventually([&] {
      std::string log = d.log();
      at = std::string::npos;
      for (int k = 0; k < n; k++) {
        at = log.find(needle, at == std::string::npos ? 0 : at + 1);
        if (at == std::string::npos) break;
      }
      return at != std::string::npos;
    });
    return at;
  };
  const std::string changed = "daemon: reload: log.level changed";

  set_level("debug");
  d.Signal(SIGHUP);
  size_t first = nth(changed, 1);
  ASSERT_NE(first, std::string::npos) << d.LogTail();
  // The READY=1 at the end of this very reload is logged at debug.
  ASSERT_TRUE(d.WaitForLog(" DEBUG notify: sd_notify failed", 5000)) << "no debug line after reloading to debug"
                                                                      << d.LogTail();
  EXPECT_GT(d.log().find(" DEBUG "), first) << d.LogTail();

  set_level("warn");
  d.Signal(SIGHUP);
  // The level changes inside the reload; the lines after it are quiet.
  size_t second = nth(changed, 2);
  ASSERT_NE(second, std::string::npos) << d.LogTail();
  // A refused reload logs an error: a marker that the loop has moved on.
  std::ofstream(d.config_path(), std::ios::app) << "\n[nonsense]\n";
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("reload refused", 10000)) << d.LogTail();
  pool_request();
  ASSERT_TRUE(client.Call("ping").ok());
  std::string log = d.log();
  std::string after = log.substr(log.find('\n', second) + 1);
  EXPECT_EQ(after.find(" INFO "), std::string::npos) << "info lines at level warn:\n" << after;
  EXPECT_EQ(after.find(" DEBUG "), std::string::npos) << "debug lines at level warn:\n" << after;
  EXPECT_NE(after.find(" ERROR "), std::string::npos) << after;
}

// ---------------------------------------------------------------------------
// --check-config and --print-config.

TEST(ConfigCommands, CheckConfigAcceptsAValidFile) {
  ConfigFile conf("[server]\nrequest_timeout_ms = 2500\n\n[log]\nlevel = \"warn\"\n");
  RunResult r = RunToriid({"--check-config", "--config", conf.path});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("is valid"), std::string::npos) << r.out;
  // The shipped example config, every key at its default, is valid too.
  RunResult shipped = RunToriid({"--check-config", "--config", std::string(TORII_SOURCE_DIR) + "/conf/toriid.toml"});
  EXPECT_EQ(shipped.status, 0) << shipped.err;
}

TEST(ConfigCommands, CheckConfigNamesFileLineAndKey) {
  struct Case {
    std::string text;
    std::string where;  // expected "FILE:LINE: key" after the path
  } cases[] = {
      {"[server]\nrequest_timeout_ms = 2500\nmax_pendingg = 3\n", ":3: server.max_pendingg: unknown key"},
      {"[log]\n\n\nlevel = \"loud\"\n", ":4: log.level: must be one of"},
      {"[database]\nmax_connections = \"eight\"\n", ":2: database.max_connections: expected an integer"},
      {"[cleanup]\nbatch_size = 0\n", ":2: cleanup.batch_size: must be between"},
      {"[server]\nrequests = [\"tcp://127.0.0.1:1\"\n", ":"},  // TOML syntax error: file and line
  };
  for (const auto& c : cases) {
    ConfigFile conf(c.text);
    RunResult r = RunToriid({"--check-config", "--config", conf.path});
    EXPECT_EQ(r.status, 2) << c.text;
    EXPECT_NE(r.err.find(conf.path + c.where), std::string::npos) << "want " << c.where << " in: " << r.err;
  }
  // A url_file that cannot be read is a config error too.
  ConfigFile missing("[database]\nurl_file = \"/nonexistent/torii-database.url\"\n");
  RunResult r = RunToriid({"--check-config", "--config", missing.path});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("database.url_file"), std::string::npos) << r.err;
  // A missing config file: 2, naming it.
  RunResult none = RunToriid({"--check-config", "--config", "/nonexistent/toriid.toml"});
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("/nonexistent/toriid.toml"), std::string::npos) << none.err;
}

TEST(ConfigCommands, PrintConfigRedactsTheDatabasePassword) {
  ConfigFile conf("[database]\nurl = \"postgresql://torii:hunter2-url-Pw@db.example/torii\"\n");
  RunResult r = RunToriid({"--print-config", "--config", conf.path});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("hunter2-url-Pw"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("url = 'postgresql://torii:****@db.example/torii'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(from database.url): postgresql://torii:****@db.example/torii"), std::string::npos) << r.out;
  // Every key is printed: a sample from each section.
  for (const char* key : {"[server]", "request_timeout_ms = 5000", "[database]", "max_connections = 8", "[events]",
                          "[cleanup]", "[audit]", "[log]", "level = 'info'", "[security]"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " in:\n" << r.out;
  }
  // key=value form too.
  ConfigFile kv("[database]\nurl = \"host=db.example user=torii password=hunter2-url-Pw dbname=torii\"\n");
  RunResult k = RunToriid({"--print-config", "--config", kv.path});
  ASSERT_EQ(k.status, 0) << k.err;
  EXPECT_EQ(k.out.find("hunter2-url-Pw"), std::string::npos) << k.out;
  EXPECT_NE(k.out.find("password=****"), std::string::npos) << k.out;
}

TEST(ConfigCommands, DatabaseUrlPrecedence) {
  ConfigFile with_file("[database]\nurl_file = \"placeholder\"\n");
  std::string url_file = with_file.Write("database.url", "postgresql://torii:file-Pw-7731@from-file/torii\n");
  std::ofstream(with_file.path, std::ios::trunc) << "[database]\nurl_file = " << TomlString(url_file) << "\n";
  ConfigFile with_url("[database]\nurl = \"postgresql://torii:hunter2-url-Pw@from-url/torii\"\n");
  const std::string env_url = "postgresql://torii:env-Pw-5519@from-env/torii";

  // url_file alone.
  RunResult f = RunToriid({"--print-config", "--config", with_file.path});
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_NE(f.out.find("(from database.url_file): postgresql://torii:****@from-file/torii"), std::string::npos)
      << f.out;
  // TORII_DATABASE_URL wins over url_file ...
  RunResult ef = RunToriid({"--print-config", "--config", with_file.path}, {{"TORII_DATABASE_URL", env_url}});
  ASSERT_EQ(ef.status, 0) << ef.err;
  EXPECT_NE(ef.out.find("(from TORII_DATABASE_URL): postgresql://torii:****@from-env/torii"), std::string::npos)
      << ef.out;
  // ... and over url.
  RunResult eu = RunToriid({"--print-config", "--config", with_url.path}, {{"TORII_DATABASE_URL", env_url}});
  ASSERT_EQ(eu.status, 0) << eu.err;
  EXPECT_NE(eu.out.find("(from TORII_DATABASE_URL): postgresql://torii:****@from-env/torii"), std::string::npos)
      << eu.out;
  // url and url_file in one file is refused rather than silently ranked
  // (url_file would win; the loader asks to keep one).
  ConfigFile both("[database]\nurl = \"postgresql://from-url/torii\"\nurl_file = " + TomlString(url_file) + "\n");
  RunResult b = RunToriid({"--check-config", "--config", both.path});
  EXPECT_EQ(b.status, 2);
  EXPECT_NE(b.err.find("database.url_file"), std::string::npos) << b.err;

  // The daemon really connects with the winner: database.url names no
  // server, TORII_DATABASE_URL the test database, and requests are served.
  DaemonOptions o;
  o.database_url = "host=/nonexistent-torii port=1 dbname=nothing";
  o.env["TORII_DATABASE_URL"] = FreshDatabase();
  DaemonProcess d(o);
  WireClient client(d.request_endpoint());
  Reply r = client.Call("get_user", V::Map({{"id", "00000000-0000-4000-8000-000000000001"}}));
  ASSERT_TRUE(r.received);
  EXPECT_EQ(r.code(), "not_found") << r.ToString();
}

}  // namespace
}  // namespace torii::test
