#include "proxy/socket_util.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace npp::proxy {

std::string bind_address::str() const {
  if (ip.v6) return "[" + ip.str() + "]";
  return ip.str();
}

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0) ::close(fd_);
}

static unique_fd make_socket(const bind_address& addr, int port, config::protocol proto, int listen_backlog,
                             bool reuse_port, std::string* error);

unique_fd open_bound_socket(const bind_address& addr, int port, config::protocol proto, int listen_backlog,
                            std::string* error) {
  return make_socket(addr, port, proto, listen_backlog, true, error);
}

bool port_is_free(const bind_address& addr, int port, config::protocol proto, std::string* error) {
  return static_cast<bool>(make_socket(addr, port, proto, 0, false, error));
}

static unique_fd make_socket(const bind_address& addr, int port, config::protocol proto, int listen_backlog,
                             bool reuse_port, std::string* error) {
  auto fail = [&](const char* step) {
    if (error) {
      *error = std::string(step) + " " + addr.str() + ":" + std::to_string(port) + "/" +
               std::string(config::to_string(proto)) + ": " + std::strerror(errno);
    }
    return unique_fd{};
  };
  const int family = addr.ip.v6 ? AF_INET6 : AF_INET;
  const int type = (proto == config::protocol::tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  unique_fd fd(::socket(family, type, 0));
  if (!fd) return fail("socket");
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return fail("setsockopt SO_REUSEADDR");
  if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return fail("setsockopt SO_REUSEPORT");
  if (family == AF_INET6) {
    // Explicit either way: the system default (net.ipv6.bindv6only) must not decide whether a
    // listener also takes IPv4 clients.
    int v6only = addr.dual_stack ? 0 : 1;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
      return fail("setsockopt IPV6_V6ONLY");
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&sin->sin_addr, addr.ip.bytes.data(), 4);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&sin6->sin6_addr, addr.ip.bytes.data(), 16);
    len = sizeof *sin6;
  }
  if (proto == config::protocol::udp) {
    // A bigger receive queue absorbs bursts while a worker is busy (the kernel caps it at
    // net.core.rmem_max; failure is harmless).
    int rcvbuf = udp_receive_buffer;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // On a wildcard socket, learn each datagram's destination address, so replies leave from the
    // address the client sent to (a multi-homed node must not answer from another IP).
    if (addr.ip.is_unspecified()) {
      if (family == AF_INET6) {
        if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) != 0)
          return fail("setsockopt IPV6_RECVPKTINFO");
        ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);  // IPv4 clients of a dual-stack socket
      } else if (::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) {
        return fail("setsockopt IP_PKTINFO");
      }
    }
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind");
  if (proto == config::protocol::tcp && listen_backlog > 0) {
    // Accepted sockets inherit TCP_NODELAY from the listener: one setsockopt per port instead of
    // one per connection. The relay forwards what it reads at once; Nagle would only add delay.
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // TCP_INQ, inherited the same way: each read reports what is left, so the relay knows a
    // short read emptied the socket without a recv() that returns EAGAIN (drain_read).
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_INQ, &one, sizeof one);
    if (::listen(fd.get(), listen_backlog) != 0) return fail("listen");
  }
  return fd;
}

static bool host_has_ipv6() {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

std::vector<bind_address> select_bind_addresses(const std::vector<config::cidr>& blocks, std::string* error) {
  std::vector<bind_address> out;
  if (blocks.empty()) {
    bind_address any;
    if (host_has_ipv6()) {
      any.ip.v6 = true;
      any.dual_stack = true;
    }
    out.push_back(any);
    return out;
  }
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    if (error) *error = std::string("getifaddrs: ") + std::strerror(errno);
    return out;
  }
  for (ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP)) continue;
    bind_address b;
    if (ifa->ifa_addr->sa_family == AF_INET) {
      std::memcpy(b.ip.bytes.data(), &reinterpret_cast<sockaddr_in*>(ifa->ifa_addr)->sin_addr, 4);
    } else if (ifa->ifa_addr->sa_family == AF_INET6) {
      b.ip.v6 = true;
      std::memcpy(b.ip.bytes.data(), &reinterpret_cast<sockaddr_in6*>(ifa->ifa_addr)->sin6_addr, 16);
      if (b.ip.bytes[0] == 0xfe && (b.ip.bytes[1] & 0xc0) == 0x80) continue;  // link-local needs a scope id
    } else {
      continue;
    }
    bool wanted = std::any_of(blocks.begin(), blocks.end(), [&](const config::cidr& c) { return c.contains(b.ip); });
    if (wanted && std::find(out.begin(), out.end(), b) == out.end()) out.push_back(b);
  }
  ::freeifaddrs(list);
  std::sort(out.begin(), out.end());
  if (out.empty() && error) {
    std::string list_text;
    for (auto& c : blocks) list_text += (list_text.empty() ? "" : ",") + c.str();
    *error = "no local address is inside --nodeport-addresses " + list_text;
  }
  return out;
}

unsigned long raise_nofile_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? 1048576ul : static_cast<unsigned long>(rl.rlim_cur);
}

}  // namespace npp::proxy
