// Unit tests of lib/torii/error (code names, Result, the SQLSTATE table and
// what error messages may say) and of the secret redaction in lib/torii/log
// (RedactConninfo), which keeps database passwords out of logs and errors.
#include "torii/error.h"

#include <gtest/gtest.h>

#include <string>

#include "torii/log.h"

namespace torii {
namespace {

constexpr Code kAllCodes[] = {
    Code::kOk,        Code::kBadRequest, Code::kUnsupportedVersion, Code::kUnknownOp, Code::kInvalidArgument,
    Code::kNotFound,  Code::kDuplicate,  Code::kForeignKey,         Code::kForbidden, Code::kTimeout,
    Code::kOverloaded, Code::kUnavailable, Code::kStorage,          Code::kInternal,
    Code::kConflict,
};

TEST(Code, NamesAreTheProtocolsAndRoundTrip) {
  const char* wire[] = {"ok",        "bad_request", "unsupported_version", "unknown_op", "invalid_argument",
                        "not_found", "duplicate",   "foreign_key",         "forbidden",  "timeout",
                        "overloaded", "unavailable", "storage",            "internal",
                        "conflict"};
  for (size_t i = 0; i < std::size(kAllCodes); i++) {
    EXPECT_EQ(CodeName(kAllCodes[i]), wire[i]);
    auto back = CodeFromName(wire[i]);
    ASSERT_TRUE(back.has_value()) << wire[i];
    EXPECT_EQ(*back, kAllCodes[i]);
  }
  EXPECT_FALSE(CodeFromName("").has_value());
  EXPECT_FALSE(CodeFromName("Duplicate").has_value());
  EXPECT_FALSE(CodeFromName("no_such_code").has_value());
}

TEST(Error, NamedConstructorsAndToString) {
  EXPECT_EQ(Error::NotFound("no user").ToString(), "not_found: no user");
  EXPECT_EQ(Error::Overloaded("x").code(), Code::kOverloaded);
  EXPECT_EQ(Error::Unavailable("x").code(), Code::kUnavailable);
  EXPECT_EQ(Error::Internal("bug").message(), "bug");
}

TEST(Result, HoldsValueOrError) {
  Result<int> v(5);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 5);
  Result<int> e(Error::Timeout("late"));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Code::kTimeout);
  Status s;
  EXPECT_TRUE(s.ok());
  Status f(Error::Storage("x"));
  EXPECT_FALSE(f.ok());
  EXPECT_FALSE(static_cast<bool>(f));
}

struct SqlCase {
  const char* sqlstate;   // may be null
  const char* constraint;  // may be null
  Code want;
};

TEST(SqlState, MappingTable) {
  const SqlCase cases[] = {
      {"23505", "users_email_key", Code::kDuplicate},
      {"23505", "users_pkey", Code::kDuplicate},
      {"23505", nullptr, Code::kDuplicate},
      {"23503", "sessions_user_id_fkey", Code::kForeignKey},
      {"23503", nullptr, Code::kForeignKey},
      {"23502", nullptr, Code::kInvalidArgument},
      {"23514", "users_email_check", Code::kInvalidArgument},
      {"22P02", nullptr, Code::kInvalidArgument},  // invalid_text_representation
      {"22001", nullptr, Code::kInvalidArgument},  // string_data_right_truncation
      {"22003", nullptr, Code::kInvalidArgument},  // numeric_value_out_of_range
      {"22007", nullptr, Code::kInvalidArgument},  // invalid_datetime_format
      {"22008", nullptr, Code::kInvalidArgument},  // datetime_field_overflow
      {"2200N", nullptr, Code::kInvalidArgument},  // invalid_xml_content: any class 22
      {"42501", nullptr, Code::kForbidden},
      {"57014", nullptr, Code::kTimeout},
      {"55P03", nullptr, Code::kTimeout},
      {"25P03", nullptr, Code::kTimeout},
      {"57P01", nullptr, Code::kUnavailable},
      {"57P02", nullptr, Code::kUnavailable},
      {"57P03", nullptr, Code::kUnavailable},
      {"08000", nullptr, Code::kUnavailable},
      {"08003", nullptr, Code::kUnavailable},
      {"08006", nullptr, Code::kUnavailable},
      {"08P01", nullptr, Code::kUnavailable},
      {"53300", nullptr, Code::kUnavailable},
      {"53100", nullptr, Code::kUnavailable},
      {"40001", nullptr, Code::kStorage},  // serialization_failure
      {"40P01", nullptr, Code::kStorage},  // deadlock_detected
      {"42P01", nullptr, Code::kStorage},  // undefined_table
      {"XX000", nullptr, Code::kStorage},
      {"23", nullptr, Code::kStorage},     // a bare class matches no whole code
      {"", nullptr, Code::kStorage},
      {nullptr, nullptr, Code::kStorage},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.sqlstate ? c.sqlstate : "(null)");
    EXPECT_EQ(CodeName(ErrorFromSqlState(c.sqlstate, "primary message", c.constraint).code()), CodeName(c.want));
  }
}

TEST(SqlState, ReadableMessagesForConstraints) {
  EXPECT_EQ(ErrorFromSqlState("23505", "duplicate key value violates unique constraint \"users_email_lower_key\"",
                              "users_email_lower_key")
                .message(),
            "a user with this email already exists");
  EXPECT_EQ(ErrorFromSqlState("23505", "dup", "sessions_token_hash_key").message(), "token collision; retry");
  EXPECT_EQ(ErrorFromSqlState("23505", "dup", "sessions_pkey").message(), "a record with this id already exists");
  EXPECT_EQ(ErrorFromSqlState("23503", "fk", "sessions_user_id_fkey").message(), "no such user");
  auto storage = ErrorFromSqlState("42P01", "relation \"users\" does not exist\n", nullptr);
  EXPECT_EQ(storage.message(), "database error 42P01: relation \"users\" does not exist");
}

// PostgreSQL's own messages quote the offending value for data exceptions
// (class 22); the error that goes to clients and logs must not repeat it:
// it may be a password hash, an email or a token a client mistyped.
TEST(SqlState, MessagesNeverEchoValues) {
  struct Case {
    const char* sqlstate;
    const char* primary;
    const char* constraint;
  } cases[] = {
      {"23505", "duplicate key value violates unique constraint \"users_email_key\" Key (email)=(secret@x.io)",
       "users_email_key"},
      {"23503", "insert or update violates foreign key constraint; Key (user_id)=(secret@x.io) is not present",
       "sessions_user_id_fkey"},
      {"22P02", "invalid input syntax for type uuid: \"secret@x.io\"", nullptr},
      {"22007", "invalid input syntax for type timestamp with time zone: \"secret@x.io\"", nullptr},
      {"22003", "value \"secret@x.io\" is out of range for type integer", nullptr},
      {"22021", "invalid byte sequence for encoding \"UTF8\": 0xff secret@x.io", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.primary);
    Error e = ErrorFromSqlState(c.sqlstate, c.primary, c.constraint);
    EXPECT_EQ(e.message().find("secret@x.io"), std::string::npos) << e.message();
    EXPECT_FALSE(e.message().empty());
  }
  // The kind of problem is still said.
  EXPECT_NE(ErrorFromSqlState("22P02", "invalid input syntax for type uuid: \"zz\"", nullptr).message().find("uuid"),
            std::string::npos);
}

// --- RedactConninfo (lib/torii/log) -----------------------------------------

TEST(RedactConninfo, HidesEveryPasswordForm) {
  struct Case {
    const char* in;
    const char* want;
  } cases[] = {
      {"postgresql://torii:s3cret@db.example:5432/torii", "postgresql://torii:****@db.example:5432/torii"},
      {"postgres://torii:s3cret@db.example/torii?sslmode=require",
       "postgres://torii:****@db.example/torii?sslmode=require"},
      {"postgresql://torii:p%40ss%2Fw@db/torii", "postgresql://torii:****@db/torii"},
      {"postgresql://:s3cret@db/torii", "postgresql://:****@db/torii"},
      {"POSTGRESQL://torii:s3cret@db/torii", "POSTGRESQL://torii:****@db/torii"},
      {"postgresql://torii@db/torii?password=s3cret", "postgresql://torii@db/torii?password=****"},
      {"postgresql://torii@db/torii?sslmode=require&password=s3cret&connect_timeout=5",
       "postgresql://torii@db/torii?sslmode=require&password=****&connect_timeout=5"},
      {"postgresql:///torii?host=/run/postgresql&PASSWORD=s3cret", "postgresql:///torii?host=/run/postgresql&PASSWORD=****"},
      {"host=db password=s3cret dbname=torii", "host=db password=**** dbname=torii"},
      {"password=s3cret host=db", "password=**** host=db"},
      {"host=db password='s3 cret' dbname=torii", "host=db password=**** dbname=torii"},
      {"host=db password = 's3 cret' dbname=torii", "host=db password = **** dbname=torii"},
      {"host=db password='it\\'s s3cret' dbname=torii", "host=db password=**** dbname=torii"},
      {"host=db\tPassword=s3cret", "host=db\tPassword=****"},
      // Nothing to hide: unchanged.
      {"host=/run/postgresql dbname=torii user=torii", "host=/run/postgresql dbname=torii user=torii"},
      {"postgresql://torii@db/torii", "postgresql://torii@db/torii"},
      {"", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    std::string out = RedactConninfo(c.in);
    EXPECT_EQ(out, c.want);
    EXPECT_EQ(out.find("s3"), std::string::npos);
  }
}

TEST(RedactConninfo, SslPasswordIsHiddenToo) {
  // "sslpassword" (the client key's passphrase) is a secret too.
  std::string out = RedactConninfo("host=db sslpassword=keypass password=s3cret");
  EXPECT_EQ(out, "host=db sslpassword=**** password=****");
  EXPECT_EQ(RedactConninfo("postgresql://db/torii?sslpassword=keypass"), "postgresql://db/torii?sslpassword=****");
}

}  // namespace
}  // namespace torii
