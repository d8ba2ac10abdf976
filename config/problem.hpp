#pragma once
// Configuration problems, reported all at once in the words Kubernetes users know.
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace npp::config {

/// One problem: a JSON path (e.g. "services[0].ports[1].nodePort") and a message
/// (e.g. "Invalid value: 30080: provided port is already allocated").
struct problem {
  std::string path;
  std::string message;
  /// "path: message" (or just message when path is empty)
  std::string str() const { return path.empty() ? message : path + ": " + message; }
};

/// Quotes text for a problem message: "text" with quotes, backslashes, control characters and
/// bytes >= 0x80 escaped, so a message is always printable ASCII (and safe in JSON logs).
std::string quote(std::string_view text);

/// Thrown by loaders when the input is invalid; carries every problem found.
class config_error : public std::runtime_error {
 public:
  /// what() is "<source>: N problem(s):" followed by one indented problem.str() per line.
  config_error(std::string source, std::vector<problem> problems);
  /// Every problem found, in input order.
  const std::vector<problem>& problems() const { return problems_; }
  /// What was loaded: a path, "--forward", "<input>".
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<problem> problems_;
};

}  // namespace npp::config
