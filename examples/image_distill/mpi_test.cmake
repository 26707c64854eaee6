# cmake -P script behind the image_distill_mpi_np2 ctest (image_distill built with ayf::mpi): the smoke
# preset (fewer evaluations) under `mpirun -np 2` writes the image_distill.csv of the 1-process run with
# the same global batch and shards (--shards 2), equal to 1e-4 relative (or 1e-6 absolute) per number;
# only rank 0 prints and writes; the 2-rank checkpoints resume on one process; an error on one rank
# ends the job naming the rank. Each rank runs in its own directory (rank0/, rank1/) with a relative
# --out, as on machines without a shared file system, so whatever rank 1 wrote would appear under rank1/.
# Inputs: -DPROGRAM=<image_distill> -DOUT=<dir> -DMPIEXEC=<mpiexec> -DNP_FLAG=<-np> [-DPREFLAGS=<list>].
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}/single" "${OUT}/ranks/rank0" "${OUT}/ranks/rank1")

# run_command has a limit: a rank left waiting in a collective would hang.
set(run_command_timeout 300)
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/ayfScriptChecks.cmake")

# The smoke preset (batch 16) with 13 evaluations instead of 19: every stage still trains.
set(tiny --preset smoke --teacher-guidance autoguidance --lambda-sweep 2)
set(mpirun "${MPIEXEC}" ${NP_FLAG} 2 --oversubscribe ${PREFLAGS})
set(in_rank_directory /bin/sh -c "cd \"$0/rank$OMPI_COMM_WORLD_RANK\" && exec \"$@\"" "${OUT}/ranks")

# One process with the global batch 16 in 2 shards, then 2 ranks with one shard each (the default).
run_command("${PROGRAM}" --out "${OUT}/single/out" ${tiny} --shards 2)
expect_run_succeeded("the 1-process run")
set(single_output "${last_output}")
run_command(${mpirun} ${in_rank_directory} "${PROGRAM}" --out out ${tiny})
expect_run_succeeded("the 2-rank run")
set(ranks_output "${last_output}")

compare_tables("${OUT}/single/out/image_distill.csv" "${OUT}/ranks/rank0/out/image_distill.csv" 6 exact)  # .. nfe
if(exact)
  message(STATUS "image_distill.csv of 2 ranks = 1 process, byte for byte")
else()
  message(STATUS "image_distill.csv of 2 ranks = 1 process to 1e-4 relative (not byte for byte)")
endif()

# Rank 0 wrote everything, rank 1 nothing.
set(stages teacher weak ayf_emd ayf_lmd scd ayf_emd_cfg classifier)
set(outputs image_distill.csv grids/ayf_emd_autoguidance_1.png samples/ayf_emd_autoguidance_2.npy)
foreach(stage IN LISTS stages)
  list(APPEND outputs checkpoints/${stage}.safetensors)
endforeach()
expect_rank0_alone("${OUT}/ranks" ${outputs})

# Rank 0 alone printed: each line once, as many lines of each kind as the 1-process run.
expect_printed_once("${single_output}" "${ranks_output}" "image_distill: fashion-mnist, " "image_distill: teacher U-Net"
                    "teacher step 20/20" "ayf_emd_cfg step 6/6" "classifier step 20/20" "classifier: test accuracy"
                    "noise floor" "eval " "time: training")

# The 2-rank checkpoints (2 shards) resume on one process with --shards 2: every stage is loaded and the
# table is the same byte for byte; without --shards 2 the stored setting is named.
list(LENGTH stages stage_count)
expect_resume_on_one_process("${OUT}/ranks/rank0/out/image_distill.csv" ${stage_count}
                             "${PROGRAM}" --out "${OUT}/ranks/rank0/out" ${tiny})
expect_shards_error_once(${mpirun} "${PROGRAM}" --out "${OUT}/bad" ${tiny})

# An error on one rank only (rank 1 lacks the --data-dir, a relative path that only rank 0's directory
# holds: a link to the program's default) ends the job, naming the rank; the other rank, already
# waiting in the first collective, does not hang.
file(REMOVE_RECURSE "${OUT}/ranks/rank0/out" "${OUT}/ranks/rank1")
file(MAKE_DIRECTORY "${OUT}/ranks/rank1")
file(CREATE_LINK /usr/share/datasets/fashion-mnist "${OUT}/ranks/rank0/data" SYMBOLIC)
run_command(${mpirun} ${in_rank_directory} "${PROGRAM}" --data-dir data --out out ${tiny})
expect_run_failed("a run whose rank 1 cannot read --data-dir")
expect_in("image_distill: error on rank 1 of 2: --data-dir 'data'" "${last_output}")
