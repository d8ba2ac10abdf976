#pragma once
// Per-worker pool of fixed-size relay buffers. A connection borrows a buffer only while bytes are
// in flight in one direction and returns it when the source has nothing more to read, so idle
// connections hold no buffer memory. Single-threaded: each worker owns one pool.
#include <cstddef>
#include <memory>
#include <vector>

namespace npp::proxy {

class buffer_pool {
 public:
  /// buffer_size: bytes per buffer; max_free: buffers kept for reuse (beyond that they are freed).
  buffer_pool(std::size_t buffer_size, std::size_t max_free) : size_(buffer_size), max_free_(max_free) {}
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;
  ~buffer_pool() {
    for (char* b : free_) delete[] b;
  }

  /// A buffer of size() bytes (never null; throws std::bad_alloc like new).
  char* acquire() {
    if (free_.empty()) return new char[size_];
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  /// Gives a buffer back (b may be null).
  void release(char* b) {
    if (!b) return;
    if (free_.size() < max_free_) {
      free_.push_back(b);
    } else {
      delete[] b;
    }
  }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;          ///< bytes per buffer
  std::size_t max_free_;      ///< cap on cached free buffers
  std::vector<char*> free_;   ///< cached buffers
};

}  // namespace npp::proxy
