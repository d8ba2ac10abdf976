#include "proxy/connection_limits.hpp"

namespace npp::proxy {

std::size_t connection_limits::ip_hash::operator()(const config::ip_address& a) const {
  // FNV-1a: spread is all the shards and the map need. A client controls only its own address,
  // and every entry is a live connection the limit already bounds, so collisions cannot grow
  // the table beyond what the limits allow.
  std::uint64_t h = 1469598103934665603ull;
  for (auto b : a.bytes) h = (h ^ b) * 1099511628211ull;
  return static_cast<std::size_t>(h ^ (h >> 32));
}

connection_limits::slot& connection_limits::slot::operator=(slot&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::move(o.owner_);
    source_ = o.source_;
    by_source_ = o.by_source_;
    o.by_source_ = false;
  }
  return *this;
}

void connection_limits::slot::release() {
  if (!owner_) return;
  owner_->release(source_, by_source_);
  owner_.reset();
  by_source_ = false;
}

connection_limits::verdict connection_limits::admit(const config::ip_address& source, std::size_t max_total,
                                                    std::size_t max_per_source, slot& out) {
  // Take the slot first and give it back when over: concurrent admits on other workers may
  // overshoot the counter for an instant but never both succeed past the limit.
  const std::size_t before = active_.fetch_add(1, std::memory_order_relaxed);
  if (max_total != 0 && before >= max_total) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    return verdict::service_limit;
  }
  if (max_per_source != 0) {
    shard& s = shard_of(source);
    std::lock_guard lock(s.mutex);
    auto& n = s.counts[source];
    if (n >= max_per_source) {  // n >= 1 here: no empty entry is left behind
      active_.fetch_sub(1, std::memory_order_relaxed);
      return verdict::source_limit;
    }
    ++n;
  }
  out = slot();
  out.owner_ = shared_from_this();
  out.source_ = source;
  out.by_source_ = max_per_source != 0;
  return verdict::admitted;
}

void connection_limits::release(const config::ip_address& source, bool by_source) {
  if (by_source) {
    shard& s = shard_of(source);
    std::lock_guard lock(s.mutex);
    if (auto it = s.counts.find(source); it != s.counts.end() && --it->second == 0) s.counts.erase(it);
  }
  active_.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t connection_limits::active_from(const config::ip_address& source) const {
  const shard& s = shard_of(source);
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(source);
  return it == s.counts.end() ? 0 : it->second;
}

}  // namespace npp::proxy
