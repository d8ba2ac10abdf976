#pragma once
// The live Kubernetes API source: list, then watch, Services and EndpointSlices
// (discovery.k8s.io/v1) over HTTPS (Boost.Beast + OpenSSL), keep them in a config::object_store,
// and deliver a new snapshot after changes, coalesced to at most one per min_sync_period (like
// kube-proxy's min sync period). Runs on a thread and io_context of its own, so a slow or
// hanging API server never delays the control loop; snapshots are built there too and handed
// to the server through `deliver` (server::submit), the same apply path file reloads take.
//
// Protocol (../shared/KUBERNETES.md §4): GET list -> metadata.resourceVersion; GET
// ?watch=1&allowWatchBookmarks=true&resourceVersion=RV&timeoutSeconds=T, one JSON event per
// line. The resourceVersion of every event (bookmarks included) is remembered, so a reconnect
// resumes where the stream stopped. 410 Gone ("too old resource version"), as an HTTP status or
// an in-stream ERROR event, re-lists. Disconnects and errors retry with capped exponential
// backoff plus jitter; the last good configuration stays applied meanwhile. The service-account
// token file is re-read every token_refresh (projected tokens rotate) and after a 401.
// No Asio in this header.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/kube_api_config.hpp"
#include "config/load.hpp"
#include "config/snapshot.hpp"

namespace npp::proxy {

struct api_options {
  config::api_server_config server;
  /// Range and caps for building snapshots. API mode sets the range to 1-65535 unless
  /// --service-node-port-range was given: the API server has allocated the nodePorts already.
  config::load_options load;
  /// Changes are coalesced: at most one snapshot per this interval (--min-sync-period).
  std::chrono::milliseconds min_sync_period{1000};
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  /// Re-read the token file this often (client-go: 1 minute).
  std::chrono::milliseconds token_refresh{60000};
  /// Connect + TLS handshake + response header, and each read of a list body.
  std::chrono::milliseconds request_timeout{10000};
  /// Server-side watch timeout is chosen in [watch_timeout, 2 * watch_timeout) per request
  /// (client-go's reflector: 5-10 minutes); the stream then ends cleanly and is resumed.
  std::chrono::seconds watch_timeout{300};
  /// Largest single watch event (one line); a larger one re-lists (the list cap is larger).
  std::size_t max_event_bytes = 16u << 20;
  /// Largest list response body.
  std::size_t max_list_bytes = 1024u << 20;
};

class api_source {
 public:
  /// `deliver` is called on the source's thread with a function that returns the new snapshot
  /// (or throws config_error / std::exception with the reason it could not be built); the server
  /// runs it on its control thread (server::submit).
  using deliver_fn = std::function<void(std::function<config::snapshot_ptr()>)>;
  api_source(api_options opts, deliver_fn deliver);
  ~api_source();
  api_source(const api_source&) = delete;
  api_source& operator=(const api_source&) = delete;

  /// Starts listing and watching on a new thread.
  void start();
  /// Stops every request and joins the thread (idempotent; the destructor calls it).
  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

/// One list of Services and EndpointSlices (and, with want_nodes, Nodes), for `check`: the
/// snapshot and the Nodes' addresses (InternalIP, then ExternalIP, of every Node). Throws
/// std::runtime_error with a clear message if the API cannot be read, config_error if the
/// objects do not make a valid snapshot.
struct api_listing {
  config::snapshot snap;
  std::vector<std::string> node_addresses;
  std::vector<std::string> problems;  ///< objects left out, with their problems
};
api_listing list_once(const api_options& opts, bool want_nodes);

}  // namespace npp::proxy
