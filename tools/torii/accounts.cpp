// `torii oauth ...` and `torii passkey ...` (see accounts.h). Binary values
// (credential ids, public keys, challenges) are base64url on the command
// line and in the output.
#include "accounts.h"

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "output.h"

namespace torii::cli {

namespace {

using json = nlohmann::json;

// The keys whose values are binary on the wire.
bool BinaryKey(const std::string& k) { return k == "credential_id" || k == "public_key" || k == "challenge"; }

// base64url, with or without padding; standard base64 is accepted too.
std::optional<std::string> DecodeBase64Url(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
  };
  std::string s = text;
  while (!s.empty() && s.back() == '=') s.pop_back();
  if (s.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// Sets args[key] to the binary value of a base64url flag; false (after a
// usage error) when it does not decode.
bool PutBinary(json& args, const char* key, const std::string& flag, const std::string& text) {
  auto bytes = DecodeBase64Url(text);
  if (!bytes || bytes->empty()) {
    UsageError(flag + " must be base64url (at least one byte)");
    return false;
  }
  args[key] = json::binary(std::vector<uint8_t>(bytes->begin(), bytes->end()));
  return true;
}

// One request; prints the result with binary values as base64url: a list
// under `list_key` as a table of `columns`, anything else as a record.
int Run(const Globals& g, const std::string& op, const json& given, const char* list_key = nullptr,
        const std::vector<std::string>& columns = {}) {
  int exit = kExitOk;
  json args = given;
  if (!ResolveUserArgs(g, op, args, &exit)) return exit;
  auto r = Request(g, op, args, &exit);
  if (!r) return exit;
  BinaryToBase64Url(*r);
  if (g.json) {
    std::cout << r->dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
  } else if (list_key && r->contains(list_key) && (*r)[list_key].is_array()) {
    std::vector<json> rows((*r)[list_key].begin(), (*r)[list_key].end());
    PrintTable(std::cout, rows, columns);
    std::cout << "(" << rows.size() << (rows.size() == 1 ? " row" : " rows") << ")\n";
  } else {
    PrintRecord(std::cout, *r);
  }
  return kExitOk;
}

// Flag values of every subcommand; one instance for the process.
struct Values {
  std::string user_id, provider, subject, state, verifier, credential, public_key, name, challenge_id, challenge;
  int64_t ttl_s = 0;
  int64_t sign_count = 0;
};

}  // namespace

void BinaryToBase64Url(json& j) {
  if (j.is_array()) {
    for (auto& v : j) BinaryToBase64Url(v);
    return;
  }
  if (!j.is_object()) return;
  for (auto& [k, v] : j.items()) {
    if (BinaryKey(k) && v.is_string()) {
      std::string s = v.get<std::string>();
      for (char& c : s) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
      }
      while (!s.empty() && s.back() == '=') s.pop_back();
      v = s;
    } else {
      BinaryToBase64Url(v);
    }
  }
}

void AddAccountCommands(CLI::App& app, Globals& g, std::function<int()>& action) {
  static Values v;
  const std::vector<std::string> oauth_cols = {"user_id", "provider", "subject", "created_at"};
  const std::vector<std::string> passkey_cols = {"credential_id", "user_id", "name", "sign_count", "created_at",
                                                 "last_used_at"};

  // ---- oauth ----
  auto* oauth = app.add_subcommand("oauth", "OAuth accounts and PKCE state")->require_subcommand(1);
  {
    auto* c = oauth->add_subcommand("link", "link a provider account to a user");
    c->add_option("user,--user", v.user_id, "user id or email")->required();
    c->add_option("provider,--provider", v.provider, "provider, e.g. github")->required();
    c->add_option("subject,--subject", v.subject, "the provider's user id")->required();
    c->callback([&] {
      action = [&] {
        return Run(g, "link_oauth_account", {{"user_id", v.user_id}, {"provider", v.provider}, {"subject", v.subject}});
      };
    });

    c = oauth->add_subcommand("get", "show the link of a provider account");
    c->add_option("provider,--provider", v.provider, "provider")->required();
    c->add_option("subject,--subject", v.subject, "the provider's user id")->required();
    c->callback([&] {
      action = [&] { return Run(g, "get_oauth_account", {{"provider", v.provider}, {"subject", v.subject}}); };
    });

    c = oauth->add_subcommand("user", "show the user a provider account is linked to");
    c->add_option("provider,--provider", v.provider, "provider")->required();
    c->add_option("subject,--subject", v.subject, "the provider's user id")->required();
    c->callback([&] {
      action = [&] { return Run(g, "get_user_by_oauth", {{"provider", v.provider}, {"subject", v.subject}}); };
    });

    c = oauth->add_subcommand("list", "a user's linked accounts");
    c->add_option("user,--user", v.user_id, "user id or email")->required();
    c->callback([&, oauth_cols] {
      action = [&, oauth_cols] { return Run(g, "list_oauth_accounts", {{"user_id", v.user_id}}, "accounts", oauth_cols); };
    });

    c = oauth->add_subcommand("unlink", "unlink a user's accounts of a provider");
    c->add_option("user,--user", v.user_id, "user id or email")->required();
    c->add_option("provider,--provider", v.provider, "provider")->required();
    auto* subject = c->add_option("subject,--subject", v.subject, "only this provider account");
    c->callback([&, subject] {
      action = [&, subject] {
        json args = {{"user_id", v.user_id}, {"provider", v.provider}};
        if (subject->count()) args["subject"] = v.subject;
        return Run(g, "unlink_oauth_account", args);
      };
    });

    c = oauth->add_subcommand("put-state", "store a PKCE verifier under a CSRF state");
    c->add_option("state,--state", v.state, "the state")->required();
    c->add_option("--verifier", v.verifier, "the PKCE verifier")->required();
    c->add_option("--ttl", v.ttl_s, "lifetime in seconds")->required();
    c->callback([&] {
      action = [&] {
        return Run(g, "put_oauth_state", {{"state", v.state}, {"verifier", v.verifier}, {"ttl_s", v.ttl_s}});
      };
    });

    c = oauth->add_subcommand("take-state", "take (and delete) the verifier stored under a state");
    c->add_option("state,--state", v.state, "the state")->required();
    c->callback([&] { action = [&] { return Run(g, "take_oauth_state", {{"state", v.state}}); }; });
  }

  // ---- passkey ----
  auto* passkey = app.add_subcommand("passkey", "passkeys (WebAuthn) and their challenges")->require_subcommand(1);
  {
    auto* c = passkey->add_subcommand("add", "register a passkey of a user");
    c->add_option("user,--user", v.user_id, "user id or email")->required();
    c->add_option("credential_id,--credential-id", v.credential, "credential id (base64url)")->required();
    c->add_option("--public-key", v.public_key, "public key (base64url)")->required();
    auto* name = c->add_option("--name", v.name, "a display name");
    auto* count = c->add_option("--sign-count", v.sign_count, "the signature counter (default 0)");
    c->callback([&, name, count] {
      action = [&, name, count] {
        json args = {{"user_id", v.user_id}};
        if (!PutBinary(args, "credential_id", "--credential-id", v.credential) ||
            !PutBinary(args, "public_key", "--public-key", v.public_key)) {
          return int(kExitUsage);
        }
        if (name->count()) args["name"] = v.name;
        if (count->count()) args["sign_count"] = v.sign_count;
        return Run(g, "add_passkey", args);
      };
    });

    for (auto [cmd, op, help] : {std::tuple{"get", "get_passkey", "show a passkey"},
                                 std::tuple{"delete", "delete_passkey", "delete a passkey"}}) {
      c = passkey->add_subcommand(cmd, help);
      // A base64url id may start with '-': then only the flag form works.
      c->add_option("credential_id,--credential-id", v.credential, "credential id (base64url)")->required();
      std::string op_name = op;
      c->callback([&, op_name] {
        action = [&, op_name] {
          json args = json::object();
          if (!PutBinary(args, "credential_id", "--credential-id", v.credential)) return int(kExitUsage);
          return Run(g, op_name, args);
        };
      });
    }

    c = passkey->add_subcommand("use", "record a use (and the new signature counter)");
    c->add_option("credential_id,--credential-id", v.credential, "credential id (base64url)")->required();
    auto* use_count = c->add_option("--sign-count", v.sign_count, "the authenticator's counter");
    c->callback([&, use_count] {
      action = [&, use_count] {
        json args = json::object();
        if (!PutBinary(args, "credential_id", "--credential-id", v.credential)) return int(kExitUsage);
        if (use_count->count()) args["sign_count"] = v.sign_count;
        return Run(g, "use_passkey", args);
      };
    });

    c = passkey->add_subcommand("list", "a user's passkeys");
    c->add_option("user,--user", v.user_id, "user id or email")->required();
    c->callback([&, passkey_cols] {
      action = [&, passkey_cols] { return Run(g, "list_passkeys", {{"user_id", v.user_id}}, "passkeys", passkey_cols); };
    });

    c = passkey->add_subcommand("delete-all", "delete every passkey of a user");
    c->add_option("user,--user", v.user_id, "user id or email")->required();
    c->callback([&] { action = [&] { return Run(g, "delete_user_passkeys", {{"user_id", v.user_id}}); }; });

    c = passkey->add_subcommand("put-challenge", "store a ceremony's challenge");
    c->add_option("challenge_id,--challenge-id", v.challenge_id, "the challenge's id")->required();
    c->add_option("--challenge", v.challenge, "the challenge (base64url)")->required();
    c->add_option("--ttl", v.ttl_s, "lifetime in seconds")->required();
    auto* user = c->add_option("--user,--user-id", v.user_id, "the user of the ceremony (id or email)");
    c->callback([&, user] {
      action = [&, user] {
        json args = {{"challenge_id", v.challenge_id}, {"ttl_s", v.ttl_s}};
        if (!PutBinary(args, "challenge", "--challenge", v.challenge)) return int(kExitUsage);
        if (user->count()) args["user_id"] = v.user_id;
        return Run(g, "put_passkey_challenge", args);
      };
    });

    c = passkey->add_subcommand("take-challenge", "take (and delete) a stored challenge");
    c->add_option("challenge_id,--challenge-id", v.challenge_id, "the challenge's id")->required();
    c->callback([&] { action = [&] { return Run(g, "take_passkey_challenge", {{"challenge_id", v.challenge_id}}); }; });
  }
}

}  // namespace torii::cli
