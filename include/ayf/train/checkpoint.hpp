// ayf/train/checkpoint.hpp: the complete training state in one safetensors file, written atomically
// (design.md §7): parameters, Adam moments and step count, EMA weights (optional), the iteration, the
// training context's Philox position (seed, offset) and metadata (format version, model config as
// key=value strings, objective name). Float tensors keep their dtype (F32 / F64), so a resume is
// bit-exact. Every tensor and the metadata carry an FNV-1a checksum in the metadata ("checksum.<tensor>",
// "checksum.__metadata__", see ayf/io/safetensors.hpp). Saving and loading check that float tensors are
// finite and Adam's second moment is >= 0; loading checks every field and the checksums and raises
// ayf::error naming the file and the field.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/io/safetensors.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"

namespace ayf::train {

/// The format written into the metadata key "format" (v2: with checksums).
inline constexpr std::string_view checkpoint_format = "ayf.checkpoint.v2";
/// The format of older files, without checksums: still loaded, with every other check.
inline constexpr std::string_view checkpoint_format_v1 = "ayf.checkpoint.v1";

/// An mlp_config as key=value strings (metadata keys "config.<key>"), compared on load.
inline std::map<std::string, std::string> config_strings(const nn::mlp_config& c) {
  auto str = [](auto v) { return ayf::detail::concat(v); };
  return {{"dims", str(c.dims)},
          {"width", str(c.width)},
          {"blocks", str(c.blocks)},
          {"frequencies", str(c.frequencies)},
          {"frequency_scale", str(c.frequency_scale)},
          {"embed_s", str(c.embed_s ? 1 : 0)},
          {"embed_lambda", str(c.embed_lambda ? 1 : 0)},
          {"lambda_scale", str(c.lambda_scale)},
          {"default_lambda", str(c.default_lambda)},
          {"classes", str(c.classes)}};
}

/// What a checkpoint holds, by reference: the parameters are required; optimizer and ema may be
/// null (then they are neither written nor read). `iteration`, `objective` and `config` are values:
/// save writes them, load checks `objective` and `config` and sets `iteration`.
template <backend B>
struct training_state {
  nn::parameter_set<B>* parameters = nullptr;
  nn::adam<B>* optimizer = nullptr;
  nn::exponential_moving_average<B>* ema = nullptr;
  std::uint64_t iteration = 0;
  std::string objective;
  std::map<std::string, std::string> config;
};

namespace checkpoint_detail {

template <class... Parts>
[[noreturn]] void fail(const std::filesystem::path& path, const Parts&... parts) {
  throw error(ayf::detail::concat("load_checkpoint: '", path.string(), "': ", parts...));
}

/// The first value of `values` that is not finite (or negative, with `non_negative`), described as
/// "expected ..., received <v> at index <i>"; empty when there is none.
template <class T>
std::string value_problem(const std::vector<T>& values, bool non_negative) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = static_cast<double>(values[i]);
    if (!std::isfinite(v) || (non_negative && v < 0)) {
      return ayf::detail::concat("expected ", non_negative ? "finite values >= 0" : "finite values", ", received ", v,
                                 " at index ", i);
    }
  }
  return {};
}

inline std::vector<std::int64_t> to_i64(std::uint64_t a, std::uint64_t b) {
  std::vector<std::int64_t> out(2);
  std::memcpy(&out[0], &a, sizeof a);
  std::memcpy(&out[1], &b, sizeof b);
  return out;
}
inline std::uint64_t to_u64(std::int64_t v) {
  std::uint64_t out = 0;
  std::memcpy(&out, &v, sizeof v);
  return out;
}

/// The tensor `name` with dtype T and shape `shape`, or a load error naming the field.
template <class T>
std::vector<T> get(const io::safetensors_content& content, const std::filesystem::path& path, std::string_view name,
                   const std::vector<std::size_t>& shape) {
  const io::safetensors_tensor* t = content.find(name);
  if (t == nullptr) fail(path, "tensor '", name, "' missing");
  constexpr io::safetensors_dtype wanted = io::safetensors_detail::dtype_of<T>();
  if (t->dtype != wanted) {
    fail(path, "tensor '", name, "': dtype expected ", io::safetensors_detail::name_of(wanted), ", received ",
         io::safetensors_detail::name_of(t->dtype));
  }
  if (t->shape != shape) {
    auto str = [](const std::vector<std::size_t>& s) {
      std::string out = "[";
      for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + "]";
    };
    fail(path, "tensor '", name, "': shape expected ", str(shape), ", received ", str(t->shape),
         name == "parameters" ? " (parameter count differs from the model's)" : "");
  }
  std::vector<T> values = io::safetensors_values<T>(*t);
  if constexpr (std::is_floating_point_v<T>) {
    if (const std::string problem = value_problem(values, name == "adam.second_moment"); !problem.empty()) {
      fail(path, "tensor '", name, "': ", problem);
    }
  }
  return values;
}

}  // namespace checkpoint_detail

/// Writes `state` and ctx.rng to `path` atomically (temp file, fsync, rename), with checksums. Raises
/// ayf::error("save_checkpoint: '<path>': tensor '<name>': expected finite values, ...") and writes nothing
/// when a parameter, moment or EMA weight is not finite or a second moment is negative.
template <backend B>
void save_checkpoint(const std::filesystem::path& path, typename B::context& ctx, const training_state<B>& state) {
  require(state.parameters != nullptr, "save_checkpoint", "state.parameters", "a parameter set", "null");
  using scalar = typename B::scalar;
  io::safetensors_content content;
  const std::size_t p = state.parameters->size();
  const auto add_checked = [&](const std::string& name, const std::vector<scalar>& values) {
    if (const std::string problem = checkpoint_detail::value_problem(values, name == "adam.second_moment");
        !problem.empty()) {
      throw error(ayf::detail::concat("save_checkpoint: '", path.string(), "': tensor '", name, "': ", problem));
    }
    content.add<scalar>(name, values, {p});
  };
  add_checked("parameters", B::to_host(ctx, state.parameters->values));
  if (state.optimizer != nullptr) {
    add_checked("adam.first_moment", B::to_host(ctx, state.optimizer->first_moment()));
    add_checked("adam.second_moment", B::to_host(ctx, state.optimizer->second_moment()));
    content.add<std::int64_t>("adam.steps", {static_cast<std::int64_t>(state.optimizer->steps())}, {1});
  }
  if (state.ema != nullptr) add_checked("ema", B::to_host(ctx, state.ema->average()));
  content.add<std::int64_t>("iteration", {static_cast<std::int64_t>(state.iteration)}, {1});
  content.add<std::int64_t>("rng", checkpoint_detail::to_i64(ctx.rng.seed, ctx.rng.offset), {2});
  content.metadata["format"] = std::string(checkpoint_format);
  content.metadata["objective"] = state.objective;
  content.metadata["parameter_count"] = std::to_string(p);
  for (const auto& [key, value] : state.config) content.metadata["config." + key] = value;
  io::add_safetensors_checksums(content);
  io::write_safetensors(path, content);
}

/// Restores `state` (parameters, optimizer, ema, iteration) and ctx.rng from `path`. Checks the
/// format, the checksums (v2; v1 files have none), objective, config (every key of state.config, and no
/// extra key), each tensor's presence, dtype and shape, that float tensors are finite and the second
/// moment is >= 0. Raises ayf::error("load_checkpoint: '<path>': <field> ...") on any mismatch;
/// on error nothing has been modified.
template <backend B>
void load_checkpoint(const std::filesystem::path& path, typename B::context& ctx, training_state<B>& state) {
  namespace cd = checkpoint_detail;
  require(state.parameters != nullptr, "load_checkpoint", "state.parameters", "a parameter set", "null");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) cd::fail(path, "no such file");
  io::safetensors_content content;
  try {
    content = io::read_safetensors(path);
  } catch (const error& e) {
    cd::fail(path, "corrupt or truncated safetensors file (", e.what(), ")");
  }
  auto meta = [&](const std::string& key) -> const std::string* {
    const auto it = content.metadata.find(key);
    return it == content.metadata.end() ? nullptr : &it->second;
  };
  const std::string* format = meta("format");
  if (format == nullptr || (*format != checkpoint_format && *format != checkpoint_format_v1)) {
    cd::fail(path, "metadata 'format' expected ", checkpoint_format, " (or ", checkpoint_format_v1, "), received ",
             format ? *format : "none");
  }
  if (*format == checkpoint_format) {
    if (const std::string problem = io::safetensors_checksum_problem(content); !problem.empty()) {
      cd::fail(path, problem);
    }
  }
  const std::string* objective = meta("objective");
  if (objective == nullptr || *objective != state.objective) {
    cd::fail(path, "metadata 'objective' expected '", state.objective, "', received '",
             objective ? *objective : "none", "'");
  }
  for (const auto& [key, value] : state.config) {
    const std::string* stored = meta("config." + key);
    if (stored == nullptr || *stored != value) {
      cd::fail(path, "model config 'config.", key, "' expected ", value, ", received ", stored ? *stored : "none");
    }
  }
  for (const auto& [key, value] : content.metadata) {
    if (key.rfind("config.", 0) == 0 && !state.config.contains(key.substr(7))) {
      cd::fail(path, "model config '", key, "' = ", value, " is not in the model's config");
    }
  }
  const std::size_t p = state.parameters->size();
  // Check everything before modifying anything.
  using scalar = typename B::scalar;
  const auto params = cd::get<scalar>(content, path, "parameters", {p});
  std::vector<scalar> first, second, ema;
  std::int64_t adam_steps = 0;
  if (state.optimizer != nullptr) {
    first = cd::get<scalar>(content, path, "adam.first_moment", {p});
    second = cd::get<scalar>(content, path, "adam.second_moment", {p});
    adam_steps = cd::get<std::int64_t>(content, path, "adam.steps", {1})[0];
    if (adam_steps < 0) cd::fail(path, "tensor 'adam.steps': expected >= 0, received ", adam_steps);
  }
  if (state.ema != nullptr) ema = cd::get<scalar>(content, path, "ema", {p});
  const std::int64_t iteration = cd::get<std::int64_t>(content, path, "iteration", {1})[0];
  if (iteration < 0) cd::fail(path, "tensor 'iteration': expected >= 0, received ", iteration);
  const auto rng = cd::get<std::int64_t>(content, path, "rng", {2});

  const shape sh(1, p);
  B::copy(ctx, B::from_host(ctx, params, sh), state.parameters->values);
  if (state.optimizer != nullptr) {
    B::copy(ctx, B::from_host(ctx, first, sh), state.optimizer->first_moment());
    B::copy(ctx, B::from_host(ctx, second, sh), state.optimizer->second_moment());
    state.optimizer->set_steps(static_cast<std::uint64_t>(adam_steps));
  }
  if (state.ema != nullptr) B::copy(ctx, B::from_host(ctx, ema, sh), state.ema->average());
  state.iteration = static_cast<std::uint64_t>(iteration);
  ctx.rng.seed = cd::to_u64(rng[0]);
  ctx.rng.offset = cd::to_u64(rng[1]);
}

/// The training_state of an mlp_flow_model (config from its mlp_config).
template <backend B>
training_state<B> make_training_state(nn::mlp_flow_model<B>& model, nn::adam<B>* optimizer,
                                       nn::exponential_moving_average<B>* ema, std::string objective) {
  training_state<B> s;
  s.parameters = &model.parameters();
  s.optimizer = optimizer;
  s.ema = ema;
  s.objective = std::move(objective);
  s.config = config_strings(model.config());
  return s;
}

}  // namespace ayf::train
