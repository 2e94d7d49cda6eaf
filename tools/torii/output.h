// How the torii CLI prints: readable text for a terminal (aligned columns,
// local times) or one JSON value per line with --json. Pure formatting over
// nlohmann::json values as torii::Client::CallJson returns them (timestamps
// are RFC 3339 UTC strings); no I/O besides the stream it is given.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace torii::cli {

// "2025-01-01T12:00:00.000000Z" -> "2025-01-01 13:00:00 CET" in the local
// time zone; any other string is returned unchanged.
std::string LocalTime(const std::string& rfc3339);

// A scalar for a table cell: strings bare, null as "-", timestamps local,
// other JSON compact.
std::string Cell(const nlohmann::json& v, const std::string& key = "");

// One record as "key  value" lines with the keys aligned. A password hash
// is shown as "(set)" / "-", never in the clear; --json output is raw.
void PrintRecord(std::ostream& out, const nlohmann::json& record);

// Rows of records as a table with a header; only `columns`, in order.
void PrintTable(std::ostream& out, const std::vector<nlohmann::json>& rows, const std::vector<std::string>& columns);

// A reply in text mode: records, lists of users/sessions/audit entries
// (with the `next` cursor), or nested maps (stats) as dotted keys.
void PrintResult(std::ostream& out, const nlohmann::json& result);

// stats in Prometheus text exposition format: every number becomes a
// metric torii_<dotted path with '_'>, strings an _info metric with the
// value as a label. pool.* are gauges, cumulative totals counters.
void PrintPrometheus(std::ostream& out, const nlohmann::json& stats);

}  // namespace torii::cli
