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

/* The -o/-p/-l/-i options as the driver's connection options. */
static void to_uv_options(const shoal_ssh_options *o, const char *host, shoal_uv_options *uo)
{
    static const char *default_kh[1];
    static char kh_path[4096];
    static shoal_client_config ssh;
    shoal_uv_options_init(uo);
    shoal_client_config_init(&ssh);
    uo->ssh = &ssh;
    uo->host = host;
    uo->port = o->port;
    ssh.user = o->user ? o->user : getenv("USER");
    ssh.kex_algorithms = o->kex;
    ssh.ciphers = o->ciphers;
    ssh.macs = o->macs;
    ssh.hostkey_algorithms = o->hostkey_algs;
    uo->identity_files = (const char *const *)o->identity_files;
    uo->n_identity_files = o->n_identity_files;
    if (o->n_user_known_hosts) {
        uo->known_hosts = (const char *const *)o->user_known_hosts;
        uo->n_known_hosts = o->n_user_known_hosts;
    } else {
        snprintf(kh_path, sizeof(kh_path), "%s/.ssh/known_hosts", getenv("HOME") ? getenv("HOME") : ".");
        default_kh[0] = kh_path;
        uo->known_hosts = default_kh;
        uo->n_known_hosts = 1;
    }
    switch (o->strict_host_key_checking) {
    case 0: uo->hostkey_policy = SHOAL_HOSTKEY_OFF; break;
    case 2: uo->hostkey_policy = SHOAL_HOSTKEY_ACCEPT_NEW; break;
    default: uo->hostkey_policy = SHOAL_HOSTKEY_STRICT; break; /* yes, ask (nobody to ask), unset */
    }
    if (!(o->identity_agent && !strcmp(o->identity_agent, "none")))
        uo->agent_socket = o->identity_agent ? o->identity_agent : getenv("SSH_AUTH_SOCK");
    if (o->connect_timeout_s > 0)
        uo->connect_timeout_ms = (uint64_t)o->connect_timeout_s * 1000;
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
    to_uv_options(&o, argv[optind], &uo);
    shoal_run_result res;
    int rc = shoal_run(&uo, argv[optind + 1], NULL, 0, NULL, &res);
    if (rc != 0) {
        /* Could not connect, log in or start the command: the message
         * names the host and the stage. */
        fprintf(stderr, "run_one: %s (%s)\n", res.message, shoal_errname(rc));
        shoal_run_result_free(&res);
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
    shoal_ssh_options_free(&o);
    return exit_code;
}
