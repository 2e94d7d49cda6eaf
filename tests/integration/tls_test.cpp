// TLS between toriid and PostgreSQL (issue 10): a private cluster with a
// self-signed certificate made by the test (openssl), TCP on, and pg_hba
// admitting TCP clients only over TLS (hostssl). database.ssl_mode
// "require" and "verify-full" (with the certificate as the root) work and
// pg_stat_ssl shows every connection of the daemon encrypted; "disable"
// is refused at start with the server's reason in the log.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "daemon_process.h"
#include "eventually.h"
#include "pg_cluster.h"
#include "torii/pg.h"
#include "wire.h"

namespace torii::test {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("torii-tls");
    crt_ = dir_ + "/server.crt";
    key_ = dir_ + "/server.key";
    // CN and subjectAltName name 127.0.0.1, so verify-full can pass too.
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                      "-addext subjectAltName=IP:127.0.0.1 -keyout " + key_ + " -out " + crt_ +
                      " >" + dir_ + "/openssl.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed; see " << dir_ << "/openssl.log";
    // PostgreSQL reads the key as its own account and insists on 0600.
    if (geteuid() == 0) {
      if (passwd* pw = getpwnam("postgres")) {
        ASSERT_EQ(chown(key_.c_str(), pw->pw_uid, pw->pw_gid), 0);
      }
    }
    ASSERT_EQ(chmod(key_.c_str(), 0600), 0);

    PgClusterOptions o;
    o.tcp = true;
    o.settings = {{"ssl", "on"}, {"ssl_cert_file", crt_}, {"ssl_key_file", key_}};
    // The test itself comes in over the Unix socket; TCP only with TLS.
    o.hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
    cluster_ = std::make_unique<PgCluster>(o);
    std::string ci = cluster_->CreateDatabase();
    dbname_ = DbNameOf(ci);
  }

  void TearDown() override {
    daemon_.reset();
    cluster_.reset();
    RemoveTree(dir_);
  }

  DaemonOptions Options(const std::string& ssl_mode, const std::string& extra_conninfo = "") {
    DaemonOptions o;
    o.database_url = cluster_->TcpConnInfo(dbname_) + extra_conninfo;
    o.settings["database.ssl_mode"] = TomlString(ssl_mode);
    o.settings["database.min_connections"] = "2";
    o.settings["cleanup.interval_s"] = "0";
    return o;
  }

  // (encrypted, plain) counts of the daemon's connections to our database.
  std::pair<int, int> DaemonConnections() {
    auto c = ConnectBlocking(cluster_->ConnInfo("postgres"));
    EXPECT_TRUE(c.ok()) << c.error().message();
    auto r = ExecBlocking(c->get(),
                          "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) "
                          "FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                          "WHERE a.datname = '" + dbname_ + "' AND a.application_name LIKE 'toriid%'");
    EXPECT_TRUE(r.ok()) << r.error().message();
    return {std::atoi(PQgetvalue(r->get(), 0, 0)), std::atoi(PQgetvalue(r->get(), 0, 1))};
  }

  void ExpectServedOverTls() {
    WireClient client(daemon_->request_endpoint());
    Reply r = client.Call("create_user", V::Map({{"email", "tls@example.com"}}), 10000);
    ASSERT_TRUE(r.ok()) << r.ToString();
    // The pool (min 2) and the listener (and the janitor, if connected):
    // all over TLS, none without. Polled: the pool may still be opening
    // its second connection.
    std::pair<int, int> n;
    Eventually([&] {
      n = DaemonConnections();
      return n.first >= 3;
    });
    EXPECT_GE(n.first, 3) << "encrypted connections of toriid";
    EXPECT_EQ(n.second, 0) << "unencrypted connections of toriid";
  }

  std::string dir_, crt_, key_, dbname_;
  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(TlsTest, RequireWorksOverTcpWithTls) {
  daemon_ = std::make_unique<DaemonProcess>(Options("require"));
  ExpectServedOverTls();
}

TEST_F(TlsTest, VerifyFullWithTheCertificateAsRoot) {
  daemon_ = std::make_unique<DaemonProcess>(Options("verify-full", " sslrootcert=" + crt_));
  ExpectServedOverTls();
}

TEST_F(TlsTest, VerifyFullRefusesAnUnknownCertificate) {
  // Another self-signed certificate as the root: the server's is not trusted.
  std::string other = dir_ + "/other";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout " + other +
                    ".key -out " + other + ".crt >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  DaemonOptions o = Options("verify-full", " sslrootcert=" + other + ".crt");
  o.wait_ready = false;
  daemon_ = std::make_unique<DaemonProcess>(o);
  EXPECT_EQ(daemon_->Wait(30000), 1) << daemon_->LogTail();
  EXPECT_NE(daemon_->log().find("certificate verify failed"), std::string::npos) << daemon_->LogTail();
}

TEST_F(TlsTest, DisableAgainstHostsslOnlyFailsClearly) {
  DaemonOptions o = Options("disable");
  o.wait_ready = false;
  daemon_ = std::make_unique<DaemonProcess>(o);
  EXPECT_EQ(daemon_->Wait(30000), 1) << daemon_->LogTail();
  std::string log = daemon_->log();
  EXPECT_NE(log.find("cannot connect to the database"), std::string::npos) << daemon_->LogTail();
  EXPECT_NE(log.find("no encryption"), std::string::npos) << daemon_->LogTail();
}

}  // namespace
}  // namespace torii::test
