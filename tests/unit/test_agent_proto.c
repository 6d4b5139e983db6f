/* ssh-agent protocol messages: exact encodings, framing, parsing of hostile
 * replies (truncation at every length, oversized counts, failures), and a
 * round trip against a real OpenSSH ssh-agent over its Unix socket. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/agent_proto.h"
#include "keys/key.h"

/* snprintf into an array that must not truncate (checking the result also
 * tells GCC's -Wformat-truncation that truncation is handled). */
#define FMT(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

/* ---- helpers ---- */

typedef struct collected {
    int count;
    shoal_agent_identity ids[4];
    int stop_at; /* callback returns 99 at this index (-1: never) */
} collected;

static int collect_cb(void *ud, const shoal_agent_identity *id)
{
    collected *c = ud;
    if (c->count == c->stop_at)
        return 99;
    if (c->count < 4)
        c->ids[c->count] = *id;
    c->count++;
    return 0;
}

/* IDENTITIES_ANSWER body with two identities. */
static void build_answer(shoal_buf *b)
{
    shoal_buf_init(b, 0);
    assert_int_equal(shoal_buf_put_u8(b, SSH_AGENT_IDENTITIES_ANSWER), 0);
    assert_int_equal(shoal_buf_put_u32(b, 2), 0);
    assert_int_equal(shoal_buf_put_string(b, "blob-one", 8), 0);
    assert_int_equal(shoal_buf_put_cstring(b, "first key"), 0);
    assert_int_equal(shoal_buf_put_string(b, "\x00\x01\x02", 3), 0);
    assert_int_equal(shoal_buf_put_cstring(b, ""), 0);
}

/* ---- encodings ---- */

static void test_build_requests(void **st)
{
    (void)st;
    shoal_buf b;
    shoal_buf_init(&b, 0);
    assert_int_equal(shoal_agent_build_request_identities(&b), 0);
    assert_int_equal(shoal_buf_len(&b), 5);
    assert_memory_equal(shoal_buf_ptr(&b), "\0\0\0\1\x0b", 5);

    shoal_buf_reset(&b);
    assert_int_equal(shoal_agent_build_sign_request(&b, (const uint8_t *)"KEY", 3, (const uint8_t *)"data!", 5,
                                                    SSH_AGENT_RSA_SHA2_256),
                     0);
    const uint8_t want[] = {0, 0, 0, 21, 13, 0, 0, 0, 3, 'K', 'E', 'Y', 0, 0, 0,
                            5, 'd', 'a', 't', 'a', '!', 0, 0, 0, 2};
    assert_int_equal(shoal_buf_len(&b), sizeof(want));
    assert_memory_equal(shoal_buf_ptr(&b), want, sizeof(want));

    /* Requests append after whatever is already buffered. */
    assert_int_equal(shoal_agent_build_request_identities(&b), 0);
    assert_int_equal(shoal_buf_len(&b), sizeof(want) + 5);

    /* Too large for the agent: refused, buffer untouched. */
    size_t before = shoal_buf_len(&b);
    uint8_t *big = calloc(1, SHOAL_AGENT_MAX_MSG);
    assert_non_null(big);
    assert_int_equal(shoal_agent_build_sign_request(&b, (const uint8_t *)"K", 1, big, SHOAL_AGENT_MAX_MSG - 10, 0),
                     SHOAL_ERR_TOO_LARGE);
    assert_int_equal(shoal_buf_len(&b), before);
    free(big);
    assert_int_equal(shoal_agent_build_sign_request(&b, NULL, 0, (const uint8_t *)"x", 1, 0), SHOAL_ERR_INVALID_ARG);
    /* A small output cap: the partial message is rolled back. */
    shoal_buf small;
    shoal_buf_init(&small, 12);
    assert_int_equal(shoal_agent_build_sign_request(&small, (const uint8_t *)"KEY", 3, (const uint8_t *)"d", 1, 0),
                     SHOAL_ERR_TOO_LARGE);
    assert_int_equal(shoal_buf_len(&small), 0);
    shoal_buf_free(&small);
    shoal_buf_free(&b);
}

static void test_frame(void **st)
{
    (void)st;
    size_t m = 99;
    const uint8_t two[] = {0, 0, 0, 1, 5, 0, 0, 0, 2, 14};
    for (size_t n = 0; n < 5; n++) {
        assert_int_equal(shoal_agent_frame(two, n, &m), 0);
        assert_int_equal(m, 0);
    }
    assert_int_equal(shoal_agent_frame(two, 5, &m), 0);
    assert_int_equal(m, 5);
    /* Extra bytes of the next message do not change the first frame. */
    assert_int_equal(shoal_agent_frame(two, sizeof(two), &m), 0);
    assert_int_equal(m, 5);
    assert_int_equal(shoal_agent_frame(two + 5, 4, &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(shoal_agent_frame(two + 5, 5, &m), 0);
    assert_int_equal(m, 0); /* needs 6 */

    /* The cap is checked on the header alone. */
    uint8_t hdr[4];
    shoal_store_u32(hdr, SHOAL_AGENT_MAX_MSG + 1);
    assert_int_equal(shoal_agent_frame(hdr, 4, &m), SHOAL_ERR_TOO_LARGE);
    shoal_store_u32(hdr, 0xffffffffu);
    assert_int_equal(shoal_agent_frame(hdr, 4, &m), SHOAL_ERR_TOO_LARGE);
    shoal_store_u32(hdr, SHOAL_AGENT_MAX_MSG);
    assert_int_equal(shoal_agent_frame(hdr, 4, &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(shoal_agent_frame(NULL, 0, &m), 0);
    assert_int_equal(shoal_agent_frame(NULL, 3, &m), SHOAL_ERR_INVALID_ARG);
}

/* ---- identities answer ---- */

static void test_identities_roundtrip(void **st)
{
    (void)st;
    shoal_buf b;
    build_answer(&b);
    collected c = {0, {{0}}, -1};
    assert_int_equal(shoal_agent_parse_identities(shoal_buf_ptr(&b), shoal_buf_len(&b), collect_cb, &c), 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.ids[0].blob_len, 8);
    assert_memory_equal(c.ids[0].blob, "blob-one", 8);
    assert_int_equal(c.ids[0].comment_len, 9);
    assert_memory_equal(c.ids[0].comment, "first key", 9);
    assert_int_equal(c.ids[1].blob_len, 3);
    assert_memory_equal(c.ids[1].blob, "\x00\x01\x02", 3);
    assert_int_equal(c.ids[1].comment_len, 0);

    /* The callback's non-zero result stops the walk and is returned. */
    collected s = {0, {{0}}, 1};
    assert_int_equal(shoal_agent_parse_identities(shoal_buf_ptr(&b), shoal_buf_len(&b), collect_cb, &s), 99);
    assert_int_equal(s.count, 1);

    /* Zero identities is a valid answer. */
    const uint8_t none[] = {SSH_AGENT_IDENTITIES_ANSWER, 0, 0, 0, 0};
    collected z = {0, {{0}}, -1};
    assert_int_equal(shoal_agent_parse_identities(none, sizeof(none), collect_cb, &z), 0);
    assert_int_equal(z.count, 0);
    shoal_buf_free(&b);
}

static void test_identities_truncated_and_trailing(void **st)
{
    (void)st;
    shoal_buf b;
    build_answer(&b);
    size_t len = shoal_buf_len(&b);
    /* Copy each prefix into its own allocation so ASan catches overreads. */
    for (size_t n = 0; n < len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, shoal_buf_ptr(&b), n);
        collected c = {0, {{0}}, -1};
        int rc = shoal_agent_parse_identities(p, n, collect_cb, &c);
        assert_true(rc < 0);
        /* Nothing from a broken reply reaches the caller. */
        assert_int_equal(c.count, 0);
        free(p);
    }
    assert_int_equal(shoal_buf_put_u8(&b, 0), 0);
    collected c = {0, {{0}}, -1};
    assert_int_equal(shoal_agent_parse_identities(shoal_buf_ptr(&b), shoal_buf_len(&b), collect_cb, &c),
                     SHOAL_ERR_TRAILING);
    assert_int_equal(c.count, 0);
    shoal_buf_free(&b);
}

static void test_identities_bad(void **st)
{
    (void)st;
    collected c = {0, {{0}}, -1};
    /* Count above the cap. */
    uint8_t many[5] = {SSH_AGENT_IDENTITIES_ANSWER};
    shoal_store_u32(many + 1, SHOAL_AGENT_MAX_KEYS + 1);
    assert_int_equal(shoal_agent_parse_identities(many, sizeof(many), collect_cb, &c), SHOAL_ERR_TOO_LARGE);
    shoal_store_u32(many + 1, 0xffffffffu);
    assert_int_equal(shoal_agent_parse_identities(many, sizeof(many), collect_cb, &c), SHOAL_ERR_TOO_LARGE);
    /* A count within the cap but with no bytes behind it. */
    shoal_store_u32(many + 1, SHOAL_AGENT_MAX_KEYS);
    assert_int_equal(shoal_agent_parse_identities(many, sizeof(many), collect_cb, &c), SHOAL_ERR_TRUNCATED);

    /* Agent failure codes (OpenSSH's own plus the two legacy ones). */
    const uint8_t fail[] = {SSH_AGENT_FAILURE}, fail30[] = {30}, fail102[] = {102};
    assert_int_equal(shoal_agent_parse_identities(fail, 1, collect_cb, &c), SHOAL_ERR_AGENT);
    assert_int_equal(shoal_agent_parse_identities(fail30, 1, collect_cb, &c), SHOAL_ERR_AGENT);
    assert_int_equal(shoal_agent_parse_identities(fail102, 1, collect_cb, &c), SHOAL_ERR_AGENT);
    /* Any other type is a protocol error, including a sign response. */
    const uint8_t other[] = {SSH_AGENT_SIGN_RESPONSE, 0, 0, 0, 0};
    assert_int_equal(shoal_agent_parse_identities(other, sizeof(other), collect_cb, &c), SHOAL_ERR_PROTOCOL);
    assert_int_equal(shoal_agent_parse_identities(NULL, 0, collect_cb, &c), SHOAL_ERR_TRUNCATED);

    /* Comment with a NUL, and an empty key blob. */
    shoal_buf b;
    shoal_buf_init(&b, 0);
    shoal_buf_put_u8(&b, SSH_AGENT_IDENTITIES_ANSWER);
    shoal_buf_put_u32(&b, 1);
    shoal_buf_put_string(&b, "k", 1);
    shoal_buf_put_string(&b, "a\0b", 3);
    assert_int_equal(shoal_agent_parse_identities(shoal_buf_ptr(&b), shoal_buf_len(&b), collect_cb, &c),
                     SHOAL_ERR_BAD_FORMAT);
    shoal_buf_reset(&b);
    shoal_buf_put_u8(&b, SSH_AGENT_IDENTITIES_ANSWER);
    shoal_buf_put_u32(&b, 1);
    shoal_buf_put_string(&b, "", 0);
    shoal_buf_put_string(&b, "c", 1);
    assert_int_equal(shoal_agent_parse_identities(shoal_buf_ptr(&b), shoal_buf_len(&b), collect_cb, &c),
                     SHOAL_ERR_BAD_FORMAT);
    assert_int_equal(c.count, 0);
    shoal_buf_free(&b);
}

/* ---- sign response ---- */

static void test_sign_response(void **st)
{
    (void)st;
    shoal_buf b;
    shoal_buf_init(&b, 0);
    shoal_buf_put_u8(&b, SSH_AGENT_SIGN_RESPONSE);
    shoal_buf_put_string(&b, "SIGNATURE", 9);
    const uint8_t *sig;
    size_t n;
    assert_int_equal(shoal_agent_parse_sign_response(shoal_buf_ptr(&b), shoal_buf_len(&b), &sig, &n), 0);
    assert_int_equal(n, 9);
    assert_memory_equal(sig, "SIGNATURE", 9);
    for (size_t k = 0; k < shoal_buf_len(&b); k++) {
        uint8_t *p = malloc(k ? k : 1);
        assert_non_null(p);
        memcpy(p, shoal_buf_ptr(&b), k);
        assert_true(shoal_agent_parse_sign_response(p, k, &sig, &n) < 0);
        assert_null(sig);
        assert_int_equal(n, 0);
        free(p);
    }
    shoal_buf_put_u8(&b, 0);
    assert_int_equal(shoal_agent_parse_sign_response(shoal_buf_ptr(&b), shoal_buf_len(&b), &sig, &n),
                     SHOAL_ERR_TRAILING);
    const uint8_t fail[] = {SSH_AGENT_FAILURE};
    assert_int_equal(shoal_agent_parse_sign_response(fail, 1, &sig, &n), SHOAL_ERR_AGENT);
    const uint8_t other[] = {SSH_AGENT_IDENTITIES_ANSWER, 0, 0, 0, 0};
    assert_int_equal(shoal_agent_parse_sign_response(other, sizeof(other), &sig, &n), SHOAL_ERR_PROTOCOL);
    const uint8_t empty[] = {SSH_AGENT_SIGN_RESPONSE, 0, 0, 0, 0};
    assert_int_equal(shoal_agent_parse_sign_response(empty, sizeof(empty), &sig, &n), SHOAL_ERR_BAD_FORMAT);
    shoal_buf_free(&b);
}

/* ---- interop with OpenSSH's ssh-agent ---- */

static char *g_dir;
static pid_t g_agent = -1;

static int agent_setup(void **st)
{
    (void)st;
    g_dir = tu_mkdtemp();
    return 0;
}

/* Runs even when the test fails, so no agent outlives the test. */
static int agent_teardown(void **st)
{
    (void)st;
    if (g_agent > 0) {
        kill(g_agent, SIGTERM);
        waitpid(g_agent, NULL, 0);
        g_agent = -1;
    }
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sends one framed request and reads one framed reply into *reply (body only). */
static void agent_roundtrip(int fd, const shoal_buf *req, shoal_buf *reply)
{
    const uint8_t *p = shoal_buf_ptr(req);
    size_t left = shoal_buf_len(req);
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        p += w;
        left -= (size_t)w;
    }
    shoal_buf_reset(reply);
    size_t msg_len = 0;
    for (;;) {
        assert_int_equal(shoal_agent_frame(shoal_buf_ptr(reply), shoal_buf_len(reply), &msg_len), 0);
        if (msg_len)
            break;
        uint8_t tmp[512];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r > 0); /* EOF or timeout would be a failure */
        assert_int_equal(shoal_buf_put(reply, tmp, (size_t)r), 0);
    }
    /* One request, one reply: nothing may follow. */
    assert_int_equal(msg_len, shoal_buf_len(reply));
    shoal_buf_consume(reply, 4);
}

typedef struct find_ctx {
    const shoal_buf *want;
    int found;
    char comment[64];
} find_ctx;

static int find_cb(void *ud, const shoal_agent_identity *id)
{
    find_ctx *f = ud;
    if (id->blob_len == shoal_buf_len(f->want) && memcmp(id->blob, shoal_buf_ptr(f->want), id->blob_len) == 0) {
        f->found++;
        size_t n = id->comment_len < sizeof(f->comment) - 1 ? id->comment_len : sizeof(f->comment) - 1;
        memcpy(f->comment, id->comment, n);
        f->comment[n] = 0;
    }
    return 0;
}

/* Verifies an ssh-ed25519 signature blob with libcrypto directly (the key
 * module is not needed for this): blob = string "ssh-ed25519" || string pub,
 * sig = string "ssh-ed25519" || string sig64. */
static void verify_ed25519(const shoal_buf *blob, const uint8_t *sig, size_t sig_len, const uint8_t *data,
                           size_t data_len)
{
    shoal_rd r;
    const char *name;
    size_t nlen;
    const uint8_t *pub, *raw;
    size_t publen, rawlen;
    shoal_rd_init(&r, shoal_buf_ptr(blob), shoal_buf_len(blob));
    assert_int_equal(shoal_rd_cstring(&r, &name, &nlen), 0);
    assert_int_equal(shoal_rd_string(&r, &pub, &publen), 0);
    assert_int_equal(publen, 32);
    shoal_rd_init(&r, sig, sig_len);
    assert_int_equal(shoal_rd_cstring(&r, &name, &nlen), 0);
    assert_int_equal(nlen, 11);
    assert_memory_equal(name, "ssh-ed25519", 11);
    assert_int_equal(shoal_rd_string(&r, &raw, &rawlen), 0);
    assert_int_equal(rawlen, 64);
    assert_int_equal(shoal_rd_end(&r), 0);

    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, publen);
    assert_non_null(pk);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
    assert_int_equal(EVP_DigestVerify(md, raw, rawlen, data, data_len), 1);
    /* And a flipped byte of data does not verify. */
    uint8_t *bad = malloc(data_len);
    assert_non_null(bad);
    memcpy(bad, data, data_len);
    bad[0] ^= 1;
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
    assert_int_not_equal(EVP_DigestVerify(md, raw, rawlen, bad, data_len), 1);
    free(bad);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
}

static void test_real_agent(void **st)
{
    (void)st;
    if (!tu_have("ssh-agent") || !tu_have("ssh-add") || !tu_have("ssh-keygen"))
        skip();
    char sock[600], key[600], pubpath[600];
    FMT(sock, "%s/agent.sock", g_dir);
    FMT(key, "%s/id_ed25519", g_dir);
    FMT(pubpath, "%s.pub", key);
    if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        skip(); /* TMPDIR too long for a Unix socket path */
    assert_int_equal(tu_system("ssh-keygen -q -t ed25519 -N '' -C agent-test-key -f '%s' </dev/null >/dev/null", key),
                     0);

    /* -D keeps the agent in the foreground so its pid is the child's pid. */
    g_agent = fork();
    assert_true(g_agent >= 0);
    if (g_agent == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("ssh-agent", "ssh-agent", "-D", "-a", sock, (char *)NULL);
        _exit(127);
    }
    /* The socket file appears at bind(), before listen(): wait until the
     * agent answers (ssh-add -l: 0 or 1 = answered, 2 = no connection). */
    int up = 0;
    for (int i = 0; i < 200 && !up; i++) {
        int rc = tu_system("SSH_AUTH_SOCK='%s' ssh-add -l </dev/null >/dev/null 2>&1", sock);
        if (rc == 0 || rc == 1)
            up = 1;
        else
            sleep_ms(50);
    }
    assert_true(up);
    assert_int_equal(tu_system("SSH_AUTH_SOCK='%s' ssh-add -q '%s' </dev/null >/dev/null 2>&1", sock, key), 0);

    /* The public blob we expect the agent to list. */
    char type[64], b64[1024];
    size_t n;
    char *pubtxt = (char *)tu_read_file(pubpath, &n);
    assert_non_null(pubtxt);
    assert_int_equal(sscanf(pubtxt, "%63s %1023s", type, b64), 2);
    free(pubtxt);
    shoal_buf blob;
    shoal_buf_init(&blob, 0);
    assert_int_equal(shoal_base64_decode(b64, strlen(b64), &blob), 0);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0}; /* a stuck agent fails the test instead of hanging it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);

    shoal_buf req, reply;
    shoal_buf_init(&req, 0);
    shoal_buf_init(&reply, SHOAL_AGENT_MAX_MSG + 4);
    assert_int_equal(shoal_agent_build_request_identities(&req), 0);
    agent_roundtrip(fd, &req, &reply);
    find_ctx f = {&blob, 0, {0}};
    assert_int_equal(shoal_agent_parse_identities(shoal_buf_ptr(&reply), shoal_buf_len(&reply), find_cb, &f), 0);
    assert_int_equal(f.found, 1);
    assert_string_equal(f.comment, "agent-test-key");

    /* Sign something the way userauth would, then check the signature. */
    const uint8_t data[] = "session-id || SSH_MSG_USERAUTH_REQUEST ...";
    shoal_buf_reset(&req);
    assert_int_equal(
        shoal_agent_build_sign_request(&req, shoal_buf_ptr(&blob), shoal_buf_len(&blob), data, sizeof(data), 0), 0);
    agent_roundtrip(fd, &req, &reply);
    const uint8_t *sig;
    size_t sig_len;
    assert_int_equal(shoal_agent_parse_sign_response(shoal_buf_ptr(&reply), shoal_buf_len(&reply), &sig, &sig_len),
                     0);
    verify_ed25519(&blob, sig, sig_len, data, sizeof(data));

    /* A key the agent does not hold: the agent answers SSH_AGENT_FAILURE. */
    uint8_t *other = malloc(shoal_buf_len(&blob));
    assert_non_null(other);
    memcpy(other, shoal_buf_ptr(&blob), shoal_buf_len(&blob));
    other[shoal_buf_len(&blob) - 1] ^= 0x55;
    shoal_buf_reset(&req);
    assert_int_equal(shoal_agent_build_sign_request(&req, other, shoal_buf_len(&blob), data, sizeof(data), 0), 0);
    free(other);
    agent_roundtrip(fd, &req, &reply);
    assert_int_equal(shoal_agent_parse_sign_response(shoal_buf_ptr(&reply), shoal_buf_len(&reply), &sig, &sig_len),
                     SHOAL_ERR_AGENT);

    close(fd);
    shoal_buf_free(&req);
    shoal_buf_free(&reply);
    shoal_buf_free(&blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_requests),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_identities_roundtrip),
        cmocka_unit_test(test_identities_truncated_and_trailing),
        cmocka_unit_test(test_identities_bad),
        cmocka_unit_test(test_sign_response),
        cmocka_unit_test_setup_teardown(test_real_agent, agent_setup, agent_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
