/* The in-memory known_hosts database (shoal_kh_db_*): parity with the file
 * checker combined over several files the way the uv driver does it, on
 * plain names, [host]:port, patterns, negation, hashed entries (made by
 * ssh-keygen -H and by us), @revoked, @cert-authority, malformed lines;
 * known_types; add-then-lookup; a 10,000-line file with 10,000 lookups;
 * lookups and adds from several threads at once. */
#include "testutil.h"

#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "keys/key.h"
#include "shoal/knownhosts.h"

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
    if (g_have_keygen) {
        shoal_buf_free(&g_k1.blob);
        shoal_buf_free(&g_k2.blob);
        shoal_buf_free(&g_k3.blob);
    }
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

#define NEED_KEYGEN()                                                                                        \
    do {                                                                                                     \
        if (!g_have_keygen)                                                                                  \
            skip();                                                                                          \
    } while (0)

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static size_t count_lines(const char *path)
{
    size_t n = 0, len;
    char *t = (char *)tu_read_file(path, &len);
    if (!t)
        return 0;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '\n';
    free(t);
    return n;
}

/* What src/uv/hostkeys.c does with files: check each in order; REVOKED in
 * any file wins, then the first file with MATCH, then the first with
 * MISMATCH, then the first with OTHER_TYPE. */
static void reference_check(const char *const *files, unsigned n, const char *host, unsigned port,
                            const char *type, const uint8_t *blob, size_t bloblen, shoal_kh_result *out,
                            const char **out_file)
{
    static const shoal_kh_status order[] = {SHOAL_KH_REVOKED, SHOAL_KH_MATCH, SHOAL_KH_MISMATCH,
                                            SHOAL_KH_OTHER_TYPE};
    shoal_kh_result per[8];
    assert_true(n <= 8);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(shoal_knownhosts_check_file(files[i], host, port, type, blob, bloblen, &per[i]), 0);
    memset(out, 0, sizeof(*out));
    *out_file = NULL;
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++)
        for (unsigned i = 0; i < n; i++)
            if (per[i].status == order[o]) {
                *out = per[i];
                *out_file = files[i];
                return;
            }
}

static void expect_parity(shoal_kh_db *db, const char *const *files, unsigned n, const char *host, unsigned port,
                          const char *type, const uint8_t *blob, size_t bloblen)
{
    shoal_kh_result want, got;
    const char *wfile, *gfile = "unset";
    reference_check(files, n, host, port, type, blob, bloblen, &want, &wfile);
    assert_int_equal(shoal_kh_db_check(db, host, port, type, blob, bloblen, &got, &gfile), 0);
    if (want.status != got.status || want.line != got.line || strcmp(want.keytype, got.keytype) != 0 ||
        (wfile == NULL) != (gfile == NULL) || (wfile && strcmp(wfile, gfile) != 0)) {
        print_error("parity: %s port %u type %s bloblen %zu: file checker %d %s:%u (%s), db %d %s:%u (%s)\n", host,
                    port, type, bloblen, want.status, wfile ? wfile : "-", want.line, want.keytype, got.status,
                    gfile ? gfile : "-", got.line, got.keytype);
        fail();
    }
}

static void test_parity(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char f1[600], f2[600], f3[600], hashed[600], missing[600], t[32768];
    FMT(f1, "%s/p1", g_dir);
    FMT(f2, "%s/p2", g_dir);
    FMT(f3, "%s/p3", g_dir);
    FMT(hashed, "%s/p_hashed", g_dir);
    FMT(missing, "%s/does/not/exist", g_dir);
    const char *K1 = g_k1.b64, *K2 = g_k2.b64, *K3 = g_k3.b64;
    /* File 1: plain names, [host]:port, patterns, negation, markers,
     * malformed lines, case, CRLF. */
    FMT(t,
        "# comment\n"
        "\n"
        "alpha.example.com,10.0.0.1 ssh-ed25519 %s\n"
        "[alpha.example.com]:2222 ssh-ed25519 %s\n"
        "BETA.Example.COM ssh-ed25519 %s trailing comment\n"
        "beta.example.com ecdsa-sha2-nistp256 %s\n"
        "*.wild.example.org ssh-ed25519 %s\n"
        "*.neg.example.org,!bad.neg.example.org ssh-ed25519 %s\n"
        "h?st.example.net ssh-ed25519 %s\r\n"
        "@revoked revoked.example.com ssh-ed25519 %s\n"
        "revoked.example.com ssh-ed25519 %s\n"
        "@revoked alpha.example.com,gamma.example.com ssh-ed25519 %s\n"
        "@cert-authority *.example.com ssh-ed25519 %s\n"
        "@unknown alpha.example.com ssh-ed25519 %s\n"
        "empty,,names.example.com ssh-ed25519 %s\n"
        "badkey.example.com ssh-ed25519 !!!notbase64\n"
        "missing-key.example.com ssh-ed25519\n"
        "[alpha.example.com]:2222 ssh-ed25519 %s\n"
        "other.example.com ecdsa-sha2-nistp256 %s\n"
        "*.example.org ecdsa-sha2-nistp256 %s\n"
        "alpha.example.com ssh-ed25519 %s\n",
        K1, K2, K1, K3, K2, K1, K1, K1, K1, K2, K2, K2, K1, K1, K3, K3, K2);
    write_text(f1, t);
    /* File 2: conflicts with file 1 (another key for alpha, which file 1
     * matches), a revocation of a key file 1 trusts, a pattern with a
     * negation. No trailing newline. */
    FMT(t,
        "alpha.example.com ssh-ed25519 %s\n"
        "gamma.example.com ssh-ed25519 %s\n"
        "[gamma.example.com]:2222 ssh-ed25519 %s\n"
        "@revoked [alpha.example.com]:2222 ssh-ed25519 %s\n"
        "onlyhere.example.com ssh-ed25519 %s\n"
        "*.example.org,!x.wild.example.org ecdsa-sha2-nistp256 %s",
        K2, K1, K2, K2, K2, K3);
    write_text(f2, t);
    /* File 3: entries hashed by ssh-keygen -H. */
    FMT(t,
        "hashed.example.com ssh-ed25519 %s\n"
        "[hashed.example.com]:2222 ssh-ed25519 %s\n"
        "gamma.example.com ecdsa-sha2-nistp256 %s\n",
        K1, K2, K3);
    write_text(hashed, t);
    assert_int_equal(tu_system("ssh-keygen -H -f '%s' >/dev/null 2>&1", hashed), 0);
    /* And one hashed by us, plus a broken hashed field. */
    write_text(f3, "|1|!!!|AAAA ssh-ed25519 AAAA\n");
    assert_int_equal(shoal_knownhosts_append(f3, "ours.example.com", 2200, g_k2.type, shoal_buf_ptr(&g_k2.blob),
                                             shoal_buf_len(&g_k2.blob), 1),
                     0);

    const char *files[] = {f1, missing, f2, hashed, f3, "/dev/null"};
    const unsigned nf = sizeof(files) / sizeof(files[0]);
    shoal_kh_db *db = NULL;
    assert_int_equal(shoal_kh_db_open(files, nf, &db), 0);
    assert_non_null(db);

    static const char *hosts[] = {
        "alpha.example.com", "ALPHA.example.com", "10.0.0.1",        "beta.example.com",  "a.wild.example.org",
        "x.wild.example.org", "ok.neg.example.org", "bad.neg.example.org", "host.example.net", "hxst.example.net",
        "revoked.example.com", "empty",          "names.example.com", "badkey.example.com", "gamma.example.com",
        "onlyhere.example.com", "hashed.example.com", "HASHED.example.com", "ours.example.com", "other.example.com",
        "nothere.invalid",   "unknown",          "missing-key.example.com"};
    static const unsigned ports[] = {22, 0, 2222, 2200};
    const tkey *keys[] = {&g_k1, &g_k2, &g_k3};
    unsigned checked = 0;
    for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
        for (size_t p = 0; p < sizeof(ports) / sizeof(ports[0]); p++) {
            for (size_t k = 0; k < 3; k++) {
                expect_parity(db, files, nf, hosts[h], ports[p], keys[k]->type, shoal_buf_ptr(&keys[k]->blob),
                              shoal_buf_len(&keys[k]->blob));
                checked++;
            }
            /* The empty-blob probe hostkeys order used to make, and a type no line has. */
            expect_parity(db, files, nf, hosts[h], ports[p], "ssh-ed25519", (const uint8_t *)"", 0);
            expect_parity(db, files, nf, hosts[h], ports[p], "ecdsa-sha2-nistp256", (const uint8_t *)"", 0);
            expect_parity(db, files, nf, hosts[h], ports[p], "ssh-rsa", shoal_buf_ptr(&g_k1.blob),
                          shoal_buf_len(&g_k1.blob));
            checked += 3;
        }
    assert_true(checked > 300);

    /* A few answers spelled out, so parity is not parity of two wrong answers. */
    shoal_kh_result r;
    const char *file;
    const uint8_t *b1 = shoal_buf_ptr(&g_k1.blob), *b2 = shoal_buf_ptr(&g_k2.blob);
    size_t l1 = shoal_buf_len(&g_k1.blob), l2 = shoal_buf_len(&g_k2.blob);
    /* f1:12 revokes k2 for alpha (and gamma), whatever other lines say. */
    assert_int_equal(shoal_kh_db_check(db, "alpha.example.com", 22, "ssh-ed25519", b2, l2, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_REVOKED);
    assert_string_equal(file, f1);
    assert_int_equal(r.line, 12);
    /* k1 for alpha: match in f1 line 3 even though f2 line 1 has another key. */
    assert_int_equal(shoal_kh_db_check(db, "alpha.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_string_equal(file, f1);
    assert_int_equal(r.line, 3);
    /* gamma:22 k2: mismatch in f2 line 2. */
    assert_int_equal(shoal_kh_db_check(db, "gamma.example.com", 22, "ssh-ed25519", b2, l2, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_REVOKED); /* f1:12 names gamma too */
    assert_int_equal(shoal_kh_db_check(db, "gamma.example.com", 2222, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MISMATCH);
    assert_string_equal(file, f2);
    assert_int_equal(r.line, 3);
    /* Hashed by ssh-keygen: found, in the hashed file at line 1. */
    assert_int_equal(shoal_kh_db_check(db, "hashed.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_string_equal(file, hashed);
    assert_int_equal(r.line, 1);
    /* Negation: bad.neg is excluded from f1 line 8, and only the
     * everywhere-ecdsa line (f1:20) names it: other type. */
    assert_int_equal(shoal_kh_db_check(db, "bad.neg.example.org", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_OTHER_TYPE);
    assert_int_equal(r.line, 20);
    assert_string_equal(r.keytype, "ecdsa-sha2-nistp256");
    assert_int_equal(shoal_kh_db_check(db, "ok.neg.example.org", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 8);
    /* Not found at all: no file. */
    file = "unset";
    assert_int_equal(shoal_kh_db_check(db, "nothere.invalid", 2222, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_NOT_FOUND);
    assert_null(file);
    assert_int_equal(r.line, 0);

    /* known_types agrees with the empty-blob probe over the files. */
    static const char *types[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa"};
    for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
        for (size_t p = 0; p < sizeof(ports) / sizeof(ports[0]); p++) {
            int known[4] = {7, 7, 7, 7};
            assert_int_equal(shoal_kh_db_known_types(db, hosts[h], ports[p], types, 4, known), 0);
            for (int k = 0; k < 4; k++) {
                int want = 0;
                for (unsigned i = 0; i < nf; i++) {
                    shoal_kh_result fr;
                    assert_int_equal(
                        shoal_knownhosts_check_file(files[i], hosts[h], ports[p], types[k], (const uint8_t *)"", 0,
                                                    &fr),
                        0);
                    want |= fr.status == SHOAL_KH_MISMATCH || fr.status == SHOAL_KH_MATCH;
                }
                if (known[k] != want) {
                    print_error("known_types %s:%u %s: db %d, files %d\n", hosts[h], ports[p], types[k], known[k],
                                want);
                    fail();
                }
            }
        }

    /* Bad arguments, as the file checker. */
    assert_int_equal(shoal_kh_db_check(db, NULL, 22, "ssh-ed25519", b1, l1, &r, NULL), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kh_db_check(db, "a", 70000, "ssh-ed25519", b1, l1, &r, NULL), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kh_db_check(db, "a", 22, "", b1, l1, &r, NULL), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kh_db_check(NULL, "a", 22, "ssh-ed25519", b1, l1, &r, NULL), SHOAL_ERR_INVALID_ARG);
    shoal_kh_db_free(db);
}

static void test_open_errors(void **st)
{
    (void)st;
    shoal_kh_db *db = (shoal_kh_db *)1;
    /* A directory cannot be read as a file: an error, never silently empty. */
    const char *dir[] = {g_dir};
    assert_int_not_equal(shoal_kh_db_open(dir, 1, &db), 0);
    assert_null(db);
    /* Which file, and why, for the message (the second one fails here). */
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/does-not-exist", g_dir);
    const char *two[] = {missing, "/proc/self/mem", g_dir};
    unsigned failed = 99;
    int e = 0;
    assert_int_equal(shoal_kh_db_open_files(two, 3, &db, &failed, &e), SHOAL_ERR_IO);
    assert_null(db);
    assert_int_equal(failed, 1);
    assert_int_equal(e, EIO);
    char msg[700];
    shoal_knownhosts_read_error(two[failed], SHOAL_ERR_IO, e, msg, sizeof(msg));
    assert_string_equal(msg, "cannot read known_hosts file /proc/self/mem: Input/output error");
    assert_int_equal(shoal_kh_db_open_files(dir, 1, &db, &failed, &e), SHOAL_ERR_IO);
    assert_int_equal(failed, 0);
    assert_int_equal(e, EISDIR);
    /* The file checker says the same, with errno set. */
    shoal_kh_result fr;
    errno = 0;
    assert_int_equal(shoal_knownhosts_check_file("/proc/self/mem", "a", 22, "ssh-ed25519", (const uint8_t *)"x", 1,
                                                 &fr),
                     SHOAL_ERR_IO);
    assert_int_equal(errno, EIO);
    assert_int_equal(shoal_knownhosts_check_file(missing, "a", 22, "ssh-ed25519", (const uint8_t *)"x", 1, &fr), 0);
    assert_int_equal(fr.status, SHOAL_KH_NOT_FOUND);
    shoal_knownhosts_read_error("/x", SHOAL_ERR_TOO_LARGE, 0, msg, sizeof(msg));
    assert_string_equal(msg, "cannot read known_hosts file /x: larger than the 64 MiB limit");
    shoal_knownhosts_read_error("/x", SHOAL_ERR_NOMEM, 0, msg, sizeof(msg));
    assert_string_equal(msg, "cannot read known_hosts file /x: out of memory");
    const char *bad[] = {NULL};
    assert_int_equal(shoal_kh_db_open(bad, 1, &db), SHOAL_ERR_INVALID_ARG);
    /* No files at all: an empty, memory-only database. */
    assert_int_equal(shoal_kh_db_open(NULL, 0, &db), 0);
    shoal_kh_result r;
    assert_int_equal(shoal_kh_db_check(db, "a.example", 22, "ssh-ed25519", (const uint8_t *)"x", 1, &r, NULL), 0);
    assert_int_equal(r.status, SHOAL_KH_NOT_FOUND);
    shoal_kh_db_free(db);
    shoal_kh_db_free(NULL);
}

static void test_add_then_lookup(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char path[600], second[600];
    FMT(path, "%s/add/known_hosts", g_dir); /* directory does not exist yet */
    FMT(second, "%s/add_second", g_dir);
    char t[4096];
    FMT(t, "known.example.com %s %s", g_k3.type, g_k3.b64); /* no newline */
    write_text(second, t);
    const char *files[] = {path, second};
    shoal_kh_db *db;
    assert_int_equal(shoal_kh_db_open(files, 2, &db), 0);
    const uint8_t *b1 = shoal_buf_ptr(&g_k1.blob), *b2 = shoal_buf_ptr(&g_k2.blob);
    size_t l1 = shoal_buf_len(&g_k1.blob), l2 = shoal_buf_len(&g_k2.blob);
    shoal_kh_result r;
    const char *file;
    assert_int_equal(shoal_kh_db_check(db, "new.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_NOT_FOUND);

    /* Add: written to the first file and visible at once. */
    assert_int_equal(shoal_kh_db_add(db, "new.example.com", 22, "ssh-ed25519", b1, l1, 0), 0);
    assert_int_equal(shoal_kh_db_check(db, "NEW.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_string_equal(file, path);
    assert_int_equal(r.line, 1);
    assert_int_equal(shoal_kh_db_check(db, "new.example.com", 22, "ssh-ed25519", b2, l2, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MISMATCH);
    assert_int_equal(r.line, 1);
    /* Adding the same key again (a second connection that raced) writes nothing. */
    assert_int_equal(shoal_kh_db_add(db, "new.example.com", 22, "ssh-ed25519", b1, l1, 0), 0);
    assert_int_equal(count_lines(path), 1);
    /* Hashed, another port: line 2, file has no clear-text name. */
    assert_int_equal(shoal_kh_db_add(db, "new.example.com", 2222, "ssh-ed25519", b2, l2, 1), 0);
    assert_int_equal(shoal_kh_db_check(db, "new.example.com", 2222, "ssh-ed25519", b2, l2, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 2);
    assert_int_equal(count_lines(path), 2);
    size_t n;
    char *txt = (char *)tu_read_file(path, &n);
    assert_non_null(txt);
    assert_null(strstr(txt, "[new.example.com]"));
    free(txt);
    /* The file checker reads what we wrote the same way. */
    assert_int_equal(shoal_knownhosts_check_file(path, "new.example.com", 2222, "ssh-ed25519", b2, l2, &r), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 2);
    /* Entries of later files still come after the ones added to the first. */
    assert_int_equal(shoal_kh_db_check(db, "known.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_OTHER_TYPE);
    assert_string_equal(file, second);
    assert_int_equal(r.line, 1);
    /* Unsafe names are refused as by shoal_knownhosts_append. */
    assert_int_equal(shoal_kh_db_add(db, "bad host", 22, "ssh-ed25519", b1, l1, 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kh_db_add(db, "*", 22, "ssh-ed25519", b1, l1, 0), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_kh_db_add(db, "x.example", 22, "ssh-ed25519", b1, 0, 0), SHOAL_ERR_INVALID_ARG);
    shoal_kh_db_free(db);

    /* A new database over the same files sees the same thing. */
    assert_int_equal(shoal_kh_db_open(files, 2, &db), 0);
    assert_int_equal(shoal_kh_db_check(db, "new.example.com", 2222, "ssh-ed25519", b2, l2, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 2);
    /* The next line number continues after the file's last line. */
    assert_int_equal(shoal_kh_db_add(db, "third.example.com", 22, "ssh-ed25519", b1, l1, 0), 0);
    assert_int_equal(shoal_kh_db_check(db, "third.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.line, 3);
    assert_int_equal(shoal_knownhosts_check_file(path, "third.example.com", 22, "ssh-ed25519", b1, l1, &r), 0);
    assert_int_equal(r.line, 3);
    shoal_kh_db_free(db);

    /* Memory only. */
    assert_int_equal(shoal_kh_db_open(NULL, 0, &db), 0);
    assert_int_equal(shoal_kh_db_add(db, "mem.example.com", 22, "ssh-ed25519", b1, l1, 1), 0);
    file = "unset";
    assert_int_equal(shoal_kh_db_check(db, "mem.example.com", 22, "ssh-ed25519", b1, l1, &r, &file), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_null(file);
    shoal_kh_db_free(db);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_large_file(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char path[600];
    FMT(path, "%s/big", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* 10,000 plain entries (every tenth one on a non-default port), plus a
     * few patterns and one hashed line that every lookup has to try. */
    for (int i = 0; i < 10000; i++) {
        const tkey *k = (i % 2) ? &g_k2 : &g_k1;
        if (i % 10 == 0)
            fprintf(f, "[host%05d.example.com]:2222 %s %s\n", i, k->type, k->b64);
        else
            fprintf(f, "host%05d.example.com,10.%d.%d.%d %s %s\n", i, i >> 16, (i >> 8) & 255, i & 255, k->type,
                    k->b64);
    }
    fprintf(f, "*.pattern.example.org %s %s\n", g_k1.type, g_k1.b64);
    fprintf(f, "@revoked *.revoked.example.org %s %s\n", g_k1.type, g_k1.b64);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(shoal_knownhosts_append(path, "hashed.example.org", 22, g_k3.type, shoal_buf_ptr(&g_k3.blob),
                                             shoal_buf_len(&g_k3.blob), 1),
                     0);

    const char *files[] = {path};
    shoal_kh_db *db;
    double t0 = now_s();
    assert_int_equal(shoal_kh_db_open(files, 1, &db), 0);
    double t1 = now_s();
    unsigned match = 0;
    for (int i = 0; i < 10000; i++) {
        char host[64];
        FMT(host, "host%05d.example.com", i);
        unsigned port = (i % 10 == 0) ? 2222 : 22;
        const tkey *k = (i % 2) ? &g_k2 : &g_k1;
        shoal_kh_result r;
        assert_int_equal(
            shoal_kh_db_check(db, host, port, k->type, shoal_buf_ptr(&k->blob), shoal_buf_len(&k->blob), &r, NULL),
            0);
        if (r.status == SHOAL_KH_MATCH && r.line == (unsigned)i + 1)
            match++;
    }
    double t2 = now_s();
    assert_int_equal(match, 10000);
    print_message("10,000-line file: open %.1f ms, 10,000 lookups %.1f ms (%.2f us each)\n", (t1 - t0) * 1e3,
                  (t2 - t1) * 1e3, (t2 - t1) * 1e6 / 10000);
    /* Loose bounds (sanitizer builds and busy machines): the file checker
     * would need ~10,000 x 10,000 line scans. */
    assert_true(t1 - t0 < 5.0);
    assert_true(t2 - t1 < 5.0);
    /* The extra lines still answer right. */
    shoal_kh_result r;
    const uint8_t *b1 = shoal_buf_ptr(&g_k1.blob), *b3 = shoal_buf_ptr(&g_k3.blob);
    size_t l1 = shoal_buf_len(&g_k1.blob), l3 = shoal_buf_len(&g_k3.blob);
    assert_int_equal(shoal_kh_db_check(db, "x.pattern.example.org", 22, "ssh-ed25519", b1, l1, &r, NULL), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 10001);
    assert_int_equal(shoal_kh_db_check(db, "x.revoked.example.org", 22, "ssh-ed25519", b1, l1, &r, NULL), 0);
    assert_int_equal(r.status, SHOAL_KH_REVOKED);
    assert_int_equal(shoal_kh_db_check(db, "hashed.example.org", 22, g_k3.type, b3, l3, &r, NULL), 0);
    assert_int_equal(r.status, SHOAL_KH_MATCH);
    assert_int_equal(r.line, 10003);
    assert_int_equal(shoal_kh_db_check(db, "10.0.39.15", 22, "ssh-ed25519", b1, l1, &r, NULL), 0);
    assert_int_equal(r.status, SHOAL_KH_MISMATCH); /* host09999 (odd: k2) is 10.0.39.15 */
    assert_int_equal(r.line, 10000);
    shoal_kh_db_free(db);
}

/* Two loop threads share one database: lookups and adds at once. */
typedef struct thr_arg {
    shoal_kh_db *db;
    int id;
    int errors;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *a = p;
    const uint8_t *b1 = shoal_buf_ptr(&g_k1.blob);
    size_t l1 = shoal_buf_len(&g_k1.blob);
    for (int i = 0; i < 300; i++) {
        char host[64];
        snprintf(host, sizeof(host), "t%d-%d.example.com", a->id, i);
        shoal_kh_result r;
        if (shoal_kh_db_add(a->db, host, 22, "ssh-ed25519", b1, l1, i % 2) != 0)
            a->errors++;
        /* Both threads add the shared names: one line each in the end. */
        snprintf(host, sizeof(host), "shared-%d.example.com", i);
        if (shoal_kh_db_add(a->db, host, 22, "ssh-ed25519", b1, l1, 0) != 0)
            a->errors++;
        if (shoal_kh_db_check(a->db, host, 22, "ssh-ed25519", b1, l1, &r, NULL) != 0 || r.status != SHOAL_KH_MATCH)
            a->errors++;
        snprintf(host, sizeof(host), "t%d-%d.example.com", 1 - a->id, i / 2);
        if (shoal_kh_db_check(a->db, host, 22, "ssh-ed25519", b1, l1, &r, NULL) != 0)
            a->errors++;
    }
    return NULL;
}

static void test_threads(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char path[600];
    FMT(path, "%s/threads", g_dir);
    const char *files[] = {path};
    shoal_kh_db *db;
    assert_int_equal(shoal_kh_db_open(files, 1, &db), 0);
    thr_arg a[2] = {{db, 0, 0}, {db, 1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(a[0].errors, 0);
    assert_int_equal(a[1].errors, 0);
    /* 2 x 300 own names + 300 shared names, each written once. */
    assert_int_equal(count_lines(path), 900);
    shoal_kh_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_add_then_lookup),
        cmocka_unit_test(test_large_file),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
