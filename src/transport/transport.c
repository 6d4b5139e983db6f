/* The transport's part of the session: its buffers at creation, everything
 * it owns at the end. */
#include <stdlib.h>

#include "keys/key.h"
#include "transport/transport_impl.h"

void shoal__transport_init(shoal_transport *t)
{
    shoal_buf_init(&t->in, SHOAL_MAX_PACKET + 4096 + (1u << 20));
    shoal_buf_init(&t->out, 64u << 20);
    shoal_buf_init(&t->my_kexinit, 16384);
    shoal_buf_init(&t->peer_kexinit, 65536);
    shoal_buf_init(&t->kex_queue, SHOAL_KEX_QUEUE_MAX);
    shoal_buf_init(&t->kex_pub, 4096);
    shoal_buf_init(&t->K, 4096);
}

void shoal__transport_free(shoal_session *s)
{
    shoal_transport *t = shoal__tp(s);
    shoal__kex_free(s);
    shoal_pktcrypt_free(t->rx);
    shoal_pktcrypt_free(t->tx);
    shoal_buf_free(&t->in);
    shoal_buf_free(&t->out);
    shoal_buf_free(&t->my_kexinit);
    shoal_buf_free(&t->peer_kexinit);
    shoal_buf_free(&t->kex_queue);
    shoal_buf_free(&t->kex_pub);
    shoal_buf_free(&t->K);
    shoal_key_free(t->hostkey);
    free(t->host_keys);
    free(t->kex_algs);
    free(t->hostkey_algs);
    free(t->ciphers);
    free(t->macs);
    free(t->our_version);
}
