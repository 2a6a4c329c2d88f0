# ctest driver: configure, build and run the consumer project through find_package(ouro) or through
# add_subdirectory (MODE).
set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
# MODE installed: install ouro from BUILD_DIR into a scratch prefix and find it with find_package;
# MODE subdirectory: pull the source tree in with add_subdirectory. (Two tests, so they run side by side.)
if(MODE STREQUAL "installed")
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/installed -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/installed)
  run(${WORK_DIR}/installed/consumer)
elseif(MODE STREQUAL "subdirectory")
  # Unoptimised, so that the program keeps every function its compiler instantiated: a program that
  # uses none of ouro's matrix decompositions or metrics must compile none of them. A non-template
  # inline function that calls one makes every file including its header pay for it (BDCSVD ~15 s,
  # SelfAdjointEigenSolver ~4 s; benchmarks/header-compile-times), and shows up here by name.
  # Without CUDA: enabling the language (nvcc's identification and ABI checks) was half of this
  # test's 30 s, and the CUDA configuration is the main build's, which the suite itself comes from.
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/subdir -DOURO_SOURCE=${SOURCE_DIR} -DCMAKE_BUILD_TYPE=Debug
      -DOURO_ENABLE_CUDA=OFF)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/subdir)
  run(${WORK_DIR}/subdir/consumer)
  find_program(nm_tool NAMES nm)
  if(nm_tool)
    execute_process(COMMAND ${nm_tool} -C ${WORK_DIR}/subdir/consumer OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "nm failed on ${WORK_DIR}/subdir/consumer")
    endif()
    string(REGEX MATCHALL "[^\n]*(BDCSVD|SelfAdjointEigenSolver|tridiagonal|bidiagonal|general_matrix_matrix_product)[^\n]*"
           compiled "${symbols}")
    list(LENGTH compiled n)
    if(n GREATER 0)
      list(GET compiled 0 first)
      message(FATAL_ERROR "the consumer, which uses no decomposition, compiled ${n} Eigen decomposition or product "
                          "functions (a non-template inline function instantiates them in every file); the first: ${first}")
    endif()
    message(STATUS "no Eigen decomposition or product compiled into a program that uses none")
  endif()
else()
  message(FATAL_ERROR "check.cmake: MODE must be installed or subdirectory, found '${MODE}'")
endif()
