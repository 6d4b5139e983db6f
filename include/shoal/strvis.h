/* shoal: text from a peer made safe for a log line or a terminal.
 *
 * Every byte a peer chose (user names, commands, environment names and
 * values, subsystem names, version strings, disconnect and banner texts,
 * key comments, upstream messages...) may contain newlines, carriage
 * returns or terminal escapes: written raw, a client could add whole fake
 * lines to the server's log ("Accepted publickey for root") or move the
 * cursor on an operator's terminal. Like OpenSSH, which passes every log
 * line through strnvis(3), shoal escapes at the sink, once per line:
 * shoal serve's log, and the client programs' stderr.
 *
 * The encoding (one, everywhere): printable ASCII 0x20..0x7e is copied,
 * except the backslash; every other byte (control bytes, DEL, bytes
 * 0x80..0xff) and the backslash itself become a backslash and three octal
 * digits: "\n" -> \012, "\r" -> \015, ESC -> \033, '\' -> \134, 0xc3 ->
 * \303. The output is unambiguous (a literal "\012" typed by a peer comes
 * out as \134012) and never contains a line break. */
#ifndef SHOAL_STRVIS_H
#define SHOAL_STRVIS_H

#include <stddef.h>

#include "shoal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Multi-line text shown to a person on a terminal (a server's banner,
 * keyboard-interactive instructions): '\n', '\t' and the backslash are kept
 * as they are (a banner's ASCII art stays intact) and a '\r' right before a
 * '\n' is dropped; every other control byte, DEL and non-ASCII byte is
 * escaped as usual. Never for log lines: those must stay one line. */
#define SHOAL_VIS_TEXT 1u

/* A byte becomes at most this many bytes. */
#define SHOAL_VIS_MAX_EXPANSION 4u

/* Escapes len bytes of src into dst (dstsz bytes, always NUL-terminated when
 * dstsz > 0). An escape is never cut: when dst is too small the output ends
 * before the first byte that does not fit. dstsz = 4 * len + 1 always fits.
 * Returns the length written (without the NUL). */
SHOAL_EXTERN size_t shoal_strvis(char *dst, size_t dstsz, const void *src, size_t len, unsigned flags);

/* The same for a NUL-terminated string (NULL reads as ""); returns dst, for
 * use as a printf argument. */
SHOAL_EXTERN const char *shoal_vis(char *dst, size_t dstsz, const char *s);

#ifdef __cplusplus
}
#endif
#endif
