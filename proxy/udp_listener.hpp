#pragma once
// One worker's SO_REUSEPORT UDP socket for one (address, nodePort), and the sessions of the
// clients the kernel hashes to it.
//
//   client --datagrams--> socket_ (nodePort) --sendmmsg--> session.upstream (connected) --> endpoint
//   client <--sendmmsg--- socket_ (nodePort) <--recvmmsg-- session.upstream (connected) <-- endpoint
//
// Both directions move datagrams in batches (udp_batch): one recvmmsg takes up to 64 datagrams,
// and each run of consecutive datagrams of one session leaves in one sendmmsg. Everything else
// stays per datagram: admission, counters, the ECONNREFUSED reset and re-pick, drops by reason.
//
// A session per client address: the first datagram picks an endpoint (round-robin) and opens a
// connected upstream socket, so the kernel accepts replies only from that endpoint (anything else
// is dropped by the kernel) and reports ICMP errors on it. Replies go back from the nodePort, from
// the address the client sent to (IP_PKTINFO on wildcard sockets). Sessions end after
// udp_idle_timeout without traffic either way, on an ICMP error, or when their endpoint leaves
// (lazily: the next datagram re-pins the client to a live endpoint).
// A client whose source is not allowed (--allow-source-ranges, allowSourceRanges) gets no
// session: its datagrams are dropped and counted (udp_dropped_allowlist) before anything is
// created. UDP gets no PROXY protocol (refused by validation; see check_access in validate.cpp).
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "proxy/asio_tuning.hpp"
#include "proxy/listener.hpp"

namespace npp::proxy {

class worker;
class udp_batch;

class udp_listener : public listener, public std::enable_shared_from_this<udp_listener> {
 public:
  /// Adopts `fd` (a bound, non-blocking UDP socket).
  udp_listener(worker& w, listener_key key, int fd, std::shared_ptr<const port_runtime> port);
  ~udp_listener() override;
  void start() override;
  /// Stops receiving and ends every session of this socket.
  void close() override;
  void update(std::shared_ptr<const port_runtime> port) override { port_ = std::move(port); }

 private:
  /// A client address as a hashable key.
  struct client_key {
    std::uint16_t family = 0;
    std::uint16_t port = 0;
    std::uint8_t addr[16] = {};
    friend bool operator==(const client_key& a, const client_key& b) {
      return a.family == b.family && a.port == b.port && std::memcmp(a.addr, b.addr, 16) == 0;
    }
  };
  struct client_key_hash {
    std::size_t operator()(const client_key& k) const;
  };
  /// The key of a datagram's source address (as recvmsg gives it).
  static client_key key_of(const sockaddr_storage& from);

  struct session : boost::intrusive::list_base_hook<>, std::enable_shared_from_this<session> {
    session(boost::asio::io_context& ctx, udp_listener& o) : upstream(ctx), owner(&o) {}
    boost::asio::ip::udp::socket upstream;      ///< connected to the endpoint
    readable_wait upstream_ready;               ///< waits for replies (holds the session)
    udp_listener* owner;                        ///< alive while !closed (~udp_listener marks it)
    client_key key;                             ///< map key
    sockaddr_storage client{};                  ///< where replies go
    socklen_t client_len = 0;
    in6_pktinfo local6{};                       ///< destination the client used (IPv6 / mapped)
    in_pktinfo local4{};                        ///< destination the client used (IPv4 socket)
    int local_kind = 0;                         ///< 0 none, 4 local4, 6 local6
    std::shared_ptr<const port_runtime> port;   ///< config the endpoint was picked from
    std::size_t endpoint = 0;                   ///< index into port->endpoints
    std::chrono::steady_clock::time_point last_activity;
    std::chrono::steady_clock::time_point started;  ///< first datagram (access log duration)
    std::uint64_t bytes_in = 0;                 ///< client -> endpoint, this session (access log)
    std::uint64_t bytes_out = 0;                ///< endpoint -> client
    bool gso_upstream = true;                   ///< GSO works towards the endpoint (udp_batch::send)
    bool gso_client = true;                     ///< GSO works towards the client
    bool closed = false;
  };
  using session_ptr = std::shared_ptr<session>;

  /// Waits until the nodePort socket is readable. known_empty: the last recvmmsg found the
  /// queue empty (see readable_wait).
  void do_wait(bool known_empty);
  void on_readable();
  /// Forwards received datagrams [0, n) of `b`: runs of consecutive datagrams from one client.
  void forward_batch(udp_batch& b, int n);
  /// Forwards datagrams [first, last) of `b`, all from client `key`, to its session's endpoint.
  void forward_run(udp_batch& b, const client_key& key, int first, int last);
  session_ptr find_or_create(const client_key& key, const sockaddr_storage& from, socklen_t from_len, const msghdr& msg);
  session_ptr create_session(const client_key& key, const sockaddr_storage& from, socklen_t from_len, const msghdr& msg);
  bool make_room();
  /// True if `source` passes --allow-source-ranges and the port's allowSourceRanges.
  bool allowed(const config::ip_address& source) const;
  void wait_upstream(const session_ptr& s, bool known_empty);
  void on_upstream_readable(const session_ptr& s);
  /// Sends datagrams [first, last) of `b` (received from s's endpoint) to s's client.
  void send_to_client(session& s, udp_batch& b, int first, int last);
  /// Closes the session; `reason` goes to the access log (idle_timeout, evicted, reset, moved,
  /// allowlist, shutdown).
  void end_session(session& s, std::string_view reason);
  void touch(session& s);
  void arm_sweep();
  void sweep();
  port_counters& counters(const port_runtime& p);

  worker& worker_;                             ///< owning worker
  listener_key key_;                           ///< what this socket is bound to
  boost::asio::ip::udp::socket socket_;        ///< the nodePort socket
  readable_wait ready_;                        ///< waits for datagrams on socket_
  std::shared_ptr<const port_runtime> port_;   ///< config for new sessions
  std::unordered_map<client_key, session_ptr, client_key_hash> sessions_;  ///< by client address
  boost::intrusive::list<session> lru_;        ///< most recently active first
  boost::asio::steady_timer sweep_;            ///< idle-session sweep
  bool sweeping_ = false;                      ///< sweep_ armed
  bool closed_ = false;
};

}  // namespace npp::proxy
