// nodeport-proxy: a userspace Kubernetes NodePort proxy.
// main() is the only place that reads flags or the environment; it wires the config sources to
// the data plane (proxy::server) and maps every failure to an exit code: 0 ok, 1 error or
// invalid input, 2 usage.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <iostream>
#include <thread>

#include "config/duration.hpp"
#include "config/kube_api_config.hpp"
#include "config/load.hpp"
#include "proxy/check.hpp"
#include "proxy/demo.hpp"
#include "proxy/kube_api.hpp"
#include "proxy/logging.hpp"
#include "proxy/server.hpp"

namespace {

using namespace npp;

/// Exit codes (documented in the README).
constexpr int exit_ok = 0;
constexpr int exit_error = 1;
constexpr int exit_usage = 2;

/// A CLI11 validator for durations such as 250ms, 5s, 1h30m.
struct duration_validator : CLI::Validator {
  duration_validator() {
    name_ = "DURATION";
    func_ = [](std::string& s) -> std::string {
      return config::parse_duration(s) ? std::string() : "not a duration (examples: 250ms, 5s, 2m, 1h): " + s;
    };
  }
};

std::chrono::milliseconds duration_of(const std::string& s) { return *config::parse_duration(s); }

/// Flags shared by run and demo.
struct run_flags {
  std::vector<std::string> endpoints_files;
  std::vector<std::string> forwards;
  unsigned workers = 0;
  std::string nodeport_addresses;
  std::string allow_source_ranges;
  std::string node_port_range;
  std::string connect_timeout = "5s";
  unsigned connect_attempts = 3;
  std::string idle_timeout = "1h";
  std::string half_closed_timeout = "60s";
  std::size_t max_connections = 0;
  std::size_t buffer_size = 32 * 1024;
  std::string shutdown_grace_period = "30s";
  std::string hostname_override;
  std::string udp_idle_timeout = "60s";
  std::size_t udp_max_sessions = 0;
  bool splice = true;
  std::size_t splice_pipe_size = 512 * 1024;
  std::string tls_handshake_timeout = "10s";
  std::size_t tls_max_handshakes = 1024;
  std::string healthz_bind_address = "0.0.0.0:10356";
  std::string metrics_bind_address = "127.0.0.1:10349";
  std::string access_log;
  std::string access_log_format = "text";
  // Kubernetes API mode (--kubeconfig or --in-cluster).
  std::string kubeconfig;
  std::string context;
  bool in_cluster = false;
  std::string min_sync_period = "1s";
};

/// The API flags, shared by run and check.
void add_api_flags(CLI::App& cmd, run_flags& f) {
  cmd.add_option("--kubeconfig", f.kubeconfig,
                 "Watch Services and EndpointSlices from the Kubernetes API server this kubeconfig names")
      ->check(CLI::ExistingFile);
  cmd.add_option("--context", f.context, "kubeconfig context to use (default: its current-context)");
  cmd.add_flag("--in-cluster", f.in_cluster,
               "Watch the Kubernetes API with the pod's service account (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt)");
}

bool api_mode(const run_flags& f) { return !f.kubeconfig.empty() || f.in_cluster; }

/// Where the API server is and how to log in; throws std::runtime_error with a clear message.
config::api_server_config api_server(const run_flags& f) {
  if (!f.kubeconfig.empty()) return config::load_kubeconfig(f.kubeconfig, f.context);
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  return config::in_cluster_config(host ? host : "", port ? port : "");
}

void add_run_flags(CLI::App& cmd, run_flags& f) {
  static const duration_validator is_duration;
  cmd.add_option("--endpoints-file", f.endpoints_files,
                 "Endpoint file: native JSON, or Kubernetes Service/EndpointSlice objects (JSON or YAML, kubectl "
                 "List output); repeatable, files are merged; re-read on SIGHUP and when they change")
      ->check(CLI::ExistingFile);
  cmd.add_option("--forward", f.forwards,
                 "Ad-hoc forwarding without a file: [tcp:|udp:]LISTEN=HOST:PORT[,HOST:PORT...] (repeatable; no prefix: TCP and UDP)");
  cmd.add_option("--workers", f.workers, "Worker threads (default: one per core)")->check(CLI::Range(1, 256));
  cmd.add_option("--nodeport-addresses", f.nodeport_addresses,
                 "CIDRs of local addresses to bind nodePorts on, comma-separated (default: all, IPv4 and IPv6)");
  cmd.add_option("--allow-source-ranges", f.allow_source_ranges,
                 "CIDRs of client sources allowed on every nodePort, comma-separated, in addition to each Service's "
                 "allowSourceRanges (a client must pass both); others are reset (TCP) or dropped (UDP). Default: all");
  cmd.add_option("--service-node-port-range", f.node_port_range,
                 "Range of valid nodePorts, N1-N2 (default: the file's nodePortRange, else 30000-32767)");
  cmd.add_option("--connect-timeout", f.connect_timeout, "Timeout of one upstream connect attempt")
      ->check(is_duration)->capture_default_str();
  cmd.add_option("--connect-attempts", f.connect_attempts, "Connect attempts over distinct endpoints")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd.add_option("--idle-timeout", f.idle_timeout, "Close a connection after this long without traffic")
      ->check(is_duration)->capture_default_str();
  cmd.add_option("--half-closed-timeout", f.half_closed_timeout,
                 "Close a half-closed connection (one side sent FIN) after this long without traffic")
      ->check(is_duration)->capture_default_str();
  cmd.add_option("--max-connections", f.max_connections,
                 "Process-wide limit on proxied connections; over it clients are reset (default: from RLIMIT_NOFILE)");
  cmd.add_option("--buffer-size", f.buffer_size, "Bytes buffered per direction while data moves")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{16} << 20))->capture_default_str();
  cmd.add_option("--shutdown-grace-period", f.shutdown_grace_period,
                 "After SIGTERM, how long open connections may finish")
      ->check(is_duration)->capture_default_str();
  cmd.add_option("--udp-idle-timeout", f.udp_idle_timeout,
                 "End a UDP session after this long without a datagram either way")
      ->check(is_duration)->capture_default_str();
  cmd.add_option("--udp-max-sessions", f.udp_max_sessions,
                 "Cap on UDP sessions; when full, a new client replaces a session idle for 1s, else its datagram "
                 "is dropped (default: from RLIMIT_NOFILE)");
  cmd.add_option("--splice", f.splice,
                 "Relay bulk plain TCP (a direction that fills a whole buffer) with splice(2), without copying bytes to user space (true|false)")
      ->capture_default_str();
  cmd.add_option("--splice-pipe-size", f.splice_pipe_size,
                 "Capacity of each splice pipe in bytes (a bigger pipe moves bulk with fewer system calls; the "
                 "kernel caps it at /proc/sys/fs/pipe-max-size for unprivileged users; 0: the kernel's 64 KiB)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{64} << 20))->capture_default_str();
  cmd.add_option("--tls-handshake-timeout", f.tls_handshake_timeout,
                 "Close a TLS client that has not completed its handshake after this long")
      ->check(is_duration)->capture_default_str();
  cmd.add_option("--tls-max-handshakes", f.tls_max_handshakes,
                 "Cap on TLS handshakes in progress, all ports and workers together; over it new TLS clients are "
                 "reset (bounds the CPU a handshake flood or slow clients can take)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))->capture_default_str();
  cmd.add_option("--healthz-bind-address", f.healthz_bind_address,
                 "Address of /livez, /readyz, /healthz (empty: off; kube-proxy uses 10256)")
      ->capture_default_str();
  cmd.add_option("--metrics-bind-address", f.metrics_bind_address,
                 "Address of /metrics, /status, /status.json (empty: off; kube-proxy uses 10249)")
      ->capture_default_str();
  cmd.add_option("--hostname-override", f.hostname_override,
                 "This node's name (externalTrafficPolicy: Local); default: $NODE_NAME, else the host name");
  cmd.add_option("--access-log", f.access_log,
                 "One line per connection and UDP session: a file (appended, reopened on SIGHUP), - for stdout, "
                 "or stderr (default: off)");
  cmd.add_option("--access-log-format", f.access_log_format, "text (key=value) or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  add_api_flags(cmd, f);
  cmd.add_option("--min-sync-period", f.min_sync_period,
                 "API mode: apply changes at most this often; changes in between are coalesced")
      ->check(is_duration)->capture_default_str();
}

/// A comma-separated CIDR list flag, each item read by `parse`; empty items are skipped. Throws
/// std::invalid_argument naming the flag and the item.
template <class Parse>
std::vector<config::cidr> cidr_list(const std::string& flag, const std::string& list, Parse parse) {
  std::vector<config::cidr> out;
  std::size_t start = 0;
  while (start <= list.size() && !list.empty()) {
    auto comma = list.find(',', start);
    auto item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      std::string why;
      auto c = parse(item, &why);
      if (!c) throw std::invalid_argument(flag + ": " + item + ": " + why);
      out.push_back(*c);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// Turns flags into data-plane settings; throws std::invalid_argument with a message for the user.
proxy::settings to_settings(const run_flags& f) {
  proxy::settings s;
  s.workers = f.workers;
  s.nodeport_addresses = cidr_list("--nodeport-addresses", f.nodeport_addresses,
                                   [](std::string_view t, std::string* why) { return config::cidr::parse(t, why); });
  s.allowed_sources = proxy::allowlist(cidr_list("--allow-source-ranges", f.allow_source_ranges,
                                                 [](std::string_view t, std::string* why) { return config::parse_source_range(t, why); }));
  s.connect_timeout = duration_of(f.connect_timeout);
  s.connect_attempts = f.connect_attempts;
  s.idle_timeout = duration_of(f.idle_timeout);
  s.half_closed_timeout = duration_of(f.half_closed_timeout);
  s.max_connections = f.max_connections;
  s.buffer_size = f.buffer_size;
  s.shutdown_grace_period = duration_of(f.shutdown_grace_period);
  s.udp_idle_timeout = duration_of(f.udp_idle_timeout);
  if (s.udp_idle_timeout.count() <= 0) throw std::invalid_argument("--udp-idle-timeout must be greater than 0");
  s.udp_max_sessions = f.udp_max_sessions;
  s.splice = f.splice;
  s.splice_pipe_size = f.splice_pipe_size;
  s.tls_handshake_timeout = duration_of(f.tls_handshake_timeout);
  if (s.tls_handshake_timeout.count() <= 0) throw std::invalid_argument("--tls-handshake-timeout must be greater than 0");
  s.tls_max_handshakes = f.tls_max_handshakes;
  s.healthz_bind_address = f.healthz_bind_address;
  s.metrics_bind_address = f.metrics_bind_address;
  s.access_log = f.access_log;
  s.access_log_format = f.access_log_format;
  return s;
}

std::string node_name(const run_flags& f) {
  if (!f.hostname_override.empty()) return f.hostname_override;
  if (const char* env = std::getenv("NODE_NAME"); env && *env) return env;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) return host;
  return "";
}

config::load_options load_opts(const run_flags& f) {
  config::load_options o;
  if (!f.node_port_range.empty()) {
    config::port_range r;
    std::string why;
    if (!config::port_range::parse(f.node_port_range, r, &why))
      throw std::invalid_argument("--service-node-port-range: " + why);
    o.range_override = r;
  }
  return o;
}

void log_problems(const config::config_error& e) {
  spdlog::error("{}: {} problem(s)", e.source(), e.problems().size());
  for (const auto& p : e.problems()) spdlog::error("{}: {}", e.source(), p.str());
}

/// Loads everything `run` serves: the endpoint files and/or --forward entries, validated together.
config::snapshot load_all(const run_flags& f, const config::load_options& opts) {
  config::snapshot snap;
  std::vector<std::filesystem::path> paths(f.endpoints_files.begin(), f.endpoints_files.end());
  if (!paths.empty()) snap = config::load_files(paths, opts);
  if (!f.forwards.empty()) {
    for (const auto& spec : f.forwards) snap.services.push_back(config::parse_forward(spec));
    snap.source = paths.empty() ? "--forward" : snap.source + " + --forward";
    config::validate_and_allocate(snap);
  }
  for (const auto& note : snap.notes) spdlog::debug("{}: {}", snap.source, note);
  return snap;
}

/// The inputs' bytes, to notice a change between the first load and the file watch. Read
/// before loading: a change after this read is then seen as a difference, never missed.
std::string fingerprint(const std::vector<std::string>& files) {
  std::string out;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out += std::to_string(bytes.size()) + ":" + std::to_string(std::hash<std::string>{}(bytes)) + ";";
  }
  return out;
}

/// API options from the flags: API mode trusts the API server's nodePort allocation, so the range
/// check is off (1-65535) unless --service-node-port-range asks for one.
proxy::api_options api_opts(const run_flags& f, const config::load_options& load) {
  proxy::api_options o;
  o.server = api_server(f);
  o.load = load;
  if (!o.load.range_override) o.load.range_override = config::port_range{1, 65535};
  o.min_sync_period = duration_of(f.min_sync_period);
  return o;
}

/// `run` in API mode: nothing is served until the first full list of Services and EndpointSlices
/// has been applied (/readyz says 503 until then); afterwards every change arrives through
/// server::submit(), coalesced by the source.
int cmd_run_api(const run_flags& f, const proxy::settings& s, const config::load_options& opts) {
  proxy::api_options ao;
  try {
    ao = api_opts(f, opts);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return exit_error;
  }
  try {
    const std::string node = node_name(f);
    proxy::server srv(s, node);
    spdlog::info("node name {} (endpoints of externalTrafficPolicy: Local Services must carry this nodeName)",
                 node.empty() ? "(none)" : node);
    proxy::api_source source(ao, [&srv](std::function<config::snapshot_ptr()> produce) { srv.submit(std::move(produce)); });
    source.start();
    auto reload = []() -> config::snapshot_ptr {
      spdlog::info("SIGHUP: in API mode the watch keeps the configuration current; nothing to re-read");
      return nullptr;
    };
    const int rc = srv.run(reload);
    source.stop();
    return rc;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return exit_error;
  }
}

int cmd_run(const run_flags& f) {
  if (api_mode(f) && (!f.endpoints_files.empty() || !f.forwards.empty())) {
    std::cerr << "run: --kubeconfig/--in-cluster cannot be combined with --endpoints-file or --forward\n";
    return exit_usage;
  }
  if (!api_mode(f) && f.endpoints_files.empty() && f.forwards.empty()) {
    std::cerr << "run: give --endpoints-file FILE, at least one --forward, or --kubeconfig FILE / --in-cluster\n";
    return exit_usage;
  }
  proxy::settings s;
  config::load_options opts;
  try {
    s = to_settings(f);
    opts = load_opts(f);
  } catch (const std::invalid_argument& e) {
    std::cerr << e.what() << "\n";
    return exit_usage;
  }
  // Until the control loop handles SIGHUP, a reload request must not kill the process (the
  // default action); a change it announced is caught by the fingerprint check below.
  std::signal(SIGHUP, SIG_IGN);
  if (api_mode(f)) return cmd_run_api(f, s, opts);
  std::string loaded_fingerprint = fingerprint(f.endpoints_files);  // of the inputs last loaded
  config::snapshot first;
  try {
    first = load_all(f, opts);
  } catch (const config::config_error& e) {
    log_problems(e);
    return exit_error;
  }
  // The TLS files are read by the first apply, before the file watch exists: a file replaced in
  // between would go unnoticed until the next change. Their bytes are noted before the apply and
  // compared once the watch is up, like the endpoint files'.
  const std::vector<std::string> tls_inputs = config::tls_files(first);
  const std::string tls_fingerprint = fingerprint(tls_inputs);
  try {
    proxy::server srv(s, node_name(f));
    auto r = srv.apply(first);
    if (!r.errors.empty()) {
      spdlog::error("could not bind {} port(s); exiting", r.errors.size());
      return exit_error;
    }
    std::vector<std::filesystem::path> watch(f.endpoints_files.begin(), f.endpoints_files.end());
    // Certificates, keys, CAs and CRLs too: replacing one (an atomic rename, a Secret volume
    // update) reloads, and a context whose files changed is rebuilt. Files added by a later
    // reload are watched from the next restart; SIGHUP reloads them meanwhile.
    for (const auto& f : config::tls_files(first)) watch.emplace_back(f);
    auto reload = [&] {
      auto fp = fingerprint(f.endpoints_files);  // before reading: a later change is never missed
      auto snap = std::make_shared<const config::snapshot>(load_all(f, opts));
      loaded_fingerprint = std::move(fp);
      return snap;
    };
    return srv.run(reload, watch, [&] {
      return fingerprint(f.endpoints_files) != loaded_fingerprint || fingerprint(tls_inputs) != tls_fingerprint;
    });
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return exit_error;
  }
}

int cmd_validate(const std::vector<std::string>& files, const std::string& range) {
  config::load_options opts;
  if (!range.empty()) {
    config::port_range r;
    std::string why;
    if (!config::port_range::parse(range, r, &why)) {
      std::cerr << "--service-node-port-range: " << why << "\n";
      return exit_usage;
    }
    opts.range_override = r;
  }
  std::vector<std::filesystem::path> paths(files.begin(), files.end());
  std::string file = files.size() == 1 ? files[0] : "input";
  try {
    auto snap = config::load_files(paths, opts);
    file = snap.source;
    std::size_t ports = 0;
    for (auto& svc : snap.services) ports += svc.ports.size();
    std::cout << file << ": OK (" << snap.services.size() << " services, " << ports << " ports)\n";
    for (auto& note : snap.notes) std::cout << "  note: " << note << "\n";
    for (auto& svc : snap.services)
      for (auto& p : svc.ports)
        if (p.node_port_allocated)
          std::cout << "  " << svc.id() << " port " << (p.name.empty() ? std::to_string(p.port) : p.name) << "/"
                    << config::to_string(p.proto) << ": allocated nodePort " << p.node_port << "\n";
    return exit_ok;
  } catch (const config::config_error& e) {
    std::cout << file << ": " << e.problems().size() << " problem(s)\n";
    for (const auto& p : e.problems()) std::cout << file << ": " << p.str() << "\n";
    return exit_error;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nodeport-proxy: a userspace Kubernetes NodePort proxy (TCP and UDP)",
               "nodeport-proxy"};
  app.require_subcommand(1);
  std::string log_level = "info", log_format = "text";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  app.fallthrough();

  run_flags rf;
  auto* run = app.add_subcommand("run", "Serve nodePorts from an endpoint file or --forward entries");
  add_run_flags(*run, rf);

  std::vector<std::string> validate_files;
  std::string validate_range;
  auto* validate = app.add_subcommand("validate", "Check endpoint files (validated together) and print every problem");
  validate->add_option("files", validate_files, "Endpoint files (native JSON, Kubernetes JSON/YAML)")->required();
  validate->add_option("--service-node-port-range", validate_range, "Range of valid nodePorts, N1-N2");

  bool version_json = false;
  auto* version = app.add_subcommand("version", "Print the version");
  version->add_flag("--json", version_json, "As JSON");

  run_flags cf;
  proxy::check_options check_opts;
  std::vector<std::string> check_nodes;
  std::string check_timeout = "2s", check_output = "text";
  auto* check = app.add_subcommand("check", "Probe every nodePort and endpoint and diagnose what is unreachable");
  check->add_option("--endpoints-file", cf.endpoints_files, "Endpoint files, as for run")->check(CLI::ExistingFile);
  check->add_option("--forward", cf.forwards, "Ad-hoc services, as for run");
  check->add_option("--service-node-port-range", cf.node_port_range, "Range of valid nodePorts, N1-N2");
  check->add_option("--hostname-override", cf.hostname_override, "This node's name (externalTrafficPolicy: Local)");
  add_api_flags(*check, cf);
  check->add_option("--node", check_nodes, "Node address to probe nodePorts on (repeatable; default 127.0.0.1)");
  static const duration_validator check_duration;
  check->add_option("--timeout", check_timeout, "Connect timeout per probe")->check(check_duration)->capture_default_str();
  check->add_option("--output", check_output, "text|json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();

  run_flags df;
  proxy::demo_options demo_opts;
  auto* demo = app.add_subcommand("demo", "Start three HTTP backends and the proxy on loopback and show round-robin");
  add_run_flags(*demo, df);
  demo->add_option("--requests", demo_opts.requests, "Requests the demo sends through the nodePort")->capture_default_str();
  demo->add_flag("--exit", demo_opts.exit_after, "Exit after the demo requests instead of serving until Ctrl-C");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return exit_usage;  // CLI11 would exit 100+; we promise 2 for usage errors
  }

  try {
    proxy::setup_logging(log_level, log_format);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return exit_usage;
  }

  if (*version) {
    if (version_json)
      std::cout << R"({"version":")" << NPP_VERSION << R"("})" << "\n";
    else
      std::cout << "nodeport-proxy " << NPP_VERSION << "\n";
    return exit_ok;
  }
  if (*validate) return cmd_validate(validate_files, validate_range);
  if (*run) return cmd_run(rf);
  if (*check) {
    if (api_mode(cf) && (!cf.endpoints_files.empty() || !cf.forwards.empty())) {
      std::cerr << "check: --kubeconfig/--in-cluster cannot be combined with --endpoints-file or --forward\n";
      return exit_usage;
    }
    if (!api_mode(cf) && cf.endpoints_files.empty() && cf.forwards.empty()) {
      std::cerr << "check: give --endpoints-file FILE, at least one --forward, or --kubeconfig FILE / --in-cluster\n";
      return exit_usage;
    }
    try {
      auto opts = load_opts(cf);
      config::snapshot snap;
      if (api_mode(cf)) {
        // One list of Services, EndpointSlices and (unless --node is given) Nodes, whose
        // InternalIP/ExternalIP addresses become the addresses nodePorts are probed on.
        try {
          auto ao = api_opts(cf, opts);
          auto listing = proxy::list_once(ao, check_nodes.empty());
          for (const auto& p : listing.problems) spdlog::error("{}; left out", p);
          snap = std::move(listing.snap);
          snap.range = opts.range_override.value_or(config::port_range{1, 65535});  // the API server allocated them
          if (check_nodes.empty()) check_nodes = listing.node_addresses;
        } catch (const config::config_error&) {
          throw;
        } catch (const std::exception& e) {
          spdlog::error("{}", e.what());
          return exit_error;
        }
      } else {
        try {
          snap = load_all(cf, opts);
        } catch (const config::config_error&) {
          // Perhaps only nodePorts outside the range: load with the widest range so check can
          // diagnose each port instead of refusing the whole input (other problems throw again).
          auto wide = opts;
          wide.range_override = config::port_range{1, 65535};
          snap = load_all(cf, wide);
          snap.range = opts.range_override.value_or(config::port_range{});
        }
      }
      if (!check_nodes.empty()) check_opts.node_addresses = check_nodes;
      check_opts.timeout = duration_of(check_timeout);
      check_opts.json = check_output == "json";
      check_opts.node_name = cf.hostname_override.empty() ? std::string() : cf.hostname_override;
      return proxy::run_check(snap, check_opts, std::cout);
    } catch (const config::config_error& e) {
      log_problems(e);
      return exit_error;
    } catch (const std::invalid_argument& e) {
      std::cerr << e.what() << "\n";
      return exit_usage;
    }
  }
  if (*demo) {
    try {
      if (df.nodeport_addresses.empty()) df.nodeport_addresses = "127.0.0.0/8";
      if (df.healthz_bind_address == "0.0.0.0:10356") df.healthz_bind_address = "127.0.0.1:10356";  // loopback only
      if (df.endpoints_files.empty() && df.forwards.empty()) df.endpoints_files.push_back(proxy::default_demo_file());
      auto s = to_settings(df);
      auto opts = load_opts(df);
      config::snapshot snap = load_all(df, opts);
      return proxy::run_demo(snap, s, node_name(df), demo_opts);
    } catch (const config::config_error& e) {
      log_problems(e);
      return exit_error;
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return exit_error;
    }
  }
  return exit_usage;
}
