#include "proxy/tls_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;

// The socket BIO: OpenSSL's own (BIO_s_socket) but for one thing. When read(2) returns 0 its
// BIO_eof() says so, and OpenSSL 3 then treats the end of the stream without close_notify as a
// fatal error (SSL_R_UNEXPECTED_EOF_WHILE_READING): it tries to send a decode_error alert to the
// peer that just left, and it takes the session out of the server's cache, so a client that
// closes without close_notify (most HTTP clients) could not resume. This BIO never reports EOF
// through BIO_eof(): the read that returned 0 makes SSL_read fail with SSL_ERROR_SYSCALL and an
// empty error queue, which tls_stream reports as stream_truncated, as Asio's ssl::stream did.
// Writes use MSG_NOSIGNAL.
namespace {

int fd_of(BIO* b) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b))); }

// A retry (EAGAIN) means the socket was found empty or full, which is what lets tls_stream wait
// for the next edge without asking again; EINTR proves nothing, so it is tried again here.
int socket_read(BIO* b, char* buf, int len) {
  BIO_clear_retry_flags(b);
  ssize_t r;
  do r = ::recv(fd_of(b), buf, static_cast<std::size_t>(len), 0);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return static_cast<int>(r);
}

int socket_write(BIO* b, const char* buf, int len) {
  BIO_clear_retry_flags(b);
  ssize_t r;
  do r = ::send(fd_of(b), buf, static_cast<std::size_t>(len), MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  return static_cast<int>(r);
}

long socket_ctrl(BIO* b, int cmd, long, void* ptr) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;  // nothing is buffered here
    case BIO_C_GET_FD:
      if (ptr) *static_cast<int*>(ptr) = fd_of(b);
      return fd_of(b);
    default: return 0;  // BIO_CTRL_EOF among them: see above
  }
}

int socket_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "npp socket");
    if (m) {
      BIO_meth_set_read(m, socket_read);
      BIO_meth_set_write(m, socket_write);
      BIO_meth_set_ctrl(m, socket_ctrl);
      BIO_meth_set_create(m, socket_create);
    }
    return m;
  }();
  return method;
}

}  // namespace

tls_stream::tls_stream(asio::io_context& io, asio::ip::tcp::socket& sock, ssl_ctx_st* ctx, role r)
    : io_(io), sock_(sock) {
  reader_.stream = this;
  writer_.stream = this;
  BIO_METHOD* method = socket_method();
  SSL* ssl = method ? SSL_new(ctx) : nullptr;
  BIO* bio = ssl ? BIO_new(method) : nullptr;
  if (!bio) {
    SSL_free(ssl);
    return;
  }
  // The BIO does not own the descriptor: the tcp::socket closes it.
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(sock.native_handle())));
  SSL_set_bio(ssl, bio, bio);
  // Read-ahead: one read(2) takes whatever the socket has (up to a record buffer), not a 5-byte
  // header and then the body, so a record costs one system call. The relay never waits on the
  // socket without asking OpenSSL first, so bytes buffered here are never overlooked.
  SSL_set_read_ahead(ssl, 1);
  // A write that must wait is retried from the same bytes, but not necessarily the same address.
  SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (r == role::server)
    SSL_set_accept_state(ssl);
  else
    SSL_set_connect_state(ssl);
  ssl_ = ssl;
}

tls_stream::~tls_stream() {
  if (ssl_) SSL_free(ssl_);  // also frees the BIO, which leaves the descriptor open
}

/// The error of a failed SSL call whose SSL_get_error() was `why` (not WANT_READ/WANT_WRITE), in
/// the terms the relay uses (see the header). errno is the call's.
static error_code failure(int why) {
  const int saved_errno = errno;
  switch (why) {
    case SSL_ERROR_ZERO_RETURN:
      return asio::error::eof;
    case SSL_ERROR_SYSCALL:
      // No TLS error queued: the socket failed (errno), or ended without close_notify (see
      // the BIO above).
      if (ERR_peek_error() == 0)
        return saved_errno != 0 ? error_code(saved_errno, boost::system::system_category())
                                : error_code(asio::ssl::error::stream_truncated);
      break;
    case SSL_ERROR_SSL:
      break;
    default:
      return asio::ssl::error::unexpected_result;
  }
  const unsigned long e = ERR_get_error();
  return e != 0 ? error_code(static_cast<int>(e), asio::error::get_ssl_category())
                : error_code(asio::ssl::error::unspecified_system_error);
}

tls_stream::peer_state tls_stream::peer_ended() {
  if (!ssl_) return peer_state::open;
  ERR_clear_error();
  errno = 0;
  char byte;
  std::size_t n = 0;
  const int result = SSL_peek_ex(ssl_, &byte, 1, &n);
  const int why = result == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, result);
  // Data, nothing more yet, or an error the relay will meet on its first read: open.
  peer_state state = peer_state::open;
  if (why != SSL_ERROR_NONE && why != SSL_ERROR_WANT_READ && why != SSL_ERROR_WANT_WRITE) {
    const error_code ec = failure(why);
    if (ec == asio::error::eof)
      state = peer_state::closed;  // close_notify
    else if (ec == asio::ssl::error::stream_truncated)
      state = peer_state::truncated;  // the TCP stream ended without close_notify
  }
  ERR_clear_error();
  return state;
}

void tls_stream::async_handshake(std::shared_ptr<void> keep, callback cb, void* target, int tag) {
  start(reader_, kind::handshake, nullptr, 0, std::move(keep), cb, target, tag);
}

void tls_stream::async_read_some(char* buf, std::size_t size, std::shared_ptr<void> keep, callback cb, void* target,
                                 int tag) {
  start(reader_, kind::read, buf, size, std::move(keep), cb, target, tag);
}

void tls_stream::async_write(const char* data, std::size_t n, std::shared_ptr<void> keep, callback cb, void* target,
                             int tag) {
  // OpenSSL only reads the bytes; the op keeps one pointer type for both directions.
  start(writer_, kind::write, const_cast<char*>(data), n, std::move(keep), cb, target, tag);
}

void tls_stream::start(op& o, kind what, char* buf, std::size_t size, std::shared_ptr<void> keep, callback cb,
                       void* target, int tag) {
  o.what = what;
  o.buf = buf;
  o.size = size;
  o.keep = std::move(keep);
  o.cb = cb;
  o.target = target;
  o.tag = tag;
  attempt(o, /*initiating=*/true);
}

void tls_stream::attempt(op& o, bool initiating) {
  if (!ssl_) {
    complete(o, asio::error::no_memory, 0, initiating);
    return;
  }
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  int result;
  switch (o.what) {
    case kind::handshake: result = SSL_do_handshake(ssl_); break;
    case kind::read: result = SSL_read_ex(ssl_, o.buf, o.size, &n); break;
    default: result = SSL_write_ex(ssl_, o.buf, o.size, &n); break;  // all of it, or a retry
  }
  if (result == 1) {
    complete(o, {}, n, initiating);
    return;
  }
  const int why = SSL_get_error(ssl_, result);
  if (why == SSL_ERROR_WANT_READ) {
    // OpenSSL's read(2) just found the socket empty: any byte from now on raises an edge still
    // to come, so the wait costs no system call (readable_wait's known_empty).
    o.readable.start(io_, sock_, o.keep, &on_readable, &o, /*known_empty=*/true);
    return;
  }
  if (why == SSL_ERROR_WANT_WRITE) {
    sock_.async_wait(asio::ip::tcp::socket::wait_write, [&o, keep = o.keep](const error_code& ec) {
      if (ec)
        o.stream->complete(o, ec, 0, false);
      else
        o.stream->attempt(o, false);
    });
    return;
  }
  complete(o, failure(why), 0, initiating);
}

void tls_stream::on_readable(void* target, int, const error_code& ec, std::size_t) {
  auto& o = *static_cast<op*>(target);
  if (ec)
    o.stream->complete(o, ec, 0, false);
  else
    o.stream->attempt(o, false);
}

void tls_stream::complete(op& o, const error_code& ec, std::size_t n, bool initiating) {
  // Everything out of the op first: the callback may start the next operation with it.
  std::shared_ptr<void> keep = std::move(o.keep);
  const callback cb = o.cb;
  void* const target = o.target;
  const int tag = o.tag;
  if (initiating) {
    asio::post(io_, [keep = std::move(keep), cb, target, tag, ec, n] { cb(target, tag, ec, n); });
    return;
  }
  cb(target, tag, ec, n);
}

}  // namespace npp::proxy
