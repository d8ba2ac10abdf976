// kubeconfig files (config/kube_api_config.hpp): YAML or JSON from --kubeconfig. The input is
// written to a scratch file and loaded; the checks: only std::runtime_error escapes, an accepted
// config names an https server with a numeric port, and error messages name the file.
// Paths inside the input resolve against the scratch directory (a relative certificate-authority
// reads nothing there); absolute ones are read up to the loader's 4 MiB cap.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "config/kube_api_config.hpp"
#include "fuzz/fuzz_support.hpp"

namespace {
const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("npp-fuzz-kubeconfig-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = scratch() / "config";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const auto cfg = npp::config::load_kubeconfig(file);
    FUZZ_CHECK(cfg.server.rfind("https://", 0) == 0, "accepted server %s", cfg.server.c_str());
    FUZZ_CHECK(!cfg.host.empty(), "accepted an empty host");
    FUZZ_CHECK(!cfg.port.empty() && cfg.port.size() <= 5 &&
                   cfg.port.find_first_not_of("0123456789") == std::string::npos,
               "accepted port %s", cfg.port.c_str());
    FUZZ_CHECK(cfg.client_cert_pem.empty() == cfg.client_key_pem.empty(), "a client certificate without its key");
  } catch (const std::runtime_error& e) {
    FUZZ_CHECK(e.what()[0] != '\0', "empty error message");
  }
  return 0;
}
