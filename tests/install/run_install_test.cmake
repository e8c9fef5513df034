# Installs the built tree into a fresh prefix, then configures, builds and runs the consumer
# project in this folder against it, with only CMAKE_PREFIX_PATH set.
# Inputs: BUILD_DIR, SOURCE_DIR, WORK_DIR, CXX.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(f include/sisu/util/status.h include/sisu/util/hash.h
          include/sisu/alloc/slab_allocator.h bin/sisu)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "install did not lay out ${f}")
  endif()
endforeach()
run("${prefix}/bin/sisu" --version)
if(NOT last_output MATCHES "^sisu [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "sisu --version printed '${last_output}'")
endif()

run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
message(STATUS "consumer said: ${last_output}")
if(NOT last_output MATCHES "consumer ok")
  message(FATAL_ERROR "consumer did not report success")
endif()
