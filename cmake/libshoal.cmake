# libshoal as one library: libshoal.so.N (SONAME libshoal.so.<major>, or
# .0 through the 0.x series) and libshoal.a, both made of the four library
# tiers' objects (shoal_core, shoal_uv, shoal_fleet, shoal_serve). The
# per-tier static targets stay what the shoal program, the tests, the fuzz
# targets and the benchmarks link; the objects are compiled once (the tiers
# are position-independent) and reused here.
#
# The shared library exports the public API only (src/libshoal.map: shoal_*
# but not the internal shoal__*); the visibility preset "hidden" with
# SHOAL_EXTERN on the public declarations does the same at compile time.

include(GNUInstallDirs)

# include/shoal/version.h: the version macros, from project(VERSION).
configure_file(${PROJECT_SOURCE_DIR}/include/shoal/version.h.in
               ${PROJECT_BINARY_DIR}/include/shoal/version.h @ONLY)
target_include_directories(shoal_core PUBLIC ${PROJECT_BINARY_DIR}/include)

set(SHOAL_LIB_TIERS shoal_core shoal_uv shoal_fleet shoal_serve)
set(SHOAL_LIB_OBJECTS)
foreach(tier ${SHOAL_LIB_TIERS})
  list(APPEND SHOAL_LIB_OBJECTS $<TARGET_OBJECTS:${tier}>)
endforeach()
# crypt(3): the server engine's PasswordFile backend (src/serve/serve_auth.c).
set(SHOAL_LIB_DEPS OpenSSL::Crypto PkgConfig::LIBUV Threads::Threads crypt)
set(SHOAL_INCLUDE_DIRS
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

# The 0.x series promises no stable ABI between minor versions, but one
# SONAME keeps it simple until 1.0: libshoal.so.0.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(SHOAL_SOVERSION 0)
else()
  set(SHOAL_SOVERSION ${PROJECT_VERSION_MAJOR})
endif()

add_library(libshoal_shared SHARED ${SHOAL_LIB_OBJECTS})
set_target_properties(libshoal_shared PROPERTIES
  OUTPUT_NAME shoal
  VERSION ${PROJECT_VERSION}
  SOVERSION ${SHOAL_SOVERSION}
  EXPORT_NAME shoal
  LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/src/libshoal.map)
target_link_options(libshoal_shared PRIVATE
  "LINKER:--version-script=${PROJECT_SOURCE_DIR}/src/libshoal.map")
if(NOT SHOAL_SANITIZE AND NOT SHOAL_FUZZ)
  # Every symbol the library needs comes from a library it names (the
  # sanitizer runtimes are the executable's, so not in those builds).
  target_link_options(libshoal_shared PRIVATE "LINKER:--no-undefined")
endif()
target_include_directories(libshoal_shared INTERFACE ${SHOAL_INCLUDE_DIRS})
# libuv is public: include/shoal/uv.h and the others hand out uv types, so
# a program that uses them calls libuv itself.
target_link_libraries(libshoal_shared PUBLIC PkgConfig::LIBUV PRIVATE OpenSSL::Crypto Threads::Threads crypt)

add_library(libshoal_static STATIC ${SHOAL_LIB_OBJECTS})
set_target_properties(libshoal_static PROPERTIES
  OUTPUT_NAME shoal
  EXPORT_NAME shoal_static
  ARCHIVE_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib)
target_include_directories(libshoal_static INTERFACE ${SHOAL_INCLUDE_DIRS})
target_link_libraries(libshoal_static PUBLIC ${SHOAL_LIB_DEPS})

add_library(shoal::shoal ALIAS libshoal_shared)
add_library(shoal::shoal_static ALIAS libshoal_static)
