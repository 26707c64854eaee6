// ayf/nn/flow_model.hpp: what every network flow model offers, written once (design.md §4): the plain
// and saving forward passes, the velocity-field call of a teacher, forward_jvp (primal and tangent
// stacked [2B, .] in one pass) and from_teacher. A model (mlp.hpp, unet.hpp) derives from
// flow_model<Model, B, Config, Activations> and provides
//   run(ctx, x, t, s, cond, dx, dt, ds, act)   the pass, tangents null for a plain forward
//   static output(act)                        the output rows of a pass ([B, D] or [2B, D])
//   m_params                                  its parameter_set (read by parameters())
//   static same_architecture(a, b)            whether two configs differ only in embed_s / embed_lambda
#pragma once

#include <cstddef>
#include <utility>

#include "ayf/core/model.hpp"
#include "ayf/nn/layer.hpp"
#include "ayf/nn/parameters.hpp"

namespace ayf::nn {

template <class Model, backend B, class Config, class Activations>
class flow_model {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using activations = Activations;

  /// A student that starts as exactly its teacher's Euler step: every block of the teacher is copied
  /// into the student's block of the same name; the s and lambda weights are zero (spec §2).
  static Model from_teacher(context& ctx, const Model& teacher, const Config& student) {
    const Config& t = teacher.config();
    require(Model::same_architecture(t, student), Model::name, "student",
            "the teacher's architecture (all but embed_s and embed_lambda)", "a different architecture");
    require(!t.embed_s && !t.embed_lambda, Model::name, "teacher", "a velocity model (no s or lambda inputs)",
            "a model with s or lambda inputs");
    Model out(ctx, student);
    B::fill(ctx, out.parameters().values, scalar(0));
    copy_blocks_by_name<B>(ctx, teacher.parameters(), out.parameters());
    return out;
  }

  [[nodiscard]] const Config& config() const { return m_config; }
  parameter_set<B>& parameters() { return self().m_params; }
  const parameter_set<B>& parameters() const { return static_cast<const Model&>(*this).m_params; }

  /// out = F(x, t, s). x, out: [B, D]; t, s: [B, 1]; cond.labels / cond.guidance: [B, 1] or null.
  void forward(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
               tensor& out) {
    forward(ctx, x, t, s, cond, out, m_scratch);
  }

  /// forward, keeping the activations in `saved` for backward.
  void forward(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
               tensor& out, activations& saved) {
    self().run(ctx, x, t, s, cond, nullptr, nullptr, nullptr, saved);
    B::copy(ctx, Model::output(saved), out);
  }

  /// Velocity-field call (teachers): out = F(x, t, t).
  void operator()(context& ctx, const tensor& x, const tensor& t, const condition<B>& cond, tensor& out) {
    forward(ctx, x, t, t, cond, out, m_scratch);
  }

  /// Primal and tangent in one pass: out = F(x, t, s), dout = dF[dx, dt, ds] (lambda and labels
  /// held fixed). dx: [B, D]; dt, ds: [B, 1]. Saves the primal activations for backward.
  void forward_jvp(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
                   const tensor& dx, const tensor& dt, const tensor& ds, tensor& out, tensor& dout,
                   activations& saved) {
    self().run(ctx, x, t, s, cond, &dx, &dt, &ds, saved);
    const std::size_t n = saved.batch;
    B::copy(ctx, detail::rows_of<B>(ctx, Model::output(std::as_const(saved)), 0, n), out);
    B::copy(ctx, detail::rows_of<B>(ctx, Model::output(std::as_const(saved)), n, n), dout);
  }

protected:
  explicit flow_model(const Config& config) : m_config(config) {}

  /// The input rows [x; dx] into `input` ([B or 2B, dims]); records the batch and the stacking in act.
  void stack_input(context& ctx, const tensor& x, const tensor* dx, std::size_t dims, tensor& input,
                   activations& act) const {
    const shape sx = B::shape_of(x);
    const std::size_t n = sx.rows;
    require_shape(Model::name, "x", shape(n, dims), sx);
    if (dx != nullptr) require_shape(Model::name, "dx", sx, B::shape_of(*dx));
    act.batch = n;
    act.stacked = dx != nullptr;
    B::resize(ctx, input, shape(dx != nullptr ? 2 * n : n, dims));
    B::copy(ctx, x, detail::rows_of<B>(ctx, input, 0, n));
    if (dx != nullptr) B::copy(ctx, *dx, detail::rows_of<B>(ctx, input, n, n));
  }

  Config m_config;
  activations m_scratch{};

private:
  Model& self() { return static_cast<Model&>(*this); }
};

}  // namespace ayf::nn
