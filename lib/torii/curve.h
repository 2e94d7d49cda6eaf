// CURVE key material for ZeroMQ: Z85 key files (40 characters), key pair
// generation, the public key of a secret key, and the folder of authorized
// client public keys. Shared by toriid (server side), the torii CLI
// (`torii keygen`, --server-key/--client-key) and tests.
//
// Contract: blocking file I/O, any thread. Errors never contain key text
// (a secret key must not reach a log line); they name the file and why.
// A key file holds one Z85 key, optionally surrounded by whitespace and
// `#` comment lines, so `torii keygen` output can carry a comment.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "torii/error.h"

namespace torii {

// A Z85-encoded CURVE key: 40 characters for 32 bytes.
constexpr size_t kZ85KeyLength = 40;

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// True when `key` is 40 characters that decode as Z85.
bool IsZ85Key(const std::string& key);
// Z85 (40 chars) to the 32 raw bytes; invalid_argument when malformed.
Result<std::array<uint8_t, 32>> DecodeZ85Key(const std::string& key);
// The 32 raw bytes to Z85.
std::string EncodeZ85Key(const std::array<uint8_t, 32>& raw);

// A fresh key pair (zmq_curve_keypair). internal when libzmq lacks CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();
// The public key of a Z85 secret key (zmq_curve_public).
Result<std::string> CurvePublicFromSecret(const std::string& secret_key);

// Reads a key file: the one Z85 key it holds.
Result<std::string> ReadCurveKeyFile(const std::string& path);
// Writes PREFIX.key (the secret, mode 0600, created exclusively: an
// existing file is never overwritten) and PREFIX.pub (the public, 0644).
Status WriteCurveKeyPair(const std::string& prefix, const CurveKeyPair& pair);

// The authorized client keys of a folder: one public key per file;
// dotfiles are ignored; a file that does not hold one valid key is reported
// in `skipped` ("name: why") and left out. Files directly in the folder are
// unbound keys (`keys`). A sub-folder named for a tenant (IsValidTenantName)
// holds keys bound to that tenant (`bound`), read the same way (its own
// sub-folders are ignored); a sub-folder with another name is reported in
// `skipped` and not read. A key both unbound and bound to one tenant is
// bound (the narrower grant wins); a key in the folders of two tenants is
// refused altogether and reported in `skipped`.
struct AuthorizedKeys {
  std::vector<std::array<uint8_t, 32>> keys;  // unbound keys: raw, sorted, unique
  std::vector<std::string> files;             // file names that gave an unbound key
  std::vector<std::string> skipped;
  // Bound keys and their tenant, sorted by key, unique, none in `keys`.
  std::vector<std::pair<std::array<uint8_t, 32>, std::string>> bound;
};
// invalid_argument when the folder cannot be read.
Result<AuthorizedKeys> LoadAuthorizedKeys(const std::string& dir);

}  // namespace torii
