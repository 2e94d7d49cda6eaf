// What torii::Client and torii::Subscriber share when they open their
// sockets: the ZeroMQ context, and the CURVE keys of a client socket.
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "torii/error.h"

namespace torii {

// Whether a client socket uses CURVE: not when all three keys are empty.
// invalid_argument when some are set but not all three are Z85 keys (the
// message never echoes a key: the secret one is a secret), or when this
// libzmq was built without CURVE.
Result<bool> ClientCurveWanted(const std::string& server_public_key, const std::string& client_public_key,
                               const std::string& client_secret_key);

// Sets a client socket's CURVE keys (Z85, checked by ClientCurveWanted).
void SetClientCurveKeys(zmq::socket_t& socket, const std::string& server_public_key,
                        const std::string& client_public_key, const std::string& client_secret_key);

// The ZeroMQ context of a Client or a Subscriber: the caller's, or its own.
class ClientContext {
 public:
  // Uses `given` when set, else makes a context that this object keeps.
  void Use(zmq::context_t* given);
  zmq::context_t& operator*() const { return *context_; }

 private:
  std::unique_ptr<zmq::context_t> own_;
  zmq::context_t* context_ = nullptr;
};

}  // namespace torii
