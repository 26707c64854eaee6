// ayf/train/trainer.hpp: the training loop (design.md §4, §7) for any model with parameters() and any
// objective: per step, batch k from a data::batch_sampler, zero the gradients, the objective's step
// (ctx, x, labels_or_null, iteration) -> step_statistics, a hook on the gradients (where a gradient
// all-reduce goes), Adam (warmup, clipping), the EMA, progress lines with ETA and periodic atomic
// checkpoints; a resumed run continues bit for bit. A non-finite loss, Adam's gradient-norm error or
// non-finite parameters after the update stop the run with an error naming the stage, the step, the
// hint and the last good checkpoint, and nothing is written after it.
// run_data_parallel does the same on every rank of a communicator (docs/distributed.md): each rank draws
// its shards of the global batch, one gradient all-reduce per step, rank 0 logs and writes checkpoints.
// A stop request (trainer_config::stop, e.g. stop_signal.hpp's SIGINT / SIGTERM flag) ends the run after
// the step it is seen in, with that step's checkpoint written.
#pragma once

#include <atomic>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/core/philox.hpp"
#include "ayf/distributed/communicator.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/objective.hpp"
#include "ayf/train/checkpoint.hpp"
#include "ayf/train/progress.hpp"

namespace ayf::train {

struct trainer_config {
  std::uint64_t steps = 1000;           ///< the stage ends after this step (1-based)
  nn::adam_config adam{};               ///< learning rate, warmup, clipping, ...
  double ema_decay = 0.0;               ///< EMA of the weights; 0 = none
  std::filesystem::path checkpoint{};   ///< the stage's checkpoint file; empty = none
  std::uint64_t checkpoint_every = 1000;  ///< and at the last step
  bool resume = false;                  ///< continue from `checkpoint` when it exists
  std::uint64_t progress_every = 0;     ///< a progress line every this many steps (0: only the last)
  std::string stage = "train";          ///< progress label and the checkpoint's "objective"
  std::string label{};                  ///< the stage in messages ("weak teacher"); empty = stage
  std::string hint{};                   ///< the options to look at when it diverges
  std::uint64_t seed = 0;               ///< the training stream: ctx.rng starts at (seed, 0)
  /// The global batch is split into this many equal row blocks ("shards"), each trained with its own
  /// noise stream (shard_seed(seed, i)); the step's gradient is their mean. A data-parallel run on N
  /// ranks (N dividing shards) gives every rank shards / N of them, so any N gives the 1-rank result.
  std::size_t shards = 1;
  std::map<std::string, std::string> settings{};  ///< extra settings stored and compared on resume
  std::ostream* log = &std::cerr;       ///< progress and resume lines; null = silent
  /// Read once per step, after the objective's step: when it is set and true, the run ends after that
  /// step (checkpoint written, train_result::stopped). With several ranks, a request on any rank stops
  /// all of them at the same step. Null: never stops early.
  const std::atomic<bool>* stop = nullptr;
};

/// What run() did.
struct train_result {
  std::uint64_t first_step = 0;  ///< the first step run (steps + 1 when none ran)
  std::uint64_t last_step = 0;   ///< the iteration reached
  bool resumed = false;          ///< started from the checkpoint
  bool stopped = false;          ///< ended before config.steps on config.stop (last_step's checkpoint written)
  step_statistics last{};        ///< statistics of the last step run
};

/// The noise stream of shard i of the global batch: seed itself for shard 0 (so shards = 1 is the
/// plain single stream), else a SplitMix64 mix of (seed, i).
inline std::uint64_t shard_seed(std::uint64_t seed, std::size_t i) {
  if (i == 0) return seed;
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(i) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The default hook: nothing between backward and the optimizer step.
struct no_gradient_hook {
  template <class Context, class Parameters>
  void operator()(Context&, Parameters&) const {}
};

/// Owns the optimizer and the EMA of one stage of `model` (which must outlive it). Any model with
/// parameters() trains; checkpoints need a checkpointable_model (a config() with config_traits).
template <backend B, class Model>
  requires requires(Model& m) { { m.parameters() } -> std::same_as<nn::parameter_set<B>&>; }
class trainer {
public:
  trainer(typename B::context& ctx, Model& model, trainer_config config)
      : m_config(checked(std::move(config))), m_model(&model), m_optimizer(ctx, model.parameters(), m_config.adam) {
    if (m_config.ema_decay > 0) m_ema.emplace(ctx, model.parameters(), m_config.ema_decay);
  }

  /// Trains to config.steps. step(ctx, x, labels_or_null, iteration) adds the objective's gradient
  /// (x: [batch, D], labels: [batch, 1] or null, iteration: 1-based std::uint64_t);
  /// hook(ctx, model.parameters()) runs after it, before the optimizer step, once per step.
  /// With config.resume and an existing checkpoint, continues from it (a finished stage is only loaded).
  template <class Step, class Hook = no_gradient_hook>
  train_result run(typename B::context& ctx, data::batch_sampler<B>& sampler, Step&& step, Hook&& hook = {}) {
    single_process_communicator one;
    return run_data_parallel(ctx, sampler, one, std::forward<Step>(step), std::forward<Hook>(hook));
  }

  /// run() on every rank of `comm` (data-parallel; docs/distributed.md). The sampler's batch is the
  /// global batch; rank r trains shards [r S/N, (r+1) S/N) of it (S = config.shards, N = comm.size()),
  /// the gradients are summed over shards and ranks by one comm.all_reduce_sum and divided by S before
  /// the hook. At the start the ranks must agree on the parameter count, the model config, the
  /// training settings and the resumed step (else ayf::error naming the rank and the value), and the
  /// parameters are broadcast from rank 0. Every rank reads the checkpoint; rank 0 alone writes it and
  /// the progress lines. Parameters stay bitwise equal on all ranks when comm's sum is (mpi_communicator's
  /// deterministic mode).
  template <class Communicator, class Step, class Hook = no_gradient_hook>
  train_result run_data_parallel(typename B::context& ctx, data::batch_sampler<B>& sampler, Communicator& comm,
                                 Step&& step, Hook&& hook = {}) {
    static_assert(communicator<Communicator, B>, "run_data_parallel needs an ayf::communicator");
    std::ostream null_stream(nullptr);
    const int rank = comm.rank();
    const auto ranks = static_cast<std::size_t>(comm.size());
    std::ostream& log = m_config.log != nullptr && rank == 0 ? *m_config.log : null_stream;
    const trainer_config& c = m_config;
    const std::string& label = c.label.empty() ? c.stage : c.label;
    auto& params = m_model->parameters();
    training_state<B> state = this->state(sampler.batch());
    comm.require_agreement("parameter count", params.size());
    require_same_entries(comm, "model config", state.config);
    require_same_entries(comm, "training settings", state.settings);
    comm.require_agreement("trainer seed", c.seed);
    comm.require_agreement("trainer steps", c.steps);
    const std::size_t shards = c.shards, batch = sampler.batch();
    require(batch % shards == 0, "trainer", "batch",
            ayf::detail::message("a multiple of trainer_config.shards = ", shards), batch);
    require(shards % ranks == 0, "trainer", "trainer_config.shards",
            ayf::detail::message("a multiple of the rank count ", ranks), shards);
    const std::size_t shard_rows = batch / shards, local_shards = shards / ranks;
    ctx.rng = philox_stream{c.seed, 0};
    std::string last_good = "none (no checkpoint of this stage written yet)";
    train_result result;
    const bool resuming = c.resume && !c.checkpoint.empty() && std::filesystem::exists(c.checkpoint);
    comm.require_agreement(ayf::detail::concat("checkpoint '", c.checkpoint.string(), "' exists"),
                           resuming ? 1u : 0u);
    if (resuming) load_checkpoint<B>(c.checkpoint, ctx, state);
    comm.require_agreement("resumed step", state.iteration);
    comm.broadcast(ctx, params.values, 0);
    if (resuming) {
      result.resumed = true;
      if (state.iteration >= c.steps) {
        log << c.stage << ": finished stage loaded from " << c.checkpoint.string() << "\n";
        result.first_step = c.steps + 1;
        result.last_step = state.iteration;
        return result;
      }
      log << c.stage << ": resuming at step " << state.iteration << "\n";
      last_good = ayf::detail::concat("'", c.checkpoint.string(), "' (step ", state.iteration, ")");
    }
    auto diverged = [&](std::uint64_t it, const std::string& what) {
      throw error(ayf::detail::concat("trainer: the ", label, " diverged at step ", it, " of ", c.steps, ": ", what,
                                      "; look at ", c.hint.empty() ? std::string("the learning rate") : c.hint,
                                      "; last good checkpoint: ", last_good));
    };
    progress report(c.stage, c.steps, c.progress_every, log, state.iteration);
    result.first_step = state.iteration + 1;
    for (std::uint64_t it = state.iteration + 1; it <= c.steps; ++it) {
      params.zero_gradients(ctx);
      step_statistics stats{};
      if (shards == 1) {
        sampler.draw(ctx, it);
        stats = step(ctx, sampler.x(), sampler.labels(), it);
      } else {
        // Shard i draws rows [i shard_rows, (i+1) shard_rows) and its noise from (shard_seed(seed, i),
        // offset): the same numbers whichever rank trains it. All shards take the same draw counts.
        const std::uint64_t offset = ctx.rng.offset;
        std::uint64_t end = offset;
        double loss = 0, tangent = 0;
        for (std::size_t q = 0; q < local_shards; ++q) {
          const std::size_t i = static_cast<std::size_t>(rank) * local_shards + q;
          sampler.draw_rows(ctx, it, i * shard_rows, shard_rows, m_shard_x, m_shard_y);
          ctx.rng = philox_stream{shard_seed(c.seed, i), offset};
          const step_statistics s = step(ctx, m_shard_x, sampler.labelled() ? &m_shard_y : nullptr, it);
          if (q > 0 && ctx.rng.offset != end) {
            throw error(ayf::detail::concat("trainer: shard ", i, " of step ", it, " took ", ctx.rng.offset - offset,
                                            " noise draws, shard ", i - 1, " took ", end - offset,
                                            "; sharded training needs the same draw count per shard"));
          }
          end = ctx.rng.offset;
          loss += s.loss;
          tangent += s.tangent_norm;
        }
        ctx.rng = philox_stream{c.seed, end};
        stats.loss = loss;
        stats.tangent_norm = tangent;
      }
      // Stop requests are summed with the statistics, so all ranks see the same count.
      double stop_requests = c.stop != nullptr && c.stop->load(std::memory_order_relaxed) ? 1.0 : 0.0;
      if (ranks > 1) {  // then shards > 1
        comm.all_reduce_sum(ctx, params.gradients);
        reduce_statistics(ctx, comm, stats, stop_requests);
      }
      if (shards > 1) {
        B::scale_sum_rows(ctx, params.gradients, 1.0 / static_cast<double>(shards), params.gradients);
        stats.loss /= static_cast<double>(shards);
        stats.tangent_norm /= static_cast<double>(shards);
      }
      if (!std::isfinite(stats.loss)) diverged(it, ayf::detail::concat("non-finite loss (", stats.loss, ")"));
      hook(ctx, params);
      try {
        m_optimizer.step(ctx, params);  // checks the gradient norm it computes; nothing changes on failure
      } catch (const error& e) {
        diverged(it, e.what());
      }
      const double theta_norm = std::sqrt(static_cast<double>(B::dot(ctx, params.values, params.values)));
      if (!std::isfinite(theta_norm)) {
        diverged(it, ayf::detail::concat("the update left non-finite parameters (norm ", theta_norm, ")"));
      }
      if (m_ema) m_ema->update(ctx, params);
      report.update(it, stats.loss, stats.tangent_norm);
      result.last = stats;
      result.last_step = it;
      if (!c.checkpoint.empty() && (it % c.checkpoint_every == 0 || it == c.steps)) {
        state.iteration = it;
        if (rank == 0) save_checkpoint<B>(c.checkpoint, ctx, state);
        last_good = ayf::detail::concat("'", c.checkpoint.string(), "' (step ", it, ")");
      }
      if (stop_requests > 0 && it < c.steps) {
        if (!c.checkpoint.empty() && state.iteration != it) {
          state.iteration = it;
          if (rank == 0) save_checkpoint<B>(c.checkpoint, ctx, state);
        }
        log << c.stage << ": stopped at step " << it << " of " << c.steps
            << (c.checkpoint.empty() ? std::string("; no checkpoint configured")
                                     : ayf::detail::concat("; checkpoint '", c.checkpoint.string(),
                                                           "' (resume continues from it)"))
            << "\n";
        result.stopped = true;
        return result;
      }
    }
    return result;
  }

  /// The checkpoint state of this stage (model, optimizer, EMA, settings) for batches of `batch` rows.
  training_state<B> state(std::size_t batch) {
    training_state<B> s;
    if constexpr (checkpointable_model<Model>) {
      s = make_training_state<B>(*m_model, &m_optimizer, m_ema ? &*m_ema : nullptr, m_config.stage);
    } else {
      s.parameters = &m_model->parameters();
      s.optimizer = &m_optimizer;
      s.ema = m_ema ? &*m_ema : nullptr;
      s.objective = m_config.stage;
    }
    s.settings = m_config.settings;
    s.settings["batch"] = std::to_string(batch);
    if (m_config.shards > 1) s.settings["shards"] = std::to_string(m_config.shards);
    if (m_ema) s.settings["ema"] = std::to_string(m_config.ema_decay);
    return s;
  }

  /// Copies the EMA weights into the model (when there is an EMA): what is sampled after training.
  void use_ema_weights(typename B::context& ctx) {
    if (m_ema) B::copy(ctx, m_ema->average(), m_model->parameters().values);
  }

  [[nodiscard]] const trainer_config& config() const { return m_config; }
  nn::adam<B>& optimizer() { return m_optimizer; }
  /// The EMA, or null when config.ema_decay is 0.
  nn::exponential_moving_average<B>* ema() { return m_ema ? &*m_ema : nullptr; }

private:
  static trainer_config checked(trainer_config c) {
    require(c.steps >= 1, "trainer_config", "steps", "at least 1", c.steps);
    require(c.checkpoint_every >= 1, "trainer_config", "checkpoint_every", "at least 1", c.checkpoint_every);
    require(std::isfinite(c.ema_decay) && c.ema_decay >= 0 && c.ema_decay < 1, "trainer_config", "ema_decay",
            "a value in [0, 1) (0 = no EMA)", c.ema_decay);
    require(!c.stage.empty(), "trainer_config", "stage", "a name", "''");
    require(c.shards >= 1, "trainer_config", "shards", "at least 1", c.shards);
    return c;
  }

  /// The step's loss, tangent norm and stop requests summed over ranks.
  template <class Communicator>
  static void reduce_statistics(typename B::context& ctx, Communicator& comm, step_statistics& stats,
                                double& stop_requests) {
    using S = typename B::scalar;
    auto t = B::from_host(ctx,
                          std::vector<S>{static_cast<S>(stats.loss), static_cast<S>(stats.tangent_norm),
                                         static_cast<S>(stop_requests)},
                          shape(1, 3));
    comm.all_reduce_sum(ctx, t);
    const auto v = B::to_host(ctx, t);
    stats.loss = static_cast<double>(v[0]);
    stats.tangent_norm = static_cast<double>(v[1]);
    stop_requests = static_cast<double>(v[2]);
  }

  trainer_config m_config;
  Model* m_model;
  typename B::tensor m_shard_x{}, m_shard_y{};
  nn::adam<B> m_optimizer;
  std::optional<nn::exponential_moving_average<B>> m_ema;
};

}  // namespace ayf::train
