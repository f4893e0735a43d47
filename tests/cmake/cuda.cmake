# tests/cmake/cuda.cmake -- the CUDA backend's tests.
#   test_cuda_emu : every kernel vs a double CPU reference on the SIMT emulator (distill::cuda_emu), plus tests of
#                   the emulator's own semantics. Disabled (reported "Not Run") when DISTILL_CUDA_EMULATION=OFF.
#   test_cuda_gpu : the same kernel comparisons on a real GPU (distill::cuda, DISTILL_CUDA=ON only); exits 77,
#                   reported by CTest as skipped, when no device is present. test_cuda_{ops,train,losses,disco,mcl}_gpu: the
#                   device-path tests against the real backend, likewise.
#   test_nccl_gpu : the NCCL engine (dist/nccl.hpp) on a real GPU, world size 1 (DISTILL_CUDA=ON with NCCL and MPI
#                   found: distill::cuda defines DISTILL_WITH_NCCL); skipped (77) without a device. World size 2:
#                   the mpirun line in tests/gpu/test_nccl_gpu.cpp.
#   test_cuda_ops / test_cuda_train / test_cuda_losses / test_cuda_disco / test_cuda_mcl : the autograd ops, a
#                   whole training step, the fused losses, DisCo steps and MCL steps on the Cuda device (emulated)
#                   against the Cpu device; they use only the host API.
foreach(t test_cuda_emu test_cuda_ops test_cuda_train test_cuda_losses test_cuda_disco test_cuda_mcl)
  if(NOT TARGET ${t})
    continue()
  endif()
  if(TARGET distill_cuda_emu)
    target_link_libraries(${t} PRIVATE distill::cuda_emu)
    set_tests_properties(${t} PROPERTIES TIMEOUT 300)
  else()
    set_target_properties(${t} PROPERTIES EXCLUDE_FROM_ALL ON)
    set_tests_properties(${t} PROPERTIES DISABLED ON)
  endif()
endforeach()
if(TARGET test_cuda_emu AND TARGET distill_cuda_emu)
  # The emulator-semantics tests include kernels/ headers themselves.
  target_compile_definitions(test_cuda_emu PRIVATE DISTILL_SIMT_EMULATION)
  target_include_directories(test_cuda_emu PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
endif()

if(TARGET distill_cuda)
  add_executable(test_cuda_gpu ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_cuda_gpu.cpp)
  target_link_libraries(test_cuda_gpu PRIVATE distill::cuda Catch2::Catch2 distill_build_flags)
  target_include_directories(test_cuda_gpu PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  add_test(NAME test_cuda_gpu COMMAND test_cuda_gpu)
  set_tests_properties(test_cuda_gpu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
  # The device-path tests (ops, training step, fused losses) against the real backend: <name>_gpu, skipped (77)
  # without a device.
  foreach(t test_cuda_ops test_cuda_train test_cuda_losses test_cuda_disco test_cuda_mcl)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cpp)
      add_executable(${t}_gpu ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cpp ${CMAKE_CURRENT_SOURCE_DIR}/gpu/gpu_main.cpp)
      target_link_libraries(${t}_gpu PRIVATE distill::cuda Catch2::Catch2 distill_build_flags)
      target_include_directories(${t}_gpu PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
      target_compile_definitions(${t}_gpu PRIVATE DISTILL_GOLDEN_DIR="${PROJECT_SOURCE_DIR}/tests/golden"
                                                  DISTILL_DATA_DIR="${PROJECT_SOURCE_DIR}/data")
      add_test(NAME ${t}_gpu COMMAND ${t}_gpu)
      set_tests_properties(${t}_gpu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
    endif()
  endforeach()
endif()

# The NCCL engine: only when distill::cuda was built with it (DISTILL_CUDA_NCCL, set by cmake/cuda.cmake).
if(TARGET distill_cuda AND DISTILL_CUDA_NCCL)
  add_executable(test_nccl_gpu ${CMAKE_CURRENT_SOURCE_DIR}/gpu/test_nccl_gpu.cpp)
  target_link_libraries(test_nccl_gpu PRIVATE distill::cuda distill::mpi Catch2::Catch2 distill_build_flags)
  add_test(NAME test_nccl_gpu COMMAND test_nccl_gpu)
  set_tests_properties(test_nccl_gpu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
