#include "config/snapshot.hpp"

#include <algorithm>
#include <charconv>

namespace npp::config {

service& service_list::edit(std::size_t i) {
  item& it = items_.at(i);
  if (!it.writable || it.ptr.use_count() != 1) it = {std::make_shared<service>(*it.ptr), true};
  // The object was created non-const by this list and nobody else holds it.
  return const_cast<service&>(*it.ptr);
}

std::string_view to_string(protocol p) {
  switch (p) {
    case protocol::tcp: return "TCP";
    case protocol::udp: return "UDP";
  }
  return "?";
}

std::string_view to_string(proxy_protocol_version v) {
  switch (v) {
    case proxy_protocol_version::off: return "off";
    case proxy_protocol_version::v1: return "v1";
    case proxy_protocol_version::v2: return "v2";
  }
  return "?";
}

// A decimal port number with nothing around it: no sign, no spaces, at most 5 digits (so that
// "0000080" style padding and huge values are refused before conversion).
static bool parse_range_bound(std::string_view text, int& out) {
  if (text.empty() || text.size() > 5) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && text.front() != '-' && text.front() != '+';
}

bool port_range::parse(std::string_view text, port_range& out, std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  const auto dash = text.find('-');
  if (dash == std::string_view::npos || dash == 0)
    return fail("must be of the form N1-N2 (inclusive), e.g. 30000-32767");
  int first = 0, last = 0;
  if (!parse_range_bound(text.substr(0, dash), first) || !parse_range_bound(text.substr(dash + 1), last))
    return fail("must be of the form N1-N2 (inclusive), e.g. 30000-32767");
  if (first < 1 || first > 65535 || last < 1 || last > 65535)
    return fail("ports must be between 1 and 65535, inclusive");
  if (first > last) return fail("the first port must not be greater than the last port");
  out = port_range{first, last};
  return true;
}

std::vector<host_port> usable_endpoints(const service& svc, const service_port& port,
                                        std::string_view node_name) {
  // kube-proxy's CategorizeEndpoints: with Local policy only this node's endpoints count at all,
  // so the terminating fallback is also taken among local endpoints only.
  const bool local_only = svc.external_traffic_policy == traffic_policy::local;
  auto eligible = [&](const endpoint& ep) { return !local_only || ep.node_name == node_name; };

  std::vector<host_port> usable;
  for (const auto& ep : port.endpoints)
    if (eligible(ep) && ep.ready) usable.push_back(ep.address);
  if (!usable.empty()) return usable;

  // No ready endpoint: keep draining to endpoints that still serve while terminating
  // (KEP-1669 ProxyTerminatingEndpoints) rather than refusing every connection.
  for (const auto& ep : port.endpoints)
    if (eligible(ep) && ep.serving && ep.terminating) usable.push_back(ep.address);
  return usable;
}

std::vector<std::string> tls_files(const snapshot& snap) {
  std::vector<std::string> out;
  auto add = [&](const std::string& f) {
    if (!f.empty() && std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  };
  for (const auto& svc : snap.services) {
    for (const auto& c : svc.tls.certificates) {
      add(c.cert_file);
      add(c.key_file);
      add(c.ocsp_response_file);
    }
    add(svc.tls.client_ca_file);
    add(svc.tls.crl_file);
    if (svc.upstream_tls.enabled) add(svc.upstream_tls.ca_file);
  }
  return out;
}

}  // namespace npp::config
