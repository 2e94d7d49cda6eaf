// Tenant names and topic prefixes.
#include "torii/tenant.h"

namespace torii {

bool IsValidTenantName(std::string_view name) {
  if (name.empty() || name.size() > kMaxTenantNameLength) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string TenantTopicPrefix(std::string_view tenant) {
  if (tenant.empty() || tenant == kDefaultTenant) return {};
  std::string out = "@";
  out.append(tenant);
  out += '/';
  return out;
}

bool SplitTenantTopic(std::string_view topic, std::string* tenant, std::string* rest) {
  if (topic.empty() || topic[0] != '@') {
    *tenant = kDefaultTenant;
    *rest = std::string(topic);
    return true;
  }
  size_t slash = topic.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view name = topic.substr(1, slash - 1);
  if (!IsValidTenantName(name) || name == kDefaultTenant) return false;
  *tenant = std::string(name);
  *rest = std::string(topic.substr(slash + 1));
  return true;
}

}  // namespace torii
