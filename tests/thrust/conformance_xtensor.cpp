// tests/thrust/conformance_xtensor.cpp: every conformance case of cases.hpp on the xtensor backend
// in double against the Eigen backend in double (reference.cpp). Both are host_backend instances
// sharing the element loops, so they differ only where the Eigen backend's GEMM (Eigen's product)
// differs from xtensor's reference loops: cases marked bitwise must agree bit for bit.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/backends/xtensor/backend.hpp"
#include "cases.hpp"
#include "compare.hpp"
#include "reference.hpp"
#include "support/tolerance.hpp"

using namespace ayf_conformance;

TEST_CASE("xtensor conforms to eigen in double on every case of cases.hpp", "[xtensor][conformance]") {
  using B = ayf::xtensor_backend<double>;
  const double tolerance = ayf_test::tolerance<double, B>::relative;
  for (const case_info& info : cases()) {
    DYNAMIC_SECTION(info.name) {
      const std::vector<double> got = run_case<B>(info.name);
      const std::vector<double> want = eigen_case(info.name, false);
      REQUIRE(!want.empty());
      REQUIRE(got.size() == want.size());
      const comparison c = compare(got, want);
      std::printf("conformance xtensor %-26s double n=%-6zu max_abs=%-10.3e rel=%-10.3e nmse=%-10.3e %s\n",
                  info.name.c_str(), want.size(), c.max_abs, c.relative, c.nmse, c.bitwise ? "bitwise" : "");
      INFO(info.name << ": max abs error " << c.max_abs << ", relative " << c.relative << ", NMSE " << c.nmse);
      if (info.mode == agreement::bitwise) {
        CHECK(c.bitwise);
      } else {
        CHECK(c.relative < tolerance);
      }
    }
  }
}

TEST_CASE("xtensor raises the Eigen backend's argument errors, word for word", "[xtensor][errors]") {
  const auto got = error_messages<ayf::xtensor_backend<double>>();
  const auto want = eigen_error_messages(false);
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    INFO("call " << k);
    CHECK(got[k] == want[k]);
  }
}
