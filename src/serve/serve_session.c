/* The server engine (shoal serve): session channels: pty-req, env, exec,
 * shell, subsystem.
 *
 * What runs: ForceCommand, else an authorized_keys command=, else the
 * client's command (with SSH_ORIGINAL_COMMAND set when forced), checked
 * against the CommandPolicy (allow-list or the git preset); refusals reach
 * the client as a message on stderr and exit status 1. Commands run through
 * the user's shell (-c), as the user when we are root, in their home, with
 * a clean environment: HOME USER LOGNAME SHELL PATH, then the variables the
 * client may set (shoal_serve_env_allowed: AcceptEnv, never a dangerous name
 * through a wildcard, nothing but GIT_PROTOCOL under a command policy), then
 * authorized_keys environment= (PermitUserEnvironment), and last what the
 * server says about the session and nobody may override: SSH_CONNECTION,
 * SSH_CLIENT, TERM with a pty, SSH_ORIGINAL_COMMAND (as sshd). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"
#include "serve_gateway.h"
#include "shoal/match.h"
#include "shoal/uv.h"

#define MAX_ENV 64

typedef struct sess {
    serve_conn *sc;
    shoal_channel *ch;
    int pty;
    char term[64];
    uint32_t cols, rows;
    uint8_t modes[512];
    size_t modes_len;
    char *env[MAX_ENV]; /* accepted "NAME=value" */
    unsigned n_env;
    int started;
} sess;

static void sess_free(sess *ss)
{
    for (unsigned i = 0; i < ss->n_env; i++)
        free(ss->env[i]);
    free(ss);
}

static void refuse_with_message(sess *ss, const char *msg)
{
    size_t w;
    char line[600];
    snprintf(line, sizeof(line), "shoal: %s%s", msg, ss->pty ? "\r\n" : "\n");
    shoal_channel_write_stderr(ss->ch, line, strlen(line), &w);
    shoal_channel_exit_status(ss->ch, 1);
    shoal_channel_send_eof(ss->ch);
    shoal_channel_close(ss->ch);
    shoal_uv_sconn_flush(ss->sc->sconn);
}

/* Sets NAME=value in envp (replacing an earlier NAME), taking ownership of kv. */
static void env_set(char **envp, unsigned *ne, unsigned max, char *kv)
{
    if (!kv)
        return;
    size_t nl = strcspn(kv, "=");
    for (unsigned i = 0; i < *ne; i++) {
        if (strncmp(envp[i], kv, nl) == 0 && envp[i][nl] == '=') {
            free(envp[i]);
            envp[i] = kv;
            return;
        }
    }
    if (*ne < max)
        envp[(*ne)++] = kv;
    else
        free(kv);
}

/* PermitUserEnvironment: "yes"/"*" or a comma-separated pattern list with
 * '!' negation (a negated match refuses). */
static int user_env_allowed(const char *list, const char *name)
{
    if (!strcmp(list, "*") || !strcmp(list, "yes"))
        return 1;
    return shoal_match_list(list, name, 0) == 1;
}

static char *env_pair(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s=%s", name, value);
    return s;
}

static int on_request(shoal_channel *ch, const shoal_channel_request *req, void *ud);
static void on_close(shoal_channel *ch, void *ud);
static const shoal_server_channel_callbacks SESS_CBS = {sizeof(shoal_server_channel_callbacks), on_request, NULL, NULL, NULL, on_close};

/* While the program's exec callback has the channel: nothing of ours may
 * run on it (our state may be gone when the callback returns). */
static int orphan_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    (void)ch;
    (void)req;
    (void)ud;
    return 0;
}

static const shoal_server_channel_callbacks ORPHAN_CBS = {sizeof(shoal_server_channel_callbacks), orphan_request, NULL, NULL, NULL, NULL};

/* Asks the exec callback: SHOAL_SERVE_DEFAULT, 0 (refused), 1 or
 * SHOAL_ERR_DEFERRED (taken). */
static int app_exec(sess *ss, const char *kind, const char *cmd, const char *client_cmd, char **envp)
{
    serve_ctx *ctx = ss->sc->ctx;
    shoal_serve_exec ex = {kind, cmd, client_cmd, (const char *const *)envp, ss->pty, ss->pty ? ss->term : "",
                           ss->cols, ss->rows};
    shoal_channel_set_server_callbacks(ss->ch, &ORPHAN_CBS, NULL);
    int r = ctx->cb.exec(ss->sc, ss->ch, &ex, ctx->ud);
    int taken = r == 1 || r == SHOAL_ERR_DEFERRED;
    if (!taken)
        shoal_channel_set_server_callbacks(ss->ch, &SESS_CBS, ss);
    return taken || r == SHOAL_SERVE_DEFAULT ? r : 0;
}

/* Starts command (NULL: a login shell). Returns 1 when the request should
 * be answered with success. */
static int start(sess *ss, const char *kind, const char *client_cmd)
{
    serve_conn *sc = ss->sc;
    serve_ctx *ctx = sc->ctx;
    const char *forced = sc->eff.force_command ? sc->eff.force_command
                                               : (sc->have_key_opts ? sc->key_opts.command : NULL);
    const char *cmd = forced ? forced : client_cmd;
    shoal_serve_command policy;
    memset(&policy, 0, sizeof(policy));
    char why[300] = "";
    /* Subsystems are checked too (by their command) unless the policy is
     * "any": the git preset refuses them, an allow-list must name them. */
    int check = !forced && (strcmp(kind, "subsystem") != 0 || sc->eff.command_policy != SHOAL_SERVE_POLICY_ANY);
    if (check) {
        int ok = shoal_serve_command_allowed(&sc->eff, client_cmd, &policy, why, sizeof(why));
        if (ok != 1) {
            serve_log(ctx, 1, "%s: refused %s \"%.100s\": %s", sc->user, kind, client_cmd ? client_cmd : "", why);
            ss->started = 1;
            /* The request is answered first (success, as sshd does for a
             * command it then refuses to run), then the message, the exit
             * status and the close: a reply after the close is dropped,
             * and clients such as paramiko then see a closed channel. */
            shoal_channel_request_reply(ss->ch, 1);
            refuse_with_message(ss, why[0] ? why : "command not allowed");
            return SHOAL_ERR_DEFERRED;
        }
        if (policy.command)
            cmd = policy.command;
    }
    /* Environment. */
    char *envp[MAX_ENV + 16];
    unsigned ne = 0;
    char client[160], conn_s[200];
    const char *peer_addr = shoal_uv_sconn_address(sc->sconn);
    const char *peer = shoal_uv_sconn_peer(sc->sconn);
    const char *port = strrchr(peer, ':');
    unsigned lport = 0;
    const char *laddr = shoal_uv_sconn_local_address(sc->sconn, &lport);
    snprintf(client, sizeof(client), "%s %s %u", peer_addr, port ? port + 1 : "0", lport);
    snprintf(conn_s, sizeof(conn_s), "%s %s %s %u", peer_addr, port ? port + 1 : "0", laddr, lport);
    envp[ne++] = env_pair("HOME", sc->home);
    envp[ne++] = env_pair("USER", sc->user);
    envp[ne++] = env_pair("LOGNAME", sc->user);
    envp[ne++] = env_pair("SHELL", sc->shell);
    envp[ne++] = env_pair("PATH", sc->uid == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                                                : "/usr/local/bin:/usr/bin:/bin");
    /* Room is kept for the server's own variables below. */
    for (unsigned i = 0; i < ss->n_env; i++)
        env_set(envp, &ne, MAX_ENV + 10, strdup(ss->env[i]));
    /* authorized_keys environment= options, when PermitUserEnvironment lets
     * their names through. */
    const char *pue = ctx->g->permit_user_environment;
    for (unsigned i = 0; pue && sc->have_key_opts && i < sc->key_opts.n_environment; i++) {
        const char *kv = sc->key_opts.environment[i];
        const char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        char name[128];
        size_t nl = (size_t)(eq - kv);
        if (nl == 0 || nl >= sizeof(name))
            continue;
        memcpy(name, kv, nl);
        name[nl] = 0;
        if (user_env_allowed(pue, name))
            env_set(envp, &ne, MAX_ENV + 10, strdup(kv));
    }
    env_set(envp, &ne, MAX_ENV + 15, env_pair("SSH_CLIENT", client));
    env_set(envp, &ne, MAX_ENV + 15, env_pair("SSH_CONNECTION", conn_s));
    if (ss->pty)
        env_set(envp, &ne, MAX_ENV + 15, env_pair("TERM", ss->term[0] ? ss->term : "xterm"));
    if (forced && client_cmd)
        env_set(envp, &ne, MAX_ENV + 15, env_pair("SSH_ORIGINAL_COMMAND", client_cmd));
    envp[ne] = NULL;

    /* The program may run it itself (shoal_serve_callbacks.exec). */
    if (ctx->cb.exec) {
        int r = app_exec(ss, kind, cmd, client_cmd, envp);
        if (r != SHOAL_SERVE_DEFAULT) {
            for (unsigned i = 0; i < ne; i++)
                free(envp[i]);
            shoal_serve_command_free(&policy);
            if (r == 0)
                return 0;
            serve_log(ctx, 2, "%s: %s taken by the application", sc->user, kind);
            ss->started = 1;
            sess_free(ss);
            return r; /* 1, or SHOAL_ERR_DEFERRED: the callback answers */
        }
    }
    /* A user the program's auth callback let in without a local account:
     * there is nobody to run it as. */
    if (!sc->user_ok) {
        serve_log(ctx, 0, "%s: no local account to run the %s as", sc->user, kind);
        for (unsigned i = 0; i < ne; i++)
            free(envp[i]);
        shoal_serve_command_free(&policy);
        return 0;
    }
    /* The user's shell: "-c cmd", or a login shell (argv[0] "-name"). */
    char login_name[260];
    const char *base = strrchr(sc->shell, '/');
    snprintf(login_name, sizeof(login_name), "-%s", base ? base + 1 : sc->shell);
    const char *argv_login[] = {login_name, NULL};
    const char *argv_cmd[] = {sc->shell, "-c", cmd, NULL};
    shoal_proc_options po;
    shoal_proc_options_init(&po);
    po.program = sc->shell;
    po.argv = cmd ? argv_cmd : argv_login;
    po.env = (const char *const *)envp;
    po.cwd = sc->home;
    po.switch_user = ctx->is_root;
    po.uid = sc->uid;
    po.gid = sc->gid;
    po.user = sc->user;
    po.pty = ss->pty;
    po.cols = ss->cols;
    po.rows = ss->rows;
    po.pty_modes = ss->modes_len ? ss->modes : NULL;
    po.pty_modes_len = ss->modes_len;
    shoal_proc *proc = NULL;
    int rc = shoal_proc_spawn(sc->sconn, ss->ch, &po, &proc, why, sizeof(why));
    for (unsigned i = 0; i < ne; i++)
        free(envp[i]);
    shoal_serve_command_free(&policy);
    if (rc) {
        serve_log(ctx, 0, "%s: %s", sc->user, why);
        return 0;
    }
    serve_log(ctx, 2, "%s: %s started (pid %d)%s", sc->user, kind, (int)shoal_proc_pid(proc), ss->pty ? " with a pty" : "");
    ss->started = 1;
    /* The process owns the channel's callbacks now; our state goes. */
    sess_free(ss);
    return 1;
}

static int on_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    sess *ss = ud;
    serve_conn *sc = ss->sc;
    (void)ch;
    if (ss->started)
        return 0;
    if (!strcmp(req->type, "pty-req")) {
        int allowed = sc->eff.permit_tty && !(sc->have_key_opts && sc->key_opts.no_pty);
        if (!allowed || ss->pty)
            return 0;
        ss->pty = 1;
        snprintf(ss->term, sizeof(ss->term), "%s", req->term);
        ss->cols = req->cols;
        ss->rows = req->rows;
        ss->modes_len = req->modes_len < sizeof(ss->modes) ? req->modes_len : 0;
        if (ss->modes_len)
            memcpy(ss->modes, req->modes, ss->modes_len);
        return 1;
    }
    if (!strcmp(req->type, "env")) {
        char why[200];
        if (!shoal_serve_env_allowed(&sc->eff, req->name, req->value, why, sizeof(why))) {
            serve_log(sc->ctx, 1, "%s: ignoring env request %s=%.100s: %s", sc->user, req->name, req->value, why);
            return 0;
        }
        if (ss->n_env >= MAX_ENV) {
            serve_log(sc->ctx, 1, "%s: ignoring env request %s: more than %u variables", sc->user, req->name,
                      MAX_ENV);
            return 0;
        }
        ss->env[ss->n_env] = env_pair(req->name, req->value);
        if (!ss->env[ss->n_env])
            return 0;
        ss->n_env++;
        return 1;
    }
    if (!strcmp(req->type, "exec"))
        return start(ss, "exec", req->command);
    if (!strcmp(req->type, "shell"))
        return start(ss, "shell", NULL);
    if (!strcmp(req->type, "subsystem")) {
        for (unsigned i = 0; i < sc->ctx->g->n_subsystems; i++) {
            if (!strcmp(sc->ctx->g->subsystems[i].name, req->subsystem)) {
                if (!strcmp(sc->ctx->g->subsystems[i].command, "internal-sftp")) {
                    serve_log(sc->ctx, 0, "internal-sftp is not available yet; configure an sftp-server path");
                    return 0;
                }
                return start(ss, "subsystem", sc->ctx->g->subsystems[i].command);
            }
        }
        serve_log(sc->ctx, 1, "%s: subsystem request for %.100s failed, subsystem not found", sc->user,
                  req->subsystem);
        return 0;
    }
    return 0;
}

static void on_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    sess_free(ud); /* closed before anything ran */
}

int serve_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)ud;
    serve_conn *sc = shoal_session_app_data(s);
    if (strcmp(type, "session") != 0)
        return 1; /* forwarding is not offered (yet): administratively prohibited */
    /* A gateway from the configuration, or chosen by the key's line (e.g.
     * printed by the AuthorizedKeysCommand backend: gateway="host:port"). */
    const char *gateway = sc->have_key_opts && sc->key_opts.gateway ? sc->key_opts.gateway : sc->eff.gateway;
    if (gateway && (!sc->eff.gateway_identity_file || !sc->eff.gateway_known_hosts)) {
        serve_log(sc->ctx, 0, "%s: gateway %s needs GatewayIdentityFile and GatewayKnownHostsFile", sc->user, gateway);
        return 1;
    }
    if (gateway) {
        /* "host", "host:port" or "[v6]:port" */
        char host[256] = "", user_unused[8];
        unsigned port = 22;
        if (shoal_parse_destination(gateway, user_unused, sizeof(user_unused), host, sizeof(host), &port) != 0) {
            serve_log(sc->ctx, 0, "bad gateway \"%s\"", gateway);
            return 2;
        }
        serve_gateway gw = {host, port, sc->eff.gateway_user, sc->eff.gateway_identity_file,
                            sc->eff.gateway_known_hosts};
        return serve_gateway_channel(sc, ch, &gw);
    }
    sess *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return 4;
    ss->sc = sc;
    ss->ch = ch;
    shoal_channel_set_server_callbacks(ch, &SESS_CBS, ss);
    return 0;
}
