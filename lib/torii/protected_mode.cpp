// Protected mode: endpoint reach (the way libzmq resolves a bind address)
// and the refusal and warning texts.
#include "torii/protected_mode.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace torii {

namespace {

enum class Kind { kLoopback, kAny, kOther };

Kind KindOf(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
    if (a == INADDR_ANY) return Kind::kAny;
    return (a >> 24) == 127 ? Kind::kLoopback : Kind::kOther;
  }
  if (sa->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (IN6_IS_ADDR_UNSPECIFIED(&a)) return Kind::kAny;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return Kind::kLoopback;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      if (a.s6_addr[12] == 0 && a.s6_addr[13] == 0 && a.s6_addr[14] == 0 && a.s6_addr[15] == 0) return Kind::kAny;
      return a.s6_addr[12] == 127 ? Kind::kLoopback : Kind::kOther;
    }
    return Kind::kOther;
  }
  return Kind::kOther;
}

std::string AddressText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

struct AddrInfoFree {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
struct IfAddrsFree {
  void operator()(ifaddrs* ifa) const { freeifaddrs(ifa); }
};

// The addresses `host` stands for; `numeric` only as a literal (libzmq's
// own parse of a bind address, which also takes "0" and "127.1").
std::vector<const sockaddr*> Resolve(const std::string& host, bool numeric,
                                     std::unique_ptr<addrinfo, AddrInfoFree>& holder) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = numeric ? AI_NUMERICHOST : 0;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return {};
  holder.reset(res);
  std::vector<const sockaddr*> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) out.push_back(ai->ai_addr);
  return out;
}

// Reach of a set of addresses; `what` prefixes the address in `where`.
EndpointReach ReachOfAddresses(const std::vector<const sockaddr*>& addrs, const std::string& what) {
  for (const sockaddr* sa : addrs) {
    Kind k = KindOf(sa);
    if (k == Kind::kAny) return {true, "every interface"};
    if (k == Kind::kOther) return {true, what + AddressText(sa)};
  }
  return {false, "loopback"};
}

}  // namespace

EndpointReach ReachOf(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return {false, "this host only"};  // ipc://, inproc://
  std::string addr = endpoint.substr(6);
  // libzmq: "source;address" names a source address (connect only); the
  // address after ';' is the one served. The port follows the last ':'.
  if (size_t semi = addr.rfind(';'); semi != std::string::npos) addr = addr.substr(semi + 1);
  size_t colon = addr.rfind(':');
  std::string host = colon == std::string::npos ? addr : addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  if (host == "*") return {true, "every interface"};
  if (host.empty()) return {true, "no host: cannot tell which interfaces it would reach"};

  std::unique_ptr<addrinfo, AddrInfoFree> held;
  if (auto addrs = Resolve(host, true, held); !addrs.empty()) return ReachOfAddresses(addrs, "address ");

  // An interface name (libzmq binds its address): its addresses now.
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    std::unique_ptr<ifaddrs, IfAddrsFree> owner(list);
    bool found = false;
    std::vector<const sockaddr*> addrs;
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_name == nullptr || host != i->ifa_name) continue;
      found = true;
      if (i->ifa_addr != nullptr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6)) {
        addrs.push_back(i->ifa_addr);
      }
    }
    if (found && addrs.empty()) return {true, "interface " + host + " has no address: cannot tell what it would reach"};
    if (found) return ReachOfAddresses(addrs, "interface " + host + " with address ");
  }

  // A host name (libzmq refuses to bind one, but the name still says where
  // it was meant to be reached from).
  if (auto addrs = Resolve(host, false, held); !addrs.empty()) {
    return ReachOfAddresses(addrs, "name " + host + " resolves to ");
  }
  return {true, "'" + host + "' is no address, interface or resolvable name: cannot tell what it would reach"};
}

std::vector<PlaintextEndpoint> PlaintextEndpoints(const Config& c) {
  std::vector<PlaintextEndpoint> plaintext;
  if (!c.security.curve_secret_key_file.empty()) return plaintext;
  auto scan = [&](const char* key, const std::vector<std::string>& endpoints) {
    for (const auto& e : endpoints) {
      EndpointReach r = ReachOf(e);
      if (r.beyond_host) plaintext.push_back({key, e, r.where});
    }
  };
  scan("server.requests", c.server.requests);
  scan("server.events", c.server.events);
  return plaintext;
}

ProtectedMode CheckProtectedMode(const Config& c) { return JudgeProtectedMode(c, PlaintextEndpoints(c)); }

ProtectedMode JudgeProtectedMode(const Config& c, std::vector<PlaintextEndpoint> plaintext) {
  ProtectedMode pm;
  pm.plaintext = std::move(plaintext);
  if (pm.plaintext.empty()) return pm;
  bool requests = false, events = false;
  for (const PlaintextEndpoint& p : pm.plaintext) {
    (p.key == "server.requests" ? requests : events) = true;
  }

  std::string named;
  for (size_t i = 0; i < pm.plaintext.size(); i++) {
    const PlaintextEndpoint& p = pm.plaintext[i];
    named += i == 0 ? "" : (i + 1 == pm.plaintext.size() ? " and " : ", ");
    named += p.key + " " + p.endpoint + " (" + p.where + ")";
  }
  std::string risk = requests && events ? "read every user with their password hash, create sessions for any user "
                                          "and read every change on the event stream"
                     : requests         ? "read every user with their password hash and create sessions for any user"
                                        : "read every change to users and sessions on the event stream";
  const char* verb = pm.plaintext.size() == 1 ? "is" : "are";
  if (c.security.allow_plaintext_network) {
    pm.warning = std::string("security: allow_plaintext_network is on: ") + named + " " + verb +
                 " served without CURVE beyond loopback; whoever reaches " + (pm.plaintext.size() == 1 ? "it" : "them") +
                 " can " + risk + ", so only the network protects this daemon";
    return pm;
  }
  pm.refusal = "protected mode: " + named + " " + verb + " reachable from other hosts and CURVE is off, so whoever " +
               "reaches " + (pm.plaintext.size() == 1 ? "it" : "them") + " could " + risk +
               ". Turn CURVE on (security.curve_secret_key_file and security.curve_authorized_keys_dir, "
               "docs/security.md), or bind to 127.0.0.1 or ipc:// if only this host connects, or, when the network "
               "is protected otherwise, set allow_plaintext_network = true in [security]";
  return pm;
}

}  // namespace torii
