/* The stdin lines of `shoal agent` (see agent_stdin.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_stdin.h"

static void reader_push(agent_stdin *r, char *text, size_t len)
{
    agent_line *l = malloc(sizeof(*l));
    if (!l) {
        free(text);
        return;
    }
    l->text = text;
    l->len = len;
    l->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = l;
    else
        r->head = l;
    r->tail = l;
    pthread_cond_signal(&r->cond);
    if (r->async)
        uv_async_send(r->async);
    pthread_mutex_unlock(&r->mu);
}

static void reader_push_copy(agent_stdin *r, const char *buf, size_t len)
{
    char *text = malloc(len + 1);
    if (!text)
        return;
    memcpy(text, buf, len);
    text[len] = 0;
    reader_push(r, text, len);
}

static void *reader_main(void *arg)
{
    agent_stdin *r = arg;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    char chunk[1 << 16];
    for (;;) {
        ssize_t n = read(0, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n') {
                if (buf)
                    reader_push_copy(r, buf, len);
                len = 0;
                continue;
            }
            if (buf && len + 1 >= cap) {
                /* No limit on line length but memory itself. */
                char *nb = realloc(buf, cap * 2);
                if (!nb) {
                    free(buf);
                    buf = NULL;
                } else {
                    buf = nb;
                    cap *= 2;
                }
            }
            if (buf)
                buf[len++] = chunk[i];
        }
    }
    if (buf && len)
        reader_push_copy(r, buf, len);
    free(buf);
    pthread_mutex_lock(&r->mu);
    r->eof = 1;
    pthread_cond_signal(&r->cond);
    if (r->async)
        uv_async_send(r->async);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

agent_line *agent_stdin_wait(agent_stdin *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->head && !r->eof)
        pthread_cond_wait(&r->cond, &r->mu);
    agent_line *l = r->head;
    if (l) {
        r->head = l->next;
        if (!r->head)
            r->tail = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return l;
}

void agent_line_free(agent_line *l)
{
    if (l) {
        free(l->text);
        free(l);
    }
}

int agent_stdin_start(agent_stdin *r, pthread_t *thread)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    return pthread_create(thread, NULL, reader_main, r);
}

agent_line *agent_stdin_take(agent_stdin *r, int *eof)
{
    pthread_mutex_lock(&r->mu);
    agent_line *l = r->head;
    if (l) {
        r->head = l->next;
        if (!r->head)
            r->tail = NULL;
    }
    *eof = r->eof;
    pthread_mutex_unlock(&r->mu);
    return l;
}

void agent_stdin_attach(agent_stdin *r, uv_async_t *async)
{
    pthread_mutex_lock(&r->mu);
    r->async = async;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(async);
}
