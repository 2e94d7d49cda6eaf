// Tenant names and the tenant prefix of event topics (PROTOCOL.md section 6).
// A tenant name is 1 to 64 bytes of [a-z0-9_.-]; `default` is the tenant of
// everything that names none. Events of the default tenant keep their topic
// (`family.kind`); events of another tenant T are published as
// `@T/family.kind`. Pure functions, any thread.
#pragma once

#include <string>
#include <string_view>

namespace torii {

inline constexpr const char* kDefaultTenant = "default";
inline constexpr size_t kMaxTenantNameLength = 64;

// True for 1..64 bytes of [a-z0-9_.-].
bool IsValidTenantName(std::string_view name);

// The topic prefix of tenant T's events: "" for the default tenant, "@T/"
// otherwise.
std::string TenantTopicPrefix(std::string_view tenant);

// Splits a received topic into its tenant and the topic without the prefix:
// `@acme/session.deleted` -> ("acme", "session.deleted"); a topic without
// the prefix belongs to the default tenant. False for a topic that starts
// with `@` but has no valid `@T/` prefix (to be ignored).
bool SplitTenantTopic(std::string_view topic, std::string* tenant, std::string* rest);

}  // namespace torii
