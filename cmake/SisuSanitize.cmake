# -DSISU_SANITIZE=address : ASan + UBSan, no recovery (the first report fails the test).
# -DSISU_SANITIZE=thread  : TSan.
# Flags go on every target in the tree (library, tests, tools) so that instrumentation is whole.
if(SISU_SANITIZE STREQUAL "address")
  set(_sisu_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(SISU_SANITIZE STREQUAL "thread")
  set(_sisu_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT SISU_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SISU_SANITIZE must be empty, 'address' or 'thread', not '${SISU_SANITIZE}'")
endif()
if(_sisu_san)
  add_compile_options(${_sisu_san} -g)
  add_link_options(${_sisu_san})
  message(STATUS "sisu: sanitizer build (${SISU_SANITIZE})")
endif()
