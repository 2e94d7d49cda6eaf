// torii: the command-line tool for toriid (issue 7). Flags are parsed here
// with CLI11 and turned into the calls of commands.h; nothing else lives
// here. Exit status: 0 success, 1 the daemon answered an error, 2 usage
// error, 3 daemon unreachable or timed out. See docs/cli.md.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "accounts.h"
#include "commands.h"
#include "tokens.h"
#include "torii/tenant.h"
#include "torii/types.h"
#include "torii/values.h"

using torii::cli::Globals;
using json = nlohmann::json;

namespace {

// Collects the flags of one subcommand and the action to run once parsing
// succeeded; the action returns the exit status.
struct Runner {
  std::function<int()> action;
};

// Sets args[key] from an optional string flag when it was given.
void Put(json& args, const char* key, const std::string& v, const CLI::Option* opt) {
  if (opt->count() > 0) args[key] = v;
}

// "a,b" -> {"a", "b"}, empty items dropped.
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    if (comma > at) out.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

constexpr const char* kTenantNameRule = "a tenant name is 1 to 64 bytes of [a-z0-9_.-]";

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"torii: command-line client of the toriid storage daemon", "torii"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags are accepted after the subcommand too
  app.set_version_flag("--version", std::string("torii ") + TORII_VERSION);

  Globals g;
  if (const char* e = std::getenv("TORII_ENDPOINT"); e && *e) g.endpoints = SplitList(e);
  if (const char* e = std::getenv("TORII_EVENTS_ENDPOINT"); e && *e) g.events_endpoints = SplitList(e);
  app.add_option("--endpoint", g.endpoints,
                 "toriid request endpoint; repeat it (or separate with commas) for several daemons "
                 "(env TORII_ENDPOINT)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--events-endpoint", g.events_endpoints,
                 "toriid events endpoint, for watch; repeatable like --endpoint (env TORII_EVENTS_ENDPOINT)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_ms, "request deadline in milliseconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", g.json, "print one JSON value per line");
  app.add_option("--actor", g.actor, "act on behalf of this user, by id or email (row-level security)");
  if (const char* e = std::getenv("TORII_TENANT"); e && *e) g.tenant = e;
  app.add_option("--tenant", g.tenant,
                 "act in this tenant (1 to 64 of [a-z0-9_.-]; env TORII_TENANT; default: the default tenant, "
                 "or the one the client key is bound to)");
  app.add_option("--server-key", g.server_key_file, "CURVE: file with the daemon's public key (Z85)");
  app.add_option("--client-key", g.client_key_file, "CURVE: file with this client's secret key (from torii keygen)");

  Runner run;
  json args = json::object();
  std::string s1, s2, s3, s4, s5, s6, s7;
  int64_t n1 = 0, n2 = 0;
  bool f1 = false;
  std::string user_name, torii_id;  // user create --name, --torii-id

  // ---- ping, stats, call ----
  app.add_subcommand("ping", "check that the daemon answers")->callback([&] { run.action = [&] { return torii::cli::Ping(g); }; });
  auto* stats = app.add_subcommand("stats", "the daemon's counters");
  stats->add_flag("--prometheus", f1, "Prometheus text exposition format");
  stats->callback([&] { run.action = [&] { return torii::cli::Stats(g, f1); }; });
  auto* call = app.add_subcommand("call", "any operation with JSON arguments; prints the JSON result");
  call->add_option("op", s1, "operation name")->required();
  call->add_option("json", s2, "arguments as a JSON object");
  call->callback([&] { run.action = [&] { return torii::cli::CallRaw(g, s1, s2); }; });

  // ---- user ----
  auto* user = app.add_subcommand("user", "users")->require_subcommand(1);
  {
    auto* c = user->add_subcommand("create", "create a user");
    c->add_option("--email", s1, "email address")->required();
    auto* id = c->add_option("--id", s2, "uuid (default: a new one)");
    auto* ph = c->add_option("--password-hash", s3, "password hash (already hashed)");
    auto* md = c->add_option("--metadata", s4, "metadata as a JSON object");
    auto* nm = c->add_option("--name", user_name, "display name");
    auto* tid = c->add_option("--torii-id", torii_id,
                              "Torii's user id: the id becomes its UUIDv5 and metadata.torii_id keeps it (docs/torii.md)");
    tid->excludes(id);
    c->callback([&, id, ph, md, nm, tid] {
      run.action = [&, id, ph, md, nm, tid] {
        args["email"] = s1;
        Put(args, "id", s2, id);
        Put(args, "password_hash", s3, ph);
        Put(args, "name", user_name, nm);
        if (md->count()) {
          auto m = torii::cli::ParseJsonObject("--metadata", s4);
          if (!m) return int(torii::cli::kExitUsage);
          args["metadata"] = *m;
        }
        if (tid->count()) {
          args["id"] = torii::UserIdFromToriiId(torii_id, g.tenant);
          args["metadata"]["torii_id"] = torii_id;
        }
        return torii::cli::Call(g, "create_user", args);
      };
    });

    auto* get = user->add_subcommand("get", "show a user by id or email");
    get->add_option("user,--user", s1, "user id (uuid) or email")->required();
    get->callback([&] { run.action = [&] { return torii::cli::UserGet(g, s1); }; });

    auto* up = user->add_subcommand("update", "change a user");
    up->add_option("user,--user", s1, "user id or email")->required();
    auto* em = up->add_option("--email", s2, "new email");
    auto* ph2 = up->add_option("--password-hash", s3, "new password hash");
    auto* clear = up->add_flag("--clear-password", f1, "remove the password hash");
    auto* md2 = up->add_option("--metadata", s4, "replace metadata (JSON object)");
    auto* merge = up->add_option("--merge", s5, "merge into metadata (JSON object, shallow)");
    ph2->excludes(clear);
    up->callback([&, em, ph2, md2, merge] {
      run.action = [&, em, ph2, md2, merge] {
        args["id"] = s1;
        Put(args, "email", s2, em);
        Put(args, "password_hash", s3, ph2);
        if (f1) args["password_hash"] = nullptr;
        for (auto [opt, key, text] : {std::tuple{md2, "metadata", &s4}, std::tuple{merge, "metadata_merge", &s5}}) {
          if (!opt->count()) continue;
          auto m = torii::cli::ParseJsonObject(opt->get_name(), *text);
          if (!m) return int(torii::cli::kExitUsage);
          args[key] = *m;
        }
        return torii::cli::Call(g, "update_user", args);
      };
    });

    auto* ver = user->add_subcommand("verify", "mark a user's email verified");
    ver->add_option("user,--user", s1, "user id or email")->required();
    auto* at = ver->add_option("--at", s2, "when (RFC 3339 or ms since the epoch; default now)");
    ver->callback([&, at] {
      run.action = [&, at] {
        args["id"] = s1;
        if (at->count()) {
          auto ms = torii::cli::ParseTimeArg(s2);
          if (!ms) return torii::cli::UsageError("--at must be RFC 3339 or milliseconds since the epoch");
          args["at"] = *ms;
        }
        return torii::cli::Call(g, "verify_email", args);
      };
    });

    auto* del = user->add_subcommand("delete", "delete a user and its sessions");
    del->add_option("user,--user", s1, "user id or email")->required();
    del->callback([&] { run.action = [&] { return torii::cli::Call(g, "delete_user", {{"id", s1}}); }; });

    auto* search = user->add_subcommand("search", "full-text search over email and metadata");
    search->add_option("query", s1, "web-search syntax")->required();
    auto* lim = search->add_option("--limit", n1, "1..100");
    auto* off = search->add_option("--offset", n2, "skip this many");
    search->callback([&, lim, off] {
      run.action = [&, lim, off] {
        args["query"] = s1;
        if (lim->count()) args["limit"] = n1;
        if (off->count()) args["offset"] = n2;
        return torii::cli::Call(g, "search_users", args);
      };
    });

    auto* list = user->add_subcommand("list", "users, oldest first");
    auto* lim2 = list->add_option("--limit", n1, "1..1000");
    auto* after = list->add_option("--after", s1, "cursor from a previous page");
    list->callback([&, lim2, after] {
      run.action = [&, lim2, after] {
        if (lim2->count()) args["limit"] = n1;
        Put(args, "after", s1, after);
        return torii::cli::Call(g, "list_users", args);
      };
    });
  }

  // ---- session ----
  // Not in a block: the helper lambdas below are captured by reference by
  // the actions, which run after parsing, so they must live as long as main.
  auto* session = app.add_subcommand("session", "sessions")->require_subcommand(1);
  // --token / --id pick the session; exactly one is needed.
  auto add_pick = [&](CLI::App* c) {
    auto* tok = c->add_option("--token", s6, "the bearer token");
    auto* id = c->add_option("--id", s7, "the session id");
    tok->excludes(id);
    return std::pair{tok, id};
  };
  auto pick = [&](std::pair<CLI::Option*, CLI::Option*> p) -> bool {
    if (p.first->count()) args["token"] = s6;
    else if (p.second->count()) args["id"] = s7;
    else return false;
    return true;
  };
  // --ttl / --expires-at give the expiry; exactly one is needed.
  auto add_expiry = [&](CLI::App* c) {
    auto* ttl = c->add_option("--ttl", n1, "seconds from now");
    auto* exp = c->add_option("--expires-at", s5, "RFC 3339 or ms since the epoch");
    ttl->excludes(exp);
    return std::pair{ttl, exp};
  };
  auto expiry = [&](std::pair<CLI::Option*, CLI::Option*> p) -> int {
    if (p.first->count()) {
      args["ttl_s"] = n1;
    } else if (p.second->count()) {
      auto ms = torii::cli::ParseTimeArg(s5);
      if (!ms) return torii::cli::UsageError("--expires-at must be RFC 3339 or milliseconds since the epoch");
      args["expires_at"] = *ms;
    } else {
      return torii::cli::UsageError("give --ttl or --expires-at");
    }
    return 0;
  };

  auto* c = session->add_subcommand("create", "create a session; prints its token once");
  c->add_option("user,--user", s1, "user id or email")->required();
  auto ex = add_expiry(c);
  auto* id = c->add_option("--id", s2, "session uuid (default: a new one)");
  auto* ua = c->add_option("--user-agent", s3, "user agent");
  auto* ip = c->add_option("--ip", s4, "ip address");
  auto* md = c->add_option("--metadata", s7, "metadata as a JSON object");
  c->callback([&, ex, id, ua, ip, md] {
    run.action = [&, ex, id, ua, ip, md] {
      args["user_id"] = s1;
      if (int e = expiry(ex)) return e;
      Put(args, "id", s2, id);
      Put(args, "user_agent", s3, ua);
      Put(args, "ip_address", s4, ip);
      if (md->count()) {
        auto m = torii::cli::ParseJsonObject("--metadata", s7);
        if (!m) return int(torii::cli::kExitUsage);
        args["metadata"] = *m;
      }
      return torii::cli::Call(g, "create_session", args);
    };
  });

  auto* get = session->add_subcommand("get", "show an unexpired session");
  auto gp = add_pick(get);
  get->callback([&, gp] {
    run.action = [&, gp] {
      if (!pick(gp)) return torii::cli::UsageError("give --token or --id");
      return torii::cli::Call(g, "get_session", args);
    };
  });

  auto* ext = session->add_subcommand("extend", "move a session's expiry");
  auto ep = add_pick(ext);
  auto ee = add_expiry(ext);
  ext->callback([&, ep, ee] {
    run.action = [&, ep, ee] {
      if (!pick(ep)) return torii::cli::UsageError("give --token or --id");
      if (int e = expiry(ee)) return e;
      return torii::cli::Call(g, "extend_session", args);
    };
  });

  auto* del = session->add_subcommand("delete", "end a session");
  auto dp = add_pick(del);
  del->callback([&, dp] {
    run.action = [&, dp] {
      if (!pick(dp)) return torii::cli::UsageError("give --token or --id");
      return torii::cli::Call(g, "delete_session", args);
    };
  });

  auto* list = session->add_subcommand("list", "a user's unexpired sessions, newest first");
  list->add_option("user,--user", s1, "user id or email")->required();
  list->callback([&] { run.action = [&] { return torii::cli::Call(g, "list_sessions", {{"user_id", s1}}); }; });

  auto* revoke = session->add_subcommand("revoke-all", "end every session of a user");
  revoke->add_option("user,--user", s1, "user id or email")->required();
  auto* except = revoke->add_option("--except", s2, "a session id to keep");
  revoke->callback([&, except] {
    run.action = [&, except] {
      args["user_id"] = s1;
      Put(args, "except", s2, except);
      return torii::cli::Call(g, "delete_user_sessions", args);
    };
  });

  session->add_subcommand("cleanup", "delete expired sessions now")->callback([&] {
    run.action = [&] { return torii::cli::Call(g, "cleanup_expired_sessions", json::object()); };
  });

  // ---- audit ----
  auto* audit = app.add_subcommand("audit", "the audit log")->require_subcommand(1);
  {
    auto* list = audit->add_subcommand("list", "audit entries, newest first");
    auto* rec = list->add_option("--record", s1, "only this user or session id");
    auto* table = list->add_option("--table", s2, "users, sessions, oauth_accounts or passkeys")
                      ->check(CLI::IsMember({"users", "sessions", "oauth_accounts", "passkeys"}));
    auto* lim = list->add_option("--limit", n1, "1..1000");
    auto* before = list->add_option("--before", s3, "cursor from a previous page");
    list->callback([&, rec, table, lim, before] {
      run.action = [&, rec, table, lim, before] {
        Put(args, "record_id", s1, rec);
        Put(args, "table", s2, table);
        if (lim->count()) args["limit"] = n1;
        Put(args, "before", s3, before);
        return torii::cli::Call(g, "list_audit", args);
      };
    });
  }

  // ---- tenant ----
  auto* tenant = app.add_subcommand("tenant", "tenants (for an unbound client key)")->require_subcommand(1);
  {
    auto* add = tenant->add_subcommand("add", "register a tenant");
    add->add_option("name,--name", s1, "1 to 64 bytes of [a-z0-9_.-]")->required();
    add->callback([&] {
      run.action = [&] {
        if (!torii::IsValidTenantName(s1)) return torii::cli::UsageError(kTenantNameRule);
        return torii::cli::Call(g, "create_tenant", {{"name", s1}});
      };
    });
    tenant->add_subcommand("list", "every tenant")->callback([&] {
      run.action = [&] { return torii::cli::Call(g, "list_tenants", json::object()); };
    });
  }

  // ---- token, guard, jwt (tokens.cpp) ----
  torii::cli::AddTokenCommands(app, g, run.action);

  // ---- watch ----
  torii::cli::WatchOptions w;
  auto* watch = app.add_subcommand("watch", "print change events as they happen");
  watch->add_option("family", w.families, "user, session, oauth, passkey (default: all)");
  watch->add_option("--heartbeat-ms", w.heartbeat_ms, "the daemon's events.heartbeat_ms")->capture_default_str();
  watch->add_flag("--heartbeats", w.heartbeats, "print heartbeats too");
  watch->add_option("--count", w.count, "exit after this many events");
  watch->callback([&] { run.action = [&] { return torii::cli::Watch(g, w); }; });

  // ---- keygen ----
  auto* keygen = app.add_subcommand("keygen", "write a CURVE key pair: PREFIX.key (secret, 0600) and PREFIX.pub");
  std::string keygen_prefix = "torii";
  keygen->add_option("--out", keygen_prefix, "path prefix of the two files")->capture_default_str();
  keygen->callback([&] { run.action = [&] { return torii::cli::Keygen(keygen_prefix); }; });

  // ---- migrate ----
  auto* migrate = app.add_subcommand("migrate", "copy a Torii SQLite database into toriid's PostgreSQL");
  migrate->add_option("--from", s1, "sqlite:PATH")->required();
  migrate->add_option("--to", s2, "PostgreSQL URL (libpq URI or key=value)")->required();
  migrate->add_flag("--dry-run", f1, "read and check everything, write nothing");
  migrate->callback([&] { run.action = [&] { return torii::cli::Migrate(g, s1, s2, f1); }; });

  // ---- resync ----
  auto* resync = app.add_subcommand("resync", "tell every cache to drop what it holds (after changes that bypassed triggers)");
  std::string resync_database, resync_reason;
  if (const char* e = std::getenv("TORII_DATABASE_URL"); e && *e) resync_database = e;
  resync->add_option("--database", resync_database,
                     "PostgreSQL URL (libpq URI or key=value; env TORII_DATABASE_URL, else libpq's PG* variables)");
  resync->add_option("--reason", resync_reason, "why, at most 200 characters (shown to subscribers and in logs)");
  resync->callback([&] { run.action = [&] { return torii::cli::Resync(g, resync_database, resync_reason); }; });

  // ---- oauth, passkey (accounts.cpp) ----
  torii::cli::AddAccountCommands(app, g, run.action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : torii::cli::kExitUsage;
  }
  for (auto* list : {&g.endpoints, &g.events_endpoints}) {
    list->erase(std::remove(list->begin(), list->end(), std::string()), list->end());
  }
  if (g.endpoints.empty() || g.events_endpoints.empty()) {
    return torii::cli::UsageError(
        "no endpoint: give --endpoint/--events-endpoint a value (or TORII_ENDPOINT/TORII_EVENTS_ENDPOINT one)");
  }
  if (!g.tenant.empty() && !torii::IsValidTenantName(g.tenant)) {
    return torii::cli::UsageError(std::string("--tenant: ") + kTenantNameRule);
  }
  g.endpoint = Join(g.endpoints);
  g.events_endpoint = Join(g.events_endpoints);
  if (!g.actor.empty()) {
    // A user id or an email, like every user a command names.
    json who = {{"user_id", g.actor}};
    g.actor.clear();  // the lookup itself runs as the daemon
    int exit = 0;
    if (!torii::cli::ResolveUserArgs(g, "", who, &exit)) return exit;
    g.actor = who["user_id"].get<std::string>();
  }
  if (!run.action) return torii::cli::UsageError("no command");
  return run.action();
}
