// The Eigen backend's gemm providers (Eigen's product; OpenBLAS and oneDNN when built with
// AYF_WITH_OPENBLAS / AYF_WITH_ONEDNN) against the reference loops host_kernels::gemm: every
// transpose combination, leading dimensions wider than the operands (sub-blocks of larger matrices),
// beta = 0 over NaN, beta != 0, and products large enough for the oneTBB split into blocks of rows,
// columns or both; float and double.
// The split's grid, results bitwise the same on one thread and on eight, and the choice of the
// default provider (AYF_GEMM).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include <tbb/task_arena.h>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/core/host_kernels.hpp"

namespace {

template <class S>
std::vector<S> values(std::size_t n, std::size_t seed) {
  std::vector<S> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<S>(std::sin(0.37 * static_cast<double>(i + 1) + 1.3 * static_cast<double>(seed)));
  return v;
}

struct product_case {
  std::size_t m, n, k, pad_a, pad_b;  // pad_*: extra columns of the stored operand (lda = cols + pad)
};

/// Largest |C_provider - C_reference| / (|alpha| sum_p |a_ip b_pj| + |beta c|), over C.
template <class S>
double relative_error(ayf::gemm_provider provider, const product_case& pc, bool ta, bool tb, S alpha, S beta) {
  const std::size_t a_rows = ta ? pc.k : pc.m, a_cols = ta ? pc.m : pc.k;
  const std::size_t b_rows = tb ? pc.n : pc.k, b_cols = tb ? pc.k : pc.n;
  const std::size_t lda = a_cols + pc.pad_a, ldb = b_cols + pc.pad_b;
  const std::vector<S> a = values<S>(a_rows * lda, 1), b = values<S>(b_rows * ldb, 2);
  std::vector<S> c0 = values<S>(pc.m * pc.n, 3);
  if (beta == S(0)) c0.assign(c0.size(), std::numeric_limits<S>::quiet_NaN());  // must not be read
  std::vector<S> expected = c0, actual = c0;
  ayf::host_kernels::gemm(pc.m, pc.n, pc.k, ta, tb, alpha, a.data(), lda, b.data(), ldb, beta, expected.data());
  ayf::eigen_storage<S>::gemm_with(provider, pc.m, pc.n, pc.k, ta, tb, alpha, a.data(), lda, b.data(), ldb, beta,
                                   actual.data());
  double worst = 0;
  for (std::size_t i = 0; i < pc.m; ++i) {
    for (std::size_t j = 0; j < pc.n; ++j) {
      double scale = 0;
      for (std::size_t p = 0; p < pc.k; ++p) {
        const double av = ta ? a[p * lda + i] : a[i * lda + p];
        const double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        scale += std::abs(av * bv);
      }
      scale = std::abs(static_cast<double>(alpha)) * scale +
              (beta == S(0) ? 0.0 : std::abs(static_cast<double>(beta) * static_cast<double>(c0[i * pc.n + j])));
      const double e = static_cast<double>(actual[i * pc.n + j]), r = static_cast<double>(expected[i * pc.n + j]);
      if (!std::isfinite(e)) return std::numeric_limits<double>::infinity();
      worst = std::max(worst, std::abs(e - r) / (scale + 1e-30));
    }
  }
  return worst;
}

template <class S>
void check_provider(ayf::gemm_provider provider) {
  const double bound = 8 * static_cast<double>(std::numeric_limits<S>::epsilon());
  const product_case cases[] = {
      {1, 1, 1, 0, 0}, {3, 5, 7, 0, 0}, {17, 9, 33, 4, 3}, {64, 48, 96, 5, 0},
      {129, 257, 140, 0, 9},
      {520, 300, 40, 7, 2},   // m n k >= 2^22: 4 x 2 blocks of 128
      {100, 900, 60, 3, 5},   // more columns than rows: 7 column blocks of 128
      {600, 530, 20, 0, 4},   // 2 x 2 blocks of 256
  };
  for (const product_case& pc : cases) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        for (const S beta : {S(0), S(1), S(-0.5)}) {
          const double err = relative_error<S>(provider, pc, ta, tb, S(0.75), beta);
          INFO("m " << pc.m << " n " << pc.n << " k " << pc.k << " lda pad " << pc.pad_a << " ldb pad " << pc.pad_b
                    << " ta " << ta << " tb " << tb << " beta " << beta);
          CHECK(err <= bound);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("eigen_storage gemm: Eigen's product equals the reference loops (transposes, strides, beta)",
          "[backend][gemm][cpu]") {
  check_provider<float>(ayf::gemm_provider::eigen);
  check_provider<double>(ayf::gemm_provider::eigen);
}

TEST_CASE("eigen_storage gemm: the block grid of the parallel split", "[backend][gemm][cpu]") {
  using storage = ayf::eigen_storage<float>;
  auto grid = [](std::size_t m, std::size_t n, std::size_t k) {
    const auto g = storage::split_for(m, n, k);
    return std::vector<std::size_t>{g.rows, g.cols};
  };
  CHECK(grid(64, 64, 1000) == std::vector<std::size_t>{1, 1});          // below 2^22 multiply-adds
  CHECK(grid(1024, 256, 256) == std::vector<std::size_t>{4, 1});        // blocks of 256 rows
  CHECK(grid(256, 1024, 1024) == std::vector<std::size_t>{1, 4});       // more columns: column blocks
  CHECK(grid(1024, 768, 64) == std::vector<std::size_t>{4, 3});         // rows, then columns
  CHECK(grid(600, 2000, 64) == std::vector<std::size_t>{2, 7});         // columns, then rows
  CHECK(grid(200704, 32, 288) == std::vector<std::size_t>{16, 1});      // at most 16 blocks
  CHECK(grid(4096, 4096, 64) == std::vector<std::size_t>{16, 1});
  CHECK(grid(256, 256, 1024) == std::vector<std::size_t>{2, 2});        // 128 where 256 gives fewer than 4
  CHECK(grid(520, 300, 40) == std::vector<std::size_t>{4, 2});
  CHECK(grid(200, 150, 1000000) == std::vector<std::size_t>{3, 2});     // 64 where 128 gives fewer than 4
  CHECK(grid(100, 100, 1000000) == std::vector<std::size_t>{1, 1});     // both sides under 128
}

TEST_CASE("eigen_storage gemm: bitwise the same on one thread and on eight", "[backend][gemm][cpu]") {
  // A grid of 2 x 7 blocks (above) and a 4 x 3 one, each provider built, both transposes of A.
  const product_case cases[] = {{600, 2000, 64, 3, 0}, {1024, 768, 64, 0, 5}};
  std::vector<ayf::gemm_provider> providers{ayf::gemm_provider::eigen};
  if (ayf::eigen_storage<float>::has_openblas) providers.push_back(ayf::gemm_provider::openblas);
  if (ayf::eigen_storage<float>::has_onednn) providers.push_back(ayf::gemm_provider::onednn);
  for (const auto provider : providers) {
    for (const product_case& pc : cases) {
      for (const bool ta : {false, true}) {
        const std::size_t lda = (ta ? pc.m : pc.k) + pc.pad_a, ldb = pc.n + pc.pad_b;
        const std::vector<float> a = values<float>((ta ? pc.k : pc.m) * lda, 1), b = values<float>(pc.k * ldb, 2);
        std::vector<float> one(pc.m * pc.n), eight(pc.m * pc.n);
        auto product = [&](std::vector<float>& c) {
          ayf::eigen_storage<float>::gemm_with(provider, pc.m, pc.n, pc.k, ta, false, 1.0f, a.data(), lda, b.data(),
                                               ldb, 0.0f, c.data());
        };
        tbb::task_arena(1).execute([&] { product(one); });
        tbb::task_arena(8).execute([&] { product(eight); });
        INFO("provider " << static_cast<int>(provider) << " m " << pc.m << " n " << pc.n << " ta " << ta);
        CHECK(one == eight);
      }
    }
  }
}

TEST_CASE("eigen_storage gemm: OpenBLAS equals the reference loops (transposes, strides, beta)",
          "[backend][gemm][openblas][cpu]") {
  if constexpr (ayf::eigen_storage<float>::has_openblas) {
#if !defined(__AVX512F__)
    CHECK(ayf::eigen_storage<double>::choose_gemm(nullptr) == ayf::gemm_provider::openblas);
#endif
    check_provider<float>(ayf::gemm_provider::openblas);
    check_provider<double>(ayf::gemm_provider::openblas);
  } else {
    // Without AYF_WITH_OPENBLAS, asking for it names the provider and the build option.
    CHECK(ayf::eigen_storage<double>::choose_gemm(nullptr) == ayf::gemm_provider::eigen);
    float x = 1, y = 0;
    REQUIRE_THROWS_WITH(ayf::eigen_storage<float>::gemm_with(ayf::gemm_provider::openblas, 1, 1, 1, false, false, 1.0f,
                                                             &x, 1, &x, 1, 0.0f, &y),
                        Catch::Contains("'provider'") && Catch::Contains("AYF_WITH_OPENBLAS"));
  }
}

TEST_CASE("eigen_storage gemm: oneDNN equals the reference loops in float; double has no oneDNN",
          "[backend][gemm][onednn][cpu]") {
  float x = 1, y = 0;
  double xd = 1, yd = 0;
  if constexpr (ayf::eigen_storage<float>::has_onednn) {
    using single = ayf::eigen_storage<float>;
    // oneDNN for float where it runs AVX-512 kernels; where not, OpenBLAS when built (its AVX2 SGEMM
    // ran the MLP's products at half OpenBLAS's rate), while the convolution tiles keep oneDNN.
    CHECK(single::choose_gemm(nullptr, true) == ayf::gemm_provider::onednn);
    CHECK(single::choose_gemm(nullptr, false) ==
          (single::has_openblas ? ayf::gemm_provider::openblas : ayf::gemm_provider::onednn));
    CHECK(single::choose_gemm(nullptr) == single::choose_gemm(nullptr, single::onednn_has_avx512_kernels()));
    CHECK(single::choose_gemm("eigen", false) == ayf::gemm_provider::eigen);  // AYF_GEMM still decides
    CHECK(single::choose_tile_gemm(nullptr, ayf::gemm_provider::openblas) == ayf::gemm_provider::onednn);
    CHECK(single::choose_tile_gemm("eigen", ayf::gemm_provider::eigen) == ayf::gemm_provider::eigen);
    CHECK(ayf::eigen_storage<double>::choose_tile_gemm(nullptr, ayf::gemm_provider::openblas) ==
          ayf::gemm_provider::openblas);
    check_provider<float>(ayf::gemm_provider::onednn);
    // oneDNN has no double gemm: asking for it says so.
    CHECK_FALSE(ayf::eigen_storage<double>::has_onednn);
    REQUIRE_THROWS_WITH(ayf::eigen_storage<double>::gemm_with(ayf::gemm_provider::onednn, 1, 1, 1, false, false, 1.0,
                                                              &xd, 1, &xd, 1, 0.0, &yd),
                        Catch::Contains("'provider'") && Catch::Contains("no double gemm"));
  } else {
    REQUIRE_THROWS_WITH(ayf::eigen_storage<float>::gemm_with(ayf::gemm_provider::onednn, 1, 1, 1, false, false, 1.0f,
                                                             &x, 1, &x, 1, 0.0f, &y),
                        Catch::Contains("'provider'") && Catch::Contains("AYF_WITH_ONEDNN"));
  }
}

TEST_CASE("eigen_storage gemm: AYF_GEMM names the default provider", "[backend][gemm][cpu]") {
  using single = ayf::eigen_storage<float>;
  using twice = ayf::eigen_storage<double>;
  CHECK(single::choose_gemm("eigen") == ayf::gemm_provider::eigen);
  CHECK(twice::choose_gemm("eigen") == ayf::gemm_provider::eigen);
  CHECK(single::choose_gemm("") == single::choose_gemm(nullptr));  // empty: unset
  for (const auto provider : {ayf::gemm_provider::openblas, ayf::gemm_provider::onednn}) {
    const char* name = ayf::to_string(provider);
    INFO("AYF_GEMM=" << name);
    if (single::has_provider(provider)) {
      CHECK(single::choose_gemm(name) == provider);
    } else {
      REQUIRE_THROWS_WITH(single::choose_gemm(name), Catch::Contains("AYF_GEMM") && Catch::Contains(name));
    }
  }
  // A provider built but not for double (oneDNN) leaves double's default; unknown names are errors.
  if constexpr (AYF_EIGEN_ONEDNN != 0) CHECK(twice::choose_gemm("onednn") == twice::choose_gemm(nullptr));
  REQUIRE_THROWS_WITH(single::choose_gemm("mkl"), Catch::Contains("AYF_GEMM") && Catch::Contains("received mkl") &&
                                                      Catch::Contains("eigen, openblas or onednn"));
  REQUIRE_THROWS_WITH(twice::choose_gemm("Eigen"), Catch::Contains("AYF_GEMM"));
  CHECK(std::string(ayf::to_string(single::default_gemm())).size() > 0);
}

TEST_CASE("eigen_storage gemm: an empty inner dimension scales C by beta", "[backend][gemm][cpu]") {
  for (const auto provider : {ayf::gemm_provider::eigen, ayf::eigen_storage<double>::default_gemm()}) {
    std::vector<double> c{1, 2, 3, 4};
    const double dummy = 0;
    ayf::eigen_storage<double>::gemm_with(provider, 2, 2, 0, false, false, 1.0, &dummy, 1, &dummy, 2, 0.5, c.data());
    CHECK(c == std::vector<double>{0.5, 1, 1.5, 2});
  }
  for (const auto provider : {ayf::gemm_provider::eigen, ayf::eigen_storage<float>::default_gemm()}) {
    std::vector<float> c{1, 2, 3, 4};
    const float dummy = 0;
    ayf::eigen_storage<float>::gemm_with(provider, 2, 2, 0, false, false, 1.0f, &dummy, 1, &dummy, 2, 0.5f, c.data());
    CHECK(c == std::vector<float>{0.5f, 1, 1.5f, 2});
  }
}
