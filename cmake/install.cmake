# Install rules: `cmake --install BUILD [--prefix P]` (and `make install
# PREFIX=P DESTDIR=D`, which runs it). Installs
#   bin/shoal
#   lib/libshoal.so.X.Y.Z, libshoal.so.N, libshoal.so, libshoal.a
#   include/shoal/*.h (with the generated version.h)
#   lib/pkgconfig/libshoal.pc                        (prefix: the install's)
#   lib/cmake/shoal/shoalConfig.cmake + shoalConfigVersion.cmake + targets
#     (imported targets shoal::shoal, shared, and shoal::shoal_static)
#   share/man/man{1,5,8}/ from docs/man/
#   share/bash-completion/completions/shoal
#   share/doc/shoal/ README.md, CHANGELOG.md, LICENSE, docs/*.md
include(CMakePackageConfigHelpers)

set(SHOAL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shoal)
set(SHOAL_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(TARGETS shoal RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS libshoal_shared libshoal_static EXPORT shoalTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

file(GLOB SHOAL_PUBLIC_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/shoal/*.h)
install(FILES ${SHOAL_PUBLIC_HEADERS} ${PROJECT_BINARY_DIR}/include/shoal/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shoal)

# pkg-config: written at install time, so that its prefix is the one
# `cmake --install --prefix P` installs to (the configured one otherwise);
# DESTDIR is not part of it, as staging for a package wants.
install(CODE "
  set(SHOAL_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/libshoal.pc.in\" \"${PROJECT_BINARY_DIR}/pkgconfig/libshoal.pc\" @ONLY)
")
install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/libshoal.pc DESTINATION ${SHOAL_PKGCONFIG_DIR})

# CMake package: find_package(shoal) then target_link_libraries(app shoal::shoal).
install(EXPORT shoalTargets NAMESPACE shoal:: DESTINATION ${SHOAL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/shoalConfig.cmake.in
  ${PROJECT_BINARY_DIR}/shoalConfig.cmake INSTALL_DESTINATION ${SHOAL_CMAKE_DIR})
# 0.x: a minor version may change the API, so only X.Y.* is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/shoalConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/shoalConfig.cmake ${PROJECT_BINARY_DIR}/shoalConfigVersion.cmake
  DESTINATION ${SHOAL_CMAKE_DIR})

# Man pages: docs/man/NAME.SECTION.
foreach(section 1 5 8)
  file(GLOB pages CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.${section})
  if(pages)
    install(FILES ${pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endif()
endforeach()

install(FILES ${PROJECT_SOURCE_DIR}/scripts/completions/shoal.bash
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME shoal)

foreach(doc README.md CHANGELOG.md LICENSE)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${doc})
    install(FILES ${PROJECT_SOURCE_DIR}/${doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()
file(GLOB SHOAL_DOCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${SHOAL_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR})
