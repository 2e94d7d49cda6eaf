// Line-at-a-time logging to stderr, journald-aware.
#include "torii/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <regex>

namespace torii {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
// -1: not decided yet, 0: readable, 1: journal prefixes.
std::atomic<int> g_journal{-1};

constexpr const char* kLevelNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
// sd-daemon.h priorities: SD_DEBUG 7, SD_INFO 6, SD_WARNING 4, SD_ERR 3.
constexpr int kJournalPriority[] = {7, 6, 4, 3};

// JOURNAL_STREAM is "DEV:INODE" of the journal stream systemd gave as
// stdout/stderr. It is inherited by children whose stderr was redirected
// elsewhere, so (as sd-daemon(3)/systemd.exec(5) advise) it only counts
// when it names the file stderr actually is.
bool StderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

}  // namespace

bool ParseLogLevel(std::string_view name, LogLevel* out) {
  static constexpr std::string_view names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++) {
    if (name == names[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }
void SetLogJournal(bool journal) { g_journal.store(journal ? 1 : 0); }

void Log(LogLevel level, const char* fmt, ...) {
  int lv = static_cast<int>(level);
  if (lv < g_level.load(std::memory_order_relaxed)) return;
  int journal = g_journal.load(std::memory_order_relaxed);
  if (journal < 0) {
    journal = StderrIsJournal() ? 1 : 0;
    g_journal.store(journal);
  }

  char line[4096];
  int n;
  if (journal) {
    n = std::snprintf(line, sizeof(line), "<%d>", kJournalPriority[lv]);
  } else {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc;
    gmtime_r(&ts.tv_sec, &utc);
    n = std::snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", utc.tm_year + 1900,
                      utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ts.tv_nsec / 1000000,
                      kLevelNames[lv]);
  }
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
  va_end(ap);
  size_t len = n + (m < 0 ? 0 : std::min<size_t>(m, sizeof(line) - n - 2));
  // One record per line: an embedded newline (say, from a peer-supplied
  // string) would start a journal entry without a priority, or forge one.
  for (size_t i = n; i < len; i++) {
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  }
  line[len++] = '\n';
  ssize_t w = ::write(STDERR_FILENO, line, len);
  (void)w;
}

std::string RedactConninfo(std::string_view conninfo) {
  std::string s(conninfo);
  // URI form: scheme://user:password@host...
  static const std::regex uri_password(R"(^([a-z]+://[^:/@?]*):([^@/?]*)@)", std::regex::icase);
  s = std::regex_replace(s, uri_password, "$1:****@");
  // URI query parameter password=...
  static const std::regex query_password(R"(([?&](?:ssl)?password=)[^&]*)", std::regex::icase);
  s = std::regex_replace(s, query_password, "$1****");
  // key=value form: password=secret or password='se cret' (and sslpassword,
  // the passphrase of the client key)
  static const std::regex kv_password(R"((^|\s)((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))", std::regex::icase);
  s = std::regex_replace(s, kv_password, "$1$2****");
  return s;
}

}  // namespace torii
