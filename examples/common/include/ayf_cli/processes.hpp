// ayf_cli/processes.hpp: an example program that runs as one process or, unchanged, as N processes
// under `mpirun -np N` (docs/distributed.md). Compiled with AYF_CLI_MPI=1 (link the ayf_cli_mpi target,
// which brings ayf::mpi) it starts MPI and trains through ayf::mpi_communicator; without it the
// program is rank 0 of 1 and uses ayf::single_process_communicator. The wiring of a program:
//
//   auto procs = ayf_cli::start_processes(argc, argv, "prog");  // null: MPI did not start (reported)
//   if (const auto rc = ayf_cli::parse(app, argc, argv, procs->group())) return *rc;  // rank 0 reports
//   ayf_cli::job_communicator<B> comm;             // before training, destroyed before procs
//   o.shards = ayf_cli::resolve_shards(o.shards, o.batch, group);  // --shards 0: one per process
//   ... catch (const std::exception& e) { return ayf_cli::report_error("prog", e, group); }
//
// Errors that every rank raises alike (options) are option_error: rank 0 reports them and every rank
// returns 1. Any other error may be one rank's alone (a file it cannot read), so with several
// processes it ends the whole job through ayf::mpi_abort_job, naming the rank. A run ended by SIGINT or
// SIGTERM (ayf/train/stop_signal.hpp; the trainer stops every rank at the same step) raises `stopped`:
// rank 0 reports it and every rank returns 128 + the signal number, as a shell reports the signal.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "ayf/core/error.hpp"
#include "ayf/distributed/communicator.hpp"
#include "ayf/train/stop_signal.hpp"
#if AYF_CLI_MPI
#include "ayf/backends/mpi/communicator.hpp"
#endif

namespace ayf_cli {

/// This process in the job: rank 0 of 1 without MPI.
struct process_group {
  int rank = 0;
  int size = 1;
  [[nodiscard]] bool root() const { return rank == 0; }
};

/// An error that every rank raises alike (it depends only on the options and the process count).
struct option_error : ayf::error {
  using ayf::error::error;
};

/// The processes of the job for the program's lifetime: MPI is started (when built with it) and
/// finalized when this is destroyed.
class processes {
public:
  processes(int& argc, char**& argv)
#if AYF_CLI_MPI
      : m_session(argc, argv) {
    const ayf::mpi_world world = ayf::mpi_world_of();
    m_group = {world.rank, world.size};
  }
#else
  {
    (void)argc;
    (void)argv;
  }
#endif
  processes(const processes&) = delete;
  processes& operator=(const processes&) = delete;

  [[nodiscard]] process_group group() const { return m_group; }

private:
#if AYF_CLI_MPI
  ayf::mpi_session m_session;
#endif
  process_group m_group{};
};

/// The processes, or null after writing "<program>: error: ..." when MPI cannot start.
inline std::unique_ptr<processes> start_processes(int& argc, char**& argv, std::string_view program) {
  try {
    return std::make_unique<processes>(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return nullptr;
  }
}

/// The communicator of the job for tensors of backend B.
#if AYF_CLI_MPI
template <class B>
using job_communicator = ayf::mpi_communicator<B>;
#else
template <class B>
using job_communicator = ayf::single_process_communicator;
#endif

/// Parses the command line (every rank parses the same arguments): nothing when it succeeded, else the
/// exit code, after rank 0 alone printed the help or the error.
inline std::optional<int> parse(CLI::App& app, int argc, char** argv, const process_group& group) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostream silent(nullptr);
    return group.root() ? app.exit(e) : app.exit(e, silent, silent);
  }
  return std::nullopt;
}

/// A run ended by a stop request (ayf::train::stop_requested()), not by a failure.
struct stopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs a training stage (trainer.run_data_parallel) that stops on ayf::train::stop_requested(): one
/// process checks before the stage too (several agree on a step inside the trainer only), and a stage the
/// trainer stopped raises `stopped` naming `label`, the step and the checkpoint. The trainer's config must
/// carry ayf::train::stop_request_flag() as its stop.
template <class Trainer, class Context, class Sampler, class Communicator, class Step>
void run_stoppable_stage(Trainer& trainer, Context& ctx, Sampler& sampler, Communicator& comm, Step&& step,
                         const std::string& label) {
  const std::string resume_hint = "; run the same command with --resume to continue";
  if (comm.size() == 1 && ayf::train::stop_requested()) throw stopped("before the " + label + resume_hint);
  const auto result = trainer.run_data_parallel(ctx, sampler, comm, std::forward<Step>(step));
  if (result.stopped) {
    throw stopped(ayf::detail::concat("the ", label, " at step ", result.last_step, " of ", trainer.config().steps,
                                      ", checkpoint '", trainer.config().checkpoint.string(), "'", resume_hint));
  }
}

/// The number of shards of the global batch: `shards`, or one per process when it is 0. Raises
/// option_error naming --shards unless the process count divides it and it divides `batch`.
inline std::size_t resolve_shards(std::size_t shards, std::size_t batch, const process_group& group) {
  const auto processes = static_cast<std::size_t>(group.size);
  if (shards == 0) shards = processes;
  if (shards % processes != 0) {
    throw option_error(ayf::detail::concat("--shards: expected a multiple of the process count ", processes,
                                           ", received '", shards, "'"));
  }
  if (batch % shards != 0) {
    throw option_error(ayf::detail::concat("--shards: expected a divisor of --batch (", batch, "), received '",
                                           shards, "'"));
  }
  return shards;
}

/// The program's top-level error handler: returns 1 after rank 0 wrote "<program>: error: <what>" for
/// an option_error or in a 1-process run; any other error of a run with several processes ends the job
/// with "<program>: error on rank R of N: <what>" (ayf::mpi_abort_job) and does not return. A `stopped`
/// run: "<program>: stopped: <what>" and 128 + the signal (1 when the stop came without one).
inline int report_error(std::string_view program, const std::exception& e, const process_group& group) {
  std::string_view what = e.what();
  if (dynamic_cast<const stopped*>(&e) != nullptr) {
    if (group.root()) std::cerr << program << ": stopped: " << what << "\n";
    const int signal_number = ayf::train::stop_signal();
    return signal_number > 0 ? 128 + signal_number : 1;
  }
  if (what.starts_with(program) && what.substr(program.size()).starts_with(": ")) {
    what.remove_prefix(program.size() + 2);
  }
  if (what.starts_with("trainer: ")) what.remove_prefix(9);
#if AYF_CLI_MPI
  if (group.size > 1 && dynamic_cast<const option_error*>(&e) == nullptr) ayf::mpi_abort_job(program, what);
#endif
  if (group.root()) std::cerr << program << ": error: " << what << "\n";
  return 1;
}

}  // namespace ayf_cli
