# Reliability of the example binaries (docs/reliability.md): SIGKILL / resume bitwise equality, loud divergence,
# flushed progress lines, strict options, and data / output checks before any training. The library-level cases
# are in tests/test_reliability.cpp; the reader fuzz targets in tests/cmake/fuzz.cmake.
if(NOT DISTILL_BUILD_EXAMPLES)
  return()
endif()
find_package(Python3 COMPONENTS Interpreter)
set(rel_src ${CMAKE_CURRENT_SOURCE_DIR}/reliability)
set(rel_bin ${CMAKE_CURRENT_BINARY_DIR}/reliability)
file(MAKE_DIRECTORY ${rel_bin}/empty ${rel_bin}/ckpt_is_dir/state.ckpt)
# A short GunPoint run: 6 steps of 8 series per epoch, the state saved after every step.
set(rel_short --epochs 2 --batch 8 --probe-steps 50 --threads 2 --quiet)
# Long enough (30 epochs, 180 steps: several seconds) for the kills, 0.8 to 3 s into each attempt, to land.
set(rel_kill --epochs 30 --batch 8 --probe-steps 50 --threads 2 --quiet)

if(Python3_FOUND)
  add_test(NAME dcrls_kill_resume
           COMMAND ${Python3_EXECUTABLE} ${rel_src}/kill_resume.py --binary $<TARGET_FILE:dcrls> --work ${rel_bin}/kill
                   --kills 4 -- ${rel_kill} --checkpoint-every 1 --checkpoint-unit step)
  add_test(NAME dcrls_divergence
           COMMAND ${Python3_EXECUTABLE} ${rel_src}/kill_resume.py --binary $<TARGET_FILE:dcrls> --work ${rel_bin}/diverge
                   --diverge -- --epochs 1 --batch 8 --probe-steps 20 --threads 2 --quiet)
  add_test(NAME dcrls_progress_flushed
           COMMAND ${Python3_EXECUTABLE} ${rel_src}/kill_resume.py --binary $<TARGET_FILE:dcrls> --work ${rel_bin}/flush
                   --flush -- ${rel_short})
  # disco: a student on ECG200 (100 series >= 64: the MoCo queue and the key encoder are part of the state), 100
  # epochs: the student is small (about 1 s per 12 epochs unloaded), and 3 kills must land 0.8 to 3 s into attempts;
  # mcl: L-MCL x2 with a meta step every 3 iterations (cohort, weight network, both optimizers).
  add_test(NAME disco_kill_resume
           COMMAND ${Python3_EXECUTABLE} ${rel_src}/kill_resume.py --binary $<TARGET_FILE:disco> --work ${rel_bin}/disco_kill
                   --kills 3 -- --dataset ECG200 --variant student --epochs 100 --batch 8 --probe-steps 50 --threads 2
                   --quiet --checkpoint-every 1 --checkpoint-unit step)
  add_test(NAME mcl_kill_resume
           COMMAND ${Python3_EXECUTABLE} ${rel_src}/kill_resume.py --binary $<TARGET_FILE:mcl> --work ${rel_bin}/mcl_kill
                   --kills 3 -- --dataset GunPoint --layerwise --meta-freq 3 --epochs 12 --batch 8 --threads 2 --quiet
                   --checkpoint-every 1 --checkpoint-unit step)
  # mcl --self-supervised: two cohorts (query, momentum keys) and a queue per network.
  add_test(NAME mcl_moco_kill_resume
           COMMAND ${Python3_EXECUTABLE} ${rel_src}/kill_resume.py --binary $<TARGET_FILE:mcl> --work ${rel_bin}/mcl_moco_kill
                   --kills 3 -- --dataset GunPoint --self-supervised --epochs 12 --batch 8 --threads 2 --quiet
                   --checkpoint-every 1 --checkpoint-unit step)
  set_tests_properties(dcrls_kill_resume dcrls_divergence dcrls_progress_flushed disco_kill_resume mcl_kill_resume
                       mcl_moco_kill_resume PROPERTIES
                       TIMEOUT 300 PASS_REGULAR_EXPRESSION "PASS|divergence: exit 3" FAIL_REGULAR_EXPRESSION "FAIL")
endif()

# name | arguments | expected output (regular expression)
function(distill_dcrls_case name args regex)
  add_test(NAME dcrls_${name} COMMAND dcrls ${args})
  set_tests_properties(dcrls_${name} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}" TIMEOUT 60)
endfunction()
distill_dcrls_case(opt_epochs_abc "--epochs;abc" "--epochs: 'abc' is not a whole number")
distill_dcrls_case(opt_epochs_trailing "--epochs;2x" "--epochs: '2x' is not a whole number")
distill_dcrls_case(opt_seed_negative "--seed;-1" "--seed: '-1' is not a whole number")
distill_dcrls_case(opt_lr_inf "--lr;inf" "--lr: 'inf' is not a finite number")
distill_dcrls_case(opt_lambda_nan "--lambda;nan" "--lambda: 'nan' is not a finite number")
distill_dcrls_case(opt_tau_underflow "--tau;1e-40" "--tau: '1e-40' is not a usable temperature")
distill_dcrls_case(opt_tau_reciprocal "--tau;2e-39" "--tau: '2e-39' is not a usable temperature")
distill_dcrls_case(opt_probe_steps_negative "--probe-steps;-5" "--probe-steps: '-5' is out of range")
distill_dcrls_case(opt_unknown "--epoch;3" "not expected: .*--epoch")
distill_dcrls_case(threads_clamped "--threads;4096;--out;${rel_src}/kill_resume.py"
                   "warning: --threads 4096 exceeds the [0-9]+ cores of this machine; using [0-9]+")
distill_dcrls_case(out_is_file "--out;${rel_src}/kill_resume.py" "--out '.*kill_resume.py' exists and is not a directory")
distill_dcrls_case(out_not_creatable "--out;/proc/distill-no-such/out" "--out '/proc/distill-no-such/out' cannot be created")
distill_dcrls_case(data_one_class "--dataset;${rel_src}/data/OneClass;--out;${rel_bin}/out"
                   "dataset 'OneClass' has 1 class in its training split but dcrls needs at least 2")
distill_dcrls_case(data_one_series "--dataset;${rel_src}/data/OneSeries;--out;${rel_bin}/out"
                   "dataset 'OneSeries' has 1 training series but dcrls needs at least 2")
distill_dcrls_case(data_test_length "--dataset;${rel_src}/data/ShortTest;--out;${rel_bin}/out"
                   "the TEST file '.*ShortTest_TEST.tsv' has series of length 3 but the TRAIN file '.*ShortTest_TRAIN.tsv' has series of length 4")
distill_dcrls_case(data_exact_labels
                   "--dataset;${rel_src}/data/BigLabels;--epochs;1;--batch;2;--probe-steps;1;--out;${rel_bin}/biglabels"
                   "4 train / 4 test series, length 4, 3 classes")
distill_dcrls_case(resume_nothing "--resume;${rel_bin}/empty" "no training state to resume in '.*empty'")
distill_dcrls_case(resume_state_is_directory "--resume;${rel_bin}/ckpt_is_dir"
                   "checkpoint path '.*ckpt_is_dir/state.ckpt' is a directory")
distill_dcrls_case(resume_other_out "--resume;${rel_bin}/empty;--out;${rel_bin}/out" "--resume '.*' and --out '.*' differ")
add_test(NAME dcrls_help_lists_written_files COMMAND dcrls --help)
set_tests_properties(dcrls_help_lists_written_files PROPERTIES
                     PASS_REGULAR_EXPRESSION "metrics.json, metrics.csv, loss.svg, embedding.svg, test_z.npy, test_y.npy"
                     FAIL_REGULAR_EXPRESSION "loss\\.csv")

# disco and mcl: the same strict options, up-front checks and loud divergence (exit 3, no metrics).
function(distill_example_case prog name args regex)
  add_test(NAME ${prog}_${name} COMMAND ${prog} ${args})
  set_tests_properties(${prog}_${name} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}" TIMEOUT 120)
endfunction()
foreach(prog disco mcl)
  distill_example_case(${prog} opt_epochs_trailing "--epochs;2x" "--epochs: '2x' is not a whole number")
  distill_example_case(${prog} opt_seed_negative "--seed;-1" "--seed: '-1' is not a whole number")
  distill_example_case(${prog} opt_tau_reciprocal "--tau;2e-39" "--tau: '2e-39' is not a usable temperature")
  distill_example_case(${prog} out_is_file "--out;${rel_src}/kill_resume.py" "--out '.*kill_resume.py' exists and is not a directory")
  distill_example_case(${prog} data_one_class "--dataset;${rel_src}/data/OneClass;--out;${rel_bin}/${prog}_out"
                       "dataset 'OneClass' has 1 class in its training split but ${prog} needs at least 2")
endforeach()
distill_example_case(disco diverged "--variant;student;--epochs;2;--batch;8;--probe-steps;5;--quiet;--inject-nan-at-step;3;--out;${rel_bin}/disco_nan"
                     "disco: training diverged at epoch 1, step [0-9]+: .*is NaN.*\ndisco: no metrics were written")
distill_example_case(mcl diverged "--epochs;2;--batch;8;--quiet;--inject-nan-at-step;3;--out;${rel_bin}/mcl_nan"
                     "mcl: training diverged at epoch 1, step [0-9]+: .*is NaN.*\nmcl: no metrics were written")
distill_example_case(mcl opt_widths "--cohort;2;--widths;16,33" "--widths: 33 not in")
