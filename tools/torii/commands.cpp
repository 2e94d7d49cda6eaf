// The torii CLI's commands. See commands.h.
#include "commands.h"

#include <signal.h>

#include <chrono>
#include <ctime>
#include <iostream>
#include <set>

#include "output.h"
#include "torii/client.h"
#include "torii/curve.h"
#include "torii/log.h"
#include "torii/pg.h"
#include "torii/sqlite_migrate.h"
#include "torii/subscriber.h"
#include "torii/values.h"

namespace torii::cli {

namespace {

// The client cannot tell a daemon that is down from one that is slow: both
// are a local timeout. A `timeout` the daemon itself answered is an error
// reply like any other (exit 1); a local one is exit 3. ClientStats tells
// them apart.
int ExitFor(const Error& e, bool local_timeout) {
  if (local_timeout) return kExitUnreachable;
  return kExitDaemonError;
}

void PrintError(const Globals& g, const Error& e) {
  if (g.json) {
    nlohmann::json j = {{"ok", false}, {"error", {{"code", CodeName(e.code())}, {"message", e.message()}}}};
    std::cerr << j.dump() << std::endl;
  } else {
    std::cerr << "error: " << CodeName(e.code()) << ": " << e.message() << std::endl;
  }
}

struct Conn {
  std::optional<Client> client;
  int failed = kExitOk;
};

// Reads the CURVE key files of --server-key/--client-key into `o` (a
// ClientOptions or SubscriberOptions). False, after printing why, on error.
template <typename Options>
bool LoadCurveKeys(const Globals& g, Options& o) {
  if (g.server_key_file.empty() && g.client_key_file.empty()) return true;
  if (g.server_key_file.empty() || g.client_key_file.empty()) {
    std::cerr << "error: CURVE needs both --server-key and --client-key" << std::endl;
    return false;
  }
  auto server = ReadCurveKeyFile(g.server_key_file);
  auto secret = server.ok() ? ReadCurveKeyFile(g.client_key_file) : server;
  auto pub = secret.ok() ? CurvePublicFromSecret(*secret) : secret;
  if (!pub.ok()) {
    std::cerr << "error: " << pub.error().message() << std::endl;
    return false;
  }
  o.server_public_key = *server;
  o.client_public_key = *pub;
  o.client_secret_key = *secret;
  return true;
}

Conn Connect(const Globals& g) {
  Conn c;
  ClientOptions o;
  o.endpoints = g.endpoints;
  o.default_timeout_ms = g.timeout_ms;
  o.tenant = g.tenant;
  if (!LoadCurveKeys(g, o)) {
    c.failed = kExitUsage;
    return c;
  }
  auto r = Client::Create(o);
  if (!r.ok()) {
    std::cerr << "error: cannot use endpoint " << g.endpoint << ": " << r.error().message() << std::endl;
    c.failed = kExitUsage;
    return c;
  }
  c.client.emplace(std::move(r).value());
  return c;
}

}  // namespace

std::optional<nlohmann::json> Request(const Globals& g, const std::string& op, const nlohmann::json& args, int* exit) {
  Conn c = Connect(g);
  if (!c.client) {
    *exit = c.failed;
    return std::nullopt;
  }
  CallOptions co;
  co.timeout_ms = g.timeout_ms;
  co.actor = g.actor;
  uint64_t timeouts_before = c.client->stats().timeouts;
  auto r = c.client->CallJson(op, args, co);
  if (!r.ok()) {
    bool local = r.error().code() == Code::kTimeout && c.client->stats().timeouts > timeouts_before;
    if (local) {
      std::cerr << "error: no reply from " << g.endpoint << " within " << g.timeout_ms
                << " ms (daemon unreachable, slow or overloaded)" << std::endl;
    } else {
      PrintError(g, r.error());
    }
    *exit = ExitFor(r.error(), local);
    return std::nullopt;
  }
  *exit = kExitOk;
  return std::move(r).value();
}

namespace {

void PrintJsonLine(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

volatile sig_atomic_t g_stop = 0;
void OnStopSignal(int) { g_stop = 1; }

}  // namespace

int UsageError(const std::string& message) {
  std::cerr << "usage error: " << message << "\nRun with --help for more information." << std::endl;
  return kExitUsage;
}

std::optional<nlohmann::json> ParseJsonObject(const std::string& flag, const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    UsageError(flag + " must be a JSON object, e.g. '{\"key\": \"value\"}'");
    return std::nullopt;
  }
  return j;
}

std::optional<int64_t> ParseTimeArg(const std::string& text) {
  if (text.empty()) return std::nullopt;
  bool digits = text.find_first_not_of("0123456789") == std::string::npos;
  if (digits) return std::stoll(text);
  struct tm tm {};
  int n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &n) != 6)
    return std::nullopt;
  std::string rest = text.substr(static_cast<size_t>(n));
  int64_t ms = 0;
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    int64_t scale = 100;
    while (i < rest.size() && isdigit(static_cast<unsigned char>(rest[i]))) {
      ms += (rest[i] - '0') * scale;
      scale /= 10;
      i++;
    }
    rest = rest.substr(i);
  }
  int64_t offset_s = 0;
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int hh = 0, mm = 0;
    if (std::sscanf(rest.c_str() + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset_s = (hh * 3600 + mm * 60) * (rest[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (static_cast<int64_t>(timegm(&tm)) - offset_s) * 1000 + ms;
}

bool ResolveUserArgs(const Globals& g, const std::string& op, nlohmann::json& args, int* exit) {
  static const std::set<std::string> kUserOps = {"get_user", "update_user", "verify_email", "delete_user"};
  for (const char* key : {"user_id", "id"}) {
    if (std::string(key) == "id" && kUserOps.count(op) == 0) continue;
    if (!args.contains(key) || !args[key].is_string()) continue;
    std::string text = args[key].get<std::string>();
    if (auto id = NormalizeUuid(text)) {
      args[key] = *id;
      continue;
    }
    if (text.find('@') == std::string::npos) {
      *exit = UsageError("'" + text + "' is neither a user id (uuid) nor an email; give one of them");
      return false;
    }
    auto user = Request(g, "get_user_by_email", {{"email", text}}, exit);
    if (!user) return false;
    args[key] = (*user)["id"];
  }
  return true;
}

int Call(const Globals& g, const std::string& op, const nlohmann::json& given) {
  int exit = kExitOk;
  nlohmann::json args = given;
  if (!ResolveUserArgs(g, op, args, &exit)) return exit;
  auto r = Request(g, op, args, &exit);
  if (!r) return exit;
  if (g.json) {
    PrintJsonLine(*r);
  } else if (r->is_object() && (r->contains("users") || r->contains("sessions") || r->contains("entries") ||
                                r->contains("tenants") || r->contains("deleted"))) {
    PrintResult(std::cout, *r);
  } else {
    PrintRecord(std::cout, *r);
  }
  return kExitOk;
}

int CallRaw(const Globals& g, const std::string& op, const std::string& json_args) {
  nlohmann::json args = nlohmann::json::object();
  if (!json_args.empty()) {
    auto parsed = ParseJsonObject("JSON", json_args);
    if (!parsed) return kExitUsage;
    args = *parsed;
  }
  int exit = kExitOk;
  auto r = Request(g, op, args, &exit);
  if (!r) return exit;
  PrintJsonLine(*r);
  return kExitOk;
}

int Ping(const Globals& g) {
  auto t0 = std::chrono::steady_clock::now();
  int exit = kExitOk;
  auto r = Request(g, "ping", nlohmann::json::object(), &exit);
  if (!r) return exit;
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (g.json) {
    nlohmann::json j = *r;
    j["rtt_ms"] = ms;
    PrintJsonLine(j);
  } else {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", ms);
    std::cout << "pong from " << g.endpoint << ": toriid " << Cell((*r)["version"]) << ", protocol "
              << Cell((*r)["protocol"]) << ", " << buf << " ms" << std::endl;
  }
  return kExitOk;
}

int Stats(const Globals& g, bool prometheus) {
  int exit = kExitOk;
  auto r = Request(g, "stats", nlohmann::json::object(), &exit);
  if (!r) return exit;
  if (prometheus) PrintPrometheus(std::cout, *r);
  else if (g.json) PrintJsonLine(*r);
  else PrintResult(std::cout, *r);
  return kExitOk;
}

int UserGet(const Globals& g, const std::string& id_or_email) {
  if (auto id = NormalizeUuid(id_or_email)) return Call(g, "get_user", {{"id", *id}});
  // One request, not a lookup then a get.
  if (id_or_email.find('@') != std::string::npos) return Call(g, "get_user_by_email", {{"email", id_or_email}});
  return UsageError("'" + id_or_email + "' is neither a user id (uuid) nor an email; give one of them");
}

int Watch(const Globals& g, const WatchOptions& w) {
  SubscriberOptions o;
  o.endpoints = g.events_endpoints;
  o.families = w.families;
  o.heartbeat_ms = w.heartbeat_ms;
  o.tenant = g.tenant;  // --tenant: that tenant's stream (empty: the default tenant's)
  o.deliver_torii_events = true;  // resyncs are printed by on_stale; heartbeats on request
  if (!LoadCurveKeys(g, o)) return kExitUsage;
  auto sub = Subscriber::Create(o);
  if (!sub.ok()) {
    std::cerr << "error: cannot watch " << g.events_endpoint << ": " << sub.error().message() << std::endl;
    return kExitUsage;
  }
  int64_t printed = 0;
  auto on_event = [&](const Event& e) {
    if (e.family == "torii" && (e.kind != "heartbeat" || !w.heartbeats)) return;
    nlohmann::json body = MsgpackToJson(e.body());
    BinaryToBase64Url(body);  // passkey.* credential ids
    if (g.json) {
      nlohmann::json line = {{"topic", e.topic}};
      for (auto& [k, v] : body.items()) line[k] = v;
      PrintJsonLine(line);
    } else {
      std::string s = LocalTime(FormatRfc3339(e.at)) + "  " + e.topic;
      s += std::string(e.topic.size() < 16 ? 16 - e.topic.size() : 1, ' ');
      s += "seq=" + std::to_string(e.seq);
      for (auto& [k, v] : body.items()) {
        if (k == "seq" || k == "epoch" || k == "at") continue;
        s += " " + k + "=" + Cell(v, k);
      }
      std::cout << s << std::endl;
    }
    if (e.family != "torii") printed++;
  };
  auto on_stale = [&](const StaleReason& r) {
    if (g.json) {
      PrintJsonLine({{"stale", std::string(StaleKindName(r.kind))}, {"reason", r.ToString()}});
    } else {
      std::cout << "!!! STREAM MAY HAVE LOST EVENTS (" << StaleKindName(r.kind) << "): " << r.ToString()
                << " -- drop cached users and sessions" << std::endl;
    }
  };
  (*sub)->AddListener(on_event, on_stale);

  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (!g.json) std::cerr << "watching " << g.events_endpoint << " (Ctrl-C to stop)" << std::endl;
  while (!g_stop && (w.count == 0 || printed < w.count)) (*sub)->Poll(200);
  return kExitOk;
}

int Migrate(const Globals& g, const std::string& from, const std::string& to, bool dry_run) {
  std::string path;
  if (from.rfind("sqlite://", 0) == 0) path = from.substr(9);
  else if (from.rfind("sqlite:", 0) == 0) path = from.substr(7);
  else return UsageError("--from must be sqlite:PATH (a Torii SQLite database)");
  if (path.empty()) return UsageError("--from sqlite:PATH needs a path");
  if (to.empty()) return UsageError("--to needs a PostgreSQL URL");
  SqliteMigrateOptions o;
  o.sqlite_path = path;
  o.target = to;
  o.dry_run = dry_run;
  o.tenant = g.tenant;
  auto r = MigrateFromSqlite(o);
  if (!r.ok()) {
    PrintError(g, r.error());
    // An unreachable target is like an unreachable daemon.
    return r.error().code() == Code::kUnavailable ? kExitUnreachable : kExitDaemonError;
  }
  if (g.json) {
    nlohmann::json j = {{"dry_run", r->dry_run},
                        {"tenant", r->tenant},
                        {"migrations_pending", r->migrations_pending},
                        {"migrations_applied", r->migrations_applied},
                        {"users", {{"read", r->users_read}, {"new", r->users_new}, {"present", r->users_present},
                                   {"mapped_ids", r->users_mapped_ids}}},
                        {"sessions", {{"read", r->sessions_read}, {"new", r->sessions_new},
                                      {"present", r->sessions_present}, {"expired", r->sessions_expired},
                                      {"orphaned", r->sessions_orphaned}, {"no_token", r->sessions_no_token},
                                      {"shape", r->session_shape}}},
                        {"not_migrated_tables", nlohmann::json::object()},
                        {"not_migrated_columns", r->not_migrated_columns},
                        {"warnings", r->warnings},
                        {"target", {{"users", r->target_users}, {"sessions", r->target_sessions}}},
                        {"verified", r->verified},
                        {"nothing_to_do", r->NothingToDo()},
                        {"seconds", r->seconds}};
    for (const auto& [t, n] : r->not_migrated_tables) j["not_migrated_tables"][t] = n;
    if (r->oauth_read >= 0)
      j["oauth_accounts"] = {{"read", r->oauth_read}, {"new", r->oauth_new}, {"present", r->oauth_present},
                             {"skipped", r->oauth_skipped}};
    if (r->passkeys_read >= 0)
      j["passkeys"] = {{"read", r->passkeys_read}, {"new", r->passkeys_new}, {"present", r->passkeys_present},
                       {"skipped", r->passkeys_skipped}};
    PrintJsonLine(j);
  } else {
    std::cout << FormatMigrateReport(*r);
  }
  return kExitOk;
}

int Resync(const Globals& g, const std::string& database, const std::string& reason) {
  // Checked here too, so that a bad reason is a usage error before any
  // connection (torii_resync() refuses it with the same words).
  bool printable = reason.size() <= 800;
  size_t chars = 0;
  for (unsigned char c : reason) {
    printable = printable && c >= 0x20 && c != 0x7f;
    chars += (c & 0xC0) != 0x80;
  }
  if (!printable || chars > 200) {
    return UsageError("--reason must be at most 200 characters with no control characters");
  }
  // An empty conninfo: libpq's own defaults (PGHOST, PGDATABASE, ...).
  auto conn = ConnectBlocking(database);
  if (!conn.ok()) {
    PrintError(g, conn.error());
    return kExitUnreachable;
  }
  auto r = ExecParamsBlocking(conn->get(), "SELECT torii_resync($1)", {reason.empty() ? nullptr : reason.c_str()});
  if (!r.ok()) {
    PrintError(g, r.error());
    return kExitDaemonError;
  }
  if (g.json) {
    PrintJsonLine({{"ok", true}, {"reason", reason.empty() ? "an operator's resync" : reason}});
  } else {
    std::cout << "torii.resync sent: every daemon relays it and every subscriber drops its cache" << std::endl;
  }
  return kExitOk;
}

int Keygen(const std::string& prefix) {
  auto pair = GenerateCurveKeyPair();
  if (!pair.ok()) {
    std::cerr << "error: " << pair.error().message() << std::endl;
    return kExitUsage;
  }
  if (auto st = WriteCurveKeyPair(prefix, *pair); !st.ok()) {
    std::cerr << "error: " << st.error().message() << std::endl;
    return kExitUsage;
  }
  // The public key only: the secret stays in its file.
  std::cout << "wrote " << prefix << ".key (secret, mode 0600) and " << prefix << ".pub\n"
            << "public key: " << pair->public_key << std::endl;
  return kExitOk;
}

}  // namespace torii::cli
