/* The embeddable server engine (include/shoal/serve.h): the options ABI
 * rule, set-up errors, and a real OpenSSH client against an engine on this
 * test's loop whose auth and exec callbacks decide (and once, the engine's
 * own spawning). Only public headers here, as an embedding program has.
 * Keys are made with ssh-keygen at test time. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/serve.h"

static char *dir;
static char hostkey[1024], userkey[1024];

static int setup(void **st)
{
    (void)st;
    if (!tu_have("ssh-keygen") || !tu_have("ssh"))
        return -1;
    dir = tu_mkdtemp();
    snprintf(hostkey, sizeof(hostkey), "%s/host", dir);
    snprintf(userkey, sizeof(userkey), "%s/user", dir);
    if (tu_system("ssh-keygen -q -t ed25519 -N '' -f '%s' </dev/null >/dev/null", hostkey) ||
        tu_system("ssh-keygen -q -t ed25519 -N '' -f '%s' </dev/null >/dev/null", userkey))
        return -1;
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    tu_rmtree(dir);
    free(dir);
    return 0;
}

/* A port nobody listens on right now (the configuration refuses port 0). */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static shoal_serve_config *config(const char *host_key_file)
{
    shoal_serve_config *cfg = shoal_serve_config_new();
    char line[1200], err[600];
    assert_non_null(cfg);
    snprintf(line, sizeof(line), "ListenAddress=127.0.0.1:%u", free_port());
    assert_int_equal(shoal_serve_config_apply_option(cfg, line, err, sizeof(err)), SHOAL_OK);
    if (host_key_file) {
        snprintf(line, sizeof(line), "HostKey=%s", host_key_file);
        assert_int_equal(shoal_serve_config_apply_option(cfg, line, err, sizeof(err)), SHOAL_OK);
    }
    /* Nothing from the files of the account running the test. */
    assert_int_equal(shoal_serve_config_apply_option(cfg, "AuthorizedKeysFile=none", err, sizeof(err)), SHOAL_OK);
    if (shoal_serve_config_finish(cfg, err, sizeof(err)) != SHOAL_OK)
        fail_msg("config: %s", err);
    return cfg;
}

static void test_options_abi(void **st)
{
    (void)st;
    shoal_serve_options o;
    shoal_serve_callbacks cb;
    memset(&o, 0x55, sizeof(o));
    shoal_serve_options_init(&o);
    assert_int_equal(o.size, sizeof(o));
    assert_null(o.config);
    assert_int_equal(o.n_inherit_fds, 0);
    shoal_serve_callbacks_init(&cb);
    assert_int_equal(cb.size, sizeof(cb));
    assert_null(cb.auth);

    uv_loop_t loop;
    uv_loop_init(&loop);
    shoal_serve_config *cfg = config(hostkey);
    shoal_serve *srv = (shoal_serve *)1;
    char err[300];
    o.config = cfg;
    o.size = 0;
    assert_int_equal(shoal_serve_new(&loop, &o, NULL, NULL, &srv, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    assert_null(srv);
    o.size = sizeof(o);
    cb.size = 0;
    assert_int_equal(shoal_serve_new(&loop, &o, &cb, NULL, &srv, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_serve_new(NULL, &o, NULL, NULL, &srv, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_serve_new(&loop, NULL, NULL, NULL, &srv, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);
    o.config = NULL;
    assert_int_equal(shoal_serve_new(&loop, &o, NULL, NULL, &srv, err, sizeof(err)), SHOAL_ERR_INVALID_ARG);

    /* An older caller's shorter struct: only the fields it knows count. */
    o.config = cfg;
    o.log_level = 7;
    o.size = offsetof(shoal_serve_options, log_level);
    assert_int_equal(shoal_serve_new(&loop, &o, NULL, NULL, &srv, err, sizeof(err)), SHOAL_OK);
    assert_int_equal(shoal_serve_host_key_count(srv), 1);
    assert_non_null(shoal_serve_uv_server(srv));
    assert_ptr_equal(shoal_serve_loop(srv), &loop);
    shoal_serve_close(srv);
    shoal_serve_close(srv); /* idempotent */
    assert_null(shoal_serve_uv_server(srv));
    assert_int_equal(shoal_serve_start(srv, err, sizeof(err)), SHOAL_ERR_CLOSED);
    uv_run(&loop, UV_RUN_DEFAULT);
    shoal_serve_free(srv);
    shoal_serve_free(NULL);
    shoal_serve_config_free(cfg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_setup_errors(void **st)
{
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    shoal_serve_options o;
    shoal_serve_options_init(&o);
    shoal_serve *srv = NULL;
    char err[300];

    shoal_serve_config *none = config(NULL);
    o.config = none;
    assert_int_equal(shoal_serve_new(&loop, &o, NULL, NULL, &srv, err, sizeof(err)), SHOAL_ERR_CONFIG);
    assert_non_null(strstr(err, "no host keys"));
    assert_null(srv);
    shoal_serve_config_free(none);

    char missing[1100];
    snprintf(missing, sizeof(missing), "%s/no-such-key", dir);
    shoal_serve_config *bad = config(missing);
    o.config = bad;
    o.log_level = -1; /* the skipped key is logged at level 0: keep the test output clean */
    assert_int_equal(shoal_serve_new(&loop, &o, NULL, NULL, &srv, err, sizeof(err)), SHOAL_ERR_CONFIG);
    assert_non_null(strstr(err, "no usable host key"));
    shoal_serve_config_free(bad);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- an OpenSSH client against callbacks ---- */

typedef struct run_state {
    uv_loop_t *loop;
    shoal_serve *srv;
    int auth_calls, exec_calls;
    int deny_all;
    int let_engine_spawn;
    const char *user; /* NULL = the account running the test */
    int account_ok;   /* what the auth callback saw */
    char last_command[256];
    char env_user[300];
    uv_process_t proc;
    uv_pipe_t out;
    char output[4096];
    size_t out_len;
    int64_t status;
    int exited, out_closed;
} run_state;

static int on_auth(shoal_serve_conn *c, const shoal_auth_request *req, void *ud)
{
    run_state *rs = ud;
    rs->auth_calls++;
    assert_ptr_equal(shoal_serve_conn_server(c), rs->srv);
    assert_string_equal(shoal_serve_conn_user(c), req->user);
    assert_non_null(shoal_serve_conn_settings(c));
    assert_false(shoal_serve_conn_authenticated(c));
    rs->account_ok = shoal_serve_conn_account_ok(c);
    if (rs->deny_all)
        return SHOAL_AUTH_DENY;
    if (req->method == SHOAL_METHOD_PUBLICKEY)
        return SHOAL_AUTH_SUCCESS; /* a probe gets PK_OK, a proven key logs in */
    return SHOAL_AUTH_DENY;
}

static int on_exec(shoal_serve_conn *c, shoal_channel *ch, const shoal_serve_exec *req, void *ud)
{
    run_state *rs = ud;
    rs->exec_calls++;
    assert_true(shoal_serve_conn_authenticated(c));
    assert_string_equal(req->kind, "exec");
    snprintf(rs->last_command, sizeof(rs->last_command), "%s", req->command ? req->command : "");
    for (const char *const *e = req->env; *e; e++)
        if (!strncmp(*e, "USER=", 5))
            snprintf(rs->env_user, sizeof(rs->env_user), "%s", *e + 5);
    if (rs->let_engine_spawn)
        return SHOAL_SERVE_DEFAULT;
    /* Answer first: a reply after the close would be dropped. */
    shoal_channel_request_reply(ch, 1);
    char line[400];
    size_t w;
    snprintf(line, sizeof(line), "from the callback: %s\n", req->command);
    shoal_channel_write(ch, line, strlen(line), &w);
    shoal_channel_exit_status(ch, 3);
    shoal_channel_send_eof(ch);
    shoal_channel_close(ch);
    shoal_uv_sconn_flush(shoal_serve_conn_sconn(c));
    return SHOAL_ERR_DEFERRED;
}

static void maybe_stop(run_state *rs)
{
    if (rs->exited && rs->out_closed)
        uv_stop(rs->loop);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    run_state *rs = p->data;
    rs->status = sig ? 128 + sig : status;
    rs->exited = 1;
    uv_close((uv_handle_t *)p, NULL);
    maybe_stop(rs);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    run_state *rs = h->data;
    (void)sz;
    *b = uv_buf_init(rs->output + rs->out_len, (unsigned)(sizeof(rs->output) - 1 - rs->out_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    run_state *rs = s->data;
    (void)b;
    if (n > 0) {
        rs->out_len += (size_t)n;
        rs->output[rs->out_len] = 0;
        return;
    }
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        rs->out_closed = 1;
        maybe_stop(rs);
    }
}

static void run_client(run_state *rs, const char *command)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rs->loop = &loop;
    shoal_serve_config *cfg = config(hostkey);
    shoal_serve_options o;
    shoal_serve_options_init(&o);
    o.config = cfg;
    o.log_level = -1;
    shoal_serve_callbacks cb;
    shoal_serve_callbacks_init(&cb);
    cb.auth = on_auth;
    cb.exec = on_exec;
    char err[600];
    assert_int_equal(shoal_serve_new(&loop, &o, &cb, rs, &rs->srv, err, sizeof(err)), SHOAL_OK);
    if (shoal_serve_start(rs->srv, err, sizeof(err)) != SHOAL_OK)
        fail_msg("start: %s", err);
    unsigned port = shoal_serve_bound_port(rs->srv);
    assert_true(port > 0);

    struct passwd *pw = getpwuid(geteuid());
    assert_non_null(pw);
    char portarg[16], dest[300];
    snprintf(portarg, sizeof(portarg), "%u", port);
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", rs->user ? rs->user : pw->pw_name);
    char *argv[] = {"ssh", "-F", "/dev/null", "-p", portarg, "-i", userkey, "-o", "IdentitiesOnly=yes",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
                    "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
                    dest, (char *)command, NULL};
    uv_pipe_init(&loop, &rs->out, 0);
    rs->out.data = rs;
    uv_stdio_container_t stdio[3] = {{UV_IGNORE, {0}}, {UV_CREATE_PIPE | UV_WRITABLE_PIPE, {0}}, {UV_INHERIT_FD, {0}}};
    stdio[1].data.stream = (uv_stream_t *)&rs->out;
    stdio[2].data.fd = 2;
    uv_process_options_t po;
    memset(&po, 0, sizeof(po));
    po.file = "ssh";
    po.args = argv;
    po.stdio = stdio;
    po.stdio_count = 3;
    po.exit_cb = on_proc_exit;
    rs->proc.data = rs;
    assert_int_equal(uv_spawn(&loop, &rs->proc, &po), 0);
    uv_read_start((uv_stream_t *)&rs->out, on_alloc, on_read);
    uv_run(&loop, UV_RUN_DEFAULT);

    shoal_serve_close(rs->srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    shoal_serve_free(rs->srv);
    shoal_serve_config_free(cfg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_callbacks_decide(void **st)
{
    (void)st;
    run_state rs;
    memset(&rs, 0, sizeof(rs));
    run_client(&rs, "hello engine");
    assert_true(rs.auth_calls >= 1);
    assert_int_equal(rs.exec_calls, 1);
    assert_string_equal(rs.last_command, "hello engine");
    assert_string_equal(rs.output, "from the callback: hello engine\n");
    assert_int_equal(rs.status, 3);
}

static void test_auth_callback_denies(void **st)
{
    (void)st;
    run_state rs;
    memset(&rs, 0, sizeof(rs));
    rs.deny_all = 1;
    run_client(&rs, "never runs");
    assert_true(rs.auth_calls >= 1);
    assert_int_equal(rs.exec_calls, 0);
    assert_int_equal(rs.status, 255); /* ssh: permission denied */
    assert_string_equal(rs.output, "");
}

/* The callback looks and lets the engine run the command as `shoal serve`
 * would (the user's shell, the environment it built). */
static void test_exec_default(void **st)
{
    (void)st;
    run_state rs;
    memset(&rs, 0, sizeof(rs));
    rs.let_engine_spawn = 1;
    run_client(&rs, "echo spawned-$((40+2)) $USER");
    assert_int_equal(rs.exec_calls, 1);
    struct passwd *pw = getpwuid(geteuid());
    char want[400];
    snprintf(want, sizeof(want), "spawned-42 %s\n", pw->pw_name);
    assert_string_equal(rs.output, want);
    assert_string_equal(rs.env_user, pw->pw_name);
    assert_int_equal(rs.status, 0);
}

/* Let in without a local account, the engine has nobody to run the
 * command as: the request fails, nothing runs. */
static void test_no_account_no_spawn(void **st)
{
    (void)st;
    run_state rs;
    memset(&rs, 0, sizeof(rs));
    rs.let_engine_spawn = 1;
    rs.user = "shoal-test-no-such-user";
    run_client(&rs, "echo must-not-run");
    assert_false(rs.account_ok);
    assert_int_equal(rs.exec_calls, 1);
    assert_string_equal(rs.output, "");
    assert_int_not_equal(rs.status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_abi),          cmocka_unit_test(test_setup_errors),
        cmocka_unit_test(test_callbacks_decide),     cmocka_unit_test(test_auth_callback_denies),
        cmocka_unit_test(test_exec_default),         cmocka_unit_test(test_no_account_no_spawn),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
