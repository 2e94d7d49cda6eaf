// The floor under toriid's cost per request: the cheapest ROUTER server a
// user of libzmq would write. One thread, blocking zmq_msg_recv and
// zmq_msg_send, no event loop and no database: each request is decoded
// (msgpack) and answered {"id": <its id>, "ok": true, "result": {"version":
// "floor", "protocol": 1}}, the shape of toriid's reply to a ping. Its CPU per reply under the plain client
// is what libzmq's TCP transport costs on this machine, the part of
// toriid's own cost that no change inside toriid can remove.
//
// With `session_reply`, every request (whatever its op) is answered with a
// session instead: the map toriid returns for one of the benchmark's rows
// (loader.h: id, user_id, expires_at, user_agent, ip_address, metadata,
// created_at), packed once at start, so a reply is the same bytes on the
// wire as toriid's cached get_session and costs the server no lookup. Sent
// get_session requests, it is the floor under a cache hit: what libzmq
// alone costs for a request that carries a token and a reply of a
// session's size.
// Blocking: serves until SIGTERM or SIGINT.
#pragma once

#include <string>
#include <vector>

#include "torii/error.h"

namespace torii::bench {

Status RunFloorServer(const std::vector<std::string>& endpoints, bool session_reply = false);

}  // namespace torii::bench
