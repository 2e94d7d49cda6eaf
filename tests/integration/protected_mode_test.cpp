// Protected mode through the real toriid (issue 32, lib/torii/protected_mode.h):
// a requests or events endpoint that other hosts can reach, with CURVE off,
// stops the start (exit status 2, one line naming the endpoint, the risk and
// the ways out), fails --check-config the same way, and is refused on
// reload with the running config kept. Loopback, ipc:// and CURVE start;
// security.allow_plaintext_network starts with a WARN line at start and at
// each reload, the toriid_plaintext_network gauge and stats' key.
//
// The unsafe forms: 0.0.0.0, `*`, [::], a non-loopback address of this host,
// its interface name, and a host name resolving to that address. The name
// comes from a private /etc/hosts in a user and mount namespace (unshare)
// when the machine allows one, else from the host's own name when that
// resolves beyond loopback; with neither, the name's case is skipped and
// says why.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.h"
#include "pg_cluster.h"
#include "torii/client.h"
#include "torii/curve.h"
#include "torii/protected_mode.h"
#include "wire.h"

namespace torii::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) n++;
  return n;
}

struct RunResult {
  int status = -1;  // exit code; -1 on deadline or a signal
  std::string output;  // stdout and stderr
};

// Runs `argv` (searched in PATH) with both outputs in one file.
RunResult RunCommand(const std::vector<std::string>& argv, int timeout_ms = 30000) {
  std::string dir = MakeTempDir("protected-run");
  std::string out_path = dir + "/out";
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<const char*> args;
  for (const auto& a : argv) args.push_back(a.c_str());
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out, 1);
    dup2(out, 2);
    execvp(args[0], const_cast<char* const*>(args.data()));
    _exit(127);
  }
  ::close(out);
  RunResult r;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.output = ReadFile(out_path);
  RemoveTree(dir);
  return r;
}

// This host's first interface that is up with a non-loopback IPv4 address.
struct HostAddress {
  std::string interface, address;
};
HostAddress NetworkAddress() {
  ifaddrs* list = nullptr;
  HostAddress found;
  if (getifaddrs(&list) != 0) return found;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_UP) == 0) continue;
    const in_addr& a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr;
    if ((ntohl(a.s_addr) >> 24) == 127) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, buf, sizeof(buf));
    found = {i->ifa_name, buf};
    break;
  }
  freeifaddrs(list);
  return found;
}

// A host name that resolves to `address` for toriid, and the command line
// toriid must run under for that (empty: none needed); name empty with
// `why_not` when there is none.
struct ExposedName {
  std::string name;
  std::vector<std::string> wrapper;
  std::string why_not;
  std::string dir;  // holds the private hosts file
};

ExposedName FindExposedName(const std::string& address) {
  ExposedName n;
  if (address.empty()) {
    n.why_not = "this host has no non-loopback IPv4 address";
    return n;
  }
  // A private /etc/hosts: user and mount namespace, bind mount, then exec,
  // so toriid keeps the pid the test signals.
  n.dir = MakeTempDir("protected-hosts");
  std::string hosts = n.dir + "/hosts";
  WriteFile(hosts, ReadFile("/etc/hosts") + "\n" + address + " toriid-exposed-name\n");
  // As root a mount namespace alone (a user namespace would take away the
  // right to reach a PostgreSQL socket of another account); unshare makes
  // its mounts private, so the host's /etc/hosts stays as it is.
  std::vector<std::string> wrapper = {"unshare", geteuid() == 0 ? "-m" : "-rm", "sh", "-c",
                                      "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts};
  std::vector<std::string> probe = wrapper;
  for (const char* a : {"getent", "hosts", "toriid-exposed-name"}) probe.push_back(a);
  RunResult r = RunCommand(probe);
  if (r.status == 0 && r.output.find(address) != std::string::npos) {
    n.name = "toriid-exposed-name";
    n.wrapper = wrapper;
    return n;
  }
  // Else this host's own name, when it resolves to its network address.
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (host[0] != '\0' && getaddrinfo(host, nullptr, &hints, &res) == 0) {
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
      if (address == buf) n.name = host;
    }
    freeaddrinfo(res);
  }
  if (n.name.empty()) {
    n.why_not = "no mount namespace for a private /etc/hosts (" + wrapper[0] + " " + wrapper[1] + ": " + LastLines(r.output, 3) +
                ") and the host name '" + std::string(host) + "' does not resolve to " + address;
  }
  return n;
}

// One unsafe bind host, and how toriid must run to see it so.
struct Form {
  std::string host;  // what goes between tcp:// and :PORT
  std::string where;  // how the refusal says where it reaches
  std::vector<std::string> wrapper;
};

class ProtectedModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("protected");
    net_ = NetworkAddress();
    name_ = FindExposedName(net_.address);
    forms_ = {{"0.0.0.0", "every interface", {}}, {"*", "every interface", {}}, {"[::]", "every interface", {}}};
    if (!net_.address.empty()) {
      forms_.push_back({net_.address, "address " + net_.address, {}});
      forms_.push_back({net_.interface, "interface " + net_.interface + " with address " + net_.address, {}});
    }
    if (!name_.name.empty()) {
      forms_.push_back({name_.name, "name " + name_.name + " resolves to " + net_.address, name_.wrapper});
    }
  }

  void TearDown() override {
    RemoveTree(dir_);
    if (!name_.dir.empty()) RemoveTree(name_.dir);
  }

  // Says which forms this machine cannot show (the test still checks the rest).
  void NoteMissingForms() {
    if (net_.address.empty()) std::cout << "[  NOTE    ] no non-loopback IPv4 address: address and interface forms not run\n";
    if (name_.name.empty()) std::cout << "[  NOTE    ] host name form not run: " << name_.why_not << "\n";
  }

  std::string WriteConfig(const std::string& name, const std::string& requests, const std::string& events,
                          const std::string& extra = "") {
    std::string path = dir_ + "/" + name + ".toml";
    WriteFile(path, "[server]\nrequests = [" + TomlString(requests) + "]\nevents = [" + TomlString(events) +
                        "]\n[database]\nurl = \"host=/nonexistent-torii port=1 dbname=x\"\nconnect_timeout_ms = 500\n" +
                        extra);
    return path;
  }

  RunResult Toriid(const std::vector<std::string>& wrapper, std::vector<std::string> args) {
    std::vector<std::string> argv = wrapper;
    argv.push_back(TORIID_BINARY);
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  std::string dir_;
  HostAddress net_;
  ExposedName name_;
  std::vector<Form> forms_;
};

void ExpectRefusal(const std::string& output, const std::string& prefix, const std::string& key,
                   const std::string& endpoint, const std::string& where) {
  EXPECT_NE(output.find(prefix + "protected mode: " + key + " " + endpoint + " (" + where + ")"), std::string::npos)
      << output;
  for (const char* part : {"reachable from other hosts and CURVE is off", "security.curve_secret_key_file",
                           "docs/security.md", "allow_plaintext_network = true"}) {
    EXPECT_NE(output.find(part), std::string::npos) << part << " not in:\n" << output;
  }
}

TEST_F(ProtectedModeTest, EachUnsafeFormIsRefusedAtStartAndByCheckConfig) {
  NoteMissingForms();
  int port = FreePort();
  for (const Form& f : forms_) {
    std::string unsafe = "tcp://" + f.host + ":" + std::to_string(port);
    std::string local = "tcp://127.0.0.1:" + std::to_string(port + 1);
    for (bool on_events : {false, true}) {
      SCOPED_TRACE(unsafe + (on_events ? " as events" : " as requests"));
      std::string conf = on_events ? WriteConfig("events", local, unsafe) : WriteConfig("requests", unsafe, local);
      std::string key = on_events ? "server.events" : "server.requests";

      RunResult start = Toriid(f.wrapper, {"--config", conf});
      EXPECT_EQ(start.status, 2) << start.output;
      ExpectRefusal(start.output, "toriid: refusing to start: ", key, unsafe, f.where);
      EXPECT_NE(start.output.find(on_events ? "event stream" : "password hash"), std::string::npos) << start.output;
      // Refused before anything else: no database was tried.
      EXPECT_EQ(start.output.find("database"), std::string::npos) << start.output;

      RunResult check = Toriid(f.wrapper, {"--check-config", "--config", conf});
      EXPECT_EQ(check.status, 2) << check.output;
      ExpectRefusal(check.output, "toriid: config error: ", key, unsafe, f.where);
    }
  }
}

TEST_F(ProtectedModeTest, ReloadIntoEachUnsafeFormIsRefusedAndKeepsTheRunningConfig) {
  NoteMissingForms();
  DaemonOptions o;
  o.wrapper = name_.wrapper;  // so that the name resolves for the daemon too
  DaemonProcess d(o);
  const std::string original = ReadFile(d.config_path());
  const std::string requests = d.request_endpoint(), events = d.event_endpoint();
  const std::string port = requests.substr(requests.rfind(':') + 1);
  ASSERT_NE(original.find(requests), std::string::npos) << original;

  struct Case {
    std::string key, unsafe, where;
  };
  std::vector<Case> cases;
  for (const Form& f : forms_) cases.push_back({"server.requests", "tcp://" + f.host + ":" + port, f.where});
  cases.push_back({"server.events", "tcp://0.0.0.0:" + events.substr(events.rfind(':') + 1), "every interface"});
  for (const auto& [key, unsafe, where] : cases) {
    SCOPED_TRACE(key + " " + unsafe);
    std::string text = original;
    const std::string& replaced = key == "server.events" ? events : requests;
    text.replace(text.find(replaced), replaced.size(), unsafe);
    // A reloadable change beside it, which must not be applied either.
    text += "\n[cleanup]\nbatch_size = 77\n";
    WriteFile(d.config_path(), text);
    d.Signal(SIGHUP);
    std::string want =
        "reload refused, keeping the running config: protected mode: " + key + " " + unsafe + " (" + where + ")";
    ASSERT_TRUE(d.WaitForLog(want, 10000)) << d.LogTail();
    EXPECT_NE(d.log().find("allow_plaintext_network = true"), std::string::npos);
    EXPECT_EQ(d.log().find("cleanup.batch_size changed"), std::string::npos) << d.LogTail();
    WireClient c(requests);
    EXPECT_TRUE(c.Call("ping").ok()) << d.LogTail();
  }
  EXPECT_EQ(Count(d.log(), "daemon: reloaded"), 0u) << d.LogTail();

  // The same reloadable change in a safe file is applied.
  WriteFile(d.config_path(), original + "\n[cleanup]\nbatch_size = 77\n");
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("cleanup.batch_size changed", 10000)) << d.LogTail();
  EXPECT_EQ(d.log().find("allow_plaintext_network is on"), std::string::npos) << d.LogTail();
}

// The raw /metrics text from the daemon's exposer.
std::string FetchMetrics(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
    std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) body.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return body;
}

bool HasLine(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l == line) return true;
  }
  return false;
}

TEST_F(ProtectedModeTest, LoopbackIpcAndInterfaceLoStartWithoutWarning) {
  for (const char* host : {"127.0.0.1", "lo", "ipc"}) {
    SCOPED_TRACE(host);
    int metrics = FreePort();
    DaemonOptions o;
    if (std::string(host) == "ipc") {
      o.ipc = true;
    } else {
      o.bind_host = host;
    }
    o.settings["metrics.listen"] = TomlString("127.0.0.1:" + std::to_string(metrics));
    DaemonProcess d(o);  // throws with the log when it does not answer
    WireClient c(d.request_endpoint());
    Reply stats = c.Call("stats");
    ASSERT_TRUE(stats.ok()) << stats.ToString();
    EXPECT_TRUE(stats.result()["plaintext_network"].exists()) << stats.ToString();
    EXPECT_FALSE(stats.result()["plaintext_network"].boolean());
    std::string scraped = FetchMetrics(metrics);
    EXPECT_TRUE(HasLine(scraped, "toriid_plaintext_network 0")) << scraped;
    EXPECT_EQ(d.log().find("WARN"), std::string::npos) << d.LogTail();
  }
}

TEST_F(ProtectedModeTest, Ipv6LoopbackStarts) {
  if (ReachOf("tcp://lo:1").beyond_host) GTEST_SKIP() << "interface lo has a non-loopback address";
  int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  bool has_v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  if (probe >= 0) ::close(probe);
  if (!has_v6) GTEST_SKIP() << "no ::1 on this host";
  DaemonOptions o;
  o.bind_host = "[::1]";
  o.wait_ready = false;  // the harness's ping speaks IPv4
  DaemonProcess d(o);
  ASSERT_TRUE(d.WaitForLog("daemon: ready", 30000)) << d.LogTail();
  EXPECT_NE(d.log().find("listening on tcp://[::1]:"), std::string::npos) << d.LogTail();
  EXPECT_TRUE(d.running());
}

TEST_F(ProtectedModeTest, CurveOnStartsOnEveryInterface) {
  auto server = GenerateCurveKeyPair();
  auto client = GenerateCurveKeyPair();
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE(WriteCurveKeyPair(dir_ + "/server", *server).ok());
  fs::create_directories(dir_ + "/authorized");
  WriteFile(dir_ + "/authorized/app.pub", client->public_key + "\n");
  DaemonOptions o;
  o.bind_host = "0.0.0.0";
  o.settings["security.curve_secret_key_file"] = TomlString(dir_ + "/server.key");
  o.settings["security.curve_authorized_keys_dir"] = TomlString(dir_ + "/authorized");
  o.wait_ready = false;  // the harness's ping has no CURVE keys
  DaemonProcess d(o);

  ClientOptions co;
  co.endpoints = {d.request_endpoint()};
  co.server_public_key = server->public_key;
  co.client_public_key = client->public_key;
  co.client_secret_key = client->secret_key;
  auto c = Client::Create(std::move(co));
  ASSERT_TRUE(c.ok()) << c.error().message();
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    CallOptions call;
    call.timeout_ms = 200;
    if (c->Call("ping", {}, call).ok()) break;
    ASSERT_TRUE(d.running()) << "toriid exited:" << d.LogTail();
    ASSERT_LT(Clock::now(), deadline) << "toriid never answered a CURVE ping:" << d.LogTail();
  }
  EXPECT_NE(d.log().find("listening on tcp://0.0.0.0:"), std::string::npos) << d.LogTail();
  EXPECT_EQ(d.log().find("protected mode"), std::string::npos) << d.LogTail();
  EXPECT_EQ(d.log().find("allow_plaintext_network is on"), std::string::npos) << d.LogTail();
}

TEST_F(ProtectedModeTest, OptInStartsWithWarningGaugeAndStatsKey) {
  int metrics = FreePort();
  DaemonOptions o;
  o.bind_host = "0.0.0.0";
  o.settings["security.allow_plaintext_network"] = "true";
  o.settings["metrics.listen"] = TomlString("127.0.0.1:" + std::to_string(metrics));
  DaemonProcess d(o);
  std::string rport = d.request_endpoint().substr(d.request_endpoint().rfind(':') + 1);
  std::string eport = d.event_endpoint().substr(d.event_endpoint().rfind(':') + 1);
  const std::string warning = "security: allow_plaintext_network is on: server.requests tcp://0.0.0.0:" +
                              rport + " (every interface) and server.events tcp://0.0.0.0:" + eport +
                              " (every interface) are served without CURVE beyond loopback";
  EXPECT_EQ(Count(d.log(), warning), 1u) << d.LogTail();
  EXPECT_NE(d.log().find("password hash"), std::string::npos) << d.LogTail();

  WireClient c(d.request_endpoint());
  Reply stats = c.Call("stats");
  ASSERT_TRUE(stats.ok()) << stats.ToString();
  EXPECT_TRUE(stats.result()["plaintext_network"].boolean()) << stats.ToString();
  std::string scraped = FetchMetrics(metrics);
  EXPECT_TRUE(HasLine(scraped, "toriid_plaintext_network 1")) << scraped;

  // Every reload says it again.
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("daemon: reloaded", 10000)) << d.LogTail();
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Count(d.log(), warning) < 2 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(Count(d.log(), warning), 2u) << d.LogTail();

  // --check-config passes the file, with the warning.
  RunResult check = RunCommand({TORIID_BINARY, "--check-config", "--config", d.config_path()});
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("toriid: warning: security: allow_plaintext_network is on"), std::string::npos)
      << check.output;

  // Turning the opt-in off while serving beyond loopback is refused.
  std::string text = ReadFile(d.config_path());
  size_t at = text.find("allow_plaintext_network = true");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 30, "allow_plaintext_network = false");
  WriteFile(d.config_path(), text);
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("reload refused, keeping the running config: protected mode: server.requests", 10000))
      << d.LogTail();
  Reply after = c.Call("stats");
  ASSERT_TRUE(after.ok()) << after.ToString();
  EXPECT_TRUE(after.result()["plaintext_network"].boolean());
}

}  // namespace
}  // namespace torii::test
