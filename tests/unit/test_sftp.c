/* SFTP v3 client: wire encoding/decoding, and the client and upload state
 * machines over a fake transport with scripted server replies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "sftp/sftp_impl.h"

/* ---- fake transport ---- */

typedef struct fake {
    shoal_buf sent;
    size_t room; /* bytes the "channel" takes now */
    int armed;
    int closed;
} fake;

static int f_write(void *ctx, const uint8_t *p, size_t n, size_t *taken)
{
    fake *f = ctx;
    size_t k = n < f->room ? n : f->room;
    *taken = 0;
    if (f->closed)
        return SHOAL_ERR_CLOSED;
    if (k && shoal_buf_put(&f->sent, p, k) != 0)
        return SHOAL_ERR_NOMEM;
    f->room -= k;
    *taken = k;
    return 0;
}

static size_t f_writable(void *ctx)
{
    fake *f = ctx;
    return f->closed ? 0 : f->room;
}

static void f_arm(void *ctx)
{
    ((fake *)ctx)->armed++;
}

static void f_close(void *ctx)
{
    ((fake *)ctx)->closed = 1;
}

static const sftp_io FAKE_IO = {f_write, f_writable, f_arm, f_close};

/* What the callbacks saw. */
typedef struct seen {
    int ready, ready_err;
    int closed;
    int writable;
    int done, done_err;
    char done_msg[700];
    char log[700];
    int op_done, op_err;
    char op_msg[700];
    shoal_sftp_attrs attrs;
    char path[256];
    shoal_sftp_put *put;
    int abort_in_writable;
} seen;

static seen S;
static fake F;

static void cb_ready(shoal_sftp *sf, int err, const char *msg, void *ud)
{
    (void)sf;
    (void)msg;
    (void)ud;
    S.ready++;
    S.ready_err = err;
}

static void cb_closed(shoal_sftp *sf, void *ud)
{
    (void)sf;
    (void)ud;
    S.closed++;
}

static void cb_log(shoal_sftp *sf, int level, const char *msg, void *ud)
{
    (void)sf;
    (void)level;
    (void)ud;
    snprintf(S.log, sizeof(S.log), "%s", msg);
}

static const shoal_sftp_callbacks SCB = {sizeof(shoal_sftp_callbacks), cb_ready, cb_closed, cb_log};

static void cb_writable(shoal_sftp_put *p, void *ud)
{
    (void)ud;
    S.writable++;
    if (S.abort_in_writable)
        shoal_sftp_put_abort(p);
}

static void cb_done(shoal_sftp_put *p, int err, const char *msg, void *ud)
{
    (void)p;
    (void)ud;
    S.done++;
    S.done_err = err;
    snprintf(S.done_msg, sizeof(S.done_msg), "%s", msg ? msg : "");
    S.put = NULL;
}

static const shoal_sftp_put_callbacks PCB = {sizeof(shoal_sftp_put_callbacks), cb_writable, cb_done, NULL};

/* on_closed_temp: the test decides later (commit or fail). */
static int held_calls;
static char held_path[128];
static void cb_closed_temp(shoal_sftp_put *p, const char *temp, void *ud)
{
    (void)p;
    (void)ud;
    held_calls++;
    snprintf(held_path, sizeof(held_path), "%s", temp);
}
static const shoal_sftp_put_callbacks PCB_HOLD = {sizeof(shoal_sftp_put_callbacks), cb_writable, cb_done,
                                                  cb_closed_temp};
static const shoal_sftp_put_callbacks *pcb_use = &PCB;

static void cb_status(shoal_sftp *sf, int err, const char *msg, void *ud)
{
    (void)sf;
    (void)ud;
    S.op_done++;
    S.op_err = err;
    snprintf(S.op_msg, sizeof(S.op_msg), "%s", msg ? msg : "");
}

static void cb_stat(shoal_sftp *sf, int err, const char *msg, const shoal_sftp_attrs *a, void *ud)
{
    cb_status(sf, err, msg, ud);
    if (a)
        S.attrs = *a;
}

static void cb_path(shoal_sftp *sf, int err, const char *msg, const char *path, void *ud)
{
    cb_status(sf, err, msg, ud);
    snprintf(S.path, sizeof(S.path), "%s", path ? path : "");
}

/* ---- packets ---- */

/* Takes the next packet the client sent; returns its type, sets id (when
 * it has one) and a reader over the rest. */
typedef struct pkt {
    uint8_t type;
    uint32_t id;
    shoal_rd r;
    uint8_t body[70000];
} pkt;

static int next_sent(pkt *k)
{
    size_t have = shoal_buf_len(&F.sent);
    if (have < 5)
        return 0;
    const uint8_t *p = shoal_buf_ptr(&F.sent);
    uint32_t len = shoal_load_u32(p);
    assert_true(len >= 1 && len <= sizeof(k->body));
    assert_true(have >= 4 + (size_t)len);
    memcpy(k->body, p + 4, len);
    shoal_buf_consume(&F.sent, 4 + (size_t)len);
    k->type = k->body[0];
    shoal_rd_init(&k->r, k->body + 1, len - 1);
    k->id = 0;
    if (k->type != SSH_FXP_INIT)
        assert_int_equal(shoal_rd_u32(&k->r, &k->id), 0);
    return 1;
}

static void expect_sent(pkt *k, uint8_t type)
{
    assert_true(next_sent(k));
    if (k->type != type)
        fail_msg("sent packet type %u, expected %u", k->type, type);
}

static void rd_str_eq(shoal_rd *r, const char *want)
{
    const char *s;
    size_t n;
    assert_int_equal(shoal_rd_cstring(r, &s, &n), 0);
    if (n != strlen(want) || memcmp(s, want, n) != 0)
        fail_msg("string '%.*s', expected '%s'", (int)n, s, want);
}

static void rd_str_get(shoal_rd *r, char *out, size_t outsz)
{
    const char *s;
    size_t n;
    assert_int_equal(shoal_rd_cstring(r, &s, &n), 0);
    assert_true(n < outsz);
    memcpy(out, s, n);
    out[n] = 0;
}

/* Reply builders: a framed packet in a buffer. */
static shoal_buf R;
static size_t R_mark;

static void r_begin(uint8_t type, uint32_t id)
{
    shoal_buf_reset(&R);
    assert_int_equal(shoal__sftp_pkt_begin(&R, type, &R_mark), 0);
    if (type != SSH_FXP_VERSION)
        shoal_buf_put_u32(&R, id);
}

static void r_send(shoal_sftp *sf)
{
    assert_int_equal(shoal__sftp_pkt_end(&R, R_mark), 0);
    (void)shoal__sftp_io_data(sf, shoal_buf_ptr(&R), shoal_buf_len(&R));
}

static void reply_status(shoal_sftp *sf, uint32_t id, uint32_t code, const char *msg)
{
    r_begin(SSH_FXP_STATUS, id);
    shoal_buf_put_u32(&R, code);
    shoal_buf_put_cstring(&R, msg);
    shoal_buf_put_cstring(&R, "en");
    r_send(sf);
}

static void reply_handle(shoal_sftp *sf, uint32_t id, const char *h)
{
    r_begin(SSH_FXP_HANDLE, id);
    shoal_buf_put_cstring(&R, h);
    r_send(sf);
}

/* ---- setup ---- */

static shoal_sftp *new_client(int posix_rename, int fsync)
{
    memset(&S, 0, sizeof(S));
    shoal_buf_free(&F.sent);
    memset(&F, 0, sizeof(F));
    shoal_buf_init(&F.sent, 64u << 20);
    F.room = SIZE_MAX;
    shoal_sftp *sf;
    assert_int_equal(shoal__sftp_new_detached(&FAKE_IO, &F, &SCB, NULL, &sf), 0);
    pkt k;
    expect_sent(&k, SSH_FXP_INIT);
    uint32_t v;
    assert_int_equal(shoal_rd_u32(&k.r, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(shoal_rd_end(&k.r), 0);
    assert_int_equal(S.ready, 0);
    r_begin(SSH_FXP_VERSION, 0);
    shoal_buf_put_u32(&R, 3);
    if (posix_rename) {
        shoal_buf_put_cstring(&R, "posix-rename@openssh.com");
        shoal_buf_put_cstring(&R, "1");
    }
    shoal_buf_put_cstring(&R, "statvfs@openssh.com");
    shoal_buf_put_cstring(&R, "2");
    if (fsync) {
        shoal_buf_put_cstring(&R, "fsync@openssh.com");
        shoal_buf_put_cstring(&R, "1");
    }
    r_send(sf);
    assert_int_equal(S.ready, 1);
    assert_int_equal(S.ready_err, 0);
    assert_int_equal(shoal_sftp_version(sf), 3);
    return sf;
}

/* Ends the client as the channel would and checks on_closed. */
static void end_client(shoal_sftp *sf)
{
    shoal_sftp_close(sf);
    assert_true(F.closed);
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.closed, 1);
}

static int teardown(void **st)
{
    (void)st;
    shoal_buf_free(&F.sent);
    shoal_buf_free(&R);
    return 0;
}

/* ---- wire ---- */

static void test_attrs_roundtrip(void **st)
{
    (void)st;
    shoal_buf b = SHOAL_BUF_INIT;
    shoal_sftp_attrs a = {SHOAL_SFTP_ATTR_SIZE | SHOAL_SFTP_ATTR_UIDGID | SHOAL_SFTP_ATTR_PERMISSIONS |
                              SHOAL_SFTP_ATTR_ACMODTIME,
                          1ull << 40, 1000, 1001, 0100644, 11, 22};
    assert_int_equal(shoal__sftp_attrs_put(&b, &a), 0);
    assert_int_equal(shoal_buf_len(&b), 4 + 8 + 8 + 4 + 8);
    shoal_rd r;
    shoal_sftp_attrs got;
    shoal_rd_init(&r, shoal_buf_ptr(&b), shoal_buf_len(&b));
    assert_int_equal(shoal__sftp_attrs_parse(&r, &got), 0);
    assert_int_equal(shoal_rd_end(&r), 0);
    assert_int_equal(got.flags, a.flags);
    assert_int_equal(got.size, a.size);
    assert_int_equal(got.uid, a.uid);
    assert_int_equal(got.gid, a.gid);
    assert_int_equal(got.permissions, a.permissions);
    assert_int_equal(got.atime, a.atime);
    assert_int_equal(got.mtime, a.mtime);
    /* Only permissions: 8 bytes. */
    shoal_buf_reset(&b);
    shoal_sftp_attrs m = {.flags = SHOAL_SFTP_ATTR_PERMISSIONS, .permissions = 0600};
    assert_int_equal(shoal__sftp_attrs_put(&b, &m), 0);
    static const uint8_t want[] = {0, 0, 0, 4, 0, 0, 0x01, 0x80};
    assert_int_equal(shoal_buf_len(&b), sizeof(want));
    assert_memory_equal(shoal_buf_ptr(&b), want, sizeof(want));
    /* Extended pairs are skipped; unknown flag bits and truncation refused. */
    static const uint8_t ext[] = {0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'a', 0, 0, 0, 0};
    shoal_rd_init(&r, ext, sizeof(ext));
    assert_int_equal(shoal__sftp_attrs_parse(&r, &got), 0);
    assert_int_equal(shoal_rd_end(&r), 0);
    assert_int_equal(got.flags, 0);
    static const uint8_t bad[] = {0, 0, 0, 0x10};
    shoal_rd_init(&r, bad, sizeof(bad));
    assert_int_equal(shoal__sftp_attrs_parse(&r, &got), SHOAL_ERR_BAD_FORMAT);
    shoal_rd_init(&r, ext, sizeof(ext) - 1);
    assert_int_not_equal(shoal__sftp_attrs_parse(&r, &got), 0);
    static const uint8_t many[] = {0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    shoal_rd_init(&r, many, sizeof(many));
    assert_int_equal(shoal__sftp_attrs_parse(&r, &got), SHOAL_ERR_TOO_LARGE);
    shoal_buf_free(&b);
}

static void test_frame(void **st)
{
    (void)st;
    size_t n;
    static const uint8_t ok[] = {0, 0, 0, 5, 101};
    assert_int_equal(shoal__sftp_frame(ok, 3, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(shoal__sftp_frame(ok, sizeof(ok), &n), 0);
    assert_int_equal(n, 9);
    static const uint8_t max[] = {0, 4, 0, 0};
    assert_int_equal(shoal__sftp_frame(max, 4, &n), 0);
    static const uint8_t big[] = {0, 4, 0, 1};
    assert_int_equal(shoal__sftp_frame(big, 4, &n), SHOAL_ERR_TOO_LARGE);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(shoal__sftp_frame(huge, 4, &n), SHOAL_ERR_TOO_LARGE);
    static const uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(shoal__sftp_frame(zero, 4, &n), SHOAL_ERR_BAD_FORMAT);
}

static void test_parse_reply(void **st)
{
    (void)st;
    sftp_reply r;
    /* STATUS with and without the text fields. */
    static const uint8_t s1[] = {101, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 2, 'n', 'o', 0, 0, 0, 0};
    assert_int_equal(shoal__sftp_parse_reply(s1, sizeof(s1), &r), 0);
    assert_int_equal(r.type, SSH_FXP_STATUS);
    assert_int_equal(r.id, 256);
    assert_int_equal(r.code, 2);
    assert_int_equal(r.msg_len, 2);
    assert_int_equal(shoal__sftp_parse_reply(s1, 9, &r), 0);
    assert_int_equal(r.msg_len, 0);
    assert_int_not_equal(shoal__sftp_parse_reply(s1, 11, &r), 0);
    uint8_t trail[sizeof(s1) + 1];
    memcpy(trail, s1, sizeof(s1));
    trail[sizeof(s1)] = 0;
    assert_int_equal(shoal__sftp_parse_reply(trail, sizeof(trail), &r), SHOAL_ERR_TRAILING);
    /* HANDLE: empty and over-long handles are refused. */
    static const uint8_t h0[] = {102, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(shoal__sftp_parse_reply(h0, sizeof(h0), &r), SHOAL_ERR_BAD_FORMAT);
    uint8_t hl[9 + 257];
    memset(hl, 'h', sizeof(hl));
    hl[0] = 102;
    memcpy(hl + 1, "\0\0\0\1\0\0\1\1", 8);
    assert_int_equal(shoal__sftp_parse_reply(hl, sizeof(hl), &r), SHOAL_ERR_BAD_FORMAT);
    hl[8] = 0; /* 256 bytes: allowed */
    assert_int_equal(shoal__sftp_parse_reply(hl, sizeof(hl) - 1, &r), 0);
    assert_int_equal(r.handle_len, 256);
    /* NAME: a count larger than the packet can hold, then a good one. */
    static const uint8_t nlie[] = {104, 0, 0, 0, 1, 0x10, 0, 0, 0};
    assert_int_equal(shoal__sftp_parse_reply(nlie, sizeof(nlie), &r), SHOAL_ERR_BAD_FORMAT);
    static const uint8_t n1[] = {104, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, '/', 'x', 0, 0, 0, 1, 'l', 0, 0, 0, 1,
                                 0, 0, 0, 0, 0, 0, 0, 9};
    assert_int_equal(shoal__sftp_parse_reply(n1, sizeof(n1), &r), 0);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.name_len, 2);
    assert_int_equal(r.attrs.size, 9);
    /* A request type (not a reply) and a truncated id. */
    static const uint8_t req[] = {3, 0, 0, 0, 1};
    assert_int_equal(shoal__sftp_parse_reply(req, sizeof(req), &r), SHOAL_ERR_UNEXPECTED_MESSAGE);
    assert_int_not_equal(shoal__sftp_parse_reply(req, 3, &r), 0);
}

static void test_parse_version(void **st)
{
    (void)st;
    shoal_buf b = SHOAL_BUF_INIT;
    shoal_buf_put_u8(&b, SSH_FXP_VERSION);
    shoal_buf_put_u32(&b, 3);
    shoal_buf_put_cstring(&b, "posix-rename@openssh.com");
    shoal_buf_put_cstring(&b, "1");
    char longname[100];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[99] = 0;
    shoal_buf_put_cstring(&b, longname); /* too long to store: ignored */
    shoal_buf_put_cstring(&b, "1");
    shoal_buf_put_cstring(&b, "fsync@openssh.com");
    shoal_buf_put_cstring(&b, "1");
    sftp_ext ex[4];
    unsigned n;
    uint32_t v;
    assert_int_equal(shoal__sftp_parse_version(shoal_buf_ptr(&b), shoal_buf_len(&b), &v, ex, 4, &n), 0);
    assert_int_equal(v, 3);
    assert_int_equal(n, 2);
    assert_string_equal(ex[0].name, "posix-rename@openssh.com");
    assert_string_equal(ex[1].name, "fsync@openssh.com");
    assert_string_equal(ex[1].version, "1");
    /* A dangling extension name. */
    shoal_buf_put_cstring(&b, "half");
    assert_int_not_equal(shoal__sftp_parse_version(shoal_buf_ptr(&b), shoal_buf_len(&b), &v, ex, 4, &n), 0);
    shoal_buf_free(&b);
}

/* ---- client ---- */

static void test_handshake_and_extensions(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    assert_true(shoal_sftp_has_extension(sf, "posix-rename@openssh.com", "1"));
    assert_true(shoal_sftp_has_extension(sf, "posix-rename@openssh.com", NULL));
    assert_false(shoal_sftp_has_extension(sf, "posix-rename@openssh.com", "2"));
    assert_true(shoal_sftp_has_extension(sf, "statvfs@openssh.com", "2"));
    assert_false(shoal_sftp_has_extension(sf, "fsync@openssh.com", NULL));
    end_client(sf);
}

static void test_version_mismatch(void **st)
{
    (void)st;
    memset(&S, 0, sizeof(S));
    shoal_buf_free(&F.sent);
    memset(&F, 0, sizeof(F));
    F.room = SIZE_MAX;
    shoal_sftp *sf;
    assert_int_equal(shoal__sftp_new_detached(&FAKE_IO, &F, &SCB, NULL, &sf), 0);
    r_begin(SSH_FXP_VERSION, 0);
    shoal_buf_put_u32(&R, 6);
    r_send(sf);
    assert_int_equal(S.ready, 1);
    assert_int_equal(S.ready_err, SHOAL_ERR_UNSUPPORTED);
    assert_true(F.closed);
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.closed, 1);
}

static void test_ops(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    pkt k;
    /* stat */
    assert_int_equal(shoal_sftp_stat(sf, "/etc/passwd", cb_stat, NULL), 0);
    expect_sent(&k, SSH_FXP_STAT);
    rd_str_eq(&k.r, "/etc/passwd");
    assert_int_equal(shoal_rd_end(&k.r), 0);
    r_begin(SSH_FXP_ATTRS, k.id);
    shoal_sftp_attrs a = {.flags = SHOAL_SFTP_ATTR_SIZE | SHOAL_SFTP_ATTR_PERMISSIONS, .size = 1234,
                          .permissions = 0100640};
    shoal__sftp_attrs_put(&R, &a);
    r_send(sf);
    assert_int_equal(S.op_done, 1);
    assert_int_equal(S.op_err, 0);
    assert_int_equal(S.attrs.size, 1234);
    assert_int_equal(S.attrs.permissions, 0100640);
    /* stat of a missing file */
    assert_int_equal(shoal_sftp_stat(sf, "/nope", cb_stat, NULL), 0);
    expect_sent(&k, SSH_FXP_STAT);
    reply_status(sf, k.id, SSH_FX_NO_SUCH_FILE, "No such file");
    assert_int_equal(S.op_done, 2);
    assert_int_equal(S.op_err, SHOAL_ERR_NOT_FOUND);
    assert_string_equal(S.op_msg, "stat /nope: no such file");
    /* realpath */
    assert_int_equal(shoal_sftp_realpath(sf, ".", cb_path, NULL), 0);
    expect_sent(&k, SSH_FXP_REALPATH);
    r_begin(SSH_FXP_NAME, k.id);
    shoal_buf_put_u32(&R, 1);
    shoal_buf_put_cstring(&R, "/home/u");
    shoal_buf_put_cstring(&R, "/home/u");
    shoal_buf_put_u32(&R, 0);
    r_send(sf);
    assert_int_equal(S.op_err, 0);
    assert_string_equal(S.path, "/home/u");
    /* mkdir with mode; remove with a server message; rename both ways */
    assert_int_equal(shoal_sftp_mkdir(sf, "/d", 0755, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_MKDIR);
    rd_str_eq(&k.r, "/d");
    shoal_sftp_attrs got;
    assert_int_equal(shoal__sftp_attrs_parse(&k.r, &got), 0);
    assert_int_equal(got.flags, SHOAL_SFTP_ATTR_PERMISSIONS);
    assert_int_equal(got.permissions, 0755);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.op_err, 0);
    assert_int_equal(shoal_sftp_remove(sf, "/f", cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_REMOVE);
    reply_status(sf, k.id, SSH_FX_PERMISSION_DENIED, "Nope\x1b[31m");
    assert_int_equal(S.op_err, SHOAL_ERR_PERMISSION);
    assert_string_equal(S.op_msg, "remove /f: permission denied (server: Nope?[31m)");
    assert_int_equal(shoal_sftp_rename(sf, "/a", "/b", SHOAL_SFTP_RENAME_POSIX, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_EXTENDED);
    rd_str_eq(&k.r, "posix-rename@openssh.com");
    rd_str_eq(&k.r, "/a");
    rd_str_eq(&k.r, "/b");
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(shoal_sftp_rename(sf, "/a", "/b", 0, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_RENAME);
    reply_status(sf, k.id, SSH_FX_FAILURE, "Failure");
    assert_int_equal(S.op_err, SHOAL_ERR_SFTP);
    /* Arguments. */
    assert_int_equal(shoal_sftp_stat(sf, "", cb_stat, NULL), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_sftp_remove(sf, NULL, cb_status, NULL), SHOAL_ERR_INVALID_ARG);
    /* A STATUS OK to a stat is no answer: protocol error. */
    int before = S.op_done;
    assert_int_equal(shoal_sftp_stat(sf, "/x", cb_stat, NULL), 0);
    expect_sent(&k, SSH_FXP_STAT);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.op_done, before + 1);
    assert_int_equal(S.op_err, SHOAL_ERR_PROTOCOL);
    assert_true(F.closed);
    assert_int_equal(shoal_sftp_stat(sf, "/x", cb_stat, NULL), SHOAL_ERR_BAD_STATE);
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.closed, 1);
}

/* ---- directory listing ---- */

static char dir_names[256][64];
static unsigned dir_n, dir_stop_after;

static int cb_entries(shoal_sftp *sf, const shoal_sftp_dirent *e, size_t n, void *ud)
{
    (void)sf;
    (void)ud;
    for (size_t i = 0; i < n && dir_n < 256; i++) {
        snprintf(dir_names[dir_n++], sizeof(dir_names[0]), "%s", e[i].name);
        assert_true(e[i].attrs.flags & SHOAL_SFTP_ATTR_PERMISSIONS);
    }
    return dir_stop_after && dir_n >= dir_stop_after;
}

static void name_reply(shoal_sftp *sf, uint32_t id, unsigned first, unsigned count)
{
    r_begin(SSH_FXP_NAME, id);
    shoal_buf_put_u32(&R, count);
    for (unsigned i = 0; i < count; i++) {
        char nm[32], ln[64];
        snprintf(nm, sizeof(nm), "f%u", first + i);
        snprintf(ln, sizeof(ln), "-rw-r--r-- 1 u u 0 Jan 1 00:00 f%u\x1b", first + i);
        shoal_buf_put_cstring(&R, nm);
        shoal_buf_put_cstring(&R, ln);
        shoal_sftp_attrs a = {.flags = SHOAL_SFTP_ATTR_PERMISSIONS, .permissions = 0100644};
        shoal__sftp_attrs_put(&R, &a);
    }
    r_send(sf);
}

static void test_listdir(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    pkt k;
    dir_n = dir_stop_after = 0;
    assert_int_equal(shoal_sftp_listdir(sf, "/d", cb_entries, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_OPENDIR);
    rd_str_eq(&k.r, "/d");
    r_begin(SSH_FXP_HANDLE, k.id);
    shoal_buf_put_string(&R, "H1", 2);
    r_send(sf);
    /* Two batches (the first above one callback's 64), then EOF, then CLOSE. */
    expect_sent(&k, SSH_FXP_READDIR);
    name_reply(sf, k.id, 0, 100);
    expect_sent(&k, SSH_FXP_READDIR);
    name_reply(sf, k.id, 100, 3);
    expect_sent(&k, SSH_FXP_READDIR);
    reply_status(sf, k.id, SSH_FX_EOF, "");
    expect_sent(&k, SSH_FXP_CLOSE);
    assert_int_equal(S.op_done, 0);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.op_done, 1);
    assert_int_equal(S.op_err, 0);
    assert_int_equal(dir_n, 103);
    assert_string_equal(dir_names[0], "f0");
    assert_string_equal(dir_names[102], "f102");
    /* The caller stops early: closed, reported as cancelled. */
    dir_n = 0;
    dir_stop_after = 2;
    assert_int_equal(shoal_sftp_listdir(sf, "/d", cb_entries, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_OPENDIR);
    r_begin(SSH_FXP_HANDLE, k.id);
    shoal_buf_put_string(&R, "H2", 2);
    r_send(sf);
    expect_sent(&k, SSH_FXP_READDIR);
    name_reply(sf, k.id, 0, 5);
    expect_sent(&k, SSH_FXP_CLOSE);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.op_err, SHOAL_ERR_CANCELLED);
    /* No such directory. */
    assert_int_equal(shoal_sftp_listdir(sf, "/none", cb_entries, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_OPENDIR);
    reply_status(sf, k.id, SSH_FX_NO_SUCH_FILE, "");
    assert_int_equal(S.op_err, SHOAL_ERR_NOT_FOUND);
    assert_string_equal(S.op_msg, "opendir /none: no such file");
    /* A count that lies about the entries: protocol error, listing ended. */
    dir_stop_after = 0;
    int before = S.op_done;
    assert_int_equal(shoal_sftp_listdir(sf, "/d", cb_entries, cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_OPENDIR);
    r_begin(SSH_FXP_HANDLE, k.id);
    shoal_buf_put_string(&R, "H3", 2);
    r_send(sf);
    expect_sent(&k, SSH_FXP_READDIR);
    r_begin(SSH_FXP_NAME, k.id);
    shoal_buf_put_u32(&R, 1000);
    shoal_buf_put_cstring(&R, "x");
    r_send(sf);
    assert_int_equal(S.op_done, before + 1);
    assert_int_equal(S.op_err, SHOAL_ERR_PROTOCOL);
    assert_true(F.closed);
    shoal__sftp_io_closed(sf);
}

static void test_request_bound(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    unsigned n = 0;
    while (shoal_sftp_stat(sf, "/x", cb_stat, NULL) == 0)
        n++;
    assert_int_equal(n, SFTP_MAX_REQS);
    assert_int_equal(shoal_sftp_stat(sf, "/x", cb_stat, NULL), SHOAL_ERR_TOO_LARGE);
    /* Closing completes every one of them. */
    end_client(sf);
    assert_int_equal(S.op_done, (int)SFTP_MAX_REQS);
    assert_int_equal(S.op_err, SHOAL_ERR_CLOSED);
}

static void test_unknown_id(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    pkt k;
    assert_int_equal(shoal_sftp_stat(sf, "/x", cb_stat, NULL), 0);
    expect_sent(&k, SSH_FXP_STAT);
    reply_status(sf, k.id + 256, SSH_FX_OK, ""); /* same slot, other id */
    assert_int_equal(S.op_done, 1);
    assert_int_equal(S.op_err, SHOAL_ERR_PROTOCOL);
    assert_non_null(strstr(S.op_msg, "unknown request id"));
    assert_true(F.closed);
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.closed, 1);
}

static void test_oversized_length(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    assert_int_equal(shoal_sftp_stat(sf, "/x", cb_stat, NULL), 0);
    /* Announced 256 KiB + 1: refused from the 4 length bytes alone. */
    static const uint8_t big[] = {0, 4, 0, 1};
    assert_int_equal(shoal__sftp_io_data(sf, big, 2), 0);
    assert_false(F.closed);
    assert_int_equal(shoal__sftp_io_data(sf, big + 2, 2), SHOAL_ERR_PROTOCOL);
    assert_true(F.closed);
    assert_int_equal(S.op_err, SHOAL_ERR_PROTOCOL);
    assert_non_null(strstr(S.op_msg, "exceeds"));
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.closed, 1);
}

static void test_byte_by_byte(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    pkt k;
    assert_int_equal(shoal_sftp_stat(sf, "/a", cb_stat, NULL), 0);
    expect_sent(&k, SSH_FXP_STAT);
    uint32_t id1 = k.id;
    assert_int_equal(shoal_sftp_remove(sf, "/b", cb_status, NULL), 0);
    expect_sent(&k, SSH_FXP_REMOVE);
    uint32_t id2 = k.id;
    shoal_buf both = SHOAL_BUF_INIT;
    r_begin(SSH_FXP_STATUS, id2);
    shoal_buf_put_u32(&R, 0);
    shoal_buf_put_cstring(&R, "ok");
    shoal_buf_put_cstring(&R, "");
    assert_int_equal(shoal__sftp_pkt_end(&R, R_mark), 0);
    shoal_buf_put(&both, shoal_buf_ptr(&R), shoal_buf_len(&R));
    r_begin(SSH_FXP_STATUS, id1);
    shoal_buf_put_u32(&R, 2);
    assert_int_equal(shoal__sftp_pkt_end(&R, R_mark), 0);
    shoal_buf_put(&both, shoal_buf_ptr(&R), shoal_buf_len(&R));
    for (size_t i = 0; i < shoal_buf_len(&both); i++)
        assert_int_equal(shoal__sftp_io_data(sf, shoal_buf_ptr(&both) + i, 1), 0);
    assert_int_equal(S.op_done, 2);
    assert_int_equal(S.op_err, SHOAL_ERR_NOT_FOUND);
    shoal_buf_free(&both);
    end_client(sf);
}

/* ---- uploads ---- */

/* Starts an upload to /srv/dir/file.txt and answers the OPEN with a
 * handle; returns the temp path through tmp. */
static shoal_sftp_put *begin_put(shoal_sftp *sf, const shoal_sftp_put_options *opt, char *tmp, size_t tmpsz)
{
    shoal_sftp_put *p;
    pkt k;
    assert_int_equal(shoal_sftp_put_begin_ex(sf, "/srv/dir/file.txt", 0640, opt, pcb_use, NULL, &p), 0);
    S.put = p;
    expect_sent(&k, SSH_FXP_OPEN);
    rd_str_get(&k.r, tmp, tmpsz);
    assert_int_equal(strncmp(tmp, "/srv/dir/.file.txt.shoal-", 25), 0);
    assert_int_equal(strlen(tmp), 25 + 16);
    assert_string_equal(tmp, shoal_sftp_put_temp_path(p));
    uint32_t pflags;
    assert_int_equal(shoal_rd_u32(&k.r, &pflags), 0);
    assert_int_equal(pflags, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC | SSH_FXF_EXCL);
    shoal_sftp_attrs a;
    assert_int_equal(shoal__sftp_attrs_parse(&k.r, &a), 0);
    assert_int_equal(a.flags, SHOAL_SFTP_ATTR_PERMISSIONS);
    assert_int_equal(a.permissions, 0640);
    assert_int_equal(shoal_rd_end(&k.r), 0);
    assert_int_equal(shoal_sftp_put_writable(p), 0); /* no handle yet */
    assert_int_equal(S.writable, 0);
    reply_handle(sf, k.id, "H1");
    assert_int_equal(S.writable, 1);
    return p;
}

/* Checks a WRITE packet: handle H1, offset, length; returns its id. */
static uint32_t expect_write(uint64_t off, size_t len)
{
    pkt k;
    expect_sent(&k, SSH_FXP_WRITE);
    rd_str_eq(&k.r, "H1");
    uint64_t o;
    assert_int_equal(shoal_rd_u64(&k.r, &o), 0);
    assert_int_equal(o, off);
    const uint8_t *d;
    size_t n;
    assert_int_equal(shoal_rd_string(&k.r, &d, &n), 0);
    assert_int_equal(n, len);
    for (size_t i = 0; i < n; i++)
        if (d[i] != (uint8_t)(off + i))
            fail_msg("byte %zu of the WRITE at %llu is wrong", i, (unsigned long long)off);
    assert_int_equal(shoal_rd_end(&k.r), 0);
    return k.id;
}

static uint8_t DATA[300000];

static void fill_data(void)
{
    for (size_t i = 0; i < sizeof(DATA); i++)
        DATA[i] = (uint8_t)i;
}

static void test_put_success_posix_rename(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 1);
    char tmp[128];
    shoal_sftp_put_options opt = {.size = sizeof(shoal_sftp_put_options), .fsync = 1};
    shoal_sftp_put *p = begin_put(sf, &opt, tmp, sizeof(tmp));
    assert_int_equal(shoal_sftp_put_writable(p), 64u * 32768u);
    size_t taken;
    assert_int_equal(shoal_sftp_put_write(p, DATA, 70000, &taken), 0);
    assert_int_equal(taken, 70000);
    assert_int_equal(shoal_sftp_put_offset(p), 70000);
    uint32_t w1 = expect_write(0, 32768);
    uint32_t w2 = expect_write(32768, 32768);
    uint32_t w3 = expect_write(65536, 70000 - 65536);
    assert_int_equal(shoal_sftp_put_finish(p), 0);
    assert_int_equal(shoal_sftp_put_write(p, DATA, 1, &taken), SHOAL_ERR_BAD_STATE);
    /* fsync, FSETSTAT and CLOSE follow the writes at once. */
    pkt k;
    expect_sent(&k, SSH_FXP_EXTENDED);
    rd_str_eq(&k.r, "fsync@openssh.com");
    rd_str_eq(&k.r, "H1");
    uint32_t fs = k.id;
    expect_sent(&k, SSH_FXP_FSETSTAT);
    rd_str_eq(&k.r, "H1");
    shoal_sftp_attrs a;
    assert_int_equal(shoal__sftp_attrs_parse(&k.r, &a), 0);
    assert_int_equal(a.permissions, 0640);
    uint32_t fset = k.id;
    expect_sent(&k, SSH_FXP_CLOSE);
    rd_str_eq(&k.r, "H1");
    uint32_t cl = k.id;
    /* Replies out of order are fine. */
    reply_status(sf, w2, SSH_FX_OK, "");
    reply_status(sf, w1, SSH_FX_OK, "");
    reply_status(sf, fs, SSH_FX_OK, "");
    reply_status(sf, w3, SSH_FX_OK, "");
    reply_status(sf, fset, SSH_FX_OK, "");
    assert_false(next_sent(&k)); /* nothing before CLOSE is acknowledged */
    reply_status(sf, cl, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_EXTENDED);
    rd_str_eq(&k.r, "posix-rename@openssh.com");
    rd_str_eq(&k.r, tmp);
    rd_str_eq(&k.r, "/srv/dir/file.txt");
    assert_int_equal(S.done, 0);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, 0);
    assert_false(next_sent(&k));
    end_client(sf);
}

/* With on_closed_temp the closed file waits under its temporary name:
 * commit renames it, fail removes it and reports the caller's error. */
static void held_upload(shoal_sftp *sf, char *tmp, size_t tmpsz, uint32_t *close_id)
{
    pcb_use = &PCB_HOLD;
    held_calls = 0;
    shoal_sftp_put *p = begin_put(sf, NULL, tmp, tmpsz);
    pcb_use = &PCB;
    size_t taken;
    assert_int_equal(shoal_sftp_put_write(p, DATA, 100, &taken), 0);
    uint32_t w = expect_write(0, 100);
    assert_int_equal(shoal_sftp_put_commit(p), SHOAL_ERR_BAD_STATE); /* not closed yet */
    assert_int_equal(shoal_sftp_put_finish(p), 0);
    pkt k;
    expect_sent(&k, SSH_FXP_FSETSTAT);
    uint32_t fset = k.id;
    expect_sent(&k, SSH_FXP_CLOSE);
    *close_id = k.id;
    reply_status(sf, w, SSH_FX_OK, "");
    reply_status(sf, fset, SSH_FX_OK, "");
}

static void test_put_held_commit(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    uint32_t cl;
    held_upload(sf, tmp, sizeof(tmp), &cl);
    assert_int_equal(held_calls, 0);
    reply_status(sf, cl, SSH_FX_OK, "");
    assert_int_equal(held_calls, 1);
    assert_string_equal(held_path, tmp);
    pkt k;
    assert_false(next_sent(&k)); /* nothing renamed until the caller says so */
    assert_int_equal(S.done, 0);
    assert_int_equal(shoal_sftp_put_commit(S.put), 0);
    expect_sent(&k, SSH_FXP_EXTENDED);
    rd_str_eq(&k.r, "posix-rename@openssh.com");
    rd_str_eq(&k.r, tmp);
    rd_str_eq(&k.r, "/srv/dir/file.txt");
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, 0);
    end_client(sf);
}

static void test_put_held_fail(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    uint32_t cl;
    held_upload(sf, tmp, sizeof(tmp), &cl);
    reply_status(sf, cl, SSH_FX_OK, "");
    assert_int_equal(held_calls, 1);
    shoal_sftp_put_fail(S.put, SHOAL_ERR_MAC, "sha256 differs");
    pkt k;
    expect_sent(&k, SSH_FXP_REMOVE); /* the temporary file, never the target */
    rd_str_eq(&k.r, tmp);
    assert_int_equal(S.done, 0);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_MAC);
    assert_non_null(strstr(S.done_msg, "sha256 differs"));
    assert_false(next_sent(&k));
    end_client(sf);
}

static void test_put_write_failure_removes_temp(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    shoal_sftp_put *p = begin_put(sf, NULL, tmp, sizeof(tmp));
    size_t taken;
    assert_int_equal(shoal_sftp_put_write(p, DATA, 3 * 32768, &taken), 0);
    uint32_t w1 = expect_write(0, 32768);
    uint32_t w2 = expect_write(32768, 32768);
    uint32_t w3 = expect_write(65536, 32768);
    reply_status(sf, w1, SSH_FX_OK, "");
    reply_status(sf, w2, SSH_FX_FAILURE, "No space left on device");
    /* The handle is closed at once; writing is over. */
    pkt k;
    expect_sent(&k, SSH_FXP_CLOSE);
    uint32_t cl = k.id;
    assert_int_equal(shoal_sftp_put_writable(p), 0);
    assert_int_equal(shoal_sftp_put_write(p, DATA, 1, &taken), SHOAL_ERR_BAD_STATE);
    assert_int_equal(shoal_sftp_put_finish(p), 0);
    reply_status(sf, cl, SSH_FX_OK, "");
    assert_false(next_sent(&k)); /* w3 still outstanding */
    reply_status(sf, w3, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_REMOVE);
    rd_str_eq(&k.r, tmp);
    assert_int_equal(S.done, 0);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_SFTP);
    assert_non_null(strstr(S.done_msg, "/srv/dir/file.txt: write to /srv/dir/.file.txt.shoal-"));
    assert_non_null(strstr(S.done_msg, "failure (server: No space left on device)"));
    /* Never renamed. */
    assert_false(next_sent(&k));
    end_client(sf);
}

static void test_put_open_failure(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    shoal_sftp_put *p;
    pkt k;
    assert_int_equal(shoal_sftp_put_begin(sf, "relative-name", 0600, &PCB, NULL, &p), 0);
    expect_sent(&k, SSH_FXP_OPEN);
    char tmp[128];
    rd_str_get(&k.r, tmp, sizeof(tmp));
    assert_int_equal(strncmp(tmp, ".relative-name.shoal-", 21), 0);
    reply_status(sf, k.id, SSH_FX_PERMISSION_DENIED, "Permission denied");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_PERMISSION);
    assert_non_null(strstr(S.done_msg, "relative-name: cannot create temporary file .relative-name.shoal-"));
    assert_false(next_sent(&k)); /* nothing to close or remove */
    assert_int_equal(S.writable, 0);
    /* Bad targets. */
    assert_int_equal(shoal_sftp_put_begin(sf, "/srv/dir/", 0600, &PCB, NULL, &p), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_sftp_put_begin(sf, "", 0600, &PCB, NULL, &p), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_sftp_put_begin(sf, "/a/..", 0600, &PCB, NULL, &p), SHOAL_ERR_INVALID_ARG);
    end_client(sf);
}

static void test_put_rename_fallback(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(0, 0);
    char tmp[128];
    shoal_sftp_put *p = begin_put(sf, NULL, tmp, sizeof(tmp));
    /* An empty file: finish right away. */
    assert_int_equal(shoal_sftp_put_finish(p), 0);
    pkt k;
    expect_sent(&k, SSH_FXP_FSETSTAT); /* no fsync: not asked for */
    uint32_t fset = k.id;
    expect_sent(&k, SSH_FXP_CLOSE);
    reply_status(sf, fset, SSH_FX_OK, "");
    reply_status(sf, k.id, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_REMOVE);
    rd_str_eq(&k.r, "/srv/dir/file.txt");
    assert_non_null(strstr(S.log, "not atomic"));
    reply_status(sf, k.id, SSH_FX_NO_SUCH_FILE, "No such file");
    expect_sent(&k, SSH_FXP_RENAME);
    rd_str_eq(&k.r, tmp);
    rd_str_eq(&k.r, "/srv/dir/file.txt");
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, 0);
    end_client(sf);
}

static void test_put_rename_failure(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    shoal_sftp_put *p = begin_put(sf, NULL, tmp, sizeof(tmp));
    assert_int_equal(shoal_sftp_put_finish(p), 0);
    pkt k;
    expect_sent(&k, SSH_FXP_FSETSTAT);
    reply_status(sf, k.id, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_CLOSE);
    reply_status(sf, k.id, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_EXTENDED);
    reply_status(sf, k.id, SSH_FX_FAILURE, "Is a directory");
    expect_sent(&k, SSH_FXP_REMOVE);
    rd_str_eq(&k.r, tmp);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_SFTP);
    assert_non_null(strstr(S.done_msg, "cannot rename /srv/dir/.file.txt.shoal-"));
    assert_non_null(strstr(S.done_msg, "Is a directory"));
    end_client(sf);
}

static void test_put_flow_control(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    shoal_sftp_put_options opt = {.size = sizeof(shoal_sftp_put_options), .max_writes = 4, .write_size = 1000};
    shoal_sftp_put *p = begin_put(sf, &opt, tmp, sizeof(tmp));
    /* Slots: 4 x 1000. */
    assert_int_equal(shoal_sftp_put_writable(p), 4000);
    size_t taken;
    assert_int_equal(shoal_sftp_put_write(p, DATA, 10000, &taken), 0);
    assert_int_equal(taken, 4000);
    assert_int_equal(shoal_sftp_put_writable(p), 0);
    uint32_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = expect_write((uint64_t)i * 1000, 1000);
    int w = S.writable;
    reply_status(sf, ids[0], SSH_FX_OK, "");
    assert_int_equal(S.writable, w + 1);
    assert_int_equal(shoal_sftp_put_writable(p), 1000);
    /* The channel's room: none at all, then less than one packet. */
    F.room = 0;
    assert_int_equal(shoal_sftp_put_writable(p), 0);
    F.room = 100;
    assert_int_equal(shoal_sftp_put_writable(p), 1000); /* one packet, staged */
    int armed = F.armed;
    assert_int_equal(shoal_sftp_put_write(p, DATA + 4000, 1000, &taken), 0);
    assert_int_equal(taken, 1000);
    assert_true(F.armed > armed);
    assert_int_equal(shoal_buf_len(&F.sent), 100);
    assert_int_equal(shoal_sftp_put_writable(p), 0); /* staged bytes first */
    F.room = SIZE_MAX;
    shoal__sftp_io_writable(sf);
    uint32_t id5 = expect_write(4000, 1000);
    for (int i = 1; i < 4; i++)
        reply_status(sf, ids[i], SSH_FX_OK, "");
    reply_status(sf, id5, SSH_FX_OK, "");
    assert_int_equal(shoal_sftp_put_writable(p), 4000);
    shoal_sftp_put_abort(p);
    pkt k;
    expect_sent(&k, SSH_FXP_CLOSE);
    reply_status(sf, k.id, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_REMOVE);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_CANCELLED);
    end_client(sf);
}

static void test_put_abort_before_handle(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    shoal_sftp_put *p;
    pkt k;
    assert_int_equal(shoal_sftp_put_begin(sf, "/x/y", 0600, &PCB, NULL, &p), 0);
    expect_sent(&k, SSH_FXP_OPEN);
    char tmp[64];
    rd_str_get(&k.r, tmp, sizeof(tmp));
    shoal_sftp_put_abort(p);
    assert_int_equal(S.done, 0); /* the OPEN is still out */
    reply_handle(sf, k.id, "HX");
    assert_int_equal(S.writable, 0);
    expect_sent(&k, SSH_FXP_CLOSE);
    rd_str_eq(&k.r, "HX");
    reply_status(sf, k.id, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_REMOVE);
    rd_str_eq(&k.r, tmp);
    reply_status(sf, k.id, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_CANCELLED);
    end_client(sf);
}

static void test_put_abort_in_callback(void **st)
{
    (void)st;
    shoal_sftp *sf = new_client(1, 0);
    S.abort_in_writable = 1;
    shoal_sftp_put *p;
    pkt k;
    assert_int_equal(shoal_sftp_put_begin(sf, "/x/y", 0600, &PCB, NULL, &p), 0);
    S.abort_in_writable = 1;
    expect_sent(&k, SSH_FXP_OPEN);
    reply_handle(sf, k.id, "HX");
    assert_int_equal(S.writable, 1);
    expect_sent(&k, SSH_FXP_CLOSE);
    reply_status(sf, k.id, SSH_FX_OK, "");
    expect_sent(&k, SSH_FXP_REMOVE);
    reply_status(sf, k.id, SSH_FX_FAILURE, "busy");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_CANCELLED);
    assert_non_null(strstr(S.done_msg, "not removed"));
    end_client(sf);
}

static void test_put_channel_lost(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    shoal_sftp_put *p = begin_put(sf, NULL, tmp, sizeof(tmp));
    size_t taken;
    assert_int_equal(shoal_sftp_put_write(p, DATA, 1000, &taken), 0);
    assert_int_equal(shoal_sftp_stat(sf, "/x", cb_stat, NULL), 0);
    /* The channel goes away under us. */
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_CLOSED);
    assert_non_null(strstr(S.done_msg, "may remain"));
    assert_int_equal(S.op_err, SHOAL_ERR_CLOSED);
    assert_int_equal(S.closed, 1);
}

static void test_put_unknown_id_fails_upload(void **st)
{
    (void)st;
    fill_data();
    shoal_sftp *sf = new_client(1, 0);
    char tmp[128];
    shoal_sftp_put *p = begin_put(sf, NULL, tmp, sizeof(tmp));
    size_t taken;
    assert_int_equal(shoal_sftp_put_write(p, DATA, 10, &taken), 0);
    reply_status(sf, 0xdeadbe00u, SSH_FX_OK, "");
    assert_int_equal(S.done, 1);
    assert_int_equal(S.done_err, SHOAL_ERR_PROTOCOL);
    assert_non_null(strstr(S.done_msg, "unknown request id"));
    assert_true(F.closed);
    shoal__sftp_io_closed(sf);
    assert_int_equal(S.closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_attrs_roundtrip, teardown),
        cmocka_unit_test_teardown(test_frame, teardown),
        cmocka_unit_test_teardown(test_parse_reply, teardown),
        cmocka_unit_test_teardown(test_parse_version, teardown),
        cmocka_unit_test_teardown(test_handshake_and_extensions, teardown),
        cmocka_unit_test_teardown(test_version_mismatch, teardown),
        cmocka_unit_test_teardown(test_ops, teardown),
        cmocka_unit_test_teardown(test_listdir, teardown),
        cmocka_unit_test_teardown(test_request_bound, teardown),
        cmocka_unit_test_teardown(test_unknown_id, teardown),
        cmocka_unit_test_teardown(test_oversized_length, teardown),
        cmocka_unit_test_teardown(test_byte_by_byte, teardown),
        cmocka_unit_test_teardown(test_put_success_posix_rename, teardown),
        cmocka_unit_test_teardown(test_put_held_commit, teardown),
        cmocka_unit_test_teardown(test_put_held_fail, teardown),
        cmocka_unit_test_teardown(test_put_write_failure_removes_temp, teardown),
        cmocka_unit_test_teardown(test_put_open_failure, teardown),
        cmocka_unit_test_teardown(test_put_rename_fallback, teardown),
        cmocka_unit_test_teardown(test_put_rename_failure, teardown),
        cmocka_unit_test_teardown(test_put_flow_control, teardown),
        cmocka_unit_test_teardown(test_put_abort_before_handle, teardown),
        cmocka_unit_test_teardown(test_put_abort_in_callback, teardown),
        cmocka_unit_test_teardown(test_put_channel_lost, teardown),
        cmocka_unit_test_teardown(test_put_unknown_id_fails_upload, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
