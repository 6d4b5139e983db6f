/* Fuzzes the SFTP client with server bytes: the input (after one byte
 * choosing how it is split into channel-data chunks: 0 = all at once) is
 * everything an sftp server sends, fed to a client over a fake transport.
 * The client behaves like an upload: on VERSION it starts an upload of
 * 40000 bytes to /up/target (OPEN), a stat and a realpath, writes as the
 * upload allows, and finishes. Request ids are deterministic (the first is
 * 0x100, then 0x201, 0x302, ...), so seeds can script whole sessions (see
 * fuzz/corpus/sftp_client). The reply and VERSION parsers also see the raw
 * input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sftp/sftp_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

typedef struct fz {
    shoal_sftp *sf;
    shoal_sftp_put *put;
    size_t given;
    int finished;
    int closed_io;
    size_t sent;
} fz;

static uint8_t PAYLOAD[40000];

static int io_write(void *ctx, const uint8_t *p, size_t n, size_t *taken)
{
    fz *f = ctx;
    /* Touch the bytes so ASan checks them. */
    if (n)
        f->sent += p[0] + p[n - 1];
    *taken = n;
    return 0;
}

static size_t io_writable(void *ctx)
{
    (void)ctx;
    return 1u << 20;
}

static void io_arm(void *ctx)
{
    (void)ctx;
}

static void io_close(void *ctx)
{
    fz *f = ctx;
    f->closed_io = 1;
}

static const sftp_io IO = {io_write, io_writable, io_arm, io_close};

static void on_writable(shoal_sftp_put *p, void *ud)
{
    fz *f = ud;
    if (f->given < sizeof(PAYLOAD)) {
        size_t taken = 0;
        if (shoal_sftp_put_write(p, PAYLOAD + f->given, sizeof(PAYLOAD) - f->given, &taken) == 0)
            f->given += taken;
    }
    if (f->given == sizeof(PAYLOAD) && !f->finished) {
        f->finished = 1;
        (void)shoal_sftp_put_finish(p);
    }
}

static void on_done(shoal_sftp_put *p, int err, const char *message, void *ud)
{
    fz *f = ud;
    (void)p;
    f->put = NULL;
    if (message)
        sink += strlen(message) + (size_t)(-err);
}

static void on_stat(shoal_sftp *sf, int err, const char *message, const shoal_sftp_attrs *a, void *ud)
{
    (void)sf;
    (void)ud;
    if (a)
        sink += (size_t)a->size;
    if (message)
        sink += strlen(message) + (size_t)(-err);
}

static void on_path(shoal_sftp *sf, int err, const char *message, const char *path, void *ud)
{
    (void)sf;
    (void)ud;
    if (path)
        sink += strlen(path);
    if (message)
        sink += strlen(message) + (size_t)(-err);
}

static void on_ready(shoal_sftp *sf, int err, const char *message, void *ud)
{
    fz *f = ud;
    if (err) {
        sink += message ? strlen(message) : 0;
        return;
    }
    static const shoal_sftp_put_callbacks pcb = {sizeof(shoal_sftp_put_callbacks), on_writable, on_done, NULL};
    shoal_sftp_put_options opt = {.size = sizeof(shoal_sftp_put_options), .fsync = 0, .max_writes = 8};
    (void)shoal_sftp_put_begin_ex(sf, "/up/target", 0644, &opt, &pcb, f, &f->put);
    (void)shoal_sftp_stat(sf, "/up", on_stat, f);
    (void)shoal_sftp_realpath(sf, ".", on_path, f);
}

static void on_closed(shoal_sftp *sf, void *ud)
{
    (void)sf;
    fz *f = ud;
    f->sf = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parsers alone, on the raw input. */
    sftp_reply rep;
    if (shoal__sftp_parse_reply(data, size, &rep) == 0)
        sink += rep.msg_len + rep.handle_len + rep.data_len + rep.name_len;
    uint32_t version;
    sftp_ext exts[4];
    unsigned n_exts;
    if (shoal__sftp_parse_version(data, size, &version, exts, 4, &n_exts) == 0)
        sink += n_exts + version;

    if (size < 1)
        return 0;
    size_t chunk = data[0] ? data[0] : SIZE_MAX;
    data++;
    size--;

    fz f;
    memset(&f, 0, sizeof(f));
    static const shoal_sftp_callbacks cb = {sizeof(shoal_sftp_callbacks), on_ready, on_closed, NULL};
    if (shoal__sftp_new_detached(&IO, &f, &cb, &f, &f.sf) != 0)
        return 0;
    shoal_sftp *sf = f.sf;
    while (size > 0 && !f.closed_io) {
        size_t k = size < chunk ? size : chunk;
        (void)shoal__sftp_io_data(sf, data, k);
        /* Room opens now and then, as a channel's window would. */
        shoal__sftp_io_writable(sf);
        data += k;
        size -= k;
    }
    shoal_sftp_close(sf);
    shoal__sftp_io_closed(sf); /* frees sf */
    sink += f.sent;
    return 0;
}
