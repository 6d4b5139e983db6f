/* The command line of `shoal agent` (see agent_args.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_args.h"
#include "common/numarg.h"
#include "shoal/version.h"

enum { O_HELP = 256, O_THREADS };

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal agent [-i key] [-l user] [-c N] [-m N] [-d] [--threads N] [-o Option=value]...\n"
               "  JSON lines on stdin and stdout (GoSSHa's protocol; see docs/AGENT.md)\n"
               "  -i key       an extra private key (with ~/.ssh/id_ed25519, id_ecdsa, id_rsa, id_dsa)\n"
               "  -l user      login name (default $LOGNAME, then $USER)\n"
               "  -c N         ssh-agent connections at once (default 128)\n"
               "  -m N         hosts in progress per request (default 0: no limit)\n"
               "  -d           disconnect after each request (default: connections are reused)\n"
               "  -o opt       OpenSSH-style option (StrictHostKeyChecking, UserKnownHostsFile, Ciphers...)\n"
               "  --threads N  worker threads, 1 to 64 (default: one per CPU; the first works alone\n"
               "               until its core is saturated)\n");
}

/* -c, -m and --threads: whole numbers, or a usage error naming the flag. */
static int count_arg(const char *flag, const char *v, uint64_t lo, uint64_t hi, unsigned *value)
{
    uint64_t n;
    if (numarg_uint(v, lo, hi, &n) != 0) {
        fprintf(stderr, "shoal agent: %s %s: expected a whole number from %llu to %llu\n", flag, v,
                (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    *value = (unsigned)n;
    return 0;
}

/* -i: a key file; as GoSSHa, the public half names the key. */
static void add_key(fleetopts *o, const char *arg)
{
    size_t l = strlen(arg);
    char *p = strdup(arg);
    if (p && l > 4 && !strcmp(p + l - 4, ".pub"))
        p[l - 4] = 0;
    if (p && o->n_extra_keys < SHOAL_OPT_MAX_FILES)
        o->extra_keys[o->n_extra_keys++] = p;
    else
        free(p);
}

/* One flag. AGENT_GO_ON, or the exit code. */
static int agent_option(agent_args *a, int c, const char *arg)
{
    char err[1024];
    switch (c) {
    case 'i':
        add_key(&a->opts, arg);
        return AGENT_GO_ON;
    case 'l':
        free(a->opts.user);
        a->opts.user = strdup(arg);
        return AGENT_GO_ON;
    case 'c':
        return count_arg("-c", arg, 1, 1000000, &a->agent_conns) != 0 ? 2 : AGENT_GO_ON;
    case 'm':
        return count_arg("-m", arg, 0, 100000000, &a->max_per_request) != 0 ? 2 : AGENT_GO_ON;
    case 'd':
        a->disconnect = 1;
        return AGENT_GO_ON;
    case O_THREADS:
        return count_arg("--threads", arg, 1, 64, &a->workers) != 0 ? 2 : AGENT_GO_ON;
    case 'o':
        if (shoal_ssh_options_apply(&a->opts.ssh, arg, err, sizeof(err)) != 0) {
            fprintf(stderr, "shoal agent: %s\n", err);
            return 2;
        }
        return AGENT_GO_ON;
    case O_HELP:
        usage(stdout);
        return 0;
    case 'V': /* --version */
        printf("shoal %s\n", shoal_version());
        return 0;
    default:
        usage(stderr);
        return 2;
    }
}

int agent_parse(int argc, char **argv, agent_args *a)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, O_HELP}, {"threads", required_argument, NULL, O_THREADS},
        {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof(*a));
    fleetopts_init(&a->opts);
    a->opts.include_dsa = 1;
    a->opts.default_user = fleetopts_default_user();
    a->agent_conns = 128;
    int c, code = AGENT_GO_ON;
    optind = 1;
    while (code == AGENT_GO_ON && (c = getopt_long(argc, argv, "i:l:c:m:do:", longopts, NULL)) != -1)
        code = agent_option(a, c, optarg);
    if (code == AGENT_GO_ON && optind < argc) {
        fprintf(stderr, "shoal agent: unexpected argument \"%s\"\n", argv[optind]);
        code = 2;
    }
    if (code != AGENT_GO_ON)
        fleetopts_free(&a->opts);
    return code;
}
