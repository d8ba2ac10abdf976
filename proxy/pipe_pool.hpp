#pragma once
// Per-worker pool of pipes for splice(2): a connection borrows a pipe only while bytes are in
// flight in one direction and gives it back empty, so idle connections hold no pipe (and no
// descriptors beyond their two sockets). Single-threaded: each worker owns one pool.
#include <fcntl.h>
#include <unistd.h>

#include <vector>

namespace npp::proxy {

/// A pipe's two ends; r < 0 means "none".
struct pipe_pair {
  int r = -1;
  int w = -1;
  explicit operator bool() const { return r >= 0; }
};

class pipe_pool {
 public:
  /// max_free: empty pipes kept for reuse (each costs two descriptors). capacity: bytes asked for
  /// each new pipe (0: the kernel's default, 64 KiB).
  pipe_pool(std::size_t max_free, std::size_t capacity) : max_free_(max_free), capacity_(capacity) {}
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;
  ~pipe_pool() {
    for (auto& p : free_) close_pair(p);
  }

  /// An empty pipe, or an empty pipe_pair when none can be made (EMFILE: the caller copies
  /// through a buffer instead).
  pipe_pair acquire() {
    if (!free_.empty()) {
      auto p = free_.back();
      free_.pop_back();
      return p;
    }
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return {};
    // Refused above /proc/sys/fs/pipe-max-size, or past the user's pipe page quota
    // (fs.pipe-user-pages-soft) without CAP_SYS_RESOURCE: the pipe keeps the default, which works.
    if (capacity_ > 0) ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(capacity_));
    return {fds[0], fds[1]};
  }
  /// Gives back a pipe; `empty` tells whether all spliced bytes left it (a pipe holding bytes
  /// of a dead connection is closed, never reused).
  void release(pipe_pair& p, bool empty) {
    if (!p) return;
    if (empty && free_.size() < max_free_) {
      free_.push_back(p);
    } else {
      close_pair(p);
    }
    p = {};
  }

 private:
  static void close_pair(pipe_pair& p) {
    ::close(p.r);
    ::close(p.w);
  }
  std::size_t max_free_;
  std::size_t capacity_;
  std::vector<pipe_pair> free_;
};

}  // namespace npp::proxy
