// `torii token`, `torii guard`, `torii jwt` (see tokens.h, docs/cli.md).
#include "tokens.h"

#include <memory>
#include <string>

#include "torii/values.h"

namespace torii::cli {

namespace {

using json = nlohmann::json;

// Flag values of whichever command runs; lives as long as the callbacks.
struct Flags {
  std::string s1, s2, s3, s4;
  int64_t n1 = 0, n2 = 0;
  bool unlock = false;
  json args = json::object();
};

// Sets args[key] from a time flag (RFC 3339 or ms since the epoch) when it
// was given; false (after printing a usage error) when it does not parse.
bool PutTime(json& args, const char* key, const std::string& v, const CLI::Option* opt, const char* flag) {
  if (opt->count() == 0) return true;
  auto ms = ParseTimeArg(v);
  if (!ms) {
    UsageError(std::string(flag) + " must be RFC 3339 or milliseconds since the epoch");
    return false;
  }
  args[key] = *ms;
  return true;
}

const std::vector<std::string> kPurposes = {"magic_link", "password_reset", "email_verification"};

void AddToken(CLI::App& app, const Globals& g, std::function<int()>& action, std::shared_ptr<Flags> f) {
  auto* token = app.add_subcommand("token", "single-use secure tokens (magic links, resets, verification)")
                    ->require_subcommand(1);
  auto* create = token->add_subcommand("create", "make a token for a user; prints it once");
  create->add_option("user,--user", f->s1, "user id or email")->required();
  create->add_option("--purpose", f->s2, "magic_link, password_reset or email_verification")
      ->required()
      ->check(CLI::IsMember(kPurposes));
  create->add_option("--ttl", f->n1, "seconds it stays valid")->required()->check(CLI::PositiveNumber);
  create->callback([&g, &action, f] {
    action = [&g, f] { return Call(g, "create_token", {{"user_id", f->s1}, {"purpose", f->s2}, {"ttl_s", f->n1}}); };
  });
  for (const char* verb : {"check", "use"}) {
    bool use = std::string(verb) == "use";
    auto* c = token->add_subcommand(verb, use ? "use a token (at most once)" : "show a token without using it");
    c->add_option("token,--token", f->s1, "the token")->required();
    c->add_option("--purpose", f->s2, "magic_link, password_reset or email_verification")
        ->required()
        ->check(CLI::IsMember(kPurposes));
    c->callback([&g, &action, f, use] {
      action = [&g, f, use] {
        return Call(g, use ? "use_token" : "check_token", {{"token", f->s1}, {"purpose", f->s2}});
      };
    });
  }
  auto* del = token->add_subcommand("delete", "delete a user's tokens");
  del->add_option("user,--user", f->s1, "user id or email")->required();
  auto* purpose = del->add_option("--purpose", f->s2, "only this purpose")->check(CLI::IsMember(kPurposes));
  del->callback([&g, &action, f, purpose] {
    action = [&g, f, purpose] {
      f->args["user_id"] = f->s1;
      if (purpose->count()) f->args["purpose"] = f->s2;
      return Call(g, "delete_user_tokens", f->args);
    };
  });
}

void AddGuard(CLI::App& app, const Globals& g, std::function<int()>& action, std::shared_ptr<Flags> f) {
  auto* guard = app.add_subcommand("guard", "the login guard: failed logins and account locks")->require_subcommand(1);
  auto* fail = guard->add_subcommand("fail", "record a failed login");
  fail->add_option("email,--email", f->s1, "the email tried")->required();
  auto* ip = fail->add_option("--ip", f->s2, "client address");
  auto* window = fail->add_option("--window", f->n1, "seconds counted (default 900)")->check(CLI::PositiveNumber);
  auto* max = fail->add_option("--max", f->n2, "lock the user at this many failures")->check(CLI::PositiveNumber);
  fail->callback([&g, &action, f, ip, window, max] {
    action = [&g, f, ip, window, max] {
      f->args["email"] = f->s1;
      if (ip->count()) f->args["ip_address"] = f->s2;
      if (window->count()) f->args["window_s"] = f->n1;
      if (max->count()) f->args["max_failures"] = f->n2;
      return Call(g, "record_login_failure", f->args);
    };
  });
  auto* count = guard->add_subcommand("failures", "count an email's recent failures");
  count->add_option("email,--email", f->s1, "the email")->required();
  auto* since = count->add_option("--since", f->s2, "RFC 3339 or ms since the epoch (default 15 minutes ago)");
  count->callback([&g, &action, f, since] {
    action = [&g, f, since] {
      f->args["email"] = f->s1;
      if (!PutTime(f->args, "since", f->s2, since, "--since")) return static_cast<int>(kExitUsage);
      return Call(g, "login_failures", f->args);
    };
  });
  auto* clear = guard->add_subcommand("clear", "forget an email's failures");
  clear->add_option("email,--email", f->s1, "the email")->required();
  clear->callback([&g, &action, f] { action = [&g, f] { return Call(g, "clear_login_failures", {{"email", f->s1}}); }; });
  auto* lock = guard->add_subcommand("lock", "lock the user with this email (if any)");
  lock->add_option("email,--email", f->s1, "the email")->required();
  auto* at = lock->add_option("--at", f->s2, "RFC 3339 or ms since the epoch (default now)");
  lock->callback([&g, &action, f, at] {
    action = [&g, f, at] {
      f->args["email"] = f->s1;
      if (at->count() == 0) {
        f->args["locked_at"] = NowMicros() / 1000;
      } else if (!PutTime(f->args, "locked_at", f->s2, at, "--at")) {
        return static_cast<int>(kExitUsage);
      }
      return Call(g, "set_user_lock", f->args);
    };
  });
  auto* unlock = guard->add_subcommand("unlock", "unlock the user with this email (if any)");
  unlock->add_option("email,--email", f->s1, "the email")->required();
  unlock->callback([&g, &action, f] {
    action = [&g, f] { return Call(g, "set_user_lock", {{"email", f->s1}, {"locked_at", nullptr}}); };
  });
  auto* status = guard->add_subcommand("status", "when the user with this email was locked (nil: not locked)");
  status->add_option("email,--email", f->s1, "the email")->required();
  status->callback([&g, &action, f] { action = [&g, f] { return Call(g, "get_user_lock", {{"email", f->s1}}); }; });
}

void AddJwt(CLI::App& app, const Globals& g, std::function<int()>& action, std::shared_ptr<Flags> f) {
  auto* jwt = app.add_subcommand("jwt", "the JWT deny-list")->require_subcommand(1);
  auto* revoke = jwt->add_subcommand("revoke", "revoke one JWT by its jti until its exp");
  revoke->add_option("jti,--jti", f->s1, "the JWT's jti")->required();
  revoke->add_option("--expires", f->s2, "the JWT's exp: RFC 3339 or ms since the epoch")->required();
  auto* user = revoke->add_option("--user", f->s3, "the JWT's user (id or email)");
  revoke->callback([&g, &action, f, user] {
    action = [&g, f, user] {
      f->args["jti"] = f->s1;
      auto ms = ParseTimeArg(f->s2);
      if (!ms) return UsageError("--expires must be RFC 3339 or milliseconds since the epoch");
      f->args["expires_at"] = *ms;
      if (user->count()) f->args["user_id"] = f->s3;
      return Call(g, "revoke_jwt", f->args);
    };
  });
  auto* all = jwt->add_subcommand("revoke-user", "revoke every JWT of a user issued before a time");
  all->add_option("user,--user", f->s1, "user id or email")->required();
  auto* before = all->add_option("--before", f->s2, "RFC 3339 or ms since the epoch (default now)");
  auto* until = all->add_option("--until", f->s3, "keep the cutoff until then (default: 30 days after it)");
  all->callback([&g, &action, f, before, until] {
    action = [&g, f, before, until] {
      f->args["user_id"] = f->s1;
      if (!PutTime(f->args, "issued_before", f->s2, before, "--before")) return static_cast<int>(kExitUsage);
      if (!PutTime(f->args, "expires_at", f->s3, until, "--until")) return static_cast<int>(kExitUsage);
      return Call(g, "revoke_user_jwts", f->args);
    };
  });
  auto* check = jwt->add_subcommand("check", "is this JWT revoked?");
  check->add_option("jti,--jti", f->s1, "the JWT's jti")->required();
  auto* cuser = check->add_option("--user", f->s2, "the JWT's user (id or email)");
  auto* issued = check->add_option("--issued", f->s3, "the JWT's iat: RFC 3339 or ms since the epoch");
  check->callback([&g, &action, f, cuser, issued] {
    action = [&g, f, cuser, issued] {
      f->args["jti"] = f->s1;
      if (cuser->count()) f->args["user_id"] = f->s2;
      if (!PutTime(f->args, "issued_at", f->s3, issued, "--issued")) return static_cast<int>(kExitUsage);
      return Call(g, "is_jwt_revoked", f->args);
    };
  });
  auto* list = jwt->add_subcommand("list", "one page of the unexpired deny-list");
  auto* after = list->add_option("--after", f->s1, "cursor from a previous page");
  auto* lim = list->add_option("--limit", f->n1, "1..1000");
  list->callback([&g, &action, f, after, lim] {
    action = [&g, f, after, lim] {
      if (after->count()) f->args["after"] = f->s1;
      if (lim->count()) f->args["limit"] = f->n1;
      return Call(g, "list_jwt_revocations", f->args);
    };
  });
}

}  // namespace

void AddTokenCommands(CLI::App& app, const Globals& g, std::function<int()>& action) {
  auto f = std::make_shared<Flags>();
  AddToken(app, g, action, f);
  AddGuard(app, g, action, f);
  AddJwt(app, g, action, f);
}

}  // namespace torii::cli
