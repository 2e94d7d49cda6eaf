// toriid: flags, config, then the Daemon. No logic a test would want.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "daemon.h"
#include "torii/config.h"
#include "torii/log.h"
#include "torii/protected_mode.h"

int main(int argc, char** argv) {
  CLI::App app{"toriid: the Torii storage daemon (users and sessions in PostgreSQL, served over ZeroMQ)"};
  std::string config_path;
  bool migrate = false, check = false, print = false, version = false;
  app.add_option("-c,--config", config_path, "TOML config file (default: built-in defaults)");
  app.add_flag("--migrate", migrate, "apply schema migrations and exit");
  app.add_flag("--check-config", check, "validate the config and exit (0 ok, 2 errors)");
  app.add_flag("--print-config", print, "print the effective config, secrets redacted, and exit");
  app.add_flag("--version", version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (version) {
    std::printf("toriid %s (protocol 1)\n", TORII_VERSION);
    return 0;
  }

  torii::Config config;
  if (!config_path.empty()) {
    auto loaded = torii::Config::Load(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "toriid: config error: %s\n", loaded.error().message().c_str());
      return 2;
    }
    config = std::move(loaded.value());
  }
  // Protected mode (docs/security.md); --migrate and --print-config bind
  // nothing, so they go ahead.
  torii::ProtectedMode protect;
  if (check || (!print && !migrate)) protect = torii::CheckProtectedMode(config);
  const std::string& refusal = protect.refusal;
  if (check) {
    if (auto url = config.DatabaseUrl(); !url.ok()) {
      std::fprintf(stderr, "toriid: config error: %s\n", url.error().message().c_str());
      return 2;
    }
    if (!refusal.empty()) {
      std::fprintf(stderr, "toriid: config error: %s\n", refusal.c_str());
      return 2;
    }
    if (!protect.warning.empty()) std::fprintf(stderr, "toriid: warning: %s\n", protect.warning.c_str());
    std::printf("toriid: %s is valid\n", config_path.empty() ? "the default config" : config_path.c_str());
    return 0;
  }
  if (print) {
    std::fputs(config.ToToml().c_str(), stdout);
    // The URL in force may come from outside the file (TORII_DATABASE_URL,
    // database.url_file); say which one wins, password redacted.
    auto url = config.DatabaseUrl();
    const char* env = std::getenv("TORII_DATABASE_URL");
    const char* source = env != nullptr && *env != '\0'       ? "TORII_DATABASE_URL"
                         : !config.database.url_file.empty() ? "database.url_file"
                         : !config.database.url.empty()      ? "database.url"
                                                             : "embedded PostgreSQL";
    if (!url.ok()) {
      std::printf("\n# database URL in force: error: %s\n", url.error().message().c_str());
      return 2;
    }
    std::printf("\n# database URL in force (from %s): %s\n", source, torii::RedactConninfo(*url).c_str());
    return 0;
  }
  if (!refusal.empty()) {
    std::fprintf(stderr, "toriid: refusing to start: %s\n", refusal.c_str());
    return 2;
  }
  torii::LogLevel level;
  if (torii::ParseLogLevel(config.log.level, &level)) torii::SetLogLevel(level);

  torii::daemon::Daemon daemon(std::move(config), config_path);
  if (migrate) {
    auto st = daemon.MigrateOnly();
    if (!st.ok()) {
      TLOG_ERROR("toriid: %s", st.error().message().c_str());
      return 1;
    }
    return 0;
  }
  if (auto st = daemon.Start(); !st.ok()) {
    TLOG_ERROR("toriid: cannot start: %s", st.error().message().c_str());
    return 1;
  }
  return daemon.Run();
}
