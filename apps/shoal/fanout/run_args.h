/* The command lines of `shoal run` and `shoal put`: argv -> the settings
 * of one run. Nothing is started; the hosts files of -h and -w ^file are
 * read here, in the order of the flags, so that the first bad flag or file
 * is the one reported. The only output is that of --help, --version and
 * usage errors. */
#ifndef SHOAL_APP_RUN_ARGS_H
#define SHOAL_APP_RUN_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "fleetopts.h"
#include "hostlist.h"
#include "shoal/fleet.h"

/* run_parse and the steps after it: go on (any other value is the exit
 * code to return). */
#define RUN_GO_ON (-1)

typedef struct run_args {
    int put;                  /* shoal put (else shoal run) */
    fleetopts opts;           /* -l -p -i -o */
    hostlist *hosts;          /* -H -w -h, less -x */
    uint64_t timeout_ms;      /* -t: deadline per host, 0: none */
    unsigned max_parallel;    /* -m: 0: all at once */
    unsigned workers;         /* --threads: 0: one per CPU */
    int no_progress;          /* --no-progress */
    /* run */
    int json, stream;         /* --json, --stream */
    uint64_t out_cap;         /* --output-cap */
    const char *stdin_file;   /* --stdin FILE */
    int stdin_ours;           /* -I */
    /* put */
    uint32_t mode;            /* --mode, when have_mode */
    int have_mode;
    shoal_fleet_xfer via;     /* --via */
    int verify, inplace;      /* --verify, --inplace */
    int clean;                /* --clean-temp */
    uint64_t older_ms;        /* --older-than */
    uint64_t rate, host_rate; /* --rate, --host-rate: bytes/s, 0: no cap */
    /* the operands (into argv): run: the command's words; put: local
     * remote, or the remote directory with --clean-temp */
    char **operands;
    int n_operands;
} run_args;

/* argv -> a (put: `shoal put`, else `shoal run`). RUN_GO_ON, or the exit
 * code to return at once (0 after --help or --version, 2 on a usage error,
 * said on stderr); nothing of a is left to free then. */
int run_parse(int argc, char **argv, int put, run_args *a);
/* Frees what run_parse put in a (and what fleetopts_prepare added). */
void run_args_free(run_args *a);

#endif
