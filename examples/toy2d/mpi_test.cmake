# cmake -P script behind the toy2d_mpi_np2 ctest (toy2d built with ayf::mpi): the smoke configuration
# under `mpirun -np 2` writes the toy2d.csv of the 1-process run with the same global batch and shards
# (--shards 2), equal to 1e-4 relative (or 1e-6 absolute) per number; only rank 0 prints and writes;
# the 2-rank checkpoints resume on one process; an error on one rank ends the job naming the rank.
# Each rank runs in its own directory (rank0/, rank1/) with a relative --out, as on machines without a
# shared file system, so whatever rank 1 wrote would appear under rank1/.
# Inputs: -DPROGRAM=<toy2d> -DOUT=<dir> -DMPIEXEC=<mpiexec> -DNP_FLAG=<-np> [-DPREFLAGS=<list>].
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}/single" "${OUT}/ranks/rank0" "${OUT}/ranks/rank1")

# run_command has a limit: a rank left waiting in a collective would hang.
set(run_command_timeout 300)
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/ayfScriptChecks.cmake")

set(tiny --teacher-steps 20 --weak-steps 10 --student-steps 10 --width 16 --weak-width 8 --batch 64
         --eval-samples 200 --mmd-samples 100 --sample-steps 1,2 --progress-every 0 --checkpoint-every 5)
set(mpirun "${MPIEXEC}" ${NP_FLAG} 2 --oversubscribe ${PREFLAGS})
set(in_rank_directory /bin/sh -c "cd \"$0/rank$OMPI_COMM_WORLD_RANK\" && exec \"$@\"" "${OUT}/ranks")

# One process with the global batch 64 in 2 shards, then 2 ranks with one shard each (the default).
run_command("${PROGRAM}" --data checkerboard --out "${OUT}/single/out" ${tiny} --shards 2)
expect_run_succeeded("the 1-process run")
set(single_output "${last_output}")
run_command(${mpirun} ${in_rank_directory} "${PROGRAM}" --data checkerboard --out out ${tiny})
expect_run_succeeded("the 2-rank run")
set(ranks_output "${last_output}")

compare_tables("${OUT}/single/out/toy2d.csv" "${OUT}/ranks/rank0/out/toy2d.csv" 5 exact)  # dataset .. gamma
if(exact)
  message(STATUS "toy2d.csv of 2 ranks = 1 process, byte for byte")
else()
  message(STATUS "toy2d.csv of 2 ranks = 1 process to 1e-4 relative (not byte for byte)")
endif()

# Rank 0 wrote everything, rank 1 nothing.
expect_rank0_alone("${OUT}/ranks" toy2d.csv png/data.png checkpoints/teacher.safetensors checkpoints/weak.safetensors
                   checkpoints/ayf_emd.safetensors checkpoints/shortcut.safetensors)

# Rank 0 alone printed: each line once, as many lines of each kind as the 1-process run.
expect_printed_once("${single_output}" "${ranks_output}" "toy2d: checkerboard, " "teacher step 20/20"
                    "shortcut step 10/10" "eval " "checks: " "time: training")

# The 2-rank checkpoints (2 shards) resume on one process with --shards 2: every stage is loaded and the
# table is the same byte for byte; without --shards 2 the stored setting is named.
expect_resume_on_one_process("${OUT}/ranks/rank0/out/toy2d.csv" 6
                             "${PROGRAM}" --data checkerboard --out "${OUT}/ranks/rank0/out" ${tiny})
expect_shards_error_once(${mpirun} "${PROGRAM}" --out "${OUT}/bad" ${tiny})

# An error on one rank only (rank 1 lacks the --data file) ends the job, naming the rank; the other rank,
# already waiting in the first collective, does not hang.
file(REMOVE_RECURSE "${OUT}/ranks/rank0/out" "${OUT}/ranks/rank1")
file(MAKE_DIRECTORY "${OUT}/ranks/rank1")
set(text "x0,x1\n")
foreach(i RANGE 99)
  math(EXPR a "${i} % 7")
  math(EXPR b "${i} % 3")
  string(APPEND text "0.${a},0.${b}\n")
endforeach()
file(WRITE "${OUT}/ranks/rank0/points.csv" "${text}")
run_command(${mpirun} ${in_rank_directory} "${PROGRAM}" --data points.csv --out out ${tiny})
expect_run_failed("a run whose rank 1 cannot read --data")
expect_in("toy2d: error on rank 1 of 2: --data" "${last_output}")
expect_in("points.csv" "${last_output}")
