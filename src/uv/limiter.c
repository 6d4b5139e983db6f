/* A loop-local counting semaphore with a FIFO of waiters (shoal_uv_limiter,
 * see shoal/uv.h). Used for ssh-agent connections. Not thread-safe: every
 * call comes from the one loop thread the limiter belongs to. */
#include <stdlib.h>

#include "uv/conn_impl.h"

struct shoal_uv_limiter {
    unsigned max, active;
    shoal__lim_node *head, *tail; /* waiting, oldest first */
};

int shoal_uv_limiter_new(unsigned max, shoal_uv_limiter **out)
{
    if (!out)
        return SHOAL_ERR_INVALID_ARG;
    *out = NULL;
    if (max == 0)
        return SHOAL_ERR_INVALID_ARG;
    shoal_uv_limiter *l = calloc(1, sizeof(*l));
    if (!l)
        return SHOAL_ERR_NOMEM;
    l->max = max;
    *out = l;
    return SHOAL_OK;
}

void shoal_uv_limiter_free(shoal_uv_limiter *l)
{
    free(l);
}

unsigned shoal_uv_limiter_in_use(const shoal_uv_limiter *l, unsigned *waiting)
{
    if (waiting) {
        *waiting = 0;
        for (const shoal__lim_node *n = l ? l->head : NULL; n; n = n->next)
            (*waiting)++;
    }
    return l ? l->active : 0;
}

int shoal__lim_acquire(shoal_uv_limiter *l, shoal__lim_node *n, void (*granted)(shoal__lim_node *n))
{
    n->lim = l;
    n->granted = granted;
    n->prev = n->next = NULL;
    if (l->active < l->max && !l->head) {
        l->active++;
        n->state = SHOAL_LIM_HOLDING;
        return 1;
    }
    n->state = SHOAL_LIM_WAITING;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    return 0;
}

static void unlink_node(shoal_uv_limiter *l, shoal__lim_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

void shoal__lim_release(shoal__lim_node *n)
{
    shoal_uv_limiter *l = n->lim;
    int was = n->state;
    n->state = SHOAL_LIM_NONE;
    n->lim = NULL;
    if (!l)
        return;
    if (was == SHOAL_LIM_WAITING) {
        unlink_node(l, n);
        return;
    }
    if (was != SHOAL_LIM_HOLDING)
        return;
    l->active--;
    /* Hand the slot to the oldest waiter. Its callback only schedules work
     * (it runs inside whatever released the slot). */
    while (l->head && l->active < l->max) {
        shoal__lim_node *w = l->head;
        unlink_node(l, w);
        l->active++;
        w->state = SHOAL_LIM_HOLDING;
        w->granted(w);
    }
}
