/* Shared state for fan-out programs: shoal_key_ref (one key, several
 * owners, signing from two threads at once) and the loop-local agent
 * limiter's queue (FIFO hand-over, cancel while waiting, no double release). */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "uv/conn_impl.h"

static char *g_dir;
static int g_have_keygen;

static int group_setup(void **st)
{
    (void)st;
    g_dir = tu_mkdtemp();
    g_have_keygen = tu_have("ssh-keygen");
    if (g_have_keygen) {
        if (tu_system("ssh-keygen -q -t ed25519 -N '' -f '%s/ed' </dev/null >/dev/null 2>&1", g_dir) != 0 ||
            tu_system("ssh-keygen -q -t ecdsa -b 256 -N '' -f '%s/ec' </dev/null >/dev/null 2>&1", g_dir) != 0 ||
            tu_system("ssh-keygen -q -t rsa -b 2048 -N '' -f '%s/rsa' </dev/null >/dev/null 2>&1", g_dir) != 0)
            return -1;
    }
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

static shoal_key *load(const char *name)
{
    char p[600];
    assert_true(snprintf(p, sizeof(p), "%s/%s", g_dir, name) < (int)sizeof(p));
    shoal_key *k = NULL;
    assert_int_equal(shoal_key_load_private_file(p, NULL, &k), 0);
    return k;
}

static void test_key_ref(void **st)
{
    (void)st;
    if (!g_have_keygen)
        skip();
    shoal_key *k = load("ed");
    assert_ptr_equal(shoal_key_ref(k), k);
    assert_ptr_equal(shoal_key_ref(k), k);
    assert_null(shoal_key_ref(NULL));
    /* Two of three references dropped: still usable. */
    shoal_key_free(k);
    shoal_key_free(k);
    assert_true(shoal_key_has_private(k));
    char fp[128];
    assert_int_equal(shoal_key_fingerprint(k, fp, sizeof(fp)), 0);
    shoal_key_free(k); /* the last one frees (ASan would flag a leak otherwise) */
}

typedef struct signer {
    shoal_key *key;
    const char *alg;
    int errors;
} signer;

static void *sign_loop(void *p)
{
    signer *s = p;
    for (int i = 0; i < 200; i++) {
        uint8_t data[64];
        memset(data, i, sizeof(data));
        shoal_buf sig;
        shoal_buf_init(&sig, 1u << 16);
        if (shoal_key_sign(s->key, s->alg, data, sizeof(data), &sig) != 0 ||
            shoal_key_verify(s->key, s->alg, shoal_buf_ptr(&sig), shoal_buf_len(&sig), data, sizeof(data)) != 0)
            s->errors++;
        shoal_buf_free(&sig);
    }
    shoal_key_free(s->key); /* each thread owns one reference */
    return NULL;
}

/* One EVP_PKEY, two threads signing at once: each signature has its own
 * EVP_MD_CTX (src/keys/sig.c), the key is only read. */
static void test_sign_from_two_threads(void **st)
{
    (void)st;
    if (!g_have_keygen)
        skip();
    static const struct {
        const char *file, *alg;
    } kinds[] = {{"ed", NULL}, {"ec", NULL}, {"rsa", "rsa-sha2-256"}};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        shoal_key *key = load(kinds[k].file);
        signer s[2] = {{shoal_key_ref(key), kinds[k].alg, 0}, {shoal_key_ref(key), kinds[k].alg, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, sign_loop, &s[i]), 0);
        shoal_key_free(key); /* the threads now hold the only references */
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(s[0].errors, 0);
        assert_int_equal(s[1].errors, 0);
    }
}

static int g_granted[4];
static shoal__lim_node g_nodes[4];

static void granted_node(shoal__lim_node *n)
{
    g_granted[n - g_nodes]++;
}

static void test_limiter(void **st)
{
    (void)st;
    shoal_uv_limiter *l = NULL;
    assert_int_equal(shoal_uv_limiter_new(0, &l), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_uv_limiter_new(2, &l), 0);
    memset(g_nodes, 0, sizeof(g_nodes));
    memset(g_granted, 0, sizeof(g_granted));
    shoal__lim_node *a = &g_nodes[0], *b = &g_nodes[1], *c = &g_nodes[2], *d = &g_nodes[3];
    unsigned waiting;
    assert_int_equal(shoal__lim_acquire(l, a, granted_node), 1);
    assert_int_equal(shoal__lim_acquire(l, b, granted_node), 1);
    assert_int_equal(shoal__lim_acquire(l, c, granted_node), 0);
    assert_int_equal(shoal__lim_acquire(l, d, granted_node), 0);
    assert_int_equal(shoal_uv_limiter_in_use(l, &waiting), 2);
    assert_int_equal(waiting, 2);
    /* c gives up while waiting: it leaves the queue, nothing is granted. */
    shoal__lim_release(c);
    assert_int_equal(shoal_uv_limiter_in_use(l, &waiting), 2);
    assert_int_equal(waiting, 1);
    assert_int_equal(g_granted[2], 0);
    /* a releases: d (the oldest waiter left) gets the slot. */
    shoal__lim_release(a);
    assert_int_equal(g_granted[3], 1);
    assert_int_equal(d->state, SHOAL_LIM_HOLDING);
    assert_int_equal(shoal_uv_limiter_in_use(l, &waiting), 2);
    assert_int_equal(waiting, 0);
    /* Releasing twice, or releasing a node that never queued, changes nothing. */
    shoal__lim_release(a);
    shoal__lim_release(c);
    shoal__lim_node never;
    memset(&never, 0, sizeof(never));
    shoal__lim_release(&never);
    assert_int_equal(shoal_uv_limiter_in_use(l, NULL), 2);
    shoal__lim_release(b);
    shoal__lim_release(d);
    assert_int_equal(shoal_uv_limiter_in_use(l, &waiting), 0);
    assert_int_equal(waiting, 0);
    /* A newcomer does not jump the queue. */
    assert_int_equal(shoal__lim_acquire(l, a, granted_node), 1);
    assert_int_equal(shoal__lim_acquire(l, b, granted_node), 1);
    assert_int_equal(shoal__lim_acquire(l, c, granted_node), 0);
    shoal__lim_release(a);
    assert_int_equal(g_granted[2], 1);
    assert_int_equal(shoal__lim_acquire(l, d, granted_node), 0);
    shoal__lim_release(b);
    shoal__lim_release(c);
    assert_int_equal(g_granted[3], 2);
    shoal__lim_release(d);
    assert_int_equal(shoal_uv_limiter_in_use(l, NULL), 0);
    shoal_uv_limiter_free(l);
    shoal_uv_limiter_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_ref),
        cmocka_unit_test(test_sign_from_two_threads),
        cmocka_unit_test(test_limiter),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
