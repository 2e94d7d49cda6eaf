// Value rules: uuids, emails, tokens.
#include "torii/values.h"

#include <sodium.h>

#include <chrono>
#include <cstring>

namespace torii {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// Value of each hex digit, 0xff for any other byte: a table, because the
// digits of a digest are random and a branch per character mispredicts
// (the daemon decodes a bytea key per looked-up session).
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int c = 0; c < 10; c++) t['0' + c] = static_cast<uint8_t>(c);
  for (int c = 0; c < 6; c++) {
    t['a' + c] = static_cast<uint8_t>(10 + c);
    t['A' + c] = static_cast<uint8_t>(10 + c);
  }
  return t;
}();

int HexVal(char c) {
  uint8_t v = kHexValue[static_cast<uint8_t>(c)];
  return v == 0xff ? -1 : v;
}

std::string FormatUuid(const uint8_t b[16]) {
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    AppendHex(s, &b[i], 1);
  }
  return s;
}

bool ParseUuidBytes(std::string_view s, uint8_t out[16]) {
  if (s.size() != 36) return false;
  int j = 0;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
      continue;
    }
    int hi = HexVal(s[i]);
    int lo = i + 1 < 36 ? HexVal(s[i + 1]) : -1;
    if (hi < 0 || lo < 0) return false;
    out[j++] = static_cast<uint8_t>(hi << 4 | lo);
    i++;
  }
  return j == 16;
}

struct SodiumInit {
  SodiumInit() {
    if (sodium_init() < 0) std::abort();
  }
};

void EnsureSodium() { static SodiumInit once; }

}  // namespace

std::optional<std::string> NormalizeUuid(std::string_view s) {
  uint8_t b[16];
  if (!ParseUuidBytes(s, b)) return std::nullopt;
  return FormatUuid(b);
}

std::string NewUuid() {
  EnsureSodium();
  uint8_t b[16];
  randombytes_buf(b, sizeof(b));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return FormatUuid(b);
}

std::string UuidV5(std::string_view namespace_uuid, std::string_view name) {
  // SHA-1 is not in libsodium; a small implementation for this one use.
  uint8_t ns[16];
  if (!ParseUuidBytes(namespace_uuid, ns)) return {};
  std::string msg(reinterpret_cast<const char*>(ns), 16);
  msg.append(name);
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  uint64_t bitlen = static_cast<uint64_t>(msg.size()) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int i = 7; i >= 0; i--) msg.push_back(static_cast<char>(bitlen >> (i * 8)));
  auto rol = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++) {
      const auto* p = reinterpret_cast<const uint8_t*>(msg.data() + off + i * 4);
      w[i] = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
    }
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else f = b ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  uint8_t out[16];
  for (int i = 0; i < 16; i++) out[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  out[6] = (out[6] & 0x0f) | 0x50;
  out[8] = (out[8] & 0x3f) | 0x80;
  return FormatUuid(out);
}

bool ValidEmail(std::string_view s) {
  if (s.empty() || s.size() > 254) return false;
  size_t at = s.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == s.size()) return false;
  if (s.find('@', at + 1) != std::string_view::npos) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return false;  // no spaces or controls
  }
  return true;
}

Micros NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Base64UrlEncode(const uint8_t* data, size_t len) {
  EnsureSodium();
  std::string out(sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string NewSessionToken() {
  EnsureSodium();
  uint8_t raw[32];
  randombytes_buf(raw, sizeof(raw));
  std::string t = Base64UrlEncode(raw, sizeof(raw));
  sodium_memzero(raw, sizeof(raw));
  return t;
}

void AppendHex(std::string& out, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; i++) {
    out.push_back(kHexDigits[p[i] >> 4]);
    out.push_back(kHexDigits[p[i] & 15]);
  }
}

std::string HexEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  AppendHex(out, bytes.data(), bytes.size());
  return out;
}

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->resize(hex.size() / 2);
  uint8_t bad = 0;
  for (size_t i = 0; i < out->size(); i++) {
    uint8_t hi = kHexValue[static_cast<uint8_t>(hex[2 * i])], lo = kHexValue[static_cast<uint8_t>(hex[2 * i + 1])];
    bad |= hi | lo;
    (*out)[i] = static_cast<char>(hi << 4 | (lo & 0x0f));
  }
  return (bad & 0xf0) == 0;
}

bool DecodeByteaHex(std::string_view text, std::string* out) {
  return text.size() >= 2 && text[0] == '\\' && text[1] == 'x' && HexDecode(text.substr(2), out);
}

std::array<uint8_t, 32> TokenDigest(std::string_view token) {
  std::array<uint8_t, 32> d;
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(token.data()), token.size());
  return d;
}

}  // namespace torii
