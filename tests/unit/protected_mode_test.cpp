// lib/torii/protected_mode: where a bind endpoint can be reached from, and
// the refusal and warning a config gets without CURVE.
#include "torii/protected_mode.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <string>
#include <utility>

namespace torii {
namespace {

struct ReachCase {
  const char* endpoint;
  bool beyond;
  const char* where;  // a part of EndpointReach::where
};

TEST(ProtectedMode, ReachOfEachEndpointForm) {
  const ReachCase cases[] = {
      {"ipc:///run/torii/requests.sock", false, ""},
      {"ipc://@abstract", false, ""},
      {"inproc://requests", false, ""},
      {"tcp://127.0.0.1:7420", false, "loopback"},
      {"tcp://127.3.4.5:7420", false, "loopback"},
      {"tcp://127.1:7420", false, "loopback"},  // libzmq's parse reads it as 127.0.0.1
      {"tcp://[::1]:7420", false, "loopback"},
      {"tcp://::1:7420", false, "loopback"},
      {"tcp://[::ffff:127.0.0.1]:7420", false, "loopback"},
      {"tcp://lo:7420", false, "loopback"},  // Linux's loopback interface
      {"tcp://localhost:7420", false, "loopback"},
      {"tcp://*:7420", true, "every interface"},
      {"tcp://*:*", true, "every interface"},
      {"tcp://0.0.0.0:7420", true, "every interface"},
      {"tcp://0:7420", true, "every interface"},  // libzmq binds 0.0.0.0
      {"tcp://[::]:7420", true, "every interface"},
      {"tcp://:::7420", true, "every interface"},
      {"tcp://[::ffff:0.0.0.0]:7420", true, "every interface"},
      {"tcp://192.0.2.7:7420", true, "address 192.0.2.7"},
      {"tcp://[2001:db8::7]:7420", true, "address 2001:db8::7"},
      {"tcp://10.0.0.1;192.0.2.7:7420", true, "address 192.0.2.7"},
      {"tcp://no-such-host.invalid:7420", true, "cannot tell"},
      {"tcp://:7420", true, "cannot tell"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.endpoint);
    EndpointReach r = ReachOf(c.endpoint);
    EXPECT_EQ(r.beyond_host, c.beyond) << r.where;
    EXPECT_NE(r.where.find(c.where), std::string::npos) << r.where;
  }
}

// The first interface of this host that is up with a non-loopback IPv4
// address: {name, address}, or empty names when there is none.
std::pair<std::string, std::string> NetworkInterface() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {};
  std::pair<std::string, std::string> found;
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

TEST(ProtectedMode, AnInterfaceWithANetworkAddressReachesBeyond) {
  auto [name, address] = NetworkInterface();
  if (name.empty()) GTEST_SKIP() << "this host has no interface with a non-loopback IPv4 address";
  EndpointReach by_name = ReachOf("tcp://" + name + ":7420");
  EXPECT_TRUE(by_name.beyond_host);
  EXPECT_NE(by_name.where.find("interface " + name + " with address "), std::string::npos) << by_name.where;
  EndpointReach by_address = ReachOf("tcp://" + address + ":7420");
  EXPECT_TRUE(by_address.beyond_host);
  EXPECT_EQ(by_address.where, "address " + address);
}

Config WithEndpoints(std::vector<std::string> requests, std::vector<std::string> events) {
  Config c;
  c.server.requests = std::move(requests);
  c.server.events = std::move(events);
  return c;
}

TEST(ProtectedMode, DefaultsAndLocalEndpointsAreAllowedQuietly) {
  for (const Config& c : {Config{}, WithEndpoints({"ipc:///tmp/r.sock", "tcp://127.0.0.1:1"}, {"tcp://[::1]:2"})}) {
    ProtectedMode pm = CheckProtectedMode(c);
    EXPECT_TRUE(pm.plaintext.empty());
    EXPECT_EQ(pm.refusal, "");
    EXPECT_EQ(pm.warning, "");
  }
}

TEST(ProtectedMode, RefusalNamesEndpointRiskAndBothWaysOut) {
  ProtectedMode pm = CheckProtectedMode(WithEndpoints({"tcp://127.0.0.1:1", "tcp://0.0.0.0:7420"}, {"tcp://127.0.0.1:2"}));
  ASSERT_EQ(pm.plaintext.size(), 1u);
  EXPECT_EQ(pm.plaintext[0].key, "server.requests");
  EXPECT_EQ(pm.plaintext[0].endpoint, "tcp://0.0.0.0:7420");
  EXPECT_EQ(pm.warning, "");
  for (const char* part : {"protected mode: server.requests tcp://0.0.0.0:7420 (every interface) is reachable from "
                           "other hosts and CURVE is off",
                           "password hash", "create sessions for any user", "security.curve_secret_key_file",
                           "docs/security.md", "allow_plaintext_network = true"}) {
    EXPECT_NE(pm.refusal.find(part), std::string::npos) << part << "\nin: " << pm.refusal;
  }
  EXPECT_EQ(pm.refusal.find('\n'), std::string::npos);
  EXPECT_EQ(pm.refusal.find("event stream"), std::string::npos) << pm.refusal;

  // Events alone: the risk is the stream, not the users.
  ProtectedMode ev = CheckProtectedMode(WithEndpoints({"tcp://127.0.0.1:1"}, {"tcp://*:7421"}));
  EXPECT_NE(ev.refusal.find("server.events tcp://*:7421 (every interface) is reachable"), std::string::npos)
      << ev.refusal;
  EXPECT_NE(ev.refusal.find("event stream"), std::string::npos) << ev.refusal;
  EXPECT_EQ(ev.refusal.find("password hash"), std::string::npos) << ev.refusal;

  // Both: every endpoint named once.
  ProtectedMode both = CheckProtectedMode(WithEndpoints({"tcp://*:1"}, {"tcp://0.0.0.0:2", "tcp://[::]:3"}));
  EXPECT_EQ(both.plaintext.size(), 3u);
  EXPECT_NE(both.refusal.find("server.requests tcp://*:1 (every interface), server.events tcp://0.0.0.0:2 (every "
                              "interface) and server.events tcp://[::]:3 (every interface) are reachable"),
            std::string::npos)
      << both.refusal;
}

TEST(ProtectedMode, CurveOnAllowsEveryEndpoint) {
  Config c = WithEndpoints({"tcp://0.0.0.0:1"}, {"tcp://*:2"});
  c.security.curve_secret_key_file = "/etc/toriid/server.key";
  ProtectedMode pm = CheckProtectedMode(c);
  EXPECT_TRUE(pm.plaintext.empty());
  EXPECT_EQ(pm.refusal, "");
  EXPECT_EQ(pm.warning, "");
}

TEST(ProtectedMode, OptInWarnsInsteadOfRefusing) {
  Config c = WithEndpoints({"tcp://0.0.0.0:1"}, {"tcp://127.0.0.1:2"});
  c.security.allow_plaintext_network = true;
  ProtectedMode pm = CheckProtectedMode(c);
  EXPECT_EQ(pm.plaintext.size(), 1u);
  EXPECT_EQ(pm.refusal, "");
  EXPECT_NE(pm.warning.find("allow_plaintext_network is on: server.requests tcp://0.0.0.0:1 (every interface) is "
                            "served without CURVE beyond loopback"),
            std::string::npos)
      << pm.warning;
  EXPECT_NE(pm.warning.find("password hash"), std::string::npos) << pm.warning;
  // Opting in changes nothing where there is nothing to allow.
  Config local;
  local.security.allow_plaintext_network = true;
  EXPECT_EQ(CheckProtectedMode(local).warning, "");
}

}  // namespace
}  // namespace torii
