#pragma once
// Watches input files for changes with inotify on their *directories*, so edits in place,
// atomic renames (write tmp + rename) and Kubernetes ConfigMap volume updates (an atomic swap of
// the "..data" symlink, which a watch on the file itself never sees: kubernetes#112677) all
// trigger a reload. Runs on the control thread's io_context.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace npp::proxy {

class file_watch {
 public:
  /// Calls on_change (on ctx's thread) after the files changed. Completed writes and renames
  /// are coalesced over `settle` (a few ms: one editor save fires several events); a write still
  /// in progress (IN_MODIFY without IN_CLOSE_WRITE) waits `quiet` for the writer to finish.
  /// Throws std::runtime_error if inotify cannot be set up.
  file_watch(boost::asio::io_context& ctx, const std::vector<std::filesystem::path>& files,
             std::function<void()> on_change, std::chrono::milliseconds settle = std::chrono::milliseconds(5),
             std::chrono::milliseconds quiet = std::chrono::milliseconds(200));
  ~file_watch();
  file_watch(const file_watch&) = delete;
  file_watch& operator=(const file_watch&) = delete;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace npp::proxy
