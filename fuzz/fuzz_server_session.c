/* Fuzzes a whole server session from the network side: the input (after
 * its first byte) is what a client sends, fed in chunks whose size the
 * first byte chooses (0 = all at once), so the version exchange, packet
 * reassembly, the server's message table, KEXINIT negotiation (strict kex,
 * ext-info, first_kex_packet_follows) and the server half of the key
 * exchange (the client's ephemeral value, host key signature) see every
 * way TCP can cut a stream. Plaintext only: after the client's NEWKEYS the
 * fuzzer cannot encrypt, fuzz_userauth covers what lies beyond.
 *
 * The host key is an ed25519 key generated in memory at the first call
 * (libcrypto keygen, PEM in a memory BIO, shoal_key_load_private): no key
 * is stored anywhere.
 *
 * Beyond crashes it checks the session's contract: a failed recv leaves
 * the session closed with that error, the closed callback fires exactly
 * once, and no application callback is reached without keys. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "shoal/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static shoal_key *host_key;

static shoal_key *make_host_key(void)
{
    shoal_key *k = NULL;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n;
    if (!pk || !bio || PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(bio, &pem)) <= 0 || shoal_key_load_private((const uint8_t *)pem, (size_t)n, NULL, &k))
        abort();
    BIO_free(bio);
    EVP_PKEY_free(pk);
    return k;
}

typedef struct fuzz_state {
    unsigned closed_calls;
    int closed_err;
    unsigned app_calls; /* auth, authenticated, channel_open: unreachable here */
    size_t log_bytes;
} fuzz_state;

static int on_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    (void)s;
    (void)req;
    ((fuzz_state *)ud)->app_calls++;
    return SHOAL_AUTH_DENY;
}

static void on_authenticated(shoal_session *s, const char *user, void *ud)
{
    (void)s;
    (void)user;
    ((fuzz_state *)ud)->app_calls++;
}

static int on_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s;
    (void)ch;
    (void)type;
    ((fuzz_state *)ud)->app_calls++;
    return 1;
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    fuzz_state *st = ud;
    (void)s;
    st->closed_calls++;
    st->closed_err = err;
    /* Built from client bytes (version, DISCONNECT text): read it all. */
    for (const char *p = message; p && *p; p++)
        st->log_bytes++;
}

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
    if (!host_key)
        host_key = make_host_key();
    if (size == 0)
        return 0;
    size_t chunk = data[0] ? data[0] : size;
    data++;
    size--;

    fuzz_state st = {0, 0, 0, 0};
    shoal_server_config cfg = {.size = sizeof(shoal_server_config)};
    cfg.host_keys = &host_key;
    cfg.n_host_keys = 1;
    cfg.banner = "fuzz banner";
    shoal_server_callbacks cb = {
        sizeof(shoal_server_callbacks), on_auth, on_authenticated, on_channel_open, on_closed, on_log};
    shoal_session *s = NULL;
    if (shoal_session_new_server(&s, &cfg, &cb, &st) != 0)
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
        if (rc != 0 && (!shoal_session_is_closed(s) || shoal_session_error(s, NULL) != rc || st.closed_calls != 1 ||
                        st.closed_err != rc))
            abort();
        if (shoal_session_deadline(s) <= now)
            shoal_session_tick(s, now);
        now += 10;
    }
    /* Without the client's keys nothing reaches authentication. */
    if (st.app_calls || shoal_session_phase(s) == SHOAL_PHASE_OPEN || shoal_session_auth_user(s))
        abort();
    shoal_session_recv_eof(s, now);
    drain(s);
    if (!shoal_session_is_closed(s) || st.closed_calls != 1)
        abort();
    shoal_session_free(s);
    return 0;
}
