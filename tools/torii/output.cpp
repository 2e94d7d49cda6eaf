// Text and JSON output of the torii CLI. See output.h.
#include "output.h"

#include <ctime>
#include <map>
#include <set>

namespace torii::cli {

namespace {

// Parses the RFC 3339 UTC form the client produces (fraction optional).
bool ParseUtc(const std::string& s, time_t* out) {
  struct tm tm {};
  int n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &n) != 6)
    return false;
  std::string rest = s.substr(static_cast<size_t>(n));
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    while (i < rest.size() && isdigit(static_cast<unsigned char>(rest[i]))) i++;
    rest = rest.substr(i);
  }
  if (rest != "Z") return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *out = timegm(&tm);
  return true;
}

void Flatten(const nlohmann::json& v, const std::string& prefix, std::vector<std::pair<std::string, nlohmann::json>>* out) {
  if (v.is_object() && !v.empty()) {
    for (const auto& [k, x] : v.items()) Flatten(x, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out->emplace_back(prefix, v);
  }
}

std::string MetricName(const std::string& dotted) {
  std::string n = "torii_";
  for (char c : dotted) n.push_back(isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return n;
}

std::string LabelEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o.push_back('\\');
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o.push_back(c);
  }
  return o;
}

}  // namespace

std::string LocalTime(const std::string& s) {
  time_t t;
  if (!ParseUtc(s, &t)) return s;
  struct tm lt {};
  localtime_r(&t, &lt);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &lt);
  return buf;
}

std::string Cell(const nlohmann::json& v, const std::string& key) {
  if (v.is_null()) return "-";
  if (key == "password_hash") return "(set)";
  if (v.is_string()) return LocalTime(v.get<std::string>());
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void PrintRecord(std::ostream& out, const nlohmann::json& record) {
  if (!record.is_object()) {
    out << Cell(record) << "\n";
    return;
  }
  size_t width = 0;
  for (const auto& [k, v] : record.items()) width = std::max(width, k.size());
  for (const auto& [k, v] : record.items()) out << k << std::string(width - k.size() + 2, ' ') << Cell(v, k) << "\n";
}

void PrintTable(std::ostream& out, const std::vector<nlohmann::json>& rows, const std::vector<std::string>& columns) {
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> width;
  for (const auto& c : columns) width.push_back(c.size());
  for (const auto& r : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < columns.size(); i++) {
      std::string s = r.contains(columns[i]) ? Cell(r[columns[i]], columns[i]) : "-";
      width[i] = std::max(width[i], s.size());
      line.push_back(std::move(s));
    }
    cells.push_back(std::move(line));
  }
  auto emit = [&](const std::vector<std::string>& line) {
    std::string s;
    for (size_t i = 0; i < line.size(); i++) {
      s += line[i];
      if (i + 1 < line.size()) s += std::string(width[i] - line[i].size() + 2, ' ');
    }
    out << s << "\n";
  };
  std::vector<std::string> header;
  for (const auto& c : columns) {
    std::string h = c;
    for (auto& ch : h) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
    header.push_back(h);
  }
  emit(header);
  for (const auto& l : cells) emit(l);
}

void PrintResult(std::ostream& out, const nlohmann::json& result) {
  auto list = [&](const char* key, const std::vector<std::string>& columns) {
    std::vector<nlohmann::json> rows(result[key].begin(), result[key].end());
    PrintTable(out, rows, columns);
    out << "(" << rows.size() << (rows.size() == 1 ? " row" : " rows") << ")\n";
    if (result.contains("next") && !result["next"].is_null()) out << "next: " << Cell(result["next"]) << "\n";
  };
  if (result.is_object() && result.contains("users") && result["users"].is_array()) {
    list("users", {"id", "email", "email_verified_at", "created_at"});
  } else if (result.is_object() && result.contains("sessions") && result["sessions"].is_array()) {
    list("sessions", {"id", "user_id", "expires_at", "user_agent", "ip_address", "created_at"});
  } else if (result.is_object() && result.contains("entries") && result["entries"].is_array()) {
    list("entries", {"created_at", "table", "operation", "record_id", "actor"});
  } else if (result.is_object() && result.contains("tenants") && result["tenants"].is_array()) {
    list("tenants", {"name", "created_at"});
  } else if (result.is_object()) {
    // Nested maps (stats) print as dotted keys, aligned.
    std::vector<std::pair<std::string, nlohmann::json>> flat;
    Flatten(result, "", &flat);
    nlohmann::json rec = nlohmann::json::object();
    size_t width = 0;
    for (const auto& [k, v] : flat) width = std::max(width, k.size());
    for (const auto& [k, v] : flat) out << k << std::string(width - k.size() + 2, ' ') << Cell(v, k) << "\n";
  } else {
    out << Cell(result) << "\n";
  }
}

void PrintPrometheus(std::ostream& out, const nlohmann::json& stats) {
  std::vector<std::pair<std::string, nlohmann::json>> flat;
  Flatten(stats, "", &flat);
  // Totals that only grow; the pool's numbers go up and down.
  static const std::set<std::string> kCounters = {"requests", "errors", "events.published", "cleanup.runs",
                                                  "cleanup.deleted"};
  for (const auto& [k, v] : flat) {
    // stats' per-tenant counts: one series per tenant and counter would grow
    // with the tenants; the daemon's /metrics has no tenant label either.
    if (k.rfind("tenants.", 0) == 0) continue;
    std::string name = MetricName(k);
    if (v.is_number() || v.is_boolean()) {
      const char* type = k.rfind("pool.", 0) == 0                             ? "gauge"
                         : kCounters.count(k) || k.rfind("cleanup.deleted_by_table.", 0) == 0 ? "counter"
                                                                                            : "untyped";
      if (std::string(type) == "counter") name += "_total";
      out << "# TYPE " << name << " " << type << "\n";
      out << name << " " << (v.is_boolean() ? (v.get<bool>() ? "1" : "0") : v.dump()) << "\n";
    } else if (v.is_string()) {
      out << "# TYPE " << name << "_info gauge\n";
      out << name << "_info{value=\"" << LabelEscape(v.get<std::string>()) << "\"} 1\n";
    }
  }
}

}  // namespace torii::cli
