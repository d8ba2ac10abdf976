#include "config/kube_api_config.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "config/loader_internal.hpp"
#include "config/yaml.hpp"

namespace npp::config {
namespace {

using json = nlohmann::json;

std::string read_small_file(const std::filesystem::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(what + ": cannot read " + path.string());
  // Read at most the cap (+1 to tell "larger"): a path such as /dev/zero must not fill memory.
  constexpr std::size_t cap = 4u << 20;
  std::string s;
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    s.append(buf, static_cast<std::size_t>(in.gcount()));
    if (s.size() > cap) throw std::runtime_error(what + ": " + path.string() + " is larger than 4 MiB");
  }
  return s;
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string string_member(const json& obj, const char* key, const std::string& where) {
  const json* v = member(obj, key);
  if (v == nullptr) return "";
  if (!v->is_string()) throw std::runtime_error(where + "." + key + ": must be a string");
  return v->get<std::string>();
}

// The entry of clusters/users/contexts named `name`: its inner object (cluster/user/context).
const json& named(const json& doc, const char* list, const char* inner, const std::string& name,
                  const std::string& file) {
  const json* items = member(doc, list);
  if (items != nullptr && items->is_array()) {
    for (const auto& item : *items) {
      const json* n = member(item, "name");
      if (n != nullptr && n->is_string() && *n == name) {
        const json* body = member(item, inner);
        if (body == nullptr || !body->is_object())
          throw std::runtime_error(file + ": " + list + "[" + name + "]: " + inner + ": Required value");
        return *body;
      }
    }
  }
  throw std::runtime_error(file + ": " + inner + " \"" + name + "\" not found in " + list);
}

}  // namespace

std::string base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int v = value(c);
    if (v < 0 || padding) throw std::runtime_error("invalid base64 data");
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) throw std::runtime_error("invalid base64 data (truncated)");
  return out;
}

void parse_server_url(const std::string& url, api_server_config& out) {
  out.server = url;
  constexpr std::string_view https = "https://";
  if (url.rfind("http://", 0) == 0)
    throw std::runtime_error("server " + url + ": plain http:// is not supported; use the API server's https:// URL");
  if (url.rfind(https, 0) != 0) throw std::runtime_error("server \"" + url + "\": must be an https:// URL");
  std::string rest = url.substr(https.size());
  const auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  out.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  if (authority.empty()) throw std::runtime_error("server \"" + url + "\": no host");
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) throw std::runtime_error("server \"" + url + "\": unterminated [IPv6] host");
    out.host = authority.substr(1, close - 1);
    const std::string tail = authority.substr(close + 1);
    if (!tail.empty() && tail.front() != ':') throw std::runtime_error("server \"" + url + "\": bad port");
    out.port = tail.empty() ? "443" : tail.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    out.host = authority.substr(0, colon);
    out.port = colon == std::string::npos ? "443" : authority.substr(colon + 1);
  }
  if (out.host.empty()) throw std::runtime_error("server \"" + url + "\": no host");
  if (out.port.empty() || out.port.size() > 5 || out.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(out.port) < 1 || std::stoi(out.port) > 65535)
    throw std::runtime_error("server \"" + url + "\": invalid port \"" + out.port + "\"");
}

api_server_config load_kubeconfig(const std::filesystem::path& file, const std::string& context_override) {
  const std::string name = file.string();
  const std::string text = read_small_file(file, "--kubeconfig");
  load_options opts;
  std::vector<problem> problems;
  auto docs = detail::parse_yaml(text, opts, problems);  // JSON is YAML too
  if (!docs || docs->empty() || !(*docs)[0].is_object()) {
    std::string why = problems.empty() ? "not a kubeconfig (expected a YAML mapping)" : problems.front().str();
    throw std::runtime_error(name + ": " + why);
  }
  const json& doc = (*docs)[0];
  if (auto kind = string_member(doc, "kind", name); !kind.empty() && kind != "Config")
    throw std::runtime_error(name + ": kind: Unsupported value: \"" + kind + "\": supported values: \"Config\"");

  std::string context_name = context_override.empty() ? string_member(doc, "current-context", name) : context_override;
  if (context_name.empty())
    throw std::runtime_error(name + ": no current-context set; give --context NAME");
  const json& ctx = named(doc, "contexts", "context", context_name, name);
  const std::string where = name + ": context \"" + context_name + "\"";
  const std::string cluster_name = string_member(ctx, "cluster", where);
  if (cluster_name.empty()) throw std::runtime_error(where + ": cluster: Required value");
  const std::string user_name = string_member(ctx, "user", where);

  api_server_config out;
  out.origin = "kubeconfig " + name + " (context " + context_name + ")";
  const auto dir = file.parent_path();
  auto resolve = [&](const std::string& p) { return std::filesystem::path(p).is_absolute() || dir.empty() ? std::filesystem::path(p) : dir / p; };

  const json& cluster = named(doc, "clusters", "cluster", cluster_name, name);
  const std::string cwhere = name + ": cluster \"" + cluster_name + "\"";
  const std::string server = string_member(cluster, "server", cwhere);
  if (server.empty()) throw std::runtime_error(cwhere + ": server: Required value");
  try {
    parse_server_url(server, out);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(cwhere + ": " + e.what());
  }
  if (const json* v = member(cluster, "insecure-skip-tls-verify")) {
    if (!v->is_boolean()) throw std::runtime_error(cwhere + ".insecure-skip-tls-verify: must be a boolean");
    out.insecure_skip_tls_verify = v->get<bool>();
  }
  try {
    if (auto data = string_member(cluster, "certificate-authority-data", cwhere); !data.empty())
      out.ca_pem = base64_decode(data);
    else if (auto path = string_member(cluster, "certificate-authority", cwhere); !path.empty())
      out.ca_pem = read_small_file(resolve(path), cwhere + ".certificate-authority");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()).rfind(cwhere, 0) == 0 ? e.what()
                                                                          : cwhere + ".certificate-authority-data: " + e.what());
  }

  if (!user_name.empty()) {
    const json& user = named(doc, "users", "user", user_name, name);
    const std::string uwhere = name + ": user \"" + user_name + "\"";
    if (member(user, "exec") != nullptr)
      throw std::runtime_error(uwhere + ": exec credential plugins are not supported; use a token, tokenFile or a client certificate");
    if (member(user, "auth-provider") != nullptr)
      throw std::runtime_error(uwhere + ": auth-provider is not supported; use a token, tokenFile or a client certificate");
    if (member(user, "username") != nullptr || member(user, "password") != nullptr)
      throw std::runtime_error(uwhere + ": basic authentication (username/password) is not supported");
    out.token = string_member(user, "token", uwhere);
    if (auto tf = string_member(user, "tokenFile", uwhere); !tf.empty()) out.token_file = resolve(tf);
    auto pem = [&](const char* data_key, const char* file_key) -> std::string {
      if (auto data = string_member(user, data_key, uwhere); !data.empty()) {
        try {
          return base64_decode(data);
        } catch (const std::runtime_error& e) {
          throw std::runtime_error(uwhere + "." + data_key + ": " + e.what());
        }
      }
      if (auto path = string_member(user, file_key, uwhere); !path.empty())
        return read_small_file(resolve(path), uwhere + "." + file_key);
      return "";
    };
    out.client_cert_pem = pem("client-certificate-data", "client-certificate");
    out.client_key_pem = pem("client-key-data", "client-key");
    if (out.client_cert_pem.empty() != out.client_key_pem.empty())
      throw std::runtime_error(uwhere + ": client-certificate and client-key must be given together");
  }
  return out;
}

api_server_config in_cluster_config(const std::string& service_host, const std::string& service_port,
                                    const std::filesystem::path& account_dir) {
  if (service_host.empty() || service_port.empty())
    throw std::runtime_error(
        "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined "
        "(not running in a pod? give --kubeconfig FILE)");
  api_server_config out;
  const bool v6 = service_host.find(':') != std::string::npos;
  parse_server_url("https://" + (v6 ? "[" + service_host + "]" : service_host) + ":" + service_port, out);
  out.token_file = account_dir / "token";
  (void)read_small_file(out.token_file, "in-cluster service account token");  // fail early, clearly
  out.ca_pem = read_small_file(account_dir / "ca.crt", "in-cluster service account CA");
  out.origin = "in-cluster service account (" + out.server + ")";
  return out;
}

}  // namespace npp::config
