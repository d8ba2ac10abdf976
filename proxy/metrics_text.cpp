// /metrics in the Prometheus text exposition format 0.0.4, written by hand.
//
// Why not prometheus-cpp core (libprometheus-cpp-dev 1.0.1 in bookworm)? Its value is a registry
// of live metric objects that the code updates as events happen. Ours are already kept
// elsewhere: each worker bumps its own cache-line-aligned block of relaxed atomics (a plain
// load+store, no lock prefix; proxy/stats.hpp), and server::status() sums the blocks into a
// status_report on the control thread. Using the library would mean either
//  * putting prometheus::Counter on the data path: Counter::Increment is an atomic
//    read-modify-write on a shared std::atomic<double> (a CAS loop), i.e. exactly the
//    cross-core contention the per-worker blocks exist to avoid, plus doubles, which stop being
//    exact above 2^53 bytes (the issue asks for exact counters); or
//  * mirroring the report into a registry at every scrape: Counter can only Increment, so we
//    would keep the previous values to add deltas (or abuse Gauge::Set and lie about the TYPE),
//    and Family::Remove() every label set whose service port disappeared from the snapshot;
//    all to get back text we can print directly from the report.
// It also has no process_* collector (we would write /proc parsing anyway), and it would add a
// runtime library to the image. The format itself is small (HELP/TYPE lines, escaped label
// values, contiguous families), and tests/acceptance/test_observability.py validates our output
// with the reference parser (python3-prometheus-client). So: hand-written, from the report.
#include "proxy/metrics_text.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace npp::proxy {

namespace {

constexpr std::string_view prefix = "nodeport_proxy_";

/// How one NPP_PORT_COUNTERS entry is exposed. Counters without a row here are still exported,
/// as nodeport_proxy_<name>_total with the macro's help text, so a counter added to the list
/// never silently disappears from /metrics.
struct counter_mapping {
  std::string_view counter;      ///< the NPP_PORT_COUNTERS name
  std::string_view family;       ///< metric name without the prefix (ends in _total)
  std::string_view label;        ///< extra label name ("" for none)
  std::string_view label_value;  ///< its value
  std::string_view family_help;  ///< HELP of a family shared by several counters ("" = the macro's)
};

constexpr std::string_view rejected_help =
    "Client connections reset before they were proxied, by reason (limit: --max-connections; "
    "allowlist: source not in allowSourceRanges or --allow-source-ranges; service_limit: the service's "
    "maxConnections; source_limit: the service's maxConnectionsPerSource; no_endpoints: no usable endpoint; "
    "connect_failed: every upstream connect attempt failed).";
constexpr std::string_view bytes_help = "Bytes relayed between clients and endpoints, by direction.";
constexpr std::string_view closed_help = "Proxied connections ended by a timeout or a reset, by reason.";
constexpr std::string_view udp_datagrams_help = "UDP datagrams relayed between clients and endpoints, by direction.";
constexpr std::string_view udp_ended_help =
    "UDP sessions ended, by reason (expired: idle timeout; evicted: made room in a full session table; "
    "reset: an ICMP error or a send error).";
constexpr std::string_view udp_dropped_help =
    "UDP datagrams dropped, by reason (no_endpoints; allowlist: source not in allowSourceRanges or "
    "--allow-source-ranges; session_limit: table full of active sessions; "
    "buffer_full: send buffer full or send error; oversize: larger than the largest UDP datagram).";

constexpr std::string_view tls_errors_help =
    "TLS handshakes with clients that failed, by reason (timeout: --tls-handshake-timeout; closed: the client "
    "went away; protocol: version, ciphers, malformed or not TLS; client_certificate: missing or invalid client "
    "certificate; limit: --tls-max-handshakes in progress, reset before the handshake).";

constexpr counter_mapping counter_table[] = {
    {"tls_handshakes", "tls_handshakes_total", "", "", ""},
    {"tls_handshakes_resumed", "tls_handshakes_resumed_total", "", "", ""},
    {"tls_handshakes_ocsp_stapled", "tls_handshakes_ocsp_stapled_total", "", "", ""},
    {"tls_handshake_errors_timeout", "tls_handshake_errors_total", "reason", "timeout", tls_errors_help},
    {"tls_handshake_errors_closed", "tls_handshake_errors_total", "reason", "closed", tls_errors_help},
    {"tls_handshake_errors_protocol", "tls_handshake_errors_total", "reason", "protocol", tls_errors_help},
    {"tls_handshake_errors_client_certificate", "tls_handshake_errors_total", "reason", "client_certificate", tls_errors_help},
    {"tls_handshake_errors_limit", "tls_handshake_errors_total", "reason", "limit", tls_errors_help},
    {"upstream_tls_handshake_failures", "upstream_tls_handshake_failures_total", "", "", ""},
    {"connections_accepted", "connections_accepted_total", "", "", ""},
    {"connections_rejected_limit", "connections_rejected_total", "reason", "limit", rejected_help},
    {"connections_rejected_allowlist", "connections_rejected_total", "reason", "allowlist", rejected_help},
    {"connections_rejected_service_limit", "connections_rejected_total", "reason", "service_limit", rejected_help},
    {"connections_rejected_source_limit", "connections_rejected_total", "reason", "source_limit", rejected_help},
    {"connections_rejected_no_endpoints", "connections_rejected_total", "reason", "no_endpoints", rejected_help},
    {"connections_connect_failed", "connections_rejected_total", "reason", "connect_failed", rejected_help},
    {"upstream_connect_attempts", "upstream_connect_attempts_total", "", "", ""},
    {"upstream_connect_failures", "upstream_connect_failures_total", "", "", ""},
    {"bytes_client_to_upstream", "bytes_total", "direction", "client_to_upstream", bytes_help},
    {"bytes_upstream_to_client", "bytes_total", "direction", "upstream_to_client", bytes_help},
    {"closed_idle_timeout", "connections_closed_total", "reason", "idle_timeout", closed_help},
    {"closed_half_closed_timeout", "connections_closed_total", "reason", "half_closed_timeout", closed_help},
    {"closed_client_reset", "connections_closed_total", "reason", "client_reset", closed_help},
    {"closed_upstream_reset", "connections_closed_total", "reason", "upstream_reset", closed_help},
    {"udp_datagrams_client_to_upstream", "udp_datagrams_total", "direction", "client_to_upstream", udp_datagrams_help},
    {"udp_datagrams_upstream_to_client", "udp_datagrams_total", "direction", "upstream_to_client", udp_datagrams_help},
    {"udp_sessions_created", "udp_sessions_created_total", "", "", ""},
    {"udp_sessions_expired", "udp_sessions_ended_total", "reason", "expired", udp_ended_help},
    {"udp_sessions_evicted", "udp_sessions_ended_total", "reason", "evicted", udp_ended_help},
    {"udp_sessions_reset", "udp_sessions_ended_total", "reason", "reset", udp_ended_help},
    {"udp_sessions_moved", "udp_sessions_moved_total", "", "", ""},
    {"udp_dropped_no_endpoints", "udp_datagrams_dropped_total", "reason", "no_endpoints", udp_dropped_help},
    {"udp_dropped_allowlist", "udp_datagrams_dropped_total", "reason", "allowlist", udp_dropped_help},
    {"udp_dropped_session_limit", "udp_datagrams_dropped_total", "reason", "session_limit", udp_dropped_help},
    {"udp_dropped_buffer_full", "udp_datagrams_dropped_total", "reason", "buffer_full", udp_dropped_help},
    {"udp_dropped_oversize", "udp_datagrams_dropped_total", "reason", "oversize", udp_dropped_help},
    // Not listed here (a new counter): exported as nodeport_proxy_<name>_total.
};

/// One NPP_PORT_COUNTERS entry with its value for one port.
struct counter_value {
  std::string_view name;
  std::string_view help;
  std::uint64_t value;
};

std::vector<counter_value> counters_of(const port_counters_total& c) {
  std::vector<counter_value> out;
#define NPP_COUNTER_ROW(name, help) out.push_back({#name, help, c.name});
  NPP_PORT_COUNTERS(NPP_COUNTER_ROW)
#undef NPP_COUNTER_ROW
  return out;
}

/// The exported shape of a counter: family name (with prefix), HELP, extra label.
struct counter_shape {
  std::string family;
  std::string help;
  std::string extra_labels;  ///< `reason="limit"` or ""
};

counter_shape shape_of(std::string_view counter, std::string_view macro_help) {
  for (const auto& m : counter_table) {
    if (m.counter != counter) continue;
    counter_shape s{std::string(prefix) + std::string(m.family),
                    std::string(m.family_help.empty() ? macro_help : m.family_help), ""};
    if (!m.label.empty()) s.extra_labels = std::string(m.label) + "=\"" + std::string(m.label_value) + "\"";
    return s;
  }
  return {std::string(prefix) + std::string(counter) + "_total", std::string(macro_help), ""};
}

/// udp_* counters are exported for UDP ports only: on a TCP port they are always 0, and a series
/// per TCP port and UDP counter would only add cardinality. Every other counter is exported for
/// every port.
/// Likewise tls_* only for ports that terminate TLS and upstream_tls_* only with upstreamTLS.
bool exported_for(std::string_view counter, const port_status& port) {
  if (counter.substr(0, 4) == "tls_") return port.tls;
  if (counter.substr(0, 13) == "upstream_tls_") return !port.upstream_tls.empty();
  return port.proto == config::protocol::udp || counter.substr(0, 4) != "udp_";
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
std::string format_value(std::uint64_t v) { return std::to_string(v); }
/// A bucket bound as the reference clients print it ("0.0001", not "1e-04").
std::string format_bound(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}
std::string format_value(std::int64_t v) { return std::to_string(v); }

std::string escape_help(std::string_view v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  if (!out.empty() && out.back() != '.') out += '.';
  return out;
}

/// Metric families in first-declared order; the format wants every family's samples together
/// under one HELP and one TYPE line.
class exposition {
 public:
  void declare(const std::string& name, std::string_view help, std::string_view type) {
    if (index_.count(name)) return;
    index_[name] = families_.size();
    families_.push_back({name, escape_help(help), std::string(type), {}});
  }
  void add(const std::string& name, std::string_view help, std::string_view type, const std::string& labels,
           std::string value) {
    declare(name, help, type);
    auto& f = families_[index_[name]];
    f.samples.push_back(labels.empty() ? name + " " + value : name + "{" + labels + "} " + value);
  }
  /// A histogram's _bucket (cumulative, with le), _sum and _count samples under family `name`.
  void add_histogram(const std::string& name, std::string_view help, const std::string& labels,
                     const histogram_total& h) {
    declare(name, help, "histogram");
    auto& f = families_[index_[name]];
    auto sample = [&](const std::string& suffix, const std::string& extra, const std::string& value) {
      std::string l = labels.empty() ? extra : (extra.empty() ? labels : labels + "," + extra);
      f.samples.push_back(name + suffix + (l.empty() ? "" : "{" + l + "}") + " " + value);
    };
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.bounds_seconds.size(); ++i) {
      cumulative += i < h.counts.size() ? h.counts[i] : 0;
      sample("_bucket", "le=\"" + format_bound(h.bounds_seconds[i]) + "\"", format_value(cumulative));
    }
    sample("_bucket", "le=\"+Inf\"", format_value(h.count()));
    sample("_sum", "", format_value(h.sum_seconds));
    sample("_count", "", format_value(h.count()));
  }
  std::string str() const {
    std::string out;
    for (const auto& f : families_) {
      out += "# HELP " + f.name + " " + f.help + "\n";
      out += "# TYPE " + f.name + " " + f.type + "\n";
      for (const auto& s : f.samples) out += s + "\n";
    }
    return out;
  }

 private:
  struct family {
    std::string name, help, type;
    std::vector<std::string> samples;
  };
  std::vector<family> families_;
  std::unordered_map<std::string, std::size_t> index_;
};

std::string label(std::string_view name, std::string_view value) {
  return std::string(name) + "=\"" + escape_label_value(value) + "\"";
}

/// service, port, protocol, node_port: the identity of a service port. Never a client address.
std::string port_labels(const port_status& p) {
  return label("service", p.service) + "," + label("port", p.port_name) + "," +
         label("protocol", config::to_string(p.proto)) + "," + label("node_port", std::to_string(p.node_port));
}

std::string join_labels(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "," + b;
}

double unix_seconds(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return 0;
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

std::string counter_metric_name(std::string_view counter) {
  auto s = shape_of(counter, "");
  return s.extra_labels.empty() ? s.family : s.family + "{" + s.extra_labels + "}";
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '"') out += "\\\"";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

std::string render_proxy_metrics(const status_report& r) {
  exposition e;
  const std::string p(prefix);

  // Process-wide state first.
  e.add(p + "build_info", "Build information; the value is always 1", "gauge", label("version", r.version), "1");
  e.add(p + "ready", "1 when the first configuration is applied and the proxy is not draining", "gauge", "",
        r.ready ? "1" : "0");
  e.add(p + "draining", "1 while shutting down (listeners closed, connections finishing)", "gauge", "",
        r.draining ? "1" : "0");
  e.add(p + "workers", "Worker threads", "gauge", "", format_value(std::uint64_t{r.workers}));
  e.add(p + "max_connections", "Process-wide cap on proxied client connections", "gauge", "",
        format_value(std::uint64_t{r.max_connections}));
  e.add(p + "process_connections_active",
        "Proxied client connections open right now, all ports (compare with nodeport_proxy_max_connections)",
        "gauge", "", format_value(r.connections_active));
  e.add(p + "config_generation", "Configurations applied successfully since start", "gauge", "",
        format_value(r.generation));
  e.add(p + "config_last_applied_timestamp_seconds",
        "Unix time of the last successfully applied configuration (0 if none)", "gauge", "",
        format_value(unix_seconds(r.last_applied)));
  e.add(p + "config_last_reload_successful", "1 if the last reload attempt succeeded (or none was made), else 0",
        "gauge", "", r.last_reload_ok ? "1" : "0");
  // A reload that produced nothing (reload callback returned no snapshot) counts as neither.
  std::uint64_t failures = r.reload_failures_total;
  std::uint64_t successes = r.reloads_total > failures ? r.reloads_total - failures : 0;
  constexpr std::string_view reloads_help = "Reload attempts (SIGHUP, file changes), by result";
  e.add(p + "config_reloads_total", reloads_help, "counter", label("result", "success"), format_value(successes));
  e.add(p + "config_reloads_total", reloads_help, "counter", label("result", "failure"), format_value(failures));
  e.add_histogram(p + "sync_duration_seconds",
                  "Time to apply a configuration to every worker (listeners and endpoints), like kube-proxy's "
                  "sync_proxy_rules_duration_seconds",
                  "", [&] {
                    histogram_total h = r.sync_duration;
                    h.init(sync_duration_bounds);
                    return h;
                  }());

  e.add(p + "tls_context_failures_total",
        "TLS contexts that could not be built from their files when applying a configuration (the previous "
        "certificate is kept; a broken pair caught by validation counts as a config reload failure instead)",
        "counter", "", format_value(r.tls_context_failures_total));

  // Per service port. Declare every family first so HELP/TYPE appear even with no ports.
  constexpr std::string_view active_help = "Proxied client connections open right now";
  constexpr std::string_view endpoints_help =
      "Endpoints of the service port by condition (an endpoint counts once for each condition it has; "
      "in_use: selected for new connections; failing: its last connect attempt failed)";
  constexpr std::string_view listening_help = "1 if the nodePort is bound and accepting";
  constexpr std::string_view bind_error_help = "1 if the nodePort could not be bound (see /status for the error)";
  port_counters_total zero;
  for (const auto& c : counters_of(zero)) {
    auto s = shape_of(c.name, c.help);
    e.declare(s.family, s.help, "counter");
  }
  e.declare(p + "connections_active", active_help, "gauge");
  e.declare(p + "endpoints", endpoints_help, "gauge");
  e.declare(p + "port_listening", listening_help, "gauge");
  e.declare(p + "port_bind_error", bind_error_help, "gauge");
  constexpr std::string_view connect_help =
      "Time from the start of an upstream connect attempt to the connection being established, for attempts "
      "that succeeded (failures: nodeport_proxy_upstream_connect_failures_total)";
  e.declare(p + "upstream_connect_duration_seconds", connect_help, "histogram");

  for (const auto& port : r.ports) {
    const std::string labels = port_labels(port);
    for (const auto& c : counters_of(port.counters)) {
      if (!exported_for(c.name, port)) continue;
      auto s = shape_of(c.name, c.help);
      e.add(s.family, s.help, "counter", join_labels(labels, s.extra_labels), format_value(c.value));
    }
    e.add(p + "connections_active", active_help, "gauge", labels, format_value(port.counters.connections_active));
    std::uint64_t ready = 0, serving = 0, terminating = 0, in_use = 0, failing = 0;
    for (const auto& ep : port.endpoints) {
      ready += ep.ready;
      serving += ep.serving;
      terminating += ep.terminating;
      in_use += ep.in_use;
      failing += ep.failing;
    }
    for (auto [state, n] : {std::pair<const char*, std::uint64_t>{"ready", ready},
                            {"serving", serving},
                            {"terminating", terminating},
                            {"in_use", in_use},
                            {"failing", failing}})
      e.add(p + "endpoints", endpoints_help, "gauge", join_labels(labels, label("state", state)), format_value(n));
    e.add(p + "port_listening", listening_help, "gauge", labels, port.listening ? "1" : "0");
    e.add(p + "port_bind_error", bind_error_help, "gauge", labels, port.bind_error.empty() ? "0" : "1");
    if (port.proto == config::protocol::tcp) {
      histogram_total h = port.counters.connect_duration;
      h.init(connect_duration_bounds);  // a port with no connect yet still shows its empty buckets
      e.add_histogram(p + "upstream_connect_duration_seconds", connect_help, labels, h);
    }
  }
  return e.str();
}

std::string render_process_metrics() {
  exposition e;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  const long page = ::sysconf(_SC_PAGESIZE);
  {
    // /proc/self/stat: the command name (field 2) may contain spaces and ')', so split after
    // the last ')'. Then field 3 is the first token: utime 14, stime 15, starttime 22,
    // vsize 23 (bytes), rss 24 (pages).
    std::ifstream in("/proc/self/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = all.rfind(')');
    if (close != std::string::npos && ticks > 0) {
      std::istringstream fields(all.substr(close + 1));
      std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
      auto field = [&](int n) -> double {
        std::size_t i = static_cast<std::size_t>(n - 3);
        return i < f.size() ? std::strtod(f[i].c_str(), nullptr) : 0.0;
      };
      e.add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds", "counter", "",
            format_value((field(14) + field(15)) / static_cast<double>(ticks)));
      e.add("process_virtual_memory_bytes", "Virtual memory size in bytes", "gauge", "",
            format_value(static_cast<std::uint64_t>(field(23))));
      e.add("process_resident_memory_bytes", "Resident memory size in bytes", "gauge", "",
            format_value(static_cast<std::uint64_t>(field(24)) * static_cast<std::uint64_t>(page)));
      // starttime is in clock ticks after boot; /proc/stat's btime is the boot time.
      std::ifstream st("/proc/stat");
      std::string line;
      double btime = 0;
      while (std::getline(st, line))
        if (line.rfind("btime ", 0) == 0) btime = std::strtod(line.c_str() + 6, nullptr);
      if (btime > 0)
        e.add("process_start_time_seconds", "Start time of the process since unix epoch in seconds", "gauge", "",
              format_value(btime + field(22) / static_cast<double>(ticks)));
    }
  }
  {
    std::error_code ec;
    std::uint64_t fds = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
    if (!ec) e.add("process_open_fds", "Number of open file descriptors", "gauge", "", format_value(fds));
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
      e.add("process_max_fds", "Maximum number of open file descriptors", "gauge", "",
            rl.rlim_cur == RLIM_INFINITY ? "+Inf" : format_value(static_cast<std::uint64_t>(rl.rlim_cur)));
  }
  return e.str();
}

std::string render_metrics(const status_report& report) { return render_proxy_metrics(report) + render_process_metrics(); }

}  // namespace npp::proxy
