// Z85 CURVE key files and the authorized-keys folder.
#include "torii/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "torii/tenant.h"

namespace fs = std::filesystem;

namespace torii {

namespace {

// Writes `text` to a new file with `mode`; O_EXCL so that an existing key is
// never silently replaced (losing a server's secret locks every client out).
Status WriteNewFile(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Error::InvalidArgument("cannot create " + path + ": " + std::strerror(errno));
  // open() applies the umask; the mode we promise is the one we set.
  if (::fchmod(fd, mode) != 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return Error::InvalidArgument("cannot write " + path + ": " + std::strerror(err));
  }
  ::close(fd);
  return {};
}

// The one key of a key file's text; `why` says what is wrong otherwise.
bool ParseKeyText(const std::string& text, std::string* key, std::string* why) {
  std::istringstream in(text);
  std::string line;
  std::string found;
  while (std::getline(in, line)) {
    size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    size_t e = line.find_last_not_of(" \t\r");
    if (!found.empty()) {
      *why = "more than one key";
      return false;
    }
    found = line.substr(b, e - b + 1);
  }
  if (found.empty()) {
    *why = "no key";
    return false;
  }
  if (!IsZ85Key(found)) {
    // Never quote the text: it may be a secret key with a typo.
    *why = "not a 40-character Z85 key";
    return false;
  }
  *key = std::move(found);
  return true;
}

}  // namespace

bool IsZ85Key(const std::string& key) {
  if (key.size() != kZ85KeyLength) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, key.c_str()) != nullptr;
}

Result<std::array<uint8_t, 32>> DecodeZ85Key(const std::string& key) {
  std::array<uint8_t, 32> raw{};
  if (key.size() != kZ85KeyLength || zmq_z85_decode(raw.data(), key.c_str()) == nullptr) {
    return Error::InvalidArgument("not a 40-character Z85 key");
  }
  return raw;
}

std::string EncodeZ85Key(const std::array<uint8_t, 32>& raw) {
  char out[kZ85KeyLength + 1];
  zmq_z85_encode(out, raw.data(), raw.size());
  return std::string(out, kZ85KeyLength);
}

Result<CurveKeyPair> GenerateCurveKeyPair() {
  char pub[kZ85KeyLength + 1], sec[kZ85KeyLength + 1];
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Error::Internal(std::string("cannot generate a CURVE key pair: ") + zmq_strerror(zmq_errno()));
  }
  CurveKeyPair pair{std::string(pub, kZ85KeyLength), std::string(sec, kZ85KeyLength)};
  std::memset(sec, 0, sizeof(sec));
  return pair;
}

Result<std::string> CurvePublicFromSecret(const std::string& secret_key) {
  if (!IsZ85Key(secret_key)) return Error::InvalidArgument("the CURVE secret key is not a 40-character Z85 key");
  char pub[kZ85KeyLength + 1];
  if (zmq_curve_public(pub, secret_key.c_str()) != 0) {
    return Error::Internal(std::string("cannot derive the CURVE public key: ") + zmq_strerror(zmq_errno()));
  }
  return std::string(pub, kZ85KeyLength);
}

Result<std::string> ReadCurveKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::InvalidArgument("cannot read the key file " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key, why;
  if (!ParseKeyText(ss.str(), &key, &why)) return Error::InvalidArgument("key file " + path + ": " + why);
  return key;
}

Status WriteCurveKeyPair(const std::string& prefix, const CurveKeyPair& pair) {
  if (!IsZ85Key(pair.public_key) || !IsZ85Key(pair.secret_key)) {
    return Error::InvalidArgument("not a CURVE key pair");
  }
  const std::string key_path = prefix + ".key", pub_path = prefix + ".pub";
  if (auto st = WriteNewFile(key_path,
                             "# CURVE secret key (Z85); keep it private\n" + pair.secret_key + "\n", 0600);
      !st.ok()) {
    return st;
  }
  if (auto st = WriteNewFile(pub_path, "# CURVE public key (Z85)\n" + pair.public_key + "\n", 0644); !st.ok()) {
    ::unlink(key_path.c_str());  // half a pair is no use
    return st;
  }
  return {};
}

namespace {

// The entries of a folder in a stable order (a reload's log reads the same
// each time); false when it cannot be read.
bool ListFolder(const std::string& dir, std::vector<fs::directory_entry>* entries, std::string* why) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    *why = ec.message();
    return false;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) {
      *why = ec.message();
      return false;
    }
    entries->push_back(*it);
  }
  std::sort(entries->begin(), entries->end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
  return true;
}

// The key a key file holds; false with `why` when it holds none.
bool ReadKeyFile(const fs::path& path, std::array<uint8_t, 32>* raw, std::string* why) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) {
    *why = "cannot read";
    return false;
  }
  std::string key;
  if (!ParseKeyText(ss.str(), &key, why)) return false;
  auto decoded = DecodeZ85Key(key);
  if (!decoded.ok()) {
    *why = decoded.error().message();
    return false;
  }
  *raw = *decoded;
  return true;
}

}  // namespace

Result<AuthorizedKeys> LoadAuthorizedKeys(const std::string& dir) {
  std::vector<fs::directory_entry> entries;
  std::string why;
  if (!ListFolder(dir, &entries, &why)) {
    return Error::InvalidArgument("cannot read the authorized keys folder " + dir + ": " + why);
  }
  AuthorizedKeys out;
  std::map<std::array<uint8_t, 32>, std::set<std::string>> tenants_of;  // bound keys
  std::error_code ec;
  for (const auto& entry : entries) {
    const std::string name = entry.path().filename().string();
    // Dotfiles: editor swap files, .gitkeep and the like.
    if (name.empty() || name[0] == '.') continue;
    if (entry.is_directory(ec)) {
      if (!IsValidTenantName(name)) {
        out.skipped.push_back(name + "/: not a tenant name (1 to 64 bytes of a-z 0-9 _ . -); its keys are not read");
        continue;
      }
      std::vector<fs::directory_entry> inner;
      if (!ListFolder(entry.path().string(), &inner, &why)) {
        out.skipped.push_back(name + "/: cannot read the folder: " + why);
        continue;
      }
      for (const auto& f : inner) {
        const std::string fname = f.path().filename().string();
        if (fname.empty() || fname[0] == '.' || !f.is_regular_file(ec)) continue;
        std::array<uint8_t, 32> raw{};
        if (!ReadKeyFile(f.path(), &raw, &why)) {
          out.skipped.push_back(name + "/" + fname + ": " + why);
          continue;
        }
        tenants_of[raw].insert(name);
      }
      continue;
    }
    if (!entry.is_regular_file(ec)) continue;
    std::array<uint8_t, 32> raw{};
    if (!ReadKeyFile(entry.path(), &raw, &why)) {
      out.skipped.push_back(name + ": " + why);
      continue;
    }
    out.keys.push_back(raw);
    out.files.push_back(name);
  }
  std::sort(out.keys.begin(), out.keys.end());
  out.keys.erase(std::unique(out.keys.begin(), out.keys.end()), out.keys.end());
  for (const auto& [raw, tenants] : tenants_of) {
    // A bound key is never also unbound.
    auto it = std::lower_bound(out.keys.begin(), out.keys.end(), raw);
    if (it != out.keys.end() && *it == raw) out.keys.erase(it);
    if (tenants.size() > 1) {
      std::string names;
      for (const auto& t : tenants) names += (names.empty() ? "" : ", ") + t;
      out.skipped.push_back("key " + EncodeZ85Key(raw) + " is in the folders of several tenants (" + names +
                            "): refused");
      continue;
    }
    out.bound.emplace_back(raw, *tenants.begin());
  }
  return out;
}

}  // namespace torii
