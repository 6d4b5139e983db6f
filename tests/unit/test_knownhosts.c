/* known_hosts: pattern matching, hashed entries (checked against OpenSSH's
 * own ssh-keygen -H / -F), markers, status precedence, malformed input and
 * appending. Keys are generated with ssh-keygen at test time. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "keys/key.h"
#include "shoal/knownhosts.h"

/* snprintf into an array that must not truncate (checking the result also
 * tells GCC's -Wformat-truncation that truncation is handled). */
#define FMT(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

typedef struct tkey {
    char type[64];
    char b64[1024];
    shoal_buf blob;
} tkey;

/* k1, k2: ed25519; k3: ecdsa-sha2-nistp256. */
static char *g_dir;
static tkey g_k1, g_k2, g_k3;
static int g_have_keygen;

/* Loads "type base64 comment" from a .pub file. */
static void load_pub(const char *path, tkey *k)
{
    size_t n;
    char *txt = (char *)tu_read_file(path, &n);
    assert_non_null(txt);
    assert_int_equal(sscanf(txt, "%63s %1023s", k->type, k->b64), 2);
    free(txt);
    shoal_buf_init(&k->blob, 0);
    assert_int_equal(shoal_base64_decode(k->b64, strlen(k->b64), &k->blob), 0);
}

static int group_setup(void **st)
{
    (void)st;
    g_dir = tu_mkdtemp();
    g_have_keygen = tu_have("ssh-keygen");
    if (!g_have_keygen)
        return 0;
    const char *spec[3][2] = {{"k1", "-t ed25519"}, {"k2", "-t ed25519"}, {"k3", "-t ecdsa -b 256"}};
    tkey *keys[3] = {&g_k1, &g_k2, &g_k3};
    for (int i = 0; i < 3; i++) {
        if (tu_system("ssh-keygen -q %s -N '' -C test -f '%s/%s' </dev/null >/dev/null 2>&1", spec[i][1], g_dir,
                      spec[i][0]) != 0)
            return -1;
        char p[600];
        FMT(p, "%s/%s.pub", g_dir, spec[i][0]);
        load_pub(p, keys[i]);
    }
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    shoal_buf_free(&g_k1.blob);
    shoal_buf_free(&g_k2.blob);
    shoal_buf_free(&g_k3.blob);
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

#define NEED_KEYGEN()                                                                                        \
    do {                                                                                                     \
        if (!g_have_keygen)                                                                                  \
            skip();                                                                                          \
    } while (0)

/* check_buf over a NUL-terminated text; returns the status, fills *res. */
static shoal_kh_status check(const char *text, const char *host, unsigned port, const tkey *k, shoal_kh_result *res)
{
    shoal_kh_result tmp;
    if (!res)
        res = &tmp;
    assert_int_equal(shoal_knownhosts_check_buf(text, strlen(text), host, port, k->type, shoal_buf_ptr(&k->blob),
                                                shoal_buf_len(&k->blob), res),
                     0);
    return res->status;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_plain(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    shoal_kh_result r;
    snprintf(t, sizeof(t),
             "# a comment\n"
             "\n"
             "other.org %s %s\n"
             "Example.COM,192.0.2.10 %s %s some comment here\n",
             g_k2.type, g_k2.b64, g_k1.type, g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 4);
    assert_string_equal(r.keytype, "ssh-ed25519");
    /* Case-insensitive on both sides; port 0 means the default port. */
    assert_int_equal(check(t, "EXAMPLE.com", 0, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "192.0.2.10", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "example.co", 22, &g_k1, &r), SHOAL_KH_NOT_FOUND);
    assert_int_equal(r.line, 0);
    assert_int_equal(check(t, "xexample.com", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    assert_int_equal(check(t, "other.org", 22, &g_k2, NULL), SHOAL_KH_MATCH);
    /* Empty buffer. */
    assert_int_equal(check("", "example.com", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    /* No trailing newline and tabs as separators. */
    FMT(t, "  example.com\t%s\t%s", g_k1.type, g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, NULL), SHOAL_KH_MATCH);
}

static void test_wildcards(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    FMT(t, "*.example.com %s %s\nhost?.lan %s %s\n", g_k1.type, g_k1.b64, g_k1.type, g_k1.b64);
    assert_int_equal(check(t, "a.example.com", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "a.b.example.com", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "example.com", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    assert_int_equal(check(t, "host1.lan", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "host12.lan", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    assert_int_equal(check(t, "host.lan", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);

    /* Direct matcher checks, including edge cases of the star backtracking. */
    assert_true(shoal_knownhosts_match_patterns("*", 1, "anything"));
    assert_true(shoal_knownhosts_match_patterns("a*b*c", 5, "aXbYbZc"));
    assert_false(shoal_knownhosts_match_patterns("a*b*c", 5, "aXbYbZ"));
    assert_true(shoal_knownhosts_match_patterns("**a**", 5, "bab"));
    assert_true(shoal_knownhosts_match_patterns("*?", 2, "x"));
    assert_false(shoal_knownhosts_match_patterns("*??", 3, "x"));
    assert_true(shoal_knownhosts_match_patterns("A?C", 3, "abc"));
    assert_false(shoal_knownhosts_match_patterns("", 0, "abc"));
    /* Only the first len bytes are the pattern list. */
    assert_true(shoal_knownhosts_match_patterns("abc,zzz", 3, "abc"));
    assert_false(shoal_knownhosts_match_patterns("abc,zzz", 3, "zzz"));

    /* A pattern that is exponential for a naive recursive matcher must finish
     * quickly: 30 stars against 20000 'a's and no 'b'. */
    char pat[128], *host = malloc(20001);
    assert_non_null(host);
    size_t k = 0;
    for (int i = 0; i < 30; i++) {
        pat[k++] = '*';
        pat[k++] = 'a';
    }
    pat[k++] = 'b';
    pat[k] = 0;
    memset(host, 'a', 20000);
    host[20000] = 0;
    clock_t c0 = clock();
    assert_false(shoal_knownhosts_match_patterns(pat, strlen(pat), host));
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    free(host);
    assert_true(secs < 5.0);
}

static void test_negation(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    FMT(t, "*.example.com,!bad.example.com %s %s\n!Worse.example.com,*.example.com %s %s\n",
             g_k1.type, g_k1.b64, g_k2.type, g_k2.b64);
    assert_int_equal(check(t, "good.example.com", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    /* Line 1 is negated for bad; line 2 names it with k2, so k1 mismatches there. */
    shoal_kh_result r;
    assert_int_equal(check(t, "bad.example.com", 22, &g_k1, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 2);
    /* Negation wins regardless of position in the list. */
    assert_int_equal(check(t, "worse.example.com", 22, &g_k2, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 1);
    assert_false(shoal_knownhosts_match_patterns("!a*,*", 5, "abc"));
    assert_true(shoal_knownhosts_match_patterns("!a*,*", 5, "bcd"));
    /* A negation alone never matches. */
    assert_false(shoal_knownhosts_match_patterns("!x", 2, "y"));
}

static void test_ports(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    shoal_kh_result r;
    FMT(t, "[example.com]:2222 %s %s\nexample.com %s %s\n[192.0.2.1]:2200,[*.lan]:2200 %s %s\n",
             g_k1.type, g_k1.b64, g_k2.type, g_k2.b64, g_k3.type, g_k3.b64);
    assert_int_equal(check(t, "example.com", 2222, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 1);
    /* The bracketed line does not apply to port 22, and the plain line not to 2222. */
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 2);
    assert_int_equal(check(t, "example.com", 22, &g_k2, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "example.com", 2222, &g_k2, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 1);
    assert_int_equal(check(t, "example.com", 2200, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    assert_int_equal(check(t, "192.0.2.1", 2200, &g_k3, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "host.lan", 2200, &g_k3, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "host.lan", 22, &g_k3, NULL), SHOAL_KH_NOT_FOUND);
    /* OpenSSH matches patterns against "[host]:port", so a bare "*" covers
     * every port while "host" covers only 22. */
    assert_true(shoal_knownhosts_match_patterns("*", 1, "[h]:2222"));
    assert_false(shoal_knownhosts_match_patterns("h", 1, "[h]:2222"));
}

static void test_hashed_by_ssh_keygen(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192], path[600];
    FMT(path, "%s/hashed_kh", g_dir);
    FMT(t, "example.com %s %s\n[example.com]:2222 %s %s\nother.org %s %s\n", g_k1.type, g_k1.b64,
             g_k2.type, g_k2.b64, g_k3.type, g_k3.b64);
    write_text(path, t);
    assert_int_equal(tu_system("ssh-keygen -H -f '%s' >/dev/null 2>&1", path), 0);
    size_t n;
    char *h = (char *)tu_read_file(path, &n);
    assert_non_null(h);
    /* Every line is now hashed: no host name left in clear text. */
    assert_null(strstr(h, "example.com"));
    assert_int_equal(strncmp(h, "|1|", 3), 0);

    shoal_kh_result r;
    assert_int_equal(check(h, "example.com", 22, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 1);
    assert_int_equal(check(h, "EXAMPLE.COM", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(h, "example.com", 2222, &g_k2, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 2);
    assert_int_equal(check(h, "example.com", 2222, &g_k1, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 2);
    assert_int_equal(check(h, "other.org", 22, &g_k1, &r), SHOAL_KH_OTHER_TYPE);
    assert_int_equal(r.line, 3);
    assert_string_equal(r.keytype, "ecdsa-sha2-nistp256");
    assert_int_equal(check(h, "nothere.org", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);

    /* The hashed field through the public matcher too. */
    const char *sp = strchr(h, ' ');
    assert_non_null(sp);
    assert_true(shoal_knownhosts_match_patterns(h, (size_t)(sp - h), "example.com"));
    assert_false(shoal_knownhosts_match_patterns(h, (size_t)(sp - h), "example.org"));
    free(h);

    /* Broken hashed entries are skipped, not fatal. */
    snprintf(t, sizeof(t),
             "|1|!!!|AAAA %s %s\n|2|AAAAAAAAAAAAAAAAAAAAAAAAAAA=|AAAAAAAAAAAAAAAAAAAAAAAAAAA= %s %s\n"
             "|1|AAAA|AAAA %s %s\n|1|AAAAAAAAAAAAAAAAAAAAAAAAAAA= %s %s\nexample.com %s %s\n",
             g_k2.type, g_k2.b64, g_k2.type, g_k2.b64, g_k2.type, g_k2.b64, g_k2.type, g_k2.b64, g_k1.type,
             g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 5);
}

static void test_revoked(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    shoal_kh_result r;
    /* "@revoked *" revokes the key for every host, even one listed with it. */
    FMT(t, "example.com %s %s\n@revoked * %s %s\n", g_k1.type, g_k1.b64, g_k1.type, g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_REVOKED);
    assert_int_equal(r.line, 2);
    assert_int_equal(check(t, "elsewhere.net", 2222, &g_k1, NULL), SHOAL_KH_REVOKED);

    /* Host-scoped like OpenSSH: revoked for other.org only. */
    FMT(t, "@revoked other.org %s %s\nexample.com %s %s\n", g_k1.type, g_k1.b64, g_k1.type,
             g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, NULL), SHOAL_KH_MATCH);
    assert_int_equal(check(t, "other.org", 22, &g_k1, &r), SHOAL_KH_REVOKED);
    assert_int_equal(r.line, 1);

    /* Revoking k2 neither affects k1 nor makes the host "known". */
    FMT(t, "@revoked * %s %s\n", g_k2.type, g_k2.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    assert_int_equal(check(t, "example.com", 22, &g_k2, NULL), SHOAL_KH_REVOKED);
    /* A later broken line does not hide the revocation. */
    FMT(t, "example.com %s %s\n@revoked * %s %s\nexample.com %s !!!\n", g_k2.type, g_k2.b64,
             g_k2.type, g_k2.b64, g_k2.type);
    assert_int_equal(check(t, "example.com", 22, &g_k2, NULL), SHOAL_KH_REVOKED);
}

static void test_cert_authority(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    shoal_kh_result r;
    FMT(t, "@cert-authority *.example.com %s %s\n", g_k1.type, g_k1.b64);
    assert_int_equal(check(t, "a.example.com", 22, &g_k1, NULL), SHOAL_KH_NOT_FOUND);
    assert_int_equal(check(t, "a.example.com", 22, &g_k2, NULL), SHOAL_KH_NOT_FOUND);
    FMT(t, "@cert-authority *.example.com %s %s\na.example.com %s %s\n", g_k1.type, g_k1.b64,
             g_k2.type, g_k2.b64);
    assert_int_equal(check(t, "a.example.com", 22, &g_k1, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 2);
}

static void test_mismatch_and_other_type(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[8192];
    shoal_kh_result r;
    snprintf(t, sizeof(t),
             "other.org %s %s\n"
             "example.com %s %s\n"
             "example.com %s %s\n"
             "example.com %s %s\n",
             g_k2.type, g_k2.b64, g_k3.type, g_k3.b64, g_k2.type, g_k2.b64, g_k2.type, g_k2.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 3);
    assert_string_equal(r.keytype, "ssh-ed25519");

    /* MATCH wins over an earlier MISMATCH. */
    size_t n = strlen(t);
    snprintf(t + n, sizeof(t) - n, "example.com %s %s\n", g_k1.type, g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 5);

    /* Known only with another type. */
    FMT(t, "x %s %s\nexample.com %s %s\n", g_k1.type, g_k1.b64, g_k3.type, g_k3.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, &r), SHOAL_KH_OTHER_TYPE);
    assert_int_equal(r.line, 2);
    assert_string_equal(r.keytype, "ecdsa-sha2-nistp256");
    assert_int_equal(check(t, "example.com", 22, &g_k3, NULL), SHOAL_KH_MATCH);

    /* An empty blob probes whether the type is known for the host (the
     * host key driver orders algorithms this way): never MATCH. */
    assert_int_equal(shoal_knownhosts_check_buf(t, strlen(t), "example.com", 22, "ecdsa-sha2-nistp256",
                                                (const uint8_t *)"", 0, &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MISMATCH);
    assert_int_equal(shoal_knownhosts_check_buf(t, strlen(t), "example.com", 22, "ssh-ed25519", NULL, 0, &r), 0);
    assert_int_equal(r.status, SHOAL_KH_OTHER_TYPE);

    /* Same blob under a different type name is not a match. */
    FMT(t, "example.com ssh-rsa %s\n", g_k1.b64);
    assert_int_equal(check(t, "example.com", 22, &g_k1, NULL), SHOAL_KH_OTHER_TYPE);
}

static void test_malformed(void **st)
{
    (void)st;
    NEED_KEYGEN();
    /* Every line below names example.com but is unusable; the only good
     * line is the last one, with k2. */
    size_t big = 70 * 1024;
    char *t = malloc(big + 16384);
    assert_non_null(t);
    int n = snprintf(t, 16384,
                     "example.com\n"
                     "example.com %s\n"
                     "example.com %s !!!notbase64!!!\n"
                     "example.com %s #%s\n"
                     "@bogus example.com %s %s\n"
                     "@revoked\n"
                     "@revoked example.com %s\n"
                     "example.com %s A\n"
                     "example.com 0123456789012345678901234567890123456789012345678901234567890123456789 %s\n"
                     "   # indented comment %s %s\n"
                     "\t\n"
                     "\r\n",
                     g_k1.type, g_k1.type, g_k1.type, g_k1.b64, g_k1.type, g_k1.b64, g_k1.type, g_k1.type,
                     g_k1.b64, g_k1.type, g_k1.b64);
    assert_true(n > 0 && n < 16384);
    size_t len = (size_t)n;
    /* An over-long line (> 64 KiB) that would otherwise match k1. */
    len += (size_t)sprintf(t + len, "example.com %s %s ", g_k1.type, g_k1.b64);
    memset(t + len, 'x', big);
    len += big;
    t[len++] = '\n';
    /* A line with an embedded NUL that would otherwise match k1. */
    len += (size_t)sprintf(t + len, "example.com %s %s", g_k1.type, g_k1.b64);
    t[len++] = '\0';
    t[len++] = '\n';
    /* CRLF line endings are accepted. */
    len += (size_t)sprintf(t + len, "example.com %s %s\r\n", g_k2.type, g_k2.b64);

    shoal_kh_result r;
    assert_int_equal(shoal_knownhosts_check_buf(t, len, "example.com", 22, g_k1.type, shoal_buf_ptr(&g_k1.blob),
                                                shoal_buf_len(&g_k1.blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 15);
    assert_int_equal(shoal_knownhosts_check_buf(t, len, "example.com", 22, g_k2.type, shoal_buf_ptr(&g_k2.blob),
                                                shoal_buf_len(&g_k2.blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 15);
    free(t);
}

static void test_bad_args(void **st)
{
    (void)st;
    shoal_kh_result r;
    const uint8_t blob[] = {1, 2, 3};
    assert_int_equal(shoal_knownhosts_check_buf("", 0, NULL, 22, "ssh-ed25519", blob, 3, &r), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_check_buf("", 0, "", 22, "ssh-ed25519", blob, 3, &r), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_check_buf("", 0, "h", 70000, "ssh-ed25519", blob, 3, &r),
                     SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_check_buf("", 0, "h", 22, "ssh-ed25519", NULL, 3, &r), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_check_buf("", 0, "h", 22, "", blob, 3, &r), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_check_buf(NULL, 5, "h", 22, "t", blob, 3, &r), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_check_buf("", 0, "h", 22, "t", blob, 3, NULL), SHOAL_ERR_INVALID_ARG);

    /* A missing file is simply "not found". */
    char path[600];
    FMT(path, "%s/does/not/exist", g_dir);
    r.status = SHOAL_KH_MATCH;
    assert_int_equal(shoal_knownhosts_check_file(path, "h", 22, "t", blob, 3, &r), 0);
    assert_int_equal(r.status, SHOAL_KH_NOT_FOUND);

    /* Hosts that would change the meaning of the line are refused. */
    FMT(path, "%s/never_written", g_dir);
    const char *bad[] = {"a b", "a,b", "*.x", "!x", "|1|x", "[x]:22", "@revoked", "#x", "a\nb", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(shoal_knownhosts_append(path, bad[i], 22, "t", blob, 3, 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_append(path, "h", 22, "a b", blob, 3, 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_knownhosts_append(path, "h", 65536, "t", blob, 3, 0), SHOAL_ERR_INVALID_ARG);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
}

static void test_append_and_check(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char dir[600], path[700];
    FMT(dir, "%s/newdir", g_dir);
    FMT(path, "%s/known_hosts", dir);
    const tkey *k1 = &g_k1, *k2 = &g_k2, *k3 = &g_k3;
    assert_int_equal(shoal_knownhosts_append(path, "Example.com", 22, k1->type, shoal_buf_ptr(&k1->blob),
                                             shoal_buf_len(&k1->blob), 0),
                     0);
    assert_int_equal(shoal_knownhosts_append(path, "example.com", 2222, k2->type, shoal_buf_ptr(&k2->blob),
                                             shoal_buf_len(&k2->blob), 0),
                     0);
    assert_int_equal(shoal_knownhosts_append(path, "hashed.example.com", 22, k3->type, shoal_buf_ptr(&k3->blob),
                                             shoal_buf_len(&k3->blob), 1),
                     0);
    assert_int_equal(shoal_knownhosts_append(path, "hashed.example.com", 2022, k1->type, shoal_buf_ptr(&k1->blob),
                                             shoal_buf_len(&k1->blob), 1),
                     0);

    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    size_t n;
    char *txt = (char *)tu_read_file(path, &n);
    assert_non_null(txt);
    char want[8192];
    FMT(want, "example.com %s %s\n[example.com]:2222 %s %s\n|1|", k1->type, k1->b64, k2->type,
             k2->b64);
    assert_int_equal(strncmp(txt, want, strlen(want)), 0);
    assert_null(strstr(txt, "hashed"));
    free(txt);

    shoal_kh_result r;
    assert_int_equal(shoal_knownhosts_check_file(path, "example.com", 22, k1->type, shoal_buf_ptr(&k1->blob),
                                                 shoal_buf_len(&k1->blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 1);
    assert_int_equal(shoal_knownhosts_check_file(path, "example.com", 2222, k2->type, shoal_buf_ptr(&k2->blob),
                                                 shoal_buf_len(&k2->blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 2);
    assert_int_equal(shoal_knownhosts_check_file(path, "hashed.example.com", 22, k3->type,
                                                 shoal_buf_ptr(&k3->blob), shoal_buf_len(&k3->blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 3);
    assert_int_equal(shoal_knownhosts_check_file(path, "hashed.example.com", 2022, k1->type,
                                                 shoal_buf_ptr(&k1->blob), shoal_buf_len(&k1->blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 4);
    assert_int_equal(shoal_knownhosts_check_file(path, "hashed.example.com", 2022, k2->type,
                                                 shoal_buf_ptr(&k2->blob), shoal_buf_len(&k2->blob), &r),
                     0);
    assert_int_equal(r.status, SHOAL_KH_MISMATCH);

    /* OpenSSH finds what we wrote, hashed or not (exit 0 = found). */
    assert_int_equal(tu_system("ssh-keygen -F example.com -f '%s' >/dev/null 2>&1", path), 0);
    assert_int_equal(tu_system("ssh-keygen -F '[example.com]:2222' -f '%s' >/dev/null 2>&1", path), 0);
    assert_int_equal(tu_system("ssh-keygen -F hashed.example.com -f '%s' | grep -q 'found: line 3'", path), 0);
    assert_int_equal(tu_system("ssh-keygen -F '[hashed.example.com]:2022' -f '%s' | grep -q 'found: line 4'", path),
                     0);
    assert_int_not_equal(tu_system("ssh-keygen -F '[hashed.example.com]:2023' -f '%s' >/dev/null 2>&1", path), 0);
    assert_int_not_equal(tu_system("ssh-keygen -F nothere.example.com -f '%s' >/dev/null 2>&1", path), 0);
}

static void test_append_repairs_missing_newline(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char path[600], t[8192];
    FMT(path, "%s/no_newline_kh", g_dir);
    FMT(t, "other.org %s %s", g_k2.type, g_k2.b64);
    write_text(path, t);
    assert_int_equal(shoal_knownhosts_append(path, "example.com", 22, g_k1.type, shoal_buf_ptr(&g_k1.blob),
                                             shoal_buf_len(&g_k1.blob), 0),
                     0);
    size_t n;
    char *txt = (char *)tu_read_file(path, &n);
    assert_non_null(txt);
    assert_int_equal(check(txt, "other.org", 22, &g_k2, NULL), SHOAL_KH_MATCH);
    shoal_kh_result r;
    assert_int_equal(check(txt, "example.com", 22, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 2);
    assert_int_equal(txt[n - 1], '\n');
    free(txt);
    /* A file that already ends with a newline gets no blank line. */
    assert_int_equal(shoal_knownhosts_append(path, "third.org", 22, g_k1.type, shoal_buf_ptr(&g_k1.blob),
                                             shoal_buf_len(&g_k1.blob), 0),
                     0);
    txt = (char *)tu_read_file(path, &n);
    assert_non_null(txt);
    assert_null(strstr(txt, "\n\n"));
    assert_int_equal(check(txt, "third.org", 22, &g_k1, &r), SHOAL_KH_MATCH);
    assert_int_equal(r.line, 3);
    free(txt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_negation),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_hashed_by_ssh_keygen),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_cert_authority),
        cmocka_unit_test(test_mismatch_and_other_type),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_append_and_check),
        cmocka_unit_test(test_append_repairs_missing_newline),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
