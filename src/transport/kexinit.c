/* KEXINIT: building ours, parsing the peer's, negotiating algorithms
 * (RFC 4253 7.1), strict kex and ext-info markers (OpenSSH PROTOCOL 1.9/1.10,
 * RFC 8308). */
#include <string.h>

#include "keys/key.h"
#include "transport/kexinit.h"
#include "transport/transport_impl.h"

static const char EXT_INFO_C[] = "ext-info-c";
static const char EXT_INFO_S[] = "ext-info-s";
static const char STRICT_C[] = "kex-strict-c-v00@openssh.com";
static const char STRICT_S[] = "kex-strict-s-v00@openssh.com";

/* Host key algorithms a server can offer: those of its list for which it
 * holds a key. */
static int put_server_hostkey_algs(shoal_session *s, shoal_buf *out)
{
    shoal_transport *t = shoal__tp(s);
    size_t mark;
    int rc = shoal_buf_begin_string(out, &mark), first = 1;
    const char *cur = t->hostkey_algs, *end = cur + strlen(cur), *nm;
    size_t l;
    while (!rc && shoal_namelist_next(&cur, end, &nm, &l)) {
        int have = 0;
        for (unsigned i = 0; i < t->n_host_keys && !have; i++)
            have = shoal_key_sigalg_valid(t->host_keys[i], nm, l);
        if (!have)
            continue;
        if (!first)
            rc = shoal_buf_put(out, ",", 1);
        if (!rc)
            rc = shoal_buf_put(out, nm, l);
        first = 0;
    }
    if (!rc)
        shoal_buf_end_string(out, mark);
    return rc;
}

int shoal__kexinit_build(shoal_session *s, shoal_buf *out)
{
    shoal_transport *t = shoal__tp(s);
    uint8_t cookie[16];
    int rc = shoal_random_public(cookie, sizeof(cookie));
    shoal_buf_reset(out);
    if (!rc)
        rc = shoal_buf_put_u8(out, SSH_MSG_KEXINIT);
    if (!rc)
        rc = shoal_buf_put(out, cookie, sizeof(cookie));
    if (!rc) {
        /* The pseudo-algorithms go only in the first KEXINIT: strict kex and
         * ext-info are negotiated once per connection. */
        size_t mark;
        rc = shoal_buf_begin_string(out, &mark);
        if (!rc)
            rc = shoal_buf_put(out, t->kex_algs, strlen(t->kex_algs));
        if (!rc && !t->first_kex_done) {
            const char *ext = t->is_server ? EXT_INFO_S : EXT_INFO_C;
            const char *strict = t->is_server ? STRICT_S : STRICT_C;
            rc = shoal_buf_put(out, ",", 1);
            if (!rc)
                rc = shoal_buf_put(out, ext, strlen(ext));
            if (!rc)
                rc = shoal_buf_put(out, ",", 1);
            if (!rc)
                rc = shoal_buf_put(out, strict, strlen(strict));
        }
        if (!rc)
            shoal_buf_end_string(out, mark);
    }
    if (!rc)
        rc = t->is_server ? put_server_hostkey_algs(s, out) : shoal_buf_put_cstring(out, t->hostkey_algs);
    const char *lists[8] = {t->ciphers, t->ciphers, t->macs, t->macs, "none", "none", "", ""};
    for (int i = 0; !rc && i < 8; i++)
        rc = shoal_buf_put_cstring(out, lists[i]);
    if (!rc)
        rc = shoal_buf_put_bool(out, 0); /* first_kex_packet_follows */
    if (!rc)
        rc = shoal_buf_put_u32(out, 0);
    return rc;
}

int shoal__kexinit_parse(const uint8_t *p, size_t n, kexinit_lists *kl)
{
    shoal_rd r;
    uint8_t type;
    memset(kl, 0, sizeof(*kl));
    shoal_rd_init(&r, p, n);
    int rc = shoal_rd_u8(&r, &type);
    if (!rc && type != SSH_MSG_KEXINIT)
        rc = SHOAL_ERR_PROTOCOL;
    if (!rc)
        rc = shoal_rd_skip(&r, 16);
    for (int i = 0; !rc && i < KEXINIT_NLISTS; i++)
        rc = shoal_rd_namelist(&r, &kl->list[i], &kl->len[i]);
    if (!rc)
        rc = shoal_rd_bool(&r, &kl->first_follows);
    uint32_t reserved;
    if (!rc)
        rc = shoal_rd_u32(&r, &reserved);
    if (!rc)
        rc = shoal_rd_end(&r);
    return rc;
}

/* Chooses the client's first algorithm the server also lists, skipping the
 * pseudo-algorithms (they are markers, not methods). */
static int choose(const char *client, size_t clen, const char *server, size_t slen, char *out, size_t outsz)
{
    const char *cur = client, *end = client + clen, *nm;
    size_t l;
    while (shoal_namelist_next(&cur, end, &nm, &l)) {
        if ((l == strlen(EXT_INFO_C) && memcmp(nm, EXT_INFO_C, l) == 0) ||
            (l == strlen(STRICT_C) && memcmp(nm, STRICT_C, l) == 0))
            continue;
        if (l + 1 > outsz)
            continue;
        char name[128];
        if (l >= sizeof(name))
            continue;
        memcpy(name, nm, l);
        name[l] = 0;
        if (shoal_namelist_has(server, slen, name)) {
            memcpy(out, name, l + 1);
            return SHOAL_OK;
        }
    }
    return SHOAL_ERR_NO_ALGORITHM;
}

static void first_name(const char *list, size_t len, char *out, size_t outsz)
{
    const char *cur = list, *nm;
    size_t l;
    out[0] = 0;
    if (shoal_namelist_next(&cur, list + len, &nm, &l) && l < outsz) {
        memcpy(out, nm, l);
        out[l] = 0;
    }
}

int shoal__kexinit_negotiate(shoal_session *s, const kexinit_lists *mine, const kexinit_lists *peer)
{
    shoal_transport *t = shoal__tp(s);
    /* RFC 4253 7.1: the client's preference decides, whoever we are. */
    const kexinit_lists *cl = t->is_server ? peer : mine, *sv = t->is_server ? mine : peer;
    static const char *const what[] = {"key exchange", "host key", "cipher (client to server)",
                                       "cipher (server to client)", "MAC (client to server)",
                                       "MAC (server to client)"};
    char *outs[6] = {t->alg_kex, t->alg_hostkey, t->alg_cipher_c2s, t->alg_cipher_s2c, t->alg_mac_c2s,
                     t->alg_mac_s2c};
    for (int i = 0; i < 6; i++) {
        outs[i][0] = 0;
        if (i >= 4) {
            /* AEAD ciphers carry their own integrity: no MAC is negotiated. */
            const shoal_cipher_alg *c = shoal_cipher_find(i == 4 ? t->alg_cipher_c2s : t->alg_cipher_s2c);
            if (c && c->aead)
                continue;
        }
        int rc = choose(cl->list[i], cl->len[i], sv->list[i], sv->len[i], outs[i], 64);
        if (rc) {
            char theirs[200];
            size_t l = peer->len[i] < sizeof(theirs) - 1 ? peer->len[i] : sizeof(theirs) - 1;
            memcpy(theirs, peer->list[i], l);
            theirs[l] = 0;
            return shoal__fail(s, SHOAL_ERR_NO_ALGORITHM, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                               "no matching %s algorithm; %s offers: %s", what[i], t->is_server ? "client" : "server",
                               l ? theirs : "(nothing)");
        }
    }
    for (int i = KEXINIT_COMP_C2S; i <= KEXINIT_COMP_S2C; i++)
        if (!shoal_namelist_has(peer->list[i], peer->len[i], "none"))
            return shoal__fail(s, SHOAL_ERR_NO_ALGORITHM, SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                               "%s requires compression", t->is_server ? "client" : "server");
    t->kex_alg = shoal_kex_find(t->alg_kex);
    if (!t->kex_alg)
        return shoal__fail(s, SHOAL_ERR_NO_ALGORITHM, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "unknown kex %s",
                           t->alg_kex);
    if (!t->first_kex_done) {
        t->strict = shoal_namelist_has(peer->list[0], peer->len[0], t->is_server ? STRICT_C : STRICT_S);
        t->peer_ext_info = shoal_namelist_has(peer->list[0], peer->len[0], t->is_server ? EXT_INFO_C : EXT_INFO_S);
        /* Strict kex: KEXINIT must have been the very first packet. */
        if (t->strict && t->rx_packets_total != 1)
            return shoal__fail(s, SHOAL_ERR_STRICT_KEX, SSH_DISCONNECT_PROTOCOL_ERROR,
                               "strict kex: KEXINIT was not the first packet");
    }
    if (peer->first_follows) {
        /* The peer guessed; the guess is right only if both first choices
         * are what was negotiated (RFC 4253 7.1). */
        char k[64], h[64];
        first_name(peer->list[0], peer->len[0], k, sizeof(k));
        first_name(peer->list[1], peer->len[1], h, sizeof(h));
        if (strcmp(k, t->alg_kex) != 0 || strcmp(h, t->alg_hostkey) != 0)
            t->ignore_next_kex_packet = 1;
    }
    shoal__log(s, 1, "kex %s, host key %s, ciphers %s / %s, MACs %s / %s%s", t->alg_kex, t->alg_hostkey,
               t->alg_cipher_c2s, t->alg_cipher_s2c, t->alg_mac_c2s[0] ? t->alg_mac_c2s : "(aead)",
               t->alg_mac_s2c[0] ? t->alg_mac_s2c : "(aead)", t->strict ? ", strict kex" : "");
    return SHOAL_OK;
}
