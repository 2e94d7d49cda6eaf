// The floor under toriid's cost per request: the cheapest ROUTER server a
// user of libzmq would write. One thread, blocking zmq_msg_recv and
// zmq_msg_send, no event loop and no database: each request is decoded
// (msgpack) and answered {"id": <its id>, "ok": true, "result": {"version":
// "floor", "protocol": 1}}, the shape of toriid's reply to a ping. Its CPU per reply under the plain client
// is what libzmq's TCP transport costs on this machine, the part of
// toriid's own cost that no change inside toriid can remove.
// Blocking: serves until SIGTERM or SIGINT.
#pragma once

#include <string>
#include <vector>

#include "torii/error.h"

namespace torii::bench {

Status RunFloorServer(const std::vector<std::string>& endpoints);

}  // namespace torii::bench
