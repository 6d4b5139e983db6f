/* shoal: an SFTP version 3 client (draft-ietf-secsh-filexfer-02, with
 * OpenSSH's posix-rename@openssh.com and fsync@openssh.com extensions),
 * built for uploads.
 *
 * Like the rest of libshoal it is sans-I/O: an SFTP client lives on one
 * session channel ("sftp" subsystem) of an authenticated shoal_session and
 * only produces bytes for that channel and callbacks.
 *
 * Sending what these calls queue: the channel callbacks that drive this
 * client (data, window space, close) run inside the libuv driver, which
 * flushes the session's output by itself after each event
 * (src/uv/conn.c: pump_after_io). So calls made from any shoal_sftp_* or
 * shoal_sftp_put_* callback need nothing more; after calling these functions
 * anywhere else (a timer, a file read completing, ...), call
 * shoal_uv_conn_flush() on the connection.
 *
 * Callbacks may call back into this API (start another operation, write
 * more, abort, close). Everything a server sends is treated as hostile: SFTP
 * packets are capped at 256 KiB before they are buffered, every field is
 * checked, replies to unknown request ids end the SFTP session with
 * SHOAL_ERR_PROTOCOL, and the number of outstanding requests is bounded.
 *
 * Errors (include/shoal/error.h): a server status is mapped to
 * SHOAL_ERR_NOT_FOUND (no such file), SHOAL_ERR_PERMISSION (permission
 * denied), SHOAL_ERR_UNSUPPORTED (operation unsupported) or SHOAL_ERR_SFTP
 * (any other failure); the message then names the path and quotes the
 * server's text. A malformed or unexpected reply is SHOAL_ERR_PROTOCOL and
 * ends the SFTP session (its channel is closed). */
#ifndef SHOAL_SFTP_H
#define SHOAL_SFTP_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/channel.h"
#include "shoal/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shoal_sftp shoal_sftp;

typedef struct shoal_sftp_callbacks {
    size_t size; /* sizeof(shoal_sftp_callbacks): set by shoal_sftp_callbacks_init() (docs/API.md) */
    /* err = 0: the server's VERSION arrived, operations may start. Otherwise
     * the channel could not be opened, the subsystem was refused or the
     * handshake failed; on_closed follows. Called once. */
    void (*on_ready)(shoal_sftp *sf, int err, const char *message, void *ud);
    /* The channel is gone; sf is freed after this returns. Called once,
     * after every pending operation and upload got its callback. */
    void (*on_closed)(shoal_sftp *sf, void *ud);
    /* Diagnostics (e.g. "rename was not atomic"). May be NULL; messages
     * also go to the session's log callback. */
    void (*on_log)(shoal_sftp *sf, int level, const char *message, void *ud);
} shoal_sftp_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_sftp_callbacks_init(shoal_sftp_callbacks *x);

/* Opens a session channel on an authenticated session, requests the "sftp"
 * subsystem and sends INIT (version 3). */
SHOAL_EXTERN int shoal_sftp_start(shoal_session *s, const shoal_sftp_callbacks *cb, void *ud, shoal_sftp **out);
/* Closes the channel. Pending operations and uploads fail at once with
 * SHOAL_ERR_CLOSED (an upload's temporary file may then remain; the target
 * is never touched). on_closed follows when the channel is gone. */
SHOAL_EXTERN void shoal_sftp_close(shoal_sftp *sf);
/* 1 when the server's VERSION listed the extension; version NULL matches
 * any version. 0 before on_ready. */
SHOAL_EXTERN int shoal_sftp_has_extension(const shoal_sftp *sf, const char *name, const char *version);
/* Negotiated protocol version (3), 0 before on_ready. */
SHOAL_EXTERN uint32_t shoal_sftp_version(const shoal_sftp *sf);
SHOAL_EXTERN void *shoal_sftp_userdata(const shoal_sftp *sf);

/* ---- small operations ---- */

/* File attributes (flags say which fields are valid). */
enum {
    SHOAL_SFTP_ATTR_SIZE = 0x1,
    SHOAL_SFTP_ATTR_UIDGID = 0x2,
    SHOAL_SFTP_ATTR_PERMISSIONS = 0x4,
    SHOAL_SFTP_ATTR_ACMODTIME = 0x8,
};

typedef struct shoal_sftp_attrs {
    uint32_t flags;
    uint64_t size;
    uint32_t uid, gid;
    uint32_t permissions; /* st_mode: type bits and mode bits */
    uint32_t atime, mtime;
} shoal_sftp_attrs;

/* Completion of an operation: err 0 or an error with a message naming the
 * path. sf stays valid during the callback. */
typedef void (*shoal_sftp_status_cb)(shoal_sftp *sf, int err, const char *message, void *ud);
/* attrs is NULL on error. */
typedef void (*shoal_sftp_stat_cb)(shoal_sftp *sf, int err, const char *message, const shoal_sftp_attrs *attrs,
                                   void *ud);
/* path is NULL on error. */
typedef void (*shoal_sftp_path_cb)(shoal_sftp *sf, int err, const char *message, const char *path, void *ud);

/* These return 0 when the request was queued (the callback then follows
 * exactly once, possibly with SHOAL_ERR_CLOSED if the session ends), or an
 * error without calling it: SHOAL_ERR_BAD_STATE before on_ready or after
 * close, SHOAL_ERR_TOO_LARGE when too many requests are outstanding,
 * SHOAL_ERR_INVALID_ARG for an empty or over-long path. */
SHOAL_EXTERN int shoal_sftp_stat(shoal_sftp *sf, const char *path, shoal_sftp_stat_cb cb, void *ud);
SHOAL_EXTERN int shoal_sftp_lstat(shoal_sftp *sf, const char *path, shoal_sftp_stat_cb cb, void *ud);
SHOAL_EXTERN int shoal_sftp_remove(shoal_sftp *sf, const char *path, shoal_sftp_status_cb cb, void *ud);
SHOAL_EXTERN int shoal_sftp_rmdir(shoal_sftp *sf, const char *path, shoal_sftp_status_cb cb, void *ud);
/* mode: permission bits of the new directory. */
SHOAL_EXTERN int shoal_sftp_mkdir(shoal_sftp *sf, const char *path, uint32_t mode, shoal_sftp_status_cb cb,
                                  void *ud);
/* Plain SSH_FXP_RENAME (OpenSSH's server refuses to replace an existing
 * newpath), or with SHOAL_SFTP_RENAME_POSIX posix-rename@openssh.com
 * (atomic replace; SHOAL_ERR_UNSUPPORTED when the server lacks it). */
enum { SHOAL_SFTP_RENAME_POSIX = 1 };
SHOAL_EXTERN int shoal_sftp_rename(shoal_sftp *sf, const char *oldpath, const char *newpath, unsigned flags,
                                   shoal_sftp_status_cb cb, void *ud);
SHOAL_EXTERN int shoal_sftp_realpath(shoal_sftp *sf, const char *path, shoal_sftp_path_cb cb, void *ud);

/* ---- directories ---- */

/* One directory entry: name (NUL-free, never containing '/' for a
 * well-behaved server, but check), the server's ls-style line, attributes.
 * Borrowed for the callback only. */
typedef struct shoal_sftp_dirent {
    const char *name;
    const char *longname;
    shoal_sftp_attrs attrs;
} shoal_sftp_dirent;
/* Entries as they arrive (n >= 1); return 0 to go on, non-zero to stop
 * (the directory is closed and done reports SHOAL_ERR_CANCELLED). */
typedef int (*shoal_sftp_dir_entries_cb)(shoal_sftp *sf, const shoal_sftp_dirent *ents, size_t n, void *ud);
/* Lists path (OPENDIR, READDIR until EOF, CLOSE): entries goes first,
 * any number of times, then done exactly once (0 at the end of the
 * directory, or the error with a message naming the path). Returns as
 * shoal_sftp_stat(). */
SHOAL_EXTERN int shoal_sftp_listdir(shoal_sftp *sf, const char *path, shoal_sftp_dir_entries_cb entries,
                                    shoal_sftp_status_cb done, void *ud);

/* ---- uploads ---- */

typedef struct shoal_sftp_put shoal_sftp_put;

typedef struct shoal_sftp_put_callbacks {
    size_t size; /* sizeof(shoal_sftp_put_callbacks): set by shoal_sftp_put_callbacks_init() (docs/API.md) */
    /* More bytes can be given (shoal_sftp_put_writable() > 0). Called after
     * the temporary file is open and whenever a WRITE is acknowledged or the
     * channel has room again; may be called when there is nothing to do. */
    void (*on_writable)(shoal_sftp_put *p, void *ud);
    /* Called once: err 0 once the file is in place under its target name,
     * otherwise the error and a message naming the path and quoting the
     * server. p is freed after this returns. */
    void (*on_done)(shoal_sftp_put *p, int err, const char *message, void *ud);
    /* Optional. Every byte is written and the temporary file closed (mode
     * set) under temp_path; nothing is renamed until the caller decides:
     * shoal_sftp_put_commit() moves it into place, shoal_sftp_put_fail()
     * removes it and reports the given error. For checks on the complete
     * file (a checksum computed on the server) before it is exposed. */
    void (*on_closed_temp)(shoal_sftp_put *p, const char *temp_path, void *ud);
} shoal_sftp_put_callbacks;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_sftp_put_callbacks_init(shoal_sftp_put_callbacks *x);

typedef struct shoal_sftp_put_options {
    size_t size;          /* sizeof(shoal_sftp_put_options): set by shoal_sftp_put_options_init() (docs/API.md) */
    int fsync;            /* fsync@openssh.com before closing, when offered */
    /* Write target itself (OPEN CREAT|TRUNC|WRITE, no temporary file, no
     * rename): the server follows a symbolic link and keeps the file's
     * inode (hard links), owner and mode. Not atomic: a failure leaves the
     * target partly written (the message says so). */
    int in_place;
    /* Leave the mode alone (no FSETSTAT of the permissions): with in_place,
     * to keep an existing file's mode. */
    int keep_mode;
    size_t max_writes;    /* outstanding WRITE requests; 0 = 64 (max 128) */
    size_t write_size;    /* bytes per WRITE; 0 = 32768 (max 65536) */
} shoal_sftp_put_options;
/* Zero-fills *x (every member at its default) and sets x->size. */
SHOAL_EXTERN void shoal_sftp_put_options_init(shoal_sftp_put_options *x);

/* Starts an upload to target: creates ".<name>.shoal-<16 hex>" in target's
 * directory with OPEN CREAT|TRUNC|WRITE|EXCL and mode. Data is written to
 * that temporary file; shoal_sftp_put_finish() moves it onto target. A
 * failed or cancelled upload never leaves a partial file under the target
 * name, and removes its temporary file while the channel allows. */
SHOAL_EXTERN int shoal_sftp_put_begin(shoal_sftp *sf, const char *target, uint32_t mode,
                                      const shoal_sftp_put_callbacks *cb, void *ud, shoal_sftp_put **out);
/* Same with options (opt may be NULL). */
SHOAL_EXTERN int shoal_sftp_put_begin_ex(shoal_sftp *sf, const char *target, uint32_t mode,
                                         const shoal_sftp_put_options *opt, const shoal_sftp_put_callbacks *cb,
                                         void *ud, shoal_sftp_put **out);
/* Bytes shoal_sftp_put_write() takes now: bounded by the free WRITE slots
 * (max_writes x write_size) and the channel's room (window and output
 * high-water mark). 0 before the temporary file is open, after finish or
 * when the upload failed. */
SHOAL_EXTERN size_t shoal_sftp_put_writable(const shoal_sftp_put *p);
/* Copies up to len bytes into WRITE requests; *taken says how many (the
 * caller keeps the rest and offers it again from on_writable).
 * SHOAL_ERR_BAD_STATE after finish or once the upload has failed (on_done
 * is then on its way). */
SHOAL_EXTERN int shoal_sftp_put_write(shoal_sftp_put *p, const void *data, size_t len, size_t *taken);
/* After the last byte: waits for every WRITE status, sends
 * fsync@openssh.com (when asked for and offered), FSETSTAT with the mode (so
 * the umask does not change it) and CLOSE, then posix-rename@openssh.com
 * onto target, or, when the server lacks it, REMOVE target then RENAME
 * (not atomic: logged). Then on_done(0). Any failure: CLOSE and REMOVE of
 * the temporary file, then on_done(err, message). */
SHOAL_EXTERN int shoal_sftp_put_finish(shoal_sftp_put *p);
/* Cancels: the temporary file is closed and removed (when the channel still
 * allows), then on_done(SHOAL_ERR_CANCELLED), possibly before this returns.
 * When the final rename is already on its way, its outcome decides. Not
 * to be called after on_done (p is freed then). */
SHOAL_EXTERN void shoal_sftp_put_abort(shoal_sftp_put *p);
/* After on_closed_temp: move the file into place (then on_done), or give
 * up with an error (the temporary file is removed, then on_done(err)).
 * Outside on_closed_temp's wait, commit returns SHOAL_ERR_BAD_STATE. */
SHOAL_EXTERN int shoal_sftp_put_commit(shoal_sftp_put *p);
SHOAL_EXTERN void shoal_sftp_put_fail(shoal_sftp_put *p, int err, const char *message);
/* Bytes taken so far, and the target path. */
SHOAL_EXTERN uint64_t shoal_sftp_put_offset(const shoal_sftp_put *p);
SHOAL_EXTERN const char *shoal_sftp_put_target(const shoal_sftp_put *p);
SHOAL_EXTERN const char *shoal_sftp_put_temp_path(const shoal_sftp_put *p);
SHOAL_EXTERN void *shoal_sftp_put_userdata(const shoal_sftp_put *p);

#ifdef __cplusplus
}
#endif
#endif
