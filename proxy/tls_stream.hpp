#pragma once
// One TLS connection driven by OpenSSL directly on a non-blocking TCP socket's descriptor (a
// socket BIO): OpenSSL reads and writes the socket itself, and the stream only waits for the
// readiness OpenSSL asks for (SSL_ERROR_WANT_READ / WANT_WRITE).
//
// Why not Asio's ssl::stream: it puts a memory BIO pair between OpenSSL and the socket and
// moves every byte through it, with two 17 KiB buffers of its own per stream (zero-filled at
// construction) and two more inside the BIO pair: about 68 KiB per TLS connection, held as long
// as the connection is open, idle or not, plus one more copy of every byte each way. Here an
// idle TLS connection holds only OpenSSL's SSL object (its record buffers are released while
// idle, SSL_MODE_RELEASE_BUFFERS), and bytes go between OpenSSL's record buffer and the socket.
//
// Operations: a handshake or a read (at most one of them at a time) and a write may be
// outstanding together, as the relay reads one direction while it writes the other. Each is
// tried at once; if OpenSSL needs the socket it waits for the readiness OpenSSL named and tries
// again. The completion is a plain function cb(target, tag, ec, n), called on the io_context,
// never from inside the call that started the operation; `keep` (the owner) is held until then.
//
// Errors, as the relay distinguishes them (and as Asio's ssl::stream reported them):
//   close_notify received          -> asio::error::eof
//   TCP EOF without close_notify   -> asio::ssl::error::stream_truncated
//   socket errors (reset, EPIPE)   -> the system error (connection_reset, broken_pipe, ...)
//   TLS errors                     -> ERR_get_error()'s code in Asio's SSL category
// The caller clears OpenSSL's per-thread error queue after a failure; every operation also
// clears it before it calls OpenSSL, so nothing left there by one connection is read as
// another's.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "proxy/asio_tuning.hpp"

struct ssl_st;
struct ssl_ctx_st;

namespace npp::proxy {

class tls_stream {
 public:
  using callback = void (*)(void* target, int tag, const boost::system::error_code& ec, std::size_t n);
  enum class role : std::uint8_t { client, server };

  /// A TLS connection of `ctx` in `r`'s role over `sock` (open, O_NONBLOCK, owned by `io`,
  /// outliving this object). ok() is false if OpenSSL could not allocate it.
  tls_stream(boost::asio::io_context& io, boost::asio::ip::tcp::socket& sock, ssl_ctx_st* ctx, role r);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  bool ok() const { return ssl_ != nullptr; }
  ssl_st* native_handle() const { return ssl_; }

  /// Whether the peer has already ended its side: for a handshake's end, so that a client that
  /// leaves right after it (a TLS probe or health check, `openssl s_time`) costs no connection to
  /// a pod. Peeks one byte through OpenSSL (consumes nothing; one recv(2) unless OpenSSL holds
  /// unread bytes). Application data waiting, or nothing yet, means `open`.
  enum class peer_state : std::uint8_t { open, closed, truncated };
  peer_state peer_ended();

  /// Runs the handshake to its end: cb(target, tag, ec, 0).
  void async_handshake(std::shared_ptr<void> keep, callback cb, void* target, int tag);
  /// Reads 1 to `size` bytes of application data into `buf`: cb(target, tag, ec, n).
  void async_read_some(char* buf, std::size_t size, std::shared_ptr<void> keep, callback cb, void* target, int tag);
  /// Writes all `n` (> 0) bytes at `data`, which must stay valid until cb(target, tag, ec, n).
  void async_write(const char* data, std::size_t n, std::shared_ptr<void> keep, callback cb, void* target, int tag);

 private:
  enum class kind : std::uint8_t { handshake, read, write };
  /// One outstanding operation and what it waits on.
  struct op {
    tls_stream* stream = nullptr;
    kind what = kind::read;
    char* buf = nullptr;
    std::size_t size = 0;
    std::shared_ptr<void> keep;
    callback cb = nullptr;
    void* target = nullptr;
    int tag = 0;
    readable_wait readable;  ///< the wait for WANT_READ (OpenSSL's last read said EAGAIN)
  };

  void start(op& o, kind what, char* buf, std::size_t size, std::shared_ptr<void> keep, callback cb, void* target,
             int tag);
  /// Calls OpenSSL for `o`; completes it, or waits for the readiness OpenSSL asked for.
  /// initiating: called from start(), so a completion is posted rather than called.
  void attempt(op& o, bool initiating);
  void complete(op& o, const boost::system::error_code& ec, std::size_t n, bool initiating);
  static void on_readable(void* target, int tag, const boost::system::error_code& ec, std::size_t n);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::socket& sock_;
  ssl_st* ssl_ = nullptr;
  op reader_;  ///< the handshake or a read
  op writer_;  ///< a write
};

}  // namespace npp::proxy
