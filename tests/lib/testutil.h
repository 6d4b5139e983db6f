/* Shared helpers for the cmocka unit tests. */
#ifndef SHOAL_TESTUTIL_H
#define SHOAL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A fresh temporary directory (removed by tu_rmtree). Returns a static-ish
 * malloc'd path; never NULL (fails the test instead). */
char *tu_mkdtemp(void);
void tu_rmtree(const char *path);
/* Runs a shell command (sh -c), returns its exit status; fails the test on spawn error. */
int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* 1 when an executable is on PATH. */
int tu_have(const char *prog);

#endif
