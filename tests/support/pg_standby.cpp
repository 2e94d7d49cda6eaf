// PgStandby, running PostgreSQL's tools as the server's account.
#include "pg_standby.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>

#include "eventually.h"
#include "torii/embedded_pg.h"
#include "torii/pg.h"

namespace torii::test {

namespace {

// One row, one column of `sql` on `conninfo`.
std::string QueryValue(const std::string& conninfo, const std::string& sql) {
  auto c = ConnectBlocking(conninfo);
  if (!c.ok()) throw std::runtime_error("connect " + conninfo + ": " + c.error().message());
  auto r = ExecBlocking(c->get(), sql);
  if (!r.ok()) throw std::runtime_error(sql + ": " + r.error().message());
  if (PQntuples(r->get()) < 1) return "";
  return PQgetvalue(r->get(), 0, 0);
}

}  // namespace

std::string PgBinDir() {
  auto d = EmbeddedPostgres::FindBinDir();
  if (!d.ok()) throw std::runtime_error(d.error().message());
  return *d;
}

int RunAsServerAccount(const std::vector<std::string>& argv, const std::string& log) {
  uid_t uid = 0;
  gid_t gid = 0;
  bool switch_user = geteuid() == 0;
  if (switch_user) {
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) return -1;
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    ::close(out);
    return -1;
  }
  if (pid == 0) {
    dup2(out, 1);
    dup2(out, 2);
    if (switch_user && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv(args[0], args.data());
    _exit(127);
  }
  ::close(out);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct PgStandby::Impl {
  std::unique_ptr<EmbeddedPostgres> pg;
};

PgStandby::PgStandby(const PgCluster& primary, std::string application_name) : impl_(new Impl) {
  dir_ = MakeTempDir("torii-sb");
  try {
    if (geteuid() == 0) {
      struct passwd* pw = getpwnam("postgres");
      if (pw == nullptr || chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("cannot give " + dir_ + " to the postgres account");
      }
    }
    const ClusterInfo& p = primary.info();
    std::string log = dir_ + "/basebackup.log";
    int rc = RunAsServerAccount({PgBinDir() + "/pg_basebackup", "-D", dir_ + "/data", "-R", "-X", "stream", "-c",
                                 "fast", "--no-sync", "-d",
                                 "host=" + p.host + " port=" + std::to_string(p.port) + " user=" + p.user},
                                log);
    if (rc != 0) throw std::runtime_error("pg_basebackup failed (" + std::to_string(rc) + "):" + FileTail(log, 20));
    EmbeddedPgOptions eo;
    eo.data_dir = dir_ + "/data";
    eo.socket_dir = dir_ + "/data";
    eo.port = FreePort();
    eo.superuser = p.user;
    // The primary's test settings, minus any synchronous_standby_names: once
    // promoted, this server has no standby to wait for.
    eo.settings = {{"fsync", "off"},
                   {"synchronous_commit", "on"},
                   {"full_page_writes", "off"},
                   {"max_connections", "300"},
                   {"log_min_messages", "warning"},
                   {"cluster_name", application_name}};
    info_ = {eo.socket_dir, eo.port, eo.superuser};
    impl_->pg = std::make_unique<EmbeddedPostgres>(std::move(eo));
    if (auto st = impl_->pg->Start(60000); !st.ok()) throw std::runtime_error("standby start: " + st.error().message());
  } catch (...) {
    impl_->pg.reset();
    RemoveTree(dir_);
    delete impl_;
    throw;
  }
}

PgStandby::~PgStandby() {
  if (impl_->pg) (void)impl_->pg->Stop(/*immediate=*/true, 10000);
  impl_->pg.reset();
  RemoveTree(dir_);
  delete impl_;
}

void PgStandby::Promote() {
  std::string log = dir_ + "/promote.log";
  int rc = RunAsServerAccount({PgBinDir() + "/pg_ctl", "promote", "-w", "-t", "30", "-D", dir_ + "/data"}, log);
  if (rc != 0) throw std::runtime_error("pg_ctl promote failed (" + std::to_string(rc) + "):" + FileTail(log, 20));
}

void PgStandby::Stop(bool immediate) { (void)impl_->pg->Stop(immediate); }

std::string PgStandby::LogPath() const { return impl_->pg->LogPath(); }

void MakeReplicationSynchronous(const PgCluster& primary, int timeout_ms) {
  std::string ci = primary.ConnInfo("postgres");
  QueryValue(ci, "ALTER SYSTEM SET synchronous_standby_names = '*'");
  QueryValue(ci, "ALTER SYSTEM SET synchronous_commit = 'on'");
  QueryValue(ci, "SELECT pg_reload_conf()");
  if (!Eventually(
          [&] {
            return QueryValue(ci, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != "0" &&
                   QueryValue(ci, "SHOW synchronous_standby_names") == "*";
          },
          timeout_ms)) {
    throw std::runtime_error("no standby became synchronous within " + std::to_string(timeout_ms) + " ms");
  }
}

void WaitForStandbyCaughtUp(const PgCluster& primary, int timeout_ms) {
  std::string ci = primary.ConnInfo("postgres");
  std::string target = QueryValue(ci, "SELECT pg_current_wal_lsn()");
  if (!Eventually(
          [&] {
            return QueryValue(ci, "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn >= '" + target +
                                      "'::pg_lsn") != "0";
          },
          timeout_ms)) {
    throw std::runtime_error("the standby did not replay up to " + target + " within " + std::to_string(timeout_ms) +
                             " ms");
  }
}

}  // namespace torii::test
