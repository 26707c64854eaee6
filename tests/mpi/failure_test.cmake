# cmake -P script behind the mpi_failure ctest: 2-rank runs of ayf_mpi_failure (30 steps, a checkpoint
# every 5) in which one rank dies (SIGKILL) or raises mid-run. mpirun must exit non-zero naming the rank,
# promptly (a rank left waiting in a collective would hang: each run has a 120 s limit); the checkpoint
# directory holds the last whole checkpoint and no temporary file; resuming from it (on 1 and on 2 ranks)
# finishes with the parameters of an uninterrupted run to 1e-12 relative.
# Inputs: -DPROGRAM=<ayf_mpi_failure> -DOUT=<dir> -DMPIEXEC=<mpiexec> -DNP_FLAG=<-np> [-DPREFLAGS=<list>].
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${OUT}")

set(run_command_timeout 120)
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/ayfScriptChecks.cmake")

# DIR holds its checkpoint and no temporary file.
function(expect_whole_checkpoint dir)
  if(NOT EXISTS "${dir}/fm.safetensors")
    message(FATAL_ERROR "no checkpoint in ${dir}")
  endif()
  file(GLOB left "${dir}/*.tmp" "${dir}/*.tmp.*")
  if(left)
    message(FATAL_ERROR "temporary files left in ${dir}: ${left}")
  endif()
endfunction()

# Resumes DIR on `np` ranks; it must start from `step` and end at the reference's parameters.
function(expect_resume dir np step)
  if(np EQUAL 1)
    run_command("${PROGRAM}" "${dir}" 30 5 -1 0 none "${OUT}/reference/final.bin")
  else()
    run_command("${MPIEXEC}" ${NP_FLAG} ${np} --oversubscribe ${PREFLAGS} "${PROGRAM}" "${dir}" 30 5 -1 0 none
                "${OUT}/reference/final.bin")
  endif()
  if(NOT last_rc EQUAL 0)
    message(FATAL_ERROR "resuming ${dir} on ${np} rank(s) failed (${last_rc}):\n${last_output}")
  endif()
  expect_in("${np} rank(s), resumed at step ${step}, finished step 30" "${last_output}")
  expect_in("max relative difference to the reference" "${last_output}")
endfunction()

set(mpirun "${MPIEXEC}" ${NP_FLAG} 2 --oversubscribe ${PREFLAGS})

# The uninterrupted run on one process.
run_command("${PROGRAM}" "${OUT}/reference" 30 5 -1 0 none)
expect_run_succeeded("the reference run")
expect_in("1 rank(s), started at step 0, finished step 30" "${last_output}")

# Rank 1 killed at step 13: rank 0 wrote the step-10 checkpoint before rank 1 could reach step 11's
# all-reduce, so that is the last checkpoint.
run_command(${mpirun} "${PROGRAM}" "${OUT}/kill1" 30 5 1 13 kill)
expect_run_failed("rank 1 killed")
if(NOT last_output MATCHES "process rank 1 [^\n]*signal 9")
  message(FATAL_ERROR "mpirun did not name rank 1 and the signal:\n${last_output}")
endif()
expect_whole_checkpoint("${OUT}/kill1")
expect_resume("${OUT}/kill1" 1 10)

# Rank 0 (the writer) killed at step 10, after the all-reduce and before it writes the step-10
# checkpoint: the step-5 checkpoint is the last one.
run_command(${mpirun} "${PROGRAM}" "${OUT}/kill0" 30 5 0 10 kill)
expect_run_failed("rank 0 killed")
if(NOT last_output MATCHES "process rank 0 [^\n]*signal 9")
  message(FATAL_ERROR "mpirun did not name rank 0 and the signal:\n${last_output}")
endif()
expect_whole_checkpoint("${OUT}/kill0")
expect_resume("${OUT}/kill0" 2 5)

# Rank 1 raises at step 7 while rank 0 goes on to wait in step 8's all-reduce: main's mpi_abort_job
# ends the job, naming the rank and the cause.
run_command(${mpirun} "${PROGRAM}" "${OUT}/throw1" 30 5 1 7 throw)
expect_run_failed("rank 1 raised")
expect_in("ayf_mpi_failure: error on rank 1 of 2: injected failure at step 7" "${last_output}")
expect_whole_checkpoint("${OUT}/throw1")
expect_resume("${OUT}/throw1" 2 5)
