# tests/cmake/snippets.cmake -- documentation checks (scripts/check_snippets.py, which describes the convention):
#   snippets          every C++ snippet compiles: the ```cpp blocks of README.md and docs/**/*.md, and the usage
#                     examples in header comments (each marked `// snippet: <kind>`), with -fsyntax-only
#   docs_stand_alone  nothing in the repository cites documents that are not in it
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "distill: python3 not found, the snippets and docs_stand_alone tests are not registered")
  return()
endif()

# Flags the snippets need besides -I include/: Eigen's include directories and OpenMP (one flag per line).
set(_snippet_flags_file ${CMAKE_CURRENT_BINARY_DIR}/snippet_flags.txt)
file(GENERATE OUTPUT ${_snippet_flags_file} CONTENT
     "-I$<JOIN:$<TARGET_PROPERTY:Eigen3::Eigen,INTERFACE_INCLUDE_DIRECTORIES>,\n-I>\n${OpenMP_CXX_FLAGS}\n")

add_test(NAME snippets
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check_snippets.py --root ${PROJECT_SOURCE_DIR}
                 --compiler ${CMAKE_CXX_COMPILER} --flags-file ${_snippet_flags_file} -j 2)
set_tests_properties(snippets PROPERTIES TIMEOUT 600)

add_test(NAME docs_stand_alone
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check_snippets.py --root ${PROJECT_SOURCE_DIR}
                 --citations)
