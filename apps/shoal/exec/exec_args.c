/* shoal exec's command line: the flags and the destination (exec_args.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec_args.h"
#include "shoal/uv.h" /* shoal_parse_destination */
#include "shoal/version.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal exec [-p port] [-l user] [-i identity] [-c ciphers] [-o Option=value]... [-n] [-v]\n"
            "                  [user@]host command...\n"
            "       shoal exec [options] -W host:port [user@]host\n"
            "\n"
            "Runs command on host like `ssh host command`: stdin is forwarded, stdout and\n"
            "stderr are kept apart, and the exit code is the remote exit status (128+N when\n"
            "the command is killed by signal N; 255 on a connection or protocol error).\n"
            "With -W, stdin and stdout are forwarded to host:port through the server\n"
            "instead, as ssh -W does (a ProxyCommand for another ssh).\n");
}

static char *join_command(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

/* A flag that is an OpenSSH option under another name (-p is Port=...). */
static int apply_as(shoal_ssh_options *o, const char *name, const char *value, char *err, size_t errsz)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s=%s", name, value);
    return shoal_ssh_options_apply(o, tmp, err, errsz);
}

/* -W host:port or [v6addr]:port. 0, or -1 (said on stderr). */
static int parse_forward(const char *arg, exec_args *a)
{
    const char *colon = strrchr(arg, ':');
    const char *h = arg;
    size_t hl = colon ? (size_t)(colon - arg) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    char *end = NULL;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || hl == 0 || hl >= sizeof(a->fwd_host) || !colon[1] || *end || port == 0 || port > 65535 ||
        memchr(h, '[', hl) || memchr(h, ']', hl)) {
        fprintf(stderr, "shoal: -W: bad forwarding specification \"%s\" (want host:port)\n", arg);
        return -1;
    }
    memcpy(a->fwd_host, h, hl);
    a->fwd_host[hl] = 0;
    a->fwd_port = (unsigned)port;
    return 0;
}

/* The flags, in order. EXEC_GO_ON, or the exit code (--help, --version:
 * 0; a usage error: 255, as ssh), with a->ssh freed. */
static int exec_parse_flags(int argc, char **argv, exec_args *a)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    char err[600];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+p:l:i:c:m:o:vnqhW:", longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'p':
            rc = apply_as(&a->ssh, "Port", optarg, err, sizeof(err));
            break;
        case 'l':
            rc = apply_as(&a->ssh, "User", optarg, err, sizeof(err));
            break;
        case 'i':
            rc = apply_as(&a->ssh, "IdentityFile", optarg, err, sizeof(err));
            break;
        case 'c':
            rc = apply_as(&a->ssh, "Ciphers", optarg, err, sizeof(err));
            break;
        case 'm':
            rc = apply_as(&a->ssh, "MACs", optarg, err, sizeof(err));
            break;
        case 'o':
            rc = shoal_ssh_options_apply(&a->ssh, optarg, err, sizeof(err));
            break;
        case 'v':
            a->verbose++;
            break;
        case 'n':
            a->no_stdin = 1;
            break;
        case 'q':
            break;
        case 'W':
            if (parse_forward(optarg, a) != 0) {
                shoal_ssh_options_free(&a->ssh);
                return EXIT_CONN_ERROR;
            }
            break;
        case 'h':
            usage(stdout);
            shoal_ssh_options_free(&a->ssh);
            return 0;
        case 'V': /* --version */
            printf("shoal %s\n", shoal_version());
            shoal_ssh_options_free(&a->ssh);
            return 0;
        default:
            usage(stderr);
            shoal_ssh_options_free(&a->ssh);
            return EXIT_CONN_ERROR;
        }
        if (rc) {
            fprintf(stderr, "shoal: %s\n", err);
            shoal_ssh_options_free(&a->ssh);
            return EXIT_CONN_ERROR;
        }
    }
    return EXEC_GO_ON;
}

int exec_parse(int argc, char **argv, exec_args *a)
{
    memset(a, 0, sizeof(*a));
    shoal_ssh_options_init(&a->ssh);
    int code = exec_parse_flags(argc, argv, a);
    if (code != EXEC_GO_ON)
        return code;
    if (a->fwd_port && argc - optind > 1) {
        fprintf(stderr, "shoal: -W forwards stdin and stdout: no command may be given\n");
        shoal_ssh_options_free(&a->ssh);
        return EXIT_CONN_ERROR;
    }
    if (argc - optind < (a->fwd_port ? 1 : 2)) {
        usage(stderr);
        shoal_ssh_options_free(&a->ssh);
        return EXIT_CONN_ERROR;
    }
    if (shoal_parse_destination(argv[optind], a->user, sizeof(a->user), a->host, sizeof(a->host), &a->port)) {
        fprintf(stderr, "shoal: invalid destination \"%s\"\n", argv[optind]);
        shoal_ssh_options_free(&a->ssh);
        return EXIT_CONN_ERROR;
    }
    a->command = join_command(argc - optind - 1, argv + optind + 1);
    return EXEC_GO_ON;
}


void exec_args_free(exec_args *a)
{
    free(a->command);
    a->command = NULL;
    shoal_ssh_options_free(&a->ssh);
}
