// ayf/core/error.hpp: the library's one exception type and the argument checks that raise it.
// Messages name the argument, the expected value and the received value.
#pragma once

#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>

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

/// The parts of a message, kept by reference and streamed only when an error is raised, so that a
/// check that passes builds no string (no allocation inside a training step). Lives for the full
/// expression it is made in: pass it straight to require.
template <class... Parts>
struct message_parts {
  std::tuple<const Parts&...> parts;
  friend std::ostream& operator<<(std::ostream& os, const message_parts& m) {
    std::apply([&os](const auto&... p) { (os << ... << p); }, m.parts);
    return os;
  }
};
template <class... Parts>
message_parts<Parts...> message(const Parts&... parts) {
  return message_parts<Parts...>{std::tie(parts...)};
}

}  // namespace detail

/// Throws `ayf::error("<where>: argument '<argument>' expected <expected>, received <received>")`.
/// received: anything streamable (a number, a shape, detail::message(...)).
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
/// The same with a composed expectation, detail::message(...), formatted only on failure (a
/// detail::concat(...) argument would build its string on every call).
template <class... Parts, class Received>
void require(bool condition, std::string_view where, std::string_view argument,
             const detail::message_parts<Parts...>& expected, const Received& received) {
  if (!condition) throw_argument_error(where, argument, detail::concat(expected), received);
}

}  // namespace ayf
