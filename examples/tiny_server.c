/* tiny_server: an SSH server in one file, with its own authentication and
 * its own commands answered in-process (no process is ever spawned).
 *
 *   tiny_server -h hostkey [-p port] [-a authorized_keys] [-P password] [-u user]
 *
 * Listens on 127.0.0.1 (port 2222 by default). A client logs in with a key
 * listed in the authorized_keys file, or with the password given by -P;
 * -u limits logins to that user name. Commands (exec requests), all built
 * in:
 *   echo ARGS...   prints ARGS
 *   date           prints the time (UTC, ISO 8601)
 *   whoami         prints the user name the client logged in with
 *   exit N         exits with status N
 * Anything else gets a message on stderr and exit status 127. Try:
 *   ssh -p 2222 -o UserKnownHostsFile=/dev/null localhost echo hello
 * Build: cc tiny_server.c $(pkg-config --cflags --libs libshoal) -o tiny_server */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <shoal/authkeys.h>
#include <shoal/keys.h>
#include <shoal/server.h>
#include <shoal/uv_server.h>

static const char *authorized_keys_path;
static const char *password;
static const char *only_user;

/* ---- authentication ---- */

/* Equal strings, in time that depends on the lengths only. */
static int same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

static int on_auth(shoal_session *s, const shoal_auth_request *req, void *ud)
{
    (void)s;
    (void)ud;
    if (!req->user || (only_user && strcmp(req->user, only_user) != 0))
        return SHOAL_AUTH_DENY;
    if (req->method == SHOAL_METHOD_PUBLICKEY && authorized_keys_path) {
        /* Probe or proven: the library only lets a user in once the
         * signature verified (req->proven), so the same answer serves both. */
        shoal_authkey_opts opts;
        shoal_authkeys_peer peer = {NULL, NULL, (int64_t)time(NULL)};
        int found = shoal_authkeys_find_file(authorized_keys_path, req->key, &peer, &opts, NULL);
        shoal_authkey_opts_free(&opts);
        return found == 1 ? SHOAL_AUTH_SUCCESS : SHOAL_AUTH_DENY;
    }
    if (req->method == SHOAL_METHOD_PASSWORD && password && req->password)
        return same_secret(req->password, password) ? SHOAL_AUTH_SUCCESS : SHOAL_AUTH_DENY;
    return SHOAL_AUTH_DENY;
}

static void on_authenticated(shoal_session *s, const char *user, void *ud)
{
    (void)s;
    printf("%s: logged in as %s\n", shoal_uv_sconn_peer(ud), user);
    fflush(stdout);
}

static void on_closed(shoal_session *s, int err, const char *message, void *ud)
{
    (void)s;
    if (err)
        printf("%s: closed: %s\n", shoal_uv_sconn_peer(ud), message ? message : shoal_strerror(err));
    fflush(stdout);
}

/* ---- the built-in commands ---- */

typedef struct reply {
    shoal_channel *ch;
    char out[8192];
    size_t out_len, out_off;
    int running;
    uint32_t status;
} reply;

/* Runs command in-process: fills r->out and r->status; 0, or -1 when the
 * command is not one of ours (the message then goes to stderr). */
static int builtin(const char *user, const char *command, reply *r)
{
    size_t cap = sizeof(r->out);
    if (!strcmp(command, "echo") || !strncmp(command, "echo ", 5)) {
        r->out_len = (size_t)snprintf(r->out, cap, "%s\n", command[4] ? command + 5 : "");
    } else if (!strcmp(command, "date")) {
        time_t t = time(NULL);
        struct tm tm;
        r->out_len = strftime(r->out, cap, "%Y-%m-%dT%H:%M:%SZ\n", gmtime_r(&t, &tm));
    } else if (!strcmp(command, "whoami")) {
        r->out_len = (size_t)snprintf(r->out, cap, "%s\n", user);
    } else if (!strncmp(command, "exit ", 5)) {
        r->status = (uint32_t)strtoul(command + 5, NULL, 10) & 255;
    } else {
        r->out_len = (size_t)snprintf(r->out, cap, "tiny_server: %s: not a built-in command\n", command);
        r->status = 127;
        return -1;
    }
    if (r->out_len >= cap)
        r->out_len = cap - 1;
    return 0;
}

/* Sends what is left of the output as the window allows, then the exit
 * status, EOF and CLOSE. on_writable calls it again when it stopped short. */
static void send_reply(reply *r, int to_stderr)
{
    while (r->out_off < r->out_len) {
        size_t w = 0;
        int rc = to_stderr ? shoal_channel_write_stderr(r->ch, r->out + r->out_off, r->out_len - r->out_off, &w)
                           : shoal_channel_write(r->ch, r->out + r->out_off, r->out_len - r->out_off, &w);
        if (rc != 0 || w == 0)
            return; /* error: the channel is going; or full: on_writable resumes */
        r->out_off += w;
    }
    if (r->running) {
        r->running = 0;
        shoal_channel_exit_status(r->ch, r->status);
        shoal_channel_send_eof(r->ch);
        shoal_channel_close(r->ch);
    }
}

static int on_request(shoal_channel *ch, const shoal_channel_request *req, void *ud)
{
    reply *r = ud;
    if (!strcmp(req->type, "env"))
        return 0; /* no environment: we run nothing that would read it */
    if (strcmp(req->type, "exec") != 0 || r->running || r->out_len)
        return 0; /* no shell, pty, subsystem; one command per channel */
    const char *user = shoal_session_auth_user(shoal_channel_session(ch));
    int known = builtin(user ? user : "?", req->command, r) == 0;
    printf("exec \"%s\" by %s: exit %u\n", req->command, user ? user : "?", r->status);
    fflush(stdout);
    /* The exec reply must go out before the output: reply now, from inside
     * the callback, then say SHOAL_ERR_DEFERRED (answered already). */
    r->running = 1;
    if (shoal_channel_request_reply(ch, 1) == 0)
        send_reply(r, !known);
    return SHOAL_ERR_DEFERRED;
}

static void on_data(shoal_channel *ch, int stream, const uint8_t *data, size_t len, void *ud)
{
    (void)ch, (void)stream, (void)data, (void)len, (void)ud; /* stdin: our commands read none */
}

static void on_eof(shoal_channel *ch, void *ud)
{
    (void)ch, (void)ud;
}

static void on_writable(shoal_channel *ch, void *ud)
{
    reply *r = ud;
    (void)ch;
    send_reply(r, r->status == 127);
}

static void on_channel_close(shoal_channel *ch, void *ud)
{
    (void)ch;
    free(ud);
}

static int on_channel_open(shoal_session *s, shoal_channel *ch, const char *type, void *ud)
{
    (void)s, (void)ud;
    if (strcmp(type, "session") != 0)
        return 3; /* SSH_OPEN_UNKNOWN_CHANNEL_TYPE */
    reply *r = calloc(1, sizeof(*r));
    if (!r)
        return 4; /* SSH_OPEN_RESOURCE_SHORTAGE */
    r->ch = ch;
    static const shoal_server_channel_callbacks cb = {sizeof(shoal_server_channel_callbacks), on_request, on_data, on_eof, on_writable, on_channel_close};
    shoal_channel_set_server_callbacks(ch, &cb, r);
    return 0;
}

/* ---- main ---- */

static shoal_uv_server *server;
static uv_signal_t sig_int, sig_term;

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    printf("signal %d: stopping\n", signum);
    fflush(stdout);
    shoal_uv_server_free(server);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}

int main(int argc, char **argv)
{
    const char *hostkey_path = NULL;
    unsigned port = 2222;
    int c;
    while ((c = getopt(argc, argv, "h:p:a:P:u:")) != -1) {
        switch (c) {
        case 'h': hostkey_path = optarg; break;
        case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'a': authorized_keys_path = optarg; break;
        case 'P': password = optarg; break;
        case 'u': only_user = optarg; break;
        default: return 2;
        }
    }
    if (!hostkey_path || optind != argc) {
        fprintf(stderr, "usage: tiny_server -h hostkey [-p port] [-a authorized_keys] [-P password] [-u user]\n");
        return 2;
    }
    shoal_key *hostkey;
    int rc = shoal_key_load_private_file(hostkey_path, NULL, &hostkey);
    if (rc) {
        fprintf(stderr, "tiny_server: %s: %s\n", hostkey_path, shoal_strerror(rc));
        return 1;
    }

    uv_loop_t *loop = uv_default_loop();
    static const char *const listen[] = {"127.0.0.1"};
    shoal_uv_server_options so;
    shoal_uv_server_options_init(&so);
    shoal_server_config ssh;
    shoal_server_config_init(&ssh);
    so.ssh = &ssh;
    so.listen = listen;
    so.n_listen = 1;
    so.port = port;
    ssh.host_keys = &hostkey;
    ssh.n_host_keys = 1;
    ssh.auth_methods = (authorized_keys_path ? SHOAL_AUTH_PUBLICKEY : 0) | (password ? SHOAL_AUTH_PASSWORD : 0);
    if (!ssh.auth_methods)
        ssh.auth_methods = SHOAL_AUTH_PUBLICKEY; /* and no key will do */
    shoal_uv_server_callbacks cb;
    shoal_uv_server_callbacks_init(&cb);
    shoal_server_callbacks scb;
    shoal_server_callbacks_init(&scb);
    cb.ssh = &scb;
    scb.auth = on_auth;
    scb.authenticated = on_authenticated;
    scb.channel_open = on_channel_open;
    scb.closed = on_closed;
    char err[512];
    if ((rc = shoal_uv_server_new(loop, &so, &cb, NULL, &server)) != 0) {
        fprintf(stderr, "tiny_server: %s\n", shoal_strerror(rc));
        return 1;
    }
    if (shoal_uv_server_listen(server, err, sizeof(err)) != 0) {
        fprintf(stderr, "tiny_server: %s\n", err);
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", shoal_uv_server_bound_port(server));
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    shoal_key_free(hostkey);
    return 0;
}
