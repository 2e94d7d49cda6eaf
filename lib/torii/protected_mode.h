// Protected mode: which request and event endpoints other hosts can reach,
// and whether a config may serve them without CURVE (docs/security.md).
//
// Without CURVE, whoever reaches a `requests` endpoint reads every user with
// their password hash and creates sessions for any user, and whoever reaches
// an `events` endpoint reads every change. So a config that binds a tcp://
// endpoint beyond loopback (`*`, 0.0.0.0, ::, another address of this host,
// an interface or a name with such an address) with CURVE off is refused,
// unless `security.allow_plaintext_network` opts in. ipc:// and inproc://
// endpoints and loopback tcp:// ones are always allowed.
//
// Contract: blocking (getifaddrs, and getaddrinfo for an endpoint naming a
// host, which libzmq itself would refuse to bind), any thread, no state.
// Toriid calls it at start, from --check-config and on each reload.
#pragma once

#include <string>
#include <vector>

#include "torii/config.h"

namespace torii {

// Where clients can reach a bind endpoint from.
struct EndpointReach {
  // True when other hosts may connect, or when it cannot be told (a name
  // that neither parses, nor names an interface, nor resolves).
  bool beyond_host = false;
  // For messages: "every interface", "address 192.0.2.2", "interface eth0
  // (192.0.2.2)", "name db1 resolves to 192.0.2.2", or why it cannot be told.
  std::string where;
};
EndpointReach ReachOf(const std::string& endpoint);

// An endpoint that serves plaintext beyond this host.
struct PlaintextEndpoint {
  std::string key;  // "server.requests" or "server.events"
  std::string endpoint;
  std::string where;
};

struct ProtectedMode {
  // The endpoints of the config that other hosts can reach with CURVE off;
  // empty when CURVE is on (security.curve_secret_key_file is set).
  std::vector<PlaintextEndpoint> plaintext;
  // Set when the config must not serve: one line naming the endpoints, the
  // risk and the ways out.
  std::string refusal;
  // Set when it serves plaintext beyond loopback because
  // security.allow_plaintext_network says so: the WARN line for every
  // start and reload.
  std::string warning;
};
ProtectedMode CheckProtectedMode(const Config& c);

// CheckProtectedMode's two halves. PlaintextEndpoints finds where the
// endpoints reach, which may ask DNS for a host name (blocking: start-up,
// or a reload whose endpoints changed); JudgeProtectedMode is pure, so a
// reload that keeps the running endpoints and CURVE setting judges the
// list found at start again instead of resolving on the loop.
std::vector<PlaintextEndpoint> PlaintextEndpoints(const Config& c);
ProtectedMode JudgeProtectedMode(const Config& c, std::vector<PlaintextEndpoint> plaintext);

}  // namespace torii
