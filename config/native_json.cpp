// The native endpoint-file format: {"services": [{"name", "ports": [{"port", "nodePort",
// "endpoints": [...]}]}]}. Parsing goes through a bounded SAX builder (hostile-input caps), then
// a field reader that reports every problem with its JSON path in Kubernetes' field-error words.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <initializer_list>
#include <set>

#include "config/loader_internal.hpp"

namespace npp::config {
namespace detail {
namespace {

using json = nlohmann::json;

// Longest string echoed back in a message; the rest is elided so a hostile value cannot flood logs.
constexpr std::size_t max_echoed_chars = 64;

}  // namespace

std::string line_column(std::string_view text, std::size_t position) {
  position = std::min(position, text.size());
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < position; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// nlohmann's messages can echo raw input bytes ("last read: '...'"); keep them printable ASCII.
std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// quote() of at most max_echoed_chars bytes, then "...": a hostile 1 MB key or value must not
// become a 1 MB log line.
std::string quote_short(std::string_view s) {
  if (s.size() <= max_echoed_chars) return quote(s);
  return quote(s.substr(0, max_echoed_chars)) + "...";
}

// A key as it appears in a reported path: printable and short.
std::string path_segment(std::string_view key) {
  if (key.size() <= max_echoed_chars) return printable(key);
  return printable(key.substr(0, max_echoed_chars)) + "...";
}

namespace {

// Builds the DOM from SAX events so that depth is checked *before* a container is created: 100k
// nested '[' stop at the cap instead of building (and later destroying) a 100k-deep tree.
// nlohmann's SAX driver itself is iterative, so the parse does not recurse either.
// Duplicate keys are reported (nlohmann would silently keep the last one).
class bounded_dom_builder {
 public:
  bounded_dom_builder(std::string_view text, int max_depth, std::vector<problem>& problems)
      : text_(text), max_depth_(max_depth), problems_(problems) {}

  json& result() { return root_; }

  bool null() { return add(json(nullptr)); }
  bool boolean(bool v) { return add(json(v)); }
  bool number_integer(json::number_integer_t v) { return add(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return add(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t& /*raw*/) { return add(json(v)); }
  bool string(json::string_t& v) { return add(json(std::move(v))); }
  bool binary(json::binary_t& /*v*/) { return false; }  // JSON text never produces binary
  bool start_object(std::size_t /*elements*/) { return open(json::value_t::object); }
  bool start_array(std::size_t /*elements*/) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& k) {
    if (stack_.back()->contains(k)) problems_.push_back({paths_.back(), "duplicate key " + quote_short(k)});
    key_ = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& /*last_token*/, const json::exception& ex) {
    std::string message = ex.what();
    // Drop "[json.exception.parse_error.101] "; keep nlohmann's "parse error at line L, column C: ...".
    if (message.rfind("[json.exception.", 0) == 0) {
      auto end = message.find("] ");
      if (end != std::string::npos) message.erase(0, end + 2);
    }
    // Some errors (number overflow, 406) carry no position of their own.
    if (message.find("line ") == std::string::npos)
      message = "parse error at " + line_column(text_, position) + ": " + message;
    problems_.push_back({"", "invalid JSON: " + printable(message)});
    return false;
  }

 private:
  // Stores v where the grammar puts it: the root, the next array element or the value of key_.
  // Returned pointers stay valid while the container is open: only the innermost container
  // grows, and object members live in map nodes.
  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    json& slot = parent[key_];
    slot = std::move(v);
    return &slot;
  }

  bool add(json&& v) {
    place(std::move(v));
    return true;
  }

  bool open(json::value_t type) {
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      problems_.push_back({stack_.empty() ? "" : paths_.back(),
                           "invalid JSON: nesting is deeper than " + std::to_string(max_depth_) + " levels"});
      return false;
    }
    std::string path;
    if (!stack_.empty())
      path = stack_.back()->is_array() ? index_path(paths_.back(), stack_.back()->size())
                                       : child_path(paths_.back(), path_segment(key_));
    stack_.push_back(place(json(type)));
    paths_.push_back(std::move(path));
    return true;
  }

  bool close() {
    stack_.pop_back();
    paths_.pop_back();
    return true;
  }

  std::string_view text_;
  int max_depth_;
  std::vector<problem>& problems_;
  json root_;
  std::vector<json*> stack_;       ///< open containers, innermost last
  std::vector<std::string> paths_;  ///< JSON path of each open container
  std::string key_;                 ///< the key whose value comes next
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Field reader

// A value as it appears in "Invalid value: <v>: ...": strings quoted and truncated, containers
// abbreviated.
std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::string: {
      return quote_short(v.get_ref<const std::string&>());
    }
    case json::value_t::object: return "{...}";
    case json::value_t::array: return "[...]";
    default: return v.dump();
  }
}

std::string invalid(const std::string& value, std::string_view detail) {
  return "Invalid value: " + value + ": " + std::string(detail);
}

std::string unsupported(std::string_view value, std::initializer_list<std::string_view> supported) {
  std::string message = "Unsupported value: " + quote_short(value) + ": supported values: ";
  bool first = true;
  for (auto s : supported) {
    if (!first) message += ", ";
    message += quote(s);
    first = false;
  }
  return message;
}

namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Kubernetes IsDNS1123Label (namespaces, port names). Returns the problem detail, or "" if valid.
std::string dns1123_label_error(std::string_view s) {
  if (s.size() > 63) return "must be no more than 63 characters";
  bool ok = !s.empty() && is_lower_alnum(s.front()) && is_lower_alnum(s.back()) &&
            std::all_of(s.begin(), s.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
  if (ok) return "";
  return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
         "start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
}

// Kubernetes ValidateServiceName is IsDNS1035Label: like 1123 but must start with a letter.
std::string dns1035_label_error(std::string_view s) {
  if (s.size() > 63) return "must be no more than 63 characters";
  bool ok = !s.empty() && s.front() >= 'a' && s.front() <= 'z' && is_lower_alnum(s.back()) &&
            std::all_of(s.begin(), s.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
  if (ok) return "";
  return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
         "alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')";
}

// Case-insensitive equality, for "did you mean" hints on unknown fields.
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

class native_reader {
 public:
  explicit native_reader(std::vector<problem>& problems) : problems_(problems) {}

  void read(const json& doc, decoded_input& out) {
    if (!is_object(doc, "")) return;
    // "$schema" lets editors find config/nodeport-proxy.schema.json; the loader ignores it.
    reject_unknown_keys(doc, "", {"$schema", "nodePortRange", "services", "backends"});

    if (auto text = string_field(doc, "", "nodePortRange")) {
      port_range file_range;
      std::string why;
      if (!port_range::parse(*text, file_range, &why))
        add("nodePortRange", invalid(quote_short(*text), why));
      else
        out.range = file_range;  // --service-node-port-range still wins (assemble())
    }

    // "services" is required unless the file only supplies backends for Services defined elsewhere.
    const json* services = find(doc, "services");
    if (services == nullptr) {
      if (find(doc, "backends") == nullptr) add("services", "Required value");
    } else if (!services->is_array()) {
      add("services", invalid(describe(*services), "must be an array"));
    } else {
      for (std::size_t i = 0; i < services->size(); ++i) {
        out.services.push_back(read_service((*services)[i], index_path("services", i)));
        out.services.back().origin = index_path("services", i);
      }
    }

    if (const json* backends = find(doc, "backends")) {
      if (!backends->is_array()) {
        add("backends", invalid(describe(*backends), "must be an array"));
      } else {
        for (std::size_t i = 0; i < backends->size(); ++i)
          read_backend((*backends)[i], index_path("backends", i), out);
      }
    }
  }

 private:
  void add(std::string path, std::string message) { problems_.push_back({std::move(path), std::move(message)}); }

  bool is_object(const json& j, const std::string& path) {
    if (j.is_object()) return true;
    add(path, invalid(describe(j), "must be an object"));
    return false;
  }

  // Strict decoding: a misspelt key ("nodeport") must not silently mean "allocate one for me".
  void reject_unknown_keys(const json& obj, const std::string& path, std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : obj.items()) {
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string message = "unknown field " + quote_short(key);
      for (auto k : known)
        if (iequals(k, key)) message += " (did you mean " + quote(k) + "?)";
      add(path, message);
    }
  }

  static const json* find(const json& obj, std::string_view key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  // Missing -> nullopt. Present but not a string -> problem, nullopt.
  std::optional<std::string> string_field(const json& obj, const std::string& path, std::string_view key) {
    const json* v = find(obj, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      add(child_path(path, key), invalid(describe(*v), "must be a string"));
      return std::nullopt;
    }
    return v->get<std::string>();
  }

  // Endpoint conditions: true/false, or null meaning "unset" as in an EndpointSlice.
  std::optional<bool> condition_field(const json& obj, const std::string& path, std::string_view key) {
    const json* v = find(obj, key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!v->is_boolean()) {
      add(child_path(path, key), invalid(describe(*v), "must be a boolean (true or false)"));
      return std::nullopt;
    }
    return v->get<bool>();
  }

  // An integer in [lo, hi]. Strings ("80"), floats (1.5, 1e+20), booleans and null are refused
  // rather than coerced: a port is either exactly right or an error.
  std::optional<int> integer_value(const json& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                                   const std::string& range_detail, std::string_view hint = {}) {
    const std::string suffix = hint.empty() ? "" : " (" + std::string(hint) + ")";
    if (!v.is_number_integer()) {
      add(path, invalid(describe(v), "must be an integer" + suffix));
      return std::nullopt;
    }
    // nlohmann stores non-negative literals as unsigned and the rest as signed; both need checking.
    const bool in_range = v.is_number_unsigned()
                              ? v.get<std::uint64_t>() >= static_cast<std::uint64_t>(std::max<std::int64_t>(lo, 0)) &&
                                    v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi)
                              : v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi;
    if (!in_range) {
      add(path, invalid(v.dump(), range_detail + suffix));
      return std::nullopt;
    }
    return static_cast<int>(v.get<std::int64_t>());
  }

  service read_service(const json& j, const std::string& path) {
    service svc;
    if (!is_object(j, path)) return svc;
    reject_unknown_keys(j, path, {"namespace", "name", "sessionAffinity", "sessionAffinityConfig",
                                  "externalTrafficPolicy", "allowSourceRanges", "proxyProtocol", "maxConnections",
                                  "maxConnectionsPerSource", "tls", "upstreamTLS", "ports"});

    // Defaults (one visible block): namespace "default", sessionAffinity None with a 10800 s
    // timeout, externalTrafficPolicy Cluster, protocol TCP, nodePort allocated. They live in the
    // member initialisers of service/service_port (snapshot.hpp); absent keys keep them.
    if (auto ns = string_field(j, path, "namespace")) {
      if (auto why = dns1123_label_error(*ns); ns->empty())
        add(child_path(path, "namespace"), "Required value");
      else if (!why.empty())
        add(child_path(path, "namespace"), invalid(quote_short(*ns), why));
      else
        svc.ns = *ns;
    }

    if (find(j, "name") == nullptr) {
      add(child_path(path, "name"), "Required value");
    } else if (auto name = string_field(j, path, "name")) {
      if (auto why = dns1035_label_error(*name); name->empty())
        add(child_path(path, "name"), "Required value");
      else if (!why.empty())
        add(child_path(path, "name"), invalid(quote_short(*name), why));
      else
        svc.name = *name;
    }

    bool affinity_known = true;
    if (auto affinity = string_field(j, path, "sessionAffinity")) {
      if (*affinity == "None") {
        svc.affinity = session_affinity::none;
      } else if (*affinity == "ClientIP") {
        svc.affinity = session_affinity::client_ip;
      } else {
        affinity_known = false;
        add(child_path(path, "sessionAffinity"), unsupported(*affinity, {"ClientIP", "None"}));
      }
    } else if (find(j, "sessionAffinity") != nullptr) {
      affinity_known = false;
    }
    if (const json* config = find(j, "sessionAffinityConfig")) {
      const std::string config_path = child_path(path, "sessionAffinityConfig");
      // Kubernetes' defaulting quietly drops this when affinity is None; in a hand-written file
      // it is almost always a forgotten "sessionAffinity": "ClientIP", so say so.
      if (affinity_known && svc.affinity == session_affinity::none)
        add(config_path, "Forbidden: must not be set when session affinity is None");
      read_affinity_config(*config, config_path, svc);
    }

    if (auto policy = string_field(j, path, "externalTrafficPolicy")) {
      if (*policy == "Cluster")
        svc.external_traffic_policy = traffic_policy::cluster;
      else if (*policy == "Local")
        svc.external_traffic_policy = traffic_policy::local;
      else
        add(child_path(path, "externalTrafficPolicy"), unsupported(*policy, {"Cluster", "Local"}));
    }

    read_access(j, path, svc);
    read_tls(j, path, svc);

    const std::string ports_path = child_path(path, "ports");
    const json* ports = find(j, "ports");
    if (ports == nullptr || (ports->is_array() && ports->empty())) {
      add(ports_path, "Required value");
    } else if (!ports->is_array()) {
      add(ports_path, invalid(describe(*ports), "must be an array"));
    } else {
      std::vector<bool> valid_name, valid_key;
      for (std::size_t k = 0; k < ports->size(); ++k) {
        bool name_ok = false, key_ok = false;
        svc.ports.push_back(read_port((*ports)[k], index_path(ports_path, k), name_ok, key_ok));
        svc.ports.back().origin = index_path(ports_path, k);
        valid_name.push_back(name_ok);
        valid_key.push_back(key_ok);
      }
      check_port_set(svc, ports_path, valid_name, valid_key);
    }
    return svc;
  }

  // allowSourceRanges, proxyProtocol, maxConnections, maxConnectionsPerSource. Defaults (absent
  // keys): every source allowed, no PROXY header, no cap. Rules across ports (PROXY protocol and
  // UDP) are checked with the whole snapshot (check_access in validate.cpp), for every input.
  void read_access(const json& j, const std::string& path, service& svc) {
    if (const json* ranges = find(j, "allowSourceRanges")) {
      const std::string ranges_path = child_path(path, "allowSourceRanges");
      if (!ranges->is_array()) {
        add(ranges_path, invalid(describe(*ranges), "must be an array of CIDR blocks such as \"10.0.0.0/8\""));
      } else {
        for (std::size_t k = 0; k < ranges->size(); ++k) {
          const json& item = (*ranges)[k];
          if (!item.is_string()) {
            add(index_path(ranges_path, k), invalid(describe(item), "must be a string such as \"10.0.0.0/8\""));
            continue;
          }
          std::string why;
          if (auto block = parse_source_range(item.get_ref<const std::string&>(), &why))
            svc.allow_source_ranges.push_back(*block);
          else
            add(index_path(ranges_path, k), invalid(describe(item), why));
        }
      }
    }
    if (auto version = string_field(j, path, "proxyProtocol")) {
      if (*version == "v1")
        svc.proxy_protocol = proxy_protocol_version::v1;
      else if (*version == "v2")
        svc.proxy_protocol = proxy_protocol_version::v2;
      else
        add(child_path(path, "proxyProtocol"), unsupported(*version, {"v1", "v2"}));
    }
    // 0 would read as "no connection at all" to some and "no limit" to others: omit the key instead.
    for (auto [key, out] : {std::pair<std::string_view, std::size_t*>{"maxConnections", &svc.max_connections},
                            {"maxConnectionsPerSource", &svc.max_connections_per_source}}) {
      if (const json* limit = find(j, key)) {
        if (auto n = integer_value(*limit, child_path(path, key), 1, max_connection_limit, connection_limit_range,
                                   "omit " + std::string(key) + " for no limit"))
          *out = static_cast<std::size_t>(*n);
      }
    }
  }

  // A file name: a non-empty string. Existence, readability and contents are checked with the
  // whole snapshot (check_tls_files), once relative paths are resolved.
  std::optional<std::string> file_field(const json& obj, const std::string& path, std::string_view key, bool required) {
    if (find(obj, key) == nullptr) {
      if (required) add(child_path(path, key), "Required value");
      return std::nullopt;
    }
    auto name = string_field(obj, path, key);
    if (name && name->empty()) {
      add(child_path(path, key), "Required value: a file name");
      return std::nullopt;
    }
    return name;
  }

  // "tls": {"certFile", "keyFile", "ocspResponseFile", "certificates": [{"certFile", "keyFile",
  // "ocspResponseFile"}...], "clientCAFile", "crlFile"}
  // and "upstreamTLS": {"caFile", "serverName", "insecureSkipVerify"}.
  void read_tls(const json& j, const std::string& path, service& svc) {
    if (const json* tls = find(j, "tls")) {
      const std::string tls_path = child_path(path, "tls");
      if (is_object(*tls, tls_path)) {
        reject_unknown_keys(*tls, tls_path,
                            {"certFile", "keyFile", "ocspResponseFile", "certificates", "clientCAFile", "crlFile"});
        auto cert = file_field(*tls, tls_path, "certFile", true);
        auto key = file_field(*tls, tls_path, "keyFile", true);
        auto ocsp = file_field(*tls, tls_path, "ocspResponseFile", false);
        if (cert && key) svc.tls.certificates.push_back({*cert, *key, ocsp.value_or("")});
        if (const json* more = find(*tls, "certificates")) {
          const std::string more_path = child_path(tls_path, "certificates");
          if (!more->is_array()) {
            add(more_path, invalid(describe(*more), "must be an array of {\"certFile\", \"keyFile\"} objects"));
          } else {
            for (std::size_t k = 0; k < more->size(); ++k) {
              const std::string item_path = index_path(more_path, k);
              if (!is_object((*more)[k], item_path)) continue;
              reject_unknown_keys((*more)[k], item_path, {"certFile", "keyFile", "ocspResponseFile"});
              auto c = file_field((*more)[k], item_path, "certFile", true);
              auto k2 = file_field((*more)[k], item_path, "keyFile", true);
              auto o = file_field((*more)[k], item_path, "ocspResponseFile", false);
              if (c && k2) svc.tls.certificates.push_back({*c, *k2, o.value_or("")});
            }
          }
        }
        if (auto ca = file_field(*tls, tls_path, "clientCAFile", false)) svc.tls.client_ca_file = *ca;
        if (auto crl = file_field(*tls, tls_path, "crlFile", false)) {
          svc.tls.crl_file = *crl;
          if (find(*tls, "clientCAFile") == nullptr)
            add(child_path(tls_path, "crlFile"), "Forbidden: a CRL applies to client certificates: set clientCAFile too");
        }
      }
    }
    if (const json* up = find(j, "upstreamTLS")) {
      const std::string up_path = child_path(path, "upstreamTLS");
      if (is_object(*up, up_path)) {
        reject_unknown_keys(*up, up_path, {"caFile", "serverName", "insecureSkipVerify"});
        svc.upstream_tls.enabled = true;
        if (auto ca = file_field(*up, up_path, "caFile", false)) svc.upstream_tls.ca_file = *ca;
        if (auto name = string_field(*up, up_path, "serverName")) svc.upstream_tls.server_name = *name;
        if (const json* skip = find(*up, "insecureSkipVerify")) {
          if (!skip->is_boolean())
            add(child_path(up_path, "insecureSkipVerify"), invalid(describe(*skip), "must be a boolean (true or false)"));
          else
            svc.upstream_tls.insecure_skip_verify = skip->get<bool>();
        }
      }
    }
  }

  void read_affinity_config(const json& config, const std::string& path, service& svc) {
    if (!is_object(config, path)) return;
    reject_unknown_keys(config, path, {"clientIP"});
    const json* client_ip = find(config, "clientIP");
    if (client_ip == nullptr) return;
    const std::string client_path = child_path(path, "clientIP");
    if (!is_object(*client_ip, client_path)) return;
    reject_unknown_keys(*client_ip, client_path, {"timeoutSeconds"});
    if (const json* timeout = find(*client_ip, "timeoutSeconds")) {
      // Kubernetes' own wording (validateClientIPAffinityConfig), though 86400 itself is allowed.
      if (auto seconds = integer_value(*timeout, child_path(client_path, "timeoutSeconds"), 1, 86400,
                                       "must be greater than 0 and less than 86400"))
        svc.affinity_timeout_seconds = *seconds;
    }
  }

  // Rules across the ports of one Service (Kubernetes validateServicePort and friends).
  void check_port_set(const service& svc, const std::string& ports_path, const std::vector<bool>& valid_name,
                      const std::vector<bool>& valid_key) {
    std::set<std::string> names;
    std::set<std::pair<protocol, int>> keys;
    for (std::size_t k = 0; k < svc.ports.size(); ++k) {
      const auto& port = svc.ports[k];
      const std::string port_path = index_path(ports_path, k);
      if (valid_name[k]) {
        if (port.name.empty() && svc.ports.size() > 1)
          add(child_path(port_path, "name"), "Required value");
        else if (!port.name.empty() && !names.insert(port.name).second)
          add(child_path(port_path, "name"), "Duplicate value: " + quote(port.name));
      }
      if (valid_key[k] && !keys.insert({port.proto, port.port}).second)
        add(port_path, "Duplicate value: " + std::to_string(port.port) + "/" + std::string(to_string(port.proto)) +
                           " (protocol and port must be unique within a service)");
    }
  }

  service_port read_port(const json& j, const std::string& path, bool& name_ok, bool& key_ok) {
    service_port port;
    if (!is_object(j, path)) return port;
    reject_unknown_keys(j, path, {"name", "protocol", "port", "nodePort", "endpoints"});

    name_ok = true;
    if (find(j, "name") != nullptr) {
      name_ok = false;
      if (auto name = string_field(j, path, "name")) {
        if (name->empty()) {
          name_ok = true;
        } else if (auto why = dns1123_label_error(*name); !why.empty()) {
          add(child_path(path, "name"), invalid(quote_short(*name), why));
        } else {
          port.name = *name;
          name_ok = true;
        }
      }
    }

    bool proto_ok = true;
    if (find(j, "protocol") != nullptr) {
      proto_ok = false;
      if (auto proto = string_field(j, path, "protocol")) {
        // Exact case, as the apiserver does: "tcp" is as wrong as "SCTP" is unsupported.
        if (*proto == "TCP" || *proto == "UDP") {
          port.proto = *proto == "TCP" ? protocol::tcp : protocol::udp;
          proto_ok = true;
        } else {
          add(child_path(path, "protocol"), unsupported(*proto, {"TCP", "UDP"}));
        }
      }
    }

    bool number_ok = false;
    if (const json* number = find(j, "port")) {
      if (auto n = integer_value(*number, child_path(path, "port"), 1, 65535, "must be between 1 and 65535, inclusive")) {
        port.port = *n;
        number_ok = true;
      }
    } else {
      // Kubernetes requires port; it never defaults to nodePort.
      add(child_path(path, "port"), "Required value");
    }
    key_ok = proto_ok && number_ok;

    if (const json* node_port = find(j, "nodePort")) {
      // 0 and null mean "allocate" in Kubernetes; here the way to say that is to omit the key,
      // so that a stray 0 from a template cannot quietly move a service to a random port.
      if (auto n = integer_value(*node_port, child_path(path, "nodePort"), 1, 65535,
                                 "must be between 1 and 65535, inclusive", "omit nodePort to have one allocated"))
        port.node_port = *n;
    }

    if (const json* endpoints = find(j, "endpoints")) read_endpoints(*endpoints, child_path(path, "endpoints"), port);
    return port;
  }

  // One "backends" entry: endpoints for a Service that another input (a manifest) defines.
  // Everything about the Service itself (nodePort, affinity, policy) comes from that input, so
  // only the keys that find the Service and its port are accepted here.
  void read_backend(const json& j, const std::string& path, decoded_input& out) {
    if (!is_object(j, path)) return;
    reject_unknown_keys(j, path, {"namespace", "service", "ports"});
    backend_entry entry;
    entry.path = path;
    bool ok = true;
    if (auto ns = string_field(j, path, "namespace")) {
      if (auto why = dns1123_label_error(*ns); !why.empty()) {
        add(child_path(path, "namespace"), ns->empty() ? "Required value" : invalid(quote_short(*ns), why));
        ok = false;
      } else {
        entry.ns = *ns;
      }
    } else if (find(j, "namespace") != nullptr) {
      ok = false;
    }
    if (find(j, "service") == nullptr) {
      add(child_path(path, "service"), "Required value");
      ok = false;
    } else if (auto name = string_field(j, path, "service")) {
      if (name->empty()) {
        add(child_path(path, "service"), "Required value");
        ok = false;
      } else {
        entry.service = *name;
      }
    } else {
      ok = false;
    }

    const std::string ports_path = child_path(path, "ports");
    const json* ports = find(j, "ports");
    if (ports == nullptr || (ports->is_array() && ports->empty())) {
      add(ports_path, "Required value");
      ok = false;
    } else if (!ports->is_array()) {
      add(ports_path, invalid(describe(*ports), "must be an array"));
      ok = false;
    } else {
      for (std::size_t k = 0; k < ports->size(); ++k) {
        const json& p = (*ports)[k];
        const std::string port_path = index_path(ports_path, k);
        if (!is_object(p, port_path)) {
          ok = false;
          continue;
        }
        reject_unknown_keys(p, port_path, {"name", "port", "protocol", "endpoints"});
        backend_port bp;
        bp.path = port_path;
        if (auto name = string_field(p, port_path, "name")) bp.name = *name;
        else if (find(p, "name") != nullptr) ok = false;
        if (const json* number = find(p, "port")) {
          if (auto n = integer_value(*number, child_path(port_path, "port"), 1, 65535,
                                     "must be between 1 and 65535, inclusive"))
            bp.port = *n;
          else
            ok = false;
        }
        if (auto proto = string_field(p, port_path, "protocol")) {
          if (*proto == "TCP" || *proto == "UDP") {
            bp.proto = *proto == "TCP" ? protocol::tcp : protocol::udp;
          } else {
            add(child_path(port_path, "protocol"), unsupported(*proto, {"TCP", "UDP"}));
            ok = false;
          }
        } else if (find(p, "protocol") != nullptr) {
          ok = false;
        }
        if (!bp.name && find(p, "port") == nullptr) {
          add(port_path, "Required value: \"name\" or \"port\" (which port of the Service these endpoints serve)");
          ok = false;
        }
        if (const json* endpoints = find(p, "endpoints")) {
          service_port holder;
          read_endpoints(*endpoints, child_path(port_path, "endpoints"), holder);
          bp.endpoints = std::move(holder.endpoints);
        } else {
          add(child_path(port_path, "endpoints"), "Required value");
          ok = false;
        }
        entry.ports.push_back(std::move(bp));
      }
    }
    // A broken entry is reported once, by its fields; matching it too would only add noise.
    if (ok) out.backends.push_back(std::move(entry));
  }

  // Endpoints are merged by address, first occurrence wins: the same backend listed twice
  // (as in overlapping EndpointSlices) must not get twice the traffic.
  void read_endpoints(const json& list, const std::string& path, service_port& port) {
    if (!list.is_array()) {
      add(path, invalid(describe(list), "must be an array"));
      return;
    }
    std::set<host_port> seen;
    for (std::size_t k = 0; k < list.size(); ++k) {
      const json& item = list[k];
      std::string item_path = index_path(path, k);
      endpoint ep;
      std::string address_path = item_path;
      std::optional<std::string> address;
      if (item.is_string()) {
        address = item.get<std::string>();
      } else if (item.is_object()) {
        reject_unknown_keys(item, item_path, {"address", "ready", "serving", "terminating", "nodeName"});
        address_path = child_path(item_path, "address");
        if (find(item, "address") == nullptr)
          add(address_path, "Required value");
        else
          address = string_field(item, item_path, "address");
        if (auto v = condition_field(item, item_path, "ready")) ep.ready = *v;
        if (auto v = condition_field(item, item_path, "serving")) ep.serving = *v;
        if (auto v = condition_field(item, item_path, "terminating")) ep.terminating = *v;
        if (auto node = string_field(item, item_path, "nodeName")) ep.node_name = *node;
      } else {
        add(item_path, invalid(describe(item), "must be \"IP:port\" or an object with \"address\""));
        continue;
      }
      if (!address) continue;
      std::string why;
      auto parsed = parse_endpoint_address(*address, &why);
      if (!parsed) {
        add(address_path, invalid(describe(json(*address)), why));
        continue;
      }
      ep.address = *parsed;
      if (seen.insert(ep.address).second) port.endpoints.push_back(std::move(ep));
    }
  }

  std::vector<problem>& problems_;
};

}  // namespace

std::optional<nlohmann::json> parse_json(std::string_view text, const load_options& opts,
                                         std::vector<problem>& problems) {
  if (text.size() > opts.max_bytes) {
    problems.push_back({"", "input is larger than " + std::to_string(opts.max_bytes) + " bytes"});
    return std::nullopt;
  }
  std::string_view body = text;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);  // nlohmann skips a UTF-8 BOM too
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    problems.push_back({"", "invalid JSON: the input is empty (expected an object such as {\"services\": []})"});
    return std::nullopt;
  }
  // JSON text never contains a raw NUL (inside strings it must be written \u0000), but nlohmann's
  // lexer takes one as the end of input and would ignore everything after it.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    problems.push_back({"", "invalid JSON: parse error at " + line_column(text, nul) + ": NUL byte"});
    return std::nullopt;
  }
  const std::size_t before = problems.size();
  bounded_dom_builder builder(text, opts.max_depth, problems);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true,
                         /*ignore_comments=*/false);
  } catch (const json::exception& e) {  // defensive: the SAX driver reports through parse_error
    problems.push_back({"", "invalid JSON: " + printable(e.what())});
    return std::nullopt;
  }
  if (!ok) {
    if (problems.size() == before) problems.push_back({"", "invalid JSON"});
    return std::nullopt;
  }
  return std::move(builder.result());
}

void native_from_json(const nlohmann::json& doc, decoded_input& out, std::vector<problem>& problems) {
  native_reader(problems).read(doc, out);
}

std::optional<host_port> parse_endpoint_address(std::string_view text, std::string* why) {
  auto fail = [&](std::string detail) -> std::optional<host_port> {
    if (why) *why = std::move(detail);
    return std::nullopt;
  };
  constexpr const char* form = "must be IP:port, e.g. \"10.0.0.5:8080\" or \"[fd00::5]:8080\"";
  if (text.empty()) return fail(form);

  // Diagnose the common mistakes before handing the text to host_port::parse, which only says no.
  std::string_view host, port_text;
  bool want_v6 = false;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return fail("missing ']' after the IPv6 address");
    if (close + 1 == text.size()) return fail("missing port: " + std::string(form));
    if (text[close + 1] != ':') return fail("expected ':' and a port after ']'");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    want_v6 = true;
  } else {
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 0) return fail("missing port: " + std::string(form));
    if (colons > 1) return fail("an IPv6 address must be in brackets, e.g. \"[fd00::5]:8080\"");
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  auto ip = ip_address::parse(host);
  if (!ip || ip->v6 != want_v6) {
    if (!want_v6 && std::any_of(host.begin(), host.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
      return fail("host names are not supported, use an IP address");
    return fail(want_v6 ? "not a valid IPv6 address" : "not a valid IPv4 address");
  }
  if (port_text.empty()) return fail("missing port: " + std::string(form));
  if (!std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("the port must be a number between 1 and 65535");
  auto parsed = host_port::parse(text);
  if (!parsed) return fail("the port must be between 1 and 65535, inclusive");

  host_port result{parsed->ip.unmapped(), parsed->port};
  if (auto special = special_ip_error(result.ip); !special.empty()) return fail(special);
  return result;
}

std::string special_ip_error(const ip_address& address) {
  // Kubernetes ValidateNonSpecialIP: never dial "any" or a group address.
  const ip_address ip = address.unmapped();
  if (ip.is_unspecified()) return ip.v6 ? "may not be unspecified (::)" : "may not be unspecified (0.0.0.0)";
  if (ip.is_multicast())
    return ip.v6 ? "may not be in the multicast range (ff00::/8)" : "may not be in the multicast range (224.0.0.0/4)";
  if (!ip.v6 && ip.bytes[0] == 255 && ip.bytes[1] == 255 && ip.bytes[2] == 255 && ip.bytes[3] == 255)
    return "may not be the broadcast address (255.255.255.255)";
  return "";
}

}  // namespace detail

snapshot load_native_json(std::string_view text, const load_options& opts, const std::string& source) {
  std::vector<problem> problems;
  snapshot snap;
  if (auto doc = detail::parse_json(text, opts, problems)) {
    std::vector<detail::decoded_input> inputs(1);
    detail::native_from_json(*doc, inputs[0], problems);
    for (auto& svc : inputs[0].services) detail::resolve_tls_paths(svc, std::filesystem::current_path());
    snap = detail::assemble(std::move(inputs), opts, problems);
  }
  if (!problems.empty()) throw config_error(source, std::move(problems));
  snap.source = source;
  return snap;
}

}  // namespace npp::config
