// Raw wire helpers for tests: request bodies built by hand with msgpack
// (any key, any type, so tests can send wrong ones), REQ or DEALER sockets
// with or without the empty delimiter frame and with extra envelope frames,
// and replies decoded into values that are easy to assert on.
//
// Deliberately independent of lib's torii::Client: these tests check the
// wire contract itself. Not thread-safe per object; one WireClient per
// thread (they may share a zmq::context_t).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <zmq.hpp>

namespace torii::test {

// A msgpack value to send: any kind, including the ones the daemon must
// refuse (binary, ext, non-string keys, NaN).
class V {
 public:
  enum class Kind { kNil, kBool, kInt, kUint, kDouble, kStr, kBin, kExt, kArray, kMap };

  V() = default;  // nil
  V(std::nullptr_t) {}
  V(bool b) : kind_(Kind::kBool), b_(b) {}
  V(int i) : kind_(Kind::kInt), i_(i) {}
  V(int64_t i) : kind_(Kind::kInt), i_(i) {}
  V(uint64_t u) : kind_(Kind::kUint), u_(u) {}
  V(double d) : kind_(Kind::kDouble), d_(d) {}
  V(const char* s) : kind_(Kind::kStr), s_(s) {}
  V(std::string s) : kind_(Kind::kStr), s_(std::move(s)) {}

  static V Bin(std::string bytes);
  static V Ext(int8_t type, std::string bytes);
  // A msgpack timestamp (ext -1) in its 96-bit form; micros since epoch.
  static V Timestamp(int64_t micros);
  static V Array(std::vector<V> items);
  // String-keyed map, keys in the order given.
  static V Map(std::vector<std::pair<std::string, V>> items);
  // Map with arbitrary keys (for non-string-key cases).
  static V RawMap(std::vector<std::pair<V, V>> items);

  void Pack(msgpack::packer<msgpack::sbuffer>& pk) const;
  std::string Encode() const;  // this value alone as msgpack bytes

 private:
  Kind kind_ = Kind::kNil;
  bool b_ = false;
  int64_t i_ = 0;
  uint64_t u_ = 0;
  double d_ = 0;
  int8_t ext_type_ = 0;
  std::string s_;
  std::vector<V> items_;  // array items, or map keys and values alternating
};

// A request body; absent fields are not sent at all.
struct Req {
  std::optional<V> op = {};
  std::optional<V> args = {};
  std::optional<V> id = {};
  std::optional<V> v = {};
  std::optional<V> timeout_ms = {};
  std::optional<V> actor = {};
  std::optional<V> tenant = {};
  std::string Encode() const;
};

// A decoded msgpack value that keeps its buffer alive. Lookups of missing
// keys or indexes give an "absent" Value (exists() false, is_nil() false).
class Value {
 public:
  Value() = default;
  Value(std::shared_ptr<msgpack::object_handle> h, const msgpack::object* o) : h_(std::move(h)), o_(o) {}
  static Value Decode(const std::string& bytes);  // absent when not msgpack

  bool exists() const { return o_ != nullptr; }
  bool is_nil() const { return o_ && o_->type == msgpack::type::NIL; }
  bool is_str() const { return o_ && o_->type == msgpack::type::STR; }
  bool is_map() const { return o_ && o_->type == msgpack::type::MAP; }
  bool is_array() const { return o_ && o_->type == msgpack::type::ARRAY; }
  bool is_int() const;
  bool is_timestamp() const;  // ext -1

  Value operator[](const std::string& key) const;
  Value operator[](size_t index) const;
  bool has(const std::string& key) const { return (*this)[key].exists(); }
  size_t size() const;  // array or map entries
  std::vector<std::string> keys() const;

  std::string str() const;       // "" unless a string
  int64_t i64() const;           // 0 unless an integer
  uint64_t u64() const;
  double dbl() const;
  bool boolean() const;
  int64_t micros() const;        // a timestamp ext, as microseconds
  std::string bytes() const;     // this value re-encoded as msgpack
  std::string ToString() const;  // readable, for failure messages
  const msgpack::object* object() const { return o_; }

 private:
  std::shared_ptr<msgpack::object_handle> h_;
  const msgpack::object* o_ = nullptr;
};

// One reply: its envelope frames and decoded body.
struct Reply {
  bool received = false;            // false: nothing came before the deadline
  std::vector<std::string> envelope;
  std::string raw;
  Value body;

  bool ok() const { return body["ok"].boolean(); }
  Value result() const { return body["result"]; }
  // Error code ("" on success); "<no reply>" / "<not a map>" when broken.
  std::string code() const;
  std::string message() const { return body["error"]["message"].str(); }
  bool has_id() const { return body.has("id"); }
  Value id() const { return body["id"]; }
  std::string ToString() const;
};

// Shared context for wire clients; one per process.
zmq::context_t& TestContext();

class WireClient {
 public:
  enum class Kind {
    kReq,           // REQ: adds the empty delimiter itself
    kDealer,        // DEALER sending "" + body
    kDealerBare,    // DEALER sending the body alone
  };
  explicit WireClient(const std::string& endpoint, Kind kind = Kind::kDealer);

  // Sends `body` after the given extra envelope frames (DEALER only).
  void SendRaw(const std::string& body, const std::vector<std::string>& envelope = {});
  // Sends without blocking; false when the socket's queue is full.
  bool TrySendRaw(const std::string& body);
  // The next message, split into envelope and body, or received=false.
  Reply Recv(int timeout_ms = 10000);
  Reply TryRecv() { return Recv(0); }

  // Sends {op, args, id: next id} and waits for the reply with that id
  // (replies to other ids on the way are dropped).
  Reply Call(const std::string& op, V args = V::Map({}), int timeout_ms = 10000);
  // The same with extra top-level keys set by `req` (op and id are set here).
  Reply Call(Req req, int timeout_ms = 10000);

  zmq::socket_t& socket() { return socket_; }
  Kind kind() const { return kind_; }

 private:
  zmq::socket_t socket_;
  Kind kind_;
  uint64_t next_id_ = 1;
};

}  // namespace torii::test
