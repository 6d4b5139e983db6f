/* shoal: command-line entry point; dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "shoal/version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal <command> [options]\n"
               "\n"
               "commands:\n"
               "  exec    run a command on one host, like ssh host command\n"
               "  run     run a command on many hosts at once, output grouped by result\n"
               "  put     upload a file to many hosts at once (SFTP, SCP or cat; temp name + rename)\n"
               "  agent   JSON lines on stdin/stdout for programs (GoSSHa's protocol and more)\n"
               "  serve   a programmable SSH server for stock OpenSSH clients\n"
               "\n"
               "Run 'shoal <command> --help' for a command's options;\n"
               "'shoal [<command>] --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("shoal %s\n", shoal_version());
        return 0;
    }
    if (!strcmp(argv[1], "exec"))
        return cmd_exec(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "put"))
        return cmd_put(argc - 1, argv + 1);
    if (!strcmp(argv[1], "agent"))
        return cmd_agent(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve"))
        return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "shoal: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
