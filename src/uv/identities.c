/* Key-file identities for publickey authentication, and preloaded keys
 * (shoal_uv_options.keys), which go first: each identity holds a reference
 * to the shared key (shoal_key_ref), dropped when the session is freed.
 *
 * An unencrypted key is loaded at once. For an encrypted key we only need
 * its public half to ask the server (from "<file>.pub"); the passphrase is
 * asked only if the server accepts that key, as OpenSSH does. Without a .pub
 * file the passphrase is asked up front. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/key.h"
#include "uv/conn_impl.h"

static int remember_path(shoal_uv_conn *c, int ident, const char *path, int agent_index)
{
    if (ident < 0)
        return ident;
    unsigned need = (unsigned)ident + 1;
    if (need > c->n_ident_paths) {
        char **np = realloc(c->ident_paths, need * sizeof(char *));
        if (!np)
            return SHOAL_ERR_NOMEM;
        int *na = realloc(c->agent_ident, need * sizeof(int));
        if (!na) {
            c->ident_paths = np;
            return SHOAL_ERR_NOMEM;
        }
        for (unsigned i = c->n_ident_paths; i < need; i++) {
            np[i] = NULL;
            na[i] = -1;
        }
        c->ident_paths = np;
        c->agent_ident = na;
        c->n_ident_paths = need;
    }
    c->ident_paths[ident] = path ? strdup(path) : NULL;
    c->agent_ident[ident] = agent_index;
    return SHOAL_OK;
}

/* Exposed to agent.c through conn_impl.h's contract. */
int shoal__uv_remember_agent_identity(shoal_uv_conn *c, int ident, int agent_index);
int shoal__uv_remember_agent_identity(shoal_uv_conn *c, int ident, int agent_index)
{
    return remember_path(c, ident, NULL, agent_index);
}

static int load_public(const char *path, shoal_key **pub)
{
    char pubpath[4096];
    snprintf(pubpath, sizeof(pubpath), "%s.pub", path);
    FILE *f = fopen(pubpath, "r");
    if (!f)
        return SHOAL_ERR_NOT_FOUND;
    char line[16384];
    int rc = SHOAL_ERR_BAD_FORMAT;
    if (fgets(line, sizeof(line), f))
        rc = shoal_key_from_public_text(line, strcspn(line, "\r\n"), pub);
    fclose(f);
    return rc;
}

static int add_key(shoal_uv_conn *c, shoal_key *key, const char *path_if_deferred)
{
    shoal_buf blob;
    shoal_buf_init(&blob, SHOAL_KEY_MAX_BLOB);
    int rc = shoal_key_to_blob(key, &blob);
    if (rc) {
        shoal_buf_free(&blob);
        shoal_key_free(key);
        return rc;
    }
    int ident = shoal_session_add_identity(c->s, shoal_buf_ptr(&blob), shoal_buf_len(&blob),
                                           path_if_deferred ? (shoal_key_free(key), NULL) : key);
    shoal_buf_free(&blob);
    if (ident < 0)
        return ident;
    return remember_path(c, ident, path_if_deferred, -1);
}

static int ask_and_load(shoal_uv_conn *c, const char *path, shoal_key **out)
{
    *out = NULL;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (!c->cb.passphrase)
            return SHOAL_ERR_KEY_ENCRYPTED;
        char pass[1024];
        int rc = c->cb.passphrase(c, path, pass, sizeof(pass), c->ud);
        if (rc) {
            shoal_wipe(pass, sizeof(pass));
            return rc;
        }
        rc = shoal_key_load_private_file(path, pass, out);
        shoal_wipe(pass, sizeof(pass));
        if (rc != SHOAL_ERR_BAD_PASSPHRASE)
            return rc;
        shoal__uv_log(c, 0, "bad passphrase for %s", path);
    }
    return SHOAL_ERR_BAD_PASSPHRASE;
}

int shoal__uv_add_file_identities(shoal_uv_conn *c)
{
    if (c->ssh.auth_methods && !(c->ssh.auth_methods & SHOAL_AUTH_PUBLICKEY))
        return SHOAL_OK;
    for (unsigned i = 0; i < c->opt.n_keys; i++) {
        shoal_key *key = c->opt.keys[i];
        if (!shoal_key_has_private(key)) {
            shoal__uv_log(c, 1, "skipping preloaded key %u: no private key", i);
            continue;
        }
        int rc = add_key(c, shoal_key_ref(key), NULL);
        if (rc)
            return rc;
    }
    for (unsigned i = 0; i < c->opt.n_identity_files; i++) {
        const char *path = c->id_files[i];
        shoal_key *key = NULL;
        int rc = shoal_key_load_private_file(path, NULL, &key);
        if (rc == SHOAL_OK) {
            rc = add_key(c, key, NULL);
        } else if (rc == SHOAL_ERR_KEY_ENCRYPTED) {
            shoal_key *pub = NULL;
            if (load_public(path, &pub) == SHOAL_OK) {
                rc = add_key(c, pub, path);
            } else {
                rc = ask_and_load(c, path, &key);
                if (rc == SHOAL_OK)
                    rc = add_key(c, key, NULL);
                else
                    shoal__uv_log(c, 0, "skipping key %s: %s", path, shoal_strerror(rc));
                rc = SHOAL_OK;
            }
        } else {
            shoal__uv_log(c, rc == SHOAL_ERR_NOT_FOUND ? 2 : 0, "cannot load key %s: %s", path,
                          shoal_strerror(rc));
            rc = SHOAL_OK;
        }
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}

int shoal__uv_sign(shoal_uv_conn *c, unsigned ident, const char *sigalg, const uint8_t *data, size_t len)
{
    if (ident >= c->n_ident_paths)
        return SHOAL_ERR_NOT_FOUND;
    if (c->agent_ident[ident] >= 0)
        return shoal__uv_agent_sign(c, ident, NULL, 0, sigalg, data, len);
    const char *path = c->ident_paths[ident];
    if (!path)
        return SHOAL_ERR_NOT_FOUND;
    shoal_key *key = NULL;
    int rc = ask_and_load(c, path, &key);
    if (rc) {
        shoal__uv_log(c, 0, "skipping key %s: %s", path, shoal_strerror(rc));
        return rc;
    }
    shoal_buf sig;
    shoal_buf_init(&sig, 1u << 16);
    rc = shoal_key_sign(key, sigalg, data, len, &sig);
    shoal_key_free(key);
    if (!rc)
        rc = shoal_session_sign_reply(c->s, shoal_buf_ptr(&sig), shoal_buf_len(&sig));
    shoal_buf_free(&sig);
    return rc;
}

void shoal__uv_identities_free(shoal_uv_conn *c)
{
    for (unsigned i = 0; i < c->n_ident_paths; i++)
        free(c->ident_paths[i]);
    free(c->ident_paths);
    free(c->agent_ident);
    c->ident_paths = NULL;
    c->agent_ident = NULL;
    c->n_ident_paths = 0;
}
