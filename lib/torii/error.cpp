// Error codes, their wire names, and the one SQLSTATE translation table.
#include "torii/error.h"

#include <array>
#include <cstring>

namespace torii {

namespace {

constexpr std::array<std::string_view, 15> kNames = {
    "ok",        "bad_request", "unsupported_version", "unknown_op",  "invalid_argument",
    "not_found", "duplicate",   "foreign_key",         "forbidden",   "timeout",
    "overloaded", "unavailable", "storage",            "internal",
    "conflict",
};

struct SqlStateRule {
  const char* prefix;  // a whole SQLSTATE or its two-character class
  Code code;
};

// First match wins, so whole codes stand before their classes.
constexpr SqlStateRule kSqlStateRules[] = {
    {"23505", Code::kDuplicate},        // unique_violation
    {"23503", Code::kForeignKey},       // foreign_key_violation
    {"23502", Code::kInvalidArgument},  // not_null_violation
    {"23514", Code::kInvalidArgument},  // check_violation
    {"22", Code::kInvalidArgument},     // data exception: bad uuid, too long, bad json
    {"42501", Code::kForbidden},        // insufficient_privilege, RLS WITH CHECK
    {"57014", Code::kTimeout},          // query_canceled (our cancel or statement_timeout)
    {"55P03", Code::kTimeout},          // lock_not_available (lock_timeout)
    {"57P01", Code::kUnavailable},      // admin_shutdown
    {"57P02", Code::kUnavailable},      // crash_shutdown
    {"57P03", Code::kUnavailable},      // cannot_connect_now
    {"08", Code::kUnavailable},         // connection exceptions
    {"53", Code::kUnavailable},         // insufficient resources (too many connections...)
    {"25P03", Code::kTimeout},          // idle_in_transaction_session_timeout
};

}  // namespace

std::string_view CodeName(Code code) { return kNames[static_cast<size_t>(code)]; }

std::optional<Code> CodeFromName(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); i++) {
    if (kNames[i] == name) return static_cast<Code>(i);
  }
  return std::nullopt;
}

std::string Error::ToString() const {
  std::string s(CodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Error ErrorFromSqlState(const char* sqlstate, std::string_view primary, const char* constraint) {
  Code code = Code::kStorage;
  if (sqlstate != nullptr) {
    for (const auto& rule : kSqlStateRules) {
      if (std::strncmp(sqlstate, rule.prefix, std::strlen(rule.prefix)) == 0) {
        code = rule.code;
        break;
      }
    }
  }
  // Messages of unique and foreign-key violations name the constraint, which
  // tells the client which value clashed without echoing the value itself.
  std::string message;
  if (code == Code::kDuplicate && constraint != nullptr) {
    std::string_view c(constraint);
    if (c.find("email") != std::string_view::npos) {
      message = "a user with this email already exists";
    } else if (c.find("token") != std::string_view::npos) {
      message = "token collision; retry";
    } else if (c.find("pkey") != std::string_view::npos) {
      message = "a record with this id already exists";
    } else {
      message = "unique constraint " + std::string(c) + " violated";
    }
  } else if (code == Code::kForeignKey && constraint != nullptr) {
    std::string_view c(constraint);
    message = c.find("user") != std::string_view::npos ? "no such user" : "foreign key " + std::string(c) + " violated";
  } else {
    message.assign(primary);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    // Data exceptions (class 22) quote the offending input ("invalid input
    // syntax for type uuid: \"...\""), which may be a secret a client sent:
    // keep the kind of problem, drop the value.
    if (sqlstate != nullptr && std::strncmp(sqlstate, "22", 2) == 0) {
      if (size_t colon = message.find(": "); colon != std::string::npos) message.resize(colon);
      std::string hidden;
      bool quoted = false;
      for (char ch : message) {
        if (ch == '"') {
          if (!quoted) hidden += "(value)";
          quoted = !quoted;
        } else if (!quoted) {
          hidden.push_back(ch);
        }
      }
      message = std::move(hidden);
    }
    if (code == Code::kStorage && sqlstate != nullptr) {
      message = "database error " + std::string(sqlstate) + ": " + message;
    }
  }
  return Error(code, std::move(message));
}

}  // namespace torii
