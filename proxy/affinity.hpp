#pragma once
// sessionAffinity: ClientIP. A table client IP -> endpoint shared by every worker (a client's
// connections arrive on any worker), with kube-proxy's semantics: the key is the client IP only,
// the window slides (each use refreshes it), a record whose endpoint leaves is dropped, and a
// failed dial picks anew (the endpoint that finally answers overwrites the record).
// Only services with ClientIP affinity have a table; the lock is taken once per new connection
// or UDP session of those services, never per byte.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "config/ip.hpp"

namespace npp::proxy {

class affinity_table {
 public:
  using clock = std::chrono::steady_clock;
  /// Records kept at most; past it new clients are served round-robin without a record.
  static constexpr std::size_t max_records = 65536;

  explicit affinity_table(std::chrono::seconds timeout) : timeout_(timeout) {}
  /// A copy for a new endpoint set: records of endpoints not in `keep` are dropped.
  affinity_table(const affinity_table& old, const std::vector<config::host_port>& keep);

  /// The endpoint this client is pinned to, if the record is fresh (and refreshes it).
  std::optional<config::host_port> lookup(const config::ip_address& client, clock::time_point now);
  /// Pins the client to `endpoint` (after a successful dial).
  void record(const config::ip_address& client, const config::host_port& endpoint, clock::time_point now);
  std::chrono::seconds timeout() const { return timeout_; }
  std::size_t size() const;

 private:
  struct key_hash {
    std::size_t operator()(const config::ip_address& a) const;
  };
  struct entry {
    config::host_port endpoint;
    clock::time_point last_used;
  };
  void purge_expired(clock::time_point now);

  std::chrono::seconds timeout_;  ///< sessionAffinityConfig.clientIP.timeoutSeconds
  mutable std::mutex mutex_;      ///< workers share the table
  std::unordered_map<config::ip_address, entry, key_hash> records_;
  std::size_t inserts_since_purge_ = 0;
};

}  // namespace npp::proxy
