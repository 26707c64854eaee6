// tests/thrust/compare.hpp: how the conformance suites measure a backend's outputs against the
// Eigen backend's: max abs error, relative error (max norm), NMSE and bitwise equality.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cases.hpp"

namespace ayf_conformance {

/// Agreement of `got` with `want`: max |got - want|, that over max |want| (the relative error in
/// the max norm), NMSE = sum (got - want)^2 / sum want^2, and whether the bits are equal.
struct comparison {
  double max_abs = 0, relative = 0, nmse = 0;
  bool bitwise = true;
};

inline comparison compare(const std::vector<double>& got, const std::vector<double>& want) {
  comparison c;
  double scale = 0, err2 = 0, ref2 = 0;
  for (std::size_t k = 0; k < want.size(); ++k) {
    const double d = got[k] - want[k];
    c.max_abs = std::max(c.max_abs, std::abs(d));
    scale = std::max(scale, std::abs(want[k]));
    err2 += d * d;
    ref2 += want[k] * want[k];
    c.bitwise = c.bitwise && std::memcmp(&got[k], &want[k], sizeof(double)) == 0;
  }
  if (!std::isfinite(c.max_abs)) c.max_abs = INFINITY;
  c.relative = scale > 0 ? c.max_abs / scale : c.max_abs;
  c.nmse = ref2 > 0 ? err2 / ref2 : err2;
  return c;
}

inline const case_info& find_case(const std::string& name) {
  for (const auto& c : cases())
    if (c.name == name) return c;
  FAIL("no conformance case " << name);
  return cases().front();
}

}  // namespace ayf_conformance
