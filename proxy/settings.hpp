#pragma once
// Process settings of the data plane (from CLI flags; main.cpp is the only reader of flags).
// Defaults live here, in one visible block, next to what they mean.
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "config/ip.hpp"
#include "proxy/allowlist.hpp"

namespace npp::proxy {

using std::chrono::milliseconds;

struct settings {
  /// Worker threads, each with its own io_context and SO_REUSEPORT listeners (0 = one per core).
  unsigned workers = 0;
  /// --nodeport-addresses: bind only local addresses inside these blocks. Empty = every address
  /// (one dual-stack [::] socket per port, or 0.0.0.0 where the host has no IPv6).
  std::vector<config::cidr> nodeport_addresses;
  /// Time allowed for one upstream connect attempt before the next endpoint is tried.
  milliseconds connect_timeout{5000};
  /// Connect attempts per client connection, each to a distinct endpoint.
  unsigned connect_attempts = 3;
  /// A connection with no bytes moving either way for this long is closed.
  milliseconds idle_timeout{std::chrono::hours(1)};
  /// Once one direction has ended (FIN), the connection is closed after this long without traffic
  /// (HAProxy's "timeout client-fin"); shorter than idle so half-open peers do not pile up.
  milliseconds half_closed_timeout{std::chrono::seconds(60)};
  /// --allow-source-ranges: source blocks allowed on every nodePort, in addition to each
  /// Service's allowSourceRanges (a client must pass both lists). Empty: every source.
  allowlist allowed_sources;
  /// Process-wide cap on proxied client connections (0 = derive from RLIMIT_NOFILE: each proxied
  /// connection holds two descriptors, and some are kept back for listeners and logs).
  std::size_t max_connections = 0;
  /// Cap on UDP sessions (each holds one connected upstream socket), split evenly over workers
  /// (0 = derive from RLIMIT_NOFILE). When a worker's share is full, a new client takes the slot of
  /// the least recently active session if that one has been idle for udp_evict_idle; otherwise the
  /// new client's datagram is dropped (and counted), so a flood cannot push out live sessions.
  std::size_t udp_max_sessions = 0;
  /// A UDP session with no datagram either way for this long ends.
  milliseconds udp_idle_timeout{std::chrono::seconds(60)};
  /// Idle time after which a session may be evicted for a new client when the table is full.
  milliseconds udp_evict_idle{std::chrono::seconds(1)};
  /// Bytes buffered per direction while a burst is in flight; an idle connection holds none (only
  /// its two 512-byte wait buffers).
  std::size_t buffer_size = 32 * 1024;
  /// Relay bulk plain TCP (a direction whose read fills a whole buffer) with splice(2) through a
  /// pipe, no copy to user space. Off, and for small exchanges: recv/send through user space.
  bool splice = true;
  /// Capacity asked for each splice pipe (F_SETPIPE_SZ). The kernel's default, 64 KiB, makes bulk
  /// relaying cost a splice pair per 64 KiB; 512 KiB moved about 25 % more through the proxy with
  /// about 35 % less CPU, half the CPU per byte (bench/RESULTS.md, run 6). Pages are only held
  /// while bytes wait for a slow receiver, and a pipe is held only while bytes are in flight.
  /// 0: the kernel's default.
  std::size_t splice_pipe_size = 512 * 1024;
  /// A TLS client must complete its handshake within this time, or it is closed.
  milliseconds tls_handshake_timeout{std::chrono::seconds(10)};
  /// Cap on TLS handshakes in progress over all ports and workers; over it new TLS clients are
  /// reset (counted as tls handshake errors, reason limit). Bounds what slow or flooding clients take.
  std::size_t tls_max_handshakes = 1024;
  /// listen(2) backlog of every nodePort listener.
  int backlog = 4096;
  /// --healthz-bind-address: /livez, /readyz, /healthz ("" = off).
  std::string healthz_bind_address;
  /// --metrics-bind-address: /metrics, /status, /status.json ("" = off). Equal to the healthz
  /// address: one listener serves both.
  std::string metrics_bind_address;
  /// After SIGTERM, open connections may finish for this long before they are closed.
  milliseconds shutdown_grace_period{std::chrono::seconds(30)};
  /// --access-log: "" off, "-"/"stdout", "stderr", or a file (appended; reopened on SIGHUP).
  std::string access_log;
  /// --access-log-format: "text" (logfmt) or "json".
  std::string access_log_format = "text";
};

}  // namespace npp::proxy
