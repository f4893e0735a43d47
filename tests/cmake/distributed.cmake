# Data-parallel ranks (dist/): tests/dist/test_distributed.cpp run as 2 MPI ranks and as a single process, and the
# fault checks (a rank that exits or stalls ends the job with an error naming it). Needs MPI (distill::mpi).
if(NOT TARGET distill::mpi)
  message(STATUS "MPI not found: the distributed tests are not built (install libopenmpi-dev openmpi-bin)")
  return()
endif()
find_program(DISTILL_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
if(NOT DISTILL_MPIEXEC)
  message(STATUS "MPI found but no mpirun: the distributed tests are not built (install openmpi-bin)")
  return()
endif()

foreach(prog test_distributed dist_fault)
  add_executable(${prog} ${CMAKE_CURRENT_SOURCE_DIR}/dist/${prog}.cpp)
  target_link_libraries(${prog} PRIVATE ${DISTILL_LIB} distill::mpi distill_build_flags)
endforeach()
target_link_libraries(test_distributed PRIVATE Catch2::Catch2)

# Open MPI as root (CI containers) and without the ptrace-based single-copy transport containers forbid.
set(distill_mpi_env "OMP_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OMPI_MCA_rmaps_base_oversubscribe=1")
add_test(NAME test_distributed_1rank COMMAND test_distributed)
set_tests_properties(test_distributed_1rank PROPERTIES ENVIRONMENT "${distill_mpi_env}")
add_test(NAME test_distributed_2ranks COMMAND ${DISTILL_MPIEXEC} -np 2 $<TARGET_FILE:test_distributed>)
add_test(NAME dist_fault COMMAND bash ${PROJECT_SOURCE_DIR}/tests/dist/fault_check.sh ${DISTILL_MPIEXEC}
                                 $<TARGET_FILE:dist_fault>)
if(DISTILL_BUILD_EXAMPLES)  # the dcrls example binary
  add_test(NAME dcrls_mpi_kill_resume COMMAND bash ${PROJECT_SOURCE_DIR}/tests/dist/kill_resume_check.sh
                                              ${DISTILL_MPIEXEC} $<TARGET_FILE:dcrls> ${CMAKE_CURRENT_BINARY_DIR}/dist/kr)
  set_tests_properties(dcrls_mpi_kill_resume PROPERTIES ENVIRONMENT "${distill_mpi_env}" RUN_SERIAL TRUE TIMEOUT 600)
endif()
if(DISTILL_SANITIZE)
  # Open MPI's components are dlopen'ed and unloaded at MPI_Finalize: their allocations kept past it show as leaks in
  # "<unknown module>", which no suppression can name. AddressSanitizer and UBSan stay on; LeakSanitizer is off for
  # the MPI programs (test_distributed_1rank, which starts no MPI, keeps it).
  string(APPEND distill_mpi_env ";ASAN_OPTIONS=detect_leaks=0")
endif()
set_tests_properties(test_distributed_2ranks dist_fault PROPERTIES ENVIRONMENT "${distill_mpi_env}")
set_tests_properties(test_distributed_2ranks dist_fault PROPERTIES RUN_SERIAL TRUE TIMEOUT 300)
