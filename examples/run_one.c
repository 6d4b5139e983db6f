/* run_one: run one command on one host with the blocking shoal_run() and
 * print its output and how it ended.
 *
 *   run_one [-p port] [-l user] [-i key] [-o Option=value]... host command
 *
 * -o takes OpenSSH's client keywords (include/shoal/config.h), e.g.
 * -o UserKnownHostsFile=FILE -o StrictHostKeyChecking=accept-new.
 * Build: cc run_one.c $(pkg-config --cflags --libs libshoal) -o run_one */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shoal/command.h>
#include <shoal/config.h>
#include <shoal/error.h>
#include <shoal/ssh_resolve.h>

/* The -o/-p/-l/-i options as the driver's connection options, through the
 * library's resolver (the same rules as `shoal exec`: defaults from ~/.ssh,
 * the ssh-agent, known_hosts files, StrictHostKeyChecking). */
static shoal_ssh_resolved *resolve(const shoal_ssh_options *o, const char *host, shoal_uv_options *uo)
{
    shoal_ssh_resolve_params p;
    shoal_ssh_resolve_params_init(&p);
    shoal_ssh_resolved *r;
    char err[512];
    if (shoal_ssh_resolve(o, &p, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", "run_one", err);
        return NULL;
    }
    *uo = *shoal_ssh_resolved_conn(r);
    uo->host = host;
    return r;
}

int main(int argc, char **argv)
{
    shoal_ssh_options o;
    shoal_ssh_options_init(&o);
    char err[512], line[600];
    int c;
    while ((c = getopt(argc, argv, "+p:l:i:o:")) != -1) {
        const char *kw = c == 'p' ? "Port" : c == 'l' ? "User" : c == 'i' ? "IdentityFile" : NULL;
        if (c == '?')
            return 2;
        if (kw)
            snprintf(line, sizeof(line), "%s=%s", kw, optarg);
        else
            snprintf(line, sizeof(line), "%s", optarg);
        if (shoal_ssh_options_apply(&o, line, err, sizeof(err)) != 0) {
            fprintf(stderr, "run_one: %s\n", err);
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: run_one [-p port] [-l user] [-i key] [-o Option=value]... host command\n");
        return 2;
    }

    shoal_uv_options uo;
    shoal_ssh_resolved *resolved = resolve(&o, argv[optind], &uo);
    if (!resolved)
        return 255;
    shoal_run_result res;
    int rc = shoal_run(&uo, argv[optind + 1], NULL, 0, NULL, &res);
    if (rc != 0) {
        /* Could not connect, log in or start the command: the message
         * names the host and the stage. */
        fprintf(stderr, "run_one: %s (%s)\n", res.message, shoal_errname(rc));
        shoal_run_result_free(&res);
        shoal_ssh_resolved_free(resolved);
        shoal_ssh_options_free(&o);
        return 255;
    }
    fwrite(res.out, 1, res.out_len, stdout);
    fwrite(res.err_out, 1, res.err_len, stderr);
    int exit_code;
    switch (res.kind) {
    case SHOAL_EXIT_STATUS:
        printf("exit status %d\n", res.status);
        exit_code = res.status;
        break;
    case SHOAL_EXIT_SIGNAL:
        printf("killed by signal %s%s\n", res.signal, res.core_dumped ? " (core dumped)" : "");
        exit_code = 128;
        break;
    case SHOAL_EXIT_NONE:
        printf("no exit status\n");
        exit_code = 255;
        break;
    default:
        printf("error: %s\n", res.message);
        exit_code = 255;
        break;
    }
    shoal_run_result_free(&res);
    shoal_ssh_resolved_free(resolved);
    shoal_ssh_options_free(&o);
    return exit_code;
}
