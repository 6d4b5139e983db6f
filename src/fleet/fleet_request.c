/* Requests of the fan-out engine (shoal/fleet.h): what every host of one
 * run is to do, set before the first submit and shared read-only after. */
#include <stdlib.h>
#include <string.h>

#include "fleet_impl.h"

shoal_fleet_request *shoal_fleet_request_new(shoal_fleet_kind kind)
{
    if (kind != SHOAL_FLEET_EXEC && kind != SHOAL_FLEET_UPLOAD)
        return NULL;
    shoal_fleet_request *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    atomic_init(&r->stop, SHOAL_FLEET_RUNNING);
    r->kind = kind;
    r->out_cap = 1u << 20;
    return r;
}

shoal_fleet_request *shoal_fleet_request_ref(shoal_fleet_request *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

void shoal_fleet_request_unref(shoal_fleet_request *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    free(r->command);
    free(r->target);
    shoal_fleet_source_free(r->source);
    shoal_fleet_source_free(r->input);
    if (r->global_rate) {
        fleet_bucket_destroy(r->global_rate);
        free(r->global_rate);
    }
    free(r);
}

shoal_fleet_kind shoal_fleet_request_kind(const shoal_fleet_request *r)
{
    return r->kind;
}

/* Replaces *slot by a copy of s. */
static int set_string(char **slot, const char *s)
{
    if (!s)
        return SHOAL_ERR_INVALID_ARG;
    char *copy = strdup(s);
    if (!copy)
        return SHOAL_ERR_NOMEM;
    free(*slot);
    *slot = copy;
    return SHOAL_OK;
}

int shoal_fleet_request_set_command(shoal_fleet_request *r, const char *command)
{
    if (r->kind != SHOAL_FLEET_EXEC)
        return SHOAL_ERR_INVALID_ARG;
    return set_string(&r->command, command);
}

int shoal_fleet_request_set_input(shoal_fleet_request *r, shoal_fleet_source *input)
{
    if (r->kind != SHOAL_FLEET_EXEC) {
        shoal_fleet_source_free(input);
        return SHOAL_ERR_INVALID_ARG;
    }
    shoal_fleet_source_free(r->input);
    r->input = input;
    return SHOAL_OK;
}

int shoal_fleet_request_set_source(shoal_fleet_request *r, shoal_fleet_source *source)
{
    if (r->kind != SHOAL_FLEET_UPLOAD) {
        shoal_fleet_source_free(source);
        return SHOAL_ERR_INVALID_ARG;
    }
    shoal_fleet_source_free(r->source);
    r->source = source;
    return SHOAL_OK;
}

int shoal_fleet_request_set_target(shoal_fleet_request *r, const char *path)
{
    if (r->kind != SHOAL_FLEET_UPLOAD)
        return SHOAL_ERR_INVALID_ARG;
    return set_string(&r->target, path);
}

int shoal_fleet_request_set_mode(shoal_fleet_request *r, uint32_t mode)
{
    if (r->kind != SHOAL_FLEET_UPLOAD || mode > 07777)
        return SHOAL_ERR_INVALID_ARG;
    r->mode = mode;
    r->mode_given = 1;
    return SHOAL_OK;
}

int shoal_fleet_request_set_inplace(shoal_fleet_request *r, int on)
{
    if (r->kind != SHOAL_FLEET_UPLOAD)
        return SHOAL_ERR_INVALID_ARG;
    r->inplace = on != 0;
    return SHOAL_OK;
}

int shoal_fleet_request_set_clean_temp(shoal_fleet_request *r, uint64_t older_than_s)
{
    if (r->kind != SHOAL_FLEET_UPLOAD)
        return SHOAL_ERR_INVALID_ARG;
    r->clean_temp = 1;
    r->clean_age_s = older_than_s;
    return SHOAL_OK;
}

int shoal_fleet_request_set_xfer(shoal_fleet_request *r, shoal_fleet_xfer xfer)
{
    if (r->kind != SHOAL_FLEET_UPLOAD || (unsigned)xfer > SHOAL_FLEET_XFER_CAT)
        return SHOAL_ERR_INVALID_ARG;
    r->xfer = xfer;
    return SHOAL_OK;
}

int shoal_fleet_request_set_verify(shoal_fleet_request *r, int on)
{
    if (r->kind != SHOAL_FLEET_UPLOAD)
        return SHOAL_ERR_INVALID_ARG;
    r->verify = on != 0;
    return SHOAL_OK;
}

int shoal_fleet_request_set_host_rate(shoal_fleet_request *r, uint64_t bytes_per_s)
{
    if (r->kind != SHOAL_FLEET_UPLOAD)
        return SHOAL_ERR_INVALID_ARG;
    r->host_rate = bytes_per_s;
    return SHOAL_OK;
}

int shoal_fleet_request_set_total_rate(shoal_fleet_request *r, uint64_t bytes_per_s)
{
    if (r->kind != SHOAL_FLEET_UPLOAD)
        return SHOAL_ERR_INVALID_ARG;
    if (r->global_rate) {
        fleet_bucket_destroy(r->global_rate);
        free(r->global_rate);
        r->global_rate = NULL;
    }
    if (!bytes_per_s)
        return SHOAL_OK;
    r->global_rate = calloc(1, sizeof(*r->global_rate));
    if (!r->global_rate)
        return SHOAL_ERR_NOMEM;
    /* The workers take tokens at uv_now() of their loops: libuv's
     * monotonic clock in milliseconds, the same base as this. */
    fleet_bucket_init(r->global_rate, bytes_per_s, 1, uv_hrtime() / 1000000);
    return SHOAL_OK;
}

void shoal_fleet_request_set_host_timeout(shoal_fleet_request *r, uint64_t ms)
{
    r->host_timeout_ms = ms;
}

void shoal_fleet_request_set_output_cap(shoal_fleet_request *r, size_t bytes)
{
    r->out_cap = bytes;
}

size_t shoal_fleet_request_output_cap(const shoal_fleet_request *r)
{
    return r->out_cap;
}

void shoal_fleet_request_set_stream(shoal_fleet_request *r, int on)
{
    r->stream = on != 0;
}

void shoal_fleet_request_set_keep_conn(shoal_fleet_request *r, int on)
{
    r->keep_conn = on != 0;
}

void shoal_fleet_request_set_userdata(shoal_fleet_request *r, void *ud)
{
    r->ud = ud;
}

void *shoal_fleet_request_userdata(const shoal_fleet_request *r)
{
    return r->ud;
}

int shoal_fleet_request_stopped(const shoal_fleet_request *r)
{
    return atomic_load(&((shoal_fleet_request *)r)->stop);
}
