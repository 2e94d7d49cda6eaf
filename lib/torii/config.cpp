// The parameter table and the TOML loader.
#include "torii/config.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include <variant>

#include "torii/log.h"

namespace torii {

namespace {

using IntRef = int64_t& (*)(Config&);
using BoolRef = bool& (*)(Config&);
using StrRef = std::string& (*)(Config&);
using ListRef = std::vector<std::string>& (*)(Config&);

struct Param {
  const char* section;
  const char* key;
  std::variant<IntRef, BoolRef, StrRef, ListRef> ref;
  bool reloadable;
  const char* doc;
  int64_t min = 0;
  int64_t max = 0;
  std::vector<const char*> choices = {};
  bool secret = false;
};

// Every key toriid reads. conf/toriid.toml lists each at its default with
// the same doc line (tests/unit/config_test.cpp checks they agree).
const std::vector<Param>& Params() {
  static const std::vector<Param> params = {
      {"server", "requests", ListRef([](Config& c) -> auto& { return c.server.requests; }), false,
       "ZeroMQ ROUTER endpoints for requests (tcp:// or ipc://)"},
      {"server", "events", ListRef([](Config& c) -> auto& { return c.server.events; }), false,
       "ZeroMQ PUB endpoints for change events"},
      {"server", "request_timeout_ms", IntRef([](Config& c) -> auto& { return c.server.request_timeout_ms; }), true,
       "default deadline of a request, counted from receipt", 1, 3600000},
      {"server", "max_message_bytes", IntRef([](Config& c) -> auto& { return c.server.max_message_bytes; }), false,
       "frames larger than this are refused", 256, 268435456},
      {"server", "max_pending", IntRef([](Config& c) -> auto& { return c.server.max_pending; }), true,
       "requests waiting for a database connection before new ones get overloaded", 1, 10000000},
      {"server", "pipeline_depth", IntRef([](Config& c) -> auto& { return c.server.pipeline_depth; }), true,
       "requests in flight at once on one pooled connection (libpq pipeline mode)", 1, 4096},

      {"database", "url", StrRef([](Config& c) -> auto& { return c.database.url; }), false,
       "libpq URI or key=value string; empty: run an embedded PostgreSQL", 0, 0, {}, true},
      {"database", "url_file", StrRef([](Config& c) -> auto& { return c.database.url_file; }), false,
       "file whose first line is the database URL (keeps the password out of this file)"},
      {"database", "max_connections", IntRef([](Config& c) -> auto& { return c.database.max_connections; }), false,
       "largest number of pooled connections", 1, 1000},
      {"database", "min_connections", IntRef([](Config& c) -> auto& { return c.database.min_connections; }), false,
       "pooled connections kept open when idle", 0, 1000},
      {"database", "connect_timeout_ms",
       IntRef([](Config& c) -> auto& { return c.database.connect_timeout_ms; }), false,
       "deadline of one connection attempt", 100, 600000},
      {"database", "ssl_mode", StrRef([](Config& c) -> auto& { return c.database.ssl_mode; }), false,
       "libpq sslmode for pooled and listening connections", 0, 0,
       {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
      {"database", "tcp_user_timeout_ms",
       IntRef([](Config& c) -> auto& { return c.database.tcp_user_timeout_ms; }), false,
       "TCP_USER_TIMEOUT and keepalive bound for database sockets; 0 leaves the OS default", 0, 3600000},
      {"database", "data_dir", StrRef([](Config& c) -> auto& { return c.database.data_dir; }), false,
       "embedded PostgreSQL data directory; empty: a per-user default"},
      {"database", "embedded_user", StrRef([](Config& c) -> auto& { return c.database.embedded_user; }), false,
       "system account that runs the embedded PostgreSQL when toriid runs as root"},

      {"events", "heartbeat_ms", IntRef([](Config& c) -> auto& { return c.events.heartbeat_ms; }), true,
       "interval of torii.heartbeat messages", 10, 3600000},
      {"events", "probe_interval_ms", IntRef([](Config& c) -> auto& { return c.events.probe_interval_ms; }), true,
       "interval of the LISTEN connection's self-notify probe", 100, 3600000},
      {"events", "probe_timeout_ms", IntRef([](Config& c) -> auto& { return c.events.probe_timeout_ms; }), true,
       "a probe not heard back within this marks the LISTEN connection dead", 50, 3600000},
      {"events", "send_hwm", IntRef([](Config& c) -> auto& { return c.events.send_hwm; }), false,
       "messages queued per subscriber before PUB drops (subscribers see a seq gap)", 100, 100000000},

      {"cleanup", "interval_s", IntRef([](Config& c) -> auto& { return c.cleanup.interval_s; }), true,
       "seconds between expired-session cleanup passes (with up to 10% jitter); 0 disables", 0, 86400 * 7},
      {"cleanup", "batch_size", IntRef([](Config& c) -> auto& { return c.cleanup.batch_size; }), true,
       "rows deleted per cleanup transaction", 1, 1000000},
      {"cleanup", "time_budget_ms", IntRef([](Config& c) -> auto& { return c.cleanup.time_budget_ms; }), true,
       "a pass stops after this long and resumes at the next tick", 10, 3600000},
      {"cleanup", "login_failure_retention_s",
       IntRef([](Config& c) -> auto& { return c.cleanup.login_failure_retention_s; }), true,
       "delete failed-login records older than this (those of locked users stay)", 60, 86400LL * 3660},

      {"audit", "enabled", BoolRef([](Config& c) -> auto& { return c.audit.enabled; }), true,
       "write audit_logs rows for changes to users and sessions"},
      {"audit", "sessions", BoolRef([](Config& c) -> auto& { return c.audit.sessions; }), true,
       "audit session changes too (heavy on busy sites)"},
      {"audit", "retention_days", IntRef([](Config& c) -> auto& { return c.audit.retention_days; }), true,
       "delete audit rows older than this many days; 0 keeps them forever", 0, 36500},

      {"cache", "sessions", IntRef([](Config& c) -> auto& { return c.cache.sessions; }), false,
       "sessions the daemon keeps in memory to answer get_session without SQL; 0 turns the cache off", 0,
       100000000},
      {"cache", "lease_ms", IntRef([](Config& c) -> auto& { return c.cache.lease_ms; }), true,
       "a cached session is served only while the LISTEN connection proved itself alive this recently", 100,
       3600000},

      {"log", "level", StrRef([](Config& c) -> auto& { return c.log.level; }), true,
       "debug, info, warn or error", 0, 0, {"debug", "info", "warn", "error"}},

      {"security", "curve_secret_key_file",
       StrRef([](Config& c) -> auto& { return c.security.curve_secret_key_file; }), false,
       "file with the server's CURVE secret key (Z85); set: CURVE on both sockets"},
      {"security", "curve_authorized_keys_dir",
       StrRef([](Config& c) -> auto& { return c.security.curve_authorized_keys_dir; }), true,
       "folder of authorized client public keys (Z85, one per file)"},
      {"security", "allow_plaintext_network",
       BoolRef([](Config& c) -> auto& { return c.security.allow_plaintext_network; }), false,
       "serve tcp:// endpoints that other hosts can reach without CURVE; off: toriid refuses to start"},

      {"metrics", "listen", StrRef([](Config& c) -> auto& { return c.metrics.listen; }), false,
       "address:port of the Prometheus /metrics endpoint, e.g. \"127.0.0.1:9464\"; empty: off"},
  };
  return params;
}

std::string Where(const std::string& name, const toml::source_region& src, const std::string& key) {
  std::string s = name;
  if (src.begin.line > 0) s += ":" + std::to_string(src.begin.line);
  s += ": " + key + ": ";
  return s;
}

// Sets one parameter from its TOML node; returns an error text or "".
std::string SetParam(const Param& p, Config& c, const toml::node& node) {
  struct Visitor {
    const Param& p;
    Config& c;
    const toml::node& node;
    std::string operator()(IntRef ref) const {
      auto v = node.value_exact<int64_t>();
      if (!v) return "expected an integer";
      if (*v < p.min || *v > p.max) {
        return "must be between " + std::to_string(p.min) + " and " + std::to_string(p.max);
      }
      ref(c) = *v;
      return "";
    }
    std::string operator()(BoolRef ref) const {
      auto v = node.value_exact<bool>();
      if (!v) return "expected true or false";
      ref(c) = *v;
      return "";
    }
    std::string operator()(StrRef ref) const {
      auto v = node.value_exact<std::string>();
      if (!v) return "expected a string";
      if (!p.choices.empty()) {
        std::string list;
        for (const char* ch : p.choices) {
          if (*v == ch) {
            ref(c) = *v;
            return "";
          }
          list += list.empty() ? "" : ", ";
          list += ch;
        }
        return "must be one of " + list;
      }
      ref(c) = *v;
      return "";
    }
    std::string operator()(ListRef ref) const {
      const toml::array* arr = node.as_array();
      if (arr == nullptr) return "expected an array of strings";
      std::vector<std::string> out;
      for (const auto& el : *arr) {
        auto v = el.value_exact<std::string>();
        if (!v) return "expected an array of strings";
        out.push_back(*v);
      }
      ref(c) = std::move(out);
      return "";
    }
  };
  return std::visit(Visitor{p, c, node}, p.ref);
}

// "" when `listen` is empty or HOST:PORT (HOST an IPv4 address, [IPv6] or
// a name; PORT 1..65535), else why not. The exposer binds it at start.
std::string MetricsListenError(const std::string& listen) {
  if (listen.empty()) return "";
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return "'" + listen + "' is not HOST:PORT (e.g. 127.0.0.1:9464)";
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.find(':') != std::string::npos && (host.front() != '[' || host.back() != ']')) {
    return "'" + listen + "': an IPv6 address goes in brackets, e.g. [::1]:9464";
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535) {
    return "'" + listen + "': the port must be 1..65535";
  }
  return "";
}

std::string Validate(const Config& c) {
  auto endpoints_ok = [](const std::vector<std::string>& eps) {
    for (const auto& e : eps) {
      if (e.rfind("tcp://", 0) != 0 && e.rfind("ipc://", 0) != 0) return "endpoint " + e + " is not tcp:// or ipc://";
    }
    return std::string();
  };
  if (c.server.requests.empty()) return "server.requests: at least one endpoint is needed";
  if (auto e = endpoints_ok(c.server.requests); !e.empty()) return "server.requests: " + e;
  if (auto e = endpoints_ok(c.server.events); !e.empty()) return "server.events: " + e;
  if (c.database.min_connections > c.database.max_connections) {
    return "database.min_connections: larger than database.max_connections";
  }
  if (!c.database.url.empty() && !c.database.url_file.empty()) {
    return "database.url_file: set together with database.url; keep one";
  }
  if (c.events.probe_timeout_ms >= c.events.probe_interval_ms * 4) {
    return "events.probe_timeout_ms: must be less than four probe intervals";
  }
  if (auto e = MetricsListenError(c.metrics.listen); !e.empty()) return "metrics.listen: " + e;
  return "";
}

// `redact` hides secrets for printing; comparisons (Diff, ApplyReloadable)
// pass false so that a change to a password alone is still seen.
std::string NodeToToml(const Param& p, Config& c, bool redact = true) {
  struct Visitor {
    const Param& p;
    Config& c;
    bool redact;
    std::string operator()(IntRef ref) const { return std::to_string(ref(c)); }
    std::string operator()(BoolRef ref) const { return ref(c) ? "true" : "false"; }
    std::string operator()(StrRef ref) const {
      std::string v = ref(c);
      if (p.secret && redact) v = RedactConninfo(v);
      std::ostringstream os;
      os << toml::value<std::string>(v);
      return os.str();
    }
    std::string operator()(ListRef ref) const {
      std::string s = "[";
      for (size_t i = 0; i < ref(c).size(); i++) {
        std::ostringstream os;
        os << toml::value<std::string>(ref(c)[i]);
        s += (i ? ", " : "") + os.str();
      }
      return s + "]";
    }
  };
  return std::visit(Visitor{p, c, redact}, p.ref);
}

}  // namespace

Result<Config> Config::Parse(const std::string& text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    std::string where = name;
    if (e.source().begin.line > 0) where += ":" + std::to_string(e.source().begin.line);
    return Error::InvalidArgument(where + ": " + std::string(e.description()));
  }

  Config c;
  for (const auto& [section_key, section_node] : root) {
    std::string section(section_key.str());
    bool known_section = false;
    for (const auto& p : Params()) known_section |= section == p.section;
    if (!known_section) {
      return Error::InvalidArgument(Where(name, section_node.source(), section) + "unknown section");
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      return Error::InvalidArgument(Where(name, section_node.source(), section) + "expected a table");
    }
    for (const auto& [key, node] : *table) {
      std::string full = section + "." + std::string(key.str());
      const Param* param = nullptr;
      for (const auto& p : Params()) {
        if (section == p.section && key.str() == p.key) param = &p;
      }
      if (param == nullptr) return Error::InvalidArgument(Where(name, node.source(), full) + "unknown key");
      std::string err = SetParam(*param, c, node);
      if (!err.empty()) return Error::InvalidArgument(Where(name, node.source(), full) + err);
    }
  }
  if (std::string err = Validate(c); !err.empty()) return Error::InvalidArgument(name + ": " + err);
  return c;
}

Result<Config> Config::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::InvalidArgument(path + ": cannot read the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

Result<std::string> Config::DatabaseUrl() const {
  if (const char* env = std::getenv("TORII_DATABASE_URL"); env != nullptr && *env != '\0') return std::string(env);
  if (!database.url_file.empty()) {
    std::ifstream in(database.url_file);
    if (!in) return Error::InvalidArgument("database.url_file: cannot read " + database.url_file);
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) return Error::InvalidArgument("database.url_file: " + database.url_file + " is empty");
    return line;
  }
  return database.url;
}

std::string Config::ToToml() const {
  Config copy = *this;
  std::string out;
  std::string section;
  for (const auto& p : Params()) {
    if (section != p.section) {
      section = p.section;
      out += (out.empty() ? "[" : "\n[") + section + "]\n";
    }
    out += std::string(p.key) + " = " + NodeToToml(p, copy) + "\n";
  }
  return out;
}

std::vector<std::string> Config::Diff(const Config& other) const {
  Config a = *this;
  Config b = other;
  std::vector<std::string> changed;
  for (const auto& p : Params()) {
    if (NodeToToml(p, a, false) != NodeToToml(p, b, false)) changed.push_back(std::string(p.section) + "." + p.key);
  }
  return changed;
}

std::vector<std::string> Config::ApplyReloadable(const Config& next) {
  Config n = next;
  std::vector<std::string> need_restart;
  for (const auto& p : Params()) {
    if (NodeToToml(p, *this, false) == NodeToToml(p, n, false)) continue;
    if (!p.reloadable) {
      need_restart.push_back(std::string(p.section) + "." + p.key);
      continue;
    }
    std::visit([&](auto ref) { ref(*this) = ref(n); }, p.ref);
  }
  return need_restart;
}

std::vector<ConfigParamInfo> ConfigParams() {
  std::vector<ConfigParamInfo> out;
  for (const auto& p : Params()) {
    static constexpr const char* kTypes[] = {"int", "bool", "string", "string list"};
    out.push_back({p.section, p.key, kTypes[p.ref.index()], p.reloadable, p.doc});
  }
  return out;
}

}  // namespace torii
