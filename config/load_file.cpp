// load_file() / load_files() / load_text(): read (size-capped), detect the format from the
// content (JSON or YAML; native format or Kubernetes objects), decode every input, then merge
// them into one snapshot (assemble(): EndpointSlices and "backends" join their Services) and
// validate it as a whole.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/kubernetes_objects.hpp"
#include "config/loader_internal.hpp"
#include "config/yaml.hpp"

namespace npp::config {
namespace {

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

// JSON starts with '{' or '['; anything else (a comment, "apiVersion:", "---") is YAML. A YAML
// flow mapping at the very start would be read as JSON, which YAML users practically never write.
bool looks_like_json(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  const auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && (text[first] == '{' || text[first] == '[');
}

bool is_blank(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// Decodes one input of any format into `out`.
void decode_text(std::string_view text, const load_options& opts, detail::decoded_input& out,
                 std::vector<problem>& problems) {
  if (is_blank(text) || looks_like_json(text)) {
    auto doc = detail::parse_json(text, opts, problems);
    if (!doc) return;
    if (detail::is_kubernetes_document(*doc))
      detail::decode_kubernetes(*doc, "", true, out, problems);
    else
      detail::native_from_json(*doc, out, problems);
    return;
  }
  auto docs = detail::parse_yaml(text, opts, problems);
  if (!docs) return;
  // Empty documents ("---" twice, a trailing "---") are nothing, as for kubectl.
  std::vector<std::size_t> present;
  for (std::size_t i = 0; i < docs->size(); ++i)
    if (!(*docs)[i].is_null()) present.push_back(i);
  if (present.empty()) {
    problems.push_back({"", "invalid YAML: the input has no documents (only comments or \"---\")"});
    return;
  }
  if (docs->size() == 1) {
    const auto& doc = (*docs)[0];
    if (detail::is_kubernetes_document(doc))
      detail::decode_kubernetes(doc, "", true, out, problems);
    else
      detail::native_from_json(doc, out, problems);
    return;
  }
  // Several documents: a manifest stream. The native format is one document on its own.
  for (std::size_t i : present) {
    const auto& doc = (*docs)[i];
    const std::string position = detail::index_path("documents", i);
    if (!detail::is_kubernetes_document(doc)) {
      problems.push_back({position, "Required value: kind (every document of a multi-document stream must be a "
                                    "Kubernetes object; the native format must be the only document)"});
      continue;
    }
    detail::decode_kubernetes(doc, position, false, out, problems);
  }
}

// Puts "FILE: " before every path and note of one input when several are loaded, so a problem
// always says which file it is in.
void prefix_input(detail::decoded_input& in, std::vector<problem>& problems, std::size_t first_problem,
                  const std::string& file) {
  const std::string prefix = file + ": ";
  for (std::size_t i = first_problem; i < problems.size(); ++i)
    problems[i].path = problems[i].path.empty() ? file : prefix + problems[i].path;
  for (auto& svc : in.services) {
    svc.origin = prefix + svc.origin;
    for (auto& port : svc.ports)
      if (!port.origin.empty()) port.origin = prefix + port.origin;
  }
  for (auto& b : in.backends) {
    b.path = prefix + b.path;
    for (auto& p : b.ports) p.path = prefix + p.path;
  }
  for (auto& s : in.slices) s.label = prefix + s.label;
  for (auto& n : in.notes) n = prefix + n;
}

}  // namespace

snapshot load_text(std::string_view text, const load_options& opts, const std::string& source) {
  std::vector<problem> problems;
  std::vector<detail::decoded_input> inputs(1);
  decode_text(text, opts, inputs[0], problems);
  // Text has no directory of its own: relative TLS file paths are relative to the working directory.
  for (auto& svc : inputs[0].services) detail::resolve_tls_paths(svc, std::filesystem::current_path());
  // Field problems and cross-checks (collisions) are reported together, as for the native format.
  snapshot snap = detail::assemble(std::move(inputs), opts, problems);
  if (!problems.empty()) throw config_error(source, std::move(problems));
  snap.source = source;
  return snap;
}

snapshot load_files(const std::vector<std::filesystem::path>& paths, const load_options& opts) {
  std::string source;
  for (const auto& p : paths) source += (source.empty() ? "" : " + ") + p.string();
  if (paths.empty()) throw config_error("<no input>", {{"", "no input files given"}});

  std::vector<problem> problems;
  std::vector<detail::decoded_input> inputs(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const std::size_t first_problem = problems.size();
    if (auto text = read_capped(paths[i], opts.max_bytes, problems)) decode_text(*text, opts, inputs[i], problems);
    // TLS file paths in the file are relative to the file's directory (as kubeconfig's are).
    const auto dir = std::filesystem::absolute(paths[i]).parent_path();
    for (auto& svc : inputs[i].services) detail::resolve_tls_paths(svc, dir);
    if (paths.size() > 1) prefix_input(inputs[i], problems, first_problem, paths[i].string());
  }
  // Field problems and cross-checks (collisions) are reported together; allocation is skipped once
  // anything is wrong (check_and_allocate).
  snapshot snap = detail::assemble(std::move(inputs), opts, problems);
  if (!problems.empty()) throw config_error(source, std::move(problems));
  snap.source = source;
  return snap;
}

snapshot load_file(const std::filesystem::path& path, const load_options& opts) { return load_files({path}, opts); }

}  // namespace npp::config
