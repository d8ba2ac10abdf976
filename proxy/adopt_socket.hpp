// Handing a descriptor this process made to an Asio socket without Asio's defensive syscalls.
// Included only by .cpp files that already use Asio (tcp_listener, tcp_session).
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace npp::proxy {

/// Assigns fd to s, as `s.assign(protocol, fd, ec)` does, and then tells Asio two facts about
/// it that Asio cannot know about a descriptor it did not create:
/// - fd is already O_NONBLOCK (accept4/socket with SOCK_NONBLOCK). Otherwise Asio issues
///   ioctl(FIONBIO) before the first asynchronous operation.
/// - fd has no duplicate (no dup(), no fork while it is open). Otherwise Asio assumes one may
///   exist and issues EPOLL_CTL_DEL before close(); without a duplicate, close() itself removes
///   the descriptor from epoll.
/// On the connection-per-request path that is 4 of about 24 system calls per proxied connection.
/// The facts live in Asio's per-socket state bits, which basic_socket keeps in a protected member:
/// reached here through a pointer to member named via a derived class, which C++ allows.
inline void adopt_socket(boost::asio::ip::tcp::socket& s, const boost::asio::ip::tcp& protocol, int fd,
                         boost::system::error_code& ec) {
  struct access : boost::asio::ip::tcp::socket {
    static auto& state(boost::asio::ip::tcp::socket& sock) {
      return (sock.*(&access::impl_)).get_implementation().state_;
    }
  };
  s.assign(protocol, fd, ec);
  if (ec) return;
  namespace ops = boost::asio::detail::socket_ops;
  auto& state = access::state(s);
  state = static_cast<ops::state_type>((state | ops::internal_non_blocking) & ~ops::possible_dup);
}

}  // namespace npp::proxy
