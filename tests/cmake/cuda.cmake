# tests/cmake/cuda.cmake -- the CUDA backend's tests.
#   test_cuda_emu : every kernel vs a double CPU reference on the SIMT emulator (distill::cuda_emu), plus tests of
#                   the emulator's own semantics. Disabled (reported "Not Run") when DISTILL_CUDA_EMULATION=OFF.
#   test_cuda_gpu : the same kernel comparisons on a real GPU (distill::cuda, DISTILL_CUDA=ON only); exits 77,
#                   reported by CTest as skipped, when no device is present.
if(TARGET test_cuda_emu)
  if(TARGET distill_cuda_emu)
    target_link_libraries(test_cuda_emu PRIVATE distill::cuda_emu)
    # The emulator-semantics tests include kernels/ headers themselves.
    target_compile_definitions(test_cuda_emu PRIVATE DISTILL_SIMT_EMULATION)
    target_include_directories(test_cuda_emu PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
    set_tests_properties(test_cuda_emu PROPERTIES TIMEOUT 300)
  else()
    set_target_properties(test_cuda_emu PROPERTIES EXCLUDE_FROM_ALL ON)
    set_tests_properties(test_cuda_emu PROPERTIES DISABLED ON)
  endif()
endif()

if(TARGET distill_cuda)
  add_executable(test_cuda_gpu ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_cuda_gpu.cpp)
  target_link_libraries(test_cuda_gpu PRIVATE distill::cuda Catch2::Catch2 distill_build_flags)
  target_include_directories(test_cuda_gpu PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  add_test(NAME test_cuda_gpu COMMAND test_cuda_gpu)
  set_tests_properties(test_cuda_gpu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
