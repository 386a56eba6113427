// How every fallible function of the shim (shim.cc, group.cc) returns its failure: a malloc'd
// message, never an exception across the C boundary. Internal: not part of the C interface.
#ifndef SPOTTRAIN_SHIM_ERRORS_H
#define SPOTTRAIN_SHIM_ERRORS_H

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace spottrain {

// dup_message returns a malloc'd copy of msg (NULL when out of memory).
inline char* dup_message(const char* msg) {
  size_t n = std::strlen(msg);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) std::memcpy(out, msg, n + 1);
  return out;
}

}  // namespace spottrain

// SHIM_BEGIN / SHIM_END wrap the body of every fallible function: whatever is thrown becomes the
// returned message.
#define SHIM_BEGIN try {
#define SHIM_END                                                        \
  }                                                                     \
  catch (const c10::Error& e) {                                         \
    return spottrain::dup_message(e.what_without_backtrace());          \
  }                                                                     \
  catch (const std::exception& e) {                                     \
    return spottrain::dup_message(e.what());                            \
  }                                                                     \
  catch (...) {                                                         \
    return spottrain::dup_message("unknown C++ exception in libtorch"); \
  }                                                                     \
  return nullptr;

#endif  // SPOTTRAIN_SHIM_ERRORS_H
