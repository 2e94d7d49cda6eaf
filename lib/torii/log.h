// Logging to stderr. Under systemd (JOURNAL_STREAM names stderr's device
// and inode) each line carries a "<N>" priority prefix for the journal;
// otherwise a UTC timestamp and level.
// Callable from any thread; a line is written with one write(2).
//
// Never pass a secret: password hashes, tokens, token digests, or a database
// URL that still holds its password (use RedactConninfo first).
#pragma once

#include <string>
#include <string_view>

namespace torii {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn" or "error".
bool ParseLogLevel(std::string_view name, LogLevel* out);
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Switches between journal prefixes and readable timestamps; the default
// follows JOURNAL_STREAM at the first log call.
void SetLogJournal(bool journal);

void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// A libpq connection string (URI or key=value) with any password replaced by
// "****", safe to log or print.
std::string RedactConninfo(std::string_view conninfo);

}  // namespace torii

#define TLOG_DEBUG(...) ::torii::Log(::torii::LogLevel::kDebug, __VA_ARGS__)
#define TLOG_INFO(...) ::torii::Log(::torii::LogLevel::kInfo, __VA_ARGS__)
#define TLOG_WARN(...) ::torii::Log(::torii::LogLevel::kWarn, __VA_ARGS__)
#define TLOG_ERROR(...) ::torii::Log(::torii::LogLevel::kError, __VA_ARGS__)
