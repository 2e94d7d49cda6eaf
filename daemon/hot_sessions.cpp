// The hot-session cache (see hot_sessions.h).
#include "hot_sessions.h"

#include <vector>

namespace torii::daemon {

namespace {

// Invalidation marks kept before they collapse into one global mark.
constexpr size_t kMaxMarks = 4096;
// Per-entry bookkeeping beyond the strings: list node, three index slots.
constexpr size_t kEntryOverhead = 160;

}  // namespace

void HotSessions::Activate() {
  InvalidateAll();
  active_ = true;
  renewed_ = false;
}

void HotSessions::Deactivate() {
  InvalidateAll();
  active_ = false;
  renewed_ = false;
}

void HotSessions::Renew(uint64_t sent_mono_us) {
  if (!active()) return;
  if (renewed_ && sent_mono_us <= renewed_at_us_) return;
  renewed_ = true;
  renewed_at_us_ = sent_mono_us;
}

bool HotSessions::Usable(uint64_t mono_us) {
  if (!active()) {
    stats_.bypassed++;
    return false;
  }
  if (!Leased(mono_us)) {
    stats_.lease_lapsed++;
    return false;
  }
  return true;
}

const std::string* HotSessions::FindByDigest(std::string_view digest, int64_t now_us, uint64_t mono_us) {
  if (!Usable(mono_us)) return nullptr;
  auto it = by_digest_.find(digest);
  if (it == by_digest_.end()) {
    stats_.misses++;
    return nullptr;
  }
  return Hit(it->second, now_us);
}

const std::string* HotSessions::FindById(std::string_view id, int64_t now_us, uint64_t mono_us,
                                         std::string_view tenant) {
  if (!Usable(mono_us)) return nullptr;
  auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second->tenant != tenant) {
    stats_.misses++;
    return nullptr;
  }
  return Hit(it->second, now_us);
}

const std::string* HotSessions::Hit(Lru::iterator it, int64_t now_us) {
  if (it->expires_at_us <= now_us) {
    // Expired since it was loaded: the database would not return it either.
    stats_.misses++;
    stats_.evictions++;
    Erase(it);
    return nullptr;
  }
  stats_.hits++;
  if (it != lru_.begin()) lru_.splice(lru_.begin(), lru_, it);
  return &it->packed;
}

void HotSessions::Insert(uint64_t load_gen, std::string_view digest, std::string_view id, std::string_view user_id,
                         int64_t expires_at_us, std::string_view packed, std::string_view tenant) {
  if (!active()) return;
  if (load_gen < loads_before_ || MarkedSince('d', digest, load_gen) || MarkedSince('i', id, load_gen) ||
      MarkedSince('u', user_id, load_gen)) {
    stats_.stale_drops++;
    return;
  }
  if (auto it = by_digest_.find(digest); it != by_digest_.end()) Erase(it->second);
  if (auto it = by_id_.find(id); it != by_id_.end()) Erase(it->second);
  lru_.push_front(Entry{std::string(digest), std::string(id), std::string(user_id), expires_at_us, std::string(packed),
                        std::string(tenant)});
  Entry& e = lru_.front();
  by_digest_.emplace(e.digest, lru_.begin());
  by_id_.emplace(e.id, lru_.begin());
  by_user_[e.user_id].insert(e.id);
  entry_bytes_ += e.digest.size() + e.id.size() + e.user_id.size() + e.packed.size() + kEntryOverhead;
  stats_.inserts++;
  while (lru_.size() > capacity_) {
    stats_.capacity_evictions++;
    Erase(std::prev(lru_.end()));
  }
}

void HotSessions::Erase(Lru::iterator it) {
  entry_bytes_ -= it->digest.size() + it->id.size() + it->user_id.size() + it->packed.size() + kEntryOverhead;
  by_digest_.erase(it->digest);
  by_id_.erase(it->id);
  if (auto u = by_user_.find(it->user_id); u != by_user_.end()) {
    u->second.erase(it->id);
    if (u->second.empty()) by_user_.erase(u);
  }
  lru_.erase(it);
}

void HotSessions::Mark(char kind, std::string_view key) {
  stats_.invalidations++;
  ++gen_;
  if (marks_.size() >= kMaxMarks) {
    marks_.clear();
    loads_before_ = gen_;
    return;
  }
  std::string k(1, kind);
  k.append(key);
  marks_[std::move(k)] = gen_;
}

bool HotSessions::MarkedSince(char kind, std::string_view key, uint64_t load_gen) const {
  if (marks_.empty()) return false;
  std::string k(1, kind);
  k.append(key);
  auto it = marks_.find(k);
  return it != marks_.end() && it->second > load_gen;
}

void HotSessions::InvalidateDigest(std::string_view digest) {
  if (!enabled()) return;
  Mark('d', digest);
  if (auto it = by_digest_.find(digest); it != by_digest_.end()) {
    stats_.evictions++;
    Erase(it->second);
  }
}

void HotSessions::InvalidateId(std::string_view id) {
  if (!enabled()) return;
  Mark('i', id);
  if (auto it = by_id_.find(id); it != by_id_.end()) {
    stats_.evictions++;
    Erase(it->second);
  }
}

void HotSessions::InvalidateUser(std::string_view user_id) {
  if (!enabled()) return;
  Mark('u', user_id);
  auto u = by_user_.find(std::string(user_id));
  if (u == by_user_.end()) return;
  std::vector<Lru::iterator> doomed;
  for (std::string_view id : u->second) doomed.push_back(by_id_.at(id));
  for (auto it : doomed) {
    stats_.evictions++;
    Erase(it);
  }
}

void HotSessions::EvictExpired(int64_t now_us) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (it->expires_at_us <= now_us) {
      stats_.evictions++;
      Erase(it);
    }
    it = next;
  }
}

void HotSessions::InvalidateAll() {
  if (!enabled()) return;
  stats_.resets++;
  ++gen_;
  loads_before_ = gen_;
  marks_.clear();
  stats_.evictions += lru_.size();
  by_digest_.clear();
  by_id_.clear();
  by_user_.clear();
  lru_.clear();
  entry_bytes_ = 0;
}

void HotSessions::OnEvent(const StreamEvent& e, int64_t now_us) {
  if (e.family == "session" && (e.kind == "updated" || e.kind == "deleted")) {
    e.id.empty() ? InvalidateAll() : InvalidateId(e.id);
  } else if (e.family == "session" && e.kind == "expired") {
    EvictExpired(now_us);
  } else if (e.family == "user" && e.kind == "deleted") {
    e.id.empty() ? InvalidateAll() : InvalidateUser(e.id);
  } else if (e.family == "torii" && e.kind == "resync") {
    InvalidateAll();
  }
}

size_t HotSessions::memory_bytes() const {
  size_t marks = 0;
  for (const auto& [k, g] : marks_) marks += k.size() + 48;
  return entry_bytes_ + marks + (by_digest_.bucket_count() + by_id_.bucket_count()) * sizeof(void*) +
         by_user_.size() * 64;
}

}  // namespace torii::daemon
