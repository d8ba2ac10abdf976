#include "proxy/file_watch.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

namespace npp::proxy {

namespace asio = boost::asio;
using boost::system::error_code;

struct file_watch::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& ctx, std::function<void()> cb, std::chrono::milliseconds settle, std::chrono::milliseconds quiet)
      : stream(ctx), timer(ctx), on_change(std::move(cb)), settle(settle), quiet(quiet) {}

  asio::posix::stream_descriptor stream;     ///< the inotify fd
  asio::steady_timer timer;                  ///< debounce
  std::function<void()> on_change;
  std::chrono::milliseconds settle, quiet;
  std::map<int, std::set<std::string>> names;  ///< watch descriptor -> file names we care about in that dir
  alignas(inotify_event) char buf[16384];
  bool pending = false;                      ///< a change is waiting for the timer
  std::chrono::steady_clock::time_point due; ///< when the pending reload runs

  void read() {
    stream.async_read_some(asio::buffer(buf), [self = shared_from_this()](const error_code& ec, std::size_t n) {
      if (ec) {
        if (ec != asio::error::operation_aborted) spdlog::warn("file watch stopped: {}", ec.message());
        return;
      }
      self->on_events(n);
      self->read();
    });
  }

  void on_events(std::size_t n) {
    bool complete = false, partial = false;
    for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        complete = true;  // events were lost: reload to be safe
        continue;
      }
      auto it = names.find(ev->wd);
      if (it == names.end() || ev->len == 0) continue;
      std::string name(ev->name);
      if (!it->second.count(name) && name != "..data") continue;
      if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB))
        complete = true;
      else if (ev->mask & IN_MODIFY)
        partial = true;
    }
    if (!complete && !partial) return;
    auto wait = complete ? settle : quiet;
    auto when = std::chrono::steady_clock::now() + wait;
    // A completed write pulls a pending reload forward; a partial one pushes it back.
    if (pending && complete && when > due) return;
    pending = true;
    due = when;
    timer.expires_at(due);
    timer.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec) return;
      self->pending = false;
      self->on_change();
    });
  }
};

file_watch::file_watch(asio::io_context& ctx, const std::vector<std::filesystem::path>& files,
                       std::function<void()> on_change, std::chrono::milliseconds settle, std::chrono::milliseconds quiet)
    : impl_(std::make_shared<impl>(ctx, std::move(on_change), settle, quiet)) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  impl_->stream.assign(fd);
  std::map<std::string, int> by_dir;
  for (const auto& f : files) {
    auto abs = std::filesystem::absolute(f).lexically_normal();
    auto dir = abs.parent_path().string();
    int wd;
    if (auto it = by_dir.find(dir); it != by_dir.end()) {
      wd = it->second;
    } else {
      wd = ::inotify_add_watch(fd, dir.c_str(),
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY |
                                   IN_ATTRIB | IN_ONLYDIR);
      if (wd < 0) throw std::runtime_error("inotify_add_watch " + dir + ": " + std::strerror(errno));
      by_dir[dir] = wd;
    }
    impl_->names[wd].insert(abs.filename().string());
  }
  impl_->read();
}

file_watch::~file_watch() {
  error_code ignored_ec;
  impl_->timer.cancel();
  impl_->stream.close(ignored_ec);
}

}  // namespace npp::proxy
