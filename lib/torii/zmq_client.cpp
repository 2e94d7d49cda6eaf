// What torii::Client and torii::Subscriber share when they open their sockets.
#include "torii/zmq_client.h"

#include "torii/curve.h"

namespace torii {

Result<bool> ClientCurveWanted(const std::string& server_public_key, const std::string& client_public_key,
                               const std::string& client_secret_key) {
  if (server_public_key.empty() && client_public_key.empty() && client_secret_key.empty()) return false;
  if (!IsZ85Key(server_public_key) || !IsZ85Key(client_public_key) || !IsZ85Key(client_secret_key)) {
    // Never echo the keys: the secret one is a secret.
    return Error::InvalidArgument("CURVE needs the server public key and the client key pair, 40 Z85 characters each");
  }
  if (!zmq_has("curve")) return Error::InvalidArgument("this libzmq was built without CURVE");
  return true;
}

void SetClientCurveKeys(zmq::socket_t& socket, const std::string& server_public_key,
                        const std::string& client_public_key, const std::string& client_secret_key) {
  socket.set(zmq::sockopt::curve_serverkey, server_public_key);
  socket.set(zmq::sockopt::curve_publickey, client_public_key);
  socket.set(zmq::sockopt::curve_secretkey, client_secret_key);
}

void ClientContext::Use(zmq::context_t* given) {
  if (given != nullptr) {
    context_ = given;
  } else {
    own_ = std::make_unique<zmq::context_t>(1);
    context_ = own_.get();
  }
}

}  // namespace torii
