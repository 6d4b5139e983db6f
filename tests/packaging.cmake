# Packaging tests (packaging.*): the shared library's exports, the man
# pages, every subcommand's --version, and an install into a temporary
# prefix with the examples built against it. Included from tests/CMakeLists.txt.
set(SHOAL_PACKAGING_ENV
  "SHOAL_BIN=$<TARGET_FILE:shoal>;SHOAL_SRC=${PROJECT_SOURCE_DIR};SHOAL_BUILD=${PROJECT_BINARY_DIR}")

add_test(NAME packaging.exports
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/exports.sh
          $<TARGET_FILE_DIR:libshoal_shared> ${PROJECT_VERSION} ${SHOAL_SOVERSION})
set_tests_properties(packaging.exports PROPERTIES LABELS packaging TIMEOUT 60 SKIP_RETURN_CODE 77)
