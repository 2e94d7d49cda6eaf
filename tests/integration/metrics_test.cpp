// The Prometheus endpoint ([metrics] listen, daemon/metrics.h) through the
// real toriid: requests of a few operations, then /metrics fetched over HTTP
// and parsed by Debian's python3-prometheus-client (metrics_scrape.py), the
// way Prometheus itself would read it.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include "request_fixture.h"
#include "eventually.h"

namespace torii::test {
namespace {

// "TYPE NAME{labels}" -> value, from metrics_scrape.py's output.
struct Scrape {
  std::string content_type;
  std::map<std::string, double> samples;
  std::string raw;

  bool has(const std::string& key) const { return samples.count(key) != 0; }
  double at(const std::string& key) const {
    auto it = samples.find(key);
    if (it == samples.end()) throw std::runtime_error("no sample " + key + " in:\n" + raw);
    return it->second;
  }
};

std::string Python() { return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

// Runs the scraper; fails the test (with its stderr) when it cannot parse.
Scrape ScrapeMetrics(int port) {
  std::string cmd = Python() + " " + TORII_SOURCE_DIR + "/tests/integration/metrics_scrape.py http://127.0.0.1:" +
                    std::to_string(port) + "/metrics 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  Scrape s;
  char buf[4096];
  while (fgets(buf, sizeof(buf), p)) s.raw += buf;
  int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << s.raw;
  std::istringstream in(s.raw);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("content-type ", 0) == 0) {
      s.content_type = line.substr(13);
      continue;
    }
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    s.samples[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return s;
}

class MetricsTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    port_ = FreePort();
    DaemonOptions o;
    o.settings["metrics.listen"] = TomlString("127.0.0.1:" + std::to_string(port_));
    return o;
  }
  int port_ = 0;
};

TEST_F(MetricsTest, PrometheusParsesCountersAndHistogramsOfTheOpsMade) {
  Value user = NewUser();
  std::string uid = user["id"].str();
  for (int i = 0; i < 3; i++) ASSERT_TRUE(Call("get_user", V::Map({{"id", uid}})).ok());
  EXPECT_EQ(Call("get_user", V::Map({{"id", "00000000-0000-0000-0000-000000000000"}})).code(), "not_found");
  EXPECT_EQ(Call("get_user", V::Map({{"id", "not-a-uuid"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("no_such_op").code(), "unknown_op");
  EXPECT_EQ(Call("no_such_op_either").code(), "unknown_op");
  ASSERT_TRUE(Call("ping").ok());

  Scrape s = ScrapeMetrics(port_);
  EXPECT_NE(s.content_type.find("text/plain"), std::string::npos) << s.content_type;
  EXPECT_EQ(s.at("counter toriid_requests_total{code=ok,op=create_user}"), 1);
  EXPECT_EQ(s.at("counter toriid_requests_total{code=ok,op=get_user}"), 3);
  EXPECT_EQ(s.at("counter toriid_requests_total{code=not_found,op=get_user}"), 1);
  EXPECT_EQ(s.at("counter toriid_requests_total{code=invalid_argument,op=get_user}"), 1);
  EXPECT_GE(s.at("counter toriid_requests_total{code=ok,op=ping}"), 1);  // the harness pings too
  // Unknown names share one label value: a client cannot grow the series.
  EXPECT_EQ(s.at("counter toriid_requests_total{code=unknown_op,op=unknown}"), 2);
  EXPECT_FALSE(s.has("counter toriid_requests_total{code=unknown_op,op=no_such_op}"));
  EXPECT_FALSE(s.has("counter toriid_requests_total{code=ok,op=delete_user}")) << "only pairs seen are listed";

  // get_user: 5 requests, every bucket cumulative and +Inf the count.
  EXPECT_EQ(s.at("histogram toriid_request_duration_seconds_count{op=get_user}"), 5);
  EXPECT_EQ(s.at("histogram toriid_request_duration_seconds_bucket{le=+Inf,op=get_user}"), 5);
  double sum = s.at("histogram toriid_request_duration_seconds_sum{op=get_user}");
  EXPECT_GT(sum, 0);
  EXPECT_LT(sum, 50);
  double prev = 0;
  for (const char* le : {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                         "0.25", "0.5", "1", "5"}) {
    double n = s.at(std::string("histogram toriid_request_duration_seconds_bucket{le=") + le + ",op=get_user}");
    EXPECT_GE(n, prev) << le;
    prev = n;
  }
  EXPECT_LE(prev, 5);
  EXPECT_EQ(s.at("histogram toriid_request_duration_seconds_count{op=create_user}"), 1);

  EXPECT_EQ(s.at("gauge toriid_build_info{version=" TORII_VERSION "}"), 1);
  EXPECT_TRUE(s.has("gauge toriid_pool_connections{state=idle}"));
  EXPECT_TRUE(s.has("counter toriid_cleanup_failures_total{}"));
  EXPECT_TRUE(s.has("gauge toriid_notify_queue_usage_ratio{}"));
  EXPECT_TRUE(s.has("counter toriid_overloaded_total{}"));
  EXPECT_TRUE(s.has("counter toriid_cleanup_deleted_total{table=sessions}"));
  EXPECT_TRUE(s.has("counter toriid_cleanup_deleted_total{table=oauth_states}"));
  EXPECT_TRUE(s.has("gauge toriid_cache_capacity{}"));
  EXPECT_TRUE(s.has("counter toriid_cache_lookups_total{result=hit}"));

  // The snapshot side (pool, events, listener) catches up within a second
  // or so: it is copied from the loop once a second.
  Scrape later;
  ASSERT_TRUE(Eventually(
      [&] {
        later = ScrapeMetrics(port_);
        return later.has("gauge toriid_events_seq{family=user}") && later.at("gauge toriid_listener_up{}") == 1 &&
               later.at("counter toriid_events_published_total{}") >= 1 &&
               later.at("gauge toriid_pool_connections{state=idle}") +
                       later.at("gauge toriid_pool_connections{state=busy}") >=
                   1;
      },
      10000, [] { usleep(100 * 1000); }))
      << later.raw;
  EXPECT_GE(later.at("gauge toriid_events_seq{family=user}"), 1);

  // The shipped Grafana dashboard and the alerting rules in
  // docs/operations.md only name metrics the daemon exports.
  std::set<std::string> names;
  for (const auto& [key, v] : s.samples) {
    std::string name = key.substr(key.find(' ') + 1);
    names.insert(name.substr(0, name.find('{')));
  }
  for (const char* file : {"/conf/grafana-toriid.json", "/docs/operations.md"}) {
    std::ifstream in(std::string(TORII_SOURCE_DIR) + file);
    std::stringstream text;
    text << in.rdbuf();
    ASSERT_FALSE(text.str().empty()) << file;
    const std::string body = text.str();
    const std::regex metric_name("toriid_[a-z_]+");
    int seen = 0;
    for (std::sregex_iterator it(body.begin(), body.end(), metric_name), end; it != end; ++it) {
      std::string name = it->str();
      if (name.back() == '_') continue;  // a prefix in prose ("toriid_pool_...")
      seen++;
      EXPECT_TRUE(names.count(name) || names.count(name + "_count")) << file << " names " << name << ", not exported";
    }
    EXPECT_GT(seen, 10) << file;
  }
}

TEST(MetricsConfig, AnEndpointInUseStopsTheStartWithAClearError) {
  int port = FreePort();
  DaemonOptions o;
  o.settings["metrics.listen"] = TomlString("127.0.0.1:" + std::to_string(port));
  DaemonProcess first(o);
  o.wait_ready = false;
  DaemonProcess second(o);
  int status = second.Wait(30000);
  EXPECT_NE(status, 0) << second.LogTail();
  EXPECT_NE(second.log().find("metrics.listen"), std::string::npos) << second.LogTail();
  EXPECT_TRUE(first.running());
}

TEST(MetricsConfig, AMalformedListenIsAConfigError) {
  DaemonOptions o;
  o.settings["metrics.listen"] = TomlString("9464");
  o.wait_ready = false;
  DaemonProcess d(o);
  EXPECT_EQ(d.Wait(30000), 2) << d.LogTail();
  EXPECT_NE(d.log().find("metrics.listen"), std::string::npos) << d.LogTail();
}

}  // namespace
}  // namespace torii::test
