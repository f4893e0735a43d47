# libFuzzer targets and their seed-corpus replays (docs/reliability.md):
#   ucr         tests/fuzz/fuzz_ucr.cpp         corpus tests/fuzz/corpus             UCR TSV parser
#   npy         tests/fuzz/fuzz_npy.cpp         corpus tests/fuzz/corpus_npy         .npy reader
#   checkpoint  tests/fuzz/fuzz_checkpoint.cpp  corpus tests/fuzz/corpus_checkpoint  checkpoint reader + resume path
# Each harness is linked with a plain main() (replay_main.cpp) as the CTest test fuzz_<name>_replay, in every
# build (the ASan/UBSan build included), no clang needed. The libFuzzer binaries are not part of `all`:
# `cmake --build <dir> --target fuzz_<name>` builds <dir>/tests/fuzz/fuzz_<name> (<dir>/tests/fuzz_<name> when
# clang is the compiler); tests/fuzz/run_fuzz.sh <seconds> <work-dir> <name> does both without CMake.
set(DISTILL_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(DISTILL_FUZZ_FLAGS -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=all)
find_program(DISTILL_CLANGXX NAMES clang++ clang++-14)
file(GLOB_RECURSE distill_fuzz_headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/distill/*.hpp
     ${PROJECT_SOURCE_DIR}/include/distill/*.inl)
foreach(name IN ITEMS ucr npy checkpoint)
  set(src ${DISTILL_FUZZ_DIR}/fuzz_${name}.cpp)
  set(corpus ${DISTILL_FUZZ_DIR}/corpus_${name})
  if(name STREQUAL "ucr")
    set(corpus ${DISTILL_FUZZ_DIR}/corpus)
  endif()
  add_executable(fuzz_${name}_replay ${src} ${DISTILL_FUZZ_DIR}/replay_main.cpp)
  target_link_libraries(fuzz_${name}_replay PRIVATE ${DISTILL_LIB} distill_build_flags)
  add_test(NAME fuzz_${name}_replay COMMAND fuzz_${name}_replay ${corpus})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    add_executable(fuzz_${name} EXCLUDE_FROM_ALL ${src})
    target_link_libraries(fuzz_${name} PRIVATE distill::distill)
    target_compile_options(fuzz_${name} PRIVATE ${DISTILL_FUZZ_FLAGS})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  elseif(DISTILL_CLANGXX)
    add_custom_command(
      OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz/fuzz_${name}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/fuzz
      COMMAND ${DISTILL_CLANGXX} ${DISTILL_FUZZ_FLAGS} -I${PROJECT_SOURCE_DIR}/include -isystem ${EIGEN3_INCLUDE_DIR}
              ${src} -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz/fuzz_${name}
      DEPENDS ${src} ${distill_fuzz_headers}
      COMMENT "Building the libFuzzer target fuzz_${name} with ${DISTILL_CLANGXX}"
      VERBATIM)
    add_custom_target(fuzz_${name} DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/fuzz/fuzz_${name})
  endif()
endforeach()
