// The `torii` CLI binary against a real toriid (DaemonProcess on a fresh
// database of the shared throwaway PostgreSQL): every subcommand, its
// output in text and --json, and the exit statuses of issue 7 (0 ok, 1 the
// daemon answered an error, 2 usage, 3 unreachable or timed out). `watch`
// runs as a child that the test reads line by line, with deadlines.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon_process.h"
#include "eventually.h"
#include "pg_cluster.h"
#include "torii/pg.h"
#include "torii/types.h"
#include "torii/values.h"

namespace torii {
namespace {

using json = nlohmann::json;
using test::DaemonProcess;
using test::Eventually;

const std::string kCli = std::string(TORII_BUILD_DIR) + "/tools/torii";

struct CliRun {
  int status = -1;
  std::string out;
  std::string err;
};

// A running CLI child with its stdout and stderr on pipes.
class Child {
 public:
  // `cwd`: the folder the CLI runs in (empty: the test's own).
  explicit Child(std::vector<std::string> args, const std::string& cwd = "") {
    int o[2], e[2];
    if (pipe(o) != 0 || pipe(e) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(o[1], 1);
      dup2(e[1], 2);
      close(o[0]);
      close(e[0]);
      if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(kCli.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      // The tests set endpoints explicitly; a stray environment must not.
      unsetenv("TORII_ENDPOINT");
      unsetenv("TORII_EVENTS_ENDPOINT");
      unsetenv("TORII_TENANT");
      execv(kCli.c_str(), argv.data());
      _exit(127);
    }
    close(o[1]);
    close(e[1]);
    out_fd_ = o[0];
    err_fd_ = e[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_fd_);
    close(err_fd_);
  }

  // Reads what is available on both pipes for up to `ms`; false at EOF of both.
  bool Pump(int ms) {
    pollfd p[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (poll(p, 2, ms) <= 0) return true;
    bool open = false;
    for (int i = 0; i < 2; i++) {
      if (p[i].revents == 0) {
        open = true;
        continue;
      }
      char buf[4096];
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? out : err).append(buf, static_cast<size_t>(n));
        open = true;
      }
    }
    return open;
  }
  // Polls stdout until it contains `needle`; false on deadline.
  bool WaitFor(const std::string& needle, int timeout_ms, size_t from = 0) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out.find(needle, from) == std::string::npos) {
      if (std::chrono::steady_clock::now() > end) return false;
      Pump(100);
    }
    return true;
  }
  int Finish(int timeout_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Pump(100) && std::chrono::steady_clock::now() < end) {
    }
    int st = 0;
    while (waitpid(pid_, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        break;
      }
      Pump(50);
    }
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  void Signal(int sig) { kill(pid_, sig); }

  std::string out, err;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
};

CliRun Cli(std::vector<std::string> args, const std::string& cwd = "") {
  Child c(std::move(args), cwd);
  CliRun r;
  r.status = c.Finish(30000);
  r.out = c.out;
  r.err = c.err;
  return r;
}

std::string Dump(const CliRun& r) { return "status " + std::to_string(r.status) + "\nout: " + r.out + "\nerr: " + r.err; }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { d_ = std::make_unique<DaemonProcess>(); }
  // A CLI run against this test's daemon.
  CliRun T(std::vector<std::string> args, const std::string& cwd = "") {
    args.insert(args.begin(), {"--endpoint", d_->request_endpoint(), "--events-endpoint", d_->event_endpoint()});
    return Cli(std::move(args), cwd);
  }
  // A --json run that must succeed; returns its one JSON line.
  json J(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    CliRun r = T(args);
    EXPECT_EQ(r.status, 0) << Dump(r);
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << Dump(r);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one JSON line expected: " << r.out;
    return j;
  }
  std::unique_ptr<DaemonProcess> d_;
};

TEST(CliUsage, ExitStatusesWithoutADaemon) {
  EXPECT_EQ(Cli({}).status, 2);
  EXPECT_EQ(Cli({"bogus"}).status, 2);
  EXPECT_EQ(Cli({"user"}).status, 2);
  EXPECT_EQ(Cli({"user", "create"}).status, 2);  // --email is required
  EXPECT_EQ(Cli({"--timeout", "0", "ping"}).status, 2);
  EXPECT_EQ(Cli({"call", "ping", "[1,2]"}).status, 2);
  EXPECT_EQ(Cli({"migrate", "--from", "mysql:x", "--to", "postgresql:///x"}).status, 2);
  CliRun empty = Cli({"--endpoint", "", "ping"});
  EXPECT_EQ(empty.status, 2) << Dump(empty);
  EXPECT_NE(empty.err.find("give --endpoint/--events-endpoint a value"), std::string::npos) << Dump(empty);
  // A malformed tenant name is a usage error before anything is sent.
  CliRun tenant = Cli({"--tenant", "Acme Corp", "ping"});
  EXPECT_EQ(tenant.status, 2) << Dump(tenant);
  EXPECT_NE(tenant.err.find("[a-z0-9_.-]"), std::string::npos) << Dump(tenant);
  EXPECT_EQ(Cli({"tenant"}).status, 2);
  EXPECT_EQ(Cli({"tenant", "add"}).status, 2);
  EXPECT_EQ(Cli({"tenant", "add", "a/b"}).status, 2);
  CliRun help = Cli({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("migrate"), std::string::npos);
  // Nobody listens on this port: the request times out locally.
  CliRun r = Cli({"--endpoint", "tcp://127.0.0.1:" + std::to_string(test::FreePort()), "--timeout", "300", "ping"});
  EXPECT_EQ(r.status, 3) << Dump(r);
  EXPECT_NE(r.err.find("no reply"), std::string::npos) << Dump(r);
}

TEST_F(CliTest, PingStatsAndCall) {
  CliRun p = T({"ping"});
  ASSERT_EQ(p.status, 0) << Dump(p);
  EXPECT_NE(p.out.find("pong"), std::string::npos);
  EXPECT_NE(p.out.find("protocol 1"), std::string::npos);
  EXPECT_EQ(J({"ping"})["protocol"], 1);
  EXPECT_GE(J({"ping"})["schema"].get<int>(), 12);  // the schema version it runs on

  CliRun s = T({"stats"});
  ASSERT_EQ(s.status, 0) << Dump(s);
  EXPECT_NE(s.out.find("pool.size"), std::string::npos) << s.out;
  json sj = J({"stats"});
  EXPECT_TRUE(sj["requests"].is_number());
  CliRun prom = T({"stats", "--prometheus"});
  ASSERT_EQ(prom.status, 0) << Dump(prom);
  EXPECT_NE(prom.out.find("# TYPE torii_requests_total counter\ntorii_requests_total "), std::string::npos) << prom.out;
  EXPECT_NE(prom.out.find("# TYPE torii_pool_size gauge"), std::string::npos) << prom.out;

  CliRun c = T({"call", "create_user", R"({"email": "Call@Example.com", "metadata": {"plan": "pro"}})"});
  ASSERT_EQ(c.status, 0) << Dump(c);
  json u = json::parse(c.out);
  EXPECT_EQ(u["email"], "Call@Example.com");
  EXPECT_EQ(u["metadata"]["plan"], "pro");
  CliRun unknown = T({"call", "no_such_op"});
  EXPECT_EQ(unknown.status, 1) << Dump(unknown);
  EXPECT_NE(unknown.err.find("unknown_op"), std::string::npos) << Dump(unknown);
  CliRun bad = T({"call", "get_user", R"({"id": "not-a-uuid"})"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("invalid_argument"), std::string::npos) << Dump(bad);
  CliRun badjson = T({"--json", "call", "get_user", R"({"id": "not-a-uuid"})"});
  auto ej = json::parse(badjson.err, nullptr, false);
  ASSERT_FALSE(ej.is_discarded()) << Dump(badjson);
  EXPECT_EQ(ej["error"]["code"], "invalid_argument");
}

TEST_F(CliTest, UserCommands) {
  json u = J({"user", "create", "--email", "Ann@Example.com", "--password-hash", "$argon2id$v=19$cli-secret",
              "--metadata", R"({"name": "Ann Example"})"});
  std::string id = u["id"];
  ASSERT_TRUE(NormalizeUuid(id).has_value());
  EXPECT_EQ(u["metadata"]["name"], "Ann Example");

  CliRun dup = T({"user", "create", "--email", "ann@example.com"});
  EXPECT_EQ(dup.status, 1) << Dump(dup);
  EXPECT_NE(dup.err.find("duplicate"), std::string::npos) << Dump(dup);
  EXPECT_EQ(T({"user", "create", "--email", "x@y", "--metadata", "nope"}).status, 2);

  // get by id and by email (any case); text output aligned, hash masked.
  CliRun g = T({"user", "get", id});
  ASSERT_EQ(g.status, 0) << Dump(g);
  EXPECT_NE(g.out.find("email              Ann@Example.com"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("password_hash      (set)"), std::string::npos) << g.out;
  EXPECT_EQ(g.out.find("cli-secret"), std::string::npos);
  EXPECT_EQ(J({"user", "get", "ANN@example.com"})["id"], id);

  json up = J({"user", "update", id, "--merge", R"({"plan": "pro"})", "--email", "ann@new.example"});
  EXPECT_EQ(up["email"], "ann@new.example");
  EXPECT_EQ(up["metadata"]["plan"], "pro");
  EXPECT_EQ(up["metadata"]["name"], "Ann Example");
  EXPECT_TRUE(J({"user", "update", id, "--clear-password"})["password_hash"].is_null());

  json v = J({"user", "verify", id, "--at", "2024-05-01T12:00:00Z"});
  EXPECT_EQ(v["email_verified_at"], "2024-05-01T12:00:00.000000Z");
  EXPECT_EQ(T({"user", "verify", id, "--at", "yesterday"}).status, 2);

  (void)J({"user", "create", "--email", "bob@example.com", "--metadata", R"({"name": "Bob Builder"})"});
  CliRun list = T({"user", "list", "--limit", "1"});
  ASSERT_EQ(list.status, 0) << Dump(list);
  EXPECT_EQ(list.out.rfind("ID", 0), 0u) << list.out;
  EXPECT_NE(list.out.find("EMAIL"), std::string::npos);
  EXPECT_NE(list.out.find("ann@new.example"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("next: "), std::string::npos) << list.out;
  json lj = J({"user", "list"});
  EXPECT_EQ(lj["users"].size(), 2u);

  json found = J({"user", "search", "builder"});
  ASSERT_EQ(found["users"].size(), 1u) << found.dump();
  EXPECT_EQ(found["users"][0]["email"], "bob@example.com");
  CliRun st = T({"user", "search", "builder", "--limit", "5"});
  EXPECT_EQ(st.status, 0) << Dump(st);
  EXPECT_NE(st.out.find("bob@example.com"), std::string::npos);

  CliRun del = T({"user", "delete", id});
  ASSERT_EQ(del.status, 0) << Dump(del);
  CliRun gone = T({"user", "get", id});
  EXPECT_EQ(gone.status, 1);
  EXPECT_NE(gone.err.find("not_found"), std::string::npos) << Dump(gone);
  EXPECT_EQ(d_->log().find("cli-secret"), std::string::npos);
}

TEST_F(CliTest, SessionAndAuditCommands) {
  std::string uid = J({"user", "create", "--email", "s@example.com"})["id"];
  json s = J({"session", "create", "--user", uid, "--ttl", "3600", "--user-agent", "curl/8", "--ip", "10.1.2.3"});
  std::string token = s["token"], sid = s["id"];
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(T({"session", "create", "--user", uid}).status, 2);  // no expiry
  EXPECT_EQ(T({"session", "create", "--user", uid, "--ttl", "1", "--expires-at", "5"}).status, 2);

  CliRun g = T({"session", "get", "--token", token});
  ASSERT_EQ(g.status, 0) << Dump(g);
  EXPECT_NE(g.out.find(sid), std::string::npos);
  EXPECT_NE(g.out.find("curl/8"), std::string::npos);
  EXPECT_EQ(T({"session", "get"}).status, 2);
  EXPECT_EQ(J({"session", "get", "--id", sid})["user_id"], uid);

  json ext = J({"session", "extend", "--id", sid, "--expires-at", "4102444800000"});
  EXPECT_EQ(ext["expires_at"], "2100-01-01T00:00:00.000000Z");

  std::string sid2 = J({"session", "create", "--user", uid, "--ttl", "60"})["id"];
  CliRun list = T({"session", "list", "--user", uid});
  ASSERT_EQ(list.status, 0) << Dump(list);
  EXPECT_NE(list.out.find("USER_AGENT"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("(2 rows)"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(token), std::string::npos);

  EXPECT_EQ(J({"session", "revoke-all", "--user", uid, "--except", sid})["deleted"], 1);
  EXPECT_EQ(J({"session", "delete", "--token", token})["deleted"], 1);
  CliRun gone = T({"session", "get", "--token", token});
  EXPECT_EQ(gone.status, 1);
  EXPECT_NE(gone.err.find("not_found"), std::string::npos) << Dump(gone);
  EXPECT_EQ(J({"session", "cleanup"})["deleted"], 0);
  (void)sid2;

  json a = J({"audit", "list", "--record", uid});
  ASSERT_GE(a["entries"].size(), 1u) << a.dump();
  EXPECT_EQ(a["entries"][0]["record_id"], uid);
  json as = J({"audit", "list", "--table", "sessions", "--limit", "2"});
  EXPECT_EQ(as["entries"].size(), 2u) << as.dump();
  CliRun at = T({"audit", "list", "--table", "users"});
  ASSERT_EQ(at.status, 0) << Dump(at);
  EXPECT_NE(at.out.find("OPERATION"), std::string::npos);
  EXPECT_NE(at.out.find("INSERT"), std::string::npos);
  EXPECT_EQ(T({"audit", "list", "--table", "nope"}).status, 2);
  EXPECT_EQ(d_->log().find(token), std::string::npos);
}

TEST_F(CliTest, WatchPrintsEventsAndMarksAResync) {
  // Events published before the SUB subscription reaches the daemon are
  // lost, so users are created until `watch` prints one; their id.
  std::string uid;
  auto created_and_seen = [&](Child& watch, const std::string& prefix) {
    return Eventually(
        [&] {
          uid = J({"user", "create", "--email", prefix + std::to_string(rand()) + "@example.com"})["id"];
          return watch.WaitFor(uid, 1000);
        },
        20000, [] {});
  };
  Child w({"--events-endpoint", d_->event_endpoint(), "watch", "--json"});
  ASSERT_TRUE(created_and_seen(w, "w")) << "no event reached watch: " << w.out << w.err;
  EXPECT_NE(w.out.find("\"topic\":\"user.created\""), std::string::npos) << w.out;

  // Kill the daemon's LISTEN connection: the daemon publishes torii.resync
  // and watch must say so, loudly.
  size_t mark = w.out.size();
  auto pg = ConnectBlocking(d_->database_url());
  ASSERT_TRUE(pg.ok()) << pg.error().ToString();
  auto k = ExecBlocking(pg->get(),
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'toriid-listener'");
  ASSERT_TRUE(k.ok()) << k.error().ToString();
  EXPECT_TRUE(w.WaitFor("\"stale\":\"resync\"", 20000, mark)) << w.out << w.err;

  w.Signal(SIGTERM);
  EXPECT_EQ(w.Finish(10000), 0);

  // Text mode: one line per event, and the loud line.
  Child t({"--events-endpoint", d_->event_endpoint(), "watch", "user", "--count", "1"});
  ASSERT_TRUE(created_and_seen(t, "t")) << "no event reached watch: " << t.out << t.err;
  EXPECT_NE(t.out.find("user.created"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("id=" + uid), std::string::npos) << t.out;
  EXPECT_EQ(t.Finish(10000), 0);  // --count 1
}

// watch --tenant follows that tenant's stream only: a change of the default
// tenant made between two of the tenant's never shows.
TEST_F(CliTest, WatchFollowsItsTenant) {
  ASSERT_EQ(T({"tenant", "add", "watched"}).status, 0);
  std::string uid;
  auto created_and_seen = [&](Child& watch, const std::string& prefix) {
    return Eventually(
        [&] {
          uid = J({"--tenant", "watched", "user", "create", "--email", prefix + std::to_string(rand()) + "@example.com"})
              ["id"];
          return watch.WaitFor(uid, 1000);
        },
        20000, [] {});
  };
  Child w({"--tenant", "watched", "--events-endpoint", d_->event_endpoint(), "watch", "--json"});
  ASSERT_TRUE(created_and_seen(w, "a")) << "no event of the tenant reached watch: " << w.out << w.err;
  std::string other = J({"user", "create", "--email", "b" + std::to_string(rand()) + "@example.com"})["id"];
  ASSERT_TRUE(created_and_seen(w, "c")) << w.out << w.err;
  EXPECT_EQ(w.out.find(other), std::string::npos) << "a default-tenant event reached watch --tenant: " << w.out;
  EXPECT_NE(w.out.find("\"tenant\":\"watched\""), std::string::npos) << w.out;
  w.Signal(SIGTERM);
  EXPECT_EQ(w.Finish(10000), 0);
}

TEST_F(CliTest, MigrateThroughTheCli) {
  std::string dir = test::MakeTempDir("torii-cli-mig");
  std::string path = dir + "/torii.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string token = NewSessionToken();
  std::string sql =
      "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT, email_verified_at INTEGER,"
      " password_hash TEXT, created_at INTEGER, updated_at INTEGER);"
      "CREATE TABLE sessions (id INTEGER PRIMARY KEY, token TEXT, user_id TEXT, user_agent TEXT, ip_address TEXT,"
      " expires_at INTEGER, created_at INTEGER, updated_at INTEGER);"
      "CREATE TABLE magic_links (id INTEGER PRIMARY KEY, token TEXT);"
      "INSERT INTO magic_links (token) VALUES ('a');"
      "INSERT INTO users VALUES ('usr_cli', 'Cli', 'cli@example.com', NULL, NULL, 1600000000, NULL);"
      "INSERT INTO sessions VALUES (1, '" + token + "', 'usr_cli', NULL, NULL, 4102444800, 1600000000, NULL);";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  CliRun dry = T({"migrate", "--from", "sqlite:" + path, "--to", d_->database_url(), "--dry-run"});
  ASSERT_EQ(dry.status, 0) << Dump(dry);
  EXPECT_NE(dry.out.find("dry run"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("would insert 1"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("magic_links (1 rows)"), std::string::npos) << dry.out;
  CliRun missing = T({"session", "get", "--token", token});
  EXPECT_EQ(missing.status, 1);

  json m = J({"migrate", "--from", "sqlite:" + path, "--to", d_->database_url()});
  EXPECT_EQ(m["users"]["new"], 1);
  EXPECT_EQ(m["sessions"]["new"], 1);
  EXPECT_EQ(m["not_migrated_tables"]["magic_links"], 1);
  EXPECT_EQ(m["verified"], true);
  CliRun g = T({"session", "get", "--token", token});
  EXPECT_EQ(g.status, 0) << Dump(g);

  CliRun again = T({"migrate", "--from", "sqlite:" + path, "--to", d_->database_url()});
  ASSERT_EQ(again.status, 0) << Dump(again);
  EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find(token), std::string::npos);

  // A relative path is the caller's: from the file's folder, sqlite:torii.db (issue 28).
  CliRun relative = T({"migrate", "--from", "sqlite:torii.db", "--to", d_->database_url(), "--dry-run"}, dir);
  ASSERT_EQ(relative.status, 0) << Dump(relative);
  EXPECT_NE(relative.out.find("dry run"), std::string::npos) << relative.out;
  CliRun keygen = T({"keygen", "--out", "keys"}, dir);
  ASSERT_EQ(keygen.status, 0) << Dump(keygen);
  EXPECT_EQ(access((dir + "/keys.key").c_str(), R_OK), 0) << Dump(keygen);
  EXPECT_EQ(access((dir + "/keys.pub").c_str(), R_OK), 0) << Dump(keygen);

  CliRun nofile = T({"migrate", "--from", "sqlite:" + dir + "/absent.db", "--to", d_->database_url()});
  EXPECT_EQ(nofile.status, 1) << Dump(nofile);
  CliRun nodb = T({"migrate", "--from", "sqlite:" + path, "--to",
                "host=127.0.0.1 port=" + std::to_string(test::FreePort()) + " dbname=x connect_timeout=2"});
  EXPECT_EQ(nodb.status, 3) << Dump(nodb);
  test::RemoveTree(dir);
}

// Tenants (issue 26): `torii tenant add/list`, and the global --tenant on
// every command: the same email in two tenants, a session of one not found
// in the other, an unknown tenant not_found.
TEST_F(CliTest, TenantCommands) {
  CliRun add = T({"tenant", "add", "acme"});
  ASSERT_EQ(add.status, 0) << Dump(add);
  EXPECT_NE(add.out.find("acme"), std::string::npos) << Dump(add);
  CliRun twice = T({"tenant", "add", "acme"});
  EXPECT_EQ(twice.status, 1) << Dump(twice);
  EXPECT_NE(twice.err.find("duplicate"), std::string::npos) << Dump(twice);
  json list = J({"tenant", "list"});
  std::vector<std::string> names;
  for (const auto& t : list["tenants"]) names.push_back(t["name"]);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"acme", "default"})) << list.dump();
  CliRun text = T({"tenant", "list"});
  ASSERT_EQ(text.status, 0) << Dump(text);
  EXPECT_NE(text.out.find("CREATED_AT"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("(2 rows)"), std::string::npos) << text.out;

  // The same email in both tenants: two users, each found in its tenant.
  json in_acme = J({"--tenant", "acme", "user", "create", "--email", "ann@example.com"});
  json in_default = J({"user", "create", "--email", "ann@example.com"});
  EXPECT_NE(in_acme["id"], in_default["id"]);
  EXPECT_EQ(J({"--tenant", "acme", "user", "get", "ANN@example.com"})["id"], in_acme["id"]);
  EXPECT_EQ(J({"user", "get", "ann@example.com"})["id"], in_default["id"]);
  // Flags after the subcommand work too.
  EXPECT_EQ(J({"user", "get", "ann@example.com", "--tenant", "acme"})["id"], in_acme["id"]);
  CliRun cross = T({"--tenant", "acme", "user", "get", in_default["id"].get<std::string>()});
  EXPECT_EQ(cross.status, 1) << Dump(cross);
  EXPECT_NE(cross.err.find("not_found"), std::string::npos) << Dump(cross);

  // A session of acme validates in acme only.
  json s = J({"--tenant", "acme", "session", "create", "ann@example.com", "--ttl", "600"});
  std::string token = s["token"];
  EXPECT_EQ(J({"--tenant", "acme", "session", "get", "--token", token})["user_id"], in_acme["id"]);
  CliRun elsewhere = T({"session", "get", "--token", token});
  EXPECT_EQ(elsewhere.status, 1) << Dump(elsewhere);
  EXPECT_NE(elsewhere.err.find("not_found"), std::string::npos) << Dump(elsewhere);
  EXPECT_EQ(elsewhere.err.find(token), std::string::npos);

  // --torii-id follows the tenant's id rule (docs/torii.md).
  json t = J({"--tenant", "acme", "user", "create", "--email", "t@example.com", "--torii-id", "usr_cli"});
  EXPECT_EQ(t["id"], UserIdFromToriiId("usr_cli", "acme"));
  EXPECT_NE(t["id"], UserIdFromToriiId("usr_cli"));

  // A tenant nobody created.
  CliRun ghost = T({"--tenant", "ghost", "user", "list"});
  EXPECT_EQ(ghost.status, 1) << Dump(ghost);
  EXPECT_NE(ghost.err.find("not_found"), std::string::npos) << Dump(ghost);
  EXPECT_NE(ghost.err.find("ghost"), std::string::npos) << Dump(ghost);

  // Per-tenant counts stay out of the Prometheus text (cardinality).
  CliRun prom = T({"stats", "--prometheus"});
  ASSERT_EQ(prom.status, 0) << Dump(prom);
  EXPECT_EQ(prom.out.find("acme"), std::string::npos) << prom.out;
}

// `torii migrate --tenant`: into that tenant only; the same file into two
// tenants; a tenant that does not exist is refused and nothing is written.
TEST_F(CliTest, MigrateIntoATenant) {
  std::string dir = test::MakeTempDir("torii-cli-mig-tenant");
  std::string path = dir + "/torii.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string token = NewSessionToken();
  std::string sql =
      "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT, email_verified_at INTEGER,"
      " password_hash TEXT, created_at INTEGER, updated_at INTEGER);"
      "CREATE TABLE sessions (id INTEGER PRIMARY KEY, token TEXT, user_id TEXT, user_agent TEXT, ip_address TEXT,"
      " expires_at INTEGER, created_at INTEGER, updated_at INTEGER);"
      "INSERT INTO users VALUES ('usr_cli', 'Cli', 'cli@example.com', NULL, NULL, 1600000000, NULL);"
      "INSERT INTO sessions VALUES (1, '" + token + "', 'usr_cli', NULL, NULL, 4102444800, 1600000000, NULL);";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const std::vector<std::string> from = {"migrate", "--from", "sqlite:" + path, "--to", d_->database_url()};
  auto with = [&](std::vector<std::string> head) {
    head.insert(head.end(), from.begin(), from.end());
    return head;
  };

  CliRun ghost = T(with({"--tenant", "acme"}));
  EXPECT_EQ(ghost.status, 1) << Dump(ghost);
  EXPECT_NE(ghost.err.find("torii tenant add acme"), std::string::npos) << Dump(ghost);
  ASSERT_EQ(T({"tenant", "add", "acme"}).status, 0);
  ASSERT_EQ(T({"tenant", "add", "beta"}).status, 0);

  json a = J(with({"--tenant", "acme"}));
  EXPECT_EQ(a["tenant"], "acme");
  EXPECT_EQ(a["users"]["new"], 1);
  EXPECT_EQ(a["sessions"]["new"], 1);
  json b = J(with({"--tenant", "beta"}));
  EXPECT_EQ(b["users"]["new"], 1) << "the same file into a second tenant";
  EXPECT_EQ(b["sessions"]["new"], 1);
  CliRun again = T(with({"--tenant", "acme"}));
  ASSERT_EQ(again.status, 0) << Dump(again);
  EXPECT_NE(again.out.find("tenant:   acme"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again.out;

  for (const char* t : {"acme", "beta"}) {
    json g = J({"--tenant", t, "session", "get", "--token", token});
    EXPECT_EQ(g["user_id"], UserIdFromToriiId("usr_cli", t)) << t;
  }
  CliRun plain = T({"session", "get", "--token", token});
  EXPECT_EQ(plain.status, 1) << "nothing went to the default tenant: " << Dump(plain);
  json users = J({"user", "list"});
  EXPECT_TRUE(users["users"].empty()) << users.dump();
  test::RemoveTree(dir);
}

// `torii oauth`, `torii passkey` and `user create --torii-id/--name`
// (issue 19): binary ids as base64url in and out, exit 1 for conflict.
TEST_F(CliTest, AccountCommands) {
  json u = J({"user", "create", "--email", "acct@example.com", "--torii-id", "usr_7Jx2kQmP9rTaBcDeFgH", "--name", "Ann"});
  std::string uid = u["id"];
  EXPECT_EQ(uid, UuidV5("6af69e92-7b68-53eb-b1a6-0f7f935d8f4b", "usr_7Jx2kQmP9rTaBcDeFgH"));
  EXPECT_EQ(u["metadata"]["torii_id"], "usr_7Jx2kQmP9rTaBcDeFgH");
  EXPECT_EQ(u["name"], "Ann");

  json l = J({"oauth", "link", uid, "github", "42"});
  EXPECT_EQ(l["provider"], "github");
  EXPECT_EQ(J({"oauth", "user", "github", "42"})["id"], uid);
  CliRun list = T({"oauth", "list", uid});
  EXPECT_EQ(list.status, 0) << Dump(list);
  EXPECT_NE(list.out.find("github"), std::string::npos) << list.out;
  EXPECT_EQ(J({"oauth", "unlink", uid, "github"})["deleted"], 1);

  EXPECT_EQ(J({"oauth", "put-state", "st", "--verifier", "ver", "--ttl", "60"}).contains("expires_at"), true);
  EXPECT_EQ(J({"oauth", "take-state", "st"})["verifier"], "ver");
  EXPECT_EQ(T({"oauth", "take-state", "st"}).status, 1);

  // "-_8" is base64url of the bytes fb ff.. : binary out as base64url too.
  json p = J({"passkey", "add", uid, "--credential-id", "-_8", "--public-key", "AQID", "--sign-count", "3"});
  EXPECT_EQ(p["credential_id"], "-_8");
  EXPECT_EQ(p["public_key"], "AQID");
  EXPECT_EQ(J({"passkey", "use", "--credential-id", "-_8", "--sign-count", "4"})["sign_count"], 4);
  CliRun conflict = T({"passkey", "use", "--credential-id", "-_8", "--sign-count", "4"});
  EXPECT_EQ(conflict.status, 1) << Dump(conflict);
  EXPECT_NE(conflict.err.find("conflict"), std::string::npos) << Dump(conflict);
  EXPECT_EQ(J({"passkey", "list", uid})["passkeys"][0]["credential_id"], "-_8");
  EXPECT_EQ(T({"passkey", "get", "--credential-id", "not base64!"}).status, 2);
  EXPECT_EQ(J({"passkey", "put-challenge", "c1", "--challenge", "AQID", "--ttl", "60", "--user-id", uid})
                .contains("expires_at"),
            true);
  EXPECT_EQ(J({"passkey", "take-challenge", "c1"})["challenge"], "AQID");
  EXPECT_EQ(J({"passkey", "delete", "--credential-id", "-_8"})["deleted"], 1);
  EXPECT_EQ(J({"passkey", "delete-all", uid})["deleted"], 0);
}

// Issue 28: every command that names a user takes it as a positional or as
// --user, and as a uuid or an email (one get_user_by_email); provider,
// subject, credential id, token, jti and email likewise take both forms.
TEST_F(CliTest, EveryCommandNamesAUserEitherWayAndByEmail) {
  const std::string email = "both@example.com";
  std::string uid = J({"user", "create", "--email", email})["id"];

  // user
  EXPECT_EQ(J({"user", "get", email})["id"], uid);
  EXPECT_EQ(J({"user", "get", "--user", uid})["email"], email);
  EXPECT_EQ(J({"user", "update", email, "--merge", R"({"a":1})"})["metadata"]["a"], 1);
  EXPECT_EQ(J({"user", "update", "--user", uid, "--merge", R"({"b":2})"})["metadata"]["b"], 2);
  EXPECT_EQ(J({"user", "verify", "--user", email})["id"], uid);

  // session
  std::string s1 = J({"session", "create", email, "--ttl", "60"})["id"];
  std::string s2 = J({"session", "create", "--user", uid, "--ttl", "60"})["id"];
  EXPECT_EQ(J({"session", "list", email})["sessions"].size(), 2u);
  EXPECT_EQ(J({"session", "list", "--user", uid})["sessions"].size(), 2u);
  EXPECT_EQ(J({"session", "revoke-all", email, "--except", s1})["deleted"], 1);
  EXPECT_EQ(J({"session", "revoke-all", "--user", email})["deleted"], 1);
  (void)s2;

  // token
  std::string token = J({"token", "create", email, "--purpose", "magic_link", "--ttl", "60"})["token"];
  EXPECT_EQ(J({"token", "check", "--token", token, "--purpose", "magic_link"})["user_id"], uid);
  J({"token", "create", "--user", uid, "--purpose", "password_reset", "--ttl", "60"});
  EXPECT_EQ(J({"token", "delete", email})["deleted"], 2);

  // oauth
  EXPECT_EQ(J({"oauth", "link", "--user", email, "--provider", "github", "--subject", "1"})["user_id"], uid);
  EXPECT_EQ(J({"oauth", "link", uid, "gitlab", "2"})["provider"], "gitlab");
  EXPECT_EQ(J({"oauth", "link", "--provider", "bitbucket", email, "3"})["subject"], "3");
  EXPECT_EQ(J({"oauth", "get", "--provider", "github", "--subject", "1"})["user_id"], uid);
  EXPECT_EQ(J({"oauth", "user", "--subject", "2", "--provider", "gitlab"})["id"], uid);
  EXPECT_EQ(J({"oauth", "list", email})["accounts"].size(), 3u);
  EXPECT_EQ(J({"oauth", "list", "--user", uid})["accounts"].size(), 3u);
  EXPECT_EQ(J({"oauth", "unlink", email, "github", "1"})["deleted"], 1);
  EXPECT_EQ(J({"oauth", "unlink", "--user", uid, "--provider", "gitlab", "--subject", "2"})["deleted"], 1);
  EXPECT_EQ(J({"oauth", "put-state", "--state", "st", "--verifier", "v", "--ttl", "60"}).contains("expires_at"), true);
  EXPECT_EQ(J({"oauth", "take-state", "--state", "st"})["verifier"], "v");

  // passkey
  EXPECT_EQ(J({"passkey", "add", email, "AQID", "--public-key", "AQID"})["user_id"], uid);
  EXPECT_EQ(J({"passkey", "add", "--user", uid, "--credential-id", "AQIE", "--public-key", "AQID"})["credential_id"],
            "AQIE");
  EXPECT_EQ(J({"passkey", "list", email})["passkeys"].size(), 2u);
  EXPECT_EQ(J({"passkey", "list", "--user", uid})["passkeys"].size(), 2u);
  EXPECT_EQ(J({"passkey", "get", "AQID"})["user_id"], uid);
  EXPECT_EQ(J({"passkey", "use", "AQIE", "--sign-count", "5"})["sign_count"], 5);
  EXPECT_EQ(J({"passkey", "delete", "AQIE"})["deleted"], 1);
  J({"passkey", "put-challenge", "--challenge-id", "c1", "--challenge", "AQID", "--ttl", "60", "--user", email});
  J({"passkey", "put-challenge", "c2", "--challenge", "AQID", "--ttl", "60", "--user-id", uid});
  EXPECT_EQ(J({"passkey", "take-challenge", "--challenge-id", "c1"})["user_id"], uid);
  EXPECT_EQ(J({"passkey", "take-challenge", "c2"})["user_id"], uid);
  EXPECT_EQ(J({"passkey", "delete-all", "--user", email})["deleted"], 1);

  // jwt
  std::string later = std::to_string(NowMicros() / 1000 + 3600000);
  J({"jwt", "revoke", "--jti", "j1", "--expires", later, "--user", email});
  J({"jwt", "revoke-user", email});
  J({"jwt", "revoke-user", "--user", uid});
  EXPECT_EQ(J({"jwt", "check", "j1", "--user", email})["revoked"], true);

  // guard (an email by nature): both forms
  J({"guard", "fail", "--email", email});
  EXPECT_EQ(J({"guard", "failures", email})["count"], 1);
  J({"guard", "clear", "--email", email});

  // One message for a missing user, whichever command; no uuid, no email.
  for (std::vector<std::string> cmd : {std::vector<std::string>{"session", "list"}, {"oauth", "link"},
                                       {"passkey", "add"}, {"jwt", "revoke-user"}, {"token", "delete"}}) {
    CliRun r = T(cmd);
    EXPECT_EQ(r.status, 2) << Dump(r);
    EXPECT_NE(r.err.find("--user is required"), std::string::npos) << Dump(r);
  }
  CliRun bad = T({"oauth", "list", "bob"});
  EXPECT_EQ(bad.status, 2) << Dump(bad);
  EXPECT_NE(bad.err.find("'bob' is neither a user id (uuid) nor an email"), std::string::npos) << Dump(bad);
  CliRun ghost = T({"passkey", "list", "ghost@example.com"});
  EXPECT_EQ(ghost.status, 1) << Dump(ghost);
  EXPECT_NE(ghost.err.find("not_found"), std::string::npos) << Dump(ghost);

  // --actor too: the actor named by email sees its own row, not another's.
  std::string other = J({"user", "create", "--email", "other@example.com"})["id"];
  EXPECT_EQ(J({"--actor", email, "user", "get", uid})["id"], uid);
  CliRun hidden = T({"--actor", email, "user", "get", other});
  EXPECT_EQ(hidden.status, 1) << Dump(hidden);
  EXPECT_NE(hidden.err.find("not_found"), std::string::npos) << Dump(hidden);

  EXPECT_EQ(J({"user", "delete", "--user", email})["deleted"], 1);
}

}  // namespace
}  // namespace torii
