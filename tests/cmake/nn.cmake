# nn: compile-fail checks of the static channel checks. Each file in tests/compile_fail/ is compiled twice with
# the test compiler: as is, it must fail with the one-sentence diagnostic (PASS_REGULAR_EXPRESSION; the
# compiler's exit status is then ignored by CTest), and with -DDISTILL_COMPILE_FAIL_CONTROL it must compile
# (so the failure above is the channel check and nothing else).
get_target_property(_distill_nn_eigen_inc Eigen3::Eigen INTERFACE_INCLUDE_DIRECTORIES)
set(_distill_nn_cf_flags -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include)
foreach(_dir IN LISTS _distill_nn_eigen_inc)
  list(APPEND _distill_nn_cf_flags -isystem ${_dir})
endforeach()

if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC prints the message carried by the template argument verbatim.
  set(_distill_nn_seq_re
      "Sequential: layer 2 \\(Conv1d<128, 128, 5>\\) expects 128 input channels but the previous layer produces 64\\.")
  set(_distill_nn_res_re
      "Residual: the main branch \\(Conv1d<4, 8, 3>\\) produces 8 channels but the shortcut \\(Conv1d<4, 6, 1>\\) produces 6")
else()
  # Clang prints the numbers in the template arguments and the static_assert sentence.
  set(_distill_nn_seq_re "channel_check<2, 128, 64,.*Sequential: a layer's input channel count differs")
  set(_distill_nn_res_re "residual_channel_check<8, 6,.*Residual: the main branch and the shortcut produce different")
endif()

foreach(_case sequential_channels residual_channels)
  set(_src ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${_case}.cpp)
  add_test(NAME nn_compile_fail_${_case} COMMAND ${CMAKE_CXX_COMPILER} ${_distill_nn_cf_flags} ${_src})
  add_test(NAME nn_compile_fail_${_case}_control
           COMMAND ${CMAKE_CXX_COMPILER} ${_distill_nn_cf_flags} -DDISTILL_COMPILE_FAIL_CONTROL ${_src})
endforeach()
set_tests_properties(nn_compile_fail_sequential_channels PROPERTIES PASS_REGULAR_EXPRESSION "${_distill_nn_seq_re}")
set_tests_properties(nn_compile_fail_residual_channels PROPERTIES PASS_REGULAR_EXPRESSION "${_distill_nn_res_re}")
