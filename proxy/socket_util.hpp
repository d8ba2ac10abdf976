#pragma once
// Thin, error-reporting wrappers over the socket syscalls the control plane needs to create
// nodePort sockets before handing them to workers. No Asio here: these run on the control thread.
#include <string>
#include <vector>

#include "config/ip.hpp"
#include "config/snapshot.hpp"

namespace npp::proxy {

/// Where a nodePort is bound: one local address (or the wildcard), a port and a protocol.
struct bind_address {
  config::ip_address ip;  ///< local address; unspecified = wildcard
  bool dual_stack = false;  ///< [::] with IPV6_V6ONLY off (accepts IPv4 as ::ffff:a.b.c.d)
  friend bool operator==(const bind_address&, const bind_address&) = default;
  friend auto operator<=>(const bind_address&, const bind_address&) = default;
  std::string str() const;
};

/// SO_RCVBUF asked for on UDP nodePort sockets and on UDP sessions' upstream sockets: a burst
/// arriving while the worker is busy waits in the kernel instead of being dropped (the default,
/// ~208 KiB, holds three 64 KiB datagrams). The kernel caps it at net.core.rmem_max; it is a
/// limit, not memory allocated up front.
inline constexpr int udp_receive_buffer = 4 << 20;

/// An owned file descriptor (closed on destruction).
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd();
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;  ///< -1 when empty
};

/// Creates a socket bound to (addr, port) with SO_REUSEADDR and SO_REUSEPORT (so every worker can
/// bind its own socket to the same port). listen_backlog > 0 also puts it in LISTEN state; 0 leaves
/// it bound but not listening, which holds the port and makes the kernel refuse connections.
/// Returns an empty fd and sets *error ("bind 127.0.0.1:30080/TCP: Address already in use").
unique_fd open_bound_socket(const bind_address& addr, int port, config::protocol proto,
                            int listen_backlog, std::string* error);

/// True if no other socket holds (addr, port, proto). Our own sockets use SO_REUSEPORT, which
/// lets any same-user socket that also sets it join the port (and share its traffic); binding a
/// probe *without* SO_REUSEPORT fails if anyone holds the port, so a second proxy instance, or
/// nginx with reuseport, is detected instead of silently sharing. Sets *error like
/// open_bound_socket. Call it before taking a port that we do not hold yet.
bool port_is_free(const bind_address& addr, int port, config::protocol proto, std::string* error);

/// The addresses to bind nodePorts on: the wildcard when `blocks` is empty, else every local
/// interface address inside one of the blocks (IPv6 link-local addresses are skipped: they need
/// a scope). Sets *error if no local address matches.
std::vector<bind_address> select_bind_addresses(const std::vector<config::cidr>& blocks, std::string* error);

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
unsigned long raise_nofile_limit();

}  // namespace npp::proxy
