#pragma once
// The access log (--access-log): one line per finished TCP connection or UDP session, in the
// spirit of nginx stream's access_log: who connected to which nodePort, which endpoint served
// it, bytes each way, how long it lasted, how long the upstream connect took, and why it ended.
// Connections refused at accept (allowlist, limits, no endpoints) get a line too, with id 0.
//
// Text lines are logfmt (key=value, space separated, values never need quoting: addresses,
// Kubernetes names, numbers and reason words have no spaces); JSON lines carry the same keys.
// The same text fields follow "connection closed" in the debug log, so there is one formatter.
//
// Writes: one write(2) per line under a mutex, so lines from different workers never
// interleave, and a line is on disk (or in the pipe) when the connection's close is done, as
// nginx writes an unbuffered access_log. A slow destination slows the workers: log to a file,
// not to a pipe nobody reads. SIGHUP reopens a file destination (logrotate's postrotate).
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace npp::proxy {

/// One finished connection or session. Views must outlive write().
struct access_record {
  std::string_view protocol;    ///< "tcp" or "udp"
  std::uint64_t id = 0;         ///< connection id (0: refused at accept)
  std::string client;           ///< "10.0.0.1:52000" / "[2001:db8::1]:52000"
  int node_port = 0;
  std::string_view service;     ///< "namespace/name"
  std::string_view port_name;   ///< the Service port's name ("" when unnamed)
  std::string endpoint;         ///< "10.1.2.3:8080", "" when none was connected or tried
  unsigned attempts = 0;        ///< upstream connect attempts
  std::uint64_t bytes_in = 0;   ///< client -> endpoint
  std::uint64_t bytes_out = 0;  ///< endpoint -> client
  std::chrono::nanoseconds duration{0};       ///< accept (first datagram) to close
  std::chrono::nanoseconds connect_time{-1};  ///< the successful upstream connect; < 0: none
  std::string_view reason;      ///< close reason (eof, client_reset, idle_timeout, allowlist, ...)
};

enum class access_log_format { text, json };

/// The key=value fields of a record (no timestamp), as in the text access log and the debug log.
std::string access_fields(const access_record& r);
/// One complete line (with the end time, UTC, and a trailing newline) in the given format.
std::string access_line(const access_record& r, access_log_format format,
                        std::chrono::system_clock::time_point at);

class access_log {
 public:
  /// destination: "-" or "stdout", "stderr", or a file opened for appending (created 0640).
  /// Throws std::runtime_error naming the file and the error.
  access_log(std::string destination, access_log_format format);
  ~access_log();
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;

  /// Formats and writes one line (thread-safe). A failed write is reported once (warning) until
  /// a write succeeds again; the connection is never affected.
  void write(const access_record& r);
  /// Reopens a file destination (after rotation). On failure the old file stays in use and the
  /// error is returned; "" on success or for stdout/stderr.
  std::string reopen();
  const std::string& destination() const { return destination_; }

 private:
  std::string destination_;
  access_log_format format_;
  std::mutex mu_;          ///< guards fd_ and failing_
  int fd_ = -1;
  bool owns_fd_ = false;   ///< a file we opened (not stdout/stderr)
  bool failing_ = false;   ///< the last write failed (warned once)
};

}  // namespace npp::proxy
