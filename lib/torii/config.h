// toriid's configuration: one typed struct, loaded from TOML through one
// table of parameters (config.cpp kParams) that gives each key its type,
// default, bounds, whether SIGHUP may change it, and one line of doc.
//
// Load() parses into a fresh Config and validates it whole; a caller swaps
// it in only when it is ok, so a bad reload keeps the running config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "torii/error.h"

namespace torii {

struct Config {
  struct Server {
    std::vector<std::string> requests{"tcp://127.0.0.1:7420"};
    std::vector<std::string> events{"tcp://127.0.0.1:7421"};
    int64_t request_timeout_ms = 5000;
    int64_t max_message_bytes = 1048576;
    int64_t max_pending = 10000;
    int64_t pipeline_depth = 128;
  } server;
  struct Database {
    std::string url;
    std::string url_file;
    int64_t max_connections = 8;
    int64_t min_connections = 1;
    int64_t connect_timeout_ms = 30000;
    std::string ssl_mode = "prefer";
    int64_t tcp_user_timeout_ms = 10000;
    std::string data_dir;
    std::string embedded_user = "postgres";
  } database;
  struct Events {
    int64_t heartbeat_ms = 1000;
    int64_t probe_interval_ms = 5000;
    int64_t probe_timeout_ms = 3000;
    int64_t send_hwm = 100000;
  } events;
  struct Cleanup {
    int64_t interval_s = 60;
    int64_t batch_size = 5000;
    int64_t time_budget_ms = 30000;
    int64_t login_failure_retention_s = 604800;
  } cleanup;
  struct Audit {
    bool enabled = true;
    bool sessions = true;
    int64_t retention_days = 0;
  } audit;
  struct Cache {
    int64_t sessions = 100000;
    int64_t lease_ms = 1000;
  } cache;
  struct Log {
    std::string level = "info";
  } log;
  struct Security {
    std::string curve_secret_key_file;
    std::string curve_authorized_keys_dir;
    bool allow_plaintext_network = false;  // protected mode's opt-out (torii/protected_mode.h)
  } security;
  struct Metrics {
    std::string listen;  // "host:port" of the Prometheus /metrics endpoint; empty: off
  } metrics;

  // Reads and validates a TOML file. Errors read "FILE:LINE: section.key: why".
  static Result<Config> Load(const std::string& path);
  // The same from TOML text; `name` stands for the file in messages.
  static Result<Config> Parse(const std::string& text, const std::string& name);

  // The database connection string in force: TORII_DATABASE_URL if set, else
  // the first line of database.url_file if set, else database.url. Empty
  // means the embedded PostgreSQL.
  Result<std::string> DatabaseUrl() const;

  // The whole effective config as TOML, every key, secrets redacted.
  std::string ToToml() const;

  // Names ("section.key") of the keys whose values differ from `other`.
  std::vector<std::string> Diff(const Config& other) const;
  // Copies the reloadable keys of `next` into this config; returns the
  // changed keys that need a restart to take effect.
  std::vector<std::string> ApplyReloadable(const Config& next);
};

// One row of the parameter table, for docs and tests.
struct ConfigParamInfo {
  std::string section;
  std::string key;
  std::string type;  // "int", "bool", "string", "string list"
  bool reloadable;
  std::string doc;
};
std::vector<ConfigParamInfo> ConfigParams();

}  // namespace torii
