/* Fuzzes KEXINIT handling: the input is a KEXINIT payload (type byte
 * first). It goes through the parser alone, then through a client session
 * as the server's first packet, so negotiation, the strict-kex and ext-info
 * markers, first_kex_packet_follows and the ephemeral key generation for
 * whatever method gets chosen all see it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/session.h"
#include "transport/kexinit.h"
#include "wire/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static int accept_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)info;
    (void)ud;
    return 0;
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    (void)s;
    (void)err;
    (*(unsigned *)ud)++;
    /* The message quotes the server's lists: read it to the end. */
    size_t n = 0;
    while (message && message[n])
        n++;
    sink += n;
}

static void drain(shoal_session *s)
{
    const uint8_t *p;
    size_t n = shoal_session_output(s, &p);
    if (n)
        shoal_session_output_consume(s, n);
}

/* The parser alone: every list it returns must lie inside the input. */
static void parse_only(const uint8_t *data, size_t size)
{
    kexinit_lists kl;
    if (shoal__kexinit_parse(data, size, &kl) != 0)
        return;
    size_t acc = (size_t)kl.first_follows;
    for (int i = 0; i < KEXINIT_NLISTS; i++) {
        if (kl.len[i] && (kl.list[i] < (const char *)data || kl.list[i] + kl.len[i] > (const char *)data + size))
            abort();
        for (size_t j = 0; j < kl.len[i]; j++)
            acc += (uint8_t)kl.list[i][j];
        /* Walk the names as negotiation does. */
        const char *cur = kl.list[i], *end = kl.list[i] + kl.len[i], *nm;
        size_t l;
        while (kl.len[i] && shoal_namelist_next(&cur, end, &nm, &l))
            acc += l;
    }
    sink += acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_only(data, size);
    /* Anything larger cannot be one packet; empty cannot be a payload. */
    if (size == 0 || size > SHOAL_MAX_PACKET - 64)
        return 0;

    static const char version[] = "SSH-2.0-OpenSSH_9.6\r\n";
    size_t pad = 8 - ((5 + size) % 8);
    if (pad < 4)
        pad += 8;
    size_t wire_len = sizeof(version) - 1 + 5 + size + pad;
    uint8_t *wire = malloc(wire_len);
    if (!wire)
        return 0;
    memcpy(wire, version, sizeof(version) - 1);
    uint8_t *pkt = wire + sizeof(version) - 1;
    shoal_store_u32(pkt, (uint32_t)(1 + size + pad));
    pkt[4] = (uint8_t)pad;
    memcpy(pkt + 5, data, size);
    memset(pkt + 5 + size, 0, pad);

    unsigned closed_calls = 0;
    shoal_client_config cfg = {.size = sizeof(shoal_client_config)};
    cfg.user = "fuzz";
    shoal_client_callbacks cb = {.size = sizeof(shoal_client_callbacks)};
    cb.hostkey = accept_hostkey;
    cb.closed = on_closed;
    shoal_session *s = NULL;
    if (shoal_session_new_client(&s, &cfg, &cb, &closed_calls) != 0 || shoal_session_start(s, 0) != 0)
        abort();
    drain(s);
    int rc = shoal_session_recv(s, wire, wire_len, 1);
    drain(s);
    if (rc != 0 && (!shoal_session_is_closed(s) || shoal_session_error(s, NULL) != rc))
        abort();
    if (rc == 0) {
        /* Accepted: the kex has moved on, and a second KEXINIT is refused. */
        rc = shoal_session_recv(s, pkt, wire_len - (sizeof(version) - 1), 2);
        drain(s);
        if (rc == 0 && data[0] == 20)
            abort();
    }
    shoal_session_recv_eof(s, 3);
    if (closed_calls != 1)
        abort();
    shoal_session_free(s);
    free(wire);
    return 0;
}
