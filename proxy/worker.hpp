#pragma once
// One worker thread: an io_context(1) and everything on it (listeners, sessions, timers).
// A connection never leaves its worker, so the data path needs no locks or strands; other
// threads talk to a worker only through asio::post.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/buffer_pool.hpp"
#include "proxy/listener_key.hpp"
#include "proxy/port_runtime.hpp"
#include "proxy/settings.hpp"
#include "proxy/tcp_session.hpp"

namespace npp::proxy {

class listener;
class access_log;
class udp_batch;

/// State shared by all workers (atomics only).
struct shared_state {
  std::atomic<std::size_t> active_connections{0};  ///< proxied client connections, all workers
  std::atomic<std::uint64_t> next_connection_id{1};
  std::atomic<std::size_t> tls_handshakes{0};      ///< TLS client handshakes in progress, all workers
  std::size_t max_connections = 0;                 ///< resolved --max-connections
  std::size_t udp_max_sessions = 0;                ///< resolved --udp-max-sessions
  access_log* access = nullptr;                    ///< --access-log (null: off); owned by the server
};

/// What a worker should be listening on after an update: a key, its port config, and a fresh
/// listening socket when the worker does not have one for this key yet.
struct listener_assignment {
  listener_key key;
  std::shared_ptr<const port_runtime> port;
  int fd = -1;  ///< >= 0: a new listening socket this worker adopts (and then owns)
};

class worker {
 public:
  worker(unsigned index, const settings& cfg, shared_state& shared);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Starts the thread.
  void start();
  /// Waits for the thread to end (after drain()).
  void join();

  /// Thread-safe: changes the listener set. Keys in `removed` stop listening; each assignment
  /// either gives a key a new listening socket (fd >= 0: a listener of the key is replaced) or
  /// gives the key's listener a new port configuration (fd < 0). Keys in neither keep their
  /// listener as it is. `done` runs on the worker's thread once the changes are in place.
  void post_update(std::vector<listener_assignment> changed, std::vector<listener_key> removed,
                   std::function<void()> done = {});
  /// Thread-safe: stops accepting, lets connections finish until `deadline`, then closes the
  /// rest; the thread ends when nothing is left.
  void post_drain(std::chrono::steady_clock::time_point deadline);

  // Used by listeners and sessions on this worker's thread.
  boost::asio::io_context& context() { return ctx_; }
  const settings& cfg() const { return cfg_; }
  unsigned index() const { return index_; }
  buffer_pool& buffers() { return buffers_; }
  pipe_pool& pipes() { return pipes_; }
  shared_state& shared() { return shared_; }
  /// Registers a live session (unlinks itself on destruction).
  void add_session(tcp_session& s);
  /// Called by a session's destructor.
  void session_ended();
  std::size_t sessions() const { return live_sessions_; }

  /// The datagram batch every UDP socket of this worker receives into (a batch is forwarded
  /// before the next is read, so one is enough); made on first use, so TCP-only workers pay nothing.
  udp_batch& datagrams();
  std::size_t udp_sessions() const { return udp_sessions_; }
  /// This worker's share of --udp-max-sessions.
  std::size_t udp_session_cap() const { return udp_cap_; }
  void udp_session_opened() { ++udp_sessions_; }
  void udp_session_closed() { --udp_sessions_; }

 private:
  void apply(std::vector<listener_assignment> changed, const std::vector<listener_key>& removed);
  void drain(std::chrono::steady_clock::time_point deadline);
  void maybe_finish_drain();

  using session_list = boost::intrusive::list<tcp_session, boost::intrusive::constant_time_size<false>>;

  unsigned index_;                 ///< 0..workers-1, indexes per-worker counter blocks
  const settings& cfg_;            ///< process settings (immutable while running)
  shared_state& shared_;           ///< process-wide atomics
  boost::asio::io_context ctx_{1}; ///< concurrency hint 1: one thread runs it
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  buffer_pool buffers_;            ///< relay buffers of this worker's sessions
  pipe_pool pipes_;                ///< splice pipes of this worker's sessions (32 cached: 64 fds)
  std::map<listener_key, std::shared_ptr<listener>> listeners_;  ///< by (address, port, proto)
  session_list live_;              ///< sessions on this worker (for the shutdown deadline)
  std::size_t live_sessions_ = 0;  ///< size of live_
  boost::asio::steady_timer drain_timer_{ctx_};  ///< shutdown grace deadline
  bool draining_ = false;
  std::unique_ptr<udp_batch> datagrams_;  ///< see datagrams()
  std::size_t udp_sessions_ = 0;   ///< UDP sessions on this worker
  std::size_t udp_cap_ = 1;        ///< share of the UDP session cap
  std::thread thread_;
};

}  // namespace npp::proxy
