#pragma once
// One proxied TCP connection: the client socket, the upstream socket, both directions, the
// deadline and the counters. Callback style with enable_shared_from_this (every handler holds
// `self`), as Asio's and Beast's servers do; the whole data plane uses this one style.
//
//            direction in (client -> upstream)
//   client ====> client_ --read--> buffer --write--> upstream_ ====> endpoint
//   client <==== client_ <--write-- buffer <--read--- upstream_ <==== endpoint
//            direction out (upstream -> client)
//
// Each direction waits with a small read (drain_read into the half's own 512-byte `small`
// buffer): it is tried at once and otherwise parked until the next edge, with no epoll_ctl per
// wait, and a request or a reply arrives with the wait itself. A longer message arrives in the
// same receive: it goes on into a pool buffer borrowed for that call only (so a waiting direction
// holds none). A short read took everything the socket had: write it and wait again. A full one:
// keep the pool buffer, read on until the source is drained, write, give it back, wait again.
// One read in flight per direction and a fixed buffer: a slow sink stalls its source (flow
// control), and memory is bounded by 2 x buffer_size while data moves, 2 x 512 bytes while idle.
// Bulk (a read that fills a whole pool buffer) switches that direction to splice (plain TCP,
// --splice, the default; like HAProxy's splice-auto): the "buffer" becomes a borrowed pipe, bytes
// move socket -> pipe -> socket inside the kernel, never copied to user space; the pipe's
// capacity bounds what is in flight, and it goes back to the worker's pool when the source would
// block. Small exchanges stay on recv/send, which cost less than splice's pipe round trip.
//
// Who shuts down what:
//   EOF from a source  -> shutdown(SHUT_WR) on that direction's sink once its bytes are written;
//                         the other direction keeps relaying (half-close is a feature).
//   both EOFs          -> close both, reason eof.
//   reset/error on one -> the other socket is closed with SO_LINGER 0, so its peer sees a reset.
//   timer              -> connect timeout per attempt; then idle (both open) or half-closed
//                         (one direction ended) since the last byte moved.
// PROXY protocol (proxyProtocol v1/v2): once the upstream is connected, the header is written
// to it with one async_write before the relay starts, so it precedes every client byte; the
// client is not read meanwhile. After that the relay (splice or copy) runs unchanged.
// TLS (tls / upstreamTLS): the client side, the upstream side or both are a tls_stream (OpenSSL
// on the socket's descriptor). A TLS client handshakes first (bounded by --tls-handshake-timeout
// and a slot of --tls-max-handshakes), and only then is the endpoint dialled: a client that fails the
// handshake (no valid certificate, wrong version) never causes a connection to a pod. With
// upstreamTLS the proxy handshakes with the endpoint after connecting (and after the PROXY
// header), inside the connect timeout; a failure there counts as a failed attempt and the next
// endpoint is tried. TLS relays through the buffer (no splice) with the same loop as plain copy;
// what differs is behind three helpers:
//   read_now()       a TLS source yields what OpenSSL already decrypted (SSL_pending); no I/O.
//   wait_readable()  a TLS source is waited on with a 1-byte async read (the wait itself holds
//                    no relay buffer; an idle TLS connection holds none, as a plain one).
//   write to a sink  a TLS sink is written with async_write (OpenSSL may need the socket).
// Close semantics: close_notify from a TLS source is an EOF (FIN to the other side); a client's
// TCP close without close_notify (truncation) or a TLS error is a failure (the endpoint is
// reset); an endpoint's TCP close without close_notify counts as EOF (many HTTPS servers end so).
// An EOF towards a TLS sink sends close_notify, then FIN; the other direction keeps relaying.
// The one open decision (STYLE.md): a direction that fails closes BOTH sockets via finish(); the
// sibling's pending operation then completes with operation_aborted and does nothing.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list_hook.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "proxy/asio_tuning.hpp"
#include "proxy/pipe_pool.hpp"
#include "proxy/port_runtime.hpp"
#include "proxy/tls_stream.hpp"

namespace npp::proxy {

class worker;

/// Why a connection ended (logged as reason=...).
enum class close_reason : std::uint8_t {
  eof,                  ///< both directions ended with FIN
  client_reset,         ///< the client reset or failed
  upstream_reset,       ///< the endpoint reset or failed
  idle_timeout,         ///< nothing moved for --idle-timeout
  half_closed_timeout,  ///< one direction ended and nothing moved for --half-closed-timeout
  connect_failed,       ///< every connect attempt failed
  no_endpoints,         ///< the port had no usable endpoint
  limit,                ///< --max-connections reached
  allowlist,            ///< the source is not in an allowlist (never became a session)
  service_limit,        ///< the Service's maxConnections reached (never became a session)
  source_limit,         ///< the Service's maxConnectionsPerSource reached (never became a session)
  tls_handshake_failed, ///< the client's TLS handshake failed (never reached an endpoint)
  tls_handshake_timeout,  ///< the client did not finish its TLS handshake within --tls-handshake-timeout
  tls_handshake_limit,  ///< --tls-max-handshakes in progress (never became a session)
  shutdown,             ///< still open at the end of the shutdown grace period
  error,                ///< a local error (e.g. out of memory)
};
const char* to_string(close_reason r);

using session_hook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

class tcp_session : public std::enable_shared_from_this<tcp_session>, public session_hook {
 public:
  using tcp = boost::asio::ip::tcp;
  /// `client_addr`: the client's address (getpeername at accept); `slot`: its share of the
  /// Service's connection counts, given back when the sockets close.
  tcp_session(worker& w, tcp::socket client, const tcp::endpoint& client_addr,
              std::shared_ptr<const port_runtime> port, connection_limits::slot slot, std::uint64_t id);
  ~tcp_session();
  tcp_session(const tcp_session&) = delete;
  tcp_session& operator=(const tcp_session&) = delete;

  /// Starts connecting (or refuses at once when the port has no endpoint).
  void start();
  /// Closes both sockets now (shutdown deadline).
  void abort(close_reason why);

 private:
  enum direction : int { in = 0, out = 1 };  ///< in: client -> upstream; out: upstream -> client
  enum side : int { client_side = 0, upstream_side = 1 };
  enum class state : std::uint8_t { handshaking, connecting, relaying, closed };

  /// Per-direction relay state.
  static constexpr std::size_t small_read_size = 512;
  struct half {
    char* buf = nullptr;      ///< borrowed buffer while bytes are in flight, else null
    std::size_t filled = 0;   ///< bytes already in buf (from a full small read) ahead of the next read
    pipe_pair pipe;           ///< borrowed pipe while spliced bytes are in flight (splice mode)
    std::size_t in_pipe = 0;  ///< bytes spliced into the pipe and not yet out of it
    std::uint64_t bytes = 0;  ///< bytes relayed in this direction
    bool done = false;        ///< source hit EOF and the sink was shut down for writing
    bool spliced = false;     ///< bulk seen: this direction relays with splice (plain TCP)
    bool drained = false;     ///< the last read emptied the source: wait after this write
    char small[small_read_size];  ///< the waiting read's buffer (plain TCP source)
    drain_read reader;        ///< the waiting read (plain TCP source)
    std::uint8_t small_reads = 0;  ///< small reads with data, counted up to 2 (TCP_INQ on the endpoint)
    bool peeked = false;      ///< TLS source: `peek` holds the first byte of the next read
    char peek = 0;            ///< the byte wait_readable() read from a TLS source
  };

  tcp::socket& source(int d) { return d == in ? client_ : upstream_; }
  tcp::socket& sink(int d) { return d == in ? upstream_ : client_; }

  /// TLS stream of the side d reads from / writes to (null: plain TCP).
  tls_stream* tls_source(int d) { return tls_[d == in ? client_side : upstream_side].get(); }
  tls_stream* tls_sink(int d) { return tls_[d == in ? upstream_side : client_side].get(); }

  /// Completion of a tls_stream operation; the tag (tls_read, tls_write, ... in the .cpp) says which.
  static void tls_done(void* self, int tag, const boost::system::error_code& ec, std::size_t n);
  void start_client_handshake();
  void on_client_handshake(const boost::system::error_code& ec);
  void release_handshake_slot();
  void try_connect();
  void on_connect(const boost::system::error_code& ec);
  /// The current attempt failed (`why` for the debug log): count it, try the next endpoint.
  void attempt_failed(const std::string& why);
  void write_proxy_header();
  /// TCP connected and the PROXY header written: handshake with the endpoint or start relaying.
  void upstream_ready();
  void start_upstream_handshake();
  void on_upstream_handshake(const boost::system::error_code& ec);
  void connected();
  void start_relay();
  /// Tells Asio the sockets are non-blocking (TLS: close_notify's synchronous write_some).
  void use_asio_io();
  std::size_t read_now(int d, char* buf, std::size_t size, boost::system::error_code& ec);
  void wait_readable(int d);
  /// The 1-byte read wait_readable() started on a TLS source completed.
  void on_tls_read(int d, const boost::system::error_code& ec, std::size_t n);
  /// A TLS source's read failed: close_notify (eof) ends the direction, anything else resets.
  void tls_read_failed(int d, const boost::system::error_code& ec);
  void do_wait(int d);
  /// The waiting small read of a plain source completed.
  void on_small_read(int d, const boost::system::error_code& ec, std::size_t n);
  static void small_read_done(void* self, int d, const boost::system::error_code& ec, std::size_t n);
  void count(int d, std::size_t n);
  /// The source was drained and its bytes are out: give the buffer back and wait again.
  void wait_again(int d);
  enum class write_status { done, pending, failed };
  /// Writes n bytes to d's sink: at once where the socket takes them, else asynchronously
  /// (on_write continues the direction).
  write_status write_out(int d, const char* data, std::size_t n);
  /// Writes buf[0, n) that a read just filled, then goes on as the read left the direction:
  /// drained (wait again), spliced (on through a pipe), or neither: returns true, read again.
  bool forward_buffer(int d, std::size_t n);
  void pump(int d);
  void pump_copy(int d);
  void pump_splice(int d);
  void on_write(int d, const boost::system::error_code& ec);
  void end_direction(int d);
  void send_close_notify(tls_stream& t, tcp::socket& sock);
  /// Direction d's source failed (reset, error): close both, resetting d's sink.
  void source_failed(int d);
  /// Direction d's sink failed: close both, resetting d's source.
  void sink_failed(int d);
  void release_buffer(int d);
  void finish(close_reason why, bool reset_client, bool reset_upstream);
  void arm_timer(std::chrono::steady_clock::duration after);
  void on_timer(const boost::system::error_code& ec);
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  void release_slot();

  worker& worker_;                             ///< owning worker (outlives the session)
  tcp::socket client_;                         ///< accepted client connection
  tcp::socket upstream_;                       ///< connection to the chosen endpoint
  tcp::endpoint client_addr_;                  ///< client address (for logs, affinity, allowlists)
  std::shared_ptr<const port_runtime> port_;   ///< the config this connection was accepted under
  connection_limits::slot service_slot_;       ///< counted in the Service's limits until the sockets close
  std::string proxy_header_;                   ///< PROXY protocol header while it is being written
  boost::asio::steady_timer timer_;            ///< connect / idle / half-closed deadline
  half halves_[2];                             ///< relay state per direction
  std::uint64_t id_;                           ///< connection id for logs
  std::chrono::steady_clock::time_point started_;        ///< accept time
  std::chrono::steady_clock::time_point last_activity_;  ///< last byte moved either way
  std::chrono::steady_clock::time_point attempt_started_;  ///< start of the current connect attempt
  std::chrono::steady_clock::duration connect_time_{-1};  ///< how long the successful connect took (<0: none)
  std::size_t first_endpoint_ = 0;             ///< round-robin pick; attempt k uses first+k
  std::size_t endpoint_index_ = 0;             ///< endpoint of the current/last attempt
  /// TLS per side (client_side, upstream_side); declared after the sockets they wrap, so they
  /// are destroyed first.
  std::unique_ptr<tls_stream> tls_[2];
  unsigned attempts_ = 0;                      ///< connect attempts made
  state state_ = state::connecting;
  bool connect_timed_out_ = false;             ///< the timer ended the current connect attempt
  bool upstream_known_empty_ = false;          ///< the endpoint has nothing to read yet (this handler only)
  bool splice_ = false;                        ///< bulk may relay with splice(2) (plain TCP, --splice)
  bool holds_handshake_slot_ = false;          ///< counted in shared_state::tls_handshakes
  bool holds_slot_ = true;                     ///< counted in connections_active and the global limit
};

}  // namespace npp::proxy
