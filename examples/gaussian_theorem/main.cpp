// gaussian_theorem: reproduces the paper's Theorem 3.1 numerically (spec §3). For Gaussian data
// N(0, c^2 I_d), multistep consistency sampling with the perturbed CM a(t) = (c + delta t)/sqrt(S(t))
// (Eq. 7) gets worse with more steps, while flow-map sampling with A(t, s) = sqrt(S(s)/S(t))(1 + delta (t - s))
// does not. W2 comes from the exact variance recursion (Eq. 8) and from Monte Carlo through the generic samplers.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "ayf/analysis/linear_models.hpp"
#include "ayf/analysis/recursions.hpp"
#include "ayf/backends/eigen/backend.hpp"
#include "ayf/backends/eigen/wasserstein.hpp"
#include "ayf/backends/xtensor/backend.hpp"
#include "ayf/io/atomic_write.hpp"
#include "ayf/samplers/consistency.hpp"
#include "ayf/samplers/flow_map.hpp"
#include "ayf_cli/options.hpp"

namespace {

namespace fs = std::filesystem;

/// Bounds of the options (also shown by --help).
constexpr std::size_t max_dims = 4096, max_samples = 100'000'000, max_batch = std::size_t{1} << 24;
constexpr std::size_t max_batch_values = std::size_t{1} << 26;  // batch x dims doubles: 512 MiB
constexpr std::size_t max_steps = std::size_t{1} << 20, max_list = 16, max_step_list = 64;

struct options {
  double c = 0.5;
  std::vector<double> deltas{0.05, 0.1};
  std::size_t dims = 1;
  std::size_t samples = 2'000'000;
  std::size_t batch = 1 << 20;
  std::vector<std::size_t> steps{1, 2, 3, 4, 8, 16, 64, 256, 1024};
  std::vector<double> gammas{};
  std::string backend = "eigen";
  std::uint64_t seed = 0;
  std::string out = "out/theorem";
  bool quiet = false;
};

struct row {
  double delta;
  std::size_t steps;
  std::string sampler;
  double w2_recursion;
  double w2_monte_carlo;
};

/// A number as written to theorem.csv and to the gnuplot script (the same text, so the script's
/// `$2 == delta` matches the CSV exactly).
std::string csv_number(double x) {
  std::ostringstream os;
  os.precision(10);
  os << x;
  return os.str();
}

std::string sampler_name(double gamma) {
  std::ostringstream os;
  os << "gamma_" << gamma;
  return os.str();
}

/// W2 of `steps`-step sampling from Monte Carlo: `options.samples` draws in batches through the
/// generic sampler `run(ctx, x, grid)`; the noise stream restarts at `seed` for every row, so rows
/// share their random numbers and differences between them are not Monte Carlo noise.
template <ayf::backend B, class Run>
double monte_carlo_w2(const options& opt, const ayf::time_grid& grid, Run&& run) {
  typename B::context ctx(opt.seed);
  ayf::gaussian_moments moments(opt.dims);
  typename B::tensor x;
  for (std::size_t done = 0; done < opt.samples;) {
    const std::size_t rows = std::min(opt.batch, opt.samples - done);
    B::resize(ctx, x, ayf::shape(rows, opt.dims));
    B::randn(ctx, x);
    run(ctx, x, grid);
    moments.add<B>(ctx, x);
    done += rows;
  }
  const ayf::gaussian_fit fit = moments.fit();
  if (!fit.mean.allFinite() || !fit.covariance.allFinite()) {
    throw ayf::error("the Monte Carlo samples overflowed (non-finite mean or covariance)");
  }
  const auto d = static_cast<Eigen::Index>(opt.dims);
  const double w2 = ayf::w2_gaussian(fit.mean, fit.covariance, Eigen::VectorXd::Zero(d),
                                     opt.c * opt.c * Eigen::MatrixXd::Identity(d, d));
  if (!std::isfinite(w2)) throw ayf::error(ayf::detail::concat("the Monte Carlo W2 is not finite (", w2, ")"));
  return w2;
}

template <ayf::backend B>
std::vector<row> run_all(const options& opt) {
  std::vector<row> rows;
  const auto start = std::chrono::steady_clock::now();
  const std::size_t total = opt.deltas.size() * opt.steps.size() * (2 + opt.gammas.size());
  std::size_t finished = 0;
  auto progress = [&](const row& r) {
    ++finished;
    if (opt.quiet) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "[%3zu/%zu] delta=%-6g %-12s N=%-5zu w2_recursion=%.6f w2_monte_carlo=%.6f (%.1f s)\n",
                 finished, total, r.delta, r.sampler.c_str(), r.steps, r.w2_recursion, r.w2_monte_carlo, elapsed);
  };
  for (double delta : opt.deltas) {
    // An error of the library or an overflow is reported with the options that caused it.
    try {
      auto consistency = ayf::gaussian_perturbed_consistency_model<B>(opt.c, delta);
      auto flow = ayf::gaussian_perturbed_flow_map<B>(opt.c, delta);
      const ayf::gaussian::perturbed_consistency a{opt.c, delta};
      const ayf::gaussian::perturbed_flow_map map_coefficient{opt.c, delta};
      // One sweep over N per sampler, so each (delta, sampler) curve is contiguous in the CSV.
      auto sweep = [&](const std::string& sampler, const auto& variance_of, const auto& sample) {
        for (std::size_t n : opt.steps) {
          try {
            const auto grid = ayf::time_grid::uniform(n);
            const double variance = variance_of(grid);
            if (!std::isfinite(variance)) {
              throw ayf::error(ayf::detail::concat("the exact variance overflowed (", variance, ")"));
            }
            const double w2 = ayf::w2_isotropic(opt.c, std::sqrt(variance), opt.dims);
            if (!std::isfinite(w2)) throw ayf::error(ayf::detail::concat("the exact W2 is not finite (", w2, ")"));
            rows.push_back({delta, n, sampler, w2, monte_carlo_w2<B>(opt, grid, sample)});
            progress(rows.back());
          } catch (const ayf::error& e) {
            throw ayf::error(ayf::detail::concat(sampler, " at N = ", n, " steps (--steps): ", e.what()));
          }
        }
      };
      sweep("cm_multistep", [&](const auto& g) { return ayf::consistency_sampling_variance(a, g); },
            [&](auto& ctx, auto& x, const auto& g) { ayf::consistency_multistep_sample<B>(ctx, consistency, x, g); });
      sweep("flow_map", [&](const auto& g) { return ayf::flow_map_sampling_variance(map_coefficient, g); },
            [&](auto& ctx, auto& x, const auto& g) { ayf::flow_map_sample<B>(ctx, flow, x, g); });
      for (double gamma : opt.gammas) {
        sweep(sampler_name(gamma),
              [&](const auto& g) { return ayf::gamma_sampling_variance(map_coefficient, g, gamma); },
              [&](auto& ctx, auto& x, const auto& g) { ayf::gamma_sample<B>(ctx, flow, x, g, gamma); });
      }
    } catch (const ayf::error& e) {
      throw ayf::error(ayf::detail::concat("--delta ", ayf_cli::number_text(delta), " with --c ",
                                           ayf_cli::number_text(opt.c), ": ", e.what(),
                                           "; choose a smaller --delta or fewer --steps"));
    }
  }
  return rows;
}

std::string format_csv(const options& opt, const std::vector<row>& rows) {
  std::ostringstream os;
  os.precision(10);
  os << "c,delta,steps,sampler,w2_recursion,w2_monte_carlo\n";
  for (const row& r : rows) {
    os << csv_number(opt.c) << ',' << csv_number(r.delta) << ',' << r.steps << ',' << r.sampler << ','
       << r.w2_recursion << ',' << r.w2_monte_carlo << '\n';
  }
  return os.str();
}

void print_table(const options& opt, const std::vector<row>& rows) {
  std::printf("\nW2 to N(0, %g^2 I_%zu) after N steps (recursion | Monte Carlo, %zu samples)\n", opt.c,
              opt.dims, opt.samples);
  std::printf("%-8s %-12s %6s %14s %14s %9s\n", "delta", "sampler", "N", "w2_recursion", "w2_monte_carlo",
              "rel.diff");
  for (const row& r : rows) {
    std::printf("%-8g %-12s %6zu %14.6f %14.6f %8.2f%%\n", r.delta, r.sampler.c_str(), r.steps, r.w2_recursion,
                r.w2_monte_carlo, 100.0 * (r.w2_monte_carlo - r.w2_recursion) / r.w2_recursion);
  }
  std::printf("\nBest N per (c, delta, sampler), by w2_recursion:\n");
  std::map<std::pair<double, std::string>, const row*> best;
  for (const row& r : rows) {
    auto& b = best[{r.delta, r.sampler}];
    if (b == nullptr || r.w2_recursion < b->w2_recursion) b = &r;
  }
  for (const auto& [key, r] : best) {
    std::printf("  c=%g delta=%-6g %-12s best N=%-5zu W2=%.6f\n", opt.c, key.first, key.second.c_str(), r->steps,
                r->w2_recursion);
  }
}

/// Figure 5: W2 against N (log x axis), one colour per delta; solid = multistep CM, dashed = flow map.
/// The script takes its files as arguments (gnuplot -c figure5.gp <csv> <png>: ARG1, ARG2), so no
/// path is ever pasted into code; gnuplot gets absolute paths (never read as '<command' or '|command'),
/// started without a shell. It writes to a temporary name, renamed to figure5.png on success.
void draw_figure(const options& opt, const fs::path& dir) {
  std::ostringstream gp;
  gp << "# gaussian_theorem's Figure 5. Usage: gnuplot -c figure5.gp theorem.csv figure5.png\n"
     << "set terminal pngcairo size 900,600 enhanced font 'sans,11'\n"
     << "set output ARG2\n"
     << "set datafile separator ','\n"
     << "set logscale x 2\nset logscale y\nset format x '%g'\n"
     << "set xlabel 'sampling steps N'\nset ylabel 'W_2 to the data distribution'\n"
     << "set title 'Theorem 3.1: Gaussian data, c = " << csv_number(opt.c) << ", d = " << opt.dims
     << " (solid: consistency multistep, dashed: flow map)'\n"
     << "set key outside right\nset grid\n"
     << "csv = ARG1\n"
     << "plot ";
  for (std::size_t i = 0; i < opt.deltas.size(); ++i) {
    const std::string delta = csv_number(opt.deltas[i]);
    const int colour = static_cast<int>(i) + 1;
    if (i > 0) gp << ", \\\n     ";
    gp << "csv using ($2==" << delta << " && strcol(4) eq 'cm_multistep' ? $3 : 1/0):5 every ::1 with linespoints lt "
       << colour << " dt 1 pt 7 title 'CM, {/Symbol d} = " << delta << "', \\\n     "
       << "csv using ($2==" << delta << " && strcol(4) eq 'flow_map' ? $3 : 1/0):5 every ::1 with linespoints lt "
       << colour << " dt 2 pt 6 title 'flow map, {/Symbol d} = " << delta << "'";
  }
  gp << "\n";
  const fs::path absolute = fs::absolute(dir);
  const fs::path script = absolute / "figure5.gp", csv = absolute / "theorem.csv", png = absolute / "figure5.png";
  const fs::path partial = absolute / ayf::detail::concat(".figure5.png.partial.", ::getpid());
  ayf::io::write_file_atomically(script, gp.str());
  const ayf_cli::process_result gnuplot =
      ayf_cli::run_process({"gnuplot", "-c", script.string(), csv.string(), partial.string()});
  std::error_code ec;
  if (gnuplot.succeeded() && fs::is_regular_file(partial, ec) && fs::file_size(partial, ec) > 0) {
    fs::rename(partial, png);
    std::printf("figure: %s\n", png.c_str());
    return;
  }
  fs::remove(partial, ec);
  if (!gnuplot.started) {
    std::fprintf(stderr,
                 "gaussian_theorem: gnuplot could not be started (%s): kept %s and %s; install gnuplot-nox and run\n"
                 "  gnuplot -c figure5.gp theorem.csv figure5.png\nin that directory for the figure\n",
                 gnuplot.error.c_str(), csv.c_str(), script.c_str());
    return;
  }
  std::fprintf(stderr, "gaussian_theorem: warning: gnuplot failed on %s (%s); %s is kept, figure5.png not written\n",
               script.c_str(),
               gnuplot.signal != 0 ? ayf::detail::concat("signal ", gnuplot.signal).c_str()
                                   : ayf::detail::concat("exit status ", gnuplot.exit_status).c_str(),
               csv.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"Theorem 3.1 of Align Your Flow on Gaussian data N(0, c^2 I_d): W2 of multistep consistency\n"
               "sampling (perturbed CM, spec Eq. 7) and of flow-map sampling (perturbed flow map) against N,\n"
               "from the exact variance recursion and from Monte Carlo through the generic samplers."};
  ayf_cli::add_number(app, "--c", opt.c, "data standard deviation c", {1e-6, 1e6});
  ayf_cli::add_number_list(app, "--delta", opt.deltas, "perturbations delta", {0.0, 1e6}, 1, max_list);
  ayf_cli::add_count(app, "--dims", opt.dims, "data dimension d", std::size_t{1}, max_dims);
  ayf_cli::add_count(app, "--samples", opt.samples, "Monte Carlo samples per (delta, sampler, N)", std::size_t{2},
                     max_samples);
  ayf_cli::add_count(app, "--batch", opt.batch,
                     "samples per Monte Carlo batch (bounds memory: batch x dims at most 2^26 values)", std::size_t{1},
                     max_batch);
  ayf_cli::add_count_list(app, "--steps", opt.steps, "step counts N", std::size_t{1}, max_steps, max_step_list);
  ayf_cli::add_number_list(app, "--gamma", opt.gammas, "also run gamma-sampling with the perturbed flow map for these gamma",
                           {0.0, 1.0}, 1, max_list);
  ayf_cli::add_choice(app, "--backend", opt.backend, "backend for the Monte Carlo runs", {"eigen", "xtensor"});
  ayf_cli::add_count(app, "--seed", opt.seed, "Philox seed of the Monte Carlo noise", std::uint64_t{0},
                     std::numeric_limits<std::uint64_t>::max());
  ayf_cli::add_text(app, "--out", opt.out, "output directory (theorem.csv, figure5.gp, figure5.png)");
  app.add_flag("--quiet", opt.quiet, "no per-row progress lines");
  CLI11_PARSE(app, argc, argv);

  try {
    // The output directory first: a bad --out fails before any computation.
    const fs::path dir(opt.out);
    ayf_cli::prepare_output_directory("--out", dir);
    const std::size_t batch_values = std::min(opt.batch, opt.samples) * opt.dims;
    if (batch_values > max_batch_values) {
      throw ayf::error(ayf::detail::concat("--batch ", opt.batch, " x --dims ", opt.dims, ": expected at most ",
                                           max_batch_values, " values per batch, received ", batch_values,
                                           "; lower --batch"));
    }
    std::sort(opt.steps.begin(), opt.steps.end());
    opt.steps.erase(std::unique(opt.steps.begin(), opt.steps.end()), opt.steps.end());
    const std::vector<row> rows = opt.backend == "eigen" ? run_all<ayf::eigen_backend<double>>(opt)
                                                         : run_all<ayf::xtensor_backend<double>>(opt);
    ayf::io::write_file_atomically(dir / "theorem.csv", format_csv(opt, rows));
    print_table(opt, rows);
    std::printf("\ntable: %s\n", (dir / "theorem.csv").c_str());
    std::fflush(stdout);
    draw_figure(opt, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gaussian_theorem: %s\n", e.what());
    return 1;
  }
  return 0;
}
