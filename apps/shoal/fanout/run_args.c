/* The command lines of `shoal run` and `shoal put` (see run_args.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/numarg.h"
#include "run_args.h"
#include "shoal/version.h"

/* A flag the host options do not know: the caller tries the others. */
#define NOT_A_HOST_OPTION (-2)

enum {
    O_JSON = 256, O_STREAM, O_NOPROG, O_MODE, O_VIA, O_VERIFY, O_RATE, O_HRATE, O_HELP, O_THREADS, O_CAP,
    O_STDIN, O_INPLACE, O_CLEAN, O_OLDER
};

static void usage(FILE *f, int put)
{
    if (put)
        fprintf(f, "usage: shoal put [host options] [--mode MODE] [--via sftp|scp|cat] [--verify] [--inplace]\n"
                   "                 [--rate RATE] [--host-rate RATE] local remote\n"
                   "       shoal put [host options] [--via ...] --clean-temp [--older-than TIME] remote-dir\n"
                   "                 (removes temporary files .NAME.shoal-<16 hex> that a killed upload left,\n"
                   "                 last modified longer ago than TIME, default 1d)\n");
    else
        fprintf(f, "usage: shoal run [host options] [--json] [--stream] [--output-cap SIZE]\n"
                   "                 [--stdin FILE | -I] [--] command...\n");
    fprintf(f, "host options:\n"
               "  -H host[,host]...   hosts ([user@]host[:port], ranges like web[01-40]); repeatable\n"
               "  -w host[,host]...   the same, as pdsh: an item ^file reads a hosts file\n"
               "  -x host[,host]...   leave these hosts out (as pdsh)\n"
               "  -h file             hosts file (one per line, # comments)\n"
               "  -l user             login name (default: the user running shoal, as ssh)\n"
               "  -p port             default port (22)\n"
               "  -i key              private key (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa); repeatable\n"
               "  -o Option=value     OpenSSH-style option; repeatable\n"
               "  -t TIME             deadline per host, from connect to the end (30, 1.5, 30s, 5m, 1h30m;\n"
               "                      default 0: none); the command is sent TERM, then KILL\n"
               "  -m, --max-parallel N  hosts in progress at once (default 0: all)\n"
               "  --threads N         worker threads, 1 to 64 (default: one per CPU; the first takes\n"
               "                      the hosts alone until its core is saturated)\n"
               "  --no-progress       no progress line on a terminal\n");
    if (put)
        fprintf(f, "upload options:\n"
                   "  --mode MODE         permission bits in octal (default: the source's)\n"
                   "  --via sftp|scp|cat  force a transport (default: SFTP, else SCP, else cat)\n"
                   "  --verify            compare the sha256 of the remote file before the rename\n"
                   "  --rate RATE         total bandwidth cap (10M, 500k, 1G: bytes/s, powers of 1024)\n"
                   "  --host-rate RATE    cap per host\n");
    else
        fprintf(f, "command options:\n"
                   "  --json              one JSON Reply line per host (docs/AGENT.md)\n"
                   "  --stream            lines as they arrive, prefixed with the host\n"
                   "  --output-cap SIZE   keep this much of stdout and of stderr per host\n"
                   "                      (default 1M; 64k, 10M, 1G: powers of 1024); cut output is marked\n"
                   "  --stdin FILE        send FILE to every host's command, then EOF\n"
                   "  -I                  send our stdin to every host's command (read once, at most\n"
                   "                      64 MiB unless it is a regular file), then EOF\n"
                   "without --stdin or -I the command's stdin is closed at once.\n");
}

/* Usage error naming the flag: exit code 2. */
static int bad_arg(const char *flag, const char *value, const char *want)
{
    fprintf(stderr, "shoal: %s %s: %s\n", flag, value, want);
    return 2;
}

/* -w, as pdsh: comma-separated items, each a host pattern or ^file. */
static int add_pdsh_hosts(hostlist *hl, const char *arg, char *err, size_t errsz)
{
    char *copy = strdup(arg);
    if (!copy) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    int rc = 0, depth = 0;
    char *item = copy;
    for (char *p = copy;; p++) {
        if (*p == '[')
            depth++;
        else if (*p == ']' && depth > 0)
            depth--;
        if (*p && (*p != ',' || depth > 0))
            continue;
        int last = !*p;
        *p = 0;
        if (item[0] == '^') {
            rc = hostlist_add_file(hl, item + 1, err, errsz);
        } else if (item[0]) {
            rc = hostlist_add_arg(hl, item);
            if (rc)
                snprintf(err, errsz, "%s", hostlist_error(hl));
        }
        if (rc || last)
            break;
        item = p + 1;
    }
    free(copy);
    return rc;
}

/* The -x lists, applied once every host is in. */
typedef struct excludes {
    char **v;
    size_t n;
} excludes;

/* -H -w -x -h: the hosts. RUN_GO_ON or 2 (said). */
static int host_list_option(run_args *a, excludes *x, int c, const char *arg)
{
    char err[1024];
    if (c == 'H' && hostlist_add_arg(a->hosts, arg) != 0) {
        fprintf(stderr, "shoal: -H %s: %s\n", arg, hostlist_error(a->hosts));
        return 2;
    }
    if (c == 'w' && add_pdsh_hosts(a->hosts, arg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: -w %s: %s\n", arg, err);
        return 2;
    }
    if (c == 'x') {
        char **nx = realloc(x->v, (x->n + 1) * sizeof(*nx));
        if (!nx)
            return 2;
        x->v = nx;
        x->v[x->n++] = (char *)arg;
    }
    if (c == 'h' && hostlist_add_file(a->hosts, arg, err, sizeof(err)) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return 2;
    }
    return RUN_GO_ON;
}

/* The host options but the host lists: -l -p -i -o -t -m --threads
 * --no-progress. RUN_GO_ON, 2 (said) or NOT_A_HOST_OPTION. */
static int host_option(run_args *a, int c, const char *arg)
{
    char err[1024];
    uint64_t num;
    switch (c) {
    case 'l':
        free(a->opts.user);
        a->opts.user = strdup(arg);
        return RUN_GO_ON;
    case 'p': {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "Port=%s", arg);
        if (numarg_uint(arg, 1, 65535, &num) != 0 || shoal_ssh_options_apply(&a->opts.ssh, tmp, err, sizeof(err)) != 0)
            return bad_arg("-p", arg, "expected a port number from 1 to 65535");
        return RUN_GO_ON;
    }
    case 'i':
        if (a->opts.n_extra_keys < SHOAL_OPT_MAX_FILES)
            a->opts.extra_keys[a->opts.n_extra_keys++] = strdup(arg);
        return RUN_GO_ON;
    case 'o':
        if (shoal_ssh_options_apply(&a->opts.ssh, arg, err, sizeof(err)) != 0) {
            fprintf(stderr, "shoal: %s\n", err);
            return 2;
        }
        return RUN_GO_ON;
    case 't':
        if (numarg_duration_ms(arg, &a->timeout_ms) != 0)
            return bad_arg("-t", arg, "expected a duration such as 30, 1.5, 30s, 5m or 1h30m");
        return RUN_GO_ON;
    case 'm':
        if (numarg_uint(arg, 0, 100000000, &num) != 0)
            return bad_arg("-m", arg, "expected a number of hosts (0: all at once)");
        a->max_parallel = (unsigned)num;
        return RUN_GO_ON;
    case O_THREADS:
        if (numarg_uint(arg, 1, 64, &num) != 0)
            return bad_arg("--threads", arg, "expected a number of worker threads from 1 to 64");
        a->workers = (unsigned)num;
        return RUN_GO_ON;
    case O_NOPROG:
        a->no_progress = 1;
        return RUN_GO_ON;
    default:
        return NOT_A_HOST_OPTION;
    }
}

/* --via sftp|scp|cat. RUN_GO_ON or 2 (said). */
static int via_option(run_args *a, const char *arg)
{
    if (!strcmp(arg, "sftp"))
        a->via = SHOAL_FLEET_XFER_SFTP;
    else if (!strcmp(arg, "scp"))
        a->via = SHOAL_FLEET_XFER_SCP;
    else if (!strcmp(arg, "cat"))
        a->via = SHOAL_FLEET_XFER_CAT;
    else
        return bad_arg("--via", arg, "expected sftp, scp or cat");
    return RUN_GO_ON;
}

/* The command's and the upload's options (both commands take them all),
 * --help, --version and unknown flags. RUN_GO_ON, or the exit code. */
static int work_option(run_args *a, int c, const char *arg)
{
    switch (c) {
    case O_JSON:
        a->json = 1;
        return RUN_GO_ON;
    case O_STREAM:
        a->stream = 1;
        return RUN_GO_ON;
    case O_MODE:
        if (numarg_mode(arg, &a->mode) != 0)
            return bad_arg("--mode", arg, "expected permission bits in octal, 0 to 7777 (e.g. 0644)");
        a->have_mode = 1;
        return RUN_GO_ON;
    case O_VIA:
        return via_option(a, arg);
    case O_VERIFY:
        a->verify = 1;
        return RUN_GO_ON;
    case O_INPLACE:
        a->inplace = 1;
        return RUN_GO_ON;
    case O_CLEAN:
        a->clean = 1;
        return RUN_GO_ON;
    case O_OLDER:
        if (numarg_duration_ms(arg, &a->older_ms) != 0)
            return bad_arg("--older-than", arg, "expected a duration such as 0, 3600, 30m, 12h or 2d");
        return RUN_GO_ON;
    case O_RATE:
    case O_HRATE:
        if (numarg_size(arg, 1, c == O_RATE ? &a->rate : &a->host_rate) != 0)
            return bad_arg(c == O_RATE ? "--rate" : "--host-rate", arg,
                           "expected bytes per second such as 500k, 10M or 1G (powers of 1024; 0: no cap)");
        return RUN_GO_ON;
    case O_CAP:
        if (numarg_size(arg, 0, &a->out_cap) != 0 || a->out_cap > SIZE_MAX / 4)
            return bad_arg("--output-cap", arg, "expected a size such as 64k, 1M or 1G (powers of 1024)");
        return RUN_GO_ON;
    case O_STDIN:
        a->stdin_file = arg;
        return RUN_GO_ON;
    case 'I':
        a->stdin_ours = 1;
        return RUN_GO_ON;
    case O_HELP:
        usage(stdout, a->put);
        return 0;
    case 'V': /* --version */
        printf("shoal %s\n", shoal_version());
        return 0;
    default:
        usage(stderr, a->put);
        return 2;
    }
}

/* The flags, in order. RUN_GO_ON, or the exit code. */
static int parse_flags(int argc, char **argv, run_args *a, excludes *x)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, O_JSON},           {"stream", no_argument, NULL, O_STREAM},
        {"no-progress", no_argument, NULL, O_NOPROG},  {"max-parallel", required_argument, NULL, 'm'},
        {"mode", required_argument, NULL, O_MODE},     {"via", required_argument, NULL, O_VIA},
        {"verify", no_argument, NULL, O_VERIFY},       {"rate", required_argument, NULL, O_RATE},
        {"host-rate", required_argument, NULL, O_HRATE}, {"help", no_argument, NULL, O_HELP},
        {"threads", required_argument, NULL, O_THREADS}, {"output-cap", required_argument, NULL, O_CAP},
        {"stdin", required_argument, NULL, O_STDIN},   {"inplace", no_argument, NULL, O_INPLACE},
        {"clean-temp", no_argument, NULL, O_CLEAN},    {"older-than", required_argument, NULL, O_OLDER},
        {"version", no_argument, NULL, 'V'},           {NULL, 0, NULL, 0}};
    int c, code = RUN_GO_ON;
    optind = 1;
    while (code == RUN_GO_ON && (c = getopt_long(argc, argv, "+H:h:w:x:l:p:i:o:t:m:I", longopts, NULL)) != -1) {
        if (c == 'H' || c == 'w' || c == 'x' || c == 'h')
            code = host_list_option(a, x, c, optarg);
        else if ((code = host_option(a, c, optarg)) == NOT_A_HOST_OPTION)
            code = work_option(a, c, optarg);
    }
    return code;
}

/* What the flags say together, once all are read: -x, the operands. RUN_GO_ON or 2 (said). */
static int check_args(run_args *a, const excludes *x)
{
    for (size_t i = 0; i < x->n; i++) {
        if (hostlist_exclude(a->hosts, x->v[i]) != 0) {
            fprintf(stderr, "shoal: -x %s: %s\n", x->v[i], hostlist_error(a->hosts));
            return 2;
        }
    }
    if (a->put && (a->stdin_file || a->stdin_ours)) {
        fprintf(stderr, "shoal: --stdin and -I are for shoal run\n");
        return 2;
    }
    if (a->stdin_file && a->stdin_ours) {
        fprintf(stderr, "shoal: --stdin and -I cannot be used together\n");
        return 2;
    }
    int nargs = a->n_operands;
    if (hostlist_count(a->hosts) == 0 || (a->put ? nargs != (a->clean ? 1 : 2) : nargs < 1) || (a->clean && !a->put)) {
        if (hostlist_count(a->hosts) == 0)
            fprintf(stderr, "shoal: no hosts%s\n", x->n ? " left after -x" : " (-H, -w or -h)");
        usage(stderr, a->put);
        return 2;
    }
    return RUN_GO_ON;
}

int run_parse(int argc, char **argv, int put, run_args *a)
{
    memset(a, 0, sizeof(*a));
    a->put = put;
    fleetopts_init(&a->opts);
    a->hosts = hostlist_new(HOSTLIST_DEFAULT_MAX);
    a->out_cap = 1u << 20;
    a->older_ms = 86400000;
    a->via = SHOAL_FLEET_XFER_AUTO;
    excludes x = {NULL, 0};
    int code = parse_flags(argc, argv, a, &x);
    if (code == RUN_GO_ON) {
        a->operands = argv + optind;
        a->n_operands = argc - optind;
        code = check_args(a, &x);
    }
    free(x.v);
    if (code != RUN_GO_ON)
        run_args_free(a);
    return code;
}

void run_args_free(run_args *a)
{
    hostlist_free(a->hosts);
    a->hosts = NULL;
    fleetopts_free(&a->opts);
}
