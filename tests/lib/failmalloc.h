/* Allocation-failure injection for tests, in the style of nghttp2's
 * failmalloc: count the allocations a piece of code makes, then run it
 * again failing the Nth, for every N.
 *
 * Only a test executable linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,
 *   --wrap=strdup,--wrap=strndup
 * uses it (tests/CMakeLists.txt does this for test_alloc_failure): the
 * linker sends every call to those functions made by the objects linked
 * into the executable (shoal_core, shoal_uv, the test itself) to the
 * wrappers in failmalloc.c. Shared libraries keep their own calls;
 * libcrypto's are routed here with CRYPTO_set_mem_functions. Under ASan
 * the wrappers call the real (intercepted) functions, so ASan and LSan see
 * every block as usual.
 *
 * The wrappers also keep the set of blocks they handed out and that are
 * not freed yet (failmalloc_live), so a test can check that a run that
 * failed an allocation gave everything back. Single-threaded use only. */
#ifndef SHOAL_TEST_FAILMALLOC_H
#define SHOAL_TEST_FAILMALLOC_H

#include <stddef.h>

/* Routes libcrypto's allocations through the wrappers. Must run before
 * libcrypto allocates anything (first thing in main); returns 0 if it is
 * too late. */
int failmalloc_install(void);
/* Starts counting allocations from 0; the fail_at-th one (1-based) returns
 * NULL, 0 = none fails. Only one allocation fails per run. */
void failmalloc_arm(unsigned long fail_at);
/* Stops counting and failing; returns the number of allocations counted. */
unsigned long failmalloc_disarm(void);
/* Allocations counted since failmalloc_arm. */
unsigned long failmalloc_count(void);
/* 1 when the armed run has failed its allocation. */
int failmalloc_failed(void);
/* Blocks handed out by the wrappers and not freed (counted or not). */
size_t failmalloc_live(void);
/* Of those, the ones made by the last armed run: their numbers in it
 * (up to max of them in idx) and how many there are. With
 * FAILMALLOC_BACKTRACE_AT=N in the environment, allocation N of a run
 * armed to fail one prints where it is made; FAILMALLOC_BACKTRACE=1 does
 * so for the one that fails. */
size_t failmalloc_live_from_run(unsigned long *idx, size_t max);

#endif
