# cmake/cuda.cmake -- distill's CUDA backend: the nvcc build (distill::cuda), the SIMT emulation build
# (distill::cuda_emu), the CUDA benchmark, installation of the kernel sources, and DISTILL_CUDA_SUMMARY.
#
#   -DDISTILL_CUDA=ON                  compile kernels/distill_cuda.cu with nvcc (fails loudly if unusable)
#   -DDISTILL_CUDA_ARCHITECTURES=...   "75;80;90" by default; "native" for the GPU of the build machine
#   -DDISTILL_CUDA_EMULATION=ON        the same TU on the host compiler + SIMT emulator (default: with tests)
#   -DDISTILL_NCCL=OFF                 leave NCCL out of distill::cuda even when found (default: use it when found)
option(DISTILL_CUDA "Build the CUDA backend with nvcc (target distill::cuda)" OFF)
option(DISTILL_CUDA_EMULATION "Build the CUDA backend on the SIMT emulator (target distill::cuda_emu) for tests"
       ${DISTILL_BUILD_TESTS})
option(DISTILL_NCCL "DISTILL_CUDA=ON: add the NCCL engine (dist/nccl.hpp) to distill::cuda when NCCL and MPI are found"
       ON)
set(DISTILL_CUDA_ARCHITECTURES "75;80;90" CACHE STRING
    "CUDA architectures for DISTILL_CUDA=ON: a list such as 75;80;90 (sm_75 and newer), or native")

include(${CMAKE_CURRENT_LIST_DIR}/distillCuda.cmake)
set(DISTILL_CUDA_KERNELS_DIR ${PROJECT_SOURCE_DIR}/kernels)

set(_distill_cuda_parts "")
set(DISTILL_CUDA_NCCL OFF)  # ON when distill::cuda has the NCCL engine (below)

if(DISTILL_CUDA)
  # Prefer the toolkit's usual location when nvcc is not on PATH and nothing was specified.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "DISTILL_CUDA=ON but no usable CUDA compiler was found. Install the CUDA toolkit and pass "
                        "-DCMAKE_CUDA_COMPILER=/path/to/nvcc, or configure with -DDISTILL_CUDA=OFF.")
  endif()
  foreach(arch IN LISTS DISTILL_CUDA_ARCHITECTURES)
    if(NOT arch MATCHES "^(native|all|all-major|[0-9]+[a-z]?(-real|-virtual)?)$")
      message(FATAL_ERROR "DISTILL_CUDA_ARCHITECTURES: '${arch}' is not an architecture (use e.g. 75;80;90 or native)")
    endif()
    if(arch MATCHES "^([0-9]+)" AND CMAKE_MATCH_1 LESS 75)
      message(FATAL_ERROR "DISTILL_CUDA_ARCHITECTURES: sm_${CMAKE_MATCH_1} is older than sm_75, which distill needs "
                          "(and CUDA 13 no longer supports)")
    endif()
  endforeach()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "${DISTILL_CUDA_ARCHITECTURES}")
  endif()
  enable_language(CUDA)
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_LESS 12.0)
    message(FATAL_ERROR "DISTILL_CUDA=ON needs nvcc 12 or newer for C++20 (found ${CMAKE_CUDA_COMPILER_VERSION})")
  endif()
  find_package(CUDAToolkit)
  if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cublas OR NOT TARGET CUDA::cudart)
    message(FATAL_ERROR "DISTILL_CUDA=ON but the CUDA toolkit's cudart/cuBLAS were not found next to "
                        "${CMAKE_CUDA_COMPILER}")
  endif()

  distill_add_cuda_library(distill_cuda ARCHITECTURES ${DISTILL_CUDA_ARCHITECTURES})
  add_library(distill::cuda ALIAS distill_cuda)
  if(DISTILL_TOP_LEVEL AND DISTILL_WERROR)
    target_compile_options(distill_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings>)
  endif()

  if(DISTILL_BUILD_BENCHMARKS AND EXISTS ${PROJECT_SOURCE_DIR}/benchmarks/bench_cuda_conv1d.cu)
    add_executable(bench_cuda_conv1d ${PROJECT_SOURCE_DIR}/benchmarks/bench_cuda_conv1d.cu)
    distill_cuda_std20(bench_cuda_conv1d)
    set_target_properties(bench_cuda_conv1d PROPERTIES CUDA_ARCHITECTURES "${DISTILL_CUDA_ARCHITECTURES}")
    target_include_directories(bench_cuda_conv1d PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
    target_link_libraries(bench_cuda_conv1d PRIVATE distill::distill CUDA::cudart CUDA::cublas)
  endif()
  string(REPLACE ";" "," _distill_archs "${DISTILL_CUDA_ARCHITECTURES}")
  list(APPEND _distill_cuda_parts "nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${_distill_archs} (distill::cuda)")

  # NCCL: the device-memory engine of data-parallel ranks (dist/nccl.hpp, defined in kernels/nccl_communicator.cu),
  # compiled into distill::cuda, which then links libnccl and defines DISTILL_WITH_NCCL for its users. Its ranks are
  # started by MPI (the bootstrap that hands out NCCL's unique id), so it needs distill::mpi (top-level CMakeLists).
  # Never in the emulation build. Without NCCL everything else builds as before.
  if(DISTILL_NCCL)
    find_path(DISTILL_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/include
              /usr/local/cuda/include /usr/local/include)
    find_library(DISTILL_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64
                 /usr/local/cuda/lib64 /usr/local/lib /usr/local/lib64)
    if(DISTILL_NCCL_INCLUDE_DIR AND DISTILL_NCCL_LIBRARY AND TARGET distill::mpi)
      target_sources(distill_cuda PRIVATE ${DISTILL_CUDA_KERNELS_DIR}/nccl_communicator.cu)
      target_include_directories(distill_cuda PRIVATE ${DISTILL_NCCL_INCLUDE_DIR})
      target_link_libraries(distill_cuda PUBLIC ${DISTILL_NCCL_LIBRARY})
      target_compile_definitions(distill_cuda PUBLIC DISTILL_WITH_NCCL)
      set(DISTILL_CUDA_NCCL ON)
      list(APPEND _distill_cuda_parts "NCCL found (${DISTILL_NCCL_LIBRARY}), dist/nccl.hpp in distill::cuda")
    elseif(DISTILL_NCCL_INCLUDE_DIR AND DISTILL_NCCL_LIBRARY)
      list(APPEND _distill_cuda_parts "NCCL found (${DISTILL_NCCL_LIBRARY}) but not used: MPI not found")
    else()
      list(APPEND _distill_cuda_parts "NCCL not found (no dist/nccl.hpp engine)")
    endif()
  else()
    list(APPEND _distill_cuda_parts "NCCL off (DISTILL_NCCL=OFF)")
  endif()
else()
  list(APPEND _distill_cuda_parts "nvcc build off (DISTILL_CUDA=OFF)")
endif()

if(DISTILL_CUDA_EMULATION)
  distill_add_cuda_library(distill_cuda_emu EMULATION)
  add_library(distill::cuda_emu ALIAS distill_cuda_emu)
  if(DISTILL_TOP_LEVEL)
    target_link_libraries(distill_cuda_emu PRIVATE distill_build_flags)
  endif()
  list(APPEND _distill_cuda_parts "SIMT emulation on (distill::cuda_emu)")
else()
  list(APPEND _distill_cuda_parts "SIMT emulation off")
endif()
list(JOIN _distill_cuda_parts "; " DISTILL_CUDA_SUMMARY)

# Header-only consumers compile the kernel TU themselves: install its sources and the helper function.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/kernels/ DESTINATION ${CMAKE_INSTALL_DATADIR}/distill/kernels)
file(RELATIVE_PATH _distill_kernels_rel "/prefix/${CMAKE_INSTALL_LIBDIR}/cmake/distill"
     "/prefix/${CMAKE_INSTALL_DATADIR}/distill/kernels")
file(READ ${CMAKE_CURRENT_LIST_DIR}/distillCuda.cmake _distill_cuda_helper)
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/distillCuda.install.cmake CONTENT
     "# Installed by distill: the kernel sources live in share/distill/kernels.\nif(NOT DISTILL_CUDA_KERNELS_DIR)\n  get_filename_component(DISTILL_CUDA_KERNELS_DIR \"\${CMAKE_CURRENT_LIST_DIR}/${_distill_kernels_rel}\" ABSOLUTE)\nendif()\n${_distill_cuda_helper}"
     @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/distillCuda.install.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/distill
        RENAME distillCuda.cmake)
