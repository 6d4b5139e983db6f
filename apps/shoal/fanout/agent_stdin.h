/* stdin of `shoal agent`, as lines: read by a thread of its own (any
 * kind of file, lines of any length but memory), queued for the loop,
 * which an async handle wakes once it is attached. */
#ifndef SHOAL_APP_AGENT_STDIN_H
#define SHOAL_APP_AGENT_STDIN_H

#include <pthread.h>
#include <stddef.h>

#include <uv.h>

typedef struct agent_line {
    char *text; /* without the newline, NUL-terminated */
    size_t len;
    struct agent_line *next;
} agent_line;

typedef struct agent_stdin {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    agent_line *head, *tail;
    int eof;
    uv_async_t *async; /* set once the loop takes over */
} agent_stdin;

/* Starts the thread that reads stdin into r (zeroed by the caller). The
 * result of pthread_create. */
int agent_stdin_start(agent_stdin *r, pthread_t *thread);
/* Blocks for the next line (initialisation only). NULL at EOF. */
agent_line *agent_stdin_wait(agent_stdin *r);
/* The next line, NULL when none is queued; *eof: stdin has ended (lines
 * may still be queued before that). */
agent_line *agent_stdin_take(agent_stdin *r, int *eof);
/* From now on each line (and the end) wakes async; wakes it once now. */
void agent_stdin_attach(agent_stdin *r, uv_async_t *async);
/* Frees l (NULL is fine). */
void agent_line_free(agent_line *l);

#endif
