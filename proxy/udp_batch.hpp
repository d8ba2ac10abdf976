#pragma once
// A batch of UDP datagrams for one recvmmsg and the sendmmsg calls that forward it: the mmsghdr
// arrays, iovecs, source addresses, control (IP_PKTINFO) buffers and the payload memory.
//
// One per worker, shared by all its UDP sockets: a batch is received, forwarded and sent before
// the next one is read, and nothing on the way (session lookup, creation, end) reads a socket.
//
// Memory. A datagram may be up to 65,507 bytes (65,527 over IPv6) and recvmmsg cannot pick a slot
// by size, so every slot must be able to hold 64 KiB, yet 64 x 64 KiB = 4 MiB per worker for
// 1,200-byte datagrams would be a waste. Each slot is therefore two iovecs:
//
//   head: head_bytes, dense (64 x 2 KiB = 128 KiB): all of a typical datagram (DNS, QUIC,
//         anything within a 1500-byte MTU)
//   tail: the remaining 62 KiB, in one reserved but untouched mapping: pages become resident
//         only where a large datagram was written, and trim() gives them back once large
//         datagrams stop.
//
// So a worker that forwards small datagrams holds ~128 KiB, one that has seen no UDP holds
// nothing (the mapping is made on first use by worker::datagrams()), and a burst of large ones
// costs at most 4 MiB until the next trim().
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace npp::proxy {

class udp_batch {
 public:
  static constexpr int capacity = 64;              ///< datagrams per recvmmsg/sendmmsg call
  static constexpr std::size_t slot_bytes = 65536; ///< > 65,527, the largest UDP payload (IPv6)
  static constexpr std::size_t head_bytes = 2048;  ///< dense part of a slot: a 1500-byte MTU's datagram fits
  static constexpr std::size_t tail_bytes = slot_bytes - head_bytes;
  /// Room for IPV6_PKTINFO and IP_PKTINFO (a dual-stack socket may deliver both) with slack.
  static constexpr std::size_t control_bytes = 128;
  static_assert(CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo)) <= control_bytes);

  /// Throws std::bad_alloc if the payload memory cannot be mapped.
  udp_batch();
  ~udp_batch();
  udp_batch(const udp_batch&) = delete;
  udp_batch& operator=(const udp_batch&) = delete;

  /// One recvmmsg(MSG_DONTWAIT) on `fd` into the whole batch; with_source also asks for each
  /// datagram's source address and control messages (the nodePort socket; a connected upstream
  /// socket needs neither). Returns the number of datagrams, or -1 with errno set.
  int receive(int fd, bool with_source);

  /// Of received datagram k: its length, whether the kernel cut it (it did not fit a slot), and
  /// its header (source address in msg_name/msg_namelen, control messages).
  std::size_t length(int k) const { return in_[k].msg_len; }
  bool truncated(int k) const { return (in_[k].msg_hdr.msg_flags & MSG_TRUNC) != 0; }
  const msghdr& header(int k) const { return in_[k].msg_hdr; }
  const sockaddr_storage& source(int k) const { return names_[k]; }

  /// Sends received datagrams [first, last) on `fd`, to `to` (null on a connected socket), each
  /// with the same control messages (may be empty). Returns how many were sent from `first` on,
  /// or -1 with errno set for datagram `first`; a short count means datagram first + count
  /// failed: call again from there to learn why.
  ///
  /// How: a leading run of equal-sized small datagrams (the last may be shorter) leaves as one
  /// UDP GSO send (UDP_SEGMENT): the stack handles one buffer and cuts it into datagrams at the
  /// end, which costs a fraction of one traversal per datagram. Everything else goes in one
  /// sendmmsg. `gso` is the caller's memory of whether GSO works towards this peer: cleared
  /// when the kernel refuses it (no GSO support, segment larger than the route's MTU), so
  /// that peer is not asked again.
  int send(int fd, int first, int last, const sockaddr* to, socklen_t to_len, const void* control,
           std::size_t control_len, bool& gso);

  /// Payload bytes of received datagrams [first, last).
  std::size_t bytes(int first, int last) const;

  /// Gives the tail pages back to the kernel if no large datagram arrived since the last call
  /// (or unconditionally with `force`). Called from the idle sweep: cheap when nothing to do.
  void trim(bool force = false);

 private:
  /// Largest datagram GSO is used for: only heads (one iovec per datagram), and small sizes are
  /// where the per-datagram cost dominates.
  static constexpr std::size_t gso_max_segment = head_bytes;
  /// Datagrams per GSO send: UDP_MAX_SEGMENTS of kernels before 6.x (later ones allow 128).
  static constexpr int gso_max_segments = 64;
  /// Payload bytes per GSO send: it travels as one IPv4/IPv6 datagram until it is cut.
  static constexpr std::size_t gso_max_bytes = 65507;

  /// Datagrams [first, n) that can leave in one GSO send from `first` (0 or >= 2).
  int gso_run(int first, int last) const;
  int send_gso(int fd, int first, int count, const sockaddr* to, socklen_t to_len, const void* control,
               std::size_t control_len);
  int send_each(int fd, int first, int last, const sockaddr* to, socklen_t to_len, const void* control,
                std::size_t control_len);

  char* payload_ = nullptr;              ///< capacity heads, then capacity tails (one mapping)
  bool tails_used_ = false;              ///< a datagram reached its tail since the last trim()
  bool tails_resident_ = false;          ///< tails may hold pages since the last release
  mmsghdr in_[capacity];                 ///< what recvmmsg filled
  iovec in_iov_[capacity][2];            ///< head and tail of each slot
  sockaddr_storage names_[capacity];     ///< source of each datagram (with_source)
  alignas(cmsghdr) char control_[capacity][control_bytes];  ///< IP_PKTINFO / IPV6_PKTINFO (with_source)
  mmsghdr out_[capacity];                ///< what sendmmsg sends (indexed like in_)
  iovec out_iov_[capacity][2];           ///< head and tail, cut to the datagram's length
  iovec gso_iov_[gso_max_segments];      ///< heads of one GSO send
};

}  // namespace npp::proxy
