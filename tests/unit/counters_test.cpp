// The table of counters (daemon/counters.h) and its two renderings: every
// counter appears, with the same value, in the `stats` map and in the
// Prometheus text; the stats map keeps the keys and shapes clients read
// (docs/protocol.md section 7); the table is well formed; and the docs name
// every counter.
#include "counters.h"

#include <gtest/gtest.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "wire.h"

namespace torii::daemon {
namespace {

using torii::test::Value;

// A snapshot in which every value is set, and no two counters share one.
CounterSnapshot Distinct() {
  CounterSnapshot s;
  uint64_t n = 100;
  auto next = [&] { return n += 7; };
  s.requests = {next(), next(), next(), next()};
  s.in_flight = next();
  s.undeliverable = next();
  s.uptime_ms = 123456;
  s.pool.size = 9;
  s.pool.idle = 3;
  s.pool.busy = 4;
  s.pool.waiting = next();
  s.pool.connects = next();
  s.pool.connect_failures = next();
  s.pool.broken = next();
  s.pool.cancels = next();
  s.pool.batches = next();
  s.pool.batched = next();
  s.publisher.published = next();
  s.publisher.dropped = next();
  s.seqs = {{"session", next()}, {"torii", next()}, {"user", next()}};
  s.epoch = "0123456789abcdef";
  s.listener.received = next();
  s.listener.malformed = next();
  s.listener.reconnects = next();
  s.listener.probes = next();
  s.listener.probe_failures = next();
  s.listener.probes_out = next();
  s.listener.last_probe_rtt_us = 2500;
  s.listener.queue_usage = 0.25;
  s.listener.listening = true;
  s.listener.timeline = 3;
  s.listener.server_changes = next();
  s.janitor.runs = next();
  s.janitor.skipped = next();
  s.janitor.deleted = next();
  s.janitor.audit_pruned = next();
  s.janitor.last_run_at_us = 1'700'000'000'000'000;
  s.janitor.last_duration_ms = 1500;
  s.janitor.last_deleted = next();
  s.janitor.deleted_by_table = {{"sessions", next()}, {"secure_tokens", next()}};
  s.janitor.last_error = "the last pass failed";
  s.janitor.failures = next();
  s.cache = {next(), next(), next(), next(), next(), next(), next(), next(), next(), next()};
  s.cache_active = true;
  s.cache_entries = next();
  s.cache_capacity = next();
  s.cache_memory_bytes = next();
  s.cache_generation = next();
  s.cache_leased = true;
  s.cache_lease_ms = 1000;
  s.cache_lease_age_us = 250'000;
  s.plaintext_network = true;
  s.listener.lease_lapses = next();
  return s;
}

Value Stats(const CounterSnapshot& s) {
  Value v = Value::Decode(PackStats(s));
  EXPECT_TRUE(v.is_map());
  return v;
}

Value At(const Value& stats, std::string_view path) {
  size_t dot = path.find('.');
  if (dot == std::string_view::npos) return stats[std::string(path)];
  return stats[std::string(path.substr(0, dot))][std::string(path.substr(dot + 1))];
}

std::string Exposition(const CounterSnapshot& s) {
  return "\n" + prometheus::TextSerializer().Serialize(CounterFamilies(s));
}

// The value of the sample "name{labels}" in the text format, or nullopt.
std::optional<double> SampleIn(const std::string& text, const std::string& sample) {
  size_t at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + sample.size() + 2));
}

struct Parsed {
  std::string family, label, value;
};
Parsed Parse(const char* metric) {
  MetricName n = SplitMetric(metric);
  return {std::string(n.family), std::string(n.label), std::string(n.value)};
}

bool IsText(Form f) { return f == Form::kText || f == Form::kTextOrNil; }

TEST(Counters, EveryCounterAppearsInBothFormatsWithTheSameValue) {
  for (const CounterSnapshot& s : {Distinct(), CounterSnapshot{}}) {
    Value stats = Stats(s);
    std::string text = Exposition(s);
    for (const CounterDef& d : Counters()) {
      SCOPED_TRACE(d.stats);
      Value v = At(stats, d.stats);
      ASSERT_TRUE(v.exists()) << "not in stats: " << stats.ToString();
      Reading r = d.read(s);
      if (IsText(d.form)) {
        // A Prometheus sample is a number: text is in stats only.
        EXPECT_EQ(d.metric, nullptr);
        if (d.form == Form::kTextOrNil && r.text.empty()) {
          EXPECT_TRUE(v.is_nil());
        } else {
          EXPECT_EQ(v.str(), r.text);
        }
        continue;
      }
      ASSERT_NE(d.metric, nullptr) << "a number must be in /metrics too";
      Parsed m = Parse(d.metric);
      EXPECT_NE(text.find("\n# TYPE " + m.family + (d.type == CounterType::kCounter ? " counter\n" : " gauge\n")),
                std::string::npos)
          << text;
      std::string sample = m.family + (m.value.empty() ? "" : "{" + m.label + "=\"" + m.value + "\"}");
      switch (d.form) {
        case Form::kCount:
          EXPECT_EQ(v.u64(), r.count);
          EXPECT_EQ(SampleIn(text, sample), static_cast<double>(r.count)) << text;
          break;
        case Form::kMillis:
          EXPECT_EQ(v.u64(), r.count);
          EXPECT_EQ(SampleIn(text, sample), r.count / 1e3) << text;
          break;
        case Form::kMicrosOrNone:
          EXPECT_EQ(v.i64(), r.signed_value);
          EXPECT_EQ(SampleIn(text, sample), r.signed_value < 0 ? -1 : r.signed_value / 1e6) << text;
          break;
        case Form::kTimeOrNil:
          if (r.signed_value == 0) {
            EXPECT_TRUE(v.is_nil()) << v.ToString();
          } else {
            EXPECT_EQ(v.micros(), r.signed_value);
          }
          EXPECT_EQ(SampleIn(text, sample), r.signed_value / 1e6) << text;
          break;
        case Form::kRatio:
          EXPECT_EQ(v.dbl(), r.ratio);
          EXPECT_EQ(SampleIn(text, sample), r.ratio) << text;
          break;
        case Form::kFlag:
          EXPECT_EQ(v.boolean(), r.flag);
          EXPECT_EQ(SampleIn(text, sample), r.flag ? 1 : 0) << text;
          break;
        case Form::kByName:
          ASSERT_TRUE(v.is_map());
          EXPECT_EQ(v.size(), r.by_name.size());
          for (const auto& [name, n] : r.by_name) {
            EXPECT_EQ(v[name].u64(), n) << name;
            EXPECT_EQ(SampleIn(text, m.family + "{" + m.label + "=\"" + name + "\"}"), static_cast<double>(n))
                << text;
          }
          break;
        case Form::kText:
        case Form::kTextOrNil: break;
      }
    }
  }
}

// The keys and msgpack types of the stats reply as clients know them
// (docs/protocol.md section 7; PROTOCOL.md section 2 fixes some): the table
// may add keys, never change or drop one of these.
TEST(Counters, StatsKeepsEveryKeyAndItsShape) {
  using T = msgpack::type::object_type;
  const T kUint = msgpack::type::POSITIVE_INTEGER;
  const std::vector<std::pair<std::string, T>> shape = {
      {"requests", kUint}, {"errors", kUint}, {"timeouts", kUint}, {"overloaded", kUint}, {"undeliverable", kUint},
      {"uptime_ms", kUint}, {"pool", msgpack::type::MAP}, {"pool.size", kUint}, {"pool.idle", kUint},
      {"pool.busy", kUint}, {"pool.waiting", kUint}, {"pool.connects", kUint}, {"pool.connect_failures", kUint},
      {"pool.broken", kUint}, {"pool.cancels", kUint}, {"pool.lookup_batches", kUint},
      {"pool.batched_lookups", kUint}, {"events", msgpack::type::MAP}, {"events.seq", msgpack::type::MAP},
      {"events.epoch", msgpack::type::STR}, {"events.published", kUint}, {"events.received", kUint},
      {"events.malformed", kUint}, {"events.listening", msgpack::type::BOOLEAN}, {"events.reconnects", kUint},
      {"events.probe_failures", kUint}, {"events.probes_out", kUint}, {"events.last_probe_rtt_us", kUint},
      {"events.queue_usage", msgpack::type::FLOAT64}, {"events.timeline", kUint}, {"events.server_changes", kUint},
      {"cache", msgpack::type::MAP}, {"cache.active", msgpack::type::BOOLEAN}, {"cache.capacity", kUint},
      {"cache.entries", kUint}, {"cache.memory_bytes", kUint}, {"cache.hits", kUint}, {"cache.misses", kUint},
      {"cache.bypassed", kUint}, {"cache.inserts", kUint}, {"cache.evictions", kUint},
      {"cache.capacity_evictions", kUint}, {"cache.stale_drops", kUint}, {"cache.invalidations", kUint},
      {"cache.resets", kUint}, {"cache.generation", kUint}, {"cleanup", msgpack::type::MAP},
      {"cleanup.runs", kUint}, {"cleanup.deleted_by_table", msgpack::type::MAP}, {"cleanup.deleted", kUint},
      {"cleanup.skipped", kUint}, {"cleanup.audit_pruned", kUint}, {"cleanup.last_run_at", msgpack::type::EXT},
      {"cleanup.last_duration_ms", kUint}, {"cleanup.last_deleted", kUint},
      {"cleanup.last_error", msgpack::type::STR},
  };
  Value stats = Stats(Distinct());
  for (const auto& [path, type] : shape) {
    Value v = At(stats, path);
    ASSERT_TRUE(v.exists()) << path;
    EXPECT_EQ(v.object()->type, type) << path << ": " << v.ToString();
  }
  EXPECT_TRUE(At(stats, "cleanup.last_run_at").is_timestamp());
  // Before the first probe and the first pass.
  Value empty = Stats(CounterSnapshot{});
  EXPECT_EQ(At(empty, "events.last_probe_rtt_us").i64(), -1);
  EXPECT_TRUE(At(empty, "cleanup.last_run_at").is_nil());
  EXPECT_TRUE(At(empty, "cleanup.last_error").is_nil());
}

TEST(Counters, StatsHoldsTheTableAndNothingElse) {
  std::set<std::string> described;
  for (const CounterDef& d : Counters()) described.insert(d.stats);
  std::set<std::string> found;
  Value stats = Stats(Distinct());
  for (const std::string& key : stats.keys()) {
    if (!stats[key].is_map()) {
      found.insert(key);
      continue;
    }
    // A section; a map-valued counter (events.seq) is a path of the table.
    if (described.count(key)) {
      found.insert(key);
      continue;
    }
    for (const std::string& sub : stats[key].keys()) found.insert(key + "." + sub);
  }
  EXPECT_EQ(found, described);
}

TEST(Counters, TableIsWellFormed) {
  std::set<std::string> paths, samples;
  std::map<std::string, const CounterDef*> first_of_family;
  for (const CounterDef& d : Counters()) {
    SCOPED_TRACE(d.stats);
    EXPECT_TRUE(paths.insert(d.stats).second) << "two rows with one stats key";
    EXPECT_NE(d.read, nullptr);
    if (d.metric == nullptr) {
      EXPECT_TRUE(IsText(d.form));
      continue;
    }
    std::string metric = d.metric;
    EXPECT_TRUE(samples.insert(metric).second) << "two rows with one sample";
    Parsed m = Parse(d.metric);
    EXPECT_EQ(m.family.rfind("toriid_", 0), 0u) << m.family;
    EXPECT_EQ(m.family.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos) << m.family;
    // Prometheus naming: counters and only counters end in _total.
    bool total = m.family.size() > 6 && m.family.compare(m.family.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(total, d.type == CounterType::kCounter) << m.family;
    EXPECT_EQ(d.form == Form::kByName, !m.label.empty() && m.value.empty()) << "a map is labelled by name";
    auto [it, first] = first_of_family.emplace(m.family, &d);
    if (first) {
      EXPECT_STRNE(d.help, "") << "the first row of a family gives its help";
    } else {
      EXPECT_STREQ(d.help, "") << "the help of " << m.family << " is on its first row";
      EXPECT_EQ(d.type, it->second->type) << "one type per family";
      EXPECT_EQ(m.label, Parse(it->second->metric).label) << "one label per family";
      EXPECT_FALSE(m.value.empty()) << "the rows of one family differ by label value";
    }
  }
}

std::string ReadDoc(const std::string& name) {
  std::ifstream in(std::string(TORII_SOURCE_DIR) + "/docs/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Counters, TheDocsNameEveryCounter) {
  const std::string operations = ReadDoc("operations.md");
  const std::string protocol = ReadDoc("protocol.md");
  size_t section = protocol.find("## 7. `stats`");
  ASSERT_NE(section, std::string::npos);
  const std::string stats_doc = protocol.substr(section, protocol.find("\n## ", section + 1) - section);
  for (const CounterDef& d : Counters()) {
    std::string path = d.stats;
    std::string key = path.substr(path.find('.') + 1);
    EXPECT_NE(stats_doc.find(key), std::string::npos) << path << " is not in docs/protocol.md section 7";
    if (d.metric != nullptr) {
      std::string family = Parse(d.metric).family;
      EXPECT_NE(operations.find("`" + family + "`"), std::string::npos) << family << " is not in docs/operations.md";
    }
  }
}

}  // namespace
}  // namespace torii::daemon
