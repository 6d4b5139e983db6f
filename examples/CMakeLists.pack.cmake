# The packaging examples, built in-tree against libshoal.so (shoal::shoal)
# with the project's warnings, so an API change that breaks them fails the
# build. Included from the top CMakeLists.txt. tests/install/
# install_and_examples.sh builds and runs them against an installed prefix.
foreach(name run_one multiplex tiny_server poll_session)
  add_executable(example_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
  target_link_libraries(example_${name} PRIVATE shoal::shoal)
endforeach()
