# Packaging tests (packaging.*): the shared library's exports, the man
# pages, every subcommand's --version, and an install into a temporary
# prefix with the examples built against it. Included from tests/CMakeLists.txt.
set(SHOAL_PACKAGING_ENV
  "SHOAL_BIN=$<TARGET_FILE:shoal>;SHOAL_SRC=${PROJECT_SOURCE_DIR};SHOAL_BUILD=${PROJECT_BINARY_DIR}")

add_test(NAME packaging.exports
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/exports.sh
          $<TARGET_FILE_DIR:libshoal_shared> ${PROJECT_VERSION} ${SHOAL_SOVERSION})
set_tests_properties(packaging.exports PROPERTIES LABELS packaging TIMEOUT 60 SKIP_RETURN_CODE 77)

# Every subcommand's --version = shoal_version() of the shared library.
add_executable(packaging_print_version packaging/print_version.c)
target_link_libraries(packaging_print_version PRIVATE shoal::shoal)
add_test(NAME packaging.version
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/version.sh
          $<TARGET_FILE:packaging_print_version> ${PROJECT_VERSION})
set_tests_properties(packaging.version PROPERTIES LABELS packaging TIMEOUT 60
  ENVIRONMENT "${SHOAL_PACKAGING_ENV}")

add_test(NAME packaging.man COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/man.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(packaging.man PROPERTIES LABELS packaging TIMEOUT 60 SKIP_RETURN_CODE 77
  ENVIRONMENT "${SHOAL_PACKAGING_ENV}")

# Install into a temporary prefix, build examples/*.c against it (pkg-config
# and find_package) and run them against sshd, shoal serve and tiny_server.
# Not in sanitizer or fuzzing builds: the examples are built without the
# sanitizer runtime that such a libshoal.so would need.
if(NOT SHOAL_SANITIZE AND NOT SHOAL_FUZZ)
  add_test(NAME packaging.install COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/install_and_examples.sh)
  set_tests_properties(packaging.install PROPERTIES LABELS packaging TIMEOUT 600 SKIP_RETURN_CODE 77
    ENVIRONMENT "${SHOAL_PACKAGING_ENV}")
endif()
