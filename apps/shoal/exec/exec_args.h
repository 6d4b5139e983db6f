/* shoal exec's command line: argv -> the settings of one run, with no
 * side effect but the messages of --help, --version and usage errors. */
#ifndef SHOAL_APP_EXEC_ARGS_H
#define SHOAL_APP_EXEC_ARGS_H

#include "shoal/config.h"

/* A connection or protocol failure, and a usage error (as ssh). */
#define EXIT_CONN_ERROR 255

/* What the command line asks for (exec_parse fills it). */
typedef struct exec_args {
    shoal_ssh_options ssh; /* -p -l -i -c -m -o, applied in order */
    int verbose;           /* -v, repeatable */
    int no_stdin;          /* -n */
    char user[256];        /* the destination's user@, "" when none */
    char host[512];
    unsigned port;         /* the destination's :port, 0 when none */
    char *command;         /* the words after the destination, joined ("" with -W) */
    char fwd_host[256];    /* -W host:port: stdin and stdout forwarded there (no command) */
    unsigned fwd_port;     /* 0 = no -W */
} exec_args;

/* exec_parse and exec_prepare: go on (any other value is the exit code). */
#define EXEC_GO_ON (-1)

/* argv -> a. EXEC_GO_ON, or the exit code to return at once (0 after
 * --help or --version; EXIT_CONN_ERROR on a usage error, said on stderr);
 * nothing of a is left to free then. */
int exec_parse(int argc, char **argv, exec_args *a);
/* Frees what exec_parse put in a. */
void exec_args_free(exec_args *a);

#endif
