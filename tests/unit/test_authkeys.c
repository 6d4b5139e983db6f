/* authorized_keys: every option, quoting, restrict/pty ordering, skipped
 * lines, several keys, from= (IPv4/IPv6 CIDR, negation, names), expiry,
 * file handling, and an interop check of the line structure against
 * OpenSSH's ssh-keygen -l. Keys are generated with ssh-keygen at test time. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keys/key.h"
#include "shoal/authkeys.h"

#define FMT(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

typedef struct tkey {
    char type[64];
    char b64[4096];
    char fp[128]; /* SHA256:... from ssh-keygen -l */
    shoal_key *key;
} tkey;

/* k1, k2: ed25519; k3: ecdsa-sha2-nistp256; k4: rsa 2048. */
static char *g_dir;
static tkey g_k[4];
static int g_have_keygen;
/* A time safely between the "past" and "future" expiry values used below. */
static const int64_t NOW = 1700000000; /* 2023-11-14 */

static void load_pub(const char *path, tkey *k)
{
    size_t n;
    char *txt = (char *)tu_read_file(path, &n);
    assert_non_null(txt);
    assert_int_equal(sscanf(txt, "%63s %4095s", k->type, k->b64), 2);
    assert_int_equal(shoal_key_from_public_text(txt, n, &k->key), 0);
    free(txt);
    assert_int_equal(shoal_key_fingerprint(k->key, k->fp, sizeof(k->fp)), 0);
}

static int group_setup(void **st)
{
    (void)st;
    g_dir = tu_mkdtemp();
    g_have_keygen = tu_have("ssh-keygen");
    if (!g_have_keygen)
        return 0;
    const char *spec[4] = {"-t ed25519", "-t ed25519", "-t ecdsa -b 256", "-t rsa -b 2048"};
    for (int i = 0; i < 4; i++) {
        if (tu_system("ssh-keygen -q %s -N '' -C k%d -f '%s/k%d' </dev/null >/dev/null 2>&1", spec[i], i + 1,
                      g_dir, i + 1) != 0)
            return -1;
        char p[600];
        snprintf(p, sizeof(p), "%s/k%d.pub", g_dir, i + 1);
        load_pub(p, &g_k[i]);
    }
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    for (int i = 0; i < 4; i++)
        shoal_key_free(g_k[i].key);
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

#define NEED_KEYGEN()                                                                                        \
    do {                                                                                                     \
        if (!g_have_keygen)                                                                                  \
            skip();                                                                                          \
    } while (0)

/* "opts type b64 comment" for key i (opts may be ""). */
static void line_for(char *out, size_t outsz, const char *opts, int i)
{
    int n = snprintf(out, outsz, "%s%s%s %s k%d", opts, *opts ? " " : "", g_k[i].type, g_k[i].b64, i + 1);
    assert_true(n > 0 && (size_t)n < outsz);
}

/* Parses "opts <key 0>" and returns the result code; opts in *o. */
static int parse_opts_line(const char *opts, shoal_authkey_line *l)
{
    char line[8192], why[200];
    line_for(line, sizeof(line), opts, 0);
    return shoal_authkeys_parse_line(line, strlen(line), l, why, sizeof(why));
}

static int find(const char *text, int key, const char *ip, const char *host, int64_t now, shoal_authkey_opts *o,
                shoal_authkeys_result *res)
{
    shoal_authkeys_peer peer = {ip, host, now};
    return shoal_authkeys_find(text, strlen(text), g_k[key].key, &peer, o, res);
}

static void test_plain_and_multiple(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[16384], l1[5000], l2[5000], l3[5000];
    line_for(l1, sizeof(l1), "", 1);
    line_for(l2, sizeof(l2), "", 0);
    line_for(l3, sizeof(l3), "", 3);
    FMT(t, "# comment\n\n   \t\n%s\n  %s trailing words\n%s\n", l1, l2, l3);
    shoal_authkey_opts o;
    shoal_authkeys_result r;
    assert_int_equal(find(t, 0, "192.0.2.1", NULL, NOW, &o, &r), 1);
    assert_int_equal(r.line, 5);
    assert_int_equal(r.refused_line, 0);
    assert_int_equal(o.no_pty + o.no_port_forwarding + o.no_agent_forwarding + o.no_x11_forwarding, 0);
    assert_null(o.command);
    assert_true(o.expiry_time == -1);
    shoal_authkey_opts_free(&o);
    assert_int_equal(find(t, 1, "192.0.2.1", NULL, NOW, &o, &r), 1);
    assert_int_equal(r.line, 4);
    shoal_authkey_opts_free(&o);
    assert_int_equal(find(t, 3, "192.0.2.1", NULL, NOW, &o, &r), 1);
    assert_int_equal(r.line, 6);
    shoal_authkey_opts_free(&o);
    /* k3 is not listed. */
    assert_int_equal(find(t, 2, "192.0.2.1", NULL, NOW, &o, &r), 0);
    assert_int_equal(r.line, 0);
    shoal_authkey_opts_free(&o);
    /* Empty buffer, CRLF endings, no final newline, tabs. */
    assert_int_equal(find("", 0, "192.0.2.1", NULL, NOW, &o, NULL), 0);
    FMT(t, "# x\r\nno-pty\t%s\t%s\r\n", g_k[0].type, g_k[0].b64);
    assert_int_equal(find(t, 0, "192.0.2.1", NULL, NOW, &o, &r), 1);
    assert_int_equal(r.line, 2);
    assert_int_equal(o.no_pty, 1);
    shoal_authkey_opts_free(&o);
}

static void test_every_option(void **st)
{
    (void)st;
    NEED_KEYGEN();
    shoal_authkey_line l;
    assert_int_equal(
        parse_opts_line("command=\"/usr/bin/backup --all\",from=\"10.0.0.0/8,*.example.com\",no-pty,"
                        "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc,"
                        "environment=\"LANG=C\",environment=\"PATH=/bin:/usr/bin\",environment=\"LANG=fr\","
                        "expiry-time=\"20991231\",permitopen=\"192.0.2.1:80\",permitopen=\"[2001:db8::1]:*\","
                        "permitlisten=\"8080\",permitlisten=\"localhost:9000\",tunnel=\"3\","
                        "no-touch-required,verify-required",
                        &l),
        1);
    shoal_authkey_opts *o = &l.opts;
    assert_string_equal(l.keytype, "ssh-ed25519");
    assert_string_equal(l.comment, "k1");
    assert_string_equal(o->command, "/usr/bin/backup --all");
    assert_string_equal(o->from, "10.0.0.0/8,*.example.com");
    assert_int_equal(o->no_pty, 1);
    assert_int_equal(o->no_port_forwarding, 1);
    assert_int_equal(o->no_agent_forwarding, 1);
    assert_int_equal(o->no_x11_forwarding, 1);
    assert_int_equal(o->no_user_rc, 1);
    assert_int_equal(o->restricted, 0);
    /* The first LANG wins. */
    assert_int_equal(o->n_environment, 2);
    assert_string_equal(o->environment[0], "LANG=C");
    assert_string_equal(o->environment[1], "PATH=/bin:/usr/bin");
    assert_true(o->expiry_time > NOW);
    assert_int_equal(o->n_permitopen, 2);
    assert_string_equal(o->permitopen[0], "192.0.2.1:80");
    assert_string_equal(o->permitopen[1], "[2001:db8::1]:*");
    assert_int_equal(o->n_permitlisten, 2);
    assert_string_equal(o->permitlisten[0], "*:8080");
    assert_string_equal(o->permitlisten[1], "localhost:9000");
    assert_true(o->tunnel == 3);
    assert_int_equal(o->no_touch_required, 1);
    assert_int_equal(o->verify_required, 1);
    assert_int_equal(o->cert_authority, 0);
    /* The blob is the key's. */
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_from_blob(l.blob, l.blob_len, &k), 0);
    assert_int_equal(shoal_key_equal_public(k, g_k[0].key), 1);
    shoal_key_free(k);
    shoal_authkey_line_free(&l);

    assert_int_equal(parse_opts_line("cert-authority,principals=\"alice,bob\",tunnel=\"any\"", &l), 1);
    assert_int_equal(l.opts.cert_authority, 1);
    assert_string_equal(l.opts.principals, "alice,bob");
    assert_true(l.opts.tunnel == SHOAL_AUTHKEY_TUN_ANY);
    shoal_authkey_line_free(&l);

    /* Positive forms and case-insensitive names. */
    assert_int_equal(parse_opts_line("RESTRICT,Pty,Port-Forwarding,AGENT-forwarding,x11-FORWARDING,user-rc,"
                                     "touch-required,no-verify-required",
                                     &l),
                     1);
    assert_int_equal(l.opts.restricted, 1);
    assert_int_equal(l.opts.no_pty + l.opts.no_port_forwarding + l.opts.no_agent_forwarding +
                         l.opts.no_x11_forwarding + l.opts.no_user_rc + l.opts.no_touch_required +
                         l.opts.verify_required,
                     0);
    shoal_authkey_line_free(&l);
}

static void test_quoting(void **st)
{
    (void)st;
    NEED_KEYGEN();
    shoal_authkey_line l;
    /* \" is a quote; blanks and commas inside quotes are part of the value. */
    assert_int_equal(parse_opts_line("command=\"echo \\\"a, b\\\" c\",no-pty", &l), 1);
    assert_string_equal(l.opts.command, "echo \"a, b\" c");
    assert_int_equal(l.opts.no_pty, 1);
    shoal_authkey_line_free(&l);
    /* Any other backslash stays as it is. */
    assert_int_equal(parse_opts_line("command=\"a\\\\b\\nc\"", &l), 1);
    assert_string_equal(l.opts.command, "a\\\\b\\nc");
    shoal_authkey_line_free(&l);
    /* Empty value. */
    assert_int_equal(parse_opts_line("command=\"\"", &l), 1);
    assert_string_equal(l.opts.command, "");
    shoal_authkey_line_free(&l);
    /* Tabs inside quotes too. */
    assert_int_equal(parse_opts_line("command=\"a\tb\"", &l), 1);
    assert_string_equal(l.opts.command, "a\tb");
    shoal_authkey_line_free(&l);
    /* Empty list elements are ignored (as OpenSSH's sshd does). */
    assert_int_equal(parse_opts_line("pty,,no-pty", &l), 1);
    assert_int_equal(l.opts.no_pty, 1);
    shoal_authkey_line_free(&l);
    assert_int_equal(parse_opts_line(",no-pty,", &l), 1);
    assert_int_equal(l.opts.no_pty, 1);
    shoal_authkey_line_free(&l);

    /* Malformed: each must be refused with a reason. */
    static const char *const bad[] = {
        "command=\"unterminated",      /* quote never closed (the key becomes part of it) */
        "command=unquoted",            /* values must be quoted */
        "command=\"a\"x",              /* garbage after the value */
        "command=\"a\",command=\"b\"", /* at most one command */
        "from=\"a\",from=\"b\"",
        "principals=\"a\",principals=\"b\"",
        "ptyx",
        "pty=\"x\"",
        "no-restrict",
        "no-cert-authority",
        "no-command=\"x\"",
        "foo",
        "environment=\"NOEQUALS\"",
        "environment=\"=x\"",
        "environment=\"BAD-NAME=x\"",
        "expiry-time=\"2099\"",
        "expiry-time=\"20990230\"",
        "expiry-time=\"20990101256000\"",
        "expiry-time=\"19600101\"",
        "expiry-time=\"2099010x\"",
        "permitopen=\"host\"",
        "permitopen=\"host:0\"",
        "permitopen=\"host:65536\"",
        "permitopen=\"host:http\"",
        "permitopen=\"[::1\"",
        "permitopen=\"[::1]\"",
        "permitlisten=\"[::1]\"",
        "tunnel=\"-1\"",
        "tunnel=\"x\"",
        "=\"x\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[8192], why[200] = "";
        line_for(line, sizeof(line), bad[i], 0);
        int rc = shoal_authkeys_parse_line(line, strlen(line), &l, why, sizeof(why));
        if (rc != SHOAL_ERR_BAD_FORMAT)
            fail_msg("accepted bad options %s (rc %d)", bad[i], rc);
        assert_true(why[0] != 0);
        shoal_authkey_line_free(&l);
    }
    /* The exact reason for a few. */
    char why[200];
    shoal_authkey_opts o;
    assert_int_equal(shoal_authkey_opts_parse("restrict,foo", 12, &o, why, sizeof(why)), SHOAL_ERR_BAD_FORMAT);
    assert_string_equal(why, "unknown option \"foo\"");
    shoal_authkey_opts_free(&o);
    assert_int_equal(shoal_authkey_opts_parse("command=\"a\",command=\"b\"", 23, &o, why, sizeof(why)),
                     SHOAL_ERR_BAD_FORMAT);
    assert_string_equal(why, "multiple \"command\" clauses");
    shoal_authkey_opts_free(&o);
}

static void test_restrict_and_pty(void **st)
{
    (void)st;
    shoal_authkey_opts o;
    char why[200];
#define PARSE(s) assert_int_equal(shoal_authkey_opts_parse((s), strlen(s), &o, why, sizeof(why)), 0)
    PARSE("restrict");
    assert_int_equal(o.restricted, 1);
    assert_int_equal(o.no_pty & o.no_port_forwarding & o.no_agent_forwarding & o.no_x11_forwarding & o.no_user_rc,
                     1);
    shoal_authkey_opts_free(&o);
    /* restrict then pty: only the pty comes back. */
    PARSE("restrict,pty");
    assert_int_equal(o.no_pty, 0);
    assert_int_equal(o.no_port_forwarding & o.no_agent_forwarding & o.no_x11_forwarding & o.no_user_rc, 1);
    shoal_authkey_opts_free(&o);
    /* pty then restrict: restrict wins, as OpenSSH applies flags in order. */
    PARSE("pty,restrict");
    assert_int_equal(o.no_pty, 1);
    shoal_authkey_opts_free(&o);
    PARSE("restrict,port-forwarding,agent-forwarding,X11-forwarding,user-rc");
    assert_int_equal(o.no_pty, 1);
    assert_int_equal(o.no_port_forwarding + o.no_agent_forwarding + o.no_x11_forwarding + o.no_user_rc, 0);
    shoal_authkey_opts_free(&o);
    PARSE("no-pty");
    assert_int_equal(o.no_pty, 1);
    assert_int_equal(o.restricted + o.no_port_forwarding, 0);
    shoal_authkey_opts_free(&o);
    PARSE("no-pty,pty");
    assert_int_equal(o.no_pty, 0);
    shoal_authkey_opts_free(&o);
#undef PARSE
}

static void test_bad_line_is_skipped(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char t[16384], l1[5000], l2[5000], l3[5000];
    line_for(l1, sizeof(l1), "foo,restrict", 0);
    line_for(l2, sizeof(l2), "no-pty", 0);
    line_for(l3, sizeof(l3), "restrict,bar", 1);
    FMT(t, "%s\n%s\n%s\n", l1, l3, l2);
    shoal_authkey_opts o;
    shoal_authkeys_result r;
    /* Line 1 has k1 with an unknown option: never used, the scan goes on. */
    assert_int_equal(find(t, 0, "192.0.2.1", NULL, NOW, &o, &r), 1);
    assert_int_equal(r.line, 3);
    assert_int_equal(o.no_pty, 1);
    assert_int_equal(o.restricted, 0);
    assert_int_equal(r.refused_line, 1);
    assert_string_equal(r.refused_why, "bad options: unknown option \"foo\"");
    shoal_authkey_opts_free(&o);
    /* k2 only appears with a bad option. */
    assert_int_equal(find(t, 1, "192.0.2.1", NULL, NOW, &o, &r), 0);
    assert_int_equal(r.refused_line, 2);
    shoal_authkey_opts_free(&o);

    /* A type that does not match the blob, a truncated key, garbage base64. */
    FMT(t, "%s %s\n%s %.20s\n%s %s!!\nssh-dss %s\n", g_k[2].type, g_k[0].b64, g_k[0].type, g_k[0].b64,
        g_k[0].type, g_k[0].b64, g_k[0].b64);
    assert_int_equal(find(t, 0, "192.0.2.1", NULL, NOW, &o, &r), 0);
    assert_int_equal(find(t, 2, "192.0.2.1", NULL, NOW, &o, &r), 0);
    shoal_authkey_opts_free(&o);
    shoal_authkey_line l;
    char why[200];
    const char *nl = strchr(t, '\n');
    assert_int_equal(shoal_authkeys_parse_line(t, (size_t)(nl - t), &l, why, sizeof(why)), SHOAL_ERR_BAD_FORMAT);
    assert_string_equal(why, "key type does not match the key blob");
    shoal_authkey_line_free(&l);
    assert_int_equal(shoal_authkeys_parse_line("ssh-dss AAAA", 12, &l, why, sizeof(why)), SHOAL_ERR_BAD_FORMAT);
    shoal_authkey_line_free(&l);
    assert_int_equal(shoal_authkeys_parse_line("  # c", 5, &l, why, sizeof(why)), 0);
    shoal_authkey_line_free(&l);
    assert_int_equal(shoal_authkeys_parse_line("no-pty", 6, &l, why, sizeof(why)), SHOAL_ERR_BAD_FORMAT);
    assert_string_equal(why, "no key after the options");
    shoal_authkey_line_free(&l);

    /* cert-authority lines never match a plain key. */
    line_for(l1, sizeof(l1), "cert-authority,principals=\"a\"", 0);
    assert_int_equal(find(l1, 0, "192.0.2.1", NULL, NOW, &o, &r), 0);
    assert_int_equal(r.refused_line, 1);
    shoal_authkey_opts_free(&o);

    /* Lines over the cap, and lines with NUL bytes, are skipped. */
    char *big = malloc(SHOAL_AUTHKEYS_MAX_LINE + 6000);
    assert_non_null(big);
    line_for(l2, sizeof(l2), "", 0);
    size_t pad = SHOAL_AUTHKEYS_MAX_LINE - strlen(l2) + 1;
    memset(big, ' ', pad);
    memcpy(big + pad, l2, strlen(l2) + 1);
    assert_int_equal(find(big, 0, "192.0.2.1", NULL, NOW, &o, &r), 0);
    /* One byte shorter fits. */
    assert_int_equal(find(big + 1, 0, "192.0.2.1", NULL, NOW, &o, &r), 1);
    shoal_authkey_opts_free(&o);
    free(big);
    char withnul[5100];
    size_t wl = strlen(l2);
    memcpy(withnul, l2, wl);
    withnul[wl] = 0;
    withnul[wl + 1] = '\n';
    memcpy(withnul + wl + 2, l2, wl);
    shoal_authkeys_peer peer = {"192.0.2.1", NULL, NOW};
    withnul[3] = 0; /* first line now has a NUL inside */
    assert_int_equal(shoal_authkeys_find(withnul, 2 * wl + 2, g_k[0].key, &peer, &o, &r), 1);
    assert_int_equal(r.line, 2);
    shoal_authkey_opts_free(&o);
}

static void test_from(void **st)
{
    (void)st;
    shoal_authkey_opts o;
    char why[200];
    struct {
        const char *from, *ip, *host;
        int want;
    } cases[] = {
        {"10.0.0.0/8", "10.1.2.3", NULL, 1},
        {"10.0.0.0/8", "11.1.2.3", NULL, 0},
        {"10.0.0.0/8,!10.1.0.0/16", "10.1.2.3", NULL, 0},
        {"!10.1.0.0/16,10.0.0.0/8", "10.2.2.3", NULL, 1},
        {"192.0.2.0/25", "192.0.2.127", NULL, 1},
        {"192.0.2.0/25", "192.0.2.128", NULL, 0},
        {"0.0.0.0/0", "203.0.113.9", NULL, 1},
        {"192.0.2.7", "192.0.2.7", NULL, 1},
        {"192.0.2.7/32", "192.0.2.8", NULL, 0},
        {"2001:db8::/32", "2001:db8:1::5", NULL, 1},
        {"2001:db8::/32", "2001:db9::5", NULL, 0},
        {"2001:db8:0:0:8000::/65", "2001:db8::8000:0:0:1", NULL, 1},
        {"2001:db8:0:0:8000::/65", "2001:db8::7fff:0:0:1", NULL, 0},
        {"::1", "::1", NULL, 1},
        /* IPv4-mapped clients match IPv4 entries. */
        {"192.0.2.0/24", "::ffff:192.0.2.9", NULL, 1},
        /* Wildcards on the address text. */
        {"192.0.2.*", "192.0.2.44", NULL, 1},
        {"192.0.2.?", "192.0.2.44", NULL, 0},
        /* Host names: case-insensitive, wildcards, negation. */
        {"*.example.com", "198.51.100.1", "Host.Example.COM", 1},
        {"*.example.com,!bad.example.com", "198.51.100.1", "bad.example.com", 0},
        {"*.example.com", "198.51.100.1", "example.org", 0},
        {"*.example.com", "198.51.100.1", NULL, 0},
        /* A negated name refuses even when the address matches. */
        {"198.51.100.0/24,!evil.example.com", "198.51.100.1", "evil.example.com", 0},
        {"198.51.100.0/24,!evil.example.com", "198.51.100.1", "good.example.com", 1},
        /* Malformed lists refuse: inconsistent mask, too long, empty entry. */
        {"10.0.0.1/8", "10.0.0.1", NULL, 0},
        {"10.0.0.0/33", "10.0.0.1", NULL, 0},
        {"10.0.0.1,,x", "10.0.0.1", NULL, 0},
        {"!", "10.0.0.1", NULL, 0},
        /* A negation alone never admits. */
        {"!10.0.0.1", "10.0.0.2", NULL, 0},
        /* No address: refuse. */
        {"*", NULL, NULL, 0},
        {"*", "10.9.9.9", NULL, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char opt[300];
        FMT(opt, "from=\"%s\"", cases[i].from);
        assert_int_equal(shoal_authkey_opts_parse(opt, strlen(opt), &o, why, sizeof(why)), 0);
        int got = shoal_authkey_from_allowed(&o, cases[i].ip, cases[i].host);
        if (got != cases[i].want)
            fail_msg("from=\"%s\" ip=%s host=%s: got %d want %d", cases[i].from, cases[i].ip ? cases[i].ip : "-",
                     cases[i].host ? cases[i].host : "-", got, cases[i].want);
        shoal_authkey_opts_free(&o);
    }
    /* No from= at all admits anyone. */
    shoal_authkey_opts_init(&o);
    assert_int_equal(shoal_authkey_from_allowed(&o, "10.0.0.1", NULL), 1);

    /* Through the lookup: refused lines do not stop the scan. */
    if (!g_have_keygen)
        return;
    char t[16384], l1[5000], l2[5000];
    line_for(l1, sizeof(l1), "from=\"10.0.0.0/8\",command=\"one\"", 0);
    line_for(l2, sizeof(l2), "from=\"2001:db8::/32\",command=\"two\"", 0);
    FMT(t, "%s\n%s\n", l1, l2);
    shoal_authkeys_result r;
    assert_int_equal(find(t, 0, "10.3.3.3", NULL, NOW, &o, &r), 1);
    assert_string_equal(o.command, "one");
    shoal_authkey_opts_free(&o);
    assert_int_equal(find(t, 0, "2001:db8::3", NULL, NOW, &o, &r), 1);
    assert_string_equal(o.command, "two");
    assert_int_equal(r.line, 2);
    assert_int_equal(r.refused_line, 1);
    assert_string_equal(r.refused_why, "from= does not admit 2001:db8::3");
    shoal_authkey_opts_free(&o);
    assert_int_equal(find(t, 0, "192.0.2.1", NULL, NOW, &o, &r), 0);
    shoal_authkey_opts_free(&o);
    assert_int_equal(find(t, 0, NULL, NULL, NOW, &o, &r), 0);
    shoal_authkey_opts_free(&o);
}

static void test_expiry(void **st)
{
    (void)st;
    int64_t t;
    assert_int_equal(shoal_authkey_parse_time("19700102Z", &t), 0);
    assert_true(t == 86400);
    assert_int_equal(shoal_authkey_parse_time("20240229Z", &t), 0);
    assert_true(t == 1709164800);
    assert_int_equal(shoal_authkey_parse_time("202402291230Z", &t), 0);
    assert_true(t == 1709164800 + 12 * 3600 + 30 * 60);
    assert_int_equal(shoal_authkey_parse_time("20240229123045utc", &t), 0);
    assert_true(t == 1709164800 + 12 * 3600 + 30 * 60 + 45);
    assert_int_equal(shoal_authkey_parse_time("21000301Z", &t), 0);
    assert_true(t == 4107542400);
    assert_int_equal(shoal_authkey_parse_time("20000229Z", &t), 0);
    assert_true(t == 951782400);
    assert_int_equal(shoal_authkey_parse_time("21000229Z", &t), -1); /* 2100 is no leap year */
    assert_int_equal(shoal_authkey_parse_time("20230229", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("20231301", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("202312312400", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("20231231235960", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("19700101Z", &t), -1); /* time 0 is refused, as OpenSSH */
    assert_int_equal(shoal_authkey_parse_time("2023123", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("Z", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("", &t), -1);
    assert_int_equal(shoal_authkey_parse_time("+0231231", &t), -1);

    /* Local time follows TZ. */
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    setenv("TZ", "EST5", 1);
    tzset();
    assert_int_equal(shoal_authkey_parse_time("20240101", &t), 0);
    assert_true(t == 1704085200); /* 2024-01-01 05:00 UTC */
    assert_int_equal(shoal_authkey_parse_time("202401010130", &t), 0);
    assert_true(t == 1704085200 + 5400);
    if (old) {
        setenv("TZ", old, 1);
        free(old);
    } else {
        unsetenv("TZ");
    }
    tzset();

    shoal_authkey_opts o;
    char why[200];
    const char *two = "expiry-time=\"20991231Z\",expiry-time=\"20300101Z\"";
    assert_int_equal(shoal_authkey_opts_parse(two, strlen(two), &o, why, sizeof(why)), 0);
    assert_true(o.expiry_time == 1893456000); /* the earliest wins */
    assert_int_equal(shoal_authkey_expired(&o, 1893456000), 0); /* valid through that second */
    assert_int_equal(shoal_authkey_expired(&o, 1893456001), 1);
    shoal_authkey_opts_free(&o);
    assert_int_equal(shoal_authkey_expired(&o, INT64_MAX), 0); /* none set */

    if (!g_have_keygen)
        return;
    char txt[16384], l1[5000], l2[5000];
    line_for(l1, sizeof(l1), "expiry-time=\"20000101\",command=\"old\"", 0);
    line_for(l2, sizeof(l2), "expiry-time=\"29991231Z\",command=\"new\"", 0);
    FMT(txt, "%s\n%s\n", l1, l2);
    shoal_authkeys_result r;
    assert_int_equal(find(txt, 0, "192.0.2.1", NULL, NOW, &o, &r), 1);
    assert_string_equal(o.command, "new");
    assert_int_equal(r.refused_line, 1);
    assert_string_equal(r.refused_why, "key expired");
    shoal_authkey_opts_free(&o);
    assert_int_equal(find(l1, 0, "192.0.2.1", NULL, NOW, &o, &r), 0);
    shoal_authkey_opts_free(&o);
}

static void test_permitopen(void **st)
{
    (void)st;
    shoal_authkey_opts o;
    char why[200];
    const char *s = "permitopen=\"db.internal:5432\",permitopen=\"[2001:db8::1]:*\",permitopen=\"*:443\"";
    assert_int_equal(shoal_authkey_opts_parse(s, strlen(s), &o, why, sizeof(why)), 0);
    assert_int_equal(shoal_authkey_open_allowed(&o, "db.internal", 5432), 1);
    assert_int_equal(shoal_authkey_open_allowed(&o, "db.internal", 5433), 0);
    assert_int_equal(shoal_authkey_open_allowed(&o, "DB.internal", 5432), 0); /* literal, as OpenSSH */
    assert_int_equal(shoal_authkey_open_allowed(&o, "2001:db8::1", 22), 1);
    assert_int_equal(shoal_authkey_open_allowed(&o, "anything", 443), 1);
    assert_int_equal(shoal_authkey_open_allowed(&o, "anything", 80), 0);
    shoal_authkey_opts_free(&o);
    s = "restrict,permitopen=\"a:1\"";
    assert_int_equal(shoal_authkey_opts_parse(s, strlen(s), &o, why, sizeof(why)), 0);
    assert_int_equal(shoal_authkey_open_allowed(&o, "a", 1), 0);
    shoal_authkey_opts_free(&o);
    assert_int_equal(shoal_authkey_open_allowed(&o, "x", 1), 1); /* no restriction at all */
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_file(void **st)
{
    (void)st;
    NEED_KEYGEN();
    char path[600], line[5000];
    shoal_authkey_opts o;
    shoal_authkeys_result r;
    shoal_authkeys_peer peer = {"192.0.2.1", NULL, NOW};
    FMT(path, "%s/missing", g_dir);
    assert_int_equal(shoal_authkeys_find_file(path, g_k[0].key, &peer, &o, &r), 0);
    FMT(path, "%s/ak", g_dir);
    line_for(line, sizeof(line), "command=\"x\"", 0);
    write_text(path, line);
    assert_int_equal(shoal_authkeys_find_file(path, g_k[0].key, &peer, &o, &r), 1);
    assert_string_equal(o.command, "x");
    shoal_authkey_opts_free(&o);
    assert_int_equal(shoal_authkeys_find_file(path, g_k[1].key, &peer, &o, &r), 0);
    /* A directory, a FIFO (never blocks), an oversize file. */
    assert_int_equal(shoal_authkeys_find_file(g_dir, g_k[0].key, &peer, &o, &r), SHOAL_ERR_IO);
    FMT(path, "%s/fifo", g_dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(shoal_authkeys_find_file(path, g_k[0].key, &peer, &o, &r), SHOAL_ERR_IO);
    FMT(path, "%s/big", g_dir);
    assert_int_equal(tu_system("truncate -s %u '%s'", SHOAL_AUTHKEYS_MAX_FILE + 1, path), 0);
    assert_int_equal(shoal_authkeys_find_file(path, g_k[0].key, &peer, &o, &r), SHOAL_ERR_TOO_LARGE);
    /* Arguments. */
    assert_int_equal(shoal_authkeys_find("x", 1, g_k[0].key, NULL, &o, &r), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_authkeys_find(NULL, 1, g_k[0].key, &peer, &o, &r), SHOAL_ERR_INVALID_ARG);
}

/* ssh-keygen -l lists the keys of an authorized_keys file, options
 * included, using OpenSSH's own line splitter (sshkey_advance_past_options).
 * Every line it lists must parse here to the same key and comment, and the
 * lines it rejects structurally must be refused here too. */
static void test_interop_ssh_keygen(void **st)
{
    (void)st;
    NEED_KEYGEN();
    static const char *const opts[] = {
        "",
        "restrict,pty",
        "command=\"echo \\\"hi there\\\"; exit 1\",no-pty,from=\"10.0.0.0/8,!10.1.*\"",
        "environment=\"A=b c\",environment=\"PATH=/x\"",
        "permitopen=\"[::1]:22\",permitopen=\"h:*\",permitlisten=\"8000\"",
        "expiry-time=\"20991231\",no-agent-forwarding,no-port-forwarding,no-X11-forwarding,no-user-rc",
        "command=\"a\\\\\\\"b\"",
        "cert-authority,principals=\"a,b\"",
        "Restrict,No-Pty,tunnel=\"any\",no-touch-required,verify-required",
    };
    enum { N = sizeof(opts) / sizeof(opts[0]) };
    char path[600], lines[N][5000];
    FMT(path, "%s/interop_ak", g_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fprintf(f, "# comment line\n\n");
    for (int i = 0; i < N; i++) {
        line_for(lines[i], sizeof(lines[i]), opts[i], i % 4);
        fprintf(f, "%s\n", lines[i]);
    }
    /* Rejected by OpenSSH's splitter: an unterminated quote. */
    fprintf(f, "command=\"open %s %s\n", g_k[0].type, g_k[0].b64);
    assert_int_equal(fclose(f), 0);

    char cmd[800], outp[600];
    FMT(outp, "%s/interop_out", g_dir);
    FMT(cmd, "ssh-keygen -l -E sha256 -f '%s' > '%s' 2>/dev/null", path, outp);
    assert_int_equal(tu_system("%s", cmd), 0);
    size_t n;
    char *out = (char *)tu_read_file(outp, &n);
    assert_non_null(out);
    /* One output line per listed key: "bits SHA256:fp comment (TYPE)". */
    int listed = 0;
    char *save = NULL;
    for (char *ln = strtok_r(out, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        unsigned bits;
        char fp[128], comment[64];
        assert_int_equal(sscanf(ln, "%u %127s %63s", &bits, fp, comment), 3);
        assert_true(listed < N);
        shoal_authkey_line l;
        char why[200] = "";
        int rc = shoal_authkeys_parse_line(lines[listed], strlen(lines[listed]), &l, why, sizeof(why));
        if (rc != 1)
            fail_msg("line %d refused (%s): %s", listed, why, lines[listed]);
        shoal_key *k = NULL;
        assert_int_equal(shoal_key_from_blob(l.blob, l.blob_len, &k), 0);
        char myfp[128];
        assert_int_equal(shoal_key_fingerprint(k, myfp, sizeof(myfp)), 0);
        assert_string_equal(myfp, fp);
        assert_int_equal(shoal_key_bits(k), bits);
        assert_string_equal(l.comment, comment);
        shoal_key_free(k);
        shoal_authkey_line_free(&l);
        listed++;
    }
    assert_int_equal(listed, N);
    free(out);
    /* The unterminated line, which ssh-keygen did not list. */
    char bad[5000];
    FMT(bad, "command=\"open %s %s", g_k[0].type, g_k[0].b64);
    shoal_authkey_line l;
    char why[200];
    assert_int_equal(shoal_authkeys_parse_line(bad, strlen(bad), &l, why, sizeof(why)), SHOAL_ERR_BAD_FORMAT);
    shoal_authkey_line_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_multiple),
        cmocka_unit_test(test_every_option),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_restrict_and_pty),
        cmocka_unit_test(test_bad_line_is_skipped),
        cmocka_unit_test(test_from),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_permitopen),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_interop_ssh_keygen),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
