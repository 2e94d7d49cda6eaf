// A steady mixed load for fault tests; see write_load.h.
#include "write_load.h"

#include <cstdlib>
#include <random>
#include <stdexcept>

#include "torii/pg.h"

namespace torii::test {

WriteLoad::WriteLoad(std::string endpoint, WriteLoadOptions options)
    : endpoint_(std::move(endpoint)), options_(std::move(options)) {
  for (int i = 0; i < options_.clients; i++) threads_.emplace_back([this, i] { Run(i); });
}

void WriteLoad::Stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

WriteLoad::Clock::time_point WriteLoad::FirstWriteAckedAfter(Clock::time_point t) {
  std::lock_guard<std::mutex> l(mu);
  Clock::time_point best = Clock::time_point::max();
  for (auto& [sent, done] : write_acks) {
    if (sent >= t && done < best) best = done;
  }
  return best;
}

size_t WriteLoad::AckedWrites() {
  std::lock_guard<std::mutex> l(mu);
  return write_acks.size();
}

Reply WriteLoad::Send(WireClient& c, const std::string& op, V args) {
  Req r;
  r.op = V(op);
  r.args = std::move(args);
  r.timeout_ms = V(static_cast<uint64_t>(options_.deadline_ms));
  return c.Call(r, options_.hang_ms);
}

bool WriteLoad::Check(const Reply& r, const std::string& op, Clock::time_point sent, const std::string& user) {
  if (!r.received) {
    hangs++;
    return false;
  }
  if (r.ok()) {
    ok++;
    return true;
  }
  std::lock_guard<std::mutex> l(mu);
  codes[r.code()]++;
  if (options_.allowed.count(r.code())) {
    failures.push_back({sent, op + ": " + r.code()});
  } else if (options_.user_may_vanish && !user.empty() && (r.code() == "not_found" || r.code() == "foreign_key")) {
    missing_user.emplace_back(user, op + ": " + r.ToString());
  } else {
    wrong.push_back(op + ": " + r.ToString());
  }
  return false;
}

void WriteLoad::Run(int n) {
  WireClient c(endpoint_);
  std::mt19937 rng(n);
  int seq = 0;
  while (!stop_) {
    int pick = rng() % 3;
    std::string user;
    {
      std::lock_guard<std::mutex> l(mu);
      if (!acked_users.empty()) user = acked_users[rng() % acked_users.size()];
    }
    auto sent = Clock::now();
    if (pick == 0 || user.empty()) {
      std::string email = options_.email_prefix + std::to_string(n) + "-" + std::to_string(seq++) + "@example.com";
      Reply r = Send(c, "create_user", V::Map({{"email", email}}));
      if (Check(r, "create_user", sent, "")) {
        std::lock_guard<std::mutex> l(mu);
        acked_users.push_back(r.result()["id"].str());
        write_acks.emplace_back(sent, Clock::now());
      }
    } else if (pick == 1) {
      Reply r = Send(c, "get_user", V::Map({{"id", user}}));
      if (Check(r, "get_user", sent, user) && r.result()["id"].str() != user) {
        std::lock_guard<std::mutex> l(mu);
        wrong.push_back("get_user returned another user");
      }
    } else {
      Reply r = Send(c, "create_session", V::Map({{"user_id", user}, {"ttl_s", 3600}}));
      if (Check(r, "create_session", sent, user)) {
        std::lock_guard<std::mutex> l(mu);
        acked_sessions.push_back(r.result()["id"].str());
        write_acks.emplace_back(sent, Clock::now());
      }
    }
  }
}

int64_t CountIn(PGconn* c, const std::string& table, const std::vector<std::string>& ids) {
  if (ids.empty()) return 0;
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "'" : ",'") + id + "'";
  auto r = ExecBlocking(c, "SELECT count(*) FROM " + table + " WHERE id IN (" + list + ")");
  if (!r.ok()) throw std::runtime_error(r.error().message());
  return std::atoll(PQgetvalue(r->get(), 0, 0));
}

}  // namespace torii::test
