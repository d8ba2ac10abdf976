#include "proxy/affinity.hpp"

#include <algorithm>

namespace npp::proxy {

/// Inserts between two sweeps for expired records (keeps the table bounded by live clients).
static constexpr std::size_t purge_every = 1024;

std::size_t affinity_table::key_hash::operator()(const config::ip_address& a) const {
  std::uint64_t h = a.v6 ? 0x9e3779b97f4a7c15ull : 0;
  for (auto b : a.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<std::size_t>(h);
}

affinity_table::affinity_table(const affinity_table& old, const std::vector<config::host_port>& keep)
    : timeout_(old.timeout_) {
  std::lock_guard lock(old.mutex_);
  for (const auto& [client, e] : old.records_)
    if (std::find(keep.begin(), keep.end(), e.endpoint) != keep.end()) records_.emplace(client, e);
}

std::optional<config::host_port> affinity_table::lookup(const config::ip_address& client, clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(client.unmapped());
  if (it == records_.end()) return std::nullopt;
  if (now - it->second.last_used >= timeout_) {
    records_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second.endpoint;
}

void affinity_table::record(const config::ip_address& client, const config::host_port& endpoint, clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto key = client.unmapped();
  if (auto it = records_.find(key); it != records_.end()) {
    it->second = {endpoint, now};
    return;
  }
  if (++inserts_since_purge_ >= purge_every || records_.size() >= max_records) purge_expired(now);
  if (records_.size() >= max_records) return;
  records_.emplace(key, entry{endpoint, now});
}

void affinity_table::purge_expired(clock::time_point now) {
  inserts_since_purge_ = 0;
  std::erase_if(records_, [&](const auto& kv) { return now - kv.second.last_used >= timeout_; });
}

std::size_t affinity_table::size() const {
  std::lock_guard lock(mutex_);
  return records_.size();
}

}  // namespace npp::proxy
