// ayf/core/error.hpp: the library's one exception type and the argument checks that raise it.
// Messages name the argument, the expected value and the received value.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ayf {

/// Every error the library raises. Never `exit()` from the library.
class error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << parts);
  return os.str();
}

}  // namespace detail

/// Throws `ayf::error("<where>: argument '<argument>' expected <expected>, received <received>")`.
template <class Received>
[[noreturn]] void throw_argument_error(std::string_view where, std::string_view argument,
                                       std::string_view expected, const Received& received) {
  throw error(detail::concat(where, ": argument '", argument, "' expected ", expected,
                             ", received ", received));
}

/// Checks `condition`; on failure raises the argument error above.
template <class Received>
void require(bool condition, std::string_view where, std::string_view argument,
             std::string_view expected, const Received& received) {
  if (!condition) throw_argument_error(where, argument, expected, received);
}

}  // namespace ayf
