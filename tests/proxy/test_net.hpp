#pragma once
// Blocking loopback helpers for socket tests: every call has a timeout, nothing sleeps to
// synchronise, every port is chosen by the kernel (port 0).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/snapshot.hpp"

namespace npp::test {

/// An owned socket fd.
struct fd_guard {
  int fd = -1;
  explicit fd_guard(int f = -1) : fd(f) {}
  fd_guard(fd_guard&& o) noexcept : fd(o.fd) { o.fd = -1; }
  fd_guard& operator=(fd_guard&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

inline sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
inline int free_port() {
  fd_guard s(::socket(AF_INET, SOCK_STREAM, 0));
  auto a = loopback(0);
  ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

inline void set_timeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/// Connects to 127.0.0.1:port; returns the fd or -errno.
inline int connect_to(int port, int timeout_ms = 2000) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  set_timeouts(fd, timeout_ms);
  auto a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

/// Reads until EOF, error or timeout; returns what arrived. *err gets errno (0 on clean EOF).
inline std::string read_all(int fd, int* err = nullptr) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (err) *err = n == 0 ? 0 : errno;
    return out;
  }
}

inline bool send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// A loopback TCP server running `handler(fd)` for each connection on its own thread.
class backend {
 public:
  explicit backend(std::function<void(int)> handler) : handler_(std::move(handler)) {
    listen_.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto a = loopback(0);
    ::bind(listen_.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_.fd, 512);
    socklen_t len = sizeof a;
    ::getsockname(listen_.fd, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~backend() {
    stop_ = true;
    ::shutdown(listen_.fd, SHUT_RDWR);
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  config::host_port address() const { return *config::host_port::parse("127.0.0.1:" + std::to_string(port_)); }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{listen_.fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(listen_.fd, nullptr, nullptr);
      if (c < 0) continue;
      ++accepted_;
      set_timeouts(c, 5000);
      conns_.emplace_back([this, c] {
        handler_(c);
        ::close(c);
      });
    }
  }
  std::function<void(int)> handler_;
  fd_guard listen_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

/// Socket inodes of TCP listeners on `port` (from /proc/net/tcp and tcp6).
inline std::set<std::string> listening_inodes(int port) {
  std::set<std::string> out;
  char hex[8];
  std::snprintf(hex, sizeof hex, "%04X", port);
  for (const char* f : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(f);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string sl, local, remote, st, q, tr, retr, uid, timeout, inode;
      ls >> sl >> local >> remote >> st >> q >> tr >> retr >> uid >> timeout >> inode;
      if (st == "0A" && local.size() > 4 && local.substr(local.size() - 4) == hex) out.insert(inode);
    }
  }
  return out;
}

/// Polls `pred` every few ms until it holds or `timeout` passes.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

}  // namespace npp::test
