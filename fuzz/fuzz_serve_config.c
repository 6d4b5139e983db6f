/* Fuzzes the "shoal serve" configuration parser. The input is a config
 * file; when it starts with '!', its first line (after the '!') is applied
 * as a command-line option first. A finished config is resolved for a few
 * connections, its templates expanded, and the command policy asked about
 * a few commands and about the input's last line (the git preset's root is
 * pointed at a path that does not exist, so no real file is looked at
 * beyond failing realpath calls). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/serveconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_command(const shoal_serve_effective *e, const char *cmd)
{
    shoal_serve_command c;
    char why[200];
    shoal_serve_command_allowed(e, cmd, &c, why, sizeof(why));
    shoal_serve_command_free(&c);
}

static void exercise(const shoal_serve_config *cfg, const char *user, const char *addr, const char *last)
{
    shoal_serve_effective e;
    if (shoal_serve_config_for(cfg, user, addr, &e) != 0)
        return;
    if (e.command_policy == SHOAL_SERVE_POLICY_GIT)
        e.git_root = "/nonexistent/shoal-fuzz-root";
    for (unsigned i = 0; i < e.n_authorized_keys_files; i++) {
        char *p = NULL;
        shoal_serve_keys_file_path(e.authorized_keys_files[i], user ? user : "u", "/home/u", &p);
        free(p);
    }
    if (e.authorized_keys_command) {
        shoal_serve_tokens t = {user, "/home/u", "1000", "ssh-ed25519", "AAAA", "SHA256:x"};
        char *p = NULL;
        shoal_serve_expand(e.authorized_keys_command, &t, &p);
        free(p);
    }
    static const char *const cmds[] = {"uptime", "git-upload-pack 'a.git'", "git upload-pack '~/x/./y'",
                                       "git-receive-pack 'it'\\''s'", "rsync --server x; id"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        try_command(&e, cmds[i]);
    try_command(&e, NULL);
    if (last)
        try_command(&e, last);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!data)
        data = (const uint8_t *)"";
    const char *text = (const char *)data;
    shoal_serve_config *cfg = shoal_serve_config_new();
    if (!cfg)
        return 0;
    char err[256];
    if (size > 0 && text[0] == '!') {
        const char *nl = memchr(text, '\n', size);
        size_t l = nl ? (size_t)(nl - text) : size;
        char *opt = malloc(l);
        if (opt) {
            memcpy(opt, text + 1, l - 1);
            opt[l - 1] = 0; /* an embedded NUL just shortens the option */
            shoal_serve_config_apply_option(cfg, opt, err, sizeof(err));
            free(opt);
        }
        text += nl ? l + 1 : l;
        size -= nl ? l + 1 : l;
    }
    /* The last line, NUL-terminated, as a client command. */
    char *last = NULL;
    if (size > 0) {
        size_t s = size;
        while (s > 0 && text[s - 1] != '\n')
            s--;
        size_t ll = size - s;
        if (ll > 0 && (last = malloc(ll + 1)) != NULL) {
            memcpy(last, text + s, ll);
            last[ll] = 0;
        }
    }
    if (shoal_serve_config_parse_text(cfg, text, size, "fuzz", err, sizeof(err)) == 0 &&
        shoal_serve_config_finish(cfg, err, sizeof(err)) == 0) {
        shoal_serve_config_global(cfg);
        exercise(cfg, "alice", "192.0.2.1", last);
        exercise(cfg, "root", "10.1.2.3", last);
        exercise(cfg, "git", "2001:db8::1", last);
        exercise(cfg, NULL, NULL, last);
    }
    free(last);
    shoal_serve_config_free(cfg);
    return 0;
}
