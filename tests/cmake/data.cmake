# Data pipeline and evaluation suite: extra libraries for test_data / test_eval, the fuzz-corpus replay test,
# and the libFuzzer target for the UCR parser.

# distill/io/progress.hpp is the one header that uses fmt.
find_package(fmt REQUIRED)
foreach(t IN ITEMS test_data test_eval)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE fmt::fmt)
  endif()
endforeach()
if(TARGET distill_header_selfcontained)
  target_link_libraries(distill_header_selfcontained PRIVATE fmt::fmt)
endif()

# The fuzz harness with a plain main() that runs the seed corpus: a CTest test in every build (the ASan/UBSan
# build included), no clang needed.
set(DISTILL_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
add_executable(fuzz_ucr_replay ${DISTILL_FUZZ_DIR}/fuzz_ucr.cpp ${DISTILL_FUZZ_DIR}/replay_main.cpp)
target_link_libraries(fuzz_ucr_replay PRIVATE distill::distill distill_build_flags)
add_test(NAME fuzz_ucr_replay COMMAND fuzz_ucr_replay ${DISTILL_FUZZ_DIR}/corpus)

# The libFuzzer binary (not part of `all`): `cmake --build <dir> --target fuzz_ucr` builds <dir>/tests/fuzz/fuzz_ucr
# (<dir>/tests/fuzz_ucr when clang is the compiler); run it as `fuzz_ucr -max_total_time=60 <copy of the corpus>`.
# tests/fuzz/run_fuzz.sh [seconds] does both without CMake.
set(DISTILL_FUZZ_FLAGS -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=all)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_ucr EXCLUDE_FROM_ALL ${DISTILL_FUZZ_DIR}/fuzz_ucr.cpp)
  target_include_directories(fuzz_ucr PRIVATE ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(fuzz_ucr PRIVATE ${DISTILL_FUZZ_FLAGS})
  target_link_options(fuzz_ucr PRIVATE -fsanitize=fuzzer,address,undefined)
else()
  find_program(DISTILL_CLANGXX NAMES clang++ clang++-14)
  if(DISTILL_CLANGXX)
    add_custom_command(
      OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz/fuzz_ucr
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/fuzz
      COMMAND ${DISTILL_CLANGXX} ${DISTILL_FUZZ_FLAGS} -I${PROJECT_SOURCE_DIR}/include
              ${DISTILL_FUZZ_DIR}/fuzz_ucr.cpp -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz/fuzz_ucr
      DEPENDS ${DISTILL_FUZZ_DIR}/fuzz_ucr.cpp ${PROJECT_SOURCE_DIR}/include/distill/data/ucr.hpp
              ${PROJECT_SOURCE_DIR}/include/distill/data/dataset.hpp
      COMMENT "Building the libFuzzer target fuzz_ucr with ${DISTILL_CLANGXX}"
      VERBATIM)
    add_custom_target(fuzz_ucr DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz/fuzz_ucr)
  endif()
endif()
