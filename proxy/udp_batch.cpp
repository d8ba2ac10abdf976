#include "proxy/udp_batch.hpp"

#include <netinet/udp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>

namespace npp::proxy {

static constexpr std::size_t payload_bytes = udp_batch::capacity * udp_batch::slot_bytes;

udp_batch::udp_batch() {
  // MAP_NORESERVE: the tails are address space we rarely touch, not memory to account for.
  void* p = ::mmap(nullptr, payload_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  payload_ = static_cast<char*>(p);
  char* tails = payload_ + capacity * head_bytes;
  for (int k = 0; k < capacity; ++k) {
    in_iov_[k][0] = {payload_ + k * head_bytes, head_bytes};
    in_iov_[k][1] = {tails + k * tail_bytes, tail_bytes};
  }
  std::memset(in_, 0, sizeof in_);
  std::memset(out_, 0, sizeof out_);
}

udp_batch::~udp_batch() { ::munmap(payload_, payload_bytes); }

int udp_batch::receive(int fd, bool with_source) {
  for (int k = 0; k < capacity; ++k) {
    msghdr& h = in_[k].msg_hdr;
    h.msg_iov = in_iov_[k];
    h.msg_iovlen = 2;
    h.msg_name = with_source ? &names_[k] : nullptr;
    h.msg_namelen = with_source ? sizeof names_[k] : 0;
    h.msg_control = with_source ? control_[k] : nullptr;
    h.msg_controllen = with_source ? control_bytes : 0;
    h.msg_flags = 0;
  }
  const int n = ::recvmmsg(fd, in_, capacity, MSG_DONTWAIT, nullptr);
  for (int k = 0; k < n; ++k) {
    if (in_[k].msg_len > head_bytes) {
      tails_used_ = true;
      tails_resident_ = true;
    }
  }
  return n;
}

int udp_batch::send(int fd, int first, int last, const sockaddr* to, socklen_t to_len, const void* control,
                    std::size_t control_len, bool& gso) {
  if (gso) {
    if (const int count = gso_run(first, last); count > 0) {
      const int sent = send_gso(fd, first, count, to, to_len, control, control_len);
      if (sent > 0 || errno == ECONNREFUSED || errno == EINTR) return sent;
      // EINVAL (segment above the route's MTU), EIO/EOPNOTSUPP (no GSO on the way): this peer
      // gets plain datagrams from now on. Anything else (EAGAIN, ...) is transient: try the
      // datagrams one by one below, which also gives per-datagram errors.
      if (errno == EINVAL || errno == EIO || errno == EOPNOTSUPP) gso = false;
    }
  }
  return send_each(fd, first, last, to, to_len, control, control_len);
}

int udp_batch::gso_run(int first, int last) const {
  const std::size_t segment = in_[first].msg_len;
  if (segment == 0 || segment > gso_max_segment) return 0;
  const int max_count = static_cast<int>(std::min<std::size_t>(gso_max_segments, gso_max_bytes / segment));
  int k = first + 1;
  while (k < last && k - first < max_count && in_[k].msg_len == segment) ++k;
  // The kernel cuts at `segment` bytes, so one shorter datagram may end the run.
  if (k < last && k - first < max_count && in_[k].msg_len < segment && in_[k].msg_len > 0) ++k;
  return k - first >= 2 ? k - first : 0;
}

int udp_batch::send_gso(int fd, int first, int count, const sockaddr* to, socklen_t to_len, const void* control,
                        std::size_t control_len) {
  for (int i = 0; i < count; ++i) gso_iov_[i] = {in_iov_[first + i][0].iov_base, in_[first + i].msg_len};
  // The caller's control messages (IP_PKTINFO), then UDP_SEGMENT.
  alignas(cmsghdr) char cbuf[control_bytes + CMSG_SPACE(sizeof(std::uint16_t))];
  if (control_len) std::memcpy(cbuf, control, control_len);
  auto* cm = reinterpret_cast<cmsghdr*>(cbuf + control_len);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
  const auto segment = static_cast<std::uint16_t>(in_[first].msg_len);
  std::memcpy(CMSG_DATA(cm), &segment, sizeof segment);
  msghdr h{};
  h.msg_name = const_cast<sockaddr*>(to);
  h.msg_namelen = to ? to_len : 0;
  h.msg_iov = gso_iov_;
  h.msg_iovlen = static_cast<std::size_t>(count);
  h.msg_control = cbuf;
  h.msg_controllen = control_len + CMSG_SPACE(sizeof(std::uint16_t));
  return ::sendmsg(fd, &h, MSG_DONTWAIT) < 0 ? -1 : count;
}

int udp_batch::send_each(int fd, int first, int last, const sockaddr* to, socklen_t to_len, const void* control,
                         std::size_t control_len) {
  for (int k = first; k < last; ++k) {
    const std::size_t n = in_[k].msg_len;
    msghdr& h = out_[k].msg_hdr;
    out_iov_[k][0] = {in_iov_[k][0].iov_base, n < head_bytes ? n : head_bytes};
    out_iov_[k][1] = {in_iov_[k][1].iov_base, n > head_bytes ? n - head_bytes : 0};
    h.msg_iov = out_iov_[k];
    h.msg_iovlen = n > head_bytes ? 2 : 1;
    h.msg_name = const_cast<sockaddr*>(to);
    h.msg_namelen = to ? to_len : 0;
    h.msg_control = const_cast<void*>(control);  // the kernel only reads it
    h.msg_controllen = control_len;
    h.msg_flags = 0;
  }
  return ::sendmmsg(fd, &out_[first], static_cast<unsigned>(last - first), MSG_DONTWAIT);
}

std::size_t udp_batch::bytes(int first, int last) const {
  std::size_t total = 0;
  for (int k = first; k < last; ++k) total += in_[k].msg_len;
  return total;
}

void udp_batch::trim(bool force) {
  if (!tails_resident_) return;
  if (tails_used_ && !force) {
    tails_used_ = false;  // in use lately: look again next time
    return;
  }
  // MADV_DONTNEED on private anonymous memory frees the pages now; the next large datagram
  // faults in fresh zero pages.
  ::madvise(payload_ + capacity * head_bytes, capacity * tail_bytes, MADV_DONTNEED);
  tails_used_ = false;
  tails_resident_ = false;
}

}  // namespace npp::proxy
