#include "proxy/udp_batch.hpp"

#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <string>
#include <vector>

using npp::proxy::udp_batch;

namespace {

/// A UDP socket on 127.0.0.1, port 0, with a queue big enough for every datagram of a test.
struct udp_fd {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  udp_fd() {
    int buf = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  }
  ~udp_fd() { ::close(fd); }
  void connect_to(const udp_fd& o) { REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&o.addr), sizeof o.addr) == 0); }
};

std::string datagram(std::size_t seq, std::size_t size) {
  std::string d(size, '\0');
  for (std::size_t i = 0; i < size; ++i) d[i] = static_cast<char>('a' + (seq * 7 + i) % 26);
  return d;
}

/// Waits (bounded) until `fd` is readable.
bool readable(int fd, int timeout_ms = 2000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

struct relay_result {
  int batches = 0;     ///< recvmmsg calls that returned datagrams
  int send_calls = 0;  ///< udp_batch::send calls
};

/// Sends `sizes` from `from` to `via`, receives them there in batches (normally one: loopback
/// delivers before sendto returns, unless softirqs are deferred under load) and forwards each
/// batch with udp_batch::send from `out` (connected to `to`, like a session's upstream socket);
/// checks `to` received exactly what was sent.
relay_result relay(const std::vector<std::size_t>& sizes, bool gso) {
  udp_fd from, via, out, to;
  out.connect_to(to);
  std::vector<std::string> sent;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(datagram(i, sizes[i]));
    REQUIRE(::sendto(from.fd, sent.back().data(), sent.back().size(), 0, reinterpret_cast<const sockaddr*>(&via.addr),
                     sizeof via.addr) == static_cast<ssize_t>(sent.back().size()));
  }
  udp_batch b;
  relay_result r;
  std::size_t seen = 0;
  while (seen < sizes.size()) {
    REQUIRE(readable(via.fd));
    const int n = b.receive(via.fd, true);
    REQUIRE(n > 0);
    ++r.batches;
    for (int k = 0; k < n; ++k) {
      CHECK(b.length(k) == sizes[seen + k]);
      CHECK_FALSE(b.truncated(k));
      CHECK(b.source(k).ss_family == AF_INET);
    }
    seen += static_cast<std::size_t>(n);
    int first = 0;
    while (first < n) {
      const int sent_now = b.send(out.fd, first, n, nullptr, 0, nullptr, 0, gso);
      REQUIRE(sent_now > 0);
      first += sent_now;
      ++r.send_calls;
    }
  }
  std::vector<std::string> got;
  std::vector<char> buf(1 << 17);
  while (got.size() < sent.size() && readable(to.fd)) {
    const ssize_t n = ::recv(to.fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n >= 0) got.emplace_back(buf.data(), static_cast<std::size_t>(n));
  }
  CHECK(got == sent);
  return r;
}

}  // namespace

TEST_CASE("udp_batch: equal small datagrams leave in one GSO send and arrive as the same datagrams") {
  const auto r = relay(std::vector<std::size_t>(40, 1200), true);
  CHECK(r.send_calls == r.batches);
}

TEST_CASE("udp_batch: a shorter datagram may end a GSO run, a longer one starts the next") {
  // 1200 x3 + 1000 (one run), 1500 x2 (one run), 1 alone, 1200 + 1200 + 1201 (run of two, then 1201).
  relay({1200, 1200, 1200, 1000, 1500, 1500, 1, 1200, 1200, 1201, 7, 7, 7}, true);
}

TEST_CASE("udp_batch: datagrams past the 2 KiB head, up to 65,507 bytes, cross intact") {
  relay({2047, 2048, 2049, 9000, 65507, 1, 65507, 2048, 2048}, true);
  relay({2047, 2048, 2049, 9000, 65507, 1, 65507, 2048, 2048}, false);
}

TEST_CASE("udp_batch: a GSO run stops at 64 KiB of payload") {
  const auto r = relay(std::vector<std::size_t>(64, 2000), true);  // 32 per send at most (65,507 / 2000)
  if (r.batches == 1) CHECK(r.send_calls == 2);
}

TEST_CASE("udp_batch: without GSO every datagram still arrives, in one sendmmsg") {
  const auto r = relay(std::vector<std::size_t>(64, 1200), false);
  CHECK(r.send_calls == r.batches);
}

TEST_CASE("udp_batch: an empty socket reports EAGAIN") {
  udp_fd s;
  udp_batch b;
  CHECK(b.receive(s.fd, true) == -1);
  CHECK((errno == EAGAIN || errno == EWOULDBLOCK));
}
