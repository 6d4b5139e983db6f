/* Fuzzes a whole client session from the network side: the input (after
 * its first byte) is what a server sends, fed in chunks whose size the
 * first byte chooses, so the version exchange, packet reassembly, the
 * message table and the key exchange see every way TCP can cut a stream.
 * Beyond crashes it checks the session's contract: a failed recv leaves the
 * session closed with that error, and the closed callback fires once. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "shoal/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    unsigned closed_calls;
    int closed_err;
    size_t log_bytes;
} fuzz_state;

/* Accepts any key: a fuzzer cannot sign for a host key anyway, and if it
 * ever could, what follows the key exchange is worth reaching. */
static int accept_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)info;
    (void)ud;
    return 0;
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    fuzz_state *st = ud;
    (void)s;
    st->closed_calls++;
    st->closed_err = err;
    /* The message is built from server bytes: read it all. */
    for (const char *p = message; p && *p; p++)
        st->log_bytes++;
}

/* Logging is on at the highest level so that formatting server-supplied
 * text (DEBUG messages, version strings, disconnect reasons) is exercised. */
static void on_log(shoal_session *s, int level, const char *message, void *ud)
{
    fuzz_state *st = ud;
    (void)s;
    (void)level;
    for (const char *p = message; *p; p++)
        st->log_bytes++;
}

static void drain(shoal_session *s)
{
    const uint8_t *p;
    size_t n = shoal_session_output(s, &p);
    if (n)
        shoal_session_output_consume(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* 0 feeds everything at once; otherwise chunks of 1..255 bytes. */
    size_t chunk = data[0] ? data[0] : size;
    data++;
    size--;

    fuzz_state st = {0, 0, 0};
    shoal_client_config cfg = {.size = sizeof(shoal_client_config)};
    cfg.user = "fuzz";
    shoal_client_callbacks cb = {.size = sizeof(shoal_client_callbacks)};
    cb.hostkey = accept_hostkey;
    cb.closed = on_closed;
    cb.log = on_log;
    shoal_session *s = NULL;
    if (shoal_session_new_client(&s, &cfg, &cb, &st) != 0)
        abort();
    shoal_session_set_log_level(s, 3);
    if (shoal_session_start(s, 0) != 0)
        abort();
    drain(s);

    uint64_t now = 1;
    for (size_t off = 0; off < size && !shoal_session_is_closed(s); off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        int rc = shoal_session_recv(s, data + off, n, now);
        drain(s);
        if (rc != 0) {
            /* An error return means the session closed with that error. */
            if (!shoal_session_is_closed(s) || shoal_session_error(s, NULL) != rc || st.closed_calls != 1 ||
                st.closed_err != rc)
                abort();
        }
        now += 10;
    }
    shoal_session_recv_eof(s, now);
    drain(s);
    if (!shoal_session_is_closed(s) || st.closed_calls != 1)
        abort();
    shoal_session_free(s);
    return 0;
}
