// COPY loader for the benchmark data set (see loader.h and common.h).
#include "loader.h"

#include <time.h>

#include <cstdio>

#include "common.h"
#include "torii/migrations.h"
#include "torii/pg.h"
#include "torii/values.h"

namespace torii::bench {

namespace {

// Streams COPY rows in ~1 MB chunks: one PQputCopyData per row would cost
// a call (and often a send) per row.
class CopyWriter {
 public:
  explicit CopyWriter(PGconn* c) : c_(c) { buf_.reserve(kChunk + 4096); }
  std::string& buf() { return buf_; }
  Status MaybeFlush(bool force = false) {
    if (buf_.empty() || (!force && buf_.size() < kChunk)) return Status();
    if (PQputCopyData(c_, buf_.data(), int(buf_.size())) != 1) return ErrorFromConn(c_);
    buf_.clear();
    return Status();
  }
  Status Finish() {
    if (auto st = MaybeFlush(true); !st.ok()) return st;
    if (PQputCopyEnd(c_, nullptr) != 1) return ErrorFromConn(c_);
    PgResult r(PQgetResult(c_));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return ErrorFromResult(r.get());
    while (PGresult* extra = PQgetResult(c_)) PQclear(extra);
    return Status();
  }

 private:
  static constexpr size_t kChunk = 1 << 20;
  PGconn* c_;
  std::string buf_;
};

Status Exec(PGconn* c, const std::string& sql) {
  auto r = ExecBlocking(c, sql);
  if (!r.ok()) return r.error();
  return Status();
}

Status StartCopy(PGconn* c, const std::string& sql) {
  PgResult r(PQexec(c, sql.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COPY_IN) return ErrorFromResult(r.get());
  return Status();
}

// "2024-05-01 12:00:00+00" for a Unix time in seconds.
std::string UtcText(time_t t) {
  tm tmv;
  gmtime_r(&t, &tmv);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S+00", &tmv);
  return buf;
}

void AppendHex(std::string& out, const uint8_t* p, size_t n) {
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
}

}  // namespace

Result<LoadReport> LoadData(const LoadOptions& opt) {
  if (opt.users == 0 && opt.sessions + opt.expired > 0) {
    return Error::InvalidArgument("sessions need at least one user");
  }
  int64_t t0 = MonoNs();
  auto conn = ConnectBlocking(opt.conninfo);
  if (!conn.ok()) return conn.error();
  PGconn* c = conn->get();
  if (auto mig = ApplyMigrations(c); !mig.ok()) return mig.error();

  // TRUNCATE in the same transaction as COPY lets COPY FREEZE write
  // already-frozen rows: no hint-bit rewrites or anti-wraparound vacuum
  // of the whole table later, in the middle of a measurement.
  const char* kSetup =
      "BEGIN;"
      "ALTER TABLE users DISABLE TRIGGER USER;"
      "ALTER TABLE sessions DISABLE TRIGGER USER;"
      // The tables that reference users go too (schema/0010).
      "TRUNCATE sessions, oauth_accounts, passkeys, users, audit_logs;";
  if (auto st = Exec(c, kSetup); !st.ok()) return st.error();

  if (auto st = StartCopy(c, "COPY users (id, email, password_hash) FROM STDIN WITH (FREEZE)"); !st.ok()) {
    return st.error();
  }
  {
    CopyWriter w(c);
    for (uint64_t i = 0; i < opt.users; i++) {
      auto& b = w.buf();
      b += BenchUserId(i);
      b += '\t';
      b += BenchEmail(i);
      b += "\t$bench$not-a-real-hash\n";
      if (auto st = w.MaybeFlush(); !st.ok()) return st.error();
    }
    if (auto st = w.Finish(); !st.ok()) return st.error();
  }

  if (auto st = StartCopy(c, "COPY sessions (id, user_id, token_hash, expires_at, user_agent, ip_address) "
                             "FROM STDIN WITH (FREEZE)");
      !st.ok()) {
    return st.error();
  }
  {
    time_t now = time(nullptr);
    const std::string live = UtcText(now + 30 * 86400);
    const std::string dead = UtcText(now - 86400);
    CopyWriter w(c);
    uint64_t total = opt.sessions + opt.expired;
    for (uint64_t j = 0; j < total; j++) {
      auto& b = w.buf();
      b += BenchSessionId(j);
      b += '\t';
      b += BenchUserId(j % opt.users);
      b += "\t\\\\x";  // COPY text unescapes \\ to \, giving bytea hex input \x...
      auto d = TokenDigest(BenchToken(j));
      AppendHex(b, d.data(), d.size());
      b += '\t';
      b += j < opt.sessions ? live : dead;
      b += "\tbench/1.0\t127.0.0.1\n";
      if (auto st = w.MaybeFlush(); !st.ok()) return st.error();
    }
    if (auto st = w.Finish(); !st.ok()) return st.error();
  }

  const char* kFinish =
      "ALTER TABLE users ENABLE TRIGGER USER;"
      "ALTER TABLE sessions ENABLE TRIGGER USER;"
      "COMMIT;";
  if (auto st = Exec(c, kFinish); !st.ok()) return st.error();
  // Fresh statistics, so the planner sees a million rows from the start.
  // (one statement per call: several in one string run as one transaction,
  // which VACUUM refuses)
  for (const char* sql : {"VACUUM ANALYZE users", "VACUUM ANALYZE sessions"}) {
    if (auto st = Exec(c, sql); !st.ok()) return st.error();
  }

  LoadReport rep;
  rep.users = opt.users;
  rep.sessions = opt.sessions;
  rep.expired = opt.expired;
  rep.seconds = double(MonoNs() - t0) / 1e9;
  return rep;
}

}  // namespace torii::bench
