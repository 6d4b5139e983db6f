/* The command line of `shoal agent`: argv -> its settings, with no side
 * effect but the messages of --help, --version and usage errors. */
#ifndef SHOAL_APP_AGENT_ARGS_H
#define SHOAL_APP_AGENT_ARGS_H

#include "fleetopts.h"

/* agent_parse and agent_prepare: go on (any other value is the exit code). */
#define AGENT_GO_ON (-1)

typedef struct agent_args {
    fleetopts opts;           /* -i -l -o; GoSSHa's default user and id_dsa */
    unsigned agent_conns;     /* -c: ssh-agent connections at once */
    unsigned max_per_request; /* -m: hosts in progress per request, 0: no limit */
    int disconnect;           /* -d: no connection kept after a request */
    unsigned workers;         /* --threads: 0: one per CPU */
} agent_args;

/* argv -> a. AGENT_GO_ON, or the exit code to return at once (0 after
 * --help or --version, 2 on a usage error, said on stderr); nothing of a
 * is left to free then. */
int agent_parse(int argc, char **argv, agent_args *a);

#endif
