/* fleet_run: one command on many hosts through libshoal's fan-out engine.
 *
 *   fleet_run [-p port] [-l user] [-i key] [-o Option=value]... -c command host...
 *
 * Hosts are [user@]host[:port]. Options are OpenSSH's (-o as ssh's; see
 * shoal/config.h for the keywords); unknown host keys are accepted and
 * remembered (StrictHostKeyChecking=accept-new) unless -o says otherwise.
 * Each host's output is printed when all are done, in the order given:
 * every line of its stdout as "host: line", of its stderr as
 * "host! line", then "host: ok" or "host: failed: <class>: <message>".
 * Exit code: 0 when the command succeeded everywhere, 1 when it failed
 * somewhere, 2 for a usage or set-up error.
 *
 * Only the public headers are used; build against the installed library
 * or in the shoal tree (examples/CMakeLists.txt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shoal/config.h>
#include <shoal/fleet.h>
#include <shoal/ssh_resolve.h>
#include <shoal/uv.h>

typedef struct run {
    uv_loop_t *loop;
    shoal_fleet_event **results; /* by host index */
    size_t n, done;
} run;

static void usage(FILE *f)
{
    fprintf(f, "usage: fleet_run [-p port] [-l user] [-i key] [-o Option=value]... -c command host...\n");
}

/* Results come on our loop; keep them for printing in host order. */
static void on_event(shoal_fleet *f, shoal_fleet_event *ev, void *ud)
{
    (void)f;
    run *r = ud;
    if (ev->type != SHOAL_FLEET_EV_RESULT) {
        shoal_fleet_event_free(ev);
        return;
    }
    r->results[ev->index] = ev;
    if (++r->done == r->n)
        uv_stop(r->loop);
}

static void warn_key(const char *message, void *ud)
{
    (void)ud;
    fprintf(stderr, "fleet_run: %s\n", message);
}

/* Every line of buf as "<host><sep> line". */
static void print_lines(FILE *f, const char *host, char sep, const uint8_t *buf, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || buf[i] == '\n') {
            if (i > start || i < len)
                fprintf(f, "%s%c %.*s\n", host, sep, (int)(i - start), (const char *)buf + start);
            start = i + 1;
        }
    }
}

/* Prints one host's result; 1 when it failed. */
static int report(const char *host, const shoal_fleet_event *ev)
{
    if (!ev) {
        printf("%s: failed: no result\n", host);
        return 1;
    }
    print_lines(stdout, host, ':', ev->out, ev->out_len);
    print_lines(stderr, host, '!', ev->errout, ev->err_len);
    if (ev->cls == SHOAL_FLEET_OK) {
        printf("%s: ok\n", host);
        return 0;
    }
    printf("%s: failed: %s: %s\n", host, shoal_fleet_class_name(ev->cls), ev->message ? ev->message : "");
    return 1;
}

/* Applies a -o style option, with a message on error. */
static int apply(shoal_ssh_options *o, const char *text)
{
    char err[600];
    if (shoal_ssh_options_apply(o, text, err, sizeof(err)) == SHOAL_OK)
        return 0;
    fprintf(stderr, "fleet_run: %s\n", err);
    return -1;
}

int main(int argc, char **argv)
{
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    const char *command = NULL, *user = NULL, *keys[SHOAL_OPT_MAX_FILES];
    unsigned n_keys = 0;
    char text[4200];
    int opt, code = 2;
    while ((opt = getopt(argc, argv, "p:l:i:o:c:h")) != -1) {
        int bad = 0;
        switch (opt) {
        case 'p':
            snprintf(text, sizeof(text), "Port=%s", optarg);
            bad = apply(&o, text);
            break;
        case 'l':
            user = optarg;
            break;
        case 'i':
            if (n_keys == SHOAL_OPT_MAX_FILES) {
                fprintf(stderr, "fleet_run: too many -i\n");
                bad = 1;
            } else {
                keys[n_keys++] = optarg;
            }
            break;
        case 'o':
            bad = apply(&o, optarg);
            break;
        case 'c':
            command = optarg;
            break;
        case 'h':
            usage(stdout);
            shoal_ssh_options_free(&o);
            return 0;
        default:
            bad = 1;
            usage(stderr);
        }
        if (bad) {
            shoal_ssh_options_free(&o);
            return 2;
        }
    }
    if (!command || optind == argc) {
        usage(stderr);
        shoal_ssh_options_free(&o);
        return 2;
    }
    size_t n = (size_t)(argc - optind);

    /* OpenSSH-style options to connection settings, keys loaded once. */
    shoal_ssh_resolve_params rp;
    shoal_ssh_resolve_params_init(&rp);
    rp.flags = SHOAL_SSH_RESOLVE_LOAD_KEYS | SHOAL_SSH_RESOLVE_KNOWN_HOSTS_DB;
    rp.user = user;
    rp.extra_keys = keys;
    rp.n_extra_keys = n_keys;
    rp.default_policy = SHOAL_HOSTKEY_ACCEPT_NEW;
    rp.warn = warn_key;
    shoal_ssh_resolved *resolved = NULL;
    shoal_fleet *fleet = NULL;
    shoal_fleet_request *req = NULL;
    shoal_fleet_host *hosts = calloc(n, sizeof(*hosts));
    char (*names)[512] = calloc(n, sizeof(*names));
    char (*users)[256] = calloc(n, sizeof(*users));
    run r = {NULL, calloc(n, sizeof(shoal_fleet_event *)), n, 0};
    uv_loop_t loop;
    int loop_ready = 0;
    char err[1024];
    if (!hosts || !names || !users || !r.results) {
        fprintf(stderr, "fleet_run: out of memory\n");
        goto out;
    }
    if (shoal_ssh_resolve(&o, &rp, &resolved, err, sizeof(err)) != SHOAL_OK) {
        fprintf(stderr, "fleet_run: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *spec = argv[optind + (int)i];
        unsigned port = 0;
        if (shoal_parse_destination(spec, users[i], sizeof(users[i]), names[i], sizeof(names[i]), &port) != 0) {
            fprintf(stderr, "fleet_run: invalid host \"%s\" (expected [user@]host[:port])\n", spec);
            goto out;
        }
        hosts[i].spec = spec;
        hosts[i].user = users[i][0] ? users[i] : NULL;
        hosts[i].host = names[i];
        hosts[i].port = port;
    }

    shoal_fleet_config cfg;
    shoal_fleet_config_init(&cfg);
    cfg.conn = shoal_ssh_resolved_conn(resolved); /* copied by shoal_fleet_new */
    cfg.default_user = shoal_ssh_resolved_user(resolved);
    cfg.default_port = shoal_ssh_resolved_port(resolved);
    cfg.connection_attempts = shoal_ssh_resolved_connection_attempts(resolved);
    cfg.no_connected_events = 1;

    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "fleet_run: cannot make an event loop\n");
        goto out;
    }
    loop_ready = 1;
    r.loop = &loop;
    if (shoal_fleet_new(&loop, &cfg, on_event, &r, &fleet, err, sizeof(err)) != SHOAL_OK) {
        fprintf(stderr, "fleet_run: %s\n", err);
        goto out;
    }
    req = shoal_fleet_request_new(SHOAL_FLEET_EXEC);
    int rc = req ? shoal_fleet_request_set_command(req, command) : SHOAL_ERR_NOMEM;
    if (rc != SHOAL_OK) {
        fprintf(stderr, "fleet_run: %s\n", shoal_strerror(rc));
        goto out;
    }
    size_t submitted = 0;
    for (size_t i = 0; i < n; i++)
        if (shoal_fleet_submit(fleet, req, &hosts[i], i) == SHOAL_OK)
            submitted++;
    r.n = submitted; /* a host that could not be submitted reports "no result" */
    if (submitted)
        uv_run(&loop, UV_RUN_DEFAULT);

    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed |= report(hosts[i].spec, r.results[i]);
    code = failed ? 1 : 0;

out:
    shoal_fleet_free(fleet);
    shoal_fleet_request_unref(req);
    if (loop_ready) {
        uv_run(&loop, UV_RUN_DEFAULT); /* closes the fleet's handles */
        uv_loop_close(&loop);
    }
    if (r.results)
        for (size_t i = 0; i < n; i++)
            shoal_fleet_event_free(r.results[i]);
    free(r.results);
    free(hosts);
    free(names);
    free(users);
    shoal_ssh_resolved_free(resolved);
    shoal_ssh_options_free(&o);
    return code;
}
