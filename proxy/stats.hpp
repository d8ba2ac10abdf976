#pragma once
// Counters, defined once in one list (Envoy's ALL_TCP_PROXY_STATS). Each worker writes only its
// own cache-line-aligned block with relaxed atomics (a plain load+store: no lock prefix on the
// data path); readers sum the blocks when they report.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace npp::proxy {

// X(name, help)
#define NPP_PORT_COUNTERS(X)                                                              \
  X(connections_accepted, "client connections accepted")                                 \
  X(connections_rejected_limit, "client connections reset because of --max-connections") \
  X(connections_rejected_allowlist, "client connections reset: source not allowed (allowSourceRanges, --allow-source-ranges)") \
  X(connections_rejected_service_limit, "client connections reset because of the service's maxConnections") \
  X(connections_rejected_source_limit, "client connections reset because of the service's maxConnectionsPerSource") \
  X(connections_rejected_no_endpoints, "client connections reset: no usable endpoint")    \
  X(connections_connect_failed, "client connections reset: every connect attempt failed") \
  X(upstream_connect_attempts, "upstream connect attempts")                               \
  X(upstream_connect_failures, "upstream connect attempts that failed or timed out")      \
  X(bytes_client_to_upstream, "bytes relayed from clients to endpoints")                  \
  X(bytes_upstream_to_client, "bytes relayed from endpoints to clients")                  \
  X(closed_idle_timeout, "connections closed by the idle timeout")                        \
  X(closed_half_closed_timeout, "connections closed by the half-closed timeout")          \
  X(closed_client_reset, "connections ended by a client reset")                           \
  X(closed_upstream_reset, "connections ended by an endpoint reset")                       \
  X(tls_handshakes, "TLS handshakes completed with clients")                             \
  X(tls_handshakes_resumed, "TLS handshakes with clients that resumed a session")        \
  X(tls_handshakes_ocsp_stapled, "TLS handshakes with clients that got a stapled OCSP response") \
  X(tls_handshake_errors_timeout, "TLS client handshakes closed by --tls-handshake-timeout") \
  X(tls_handshake_errors_closed, "TLS client handshakes the client abandoned (closed or reset)") \
  X(tls_handshake_errors_protocol, "TLS client handshakes refused: protocol version, ciphers, malformed or not TLS") \
  X(tls_handshake_errors_client_certificate, "TLS client handshakes refused: no valid client certificate") \
  X(tls_handshake_errors_limit, "TLS clients reset because --tls-max-handshakes were in progress") \
  X(upstream_tls_handshake_failures, "TLS handshakes with endpoints that failed (re-encryption)") \
  X(udp_datagrams_client_to_upstream, "UDP datagrams relayed from clients to endpoints")  \
  X(udp_datagrams_upstream_to_client, "UDP datagrams relayed from endpoints to clients")  \
  X(udp_sessions_created, "UDP sessions created")                                         \
  X(udp_sessions_expired, "UDP sessions closed by the idle timeout")                      \
  X(udp_sessions_evicted, "UDP sessions evicted to make room in a full session table")     \
  X(udp_sessions_reset, "UDP sessions reset by an ICMP error or a send error")            \
  X(udp_sessions_moved, "UDP sessions moved to another endpoint after theirs left")       \
  X(udp_dropped_no_endpoints, "UDP datagrams dropped: no usable endpoint")                \
  X(udp_dropped_allowlist, "UDP datagrams dropped: source not allowed (allowSourceRanges, --allow-source-ranges)") \
  X(udp_dropped_session_limit, "UDP datagrams dropped: session table full of active sessions") \
  X(udp_dropped_buffer_full, "UDP datagrams dropped: socket send buffer full or send error")  \
  X(udp_dropped_oversize, "UDP datagrams dropped: larger than the largest UDP datagram")

/// Adds n to a counter only this thread writes (relaxed load + store, no read-modify-write).
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void bump(std::atomic<std::int64_t>& c, std::int64_t n) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// Upper bounds ("le") of the upstream connect duration histogram: 0.5 ms on loopback to the
/// default 5 s connect timeout; slower connects land in +Inf.
inline constexpr std::array<std::chrono::nanoseconds, 13> connect_duration_bounds{
    std::chrono::microseconds(500), std::chrono::milliseconds(1), std::chrono::microseconds(2500),
    std::chrono::milliseconds(5),   std::chrono::milliseconds(10), std::chrono::milliseconds(25),
    std::chrono::milliseconds(50),  std::chrono::milliseconds(100), std::chrono::milliseconds(250),
    std::chrono::milliseconds(500), std::chrono::seconds(1),       std::chrono::microseconds(2500000),
    std::chrono::seconds(5)};

/// Upper bounds of the sync (apply) duration histogram: a small update takes well under a
/// millisecond, 10,000 services take hundreds.
inline constexpr std::array<std::chrono::nanoseconds, 15> sync_duration_bounds{
    std::chrono::microseconds(100), std::chrono::microseconds(250), std::chrono::microseconds(500),
    std::chrono::milliseconds(1),   std::chrono::microseconds(2500), std::chrono::milliseconds(5),
    std::chrono::milliseconds(10),  std::chrono::milliseconds(25),  std::chrono::milliseconds(50),
    std::chrono::milliseconds(100), std::chrono::milliseconds(250), std::chrono::milliseconds(500),
    std::chrono::seconds(1),        std::chrono::microseconds(2500000), std::chrono::seconds(5)};

/// Bucket index of a duration for `bounds` (bounds.size() = the +Inf bucket).
template <std::size_t N>
std::size_t bucket_of(const std::array<std::chrono::nanoseconds, N>& bounds, std::chrono::nanoseconds d) {
  std::size_t i = 0;
  while (i < N && d > bounds[i]) ++i;
  return i;
}

/// A histogram one thread writes: per-bucket counts (not cumulative) and the sum.
template <std::size_t N>
struct duration_histogram {
  std::array<std::atomic<std::uint64_t>, N + 1> buckets{};  ///< [N] is +Inf
  std::atomic<std::uint64_t> sum_ns{0};
  void observe(const std::array<std::chrono::nanoseconds, N>& bounds, std::chrono::nanoseconds d) {
    bump(buckets[bucket_of(bounds, d)]);
    bump(sum_ns, static_cast<std::uint64_t>(d.count() > 0 ? d.count() : 0));
  }
};

/// One worker's counters for one service port.
struct alignas(64) port_counters {
#define NPP_DECLARE_COUNTER(name, help) std::atomic<std::uint64_t> name{0};
  NPP_PORT_COUNTERS(NPP_DECLARE_COUNTER)
#undef NPP_DECLARE_COUNTER
  std::atomic<std::int64_t> connections_active{0};  ///< gauge
  std::atomic<std::int64_t> udp_sessions_active{0};  ///< gauge
  /// Successful upstream connects: from the attempt's start to the connection being established.
  duration_histogram<connect_duration_bounds.size()> connect_duration;
};

/// Counters of one service port, one block per worker. Kept across snapshots for as long as
/// the service port exists, so counts survive endpoint changes.
class port_stats {
 public:
  explicit port_stats(unsigned workers) : workers_(workers), blocks_(new port_counters[workers]) {}
  port_counters& worker(unsigned i) { return blocks_[i]; }
  const port_counters& worker(unsigned i) const { return blocks_[i]; }
  unsigned workers() const { return workers_; }

 private:
  unsigned workers_;                         ///< number of blocks
  std::unique_ptr<port_counters[]> blocks_;  ///< one per worker
};

}  // namespace npp::proxy
