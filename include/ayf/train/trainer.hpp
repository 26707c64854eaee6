// ayf/train/trainer.hpp: the training loop (design.md §4, §7) for any model with parameters() and any
// objective: per step, batch k from a data::batch_sampler, zero the gradients, the objective's step
// (ctx, x, labels_or_null, iteration) -> step_statistics, a hook on the gradients (where a gradient
// all-reduce goes), Adam (warmup, clipping), the EMA, progress lines with ETA and periodic atomic
// checkpoints; a resumed run continues bit for bit. A non-finite loss, Adam's gradient-norm error or
// non-finite parameters after the update stop the run with an error naming the stage, the step, the
// hint and the last good checkpoint, and nothing is written after it.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "ayf/core/error.hpp"
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
  std::map<std::string, std::string> settings{};  ///< extra settings stored and compared on resume
  std::ostream* log = &std::cerr;       ///< progress and resume lines; null = silent
};

/// What run() did.
struct train_result {
  std::uint64_t first_step = 0;  ///< the first step run (steps + 1 when none ran)
  std::uint64_t last_step = 0;   ///< the iteration reached
  bool resumed = false;          ///< started from the checkpoint
  step_statistics last{};        ///< statistics of the last step run
};

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
    std::ostream null_stream(nullptr);
    std::ostream& log = m_config.log != nullptr ? *m_config.log : null_stream;
    const trainer_config& c = m_config;
    const std::string& label = c.label.empty() ? c.stage : c.label;
    auto& params = m_model->parameters();
    training_state<B> state = this->state(sampler.batch());
    ctx.rng = philox_stream{c.seed, 0};
    std::string last_good = "none (no checkpoint of this stage written yet)";
    train_result result;
    if (c.resume && !c.checkpoint.empty() && std::filesystem::exists(c.checkpoint)) {
      load_checkpoint<B>(c.checkpoint, ctx, state);
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
      sampler.draw(ctx, it);
      params.zero_gradients(ctx);
      const step_statistics stats = step(ctx, sampler.x(), sampler.labels(), it);
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
        save_checkpoint<B>(c.checkpoint, ctx, state);
        last_good = ayf::detail::concat("'", c.checkpoint.string(), "' (step ", it, ")");
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
    return c;
  }

  trainer_config m_config;
  Model* m_model;
  nn::adam<B> m_optimizer;
  std::optional<nn::exponential_moving_average<B>> m_ema;
};

}  // namespace ayf::train
