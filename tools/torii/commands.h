// The torii CLI's commands over lib's torii::Client, torii::Subscriber and
// torii::MigrateFromSqlite. main.cpp parses flags into these calls; each
// prints its result to stdout (errors to stderr) and returns the exit
// status of issue 7: 0 success, 1 the daemon answered an error, 2 usage
// error, 3 daemon unreachable or timed out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace torii::cli {

enum ExitCode { kExitOk = 0, kExitDaemonError = 1, kExitUsage = 2, kExitUnreachable = 3 };

struct Globals {
  // --endpoint and --events-endpoint may be repeated (several daemons on
  // one database); `endpoint` and `events_endpoint` name them in messages.
  std::vector<std::string> endpoints = {"tcp://127.0.0.1:7420"};
  std::vector<std::string> events_endpoints = {"tcp://127.0.0.1:7421"};
  std::string endpoint = "tcp://127.0.0.1:7420";
  std::string events_endpoint = "tcp://127.0.0.1:7421";
  int64_t timeout_ms = 5000;
  bool json = false;
  std::string actor;  // optional `actor` uuid of every request
  std::string tenant;  // optional `tenant` of every request (empty: none sent)
  // CURVE (both or neither): the daemon's public key file, and this
  // client's secret key file (its public key is derived from it).
  std::string server_key_file;
  std::string client_key_file;
};

// `torii keygen`: writes PREFIX.key (secret, 0600) and PREFIX.pub.
int Keygen(const std::string& prefix);

// Prints a usage error to stderr and returns kExitUsage.
int UsageError(const std::string& message);

// Parses a JSON object given on the command line; nullopt (after printing
// a usage error) when it is not one.
std::optional<nlohmann::json> ParseJsonObject(const std::string& flag, const std::string& text);

// A time argument: integer milliseconds since the epoch, or RFC 3339
// ("2025-01-01T00:00:00Z", "2025-01-01T01:00:00+01:00"). Returns
// milliseconds, or nullopt for anything else.
std::optional<int64_t> ParseTimeArg(const std::string& text);

// Sends one request; returns its result, or prints the error and sets
// *exit.
std::optional<nlohmann::json> Request(const Globals& g, const std::string& op, const nlohmann::json& args, int* exit);

// Where `op` takes a user (`user_id`, and `id` of the user operations), a
// value that is an email is replaced by that user's id, found with one
// get_user_by_email, so every command that names a user takes a uuid or an
// email. False, after printing why and setting *exit, when the email is
// unknown or the value is neither.
bool ResolveUserArgs(const Globals& g, const std::string& op, nlohmann::json& args, int* exit);

// One request (after ResolveUserArgs); prints the result (text or one JSON
// line) and returns the exit status.
int Call(const Globals& g, const std::string& op, const nlohmann::json& args);

// `torii call OP [JSON]`: always prints JSON.
int CallRaw(const Globals& g, const std::string& op, const std::string& json_args);

int Ping(const Globals& g);
int Stats(const Globals& g, bool prometheus);
// `torii user get X`: by id when X is a uuid, else by email.
int UserGet(const Globals& g, const std::string& id_or_email);

struct WatchOptions {
  std::vector<std::string> families;  // empty: all
  int64_t heartbeat_ms = 1000;
  bool heartbeats = false;            // print torii.heartbeat too
  int64_t count = 0;                  // exit 0 after this many events; 0: run until a signal
};
// Runs until SIGINT/SIGTERM (exit 0) or `count` events.
int Watch(const Globals& g, const WatchOptions& w);

// `torii migrate`: into g.tenant when set (the tenant must exist: `torii
// tenant add` first), else into the default tenant.
int Migrate(const Globals& g, const std::string& from, const std::string& to, bool dry_run);

// `torii resync`: SELECT torii_resync(reason) on `database` (libpq URI or
// key=value; empty: libpq's PG* environment), so that every daemon on that
// database relays one torii.resync and every cache drops what it holds
// (docs/operations.md). Exit 3 when the database is unreachable, 1 when
// the statement fails (e.g. a schema before migration 13).
int Resync(const Globals& g, const std::string& database, const std::string& reason);

// ---- accounts.cpp: `torii oauth ...`, `torii passkey ...` (section 5) ----
// Binary values (credential ids, public keys, challenges) come from
// MsgpackToJson as standard base64; the CLI shows and takes them as
// base64url without padding. Rewrites those keys anywhere in `j`.
void BinaryToBase64Url(nlohmann::json& j);

}  // namespace torii::cli
