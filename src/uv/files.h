/* The driver tier's file reader, for the engines and the public *_file
 * calls (src/uv/files.c): the core parses from memory only. */
#ifndef SHOAL_UV_FILES_H
#define SHOAL_UV_FILES_H

#include <stddef.h>

/* Reads a whole regular file of at most max bytes into a malloc'd,
 * NUL-terminated buffer. Returns 0, SHOAL_ERR_NOT_FOUND (missing file or
 * directory component), SHOAL_ERR_IO (unreadable, or not a regular file:
 * FIFOs and devices are never read, so a hostile path cannot block us),
 * SHOAL_ERR_TOO_LARGE or SHOAL_ERR_NOMEM. *why (if not NULL) receives a
 * static description of a failure. */
int shoal_read_file_capped(const char *path, size_t max, char **data, size_t *len, const char **why);

#endif
