// Hand-built request bodies, raw sockets, decoded replies.
#include "wire.h"

#include <sstream>
#include <stdexcept>

namespace torii::test {

using Packer = msgpack::packer<msgpack::sbuffer>;

namespace {

void PackStr(Packer& pk, const std::string& s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

}  // namespace

V V::Bin(std::string bytes) {
  V v;
  v.kind_ = Kind::kBin;
  v.s_ = std::move(bytes);
  return v;
}

V V::Ext(int8_t type, std::string bytes) {
  V v;
  v.kind_ = Kind::kExt;
  v.ext_type_ = type;
  v.s_ = std::move(bytes);
  return v;
}

V V::Timestamp(int64_t micros) {
  int64_t sec = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    sec--;
  }
  uint32_t nsec = static_cast<uint32_t>(rem * 1000);
  std::string b(12, '\0');
  for (int i = 0; i < 4; i++) b[i] = static_cast<char>(nsec >> (24 - 8 * i));
  for (int i = 0; i < 8; i++) b[4 + i] = static_cast<char>(static_cast<uint64_t>(sec) >> (56 - 8 * i));
  return Ext(-1, std::move(b));
}

V V::Array(std::vector<V> items) {
  V v;
  v.kind_ = Kind::kArray;
  v.items_ = std::move(items);
  return v;
}

V V::Map(std::vector<std::pair<std::string, V>> items) {
  V v;
  v.kind_ = Kind::kMap;
  for (auto& [k, val] : items) {
    v.items_.emplace_back(k);
    v.items_.push_back(std::move(val));
  }
  return v;
}

V V::RawMap(std::vector<std::pair<V, V>> items) {
  V v;
  v.kind_ = Kind::kMap;
  for (auto& [k, val] : items) {
    v.items_.push_back(std::move(k));
    v.items_.push_back(std::move(val));
  }
  return v;
}

void V::Pack(Packer& pk) const {
  switch (kind_) {
    case Kind::kNil: pk.pack_nil(); break;
    case Kind::kBool: b_ ? pk.pack_true() : pk.pack_false(); break;
    case Kind::kInt: pk.pack_int64(i_); break;
    case Kind::kUint: pk.pack_uint64(u_); break;
    case Kind::kDouble: pk.pack_double(d_); break;
    case Kind::kStr: PackStr(pk, s_); break;
    case Kind::kBin:
      pk.pack_bin(static_cast<uint32_t>(s_.size()));
      pk.pack_bin_body(s_.data(), static_cast<uint32_t>(s_.size()));
      break;
    case Kind::kExt:
      pk.pack_ext(s_.size(), ext_type_);
      pk.pack_ext_body(s_.data(), static_cast<uint32_t>(s_.size()));
      break;
    case Kind::kArray:
      pk.pack_array(static_cast<uint32_t>(items_.size()));
      for (const auto& i : items_) i.Pack(pk);
      break;
    case Kind::kMap:
      pk.pack_map(static_cast<uint32_t>(items_.size() / 2));
      for (const auto& i : items_) i.Pack(pk);
      break;
  }
}

std::string V::Encode() const {
  msgpack::sbuffer buf;
  Packer pk(buf);
  Pack(pk);
  return std::string(buf.data(), buf.size());
}

std::string Req::Encode() const {
  std::vector<std::pair<std::string, V>> m;
  if (op) m.emplace_back("op", *op);
  if (args) m.emplace_back("args", *args);
  if (id) m.emplace_back("id", *id);
  if (v) m.emplace_back("v", *v);
  if (timeout_ms) m.emplace_back("timeout_ms", *timeout_ms);
  if (actor) m.emplace_back("actor", *actor);
  if (tenant) m.emplace_back("tenant", *tenant);
  return V::Map(std::move(m)).Encode();
}

Value Value::Decode(const std::string& bytes) {
  try {
    auto h = std::make_shared<msgpack::object_handle>(msgpack::unpack(bytes.data(), bytes.size()));
    const msgpack::object* o = &h->get();
    return Value(h, o);
  } catch (const std::exception&) {
    return Value();
  }
}

bool Value::is_int() const {
  return o_ && (o_->type == msgpack::type::POSITIVE_INTEGER || o_->type == msgpack::type::NEGATIVE_INTEGER);
}

bool Value::is_timestamp() const { return o_ && o_->type == msgpack::type::EXT && o_->via.ext.type() == -1; }

Value Value::operator[](const std::string& key) const {
  if (!is_map()) return Value();
  for (uint32_t i = 0; i < o_->via.map.size; i++) {
    const auto& kv = o_->via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
      return Value(h_, &kv.val);
    }
  }
  return Value();
}

Value Value::operator[](size_t index) const {
  if (!is_array() || index >= o_->via.array.size) return Value();
  return Value(h_, &o_->via.array.ptr[index]);
}

size_t Value::size() const {
  if (is_array()) return o_->via.array.size;
  if (is_map()) return o_->via.map.size;
  return 0;
}

std::vector<std::string> Value::keys() const {
  std::vector<std::string> out;
  if (!is_map()) return out;
  for (uint32_t i = 0; i < o_->via.map.size; i++) {
    const auto& k = o_->via.map.ptr[i].key;
    if (k.type == msgpack::type::STR) out.emplace_back(k.via.str.ptr, k.via.str.size);
  }
  return out;
}

std::string Value::str() const { return is_str() ? std::string(o_->via.str.ptr, o_->via.str.size) : std::string(); }

int64_t Value::i64() const {
  if (!is_int()) return 0;
  return o_->type == msgpack::type::NEGATIVE_INTEGER ? o_->via.i64 : static_cast<int64_t>(o_->via.u64);
}

uint64_t Value::u64() const { return o_ && o_->type == msgpack::type::POSITIVE_INTEGER ? o_->via.u64 : 0; }

double Value::dbl() const {
  if (!o_) return 0;
  if (o_->type == msgpack::type::FLOAT32 || o_->type == msgpack::type::FLOAT64) return o_->via.f64;
  return static_cast<double>(i64());
}

bool Value::boolean() const { return o_ && o_->type == msgpack::type::BOOLEAN && o_->via.boolean; }

int64_t Value::micros() const {
  if (!is_timestamp()) return 0;
  const auto* p = reinterpret_cast<const uint8_t*>(o_->via.ext.data());
  auto be = [p](int off, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[off + i];
    return v;
  };
  int64_t sec = 0, nsec = 0;
  switch (o_->via.ext.size) {
    case 4: sec = static_cast<int64_t>(be(0, 4)); break;
    case 8: {
      uint64_t v = be(0, 8);
      nsec = static_cast<int64_t>(v >> 34);
      sec = static_cast<int64_t>(v & 0x3ffffffffULL);
      break;
    }
    case 12:
      nsec = static_cast<int64_t>(be(0, 4));
      sec = static_cast<int64_t>(be(4, 8));
      break;
    default: return 0;
  }
  return sec * 1000000 + nsec / 1000;
}

std::string Value::bytes() const {
  if (!o_) return {};
  msgpack::sbuffer buf;
  msgpack::pack(buf, *o_);
  return std::string(buf.data(), buf.size());
}

std::string Value::ToString() const {
  if (!o_) return "<absent>";
  std::ostringstream os;
  os << *o_;
  return os.str();
}

std::string Reply::code() const {
  if (!received) return "<no reply>";
  if (!body.is_map()) return "<not a map>";
  if (ok()) return "";
  return body["error"]["code"].str();
}

std::string Reply::ToString() const { return received ? body.ToString() : "<no reply>"; }

zmq::context_t& TestContext() {
  static zmq::context_t ctx = [] {
    zmq::context_t c(1);
    // Closed sockets are reaped asynchronously, so tests that open and drop
    // many clients in a row can exceed ZeroMQ's default of 1023 sockets.
    c.set(zmq::ctxopt::max_sockets, 16384);
    return c;
  }();
  return ctx;
}

WireClient::WireClient(const std::string& endpoint, Kind kind)
    : socket_(TestContext(), kind == Kind::kReq ? zmq::socket_type::req : zmq::socket_type::dealer), kind_(kind) {
  socket_.set(zmq::sockopt::linger, 0);
  // Unlimited queues: load tests push thousands of messages each way.
  socket_.set(zmq::sockopt::sndhwm, 0);
  socket_.set(zmq::sockopt::rcvhwm, 0);
  socket_.connect(endpoint);
}

void WireClient::SendRaw(const std::string& body, const std::vector<std::string>& envelope) {
  if (kind_ == Kind::kReq && !envelope.empty()) throw std::logic_error("REQ sockets cannot add envelope frames");
  for (const auto& f : envelope) socket_.send(zmq::buffer(f), zmq::send_flags::sndmore);
  if (kind_ == Kind::kDealer) socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(body), zmq::send_flags::none);
}

bool WireClient::TrySendRaw(const std::string& body) {
  if (kind_ == Kind::kDealer) {
    auto r = socket_.send(zmq::message_t(), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    if (!r) return false;
    // Once the first frame is queued the rest of the message always is.
  }
  auto r = socket_.send(zmq::buffer(body), zmq::send_flags::dontwait);
  return r.has_value();
}

Reply WireClient::Recv(int timeout_ms) {
  Reply reply;
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) <= 0) return reply;
  std::vector<std::string> frames;
  for (;;) {
    zmq::message_t part;
    if (!socket_.recv(part, zmq::recv_flags::none)) return reply;
    frames.push_back(part.to_string());
    if (!part.more()) break;
  }
  reply.received = true;
  reply.raw = frames.back();
  frames.pop_back();
  reply.envelope = std::move(frames);
  reply.body = Value::Decode(reply.raw);
  return reply;
}

Reply WireClient::Call(const std::string& op, V args, int timeout_ms) {
  Req r;
  r.op = op;
  r.args = std::move(args);
  return Call(std::move(r), timeout_ms);
}

Reply WireClient::Call(Req req, int timeout_ms) {
  uint64_t id = next_id_++;
  req.id = V(id);
  SendRaw(req.Encode());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Reply{};
    Reply reply = Recv(static_cast<int>(left.count()));
    if (!reply.received) return reply;
    if (reply.id().u64() == id) return reply;
  }
}

}  // namespace torii::test
