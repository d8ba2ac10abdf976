// The native endpoint file ({"services": [...], "backends": [...]}) through load_native_json():
// the bounded JSON parser (size and depth caps), field decoding, validation and allocation.
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = npp::fuzz::as_text(data, size);
  npp::fuzz::check_loader([&] { return npp::config::load_native_json(text, npp::config::load_options{}); });
  return 0;
}
