// Unit tests of lib/torii/config: the shipped conf/toriid.toml against the
// parameter table, each kind of config error and how it is reported,
// redaction in ToToml, Diff/ApplyReloadable, and where the database URL
// comes from. No database.
#include "torii/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace torii {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Sets (or unsets) an environment variable for the life of the object.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~EnvGuard() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A temporary folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "torii-config-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

const std::string kShippedConfig = std::string(TORII_SOURCE_DIR) + "/conf/toriid.toml";

TEST(ShippedConfig, LoadsAndEqualsBuiltInDefaults) {
  auto loaded = Config::Load(kShippedConfig);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(Config{}.Diff(loaded.value()), std::vector<std::string>{});
}

// Each key appears as `key = ...` under its [section], and the comment block
// right above it holds the table's doc line and the right reload marker.
TEST(ShippedConfig, ListsEveryParameterWithItsDocLine) {
  std::vector<std::string> lines;
  {
    std::istringstream in(ReadFile(kShippedConfig));
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  ASSERT_FALSE(lines.empty());
  auto params = ConfigParams();
  ASSERT_GT(params.size(), 20u);
  for (const auto& p : params) {
    SCOPED_TRACE(p.section + "." + p.key);
    std::string section;
    int found = -1;
    for (size_t i = 0; i < lines.size(); i++) {
      if (!lines[i].empty() && lines[i][0] == '[') section = lines[i];
      if (section == "[" + p.section + "]" && lines[i].rfind(p.key + " = ", 0) == 0) {
        EXPECT_EQ(found, -1) << "listed twice";
        found = static_cast<int>(i);
      }
    }
    ASSERT_GE(found, 0) << "missing from conf/toriid.toml";
    std::string want = "# " + p.doc + (p.reloadable ? " [SIGHUP reloads]" : " [restart]");
    bool has_doc = false;
    for (int i = found - 1; i >= 0 && !lines[i].empty() && lines[i][0] == '#'; i--) has_doc |= lines[i] == want;
    EXPECT_TRUE(has_doc) << "no comment line '" << want << "' right above the key";
  }
}

TEST(Config, ParseOfToTomlRoundTrips) {
  Config c;
  c.server.requests = {"tcp://127.0.0.1:1", "ipc:///run/toriid/req"};
  c.server.request_timeout_ms = 1234;
  c.database.ssl_mode = "require";
  c.database.data_dir = "/srv/with \"quote\" and 'apostrophe'";
  c.audit.enabled = false;
  c.log.level = "debug";
  auto back = Config::Parse(c.ToToml(), "printed");
  ASSERT_TRUE(back.ok()) << back.error().message() << "\n" << c.ToToml();
  EXPECT_EQ(c.Diff(back.value()), std::vector<std::string>{});
}

struct ErrorCase {
  const char* name;
  const char* toml;
  std::vector<const char*> want;  // substrings of the message, in any order
};

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, IsInvalidArgumentNamingFileLineAndKey) {
  const ErrorCase& c = GetParam();
  auto r = Config::Parse(c.toml, "site.toml");
  ASSERT_FALSE(r.ok()) << "accepted:\n" << c.toml;
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message().rfind("site.toml", 0), 0u) << r.error().message();
  for (const char* w : c.want) EXPECT_NE(r.error().message().find(w), std::string::npos) << r.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ConfigErrorTest,
    ::testing::Values(
        // TOML syntax errors: file and line.
        ErrorCase{"SyntaxUnclosedTable", "[server]\nrequest_timeout_ms = 10\n[database\n", {"site.toml:3:"}},
        ErrorCase{"SyntaxMissingValue", "[server]\n\nrequest_timeout_ms =\n", {"site.toml:3:"}},
        ErrorCase{"SyntaxDuplicateKey", "[log]\nlevel = \"info\"\nlevel = \"warn\"\n", {"site.toml:3:"}},
        ErrorCase{"SyntaxIntegerOverflow", "[server]\nrequest_timeout_ms = 99999999999999999999\n", {"site.toml:2:"}},
        // Structure.
        ErrorCase{"UnknownSection", "[log]\nlevel = \"info\"\n\n[nope]\nx = 1\n", {"site.toml:4: nope: unknown section"}},
        ErrorCase{"SectionNotATable", "log = 3\n", {"site.toml:1: log: expected a table"}},
        ErrorCase{"UnknownKey", "[server]\nrequest_timeout_ms = 10\nrequest_timeout = 10\n",
                  {"site.toml:3: server.request_timeout: unknown key"}},
        ErrorCase{"UnknownNestedTable", "[server]\n[server.extra]\nx = 1\n", {"server.extra: unknown key"}},
        // Wrong types, one per parameter type.
        ErrorCase{"IntGivenString", "[server]\nrequest_timeout_ms = \"5000\"\n",
                  {"site.toml:2: server.request_timeout_ms: expected an integer"}},
        ErrorCase{"IntGivenFloat", "[server]\nrequest_timeout_ms = 5000.0\n",
                  {"site.toml:2: server.request_timeout_ms: expected an integer"}},
        ErrorCase{"BoolGivenInt", "[audit]\nenabled = 1\n", {"site.toml:2: audit.enabled: expected true or false"}},
        ErrorCase{"StringGivenInt", "[database]\nurl = 5\n", {"site.toml:2: database.url: expected a string"}},
        ErrorCase{"ListGivenString", "[server]\nrequests = \"tcp://127.0.0.1:1\"\n",
                  {"site.toml:2: server.requests: expected an array of strings"}},
        ErrorCase{"ListOfInts", "[server]\nevents = [1, 2]\n", {"site.toml:2: server.events: expected an array of strings"}},
        // Out of range: both ends.
        ErrorCase{"BelowMinimum", "[server]\nrequest_timeout_ms = 0\n",
                  {"site.toml:2: server.request_timeout_ms: must be between 1 and 3600000"}},
        ErrorCase{"AboveMaximum", "[database]\nmax_connections = 1001\n",
                  {"site.toml:2: database.max_connections: must be between 1 and 1000"}},
        ErrorCase{"Negative", "[cleanup]\ninterval_s = -1\n", {"site.toml:2: cleanup.interval_s: must be between"}},
        // Choices.
        ErrorCase{"BadSslMode", "[database]\nssl_mode = \"sometimes\"\n",
                  {"site.toml:2: database.ssl_mode: must be one of disable, allow, prefer, require"}},
        ErrorCase{"BadLogLevel", "[log]\nlevel = \"trace\"\n", {"site.toml:2: log.level: must be one of debug"}},
        ErrorCase{"ChoiceIsCaseSensitive", "[log]\nlevel = \"INFO\"\n", {"log.level"}},
        // Cross-field and whole-config rules: file and key.
        ErrorCase{"MinAboveMax", "[database]\nmax_connections = 2\nmin_connections = 3\n",
                  {"database.min_connections", "larger than database.max_connections"}},
        ErrorCase{"UrlAndUrlFile", "[database]\nurl = \"host=x\"\nurl_file = \"/etc/torii/url\"\n",
                  {"database.url_file", "keep one"}},
        ErrorCase{"ProbeTimeoutTooLong", "[events]\nprobe_interval_ms = 100\nprobe_timeout_ms = 400\n",
                  {"events.probe_timeout_ms"}},
        ErrorCase{"NoRequestEndpoint", "[server]\nrequests = []\n", {"server.requests", "at least one"}},
        ErrorCase{"BadRequestEndpoint", "[server]\nrequests = [\"udp://x:1\"]\n", {"server.requests", "udp://x:1"}},
        ErrorCase{"BadEventEndpoint", "[server]\nevents = [\"tcp://127.0.0.1:1\", \"inproc://x\"]\n",
                  {"server.events", "inproc://x"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Config, ErrorNeverEchoesTheDatabasePassword) {
  auto r = Config::Parse("[database]\nurl = \"postgresql://u:hunter2@h/db\"\nurl_file = \"/x\"\n", "site.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().find("hunter2"), std::string::npos) << r.error().message();
}

TEST(Config, LoadNamesAMissingFile) {
  auto r = Config::Load("/nonexistent/toriid.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/nonexistent/toriid.toml"), std::string::npos);
}

TEST(Config, LoadReportsThePathAndLine) {
  TempDir dir;
  std::string path = dir.Write("bad.toml", "# comment\n[server]\nmax_pending = true\n");
  auto r = Config::Load(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), path + ":3: server.max_pending: expected an integer");
}

TEST(Config, EmptyFileIsTheDefaults) {
  auto r = Config::Parse("", "empty.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(Config{}.Diff(r.value()).empty());
}

TEST(Config, ToTomlRedactsTheDatabasePassword) {
  for (const char* url : {"postgresql://torii:s3cr3t-pw@db.example/torii",
                          "postgresql://torii@db.example/torii?password=s3cr3t-pw&sslmode=require",
                          "host=db.example user=torii password='s3cr3t-pw' dbname=torii"}) {
    SCOPED_TRACE(url);
    Config c;
    c.database.url = url;
    std::string out = c.ToToml();
    EXPECT_EQ(out.find("s3cr3t-pw"), std::string::npos) << out;
    EXPECT_NE(out.find("****"), std::string::npos) << out;
    EXPECT_NE(out.find("db.example"), std::string::npos) << out;
  }
}

// Diff must see a changed password even though ToToml hides it: otherwise a
// reload that changes only the password would not be reported.
TEST(Config, DiffSeesAPasswordChange) {
  Config a, b;
  a.database.url = "postgresql://torii:one@h/db";
  b.database.url = "postgresql://torii:two@h/db";
  EXPECT_EQ(a.Diff(b), std::vector<std::string>{"database.url"});
  EXPECT_EQ(a.ApplyReloadable(b), std::vector<std::string>{"database.url"});
  EXPECT_EQ(a.database.url, "postgresql://torii:one@h/db");
}

TEST(Config, DiffNamesChangedKeys) {
  Config a, b;
  EXPECT_TRUE(a.Diff(b).empty());
  b.server.request_timeout_ms = 7;
  b.server.events = {};
  b.audit.sessions = false;
  EXPECT_EQ(a.Diff(b), (std::vector<std::string>{"server.events", "server.request_timeout_ms", "audit.sessions"}));
}

TEST(Config, ApplyReloadableCopiesOnlyReloadableKeys) {
  Config running;
  Config next;
  next.server.request_timeout_ms = 250;      // reloadable
  next.log.level = "debug";                  // reloadable
  next.security.curve_authorized_keys_dir = "/etc/torii/keys";  // reloadable
  next.database.max_connections = 32;        // restart
  next.server.requests = {"tcp://0.0.0.0:9"};  // restart
  auto restart = running.ApplyReloadable(next);
  EXPECT_EQ(restart, (std::vector<std::string>{"server.requests", "database.max_connections"}));
  EXPECT_EQ(running.server.request_timeout_ms, 250);
  EXPECT_EQ(running.log.level, "debug");
  EXPECT_EQ(running.security.curve_authorized_keys_dir, "/etc/torii/keys");
  EXPECT_EQ(running.database.max_connections, 8);
  EXPECT_EQ(running.server.requests, std::vector<std::string>{"tcp://127.0.0.1:7420"});
  // Applying the same again changes nothing and still names the restart keys.
  EXPECT_EQ(running.ApplyReloadable(next), restart);
  EXPECT_EQ(running.Diff(next), restart);
}

TEST(Config, ReloadableFlagsMatchTheTable) {
  // Spot checks of the documented reload behaviour that operators rely on.
  std::map<std::string, bool> want = {{"server.requests", false}, {"server.request_timeout_ms", true},
                                      {"database.url", false},    {"log.level", true},
                                      {"cleanup.interval_s", true}, {"security.curve_secret_key_file", false}};
  for (const auto& p : ConfigParams()) {
    auto it = want.find(p.section + "." + p.key);
    if (it == want.end()) continue;
    EXPECT_EQ(p.reloadable, it->second) << it->first;
    want.erase(it);
  }
  EXPECT_TRUE(want.empty());
}

TEST(DatabaseUrl, EnvironmentWinsOverFileAndUrl) {
  TempDir dir;
  EnvGuard env("TORII_DATABASE_URL", "postgresql://from-env/db");
  Config c;
  c.database.url = "postgresql://from-url/db";
  c.database.url_file = dir.Write("url", "postgresql://from-file/db\n");
  auto url = c.DatabaseUrl();
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url.value(), "postgresql://from-env/db");
}

TEST(DatabaseUrl, FileWinsOverUrlAndOnlyItsFirstLineCounts) {
  TempDir dir;
  EnvGuard env("TORII_DATABASE_URL", nullptr);
  Config c;
  c.database.url = "postgresql://from-url/db";
  c.database.url_file = dir.Write("url", "postgresql://u:pw@from-file/db \r\n# second line\n");
  auto url = c.DatabaseUrl();
  ASSERT_TRUE(url.ok()) << url.error().message();
  EXPECT_EQ(url.value(), "postgresql://u:pw@from-file/db");
}

TEST(DatabaseUrl, EmptyEnvironmentVariableIsIgnored) {
  EnvGuard env("TORII_DATABASE_URL", "");
  Config c;
  c.database.url = "postgresql://from-url/db";
  auto url = c.DatabaseUrl();
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url.value(), "postgresql://from-url/db");
}

TEST(DatabaseUrl, NothingSetMeansEmbedded) {
  EnvGuard env("TORII_DATABASE_URL", nullptr);
  auto url = Config{}.DatabaseUrl();
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url.value(), "");
}

TEST(DatabaseUrl, UnreadableOrEmptyFileIsAnError) {
  TempDir dir;
  EnvGuard env("TORII_DATABASE_URL", nullptr);
  Config c;
  c.database.url_file = "/nonexistent/torii-url";
  auto missing = c.DatabaseUrl();
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("database.url_file"), std::string::npos);
  EXPECT_NE(missing.error().message().find("/nonexistent/torii-url"), std::string::npos);

  c.database.url_file = dir.Write("empty", "\n");
  auto empty = c.DatabaseUrl();
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message().find("is empty"), std::string::npos);
}

TEST(DatabaseUrl, FileContentNeverAppearsInErrors) {
  TempDir dir;
  EnvGuard env("TORII_DATABASE_URL", nullptr);
  Config c;
  c.database.url_file = dir.Write("url", "\npostgresql://u:hunter2@h/db\n");  // first line empty
  auto r = c.DatabaseUrl();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace torii
