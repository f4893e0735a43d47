# Data pipeline and evaluation suite: extra libraries for test_data / test_eval.

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

# The fuzz targets (UCR parser, .npy reader, checkpoint reader) and their corpus replays: tests/cmake/fuzz.cmake.
