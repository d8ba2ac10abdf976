#pragma once
// The data plane as main() sees it: workers, the reconciler and the control loop (signals,
// reloads, drain). No Asio in this header, so main.cpp and tests stay light to compile.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/snapshot.hpp"
#include "proxy/reconciler.hpp"
#include "proxy/settings.hpp"
#include "proxy/status.hpp"

namespace npp::proxy {

class server {
 public:
  /// Starts the worker threads. Throws std::runtime_error if no bind address can be selected.
  server(settings cfg, std::string node_name);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Applies a snapshot (callable before run(), and from the reload callback).
  apply_result apply(const config::snapshot& snap);

  /// Produces the next snapshot on SIGHUP (or a file change). Throws (config::config_error or
  /// std::exception) when the input is invalid: the server logs every problem, counts the failure
  /// and keeps the running configuration.
  using reload_fn = std::function<config::snapshot_ptr()>;
  /// Runs the control loop on the calling thread until a SIGTERM/SIGINT drain has finished.
  /// `reload` runs on SIGHUP and, when `watch` is not empty, whenever one of those files changes.
  /// Returns the process exit code (0 after a clean drain).
  /// `changed_since_load` (optional) is asked once the watch is in place: a file replaced
  /// between the first load and the watch would otherwise be missed until the next change.
  int run(reload_fn reload, std::vector<std::filesystem::path> watch = {},
          std::function<bool()> changed_since_load = {});

  /// Hands a configuration source's next snapshot to the control loop (thread-safe; for the
  /// Kubernetes API source). `produce` runs on the control thread exactly like a file reload:
  /// the same apply, logging ("configuration applied: generation=N") and reload counters; if it
  /// throws, the running configuration stays. Ignored once draining.
  void submit(reload_fn produce);

  /// Requests the same drain as SIGTERM (thread-safe; used by tests and the demo).
  void stop();

  /// The resolved settings (workers and max_connections filled in).
  const settings& cfg() const;

  /// A picture of the running proxy (call on the control thread, or before run()).
  status_report status() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace npp::proxy
