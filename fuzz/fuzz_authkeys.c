/* Fuzzes the authorized_keys parser: the input is a whole authorized_keys
 * buffer, looked up for a fixed key from a few peers; each of its first
 * lines also goes through the line parser and the option checks (from=,
 * expiry, permitopen), and the first line through the bare option parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/authkeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An ssh-ed25519 blob with a made-up (all-zero) key: seeds containing its
 * base64 "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAA..." reach the option checks. */
static const uint8_t BLOB[] = {0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32,
                               0, 0, 0,  0,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0, 0,
                               0, 0, 0,  0,  0,   0,   0,   0,   0,   0,   0,   0,   0,   0};

static void check_opts(const shoal_authkey_opts *o)
{
    static const char *const ips[] = {"192.0.2.1", "10.1.2.3", "2001:db8::1", "::ffff:10.0.0.1", "not-an-ip"};
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        shoal_authkey_from_allowed(o, ips[i], NULL);
        shoal_authkey_from_allowed(o, ips[i], "Host.Example.COM");
    }
    shoal_authkey_expired(o, 1700000000);
    shoal_authkey_open_allowed(o, "localhost", 80);
    shoal_authkey_open_allowed(o, "2001:db8::1", 22);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static shoal_key *key;
    if (!key && shoal_key_from_blob(BLOB, sizeof(BLOB), &key) != 0)
        return 0;
    if (!data)
        data = (const uint8_t *)"";
    const char *text = (const char *)data;

    static const shoal_authkeys_peer peers[] = {
        {"192.0.2.1", NULL, 1700000000},
        {"10.1.2.3", "host.example.com", 4102444800},
        {"2001:db8::1", NULL, 0},
        {NULL, NULL, 1700000000},
    };
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        shoal_authkey_opts o;
        shoal_authkeys_result r;
        if (shoal_authkeys_find(text, size, key, &peers[i], &o, &r) == 1)
            check_opts(&o);
        shoal_authkey_opts_free(&o);
    }

    /* Line by line (the first 64 lines are plenty for coverage). */
    size_t off = 0;
    for (int n = 0; n < 64 && off < size; n++) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - data) : size;
        shoal_authkey_line l;
        char why[160];
        if (shoal_authkeys_parse_line(text + off, end - off, &l, why, sizeof(why)) == 1) {
            check_opts(&l.opts);
            shoal_key *k = NULL;
            if (shoal_key_from_blob(l.blob, l.blob_len, &k) == 0)
                shoal_key_free(k);
        }
        shoal_authkey_line_free(&l);
        if (n == 0) {
            /* The first line, up to its first blank, as a bare options field. */
            size_t ol = 0;
            while (off + ol < end && text[off + ol] != ' ' && text[off + ol] != '\t')
                ol++;
            shoal_authkey_opts o;
            if (shoal_authkey_opts_parse(text + off, ol, &o, why, sizeof(why)) == 0)
                check_opts(&o);
            shoal_authkey_opts_free(&o);
            /* And as an expiry-time value. */
            char t[32];
            size_t tl = ol < sizeof(t) - 1 ? ol : sizeof(t) - 1;
            memcpy(t, text + off, tl);
            t[tl] = 0;
            int64_t v;
            shoal_authkey_parse_time(t, &v);
        }
        off = end + 1;
    }
    return 0;
}
