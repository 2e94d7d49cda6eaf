// Errors as values: the protocol's error codes, an Error (code + message) and
// Result<T>. Every module boundary returns these; C error codes (SQLSTATE,
// libuv, zmq errno) are translated once, where they are met.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace torii {

// The codes of PROTOCOL.md section 2, in its order, then section 5's. `kOk`
// is never sent.
enum class Code {
  kOk,
  kBadRequest,
  kUnsupportedVersion,
  kUnknownOp,
  kInvalidArgument,
  kNotFound,
  kDuplicate,
  kForeignKey,
  kForbidden,
  kTimeout,
  kOverloaded,
  kUnavailable,
  kStorage,
  kInternal,
  // Section 5: the request contradicts the stored state (a passkey's
  // signature counter that did not increase).
  kConflict,
};

// The wire name of a code ("bad_request", ...).
std::string_view CodeName(Code code);
// The code for a wire name; nullopt for an unknown name.
std::optional<Code> CodeFromName(std::string_view name);

class Error {
 public:
  Error(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Error BadRequest(std::string m) { return {Code::kBadRequest, std::move(m)}; }
  static Error UnsupportedVersion(std::string m) { return {Code::kUnsupportedVersion, std::move(m)}; }
  static Error UnknownOp(std::string m) { return {Code::kUnknownOp, std::move(m)}; }
  static Error InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Error NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Error Duplicate(std::string m) { return {Code::kDuplicate, std::move(m)}; }
  static Error ForeignKey(std::string m) { return {Code::kForeignKey, std::move(m)}; }
  static Error Forbidden(std::string m) { return {Code::kForbidden, std::move(m)}; }
  static Error Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Error Overloaded(std::string m) { return {Code::kOverloaded, std::move(m)}; }
  static Error Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Error Storage(std::string m) { return {Code::kStorage, std::move(m)}; }
  static Error Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Error Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message"
  std::string ToString() const;

 private:
  Code code_;
  std::string message_;
};

// Maps a PostgreSQL SQLSTATE (five characters, may be null) and the server's
// primary message to an Error: 23505 duplicate, 23503 foreign_key, the rest
// from one table in error.cpp. `constraint` (may be null) names the violated
// constraint, which gives duplicate/foreign_key errors a readable message.
Error ErrorFromSqlState(const char* sqlstate, std::string_view primary, const char* constraint);

// Result<T>: a T or an Error. Check ok() before value().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

}  // namespace torii
