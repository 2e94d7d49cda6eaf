// Throwaway PostgreSQL for tests.
//
// PgCluster owns one private cluster (a wrapped torii::EmbeddedPostgres):
// a fresh temporary folder, a free port, a Unix socket inside that folder,
// optionally a TCP listener on 127.0.0.1, and settings that trade
// durability for speed. The destructor stops the server and removes the
// folder. As root the server runs as the `postgres` account (PostgreSQL
// refuses root); the folder is made reachable for it.
//
// SharedCluster() is the one cluster of the whole test run: the one named
// by TORII_TEST_PGHOST / TORII_TEST_PGPORT / TORII_TEST_PGUSER when set
// (tools/test starts it), else a PgCluster started on first use and kept
// for the life of this process. FreshDatabase() creates a new, uniquely
// named database on it. Tests that stop or restart PostgreSQL must use
// their own PgCluster, never the shared one.
//
// All functions are blocking and meant for test threads; failures throw
// std::runtime_error with the reason (and the server log's tail), which
// gtest reports as a test failure.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace torii::test {

// How to reach a cluster: Unix socket folder (or host name), port, user.
struct ClusterInfo {
  std::string host;
  int port = 0;
  std::string user;
  // key=value connection string for `dbname`.
  std::string ConnInfo(const std::string& dbname) const;
};

struct PgClusterOptions {
  bool tcp = false;         // also listen on 127.0.0.1:port
  std::string dir = {};     // empty: a new temporary folder, removed at the end
  bool start = true;        // start in the constructor
  // Commits are written to the OS before they are acknowledged
  // (synchronous_commit on), so an immediate shutdown loses no
  // acknowledged write. fsync stays off: the OS itself does not crash here.
  bool durable_commits = false;
  // Extra server settings (-c name=value), e.g. {"ssl", "on"}.
  std::vector<std::pair<std::string, std::string>> settings = {};
  // When set, pg_hba.conf gets this text after initdb (e.g. hostssl only).
  std::string hba = {};
};

class PgCluster {
 public:
  explicit PgCluster(PgClusterOptions options = {});
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  void Start();
  // Fast (SIGINT: backends get admin_shutdown) or immediate (SIGQUIT).
  void Stop(bool immediate = false);
  void Restart(bool immediate = false);
  bool running() const;

  const ClusterInfo& info() const { return info_; }
  std::string ConnInfo(const std::string& dbname) const { return info_.ConnInfo(dbname); }
  // key=value for 127.0.0.1 over TCP; only with options.tcp.
  std::string TcpConnInfo(const std::string& dbname) const;
  // Creates a new uniquely named database; returns its conninfo.
  std::string CreateDatabase();
  const std::string& dir() const { return dir_; }
  std::string LogPath() const;

 private:
  struct Impl;
  Impl* impl_;
  PgClusterOptions opt_;
  std::string dir_;
  bool own_dir_ = false;
  ClusterInfo info_;
};

// A new folder under $TMPDIR (or /tmp when that is long: Unix socket paths
// are short), readable and searchable by everyone so that the postgres
// account can reach what is inside.
std::string MakeTempDir(const std::string& prefix);
// Removes a folder tree; errors ignored.
void RemoveTree(const std::string& path);
// The last `max_lines` lines of `text`, each on a new line after "  | ":
// a log quoted in a failure message.
std::string LastLines(const std::string& text, size_t max_lines);
// The same of a file's text (nothing when it cannot be read).
std::string FileTail(const std::string& path, size_t max_lines);
// A TCP port on 127.0.0.1 that was free a moment ago, drawn below the
// kernel's ephemeral range so that no client's connect() can take it.
int FreePort();

// The dbname of a key=value conninfo (as CreateDatabase() returns).
std::string DbNameOf(const std::string& conninfo);
// key=value for `dbname` on 127.0.0.1:`port` as the cluster's user: the
// cluster's own TCP port, or that of a proxy in front of it.
std::string TcpConnInfoVia(const PgCluster& cluster, int port, const std::string& dbname);

const ClusterInfo& SharedCluster();
// A new database on `cluster` (default: the shared one); returns its conninfo.
std::string FreshDatabase();
std::string CreateDatabaseOn(const ClusterInfo& cluster);

}  // namespace torii::test
