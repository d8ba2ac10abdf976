// Service / EndpointSlice decoding and the merge of all inputs into one snapshot. The rules are
// listed in kubernetes_objects.hpp.
#include "config/kubernetes_objects.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace npp::config::detail {
namespace {

using json = nlohmann::json;

constexpr std::string_view service_name_label = "kubernetes.io/service-name";
constexpr std::string_view proxy_name_label = "service.kubernetes.io/service-proxy-name";
constexpr std::string_view headless_label = "service.kubernetes.io/headless";

// Our annotations on a Service: the native keys allowSourceRanges, proxyProtocol, maxConnections
// and maxConnectionsPerSource (annotation values are always strings). Any other key with our
// prefix is an error: a misspelt allow-source-ranges must not silently open the port to everyone.
constexpr std::string_view annotation_prefix = "nodeport-proxy.io/";
constexpr std::string_view allow_source_ranges_annotation = "nodeport-proxy.io/allow-source-ranges";
constexpr std::string_view proxy_protocol_annotation = "nodeport-proxy.io/proxy-protocol";
constexpr std::string_view max_connections_annotation = "nodeport-proxy.io/max-connections";
constexpr std::string_view max_connections_per_source_annotation = "nodeport-proxy.io/max-connections-per-source";
// TLS: the native "tls" and "upstreamTLS" keys, one annotation per field. File paths are paths
// on the node (mount the Secret there); relative ones resolve against the input file's directory.
constexpr std::string_view tls_cert_file_annotation = "nodeport-proxy.io/tls-cert-file";
constexpr std::string_view tls_key_file_annotation = "nodeport-proxy.io/tls-key-file";
constexpr std::string_view tls_ocsp_response_file_annotation = "nodeport-proxy.io/tls-ocsp-response-file";
constexpr std::string_view tls_sni_certificates_annotation = "nodeport-proxy.io/tls-sni-certificates";
constexpr std::string_view tls_client_ca_file_annotation = "nodeport-proxy.io/tls-client-ca-file";
constexpr std::string_view tls_crl_file_annotation = "nodeport-proxy.io/tls-crl-file";
constexpr std::string_view upstream_tls_annotation = "nodeport-proxy.io/upstream-tls";
constexpr std::string_view upstream_tls_ca_file_annotation = "nodeport-proxy.io/upstream-tls-ca-file";
constexpr std::string_view upstream_tls_server_name_annotation = "nodeport-proxy.io/upstream-tls-server-name";
constexpr std::string_view upstream_tls_insecure_annotation = "nodeport-proxy.io/upstream-tls-insecure-skip-verify";
constexpr std::string_view supported_annotations[] = {
    allow_source_ranges_annotation, max_connections_annotation, max_connections_per_source_annotation,
    proxy_protocol_annotation, tls_cert_file_annotation, tls_client_ca_file_annotation, tls_crl_file_annotation,
    tls_key_file_annotation, tls_ocsp_response_file_annotation, tls_sni_certificates_annotation, upstream_tls_annotation, upstream_tls_ca_file_annotation,
    upstream_tls_insecure_annotation, upstream_tls_server_name_annotation};

// "Service ops/admin-ui", "items[3] (Service ops/admin-ui)", "documents[1] (EndpointSlice)".
std::string object_label(const std::string& position, std::string_view kind, const std::string& ns,
                         const std::string& name) {
  std::string what(kind);
  if (!name.empty()) what += " " + ns + "/" + path_segment(name);
  return position.empty() ? what : position + " (" + what + ")";
}

// Field access for Kubernetes objects: an absent key and null mean the same (Go's omitempty and
// nil pointers), unknown keys are ignored, and a present value of the wrong type is a problem.
class object_reader {
 public:
  object_reader(std::string label, std::vector<problem>& problems) : label_(std::move(label)), problems_(problems) {}

  void add(const std::string& field, std::string message) {
    problems_.push_back({field.empty() ? label_ : label_ + ": " + field, std::move(message)});
  }
  std::string path(const std::string& field) const { return label_ + ": " + field; }
  const std::string& label() const { return label_; }

  static const json* find(const json* obj, std::string_view key) {
    if (obj == nullptr || !obj->is_object()) return nullptr;
    auto it = obj->find(key);
    if (it == obj->end() || it->is_null()) return nullptr;
    return &*it;
  }

  const json* object(const json* obj, std::string_view key, const std::string& field) {
    const json* v = find(obj, key);
    if (v != nullptr && !v->is_object()) {
      add(field, invalid(describe(*v), "must be an object"));
      return nullptr;
    }
    return v;
  }
  const json* array(const json* obj, std::string_view key, const std::string& field) {
    const json* v = find(obj, key);
    if (v != nullptr && !v->is_array()) {
      add(field, invalid(describe(*v), "must be an array"));
      return nullptr;
    }
    return v;
  }
  std::optional<std::string> string(const json* obj, std::string_view key, const std::string& field) {
    const json* v = find(obj, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      add(field, invalid(describe(*v), "must be a string"));
      return std::nullopt;
    }
    return v->get<std::string>();
  }
  std::optional<bool> boolean(const json* obj, std::string_view key, const std::string& field) {
    const json* v = find(obj, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) {
      add(field, invalid(describe(*v), "must be a boolean (true or false)"));
      return std::nullopt;
    }
    return v->get<bool>();
  }
  // An integer in [lo, hi]; "80" (a string) and 80.5 are refused as the API server refuses them.
  // *bad is set when the key is present but invalid.
  std::optional<int> integer(const json* obj, std::string_view key, const std::string& field, std::int64_t lo,
                             std::int64_t hi, const std::string& range_detail, bool* bad = nullptr) {
    const json* v = find(obj, key);
    if (v == nullptr) return std::nullopt;
    auto fail = [&](std::string message) -> std::optional<int> {
      add(field, std::move(message));
      if (bad) *bad = true;
      return std::nullopt;
    };
    if (!v->is_number_integer()) return fail(invalid(describe(*v), "must be an integer"));
    const bool in_range = v->is_number_unsigned() ? v->get<std::uint64_t>() <= static_cast<std::uint64_t>(hi) &&
                                                        static_cast<std::int64_t>(v->get<std::uint64_t>()) >= lo
                                                  : v->get<std::int64_t>() >= lo && v->get<std::int64_t>() <= hi;
    if (!in_range) return fail(invalid(v->dump(), range_detail));
    return static_cast<int>(v->get<std::int64_t>());
  }

 private:
  std::string label_;
  std::vector<problem>& problems_;
};

std::string metadata_name(const json& obj) {
  const json* meta = object_reader::find(&obj, "metadata");
  const json* name = object_reader::find(meta, "name");
  return name != nullptr && name->is_string() ? name->get<std::string>() : "";
}
std::string metadata_namespace(const json& obj) {
  const json* meta = object_reader::find(&obj, "metadata");
  const json* ns = object_reader::find(meta, "namespace");
  return ns != nullptr && ns->is_string() && !ns->get<std::string>().empty() ? ns->get<std::string>() : "default";
}

// ---------------------------------------------------------------------------------------------
// Service

std::string annotation_field(std::string_view key) { return "metadata.annotations[" + path_segment(key) + "]"; }

std::string_view trim(std::string_view s) {
  constexpr std::string_view space = " \t\r\n";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

// A connection limit written as an annotation: decimal digits only, 1..max_connection_limit.
std::optional<std::size_t> parse_limit(std::string_view text) {
  if (text.empty() || text.size() > 10 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  std::uint64_t n = 0;
  for (char c : text) n = n * 10 + static_cast<std::uint64_t>(c - '0');
  if (n < 1 || n > static_cast<std::uint64_t>(max_connection_limit)) return std::nullopt;
  return static_cast<std::size_t>(n);
}

// The nodeport-proxy.io/ annotations (see annotation_prefix). Other annotations are not ours and
// are ignored, as the API server ignores them.
void read_annotations(object_reader& r, const json* meta, service& svc) {
  const json* annotations = r.object(meta, "annotations", "metadata.annotations");
  if (annotations == nullptr) return;
  std::string tls_cert, tls_key, tls_ocsp;  // the default certificate, combined after the loop
  std::vector<tls_certificate> sni;  // tls-sni-certificates, after the default
  bool upstream = false;             // upstream-tls: "true"
  for (const auto& [key, value] : annotations->items()) {
    if (key.rfind(annotation_prefix, 0) != 0) continue;
    const std::string field = annotation_field(key);
    if (!value.is_string()) {
      r.add(field, invalid(describe(value), "must be a string"));
      continue;
    }
    const std::string& text = value.get_ref<const std::string&>();
    if (key == allow_source_ranges_annotation) {
      // Comma-separated, spaces allowed around items; empty (or only commas) allows every source.
      std::string_view rest = text;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        if (item.empty()) continue;
        std::string why;
        if (auto block = parse_source_range(item, &why))
          svc.allow_source_ranges.push_back(*block);
        else
          r.add(field, invalid(quote_short(item), why));
      }
    } else if (key == proxy_protocol_annotation) {
      if (text == "v1")
        svc.proxy_protocol = proxy_protocol_version::v1;
      else if (text == "v2")
        svc.proxy_protocol = proxy_protocol_version::v2;
      else
        r.add(field, unsupported(text, {"v1", "v2"}));
    } else if (key == max_connections_annotation || key == max_connections_per_source_annotation) {
      auto limit = parse_limit(text);
      if (!limit)
        r.add(field, invalid(quote_short(text), std::string("must be an integer: ") + connection_limit_range +
                                                    " (remove the annotation for no limit)"));
      else
        (key == max_connections_annotation ? svc.max_connections : svc.max_connections_per_source) = *limit;
    } else if (key == tls_cert_file_annotation || key == tls_key_file_annotation ||
               key == tls_ocsp_response_file_annotation || key == tls_client_ca_file_annotation ||
               key == tls_crl_file_annotation || key == upstream_tls_ca_file_annotation) {
      const std::string_view name = trim(text);
      if (name.empty()) {
        r.add(field, "Required value: a file name (remove the annotation to unset it)");
        continue;
      }
      if (key == tls_cert_file_annotation) tls_cert = name;
      else if (key == tls_key_file_annotation) tls_key = name;
      else if (key == tls_ocsp_response_file_annotation) tls_ocsp = name;
      else if (key == tls_client_ca_file_annotation) svc.tls.client_ca_file = name;
      else if (key == tls_crl_file_annotation) svc.tls.crl_file = name;
      else svc.upstream_tls.ca_file = name;
    } else if (key == tls_sni_certificates_annotation) {
      // "CERT,KEY;CERT,KEY,OCSP": more certificates, chosen by SNI (the default is tls-cert-file),
      // each optionally with its OCSP response file.
      std::string_view rest = text;
      while (!rest.empty()) {
        const auto semi = rest.find(';');
        const std::string_view pair = trim(rest.substr(0, semi));
        rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
        if (pair.empty()) continue;
        std::vector<std::string_view> parts;
        for (std::string_view item = pair;;) {
          const auto comma = item.find(',');
          parts.push_back(trim(item.substr(0, comma)));
          if (comma == std::string_view::npos) break;
          item = item.substr(comma + 1);
        }
        if (parts.size() < 2 || parts.size() > 3 ||
            std::any_of(parts.begin(), parts.end(), [](std::string_view p) { return p.empty(); }))
          r.add(field, invalid(quote_short(pair), "must be \"CERT_FILE,KEY_FILE\" or \"CERT_FILE,KEY_FILE,OCSP_RESPONSE_FILE\" "
                                                  "(entries separated by \";\")"));
        else
          sni.push_back({std::string(parts[0]), std::string(parts[1]), parts.size() == 3 ? std::string(parts[2]) : ""});
      }
    } else if (key == upstream_tls_annotation || key == upstream_tls_insecure_annotation) {
      if (text != "true" && text != "false") {
        r.add(field, unsupported(text, {"false", "true"}));
        continue;
      }
      if (key == upstream_tls_annotation) upstream = text == "true";
      else svc.upstream_tls.insecure_skip_verify = text == "true";
    } else if (key == upstream_tls_server_name_annotation) {
      svc.upstream_tls.server_name = std::string(trim(text));
    } else {
      std::string list;
      for (auto name : supported_annotations) list += (list.empty() ? "" : ", ") + quote(name);
      r.add(field, "unknown annotation " + quote_short(key) + ": supported annotations: " + list);
    }
  }
  // The default certificate needs both halves; SNI certificates and client CAs need a default.
  if (tls_cert.empty() != tls_key.empty())
    r.add(annotation_field(tls_cert.empty() ? tls_cert_file_annotation : tls_key_file_annotation),
          "Required value: set by " + std::string(tls_cert.empty() ? tls_key_file_annotation : tls_cert_file_annotation));
  if (!tls_cert.empty() && !tls_key.empty()) svc.tls.certificates.push_back({tls_cert, tls_key, tls_ocsp});
  for (auto& c : sni) svc.tls.certificates.push_back(std::move(c));
  if (tls_cert.empty() && tls_key.empty()) {
    for (auto [set, name] : {std::pair<bool, std::string_view>{!sni.empty(), tls_sni_certificates_annotation},
                             {!tls_ocsp.empty(), tls_ocsp_response_file_annotation},
                             {!svc.tls.client_ca_file.empty(), tls_client_ca_file_annotation},
                             {!svc.tls.crl_file.empty(), tls_crl_file_annotation}})
      if (set) r.add(annotation_field(name), "Forbidden: TLS is off: set " + quote(tls_cert_file_annotation) + " and " +
                                                 quote(tls_key_file_annotation) + " too");
    svc.tls = {};
  } else if (!svc.tls.crl_file.empty() && svc.tls.client_ca_file.empty()) {
    r.add(annotation_field(tls_crl_file_annotation),
          "Forbidden: a CRL applies to client certificates: set " + quote(tls_client_ca_file_annotation) + " too");
  }
  if (upstream) {
    svc.upstream_tls.enabled = true;
  } else {
    for (auto [set, name] : {std::pair<bool, std::string_view>{!svc.upstream_tls.ca_file.empty(), upstream_tls_ca_file_annotation},
                             {!svc.upstream_tls.server_name.empty(), upstream_tls_server_name_annotation},
                             {svc.upstream_tls.insecure_skip_verify, upstream_tls_insecure_annotation}})
      if (set) r.add(annotation_field(name), "Forbidden: set " + quote(upstream_tls_annotation) + " to \"true\" too");
    svc.upstream_tls = {};
  }
}

void decode_service(const json& obj, const std::string& position, decoded_input& out, std::vector<problem>& problems) {
  const std::string ns = metadata_namespace(obj), name = metadata_name(obj);
  object_reader r(object_label(position, "Service", ns, name), problems);
  if (const json* api = object_reader::find(&obj, "apiVersion"); api != nullptr && *api != "v1") {
    r.add("apiVersion", unsupported(api->is_string() ? api->get<std::string>() : api->dump(), {"v1"}));
    return;
  }
  const json* meta = r.object(&obj, "metadata", "metadata");
  if (name.empty()) {
    r.add("metadata.name", "Required value");
    return;
  }
  const std::string id = ns + "/" + name;
  auto skip = [&](const std::string& why) {
    out.skipped[id] = why;
    out.notes.push_back(id + ": skipped: " + why);
  };

  // kube-proxy's informers never see these (label selectors), so neither do we.
  if (const json* labels = r.object(meta, "labels", "metadata.labels")) {
    if (const json* owner = object_reader::find(labels, proxy_name_label)) {
      skip("labelled " + std::string(proxy_name_label) + "=" + (owner->is_string() ? owner->get<std::string>() : owner->dump()) +
           ": another proxy serves it");
      return;
    }
    if (object_reader::find(labels, headless_label) != nullptr) {
      skip("labelled " + std::string(headless_label) + ": headless Services are not proxied");
      return;
    }
  }

  const json* spec = r.object(&obj, "spec", "spec");
  if (spec == nullptr) {
    if (object_reader::find(&obj, "spec") == nullptr) r.add("spec", "Required value");
    return;
  }
  const std::string type = r.string(spec, "type", "spec.type").value_or("ClusterIP");
  if (type != "ClusterIP" && type != "NodePort" && type != "LoadBalancer" && type != "ExternalName") {
    r.add("spec.type", unsupported(type, {"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"}));
    return;
  }
  if (type == "ExternalName") return skip("type ExternalName is a DNS alias, not proxied");
  if (r.string(spec, "clusterIP", "spec.clusterIP") == "None")
    return skip("headless (clusterIP: None) Services are not proxied");
  if (type == "ClusterIP") {
    // The API server refuses this (validation.go); a hand-written manifest that does it almost
    // certainly meant type NodePort, so say so instead of skipping it quietly.
    if (const json* ports = object_reader::find(spec, "ports"); ports != nullptr && ports->is_array()) {
      for (std::size_t i = 0; i < ports->size(); ++i) {
        const json& p = (*ports)[i];
        if (!p.is_object()) continue;
        auto np = p.find("nodePort");
        if (np != p.end() && np->is_number_integer() && np->get<long long>() != 0)
          r.add("spec.ports[" + std::to_string(i) + "].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'");
      }
    }
    return skip("type ClusterIP has no nodePorts");
  }

  service svc;
  svc.ns = ns;
  svc.name = name;
  svc.origin = r.label();
  svc.kubernetes_object = true;
  read_annotations(r, meta, svc);

  // Defaults as SetDefaults_Service applies them: sessionAffinity None (10800 s when ClientIP),
  // externalTrafficPolicy Cluster, allocateLoadBalancerNodePorts true, protocol TCP.
  if (auto affinity = r.string(spec, "sessionAffinity", "spec.sessionAffinity")) {
    if (*affinity == "ClientIP")
      svc.affinity = session_affinity::client_ip;
    else if (*affinity != "None")
      r.add("spec.sessionAffinity", unsupported(*affinity, {"ClientIP", "None"}));
  }
  if (svc.affinity == session_affinity::client_ip) {
    const json* config = r.object(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig");
    const json* client_ip = r.object(config, "clientIP", "spec.sessionAffinityConfig.clientIP");
    // Kubernetes' own wording (validateClientIPAffinityConfig), though 86400 itself is allowed.
    if (auto seconds = r.integer(client_ip, "timeoutSeconds", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 1,
                                 86400, "must be greater than 0 and less than 86400"))
      svc.affinity_timeout_seconds = *seconds;
  }
  if (auto policy = r.string(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy")) {
    if (*policy == "Local")
      svc.external_traffic_policy = traffic_policy::local;
    else if (*policy != "Cluster")
      r.add("spec.externalTrafficPolicy", unsupported(*policy, {"Cluster", "Local"}));
  }
  svc.publish_not_ready_addresses =
      r.boolean(spec, "publishNotReadyAddresses", "spec.publishNotReadyAddresses").value_or(false);
  const bool allocate_lb_node_ports =
      r.boolean(spec, "allocateLoadBalancerNodePorts", "spec.allocateLoadBalancerNodePorts").value_or(true);
  const bool lb_local = type == "LoadBalancer" && svc.external_traffic_policy == traffic_policy::local;

  bool bad = false;
  if (auto hc = r.integer(spec, "healthCheckNodePort", "spec.healthCheckNodePort", 0, 65535,
                          "must be between 1 and 65535, inclusive", &bad);
      hc && *hc != 0) {
    if (!lb_local)
      r.add("spec.healthCheckNodePort",
            "Forbidden: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'");
    else
      svc.health_check_node_port = *hc;
  }
  if (lb_local && svc.health_check_node_port == 0 && !bad) svc.health_check_node_port = allocate_health_check_port;

  const json* ports = r.array(spec, "ports", "spec.ports");
  if (ports == nullptr || ports->empty()) {
    if (object_reader::find(spec, "ports") == nullptr || (ports != nullptr && ports->empty()))
      r.add("spec.ports", "Required value");
    return;
  }
  std::vector<std::string> unbound;
  for (std::size_t k = 0; k < ports->size(); ++k) {
    const std::string field = index_path("spec.ports", k);
    const json& p = (*ports)[k];
    if (!p.is_object()) {
      r.add(field, invalid(describe(p), "must be an object"));
      continue;
    }
    service_port port;
    port.origin = r.path(field);
    port.name = r.string(&p, "name", field + ".name").value_or("");
    const std::string which = port.name.empty() ? field : field + " (" + port.name + ")";
    const std::string proto = r.string(&p, "protocol", field + ".protocol").value_or("TCP");
    if (proto == "SCTP") {
      unbound.push_back(which + ": SCTP is not supported");
      continue;
    }
    if (proto != "TCP" && proto != "UDP") {
      r.add(field + ".protocol", unsupported(proto, {"SCTP", "TCP", "UDP"}));
      continue;
    }
    port.proto = proto == "TCP" ? protocol::tcp : protocol::udp;
    if (object_reader::find(&p, "port") == nullptr) {
      r.add(field + ".port", "Required value");
      continue;
    }
    auto number = r.integer(&p, "port", field + ".port", 1, 65535, "must be between 1 and 65535, inclusive");
    if (!number) continue;
    port.port = *number;
    // 0 is what Kubernetes clients send for "allocate one"; range and collisions are checked by
    // check_and_allocate() over all inputs together.
    bool bad_node_port = false;
    auto node_port = r.integer(&p, "nodePort", field + ".nodePort", 0, 65535, "must be between 1 and 65535, inclusive",
                               &bad_node_port);
    if (bad_node_port) continue;
    port.node_port = node_port.value_or(0);
    if (port.node_port == 0 && type == "LoadBalancer" && !allocate_lb_node_ports) {
      unbound.push_back(which + ": no nodePort (allocateLoadBalancerNodePorts: false)");
      continue;
    }
    svc.ports.push_back(std::move(port));
  }
  if (svc.ports.empty()) {
    if (!unbound.empty()) {
      std::string why = "no port to bind";
      for (const auto& u : unbound) why += "; " + u;
      skip(why);
    }
    return;
  }
  for (const auto& u : unbound) out.notes.push_back(id + ": " + u + "; not bound");
  out.services.push_back(std::move(svc));
}

// ---------------------------------------------------------------------------------------------
// EndpointSlice

void decode_slice(const json& obj, const std::string& position, decoded_input& out, std::vector<problem>& problems) {
  const std::string ns = metadata_namespace(obj), name = metadata_name(obj);
  object_reader r(object_label(position, "EndpointSlice", ns, name), problems);
  if (const json* api = object_reader::find(&obj, "apiVersion"); api != nullptr && *api != "discovery.k8s.io/v1") {
    r.add("apiVersion",
          unsupported(api->is_string() ? api->get<std::string>() : api->dump(), {"discovery.k8s.io/v1"}));
    return;
  }
  const std::string label = object_label("", "EndpointSlice", ns, name.empty() ? "(unnamed)" : name);
  const json* meta = r.object(&obj, "metadata", "metadata");
  const json* labels = r.object(meta, "labels", "metadata.labels");

  const auto address_type = r.string(&obj, "addressType", "addressType");
  if (!address_type) {
    if (object_reader::find(&obj, "addressType") == nullptr) r.add("addressType", "Required value");
    return;
  }
  if (*address_type != "IPv4" && *address_type != "IPv6" && *address_type != "FQDN") {
    r.add("addressType", unsupported(*address_type, {"FQDN", "IPv4", "IPv6"}));
    return;
  }
  const auto service_name = r.string(labels, service_name_label, "metadata.labels");
  if (*address_type == "FQDN") {
    out.notes.push_back(label + ": ignored: addressType FQDN is not proxied");
    return;
  }
  if (!service_name || service_name->empty()) {
    out.notes.push_back(label + ": ignored: no " + std::string(service_name_label) + " label set on endpoint slice");
    return;
  }
  const bool v6 = *address_type == "IPv6";

  endpoint_slice slice;
  slice.label = label;
  slice.ns = ns;
  slice.service = *service_name;
  if (const json* ports = r.array(&obj, "ports", "ports")) {
    for (std::size_t k = 0; k < ports->size(); ++k) {
      const std::string field = index_path("ports", k);
      const json& p = (*ports)[k];
      if (!p.is_object()) {
        r.add(field, invalid(describe(p), "must be an object"));
        continue;
      }
      slice_port sp;
      // The API server defaults a nil name to "" and a nil protocol to TCP (SetDefaults_EndpointPort).
      sp.name = r.string(&p, "name", field + ".name").value_or("");
      const std::string proto = r.string(&p, "protocol", field + ".protocol").value_or("TCP");
      if (proto == "SCTP") continue;  // the Service port was skipped with a note already
      if (proto != "TCP" && proto != "UDP") {
        r.add(field + ".protocol", unsupported(proto, {"SCTP", "TCP", "UDP"}));
        continue;
      }
      sp.proto = proto == "TCP" ? protocol::tcp : protocol::udp;
      auto number = r.integer(&p, "port", field + ".port", 0, 65535, "must be between 1 and 65535, inclusive");
      if (!number || *number == 0) {
        // kube-proxy: "Ignoring invalid endpoint port".
        if (object_reader::find(&p, "port") == nullptr || number)
          out.notes.push_back(label + ": " + field + ": ignored: no port number");
        continue;
      }
      sp.port = *number;
      slice.ports.push_back(std::move(sp));
    }
  }

  if (const json* endpoints = r.array(&obj, "endpoints", "endpoints")) {
    for (std::size_t k = 0; k < endpoints->size(); ++k) {
      const std::string field = index_path("endpoints", k);
      const json& e = (*endpoints)[k];
      if (!e.is_object()) {
        r.add(field, invalid(describe(e), "must be an object"));
        continue;
      }
      const json* addresses = r.array(&e, "addresses", field + ".addresses");
      if (addresses == nullptr || addresses->empty()) {
        if (object_reader::find(&e, "addresses") == nullptr || addresses != nullptr)
          r.add(field + ".addresses", "Required value");
        continue;
      }
      // kube-proxy uses addresses[0] only; the others are never dialled.
      const json& first = (*addresses)[0];
      const std::string address_field = field + ".addresses[0]";
      if (!first.is_string()) {
        r.add(address_field, invalid(describe(first), "must be a string"));
        continue;
      }
      const std::string& text = first.get_ref<const std::string&>();
      auto ip = ip_address::parse(text);
      if (!ip) {
        r.add(address_field, invalid(quote_short(text), "must be a valid IP address"));
        continue;
      }
      if (ip->v6 != v6) {
        out.notes.push_back(label + ": " + address_field + ": ignored: " + quote_short(text) + " is not an " +
                            *address_type + " address (addressType " + *address_type + ")");
        continue;
      }
      if (auto special = special_ip_error(*ip); !special.empty()) {
        r.add(address_field, invalid(quote_short(text), special));
        continue;
      }
      endpoint ep;
      ep.address.ip = ip->unmapped();
      // nil conditions: ready and serving true, terminating false (newEndpointSliceInfo).
      const json* conditions = r.object(&e, "conditions", field + ".conditions");
      ep.ready = r.boolean(conditions, "ready", field + ".conditions.ready").value_or(true);
      ep.serving = r.boolean(conditions, "serving", field + ".conditions.serving").value_or(true);
      ep.terminating = r.boolean(conditions, "terminating", field + ".conditions.terminating").value_or(false);
      ep.node_name = r.string(&e, "nodeName", field + ".nodeName").value_or("");
      slice.endpoints.push_back(std::move(ep));
    }
  }
  out.slices.push_back(std::move(slice));
}

// ---------------------------------------------------------------------------------------------
// Merging

// How usable an endpoint copy is, for merging duplicates: ready, else serving, else neither.
int usefulness(const endpoint& ep) { return ep.ready ? 2 : ep.serving ? 1 : 0; }

// A port's endpoints with an index by address, so merging thousands of endpoints stays O(n log n).
class endpoint_merger {
 public:
  explicit endpoint_merger(service_port& port) : port_(port) {
    for (std::size_t i = 0; i < port.endpoints.size(); ++i) index_.emplace(port.endpoints[i].address, i);
  }
  void add(const endpoint& ep) {
    auto [it, inserted] = index_.emplace(ep.address, port_.endpoints.size());
    if (inserted) {
      port_.endpoints.push_back(ep);
    } else if (usefulness(ep) > usefulness(port_.endpoints[it->second])) {
      port_.endpoints[it->second] = ep;
    }
  }

 private:
  service_port& port_;
  std::map<host_port, std::size_t> index_;
};

std::string port_description(const service_port& p) {
  return (p.name.empty() ? std::string("(unnamed)") : quote(p.name)) + " " + std::to_string(p.port) + "/" +
         std::string(to_string(p.proto));
}

}  // namespace

bool is_kubernetes_document(const json& doc) {
  return doc.is_object() && (doc.contains("kind") || doc.contains("apiVersion"));
}

namespace {

// decode_kubernetes() for a top-level document or (in_list) a list item, with the kind to assume
// when the object has none (items of a typed list).
void decode_document(const json& doc, const std::string& position, bool only_object, bool in_list,
                     std::string_view default_kind, decoded_input& out, std::vector<problem>& problems) {
  const std::string at = position.empty() ? "" : position + ": ";
  if (!doc.is_object()) {
    problems.push_back({position, invalid(describe(doc), "must be an object")});
    return;
  }
  const json* kind_value = object_reader::find(&doc, "kind");
  if (kind_value != nullptr && !kind_value->is_string()) {
    problems.push_back({at + "kind", invalid(describe(*kind_value), "must be a string")});
    return;
  }
  if (kind_value == nullptr && default_kind.empty()) {
    problems.push_back({at + "kind", "Required value"});
    return;
  }
  const std::string kind = kind_value != nullptr ? kind_value->get<std::string>() : std::string(default_kind);
  if (kind == "Service") return decode_service(doc, position, out, problems);
  if (kind == "EndpointSlice") return decode_slice(doc, position, out, problems);
  const bool is_list = kind == "List" || kind == "ServiceList" || kind == "EndpointSliceList";
  if (is_list && in_list) {
    problems.push_back({at + "kind", "Invalid value: " + quote(kind) + ": a list inside a list is not supported"});
    return;
  }
  if (is_list) {
    const json* items = object_reader::find(&doc, "items");
    if (items == nullptr) return;  // an empty list as some clients print it
    if (!items->is_array()) {
      problems.push_back({at + "items", invalid(describe(*items), "must be an array")});
      return;
    }
    // The API leaves kind/apiVersion out of typed lists' items; kubectl's List keeps them.
    const std::string_view item_kind = kind == "ServiceList"         ? "Service"
                                       : kind == "EndpointSliceList" ? "EndpointSlice"
                                                                     : "";
    for (std::size_t i = 0; i < items->size(); ++i) {
      const std::string item_position = position.empty() ? index_path("items", i) : index_path(position + ".items", i);
      decode_document((*items)[i], item_position, false, true, item_kind, out, problems);
    }
    return;
  }
  if (only_object) {
    problems.push_back({at + "kind", "Unsupported value: " + quote_short(kind) +
                                         ": this is not an endpoints file; expected a Service, an EndpointSlice, a "
                                         "List of them, or the native format {\"services\": [...]}"});
    return;
  }
  const std::string label = object_label(position, kind, metadata_namespace(doc), metadata_name(doc));
  out.notes.push_back(label + ": ignored: kind " + quote_short(kind) +
                      (kind == "Endpoints" ? " (v1 Endpoints are not read; EndpointSlices are)" : " is not used"));
}

}  // namespace

void decode_kubernetes(const json& doc, const std::string& position, bool only_object, decoded_input& out,
                       std::vector<problem>& problems) {
  decode_document(doc, position, only_object, false, "", out, problems);
}

void decode_kubernetes_item(const json& doc, std::string_view default_kind, decoded_input& out,
                            std::vector<problem>& problems) {
  decode_document(doc, "", true, false, default_kind, out, problems);
}

snapshot assemble(std::vector<decoded_input> inputs, const load_options& opts, std::vector<problem>& problems) {
  snapshot snap;
  std::vector<service> services;  // joined here, then moved into snap.services
  std::map<std::string, std::string> skipped;
  std::vector<endpoint_slice> slices;
  std::vector<backend_entry> backends;
  std::optional<port_range> file_range;
  for (auto& in : inputs) {
    for (auto& svc : in.services) services.push_back(std::move(svc));
    skipped.merge(in.skipped);
    for (auto& s : in.slices) slices.push_back(std::move(s));
    for (auto& b : in.backends) backends.push_back(std::move(b));
    for (auto& n : in.notes) snap.notes.push_back(std::move(n));
    if (in.range) {
      if (file_range && *file_range != *in.range && !opts.range_override)
        problems.push_back({"nodePortRange", "Invalid value: " + quote(in.range->str()) + ": conflicts with " +
                                                 quote(file_range->str()) + " from another file"});
      if (!file_range) file_range = in.range;
    }
  }
  snap.range = opts.range_override ? *opts.range_override : file_range.value_or(port_range{});

  // The first Service with an id receives the endpoints; a duplicate is reported by check_and_allocate().
  std::map<std::string, std::size_t> by_id;
  for (std::size_t i = 0; i < services.size(); ++i) by_id.emplace(services[i].id(), i);

  for (const auto& slice : slices) {
    auto it = by_id.find(slice.ns + "/" + slice.service);
    if (it == by_id.end()) {
      if (!skipped.count(slice.ns + "/" + slice.service))
        snap.notes.push_back(slice.label + ": ignored: Service " + slice.ns + "/" + slice.service + " not found");
      continue;
    }
    service& svc = services[it->second];
    for (auto& port : svc.ports) {
      endpoint_merger merger(port);
      for (const auto& sp : slice.ports) {
        if (sp.name != port.name || sp.proto != port.proto) continue;
        for (endpoint ep : slice.endpoints) {
          ep.address.port = static_cast<std::uint16_t>(sp.port);
          merger.add(ep);
        }
      }
    }
  }

  for (const auto& entry : backends) {
    const std::string id = entry.ns + "/" + entry.service;
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      auto why = skipped.find(id);
      problems.push_back({child_path(entry.path, "service"),
                          why == skipped.end()
                              ? "Not found: " + quote(id) + ": no input defines this Service"
                              : "Invalid value: " + quote(id) + ": the Service is not proxied (" + why->second + ")"});
      continue;
    }
    service& svc = services[it->second];
    for (const auto& bp : entry.ports) {
      bool matched = false;
      for (auto& port : svc.ports) {
        if ((bp.name && *bp.name != port.name) || (bp.port && *bp.port != port.port) || (bp.proto && *bp.proto != port.proto))
          continue;
        matched = true;
        endpoint_merger merger(port);
        for (const auto& ep : bp.endpoints) merger.add(ep);
      }
      if (!matched) {
        std::string wanted;
        if (bp.name) wanted += "name " + quote(*bp.name);
        if (bp.port) wanted += (wanted.empty() ? "" : ", ") + std::string("port ") + std::to_string(*bp.port);
        if (bp.proto) wanted += (wanted.empty() ? "" : ", ") + std::string("protocol ") + std::string(to_string(*bp.proto));
        std::string ports;
        for (const auto& p : svc.ports) ports += (ports.empty() ? "" : ", ") + port_description(p);
        problems.push_back({bp.path, "Not found: " + wanted + ": Service " + id + " has port(s) " + ports});
      }
    }
  }

  // What the EndpointSlice controller does for such Services (kubernetes_objects.hpp).
  for (auto& svc : services)
    if (svc.publish_not_ready_addresses)
      for (auto& port : svc.ports)
        for (auto& ep : port.endpoints) ep.ready = true;

  snap.services.reserve(services.size());
  for (auto& svc : services) snap.services.push_back(std::move(svc));
  check_and_allocate(snap, problems);

  if (problems.empty()) {
    for (const auto& svc : snap.services) {
      if (!svc.kubernetes_object) continue;
      for (const auto& port : svc.ports)
        if (port.node_port_allocated)
          snap.notes.push_back(svc.id() + ": " + port.origin.substr(port.origin.rfind(": ") + 2) +
                               ": no nodePort given; allocated " + std::to_string(port.node_port));
      if (svc.health_check_node_port_allocated)
        snap.notes.push_back(svc.id() + ": no healthCheckNodePort given; allocated " +
                             std::to_string(svc.health_check_node_port));
    }
  }
  return snap;
}

}  // namespace npp::config::detail
