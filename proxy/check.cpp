// `nodeport-proxy check`. Probes are non-blocking connect()s driven by one poll() loop with at
// most `concurrency` in flight, so N targets take about one timeout, not N timeouts.
// Diagnoses follow the NodePort troubleshooting checklist, in its order: nodePort in range,
// endpoints exist and are ready, something listens on the nodePort, the endpoints' target port
// is open, refused vs timed out (a refusal means nothing listens; silence means a firewall
// drops packets), and (later) source allowlists.
#include "proxy/check.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace npp::proxy {

namespace {

/// RESET: the handshake completed and the peer reset at once (the proxy accepted, then had no
/// endpoint it could reach, or was over --max-connections). Something listens, so it counts as
/// reachable; a diagnosis is added only when the endpoints do not explain it.
enum class outcome { not_probed, open, reset, closed, timeout, unreachable, error };

std::string_view name_of(outcome o) {
  switch (o) {
    case outcome::open: return "OPEN";
    case outcome::reset: return "RESET";
    case outcome::closed: return "CLOSED";
    case outcome::timeout: return "TIMEOUT";
    case outcome::unreachable: return "UNREACHABLE";
    case outcome::error: return "ERROR";
    case outcome::not_probed: break;
  }
  return "n/a";
}

/// One TCP connect to make.
struct probe {
  std::string kind;  ///< "node_port" or "endpoint"
  config::host_port target;
  bool counted = true;  ///< a failure is a problem (false for endpoints that are not in use)
  const config::endpoint* ep = nullptr;  ///< for endpoint probes
  outcome result = outcome::not_probed;
  double latency_ms = 0;
  std::string error;  ///< strerror of a failed connect
  std::optional<config::ip_address> source;  ///< local address the connect used
};

struct diagnosis {
  std::string code;     ///< stable identifier (see the JSON output)
  std::string message;  ///< what is wrong and what to look at
};

/// One service port and everything found about it.
struct port_check {
  const config::service* svc;
  const config::service_port* port;
  bool in_range = true;
  std::size_t total = 0, ready = 0, usable = 0;
  std::vector<probe> probes;
  std::vector<diagnosis> diagnoses;
  std::string id() const { return svc->id() + ":" + (port->name.empty() ? std::to_string(port->port) : port->name); }
};

socklen_t to_sockaddr(const config::host_port& hp, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof ss);
  if (hp.ip.v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(hp.port);
    std::memcpy(&a->sin6_addr, hp.ip.bytes.data(), 16);
    return sizeof(sockaddr_in6);
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(hp.port);
  std::memcpy(&a->sin_addr, hp.ip.bytes.data(), 4);
  return sizeof(sockaddr_in);
}

std::optional<config::ip_address> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  config::ip_address ip;
  if (ss.ss_family == AF_INET6) {
    ip.v6 = true;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, 16);
  } else if (ss.ss_family == AF_INET) {
    std::memcpy(ip.bytes.data(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, 4);
  } else {
    return std::nullopt;
  }
  return ip;
}

void classify(probe& p, int err) {
  if (err == 0) {
    p.result = outcome::open;
    return;
  }
  p.error = std::strerror(err);
  if (err == ECONNREFUSED) p.result = outcome::closed;
  else if (err == ECONNRESET) p.result = outcome::reset;
  else if (err == ETIMEDOUT) p.result = outcome::timeout;
  else if (err == ENETUNREACH || err == EHOSTUNREACH || err == EACCES || err == EPERM) p.result = outcome::unreachable;
  else p.result = outcome::error;
}

/// Runs every probe: non-blocking connects, one poll loop, at most `concurrency` in flight.
void run_probes(std::vector<probe*>& todo, std::chrono::milliseconds timeout, unsigned concurrency) {
  using clock = std::chrono::steady_clock;
  struct in_flight {
    int fd;
    probe* p;
    clock::time_point start;
  };
  std::vector<in_flight> active;
  std::size_t next = 0;
  auto finish = [](in_flight& f, int err) {
    f.p->latency_ms = std::chrono::duration<double, std::milli>(clock::now() - f.start).count();
    f.p->source = local_address(f.fd);
    classify(*f.p, err);
    ::close(f.fd);
    f.fd = -1;
  };
  concurrency = std::max(1u, concurrency);
  while (next < todo.size() || !active.empty()) {
    while (next < todo.size() && active.size() < concurrency) {
      probe* p = todo[next++];
      sockaddr_storage ss;
      socklen_t len = to_sockaddr(p->target, ss);
      int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        classify(*p, errno);
        p->result = outcome::error;
        continue;
      }
      in_flight f{fd, p, clock::now()};
      if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) finish(f, 0);
      else if (errno == EINPROGRESS) active.push_back(f);
      else finish(f, errno);
    }
    if (active.empty()) continue;
    std::vector<pollfd> fds;
    auto now = clock::now();
    auto wait = timeout;
    for (auto& f : active) {
      fds.push_back({f.fd, POLLOUT, 0});
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(f.start + timeout - now));
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(wait.count(), 0)) + 1);
    if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    now = clock::now();
    for (std::size_t i = 0; i < active.size(); ++i) {
      auto& f = active[i];
      if (n > 0 && fds[i].revents) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(f.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        finish(f, err);
      } else if (now - f.start >= timeout) {
        finish(f, ETIMEDOUT);
        f.p->error.clear();
      }
    }
    std::erase_if(active, [](const in_flight& f) { return f.fd < 0; });
  }
}

config::ip_address parse_node(const std::string& text) {
  std::string_view v = text;
  if (v.size() >= 2 && v.front() == '[' && v.back() == ']') v = v.substr(1, v.size() - 2);
  auto ip = config::ip_address::parse(v);
  if (!ip) throw std::invalid_argument("--node '" + text + "' is not an IP address literal (e.g. 10.0.0.1 or ::1)");
  return *ip;
}

bool counts_on_this_node(const config::service& svc, const config::endpoint& ep, const check_options& opts) {
  return svc.external_traffic_policy != config::traffic_policy::local || opts.node_name.empty() ||
         ep.node_name == opts.node_name;
}

std::string ms(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(v < 10 ? 2 : 1) << v << " ms";
  return s.str();
}

/// Fills in the diagnoses of one port once its probes have run.
void diagnose(port_check& pc, const config::snapshot& snap, const check_options& opts) {
  const auto& port = *pc.port;
  const std::string np = std::to_string(port.node_port);
  const std::string t = std::to_string(opts.timeout.count()) + " ms";
  auto add = [&](std::string code, std::string msg) { pc.diagnoses.push_back({std::move(code), std::move(msg)}); };
  if (!pc.in_range)
    add("out_of_range", "nodePort " + np + " is outside the nodePort range " + snap.range.str() +
                            ": the API server would reject it (--service-node-port-range) and the proxy does not serve it");
  if (pc.total == 0)
    add("no_endpoints", "the service port has no endpoints: the Service's selector matches no running pod, or the "
                        "pods do not expose this port (kubectl get endpointslices -l kubernetes.io/service-name=" +
                            pc.svc->name + " -n " + pc.svc->ns + ")");
  else if (pc.usable == 0)
    add("no_ready_endpoints", std::to_string(pc.total) + " endpoint(s) but none ready" +
                                  (pc.svc->external_traffic_policy == config::traffic_policy::local && !opts.node_name.empty()
                                       ? " on node " + opts.node_name + " (externalTrafficPolicy: Local)"
                                       : std::string()) +
                                  ": the pods are failing their readiness probes or terminating");
  bool endpoints_failing = false;
  for (const auto& p : pc.probes)
    endpoints_failing |= p.kind == "endpoint" && p.counted && p.result != outcome::open && p.result != outcome::reset;
  for (const auto& p : pc.probes) {
    const std::string target = p.target.str();
    if (p.kind == "node_port") {
      if (p.result == outcome::reset && pc.usable > 0 && !endpoints_failing)
        add("reset_after_connect", target + " accepted the connection and reset it at once although its endpoints "
                                            "answer from here: the proxy may be over --max-connections, or cannot "
                                            "reach the endpoints from its network namespace (see its log)");
      if (p.result == outcome::closed && pc.in_range && pc.usable > 0)
        add("nothing_listening", "nothing is listening on " + target + " (connection refused) although " +
                                     std::to_string(pc.usable) +
                                     " endpoint(s) are usable: the proxy is not running on this node, or it could not "
                                     "bind the port (see its log and /status)");
      else if (p.result == outcome::timeout)
        add("likely_firewall", target + " did not answer within " + t +
                                   " (not even with a refusal): a firewall or security group is likely dropping "
                                   "packets to the nodePort, or " + p.target.ip.str() + " is not this node's address");
      else if (p.result == outcome::unreachable)
        add("unreachable", target + ": " + p.error + ": no route to the node, or a firewall rejects the connection");
      else if (p.result == outcome::error)
        add("probe_error", target + ": " + p.error);
      if (opts.allowlist_check && p.source)
        if (auto why = opts.allowlist_check(*pc.svc, port, *p.source))
          add("allowlist_blocked", "source " + p.source->str() + " is not allowed on " + target + ": " + *why);
    } else if (p.counted) {
      if (p.result == outcome::closed)
        add("endpoint_port_closed", "endpoint port closed: " + target + " refused the connection: nothing listens on "
                                    "port " + std::to_string(p.target.port) +
                                    " in the pod (compare the container's port with the Service's targetPort)");
      else if (p.result == outcome::timeout)
        add("endpoint_timeout", "endpoint " + target + " did not answer within " + t +
                                    ": the pod network is not reachable from here, or a NetworkPolicy or firewall "
                                    "drops the packets");
      else if (p.result == outcome::unreachable)
        add("endpoint_unreachable", "endpoint " + target + ": " + p.error);
      else if (p.result == outcome::error)
        add("probe_error", "endpoint " + target + ": " + p.error);
    }
  }
}

std::string endpoint_note(const probe& p) {
  if (!p.ep) return "";
  std::string s = p.ep->ready ? "ready" : p.ep->terminating ? (p.ep->serving ? "terminating, serving" : "terminating")
                                                            : "not ready";
  if (!p.counted) s += " (not in use: failures not counted)";
  return s;
}

std::string target_ports(const config::service_port& port) {
  std::set<int> ports;
  for (const auto& ep : port.endpoints) ports.insert(ep.address.port);
  std::string s;
  for (int p : ports) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s.empty() ? "-" : s;
}

/// Prints rows as left-aligned columns.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
}

}  // namespace

int run_check(const config::snapshot& snap, const check_options& opts, std::ostream& out) {
  std::vector<config::ip_address> nodes;
  for (const auto& n : opts.node_addresses) nodes.push_back(parse_node(n));

  std::vector<port_check> checks;
  for (const auto& svc : snap.services)
    for (const auto& port : svc.ports) {
      port_check pc{&svc, &port};
      pc.in_range = svc.ad_hoc || snap.range.contains(port.node_port);
      std::size_t serving_terminating = 0;
      for (const auto& ep : port.endpoints) {
        if (!counts_on_this_node(svc, ep, opts)) continue;
        ++pc.total;
        pc.ready += ep.ready;
        serving_terminating += !ep.ready && ep.serving && ep.terminating;
      }
      // kube-proxy's choice: the ready endpoints, else the serving terminating ones.
      pc.usable = pc.ready ? pc.ready : serving_terminating;
      const bool tcp = port.proto == config::protocol::tcp;
      for (const auto& node : nodes) {
        probe p{"node_port", {node, static_cast<std::uint16_t>(port.node_port)}};
        p.counted = tcp;
        pc.probes.push_back(p);
      }
      for (const auto& ep : port.endpoints) {
        probe p{"endpoint", ep.address};
        p.ep = &ep;
        const bool used = counts_on_this_node(svc, ep, opts) && (pc.ready ? ep.ready : ep.serving && ep.terminating);
        p.counted = tcp && used;
        pc.probes.push_back(p);
      }
      checks.push_back(std::move(pc));
    }

  std::vector<probe*> todo;
  for (auto& pc : checks)
    if (pc.port->proto == config::protocol::tcp)
      for (auto& p : pc.probes) todo.push_back(&p);
  run_probes(todo, opts.timeout, opts.concurrency);

  std::size_t problems = 0, probed = 0;
  for (auto& pc : checks) {
    diagnose(pc, snap, opts);
    problems += pc.diagnoses.size();
    for (const auto& p : pc.probes) {
      probed += p.result != outcome::not_probed;
      // Every counted failure has a diagnosis above except a refused nodePort of a port without
      // usable endpoints or out of range: those are explained by that port's own diagnosis.
    }
  }
  const int rc = problems == 0 ? 0 : 1;

  if (opts.json) {
    using nlohmann::json;
    json j;
    j["node_port_range"] = snap.range.str();
    j["nodes"] = opts.node_addresses;
    j["timeout_ms"] = opts.timeout.count();
    j["source"] = snap.source;
    json ports = json::array();
    for (const auto& pc : checks) {
      json probes = json::array();
      for (const auto& p : pc.probes) {
        json pj = {{"kind", p.kind},
                   {"target", p.target.str()},
                   {"result", std::string(name_of(p.result))},
                   {"latency_ms", p.result == outcome::not_probed ? json(nullptr) : json(p.latency_ms)},
                   {"error", p.error},
                   {"counted", p.counted}};
        if (p.ep)
          pj["endpoint"] = {{"ready", p.ep->ready}, {"serving", p.ep->serving}, {"terminating", p.ep->terminating},
                            {"node_name", p.ep->node_name}};
        probes.push_back(std::move(pj));
      }
      json diags = json::array();
      for (const auto& d : pc.diagnoses) diags.push_back({{"code", d.code}, {"message", d.message}});
      std::vector<int> tports;
      for (const auto& ep : pc.port->endpoints)
        if (std::find(tports.begin(), tports.end(), ep.address.port) == tports.end()) tports.push_back(ep.address.port);
      ports.push_back({{"service", pc.svc->id()},
                       {"port_name", pc.port->name},
                       {"protocol", std::string(config::to_string(pc.port->proto))},
                       {"port", pc.port->port},
                       {"target_ports", tports},
                       {"node_port", pc.port->node_port},
                       {"in_range", pc.in_range},
                       {"endpoints_total", pc.total},
                       {"endpoints_ready", pc.ready},
                       {"endpoints_usable", pc.usable},
                       {"probes", std::move(probes)},
                       {"diagnoses", std::move(diags)},
                       {"ok", pc.diagnoses.empty()}});
    }
    j["ports"] = std::move(ports);
    j["problems"] = problems;
    j["ok"] = rc == 0;
    out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return rc;
  }

  std::string node_list;
  for (const auto& n : opts.node_addresses) node_list += (node_list.empty() ? "" : ", ") + n;
  out << "nodeport-proxy check: " << checks.size() << " service port(s) from " << snap.source << ", nodePort range "
      << snap.range.str() << ", node(s) " << node_list << ", timeout " << opts.timeout.count() << " ms\n\n";
  std::vector<std::vector<std::string>> svc_rows{
      {"SERVICE", "PORT", "PROTOCOL", "SVC-PORT", "TARGET-PORT", "NODEPORT", "ENDPOINTS (ready/total)"}};
  for (const auto& pc : checks)
    svc_rows.push_back({pc.svc->id(), pc.port->name.empty() ? "-" : pc.port->name,
                        std::string(config::to_string(pc.port->proto)), std::to_string(pc.port->port),
                        target_ports(*pc.port),
                        std::to_string(pc.port->node_port) + (pc.in_range ? "" : " (out of range)"),
                        std::to_string(pc.ready) + "/" + std::to_string(pc.total)});
  print_table(out, svc_rows);
  out << "\n";
  std::vector<std::vector<std::string>> probe_rows{{"SERVICE:PORT", "PROBE", "TARGET", "RESULT", "LATENCY", "NOTE"}};
  for (const auto& pc : checks)
    for (const auto& p : pc.probes) {
      std::string note = p.kind == "endpoint" ? endpoint_note(p) : "";
      if (p.result == outcome::not_probed) note = "UDP: not probed (no meaningful probe)";
      else if (p.result == outcome::reset) note += (note.empty() ? "" : "; ") + std::string("connected, then reset at once");
      else if (!p.error.empty() && p.result != outcome::closed && p.result != outcome::reset) note += (note.empty() ? "" : "; ") + p.error;
      probe_rows.push_back({pc.id(), p.kind == "node_port" ? "nodePort" : "endpoint", p.target.str(),
                            std::string(name_of(p.result)), p.result == outcome::not_probed ? "-" : ms(p.latency_ms), note});
    }
  print_table(out, probe_rows);
  out << "\n";
  if (problems == 0) {
    out << "OK: " << probed << " probe(s), all reachable; no problems found.\n";
    return rc;
  }
  out << "DIAGNOSIS\n";
  for (const auto& pc : checks)
    for (const auto& d : pc.diagnoses) out << "  " << pc.id() << ": [" << d.code << "] " << d.message << "\n";
  out << "\n" << problems << " problem(s) found.\n";
  return rc;
}

}  // namespace npp::proxy
