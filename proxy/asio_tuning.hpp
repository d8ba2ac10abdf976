// Two places where the proxy tells Asio's epoll reactor what it cannot know, to save system calls
// on the per-connection path. Included only by .cpp files and tcp_session.hpp (which use Asio).
//
// Both reach into Asio's implementation (protected members, detail::reactor_op), which this
// project pins: Boost 1.81 from Debian 12 with the epoll reactor. Any other combination (another
// Boost, the opt-in io_uring build) compiles the plain Asio calls instead, which behave the same
// and only cost the system calls.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/version.hpp>
#include <cstddef>
#include <memory>
#include <utility>

#include "proxy/buffer_pool.hpp"

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define NPP_ASIO_TUNED 1
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#else
#define NPP_ASIO_TUNED 0
#endif

namespace npp::proxy {

namespace detail {
#if NPP_ASIO_TUNED
/// Asio's per-socket record (descriptor, state bits, reactor registration) of any basic_socket
/// (tcp::socket, udp::socket). basic_socket keeps it in a protected member, reached here through
/// a pointer to member named via a derived class, which C++ allows.
template <class Socket>
auto& socket_impl(Socket& s) {
  struct access : Socket {
    static auto& impl(Socket& sock) { return (sock.*(&access::impl_)).get_implementation(); }
  };
  return access::impl(s);
}

/// What drain_read and readable_wait share: a reactor operation on one socket's registration
/// that reports to a plain function cb(target, tag, ec, n) on the socket's io_context, holding
/// `keep` (the owner) until then. One object is reused: at most one is outstanding. Subclasses
/// supply perform(), which sees skip_ set only during the attempt start_op makes at once.
class callback_op : public boost::asio::detail::reactor_op {
 public:
  using callback = void (*)(void* target, int tag, const boost::system::error_code& ec, std::size_t n);

 protected:
  explicit callback_op(perform_func_type perform) : reactor_op(boost::system::error_code(), perform, &complete) {}

  /// Hands the operation to the reactor. skip: the caller knows the socket is empty (see
  /// drain_read), so the immediate attempt must report "not yet"; every later attempt comes
  /// from an epoll edge.
  template <class Socket>
  void submit(boost::asio::io_context& ctx, Socket& s, std::shared_ptr<void> keep, callback cb, void* target, int tag,
              bool skip) {
    keep_ = std::move(keep);
    cb_ = cb;
    target_ = target;
    tag_ = tag;
    ec_ = boost::system::error_code();
    bytes_transferred_ = 0;
    cancellation_key_ = nullptr;
    auto& impl = socket_impl(s);
    // An owner's sockets all belong to one io_context: look its reactor up once (use_service
    // takes a lock).
    if (!reactor_) reactor_ = &boost::asio::use_service<boost::asio::detail::reactor>(ctx);
    skip_ = skip;
    reactor_->start_op(boost::asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, this,
                       /*is_continuation=*/false, /*allow_speculative=*/true);
    skip_ = false;
  }

  bool skip_ = false;

 private:
  static void complete(void* owner, boost::asio::detail::operation* base, const boost::system::error_code&,
                       std::size_t) {
    auto* o = static_cast<callback_op*>(base);
    // Everything out of the object first: the callback may start the next operation with it.
    std::shared_ptr<void> keep = std::move(o->keep_);
    if (!owner) return;  // the io_context is being destroyed: no callback
    const callback cb = o->cb_;
    void* const target = o->target_;
    const int tag = o->tag_;
    const boost::system::error_code ec = o->ec_;
    const std::size_t n = o->bytes_transferred_;
    cb(target, tag, ec, n);
  }

  boost::asio::detail::reactor* reactor_ = nullptr;
  std::shared_ptr<void> keep_;
  callback cb_ = nullptr;
  void* target_ = nullptr;
  int tag_ = 0;
};
#endif
}  // namespace detail

/// Assigns fd to s, as `s.assign(protocol, fd, ec)` does, and then tells Asio two facts about
/// it that Asio cannot know about a descriptor it did not create:
/// - fd is already O_NONBLOCK (accept4/socket with SOCK_NONBLOCK). Otherwise Asio issues
///   ioctl(FIONBIO) before the first asynchronous operation.
/// - fd has no duplicate (no dup(), no fork while it is open). Otherwise Asio assumes one may
///   exist and issues EPOLL_CTL_DEL before close(); without a duplicate, close() itself removes
///   the descriptor from epoll.
/// On the connection-per-request path that is 4 of about 24 system calls per proxied connection.
template <class Socket>
void adopt_socket(Socket& s, const typename Socket::protocol_type& protocol, int fd, boost::system::error_code& ec) {
  s.assign(protocol, fd, ec);
#if NPP_ASIO_TUNED
  if (ec) return;
  namespace ops = boost::asio::detail::socket_ops;
  auto& state = detail::socket_impl(s).state_;
  state = static_cast<ops::state_type>((state | ops::internal_non_blocking) & ~ops::possible_dup);
#endif
}

/// Tells Asio that s is non-blocking by the user's choice, as `s.non_blocking(true)` does, for a
/// descriptor already O_NONBLOCK (see adopt_socket): without the ioctl(FIONBIO) that call makes.
inline void mark_non_blocking(boost::asio::ip::tcp::socket& s) {
#if NPP_ASIO_TUNED
  namespace ops = boost::asio::detail::socket_ops;
  auto& state = detail::socket_impl(s).state_;
  state = static_cast<ops::state_type>(state | ops::user_set_non_blocking);
#else
  boost::system::error_code ignored_ec;
  s.non_blocking(true, ignored_ec);
#endif
}

/// One receive on a TCP socket that is O_NONBLOCK (see adopt_socket), as `async_read_some` does,
/// except that the reactor learns when the read emptied the socket.
///
/// Why: Asio tries every read at once ("speculatively") unless the previous read on the socket
/// found it exhausted, and for a TCP receive it counts only end-of-file as exhausted. So after a
/// request of 60 bytes, waiting for the next one costs a recv() that returns EAGAIN: on the
/// keep-alive path 2 of 6 system calls per request.
///
/// A short read alone does not prove the socket empty: a FIN that came with or right behind the
/// data is consumed by the same recv(), its epoll edge is spent, and only the next recv() returns
/// 0. TCP_INQ (Linux 4.18) answers exactly this: with it set on the socket, every read carries the
/// bytes left in a control message, and a pending FIN counts as 1. So a read that leaves 0 marks
/// the socket exhausted: the reactor queues the next read without trying it, and the next edge
/// from epoll (data or FIN after that instant) performs it. The reactor records "exhausted" under
/// its descriptor lock at the time of the read, so no edge can fall in between. Without TCP_INQ
/// on the socket there is no control message and every read behaves as Asio's.
///
/// One object serves one socket direction and is reused: at most one receive is outstanding.
class drain_read
#if NPP_ASIO_TUNED
    : private detail::callback_op
#endif
{
 public:
  using callback = void (*)(void* target, int tag, const boost::system::error_code& ec, std::size_t n);

#if NPP_ASIO_TUNED
  drain_read() : callback_op(&perform) {}
#else
  drain_read() = default;
#endif
  drain_read(const drain_read&) = delete;
  drain_read& operator=(const drain_read&) = delete;

  /// Receives up to size bytes into buf from s (owned by ctx); then calls cb(target, tag, ec, n)
  /// on ctx, with asio::error::eof at end of stream and operation_aborted if s is closed first.
  /// keep is held until then (the owner's lifetime). known_empty: the caller found the socket
  /// empty (a recv that returned EAGAIN) in this same handler, with no wait for events since, so
  /// any data after that raises an edge still to come: the receive waits for it without trying.
  ///
  /// pool (optional): a message longer than buf still takes one recvmsg(). The receive borrows a
  /// buffer B from pool for the length of the call and reads into buf, then on into B from
  /// offset size. When the bytes reach B (n >= size), B is kept for the caller, who takes it
  /// with take_overflow() and copies buf's size bytes in front of the rest: the message is then
  /// B[0, n). Otherwise B goes straight back, so a waiting receive holds no pool buffer.
  void start(boost::asio::io_context& ctx, boost::asio::ip::tcp::socket& s, char* buf, std::size_t size,
             std::shared_ptr<void> keep, callback cb, void* target, int tag, bool known_empty = false,
             buffer_pool* pool = nullptr) {
#if NPP_ASIO_TUNED
    fd_ = s.native_handle();
    buf_ = buf;
    size_ = size;
    pool_ = pool && pool->size() > size ? pool : nullptr;
    submit(ctx, s, std::move(keep), cb, target, tag, known_empty);
#else
    (void)ctx;
    (void)known_empty;
    (void)pool;
    s.async_read_some(boost::asio::buffer(buf, size),
                      [keep = std::move(keep), cb, target, tag](const boost::system::error_code& ec, std::size_t n) {
                        cb(target, tag, ec, n);
                      });
#endif
  }

  /// The pool buffer holding the completed receive's bytes past buf (see start), or null: the
  /// caller owns it from here and gives it back to the pool.
  char* take_overflow() {
#if NPP_ASIO_TUNED
    return std::exchange(overflow_, nullptr);
#else
    return nullptr;
#endif
  }

#if NPP_ASIO_TUNED
  ~drain_read() { delete[] overflow_; }  // not taken: the io_context ended before the callback

 private:
  static status perform(reactor_op* base) {
    auto* o = static_cast<drain_read*>(base);
    if (o->skip_) return not_done;
    iovec iov[2] = {{o->buf_, o->size_}, {}};
    char* borrowed = nullptr;
    if (o->pool_) {
      borrowed = o->pool_->acquire();
      iov[1] = {borrowed + o->size_, o->pool_->size() - o->size_};
    }
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = borrowed ? 2 : 1;
    for (;;) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(o->fd_, &msg, 0);
      if (n < 0 && errno == EINTR) continue;
      if (borrowed && n >= static_cast<ssize_t>(o->size_))
        o->overflow_ = borrowed;
      else if (borrowed)
        o->pool_->release(borrowed);
      if (n > 0) {
        o->bytes_transferred_ = static_cast<std::size_t>(n);
        return bytes_left(msg) == 0 ? done_and_exhausted : done;
      }
      if (n == 0) {
        o->ec_ = boost::asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      o->ec_ = boost::system::error_code(errno, boost::system::system_category());
      return done;
    }
  }

  /// TCP_INQ's count of bytes left after a read (a pending FIN counts as 1); -1 if absent.
  static int bytes_left(msghdr& msg) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
        int left;
        std::memcpy(&left, CMSG_DATA(c), sizeof left);
        return left;
      }
    return -1;
  }

  int fd_ = -1;
  char* buf_ = nullptr;
  std::size_t size_ = 0;
  buffer_pool* pool_ = nullptr;  ///< lends the receive room past buf_, or null
  char* overflow_ = nullptr;     ///< borrowed from pool_, holding bytes past buf_, until taken
#endif
};

/// Waits until a socket is readable, as `s.async_wait(wait_read, ...)` does, for a caller that
/// itself read the socket until it was empty.
///
/// Why: Asio's reactor is edge-triggered, and a wait cannot know whether an edge is still to
/// come (the socket may have been readable all along), so every async_wait re-arms the
/// descriptor with EPOLL_CTL_MOD, which reports a readable socket at once. The UDP nodePort
/// socket and the TCP listener wait after every batch, so that was one epoll_ctl per batch: per
/// accepted connection at low concurrency, and 4 % of the UDP forwarding CPU.
///
/// A caller that saw the socket empty (EAGAIN, or fewer datagrams than recvmmsg asked for) in
/// this same handler passes known_empty: any arrival after that raised an edge still to come,
/// so the wait is queued in the reactor without a system call. Otherwise (first wait, or the
/// caller is not sure) the wait completes at once and the caller reads to find out.
///
/// One object serves one socket and is reused: at most one wait is outstanding.
class readable_wait
#if NPP_ASIO_TUNED
    : private detail::callback_op
#endif
{
 public:
  /// tag is the caller's, n is always 0.
  using callback = void (*)(void* target, int tag, const boost::system::error_code& ec, std::size_t n);

#if NPP_ASIO_TUNED
  readable_wait() : callback_op(&perform) {}
#else
  readable_wait() = default;
#endif
  readable_wait(const readable_wait&) = delete;
  readable_wait& operator=(const readable_wait&) = delete;

  /// Calls cb(target, 0, ec, 0) on ctx once s (owned by ctx) is readable or has an error
  /// pending, with operation_aborted if s is closed first. keep is held until then.
  template <class Socket>
  void start(boost::asio::io_context& ctx, Socket& s, std::shared_ptr<void> keep, callback cb, void* target,
             bool known_empty) {
#if NPP_ASIO_TUNED
    submit(ctx, s, std::move(keep), cb, target, 0, known_empty);
#else
    (void)ctx;
    (void)known_empty;
    s.async_wait(boost::asio::socket_base::wait_read,
                 [keep = std::move(keep), cb, target](const boost::system::error_code& ec) { cb(target, 0, ec, 0); });
#endif
  }

#if NPP_ASIO_TUNED
 private:
  static status perform(reactor_op* base) { return static_cast<readable_wait*>(base)->skip_ ? not_done : done; }
#endif
};

}  // namespace npp::proxy
