// load_file(): read (size-capped), detect the format, load, validate.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/loader_internal.hpp"

namespace npp::config {
namespace {

// Kubernetes object kinds the endpoint file will accept once the Service/EndpointSlice decoders
// exist (ECOSYSTEM.md 5.9); until then they get a clear "not yet" instead of "unknown field".
constexpr std::string_view kubernetes_kinds[] = {"Service", "ServiceList", "EndpointSlice", "EndpointSliceList", "List"};

// Closes the descriptor on every path out of read_capped().
struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads at most max_bytes (+1 to detect "larger"); also works for pipes and /dev/stdin, whose
// size fstat cannot tell. On failure appends a problem and returns nullopt.
std::optional<std::string> read_capped(const std::filesystem::path& path, std::size_t max_bytes,
                                       std::vector<problem>& problems) {
  auto fail = [&](std::string message) -> std::optional<std::string> {
    problems.push_back({"", std::move(message)});
    return std::nullopt;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open file: " + std::string(std::strerror(errno)));
  fd_closer closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail("cannot stat file: " + std::string(std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) return fail("cannot read file: is a directory");
  const std::string too_large = "file is larger than " + std::to_string(max_bytes) + " bytes";
  if (S_ISREG(st.st_mode) && static_cast<std::uintmax_t>(st.st_size) > max_bytes) return fail(too_large);

  std::string text;
  text.reserve(S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) : 0);
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot read file: " + std::string(std::strerror(errno)));
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_bytes) return fail(too_large);  // it grew, or a pipe
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

// True when a parse failed on the very first character of something that is not JSON at all.
bool looks_like_yaml(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  const auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] != '{' && text[first] != '[';
}

}  // namespace

snapshot load_file(const std::filesystem::path& path, const load_options& opts) {
  const std::string source = path.string();
  std::vector<problem> problems;
  auto text = read_capped(path, opts.max_bytes, problems);
  if (!text) throw config_error(source, std::move(problems));

  auto doc = detail::parse_json(*text, opts, problems);
  if (!doc) {
    if (looks_like_yaml(*text))
      problems.push_back({"", "the endpoints file must be JSON (YAML is not supported)"});
    throw config_error(source, std::move(problems));
  }

  if (doc->is_object() && doc->contains("kind")) {
    const auto& kind = (*doc)["kind"];
    const std::string name = kind.is_string() ? kind.get<std::string>() : kind.dump();
    const bool known = kind.is_string() && std::find(std::begin(kubernetes_kinds), std::end(kubernetes_kinds),
                                                     name) != std::end(kubernetes_kinds);
    problems.push_back(
        {"kind", known ? "Kubernetes objects (kind " + quote(name) +
                             ") are not supported yet; write the native format {\"services\": [...]} (see examples/)"
                       : "Unsupported value: " + quote(name) +
                             ": this is not an endpoints file; expected the native format {\"services\": [...]}"});
    throw config_error(source, std::move(problems));
  }

  // The native format. Field problems and cross-checks are reported together.
  snapshot snap = detail::native_from_json(*doc, opts, problems);
  detail::check_and_allocate(snap, problems);
  if (!problems.empty()) throw config_error(source, std::move(problems));
  snap.source = source;
  return snap;
}

}  // namespace npp::config
