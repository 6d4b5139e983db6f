/* Token buckets (see ratelimit.h). */
#include "ratelimit.h"

void fleet_bucket_init(fleet_bucket *b, uint64_t rate, int shared, uint64_t now_ms)
{
    b->shared = shared;
    if (shared)
        pthread_mutex_init(&b->mu, NULL);
    b->rate = (double)rate;
    /* A tenth of a second of traffic, but at least 16 KiB (or one second's
     * worth when the rate is lower) so writes are not needlessly tiny. */
    double burst = b->rate / 10.0;
    double floor = b->rate < 16384.0 ? b->rate : 16384.0;
    b->burst = burst > floor ? burst : floor;
    if (b->burst < 1.0)
        b->burst = 1.0;
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

void fleet_bucket_destroy(fleet_bucket *b)
{
    if (b->shared)
        pthread_mutex_destroy(&b->mu);
}

static void refill(fleet_bucket *b, uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += b->rate * (double)(now_ms - b->last_ms) / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
}

size_t fleet_bucket_take(fleet_bucket *b, size_t want, uint64_t now_ms, uint64_t *wait_ms)
{
    *wait_ms = 0;
    if (!b || b->rate <= 0)
        return want;
    if (b->shared)
        pthread_mutex_lock(&b->mu);
    refill(b, now_ms);
    size_t got = 0;
    if (b->tokens >= 1.0) {
        got = b->tokens < (double)want ? (size_t)b->tokens : want;
        b->tokens -= (double)got;
    } else {
        double ms = (1.0 - b->tokens) * 1000.0 / b->rate;
        *wait_ms = ms < 1.0 ? 1 : (uint64_t)ms + 1;
    }
    if (b->shared)
        pthread_mutex_unlock(&b->mu);
    return got;
}

void fleet_bucket_refund(fleet_bucket *b, size_t n)
{
    if (!b || b->rate <= 0 || !n)
        return;
    if (b->shared)
        pthread_mutex_lock(&b->mu);
    b->tokens += (double)n;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    if (b->shared)
        pthread_mutex_unlock(&b->mu);
}
