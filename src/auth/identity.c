/* The client's identities: public key blobs to offer, with the private key
 * when it is known (else the signature is asked of the application). */
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "session/session_impl.h"

/* 1 when blob is exactly key's public blob: then key serves as is and the
 * blob needs no parsing (a libcrypto key object fewer per connection when
 * a fan-out offers the same preloaded key to thousands of hosts). */
static int blob_is_key(const shoal_key *key, const uint8_t *blob, size_t blob_len)
{
    shoal_buf b;
    shoal_buf_init(&b, SHOAL_KEY_MAX_BLOB);
    int same = shoal_key_to_blob(key, &b) == 0 && shoal_buf_len(&b) == blob_len &&
               memcmp(shoal_buf_ptr(&b), blob, blob_len) == 0;
    shoal_buf_free(&b);
    return same;
}

int shoal_session_add_identity(shoal_session *s, const uint8_t *blob, size_t blob_len, shoal_key *key_owned)
{
    shoal_key *pub = NULL;
    int rc = SHOAL_OK;
    if (!(key_owned && shoal_key_has_private(key_owned) && blob_is_key(key_owned, blob, blob_len)))
        rc = shoal_key_from_blob(blob, blob_len, &pub);
    if (rc) {
        shoal_key_free(key_owned);
        return rc;
    }
    if (s->auth.n_idents == s->auth.ident_cap) {
        unsigned ncap = s->auth.ident_cap ? s->auth.ident_cap * 2 : 8;
        identity *ni = realloc(s->auth.idents, ncap * sizeof(*ni));
        if (!ni) {
            shoal_key_free(pub);
            shoal_key_free(key_owned);
            return SHOAL_ERR_NOMEM;
        }
        s->auth.idents = ni;
        s->auth.ident_cap = ncap;
    }
    identity *id = &s->auth.idents[s->auth.n_idents];
    memset(id, 0, sizeof(*id));
    id->blob = malloc(blob_len);
    if (!id->blob) {
        shoal_key_free(pub);
        shoal_key_free(key_owned);
        return SHOAL_ERR_NOMEM;
    }
    memcpy(id->blob, blob, blob_len);
    id->blob_len = blob_len;
    if (key_owned && shoal_key_has_private(key_owned) && (!pub || shoal_key_equal_public(key_owned, pub))) {
        shoal_key_free(pub);
        id->key = key_owned;
        id->has_private = 1;
    } else {
        shoal_key_free(key_owned);
        id->key = pub;
    }
    return (int)s->auth.n_idents++;
}
