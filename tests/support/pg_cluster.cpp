// PgCluster, the shared cluster, fresh databases.
#include "pg_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "torii/embedded_pg.h"
#include "torii/pg.h"

namespace fs = std::filesystem;

namespace torii::test {

std::string ClusterInfo::ConnInfo(const std::string& dbname) const {
  return "host=" + host + " port=" + std::to_string(port) + " user=" + user + " dbname=" + dbname;
}

std::string MakeTempDir(const std::string& prefix) {
  std::string base = "/tmp";
  // Unix socket paths are limited to ~107 bytes; a long TMPDIR would not fit.
  if (const char* t = std::getenv("TMPDIR"); t && *t && std::strlen(t) < 40) base = t;
  std::string templ = base + "/" + prefix + "-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp " + templ + " failed");
  // mkdtemp gives 0700; the postgres account must be able to enter it.
  chmod(templ.c_str(), 0755);
  return templ;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  if (!path.empty()) fs::remove_all(path, ec);
}

namespace {

// True when 127.0.0.1:port can be bound now.
bool CanBind(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// The first port the kernel hands out to connect() and bind(0).
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0, high = 0;
  if (in >> low >> high && low > 11000) return low;
  return 32768;
}

}  // namespace

std::string LastLines(const std::string& text, size_t max_lines) {
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  std::string out;
  for (size_t i = lines.size() > max_lines ? lines.size() - max_lines : 0; i < lines.size(); i++) {
    out += "\n  | ";
    out += lines[i];
  }
  return out;
}

std::string FileTail(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return LastLines(text.str(), max_lines);
}

int FreePort() {
  // Below the ephemeral range: a port from bind(0) can be taken, between
  // this check and the test's own bind, by any client's connect() on the
  // machine (the suite runs many); a port below the range only by another
  // test that drew the same number.
  static std::mutex mu;
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  const int low = 10000, high = EphemeralLow() - 1;
  std::lock_guard<std::mutex> lock(mu);
  std::uniform_int_distribution<int> pick(low, high);
  for (int attempt = 0; attempt < 200; attempt++) {
    int port = pick(rng);
    if (CanBind(port)) return port;
  }
  throw std::runtime_error("cannot find a free port");
}

struct PgCluster::Impl {
  std::unique_ptr<EmbeddedPostgres> pg;
};

PgCluster::PgCluster(PgClusterOptions options) : impl_(new Impl), opt_(std::move(options)) {
  if (opt_.dir.empty()) {
    dir_ = MakeTempDir("torii-pg");
    own_dir_ = true;
  } else {
    dir_ = opt_.dir;
    fs::create_directories(dir_);
  }
  EmbeddedPgOptions eo;
  eo.data_dir = dir_ + "/data";
  eo.socket_dir = dir_ + "/data";
  eo.port = FreePort();
  eo.listen_addresses = opt_.tcp ? "127.0.0.1" : "";
  eo.fast_initdb = true;
  eo.superuser = "torii";
  eo.settings = {{"fsync", "off"},
                 {"synchronous_commit", opt_.durable_commits ? "on" : "off"},
                 {"full_page_writes", "off"},
                 {"max_connections", "300"},
                 // Tests start and drop many databases and connections; keep
                 // the log to what helps when a test fails.
                 {"log_min_messages", "warning"}};
  eo.settings.insert(eo.settings.end(), opt_.settings.begin(), opt_.settings.end());
  info_ = {eo.socket_dir, eo.port, eo.superuser};
  impl_->pg = std::make_unique<EmbeddedPostgres>(std::move(eo));
  if (opt_.start) {
    try {
      Start();
    } catch (...) {
      impl_->pg.reset();
      if (own_dir_) RemoveTree(dir_);
      delete impl_;
      throw;
    }
  }
}

PgCluster::~PgCluster() {
  if (impl_->pg) (void)impl_->pg->Stop(/*immediate=*/true, 10000);
  impl_->pg.reset();
  if (own_dir_) RemoveTree(dir_);
  delete impl_;
}

void PgCluster::Start() {
  if (auto st = impl_->pg->Init(); !st.ok()) throw std::runtime_error("initdb: " + st.error().message());
  if (!opt_.hba.empty()) {
    // Truncating keeps the file's owner (the server's account).
    std::ofstream hba(dir_ + "/data/pg_hba.conf", std::ios::trunc);
    hba << opt_.hba;
    if (!hba) throw std::runtime_error("cannot write pg_hba.conf in " + dir_);
  }
  if (auto st = impl_->pg->Start(60000); !st.ok()) throw std::runtime_error("postgres start: " + st.error().message());
}

void PgCluster::Stop(bool immediate) { (void)impl_->pg->Stop(immediate); }

void PgCluster::Restart(bool immediate) {
  Stop(immediate);
  Start();
}

bool PgCluster::running() const { return impl_->pg->running(); }

std::string PgCluster::TcpConnInfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(info_.port) + " user=" + info_.user + " dbname=" + dbname;
}

std::string PgCluster::CreateDatabase() { return CreateDatabaseOn(info_); }

std::string DbNameOf(const std::string& conninfo) {
  size_t at = conninfo.find("dbname=");
  if (at == std::string::npos) return "";
  std::string rest = conninfo.substr(at + 7);
  return rest.substr(0, rest.find(' '));
}

std::string TcpConnInfoVia(const PgCluster& cluster, int port, const std::string& dbname) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + cluster.info().user + " dbname=" + dbname;
}

std::string PgCluster::LogPath() const { return impl_->pg->LogPath(); }

std::string CreateDatabaseOn(const ClusterInfo& cluster) {
  static std::atomic<int> counter{0};
  static const uint32_t salt = std::random_device{}();
  std::string name = "t_" + std::to_string(getpid()) + "_" + std::to_string(salt % 100000) + "_" +
                     std::to_string(counter++);
  auto conn = ConnectBlocking(cluster.ConnInfo("postgres"));
  if (!conn.ok()) throw std::runtime_error("cannot reach the test cluster: " + conn.error().message());
  // template0: nobody else is ever connected to it, so concurrent CREATE
  // DATABASE calls from parallel tests do not trip over each other.
  auto made = ExecBlocking(conn->get(), "CREATE DATABASE " + name + " TEMPLATE template0");
  if (!made.ok()) throw std::runtime_error("CREATE DATABASE " + name + ": " + made.error().message());
  return cluster.ConnInfo(name);
}

const ClusterInfo& SharedCluster() {
  static std::once_flag once;
  static ClusterInfo info;
  static std::unique_ptr<PgCluster> own;
  std::call_once(once, [] {
    const char* host = std::getenv("TORII_TEST_PGHOST");
    const char* port = std::getenv("TORII_TEST_PGPORT");
    if (host && *host && port && *port) {
      const char* user = std::getenv("TORII_TEST_PGUSER");
      info = {host, std::atoi(port), user && *user ? user : "torii"};
      return;
    }
    // Held until exit; its destructor then stops it and removes its folder.
    own = std::make_unique<PgCluster>();
    info = own->info();
  });
  return info;
}

std::string FreshDatabase() { return CreateDatabaseOn(SharedCluster()); }

}  // namespace torii::test
