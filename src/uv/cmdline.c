/* Command lines for a POSIX shell: each argument single-quoted so the remote
 * shell sees exactly one word ('\'' stands for an embedded quote). Words made
 * only of safe characters are left bare, for readable logs. */
#include <stdlib.h>
#include <string.h>

#include "shoal/command.h"
#include "wire/buf.h"

struct shoal_cmdline {
    shoal_buf b;
};

static int is_safe(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.' || c == '/' || c == ',' || c == ':' || c == '=' || c == '+' || c == '@' || c == '%'))
            return 0;
    }
    return 1;
}

int shoal_shell_quote(const char *arg, char *out, size_t outsz)
{
    size_t n = 0;
#define PUT(ch)                                                                                                        \
    do {                                                                                                               \
        if (n + 1 >= outsz)                                                                                            \
            return SHOAL_ERR_TOO_LARGE;                                                                                \
        out[n++] = (ch);                                                                                               \
    } while (0)
    if (outsz == 0)
        return SHOAL_ERR_TOO_LARGE;
    if (is_safe(arg)) {
        for (const char *p = arg; *p; p++)
            PUT(*p);
    } else {
        PUT('\'');
        for (const char *p = arg; *p; p++) {
            if (*p == '\'') {
                PUT('\'');
                PUT('\\');
                PUT('\'');
                PUT('\'');
            } else {
                PUT(*p);
            }
        }
        PUT('\'');
    }
#undef PUT
    out[n] = 0;
    return SHOAL_OK;
}

int shoal_cmdline_new(shoal_cmdline **out)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return SHOAL_ERR_NOMEM;
    shoal_buf_init(&(*out)->b, 1u << 20);
    return shoal_buf_put_u8(&(*out)->b, 0);
}

static int append(shoal_cmdline *c, const char *text, size_t n)
{
    /* The buffer always ends in a NUL; grow before it. */
    size_t len = shoal_buf_len(&c->b) - 1;
    shoal_buf_truncate(&c->b, len);
    int rc = SHOAL_OK;
    if (len > 0)
        rc = shoal_buf_put_u8(&c->b, ' ');
    if (!rc)
        rc = shoal_buf_put(&c->b, text, n);
    if (rc)
        shoal_buf_truncate(&c->b, len);
    int rc2 = shoal_buf_put_u8(&c->b, 0);
    return rc ? rc : rc2;
}

int shoal_cmdline_arg(shoal_cmdline *c, const char *arg)
{
    size_t need = strlen(arg) * 4 + 3;
    char *q = malloc(need);
    if (!q)
        return SHOAL_ERR_NOMEM;
    int rc = shoal_shell_quote(arg, q, need);
    if (!rc)
        rc = append(c, q, strlen(q));
    free(q);
    return rc;
}

int shoal_cmdline_raw(shoal_cmdline *c, const char *text)
{
    return append(c, text, strlen(text));
}

const char *shoal_cmdline_str(const shoal_cmdline *c)
{
    return (const char *)shoal_buf_ptr(&c->b);
}

void shoal_cmdline_free(shoal_cmdline *c)
{
    if (!c)
        return;
    shoal_buf_free(&c->b);
    free(c);
}
