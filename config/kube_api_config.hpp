#pragma once
// Where the Kubernetes API server is and how to authenticate to it: from a kubeconfig file
// (--kubeconfig, optionally --context) or from the in-cluster service account (KUBERNETES.md §4).
// Pure: reads files, no sockets. Every failure is a std::runtime_error whose message names the
// file and the field, as kubectl would.
#include <filesystem>
#include <string>

namespace npp::config {

struct api_server_config {
  std::string server;     ///< as given: "https://10.96.0.1:443"
  std::string host;       ///< "10.96.0.1", "::1" (no brackets), "api.example.com"
  std::string port;       ///< "443" when the URL has none
  std::string base_path;  ///< path prefix of the server URL without a trailing "/" ("" usually)
  /// PEM of the CA bundle to trust (certificate-authority(-data), in-cluster ca.crt). Empty: the
  /// system's default trust store.
  std::string ca_pem;
  bool insecure_skip_tls_verify = false;
  std::string token;       ///< static bearer token (users[].user.token)
  /// Bearer token file, re-read periodically (tokenFile, the projected service-account token).
  std::filesystem::path token_file;
  std::string client_cert_pem;  ///< client-certificate(-data)
  std::string client_key_pem;   ///< client-key(-data)
  std::string origin;  ///< "kubeconfig FILE (context NAME)" or "in-cluster service account", for logs
};

/// Reads a kubeconfig (YAML or JSON; apiVersion v1, kind Config). `context` empty: the file's
/// current-context. Relative file paths are resolved against the kubeconfig's directory, as
/// client-go does. exec and auth-provider credentials are refused (not supported).
api_server_config load_kubeconfig(const std::filesystem::path& file, const std::string& context = "");

/// client-go's rest.InClusterConfig: host and port from KUBERNETES_SERVICE_HOST/PORT (passed in;
/// main() reads the environment), token file and CA from the service-account directory.
api_server_config in_cluster_config(const std::string& service_host, const std::string& service_port,
                                    const std::filesystem::path& account_dir =
                                        "/var/run/secrets/kubernetes.io/serviceaccount");

/// Standard base64 (padding optional, whitespace ignored); throws std::runtime_error on bad input.
std::string base64_decode(std::string_view text);

/// Splits an https:// URL into host, port and base_path of `out`; throws std::runtime_error.
void parse_server_url(const std::string& url, api_server_config& out);

}  // namespace npp::config
