#pragma once
// Open TCP connections of one Service, counted over all its ports and all workers, for the
// Service's maxConnections and maxConnectionsPerSource. The reconciler keeps one object per
// Service id across snapshots (like port_stats), so a reload that changes a limit applies it to
// the connections already open; the limit values themselves travel in port_runtime.
//
// A connection that is admitted holds a slot; releasing it (the session's sockets close) gives
// the count back to the object it was taken from, even if the Service has been reconfigured or
// removed since. At a limit the listener resets the client at once (tcp_listener.cpp).
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "config/ip.hpp"

namespace npp::proxy {

class connection_limits : public std::enable_shared_from_this<connection_limits> {
 public:
  /// Why admit() said no.
  enum class verdict : std::uint8_t { admitted, service_limit, source_limit };

  /// One admitted connection's share of the counts; releases it on destruction. Move-only.
  class slot {
   public:
    slot() = default;
    slot(slot&& o) noexcept { *this = std::move(o); }
    slot& operator=(slot&& o) noexcept;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { release(); }
    /// Gives the counts back now (idempotent).
    void release();

   private:
    friend class connection_limits;
    std::shared_ptr<connection_limits> owner_;  ///< null: holds nothing
    config::ip_address source_;                 ///< counted per source when by_source_
    bool by_source_ = false;                    ///< this slot was counted in the per-source table
  };

  /// Admits a connection from `source` unless the Service already has `max_total` open
  /// connections (0: no cap) or `max_per_source` from this source (0: no cap, and the
  /// per-source table is not touched). On success `out` holds the slot.
  verdict admit(const config::ip_address& source, std::size_t max_total, std::size_t max_per_source, slot& out);

  /// Open connections of the Service (all ports, all workers).
  std::size_t active() const { return active_.load(std::memory_order_relaxed); }
  /// Open connections from `source` counted in the per-source table (for tests and status).
  std::size_t active_from(const config::ip_address& source) const;

 private:
  struct ip_hash {
    std::size_t operator()(const config::ip_address& a) const;
  };
  /// One lock per shard: workers admitting clients of different addresses rarely meet.
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<config::ip_address, std::uint32_t, ip_hash> counts;  ///< source -> open connections
  };
  static constexpr std::size_t shard_count = 16;  ///< a power of two

  shard& shard_of(const config::ip_address& a) { return shards_[ip_hash{}(a) & (shard_count - 1)]; }
  const shard& shard_of(const config::ip_address& a) const { return shards_[ip_hash{}(a) & (shard_count - 1)]; }
  void release(const config::ip_address& source, bool by_source);

  std::atomic<std::size_t> active_{0};        ///< open connections (every admitted slot)
  std::array<shard, shard_count> shards_;     ///< per-source counts, only when a per-source cap is set
};

}  // namespace npp::proxy
