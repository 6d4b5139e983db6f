/* Token buckets for upload bandwidth caps: one per host (used by one
 * thread) and optionally one shared by every host of a request (locked).
 * Any rate works: a bucket hands out whatever it holds, so a 100 B/s cap
 * sends small writes rather than stalling for whole chunks. */
#ifndef SHOAL_APP_RATELIMIT_H
#define SHOAL_APP_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fleet_bucket {
    pthread_mutex_t mu;
    int shared;
    double rate;     /* bytes per second; 0 = unlimited */
    double burst;    /* most tokens held */
    double tokens;
    uint64_t last_ms;
} fleet_bucket;

void fleet_bucket_init(fleet_bucket *b, uint64_t rate, int shared, uint64_t now_ms);
void fleet_bucket_destroy(fleet_bucket *b);
/* Takes up to want bytes' worth of tokens. When none are available,
 * returns 0 and sets *wait_ms to when one byte will be. */
size_t fleet_bucket_take(fleet_bucket *b, size_t want, uint64_t now_ms, uint64_t *wait_ms);
/* Gives back tokens taken but not used. */
void fleet_bucket_refund(fleet_bucket *b, size_t n);

#endif
