// ayf/core/model.hpp: the model concepts (design.md §4): velocity fields v(x, t) (teachers, guided
// compositions), flow maps f(x, t, s) (spec §2), average-velocity networks F(x, t, s), and
// consistency models f(x, t) = f(x, t, 0).
#pragma once

#include "ayf/core/backend.hpp"

namespace ayf {

/// Conditioning shared by every model call. Null pointers mean "unconditional" / "model default".
///   labels:   [B, 1] class indices stored as scalars (`null_class` = the unconditional class)
///   guidance: [B, 1] guidance scale lambda per sample (spec §7)
template <backend B>
struct condition {
  const typename B::tensor* labels = nullptr;
  const typename B::tensor* guidance = nullptr;
};

/// Label value of the unconditional (null) class used by classifier-free guidance.
inline constexpr double null_class = -1.0;

/// v(ctx, x, t, cond, out): out = v(x, t). x, out: [B, D]; t: [B, 1].
template <class V, class B>
concept velocity_field =
    backend<B> && requires(V& v, typename B::context& ctx, const typename B::tensor& x,
                           const typename B::tensor& t, const condition<B>& cond,
                           typename B::tensor& out) { v(ctx, x, t, cond, out); };

/// m.map(ctx, x, t, s, cond, out): out = f(x, t, s), the point at time s of the PF-ODE trajectory
/// through x at time t. x, out: [B, D]; t, s: [B, 1].
template <class M, class B>
concept flow_map =
    backend<B> && requires(M& m, typename B::context& ctx, const typename B::tensor& x,
                           const typename B::tensor& t, const typename B::tensor& s,
                           const condition<B>& cond, typename B::tensor& out) {
      m.map(ctx, x, t, s, cond, out);
    };

/// m.forward(ctx, x, t, s, cond, out): out = F(x, t, s), the average velocity of the Euler
/// parametrization f = x + (s - t) F (spec §2). Networks add forward_jvp / backward (design.md §4).
template <class M, class B>
concept flow_map_model =
    backend<B> && requires(M& m, typename B::context& ctx, const typename B::tensor& x,
                           const typename B::tensor& t, const typename B::tensor& s,
                           const condition<B>& cond, typename B::tensor& out) {
      m.forward(ctx, x, t, s, cond, out);
    };

/// m.denoise(ctx, x, t, cond, out): out = f(x, t), the consistency model's clean-data estimate.
template <class M, class B>
concept consistency_model =
    backend<B> && requires(M& m, typename B::context& ctx, const typename B::tensor& x,
                           const typename B::tensor& t, const condition<B>& cond,
                           typename B::tensor& out) { m.denoise(ctx, x, t, cond, out); };

}  // namespace ayf
