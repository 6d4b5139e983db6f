/* SFTP v3 client internals shared by the files of src/sftp, the unit tests and the
 * fuzz target.
 *
 *   sftp_wire.c    packet framing, ATTRS, reply parsing (pure functions)
 *   sftp_client.c  the client: channel glue, request table, dispatch, ops
 *   sftp_put.c     the upload state machine
 *
 * The client talks to its channel through sftp_io so tests and the fuzz
 * target can run it over a fake transport (shoal__sftp_new_detached). */
#ifndef SHOAL_SFTP_IMPL_H
#define SHOAL_SFTP_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/sftp.h"
#include "wire/buf.h"

/* ---- protocol constants (draft-ietf-secsh-filexfer-02) ---- */

#define SFTP_VERSION 3u

enum {
    SSH_FXP_INIT = 1,
    SSH_FXP_VERSION = 2,
    SSH_FXP_OPEN = 3,
    SSH_FXP_CLOSE = 4,
    SSH_FXP_READ = 5,
    SSH_FXP_WRITE = 6,
    SSH_FXP_LSTAT = 7,
    SSH_FXP_FSTAT = 8,
    SSH_FXP_SETSTAT = 9,
    SSH_FXP_FSETSTAT = 10,
    SSH_FXP_OPENDIR = 11,
    SSH_FXP_READDIR = 12,
    SSH_FXP_REMOVE = 13,
    SSH_FXP_MKDIR = 14,
    SSH_FXP_RMDIR = 15,
    SSH_FXP_REALPATH = 16,
    SSH_FXP_STAT = 17,
    SSH_FXP_RENAME = 18,
    SSH_FXP_READLINK = 19,
    SSH_FXP_SYMLINK = 20,
    SSH_FXP_STATUS = 101,
    SSH_FXP_HANDLE = 102,
    SSH_FXP_DATA = 103,
    SSH_FXP_NAME = 104,
    SSH_FXP_ATTRS = 105,
    SSH_FXP_EXTENDED = 200,
    SSH_FXP_EXTENDED_REPLY = 201,
};

enum {
    SSH_FX_OK = 0,
    SSH_FX_EOF = 1,
    SSH_FX_NO_SUCH_FILE = 2,
    SSH_FX_PERMISSION_DENIED = 3,
    SSH_FX_FAILURE = 4,
    SSH_FX_BAD_MESSAGE = 5,
    SSH_FX_NO_CONNECTION = 6,
    SSH_FX_CONNECTION_LOST = 7,
    SSH_FX_OP_UNSUPPORTED = 8,
};

enum {
    SSH_FXF_READ = 0x01,
    SSH_FXF_WRITE = 0x02,
    SSH_FXF_APPEND = 0x04,
    SSH_FXF_CREAT = 0x08,
    SSH_FXF_TRUNC = 0x10,
    SSH_FXF_EXCL = 0x20,
};

#define SSH_FILEXFER_ATTR_EXTENDED 0x80000000u
#define SFTP_ATTR_KNOWN (SHOAL_SFTP_ATTR_SIZE | SHOAL_SFTP_ATTR_UIDGID | SHOAL_SFTP_ATTR_PERMISSIONS | \
                         SHOAL_SFTP_ATTR_ACMODTIME | SSH_FILEXFER_ATTR_EXTENDED)

/* ---- limits ---- */

/* Largest SFTP packet (length field) we accept from the server or send;
 * OpenSSH's sftp-server uses the same value. */
#define SFTP_MAX_PACKET (256u * 1024u)
/* Request slots (outstanding requests of every kind, uploads included). */
#define SFTP_MAX_REQS 128u
/* A handle longer than this is a protocol error (the draft's limit). */
#define SFTP_MAX_HANDLE 256u
/* Extended attribute pairs in one ATTRS, extensions in VERSION. */
#define SFTP_MAX_ATTR_EXT 64u
#define SFTP_MAX_EXTENSIONS 32u
#define SFTP_EXT_NAME_MAX 64u
#define SFTP_EXT_VER_MAX 16u
/* Longest path we send. */
#define SFTP_MAX_PATH 4096u
/* Uploads: defaults and ceilings. */
#define SFTP_PUT_WRITES 64u
#define SFTP_PUT_CHUNK 32768u
#define SFTP_PUT_CHUNK_MAX 65536u
/* Our own staging buffer (packets waiting for channel room). */
#define SFTP_OUT_MAX (4u * 1024u * 1024u)

/* ---- wire (sftp_wire.c) ---- */

/* Starts a packet in b (length placeholder + type); finish with
 * shoal__sftp_pkt_end, or drop with shoal_buf_truncate(b, mark). */
int shoal__sftp_pkt_begin(shoal_buf *b, uint8_t type, size_t *mark);
/* Patches the length; SHOAL_ERR_TOO_LARGE (and the packet dropped) above
 * SFTP_MAX_PACKET. */
int shoal__sftp_pkt_end(shoal_buf *b, size_t mark);

int shoal__sftp_attrs_put(shoal_buf *b, const shoal_sftp_attrs *a);
/* Extended pairs are checked and skipped (at most SFTP_MAX_ATTR_EXT). */
int shoal__sftp_attrs_parse(shoal_rd *r, shoal_sftp_attrs *a);

/* Framing: given the bytes buffered so far, how many make the next packet
 * (4 + length), 0 when fewer than 4 are there; SHOAL_ERR_TOO_LARGE /
 * SHOAL_ERR_BAD_FORMAT for a length above SFTP_MAX_PACKET or of 0. */
int shoal__sftp_frame(const uint8_t *p, size_t n, size_t *pkt_len);

/* One extension from VERSION (both NUL-terminated, truncated names are not
 * stored). */
typedef struct sftp_ext {
    char name[SFTP_EXT_NAME_MAX];
    char version[SFTP_EXT_VER_MAX];
} sftp_ext;

/* Parses a VERSION payload (type byte first). Stores up to max extensions
 * whose name and data fit; the rest are checked and ignored. */
int shoal__sftp_parse_version(const uint8_t *p, size_t n, uint32_t *version, sftp_ext *exts, unsigned max,
                              unsigned *n_exts);

/* A reply, fields borrowed from the packet. */
typedef struct sftp_reply {
    uint8_t type;
    uint32_t id;
    /* STATUS */
    uint32_t code;
    const char *msg;
    size_t msg_len;
    /* HANDLE; DATA and EXTENDED_REPLY (raw bytes) */
    const uint8_t *handle;
    size_t handle_len;
    const uint8_t *data;
    size_t data_len;
    /* ATTRS; NAME: the first entry (count is checked to be >= 1) */
    shoal_sftp_attrs attrs;
    uint32_t count;
    const char *name;
    size_t name_len;
    /* NAME: all count entries, checked, for shoal__sftp_name_next */
    const uint8_t *entries;
    size_t entries_len;
} sftp_reply;

/* Parses any server reply (type byte first; STATUS, HANDLE, DATA, NAME,
 * ATTRS, EXTENDED_REPLY). Every field is checked, trailing bytes refused
 * (except in EXTENDED_REPLY, whose body is opaque). */
int shoal__sftp_parse_reply(const uint8_t *p, size_t n, sftp_reply *r);

/* One entry of a NAME reply's entries (already checked by
 * shoal__sftp_parse_reply); 1 when one was read, 0 at the end. */
typedef struct sftp_name_entry {
    const char *name, *longname;
    size_t name_len, longname_len;
    shoal_sftp_attrs attrs;
} sftp_name_entry;
int shoal__sftp_name_next(shoal_rd *r, sftp_name_entry *e);

/* Human-readable name of a status code ("no such file"). */
const char *shoal__sftp_status_text(uint32_t code);
/* The shoal error for a non-OK status. */
int shoal__sftp_status_err(uint32_t code);
/* Copies at most max bytes of untrusted text into out, control characters
 * replaced by '?'. */
void shoal__sftp_clean(char *out, size_t outsz, const char *in, size_t n);

/* ---- the client (sftp_client.c) ---- */

/* How the client reaches its channel (real or fake). */
typedef struct sftp_io {
    int (*write)(void *ctx, const uint8_t *p, size_t n, size_t *taken);
    size_t (*writable)(void *ctx);
    /* Ask for a writable notification (shoal__sftp_io_writable). */
    void (*arm)(void *ctx);
    /* Close the transport; shoal__sftp_io_closed must follow (maybe later). */
    void (*close)(void *ctx);
} sftp_io;

typedef struct sftp_req sftp_req;
/* Called with the reply, or rep == NULL when the session ends first
 * (err/message say why). */
typedef void (*sftp_req_fn)(shoal_sftp *sf, sftp_req *rq, const sftp_reply *rep, int err, const char *message);

struct sftp_req {
    uint32_t id;
    uint8_t used;
    uint8_t type;      /* request type sent */
    sftp_req_fn fn;
    void *ctx;         /* the upload, or the user's ud */
    union {
        shoal_sftp_status_cb status;
        shoal_sftp_stat_cb stat;
        shoal_sftp_path_cb path;
    } cb;
    uint32_t aux;      /* per-request detail (e.g. WRITE length, step) */
    char *path;        /* for messages (malloc'd), may be NULL */
};

enum sftp_state {
    SFTP_OPENING = 0, /* channel open sent */
    SFTP_SUBSYSTEM,   /* subsystem request sent */
    SFTP_INIT_SENT,   /* waiting for VERSION */
    SFTP_READY,
    SFTP_DEAD,        /* failed or closed: waiting for the transport to go */
};

struct shoal_sftp {
    shoal_session *s; /* NULL for a detached (test) client */
    shoal_channel *ch;
    const sftp_io *io;
    void *io_ctx;
    shoal_sftp_callbacks cb;
    void *ud;
    int state;
    int ready_reported;
    int closed_reported;
    int busy;          /* entry depth: free only at depth 0 */
    int transport_gone;
    int err;           /* why it died */
    shoal_buf in;
    shoal_buf out;
    sftp_req reqs[SFTP_MAX_REQS];
    unsigned nreqs;
    uint32_t seq;
    uint32_t version;
    sftp_ext exts[SFTP_MAX_EXTENSIONS];
    unsigned n_exts;
    shoal_sftp_put *puts; /* uploads in progress */
    char msg[640];
};

/* Test/fuzz entry points: a client over a fake transport, already past
 * the subsystem request (INIT is queued at once). */
int shoal__sftp_new_detached(const sftp_io *io, void *io_ctx, const shoal_sftp_callbacks *cb, void *ud,
                             shoal_sftp **out);
/* Bytes from the server (channel data). Returns the error that killed the
 * client, or 0. */
int shoal__sftp_io_data(shoal_sftp *sf, const uint8_t *p, size_t n);
void shoal__sftp_io_writable(shoal_sftp *sf);
/* The server sent EOF on the channel. */
void shoal__sftp_io_eof(shoal_sftp *sf);
/* The transport is gone (channel closed): fails what is pending, calls
 * on_ready/on_closed as needed and frees sf. */
void shoal__sftp_io_closed(shoal_sftp *sf);

/* Internals used by sftp_put.c. */
void shoal__sftp_enter(shoal_sftp *sf);
void shoal__sftp_leave(shoal_sftp *sf);
void shoal__sftp_logf(shoal_sftp *sf, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A free request slot (NULL when none). */
sftp_req *shoal__sftp_req_new(shoal_sftp *sf, uint8_t type, sftp_req_fn fn, void *ctx);
void shoal__sftp_req_free(shoal_sftp *sf, sftp_req *rq);
unsigned shoal__sftp_free_slots(const shoal_sftp *sf);
/* Starts a request packet (type, id); then append to sf->out and call
 * shoal__sftp_send_end(sf, rq, mark, rc). An error from either means the
 * request was not queued (rq is freed, its callback never runs); 0 means
 * it was, and its callback runs once, maybe already (when sending failed,
 * the client died and completed it: check sf->state). */
int shoal__sftp_send_begin(shoal_sftp *sf, sftp_req *rq, size_t *mark);
int shoal__sftp_send_end(shoal_sftp *sf, sftp_req *rq, size_t mark, int rc);
/* Channel room for new packets: writable minus what is still staged. */
size_t shoal__sftp_room(const shoal_sftp *sf);
size_t shoal__sftp_staged(const shoal_sftp *sf);
/* Kills the client with err + message (formatted into sf->msg). */
void shoal__sftp_fail(shoal_sftp *sf, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Formats "<what> <path>: <status text>[: server text]" for a status. */
void shoal__sftp_status_message(char *out, size_t outsz, const char *what, const char *path,
                                const sftp_reply *rep);

/* Uploads (sftp_put.c). */
/* The client dies: every upload gets on_done(err, message) and is freed. */
void shoal__sftp_put_fail_all(shoal_sftp *sf, int err, const char *message);
/* The channel has room again or a slot was freed: on_writable as due. */
void shoal__sftp_put_notify(shoal_sftp *sf);
/* Frees uploads that reported on_done (the client is idle). */
void shoal__sftp_put_reap(shoal_sftp *sf);

#endif
