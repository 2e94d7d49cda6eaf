// A streaming standby of a PgCluster, for failover tests.
//
// PgStandby copies a running primary with pg_basebackup -R (as the
// `postgres` account when the test runs as root) into its own temporary
// folder, then starts it on its own port and Unix socket with the same
// test settings: a hot standby that streams from the primary and answers
// read-only queries. Promote() runs `pg_ctl promote` (which waits until the
// server accepts writes). The destructor stops it and removes the folder.
//
// Blocking, for test threads; failures throw std::runtime_error with the
// reason and the log's tail.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pg_cluster.h"

namespace torii::test {

class PgStandby {
 public:
  // `application_name` is the standby's name in pg_stat_replication (and
  // what synchronous_standby_names may name).
  explicit PgStandby(const PgCluster& primary, std::string application_name = "standby1");
  ~PgStandby();
  PgStandby(const PgStandby&) = delete;
  PgStandby& operator=(const PgStandby&) = delete;

  void Promote();
  void Stop(bool immediate = true);
  const ClusterInfo& info() const { return info_; }
  std::string ConnInfo(const std::string& dbname) const { return info_.ConnInfo(dbname); }
  std::string LogPath() const;

 private:
  struct Impl;
  Impl* impl_;
  std::string dir_;
  ClusterInfo info_;
};

// Runs argv (argv[0] a full path) to completion as the account PostgreSQL
// runs as (`postgres` when root, else this user), output appended to `log`.
// Returns the exit status (-1 when it could not run).
int RunAsServerAccount(const std::vector<std::string>& argv, const std::string& log);

// The folder with PostgreSQL's programs (pg_basebackup, pg_ctl, ...).
std::string PgBinDir();

// Makes `primary` wait for a standby before it acknowledges a commit
// (synchronous_standby_names = '*', synchronous_commit = on, via ALTER
// SYSTEM and a reload), then polls pg_stat_replication until one standby
// is in sync state; throws after `timeout_ms`.
void MakeReplicationSynchronous(const PgCluster& primary, int timeout_ms = 15000);
// Polls the primary until every standby has replayed everything written so
// far (replay_lsn >= pg_current_wal_lsn() at the call); throws on deadline.
void WaitForStandbyCaughtUp(const PgCluster& primary, int timeout_ms = 15000);

}  // namespace torii::test
