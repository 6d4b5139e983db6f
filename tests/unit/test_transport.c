/* Transport security regressions of the client session, entirely in memory:
 * a session is fed hand-built server bytes and must refuse what a hostile
 * or broken server (or a man in the middle) can send before the first key
 * exchange completes. Covers the Terrapin countermeasure (strict kex), the
 * per-state message table, packet length and padding checks made before any
 * allocation, the version exchange bounds, algorithm negotiation failures,
 * malformed KEXINIT payloads and first_kex_packet_follows. Every case also
 * checks that the closed callback fires exactly once. */
#include "testutil.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/session.h"
#include "wire/buf.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifdef TEST_UNDER_ASAN
#include <sanitizer/allocator_interface.h>
#endif

#define SERVER_VERSION "SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"
#define STRICT_S "kex-strict-s-v00@openssh.com"

/* ---- harness ---- */

typedef struct harness {
    shoal_session *s;
    int closed_calls;
    int closed_err;
    int hostkey_calls;
    shoal_buf out; /* everything the client sent, in order */
} harness;

static int accept_hostkey(shoal_session *s, const shoal_hostkey_info *info, void *ud)
{
    (void)s;
    (void)info;
    ((harness *)ud)->hostkey_calls++;
    return 0;
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    (void)s;
    (void)message;
    harness *h = ud;
    h->closed_calls++;
    h->closed_err = err;
}

/* The output is collected, not discarded, so tests can look at which
 * packets the client produced in reaction to the server's. */
static void drain(harness *h)
{
    const uint8_t *p;
    size_t n = shoal_session_output(h->s, &p);
    if (n) {
        assert_int_equal(shoal_buf_put(&h->out, p, n), 0);
        shoal_session_output_consume(h->s, n);
    }
}

static void h_new(harness *h)
{
    memset(h, 0, sizeof(*h));
    shoal_buf_init(&h->out, 1u << 20);
    shoal_client_config cfg = {.size = sizeof(shoal_client_config)};
    cfg.user = "tester";
    shoal_client_callbacks cb = {.size = sizeof(shoal_client_callbacks)};
    cb.hostkey = accept_hostkey;
    cb.closed = on_closed;
    assert_int_equal(shoal_session_new_client(&h->s, &cfg, &cb, h), 0);
    assert_non_null(h->s);
    assert_int_equal(shoal_session_start(h->s, 0), 0);
    drain(h);
}

static int h_feed(harness *h, const void *p, size_t n)
{
    int rc = shoal_session_recv(h->s, p, n, 0);
    drain(h);
    return rc;
}

static void h_feed_version(harness *h)
{
    assert_int_equal(h_feed(h, SERVER_VERSION, strlen(SERVER_VERSION)), 0);
    assert_string_equal(shoal_session_peer_version(h->s), "SSH-2.0-OpenSSH_9.6p1 Debian-4");
}

/* Closes a still-open session so that every case can insist on exactly one
 * closed callback, then frees. */
static void h_finish(harness *h)
{
    if (!shoal_session_is_closed(h->s))
        shoal_session_disconnect(h->s, "test over");
    assert_int_equal(h->closed_calls, 1);
    /* Calls after the close must not report it again. */
    assert_int_not_equal(shoal_session_recv(h->s, (const uint8_t *)"x", 1, 0), SHOAL_OK);
    shoal_session_abort(h->s, SHOAL_ERR_TIMEOUT, "late abort");
    assert_int_equal(h->closed_calls, 1);
    assert_int_equal(h->hostkey_calls, 0); /* no case gets as far as a host key */
    shoal_session_free(h->s);
    h->s = NULL;
    shoal_buf_free(&h->out);
}

/* The session must be closed with err, reported identically by the return
 * value, shoal_session_error() and the closed callback. */
static void expect_closed(harness *h, int rc, int err)
{
    const char *msg = NULL;
    if (rc != err || shoal_session_error(h->s, NULL) != err)
        print_error("expected %s, got rc %s, session error %s (%s)\n", shoal_errname(err), shoal_errname(rc),
                    shoal_errname(shoal_session_error(h->s, NULL)),
                    shoal_session_error(h->s, &msg) ? msg : "no message");
    assert_int_equal(rc, err);
    assert_true(shoal_session_is_closed(h->s));
    assert_int_equal(shoal_session_error(h->s, &msg), err);
    assert_non_null(msg);
    assert_int_equal(h->closed_calls, 1);
    assert_int_equal(h->closed_err, err);
}

static void expect_open(harness *h, int rc)
{
    const char *msg = NULL;
    if (rc || shoal_session_is_closed(h->s))
        print_error("unexpected close: rc %s: %s\n", shoal_errname(rc),
                    shoal_session_error(h->s, &msg) ? msg : "no message");
    assert_int_equal(rc, SHOAL_OK);
    assert_false(shoal_session_is_closed(h->s));
    assert_int_equal(shoal_session_error(h->s, NULL), 0);
    assert_int_equal(h->closed_calls, 0);
}

/* How many packets of a type the client sent. Only valid while the output
 * is plaintext, i.e. in every case here (no NEWKEYS is ever reached). */
static unsigned sent_count(const harness *h, uint8_t type)
{
    const uint8_t *p = shoal_buf_ptr(&h->out);
    size_t n = shoal_buf_len(&h->out), i = 0;
    const uint8_t *crlf = NULL;
    for (size_t k = 0; k + 1 < n; k++)
        if (p[k] == '\r' && p[k + 1] == '\n') {
            crlf = p + k;
            break;
        }
    assert_non_null(crlf);
    assert_memory_equal(p, "SSH-2.0-", 8);
    i = (size_t)(crlf - p) + 2;
    unsigned count = 0;
    while (i < n) {
        assert_true(n - i >= 6);
        uint32_t len = shoal_load_u32(p + i);
        assert_true(len >= 5 && (len + 4) % 8 == 0 && n - i - 4 >= len);
        assert_true(p[i + 4] >= 4 && p[i + 4] < len);
        if (p[i + 5] == type)
            count++;
        i += 4 + (size_t)len;
    }
    return count;
}

/* Frames a payload as a plaintext binary packet (RFC 4253 6): padding of at
 * least 4 bytes bringing the whole packet to a multiple of 8. */
static void frame(shoal_buf *b, const uint8_t *payload, size_t n)
{
    size_t pad = 8 - ((5 + n) % 8);
    if (pad < 4)
        pad += 8;
    assert_int_equal(shoal_buf_put_u32(b, (uint32_t)(1 + n + pad)), 0);
    assert_int_equal(shoal_buf_put_u8(b, (uint8_t)pad), 0);
    assert_int_equal(shoal_buf_put(b, payload, n), 0);
    for (size_t i = 0; i < pad; i++)
        assert_int_equal(shoal_buf_put_u8(b, (uint8_t)(0xa0 + i)), 0);
}

static int h_feed_payload(harness *h, const uint8_t *payload, size_t n)
{
    shoal_buf b;
    shoal_buf_init(&b, 1u << 20);
    frame(&b, payload, n);
    int rc = h_feed(h, shoal_buf_ptr(&b), shoal_buf_len(&b));
    shoal_buf_free(&b);
    return rc;
}

/* A realistic OpenSSH 9 server KEXINIT; fields left NULL get defaults. */
typedef struct kexinit_opts {
    int strict;
    const char *kex, *hostkey, *cipher, *mac, *comp;
    int first_follows;
} kexinit_opts;

static void build_kexinit(shoal_buf *b, const kexinit_opts *o)
{
    char kex[512];
    snprintf(kex, sizeof(kex), "%s,ext-info-s%s", o->kex ? o->kex : "curve25519-sha256,ecdh-sha2-nistp256",
             o->strict ? "," STRICT_S : "");
    const char *lists[10] = {
        kex,
        o->hostkey ? o->hostkey : "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519",
        o->cipher ? o->cipher : "chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com",
        o->cipher ? o->cipher : "chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com",
        o->mac ? o->mac : "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-256",
        o->mac ? o->mac : "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-256",
        o->comp ? o->comp : "none,zlib@openssh.com",
        o->comp ? o->comp : "none,zlib@openssh.com",
        "",
        "",
    };
    shoal_buf_reset(b);
    assert_int_equal(shoal_buf_put_u8(b, 20), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(shoal_buf_put_u8(b, (uint8_t)(0x5a ^ i)), 0); /* cookie */
    for (int i = 0; i < 10; i++)
        assert_int_equal(shoal_buf_put_cstring(b, lists[i]), 0);
    assert_int_equal(shoal_buf_put_bool(b, o->first_follows), 0);
    assert_int_equal(shoal_buf_put_u32(b, 0), 0);
}

static int h_feed_kexinit(harness *h, const kexinit_opts *o)
{
    shoal_buf b;
    shoal_buf_init(&b, 1u << 20);
    build_kexinit(&b, o);
    int rc = h_feed_payload(h, shoal_buf_ptr(&b), shoal_buf_len(&b));
    shoal_buf_free(&b);
    return rc;
}

/* A payload of the given type whose body is a few zero bytes: enough to be
 * a well-formed IGNORE/DEBUG/UNIMPLEMENTED/DISCONNECT, and garbage for the
 * rest (which must be refused before any parsing anyway). */
static size_t zero_payload(uint8_t t, uint8_t *p)
{
    memset(p, 0, 16);
    p[0] = t;
    return 16;
}

/* ---- 1, 2, 3: strict kex (Terrapin, CVE-2023-48795) ---- */

/* After a strict KEXINIT, a man in the middle who injects IGNORE (or any
 * other message) to shift sequence numbers must be caught. */
static void test_strict_generic_after_kexinit(void **st)
{
    (void)st;
    const uint8_t types[] = {2, 4, 3};
    for (size_t i = 0; i < sizeof(types); i++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        kexinit_opts o = {.strict = 1};
        expect_open(&h, h_feed_kexinit(&h, &o));
        assert_int_equal(sent_count(&h, 30), 1);
        uint8_t p[16];
        expect_closed(&h, h_feed_payload(&h, p, zero_payload(types[i], p)), SHOAL_ERR_STRICT_KEX);
        /* The client tells the server why before going away. */
        assert_int_equal(sent_count(&h, 1), 1);
        h_finish(&h);
    }
}

/* Under strict kex, the KEXINIT must be the server's first packet; an IGNORE
 * in front of it is only detectable once the KEXINIT says "strict". */
static void test_strict_kexinit_not_first(void **st)
{
    (void)st;
    const uint8_t types[] = {2, 4, 3};
    for (size_t i = 0; i < sizeof(types); i++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        uint8_t p[16];
        expect_open(&h, h_feed_payload(&h, p, zero_payload(types[i], p)));
        kexinit_opts o = {.strict = 1};
        expect_closed(&h, h_feed_kexinit(&h, &o), SHOAL_ERR_STRICT_KEX);
        const char *msg;
        shoal_session_error(h.s, &msg);
        assert_non_null(strstr(msg, "first"));
        assert_int_equal(sent_count(&h, 30), 0); /* no kex continued */
        h_finish(&h);
    }
}

/* Without strict kex, RFC 4253 11.2/11.3 messages are legal anywhere. */
static void test_nonstrict_ignore_tolerated(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    uint8_t p[16];
    expect_open(&h, h_feed_payload(&h, p, zero_payload(2, p))); /* before KEXINIT too */
    kexinit_opts o = {0};
    expect_open(&h, h_feed_kexinit(&h, &o));
    expect_open(&h, h_feed_payload(&h, p, zero_payload(2, p)));
    expect_open(&h, h_feed_payload(&h, p, zero_payload(4, p)));
    expect_open(&h, h_feed_payload(&h, p, zero_payload(3, p)));
    assert_int_equal(sent_count(&h, 20), 1);
    assert_int_equal(sent_count(&h, 30), 1);
    assert_int_equal(sent_count(&h, 1), 0);
    h_finish(&h);
}

/* ---- 4: the per-state message table ---- */

/* After the server's (non-strict) KEXINIT and before its kex reply, only
 * transport messages may come; anything from a later layer (notably a
 * premature USERAUTH_SUCCESS or channel traffic) must be refused. */
static void test_table_after_kexinit(void **st)
{
    (void)st;
    for (unsigned t = 1; t <= 255; t++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        kexinit_opts o = {0};
        expect_open(&h, h_feed_kexinit(&h, &o));
        uint8_t p[16];
        size_t n = zero_payload((uint8_t)t, p);
        if (t == 21)
            n = 1; /* a well-formed NEWKEYS, only out of order */
        int rc = h_feed_payload(&h, p, n);
        switch (t) {
        case 1:
            expect_closed(&h, rc, SHOAL_ERR_DISCONNECTED);
            break;
        case 2:
        case 3:
        case 4:
            expect_open(&h, rc);
            break;
        case 20:
            assert_true(rc == SHOAL_ERR_UNEXPECTED_MESSAGE || rc == SHOAL_ERR_PROTOCOL);
            expect_closed(&h, rc, rc);
            break;
        case 21:
            expect_closed(&h, rc, SHOAL_ERR_PROTOCOL);
            break;
        case 31:
            assert_int_not_equal(rc, SHOAL_OK);
            expect_closed(&h, rc, rc);
            break;
        default:
            if (rc != SHOAL_ERR_UNEXPECTED_MESSAGE)
                print_error("message %u\n", t);
            expect_closed(&h, rc, SHOAL_ERR_UNEXPECTED_MESSAGE);
            break;
        }
        h_finish(&h);
    }
}

/* Spot checks of the numbers a confused-deputy attack would use, with
 * realistic bodies rather than zeros. */
static void test_table_auth_and_channel_early(void **st)
{
    (void)st;
    const uint8_t types[] = {5, 6, 7, 51, 52, 53, 60, 80, 81, 82, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100};
    for (size_t i = 0; i < sizeof(types); i++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        kexinit_opts o = {0};
        expect_open(&h, h_feed_kexinit(&h, &o));
        uint8_t p[1] = {types[i]}; /* USERAUTH_SUCCESS is exactly this */
        expect_closed(&h, h_feed_payload(&h, p, 1), SHOAL_ERR_UNEXPECTED_MESSAGE);
        h_finish(&h);
    }
}

/* Before the server's KEXINIT: only KEXINIT, DISCONNECT and the generic
 * transport messages. */
static void test_table_before_kexinit(void **st)
{
    (void)st;
    for (unsigned t = 1; t <= 255; t++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        int rc;
        if (t == 20) {
            kexinit_opts o = {0};
            rc = h_feed_kexinit(&h, &o);
        } else {
            uint8_t p[16];
            rc = h_feed_payload(&h, p, zero_payload((uint8_t)t, p));
        }
        if (t == 1) {
            expect_closed(&h, rc, SHOAL_ERR_DISCONNECTED);
        } else if (t == 2 || t == 3 || t == 4 || t == 20) {
            expect_open(&h, rc);
        } else {
            if (rc != SHOAL_ERR_UNEXPECTED_MESSAGE)
                print_error("message %u\n", t);
            expect_closed(&h, rc, SHOAL_ERR_UNEXPECTED_MESSAGE);
            assert_int_equal(sent_count(&h, 30), 0);
        }
        h_finish(&h);
    }
}

/* ---- 5, 6: packet framing ---- */

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    unsigned long size = 0, resident = 0;
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Heap bytes in use (arena + mmapped chunks). RSS alone would miss a large
 * allocation that is never touched; this sees it. Under ASan, whose
 * allocator glibc does not know about, ASan's own count is used. */
static size_t heap_in_use(void)
{
#ifdef TEST_UNDER_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

/* A hostile packet_length must be refused from the first 8 bytes (one
 * cipher block): waiting for, or allocating, what the length announces would
 * let a server pin gigabytes of client memory. */
static void test_packet_length_checked_early(void **st)
{
    (void)st;
    const struct {
        uint32_t len;
        int err;
    } cases[] = {
        {0x7fffffffu, SHOAL_ERR_TOO_LARGE},
        {0xffffffffu, SHOAL_ERR_TOO_LARGE},
        {256u * 1024u, SHOAL_ERR_TOO_LARGE},
        {256u * 1024u + 4u, SHOAL_ERR_TOO_LARGE}, /* aligned, just over the cap */
        {0, SHOAL_ERR_TOO_LARGE},
        {1, SHOAL_ERR_TOO_LARGE},
        {4, SHOAL_ERR_TOO_LARGE},
        {13, SHOAL_ERR_PROTOCOL},  /* 4 + 13 is not a multiple of 8 */
        {1001, SHOAL_ERR_PROTOCOL},
    };
    size_t before = rss_bytes();
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            size_t heap_before = heap_in_use();
            harness h;
            h_new(&h);
            h_feed_version(&h);
            uint8_t hdr[8] = {0, 0, 0, 0, 4, 20, 0, 0};
            shoal_store_u32(hdr, cases[i].len);
            /* Seven bytes are not a block yet: nothing can be decided. */
            expect_open(&h, h_feed(&h, hdr, 7));
            int rc = h_feed(&h, hdr + 7, 1);
            if (rc == SHOAL_OK)
                print_error("length %u was not refused after 8 bytes\n", cases[i].len);
            if (cases[i].err == SHOAL_ERR_TOO_LARGE)
                assert_true(rc == SHOAL_ERR_TOO_LARGE || rc == SHOAL_ERR_PROTOCOL);
            else
                assert_int_equal(rc, SHOAL_ERR_PROTOCOL);
            expect_closed(&h, rc, rc);
            /* The whole session, its output and 8 input bytes: far below
             * even the smallest refused length (256 KiB). */
            size_t heap_now = heap_in_use();
            if (heap_now > heap_before + 64 * 1024)
                print_error("length %u: heap grew by %zu bytes\n", cases[i].len, heap_now - heap_before);
            assert_true(heap_now <= heap_before + 64 * 1024);
            h_finish(&h);
        }
    }
    size_t after = rss_bytes();
#ifdef TEST_UNDER_ASAN
    /* Freed blocks wait in ASan's quarantine and stay resident: RSS grows
     * with everything the 64 sessions allocated (about 1 MiB, more or less
     * from run to run). A 256 KiB buffer per refused length would still be
     * 16 MiB. */
    const size_t slack = 8u << 20;
#else
    const size_t slack = 1u << 20;
#endif
    if (after > before + slack)
        print_error("RSS grew from %zu to %zu bytes\n", before, after);
    assert_true(after <= before + slack);
}

/* The largest legal length is accepted and simply waited for. */
static void test_packet_length_at_cap_waits(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    uint8_t hdr[8] = {0, 0, 0, 0, 4, 2, 0, 0};
    shoal_store_u32(hdr, 256u * 1024u - 4u);
    expect_open(&h, h_feed(&h, hdr, sizeof(hdr)));
    h_finish(&h);
}

static void test_padding_length(void **st)
{
    (void)st;
    /* packet_length 12: padding_length byte + 11 bytes. */
    const uint8_t pads[] = {12, 13, 255, 11 /* no payload at all */, 3, 0};
    for (size_t i = 0; i < sizeof(pads); i++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        uint8_t pkt[16] = {0, 0, 0, 12, pads[i], 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        expect_closed(&h, h_feed(&h, pkt, sizeof(pkt)), SHOAL_ERR_PROTOCOL);
        h_finish(&h);
    }
}

/* ---- 7: version exchange ---- */

static int feed_str(harness *h, const char *s)
{
    return h_feed(h, s, strlen(s));
}

static void test_version_prebanner_lines(void **st)
{
    (void)st;
    for (int extra = 0; extra <= 1; extra++) {
        harness h;
        h_new(&h);
        char line[64];
        int rc = SHOAL_OK;
        for (int i = 0; i < 64 + extra && rc == SHOAL_OK; i++) {
            snprintf(line, sizeof(line), "Welcome, line %d\r\n", i);
            rc = feed_str(&h, line);
        }
        if (!extra) {
            expect_open(&h, rc);
            h_feed_version(&h);
        } else {
            expect_closed(&h, rc, SHOAL_ERR_BANNER);
        }
        h_finish(&h);
    }
}

static void test_version_long_lines(void **st)
{
    (void)st;
    char buf[600];
    /* An over-long line is refused as it arrives, without waiting for its
     * end (which may never come). */
    {
        harness h;
        h_new(&h);
        memset(buf, 'a', 300);
        expect_closed(&h, h_feed(&h, buf, 300), SHOAL_ERR_BANNER);
        h_finish(&h);
    }
    /* 256 bytes before CR LF, as a pre-banner line and as a version line. */
    for (int version = 0; version <= 1; version++) {
        harness h;
        h_new(&h);
        memset(buf, 'b', 256);
        if (version)
            memcpy(buf, "SSH-2.0-", 8);
        memcpy(buf + 256, "\r\n", 3);
        expect_closed(&h, feed_str(&h, buf), SHOAL_ERR_BANNER);
        h_finish(&h);
    }
    /* A version line of 256 characters ended by a bare LF: it does not fit
     * the 255-byte limit of RFC 4253 4.2 (nor our copy of it). */
    {
        harness h;
        h_new(&h);
        memset(buf, 'c', 256);
        memcpy(buf, "SSH-2.0-", 8);
        memcpy(buf + 256, "\n", 2);
        expect_closed(&h, feed_str(&h, buf), SHOAL_ERR_BANNER);
        h_finish(&h);
    }
    /* The RFC maximum: 253 characters + CR LF = 255 bytes. */
    {
        harness h;
        h_new(&h);
        memset(buf, 'd', 253);
        memcpy(buf, "SSH-2.0-", 8);
        memcpy(buf + 253, "\r\n", 3);
        expect_open(&h, feed_str(&h, buf));
        buf[253] = 0;
        assert_string_equal(shoal_session_peer_version(h.s), buf);
        h_finish(&h);
    }
}

static void test_version_bad(void **st)
{
    (void)st;
    const char *bad[] = {
        "SSH-1.5-x\r\n",
        "SSH-1.0-OpenSSH\r\n",
        "SSH-2.0\r\n",
        "SSH-3.0-x\r\n",
        "SSH-2.0-x\x01y\r\n",
        "SSH-2.0-caf\xc3\xa9\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        harness h;
        h_new(&h);
        expect_closed(&h, feed_str(&h, bad[i]), SHOAL_ERR_BANNER);
        assert_null(shoal_session_peer_version(h.s));
        h_finish(&h);
    }
    /* NUL bytes, in a pre-banner line and in the version line. */
    const char nul1[] = "hello\0world\r\nSSH-2.0-x\r\n";
    const char nul2[] = "SSH-2.0-x\0y\r\n";
    const struct {
        const char *p;
        size_t n;
    } nuls[] = {{nul1, sizeof(nul1) - 1}, {nul2, sizeof(nul2) - 1}};
    for (size_t i = 0; i < 2; i++) {
        harness h;
        h_new(&h);
        expect_closed(&h, h_feed(&h, nuls[i].p, nuls[i].n), SHOAL_ERR_BANNER);
        h_finish(&h);
    }
    /* The server hangs up in the middle of its version line. */
    {
        harness h;
        h_new(&h);
        expect_open(&h, feed_str(&h, "SSH-2.0-Open"));
        shoal_session_recv_eof(h.s, 0);
        assert_int_equal(shoal_session_error(h.s, NULL), SHOAL_ERR_BANNER);
        assert_int_equal(h.closed_calls, 1);
        h_finish(&h);
    }
}

static void test_version_good(void **st)
{
    (void)st;
    const struct {
        const char *in, *want;
    } ok[] = {
        {"SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0-OpenSSH_9.6"},
        {"SSH-2.0-dropbear_2022.83\n", "SSH-2.0-dropbear_2022.83"},
        {"SSH-2.0-x comment here\r\n", "SSH-2.0-x comment here"},
        {"SSH-1.99-OldServer\r\n", "SSH-1.99-OldServer"},
        {"motd\nmore motd\r\nSSH-2.0-y\n", "SSH-2.0-y"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        harness h;
        h_new(&h);
        expect_open(&h, feed_str(&h, ok[i].in));
        assert_non_null(shoal_session_peer_version(h.s));
        assert_string_equal(shoal_session_peer_version(h.s), ok[i].want);
        h_finish(&h);
    }
}

/* The version line and the KEXINIT that follows, one byte per recv call:
 * reassembly must not depend on how TCP cuts the stream. */
static void test_version_bytewise(void **st)
{
    (void)st;
    for (int strict = 0; strict <= 1; strict++) {
        harness h;
        h_new(&h);
        shoal_buf b, k;
        shoal_buf_init(&b, 1u << 20);
        shoal_buf_init(&k, 1u << 20);
        assert_int_equal(shoal_buf_put(&b, "pre\r\n" SERVER_VERSION, 5 + strlen(SERVER_VERSION)), 0);
        kexinit_opts o = {.strict = strict};
        build_kexinit(&k, &o);
        frame(&b, shoal_buf_ptr(&k), shoal_buf_len(&k));
        const uint8_t *p = shoal_buf_ptr(&b);
        for (size_t i = 0; i < shoal_buf_len(&b); i++) {
            expect_open(&h, h_feed(&h, p + i, 1));
            /* The reply goes out exactly when the last byte arrives. */
            assert_int_equal(sent_count(&h, 30), i + 1 == shoal_buf_len(&b));
        }
        assert_string_equal(shoal_session_peer_version(h.s), "SSH-2.0-OpenSSH_9.6p1 Debian-4");
        shoal_buf_free(&b);
        shoal_buf_free(&k);
        h_finish(&h);
    }
}

/* ---- 8: negotiation failures ---- */

static void expect_no_algorithm(const kexinit_opts *o, const char *word)
{
    harness h;
    h_new(&h);
    h_feed_version(&h);
    expect_closed(&h, h_feed_kexinit(&h, o), SHOAL_ERR_NO_ALGORITHM);
    const char *msg = NULL;
    shoal_session_error(h.s, &msg);
    if (!strstr(msg, word))
        print_error("message \"%s\" does not name \"%s\"\n", msg, word);
    assert_non_null(strstr(msg, word));
    assert_int_equal(sent_count(&h, 30), 0);
    assert_int_equal(sent_count(&h, 1), 1);
    h_finish(&h);
}

static void test_no_common_algorithm(void **st)
{
    (void)st;
    kexinit_opts o = {.cipher = "3des-cbc,aes128-cbc"};
    expect_no_algorithm(&o, "cipher");
    kexinit_opts o2 = {.comp = "zlib"};
    expect_no_algorithm(&o2, "compression");
    kexinit_opts o3 = {.comp = "zlib@openssh.com"};
    expect_no_algorithm(&o3, "compression");
    kexinit_opts o4 = {.kex = "diffie-hellman-group1-sha1"};
    expect_no_algorithm(&o4, "key exchange");
    kexinit_opts o5 = {.hostkey = "ssh-dss"};
    expect_no_algorithm(&o5, "host key");
    kexinit_opts o6 = {.cipher = "aes128-ctr", .mac = "hmac-md5,umac-64@openssh.com"};
    expect_no_algorithm(&o6, "MAC");
    /* The strict marker alone is no key exchange method. */
    kexinit_opts o7 = {.kex = STRICT_S, .strict = 1};
    expect_no_algorithm(&o7, "key exchange");
}

/* An AEAD cipher needs no MAC: MAC lists without a match are fine then. */
static void test_aead_without_common_mac(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    kexinit_opts o = {.cipher = "aes256-gcm@openssh.com", .mac = "hmac-md5"};
    expect_open(&h, h_feed_kexinit(&h, &o));
    assert_int_equal(sent_count(&h, 30), 1);
    h_finish(&h);
}

/* ---- 9: malformed KEXINIT ---- */

static void test_kexinit_truncated(void **st)
{
    (void)st;
    for (int strict = 0; strict <= 1; strict++) {
        shoal_buf k;
        shoal_buf_init(&k, 1u << 20);
        kexinit_opts o = {.strict = strict};
        build_kexinit(&k, &o);
        size_t full = shoal_buf_len(&k);
        for (size_t n = 1; n < full; n++) {
            harness h;
            h_new(&h);
            h_feed_version(&h);
            int rc = h_feed_payload(&h, shoal_buf_ptr(&k), n);
            if (rc == SHOAL_OK)
                print_error("KEXINIT truncated to %zu of %zu bytes was accepted\n", n, full);
            assert_int_not_equal(rc, SHOAL_OK);
            expect_closed(&h, rc, rc);
            assert_int_equal(sent_count(&h, 30), 0);
            h_finish(&h);
        }
        /* One trailing byte after the reserved field. */
        assert_int_equal(shoal_buf_put_u8(&k, 0), 0);
        harness h;
        h_new(&h);
        h_feed_version(&h);
        expect_closed(&h, h_feed_payload(&h, shoal_buf_ptr(&k), shoal_buf_len(&k)), SHOAL_ERR_TRAILING);
        h_finish(&h);
        shoal_buf_free(&k);
    }
}

/* Name-lists that are not name-lists (RFC 4251 5). */
static void test_kexinit_bad_namelists(void **st)
{
    (void)st;
    const char *bad[] = {"aes128-ctr,", ",aes128-ctr", "aes128-ctr,,aes256-ctr", "aes128 ctr", "aes\x7f", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        harness h;
        h_new(&h);
        h_feed_version(&h);
        kexinit_opts o = {.cipher = bad[i]};
        int rc = h_feed_kexinit(&h, &o);
        assert_int_not_equal(rc, SHOAL_OK);
        expect_closed(&h, rc, rc);
        h_finish(&h);
    }
}

/* ---- 10: first_kex_packet_follows ---- */

/* The server guessed a method we did not choose: its next kex packet was
 * computed for that guess and must be dropped, not treated as a reply
 * (RFC 4253 7.1). Only that one packet is dropped. */
static void test_first_kex_packet_follows_wrong_guess(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    kexinit_opts o = {.kex = "ecdh-sha2-nistp521,curve25519-sha256", .first_follows = 1};
    expect_open(&h, h_feed_kexinit(&h, &o));
    assert_int_equal(sent_count(&h, 30), 1);
    uint8_t p[16];
    expect_open(&h, h_feed_payload(&h, p, zero_payload(31, p)));
    /* The second garbage reply is a real (malformed) reply. */
    int rc = h_feed_payload(&h, p, zero_payload(31, p));
    assert_int_not_equal(rc, SHOAL_OK);
    expect_closed(&h, rc, rc);
    h_finish(&h);
}

/* A wrong host key guess counts as a wrong guess too. */
static void test_first_kex_packet_follows_wrong_hostkey_guess(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    kexinit_opts o = {.kex = "curve25519-sha256", .hostkey = "rsa-sha2-512,ssh-ed25519", .first_follows = 1};
    expect_open(&h, h_feed_kexinit(&h, &o));
    uint8_t p[16];
    expect_open(&h, h_feed_payload(&h, p, zero_payload(31, p)));
    h_finish(&h);
}

/* A right guess: the packet that follows is the real one and is processed. */
static void test_first_kex_packet_follows_right_guess(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    kexinit_opts o = {.kex = "curve25519-sha256", .hostkey = "ssh-ed25519", .first_follows = 1};
    expect_open(&h, h_feed_kexinit(&h, &o));
    uint8_t p[16];
    int rc = h_feed_payload(&h, p, zero_payload(31, p));
    assert_int_not_equal(rc, SHOAL_OK);
    expect_closed(&h, rc, rc);
    h_finish(&h);
}

/* The dropped guess must not become a way around strict kex: a wrong guess
 * lets one kex-range packet through, but not an IGNORE. */
static void test_first_kex_packet_follows_strict(void **st)
{
    (void)st;
    harness h;
    h_new(&h);
    h_feed_version(&h);
    kexinit_opts o = {.kex = "ecdh-sha2-nistp521,curve25519-sha256", .strict = 1, .first_follows = 1};
    expect_open(&h, h_feed_kexinit(&h, &o));
    uint8_t p[16];
    expect_closed(&h, h_feed_payload(&h, p, zero_payload(2, p)), SHOAL_ERR_STRICT_KEX);
    h_finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_generic_after_kexinit),
        cmocka_unit_test(test_strict_kexinit_not_first),
        cmocka_unit_test(test_nonstrict_ignore_tolerated),
        cmocka_unit_test(test_table_after_kexinit),
        cmocka_unit_test(test_table_auth_and_channel_early),
        cmocka_unit_test(test_table_before_kexinit),
        cmocka_unit_test(test_packet_length_checked_early),
        cmocka_unit_test(test_packet_length_at_cap_waits),
        cmocka_unit_test(test_padding_length),
        cmocka_unit_test(test_version_prebanner_lines),
        cmocka_unit_test(test_version_long_lines),
        cmocka_unit_test(test_version_bad),
        cmocka_unit_test(test_version_good),
        cmocka_unit_test(test_version_bytewise),
        cmocka_unit_test(test_no_common_algorithm),
        cmocka_unit_test(test_aead_without_common_mac),
        cmocka_unit_test(test_kexinit_truncated),
        cmocka_unit_test(test_kexinit_bad_namelists),
        cmocka_unit_test(test_first_kex_packet_follows_wrong_guess),
        cmocka_unit_test(test_first_kex_packet_follows_wrong_hostkey_guess),
        cmocka_unit_test(test_first_kex_packet_follows_right_guess),
        cmocka_unit_test(test_first_kex_packet_follows_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
