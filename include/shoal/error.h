/* shoal: error codes shared by every layer.
 *
 * Every fallible call returns 0 (SHOAL_OK) or one of these negative codes.
 * "Need more bytes" is never an error: the sans-I/O core simply consumes what
 * it can and waits for more. */
#ifndef SHOAL_ERROR_H
#define SHOAL_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHOAL_EXTERN __attribute__((visibility("default")))
#else
#define SHOAL_EXTERN
#endif

/* X-macro: name, value, message. Keep values stable: they are ABI. -23 is
 * left out (it was SHOAL_ERR_PAUSE, declared and never returned): do not
 * reuse it. */
#define SHOAL_ERRNO_MAP(X)                                                          \
    X(NOMEM, -1, "out of memory")                                                   \
    X(INVALID_ARG, -2, "invalid argument")                                          \
    X(TRUNCATED, -3, "message truncated")                                           \
    X(TRAILING, -4, "unexpected trailing bytes in message")                         \
    X(TOO_LARGE, -5, "value exceeds a configured limit")                            \
    X(BAD_FORMAT, -6, "malformed data")                                             \
    X(PROTOCOL, -7, "protocol error")                                               \
    X(MAC, -8, "message authentication failed (corrupted or tampered data)")        \
    X(CRYPTO, -9, "cryptographic library failure")                                  \
    X(NO_ALGORITHM, -10, "no algorithm in common with the peer")                    \
    X(HOSTKEY_UNKNOWN, -11, "host key is not known")                                \
    X(HOSTKEY_MISMATCH, -12, "host key does not match the known key")               \
    X(HOSTKEY_REVOKED, -13, "host key is revoked")                                  \
    X(SIGNATURE, -14, "signature verification failed")                              \
    X(AUTH_FAILED, -15, "authentication failed: no more methods to try")            \
    X(KEY_ENCRYPTED, -16, "key is encrypted and needs a passphrase")                \
    X(BAD_PASSPHRASE, -17, "wrong passphrase")                                      \
    X(UNSUPPORTED, -18, "unsupported algorithm or key type")                        \
    X(DISCONNECTED, -19, "peer sent a disconnect message")                          \
    X(EOF, -20, "connection closed by peer")                                        \
    X(TIMEOUT, -21, "operation timed out")                                          \
    X(DEFERRED, -22, "answer deferred by the application")                          \
    X(CLOSED, -24, "session or channel is closed")                                  \
    X(CHANNEL_OPEN, -25, "peer refused to open the channel")                        \
    X(IO, -26, "local input/output error")                                          \
    X(DNS, -27, "host name could not be resolved")                                  \
    X(CONNECT, -28, "connection could not be established")                          \
    X(STRICT_KEX, -29, "strict key exchange violated (possible Terrapin attack)")    \
    X(UNEXPECTED_MESSAGE, -30, "message not allowed in the current state")          \
    X(NOT_FOUND, -31, "not found")                                                  \
    X(AGENT, -32, "ssh-agent failure")                                              \
    X(CONFIG, -33, "invalid configuration")                                         \
    X(BAD_STATE, -34, "call not valid in the current state")                        \
    X(BANNER, -35, "invalid or missing SSH version banner")                         \
    X(CALLBACK, -36, "application callback failed")                                 \
    X(REQUEST_DENIED, -37, "peer denied the request")                               \
    X(CANCELLED, -38, "operation cancelled")                                        \
    X(PERMISSION, -39, "permission denied")                                         \
    X(SFTP, -40, "SFTP server reported a failure")

typedef enum shoal_err {
    SHOAL_OK = 0,
#define SHOAL__ERR_ENUM(name, val, msg) SHOAL_ERR_##name = (val),
    SHOAL_ERRNO_MAP(SHOAL__ERR_ENUM)
#undef SHOAL__ERR_ENUM
} shoal_err;

/* Human-readable text for an error code; never NULL. */
SHOAL_EXTERN const char *shoal_strerror(int err);
/* Short symbolic name ("SHOAL_ERR_MAC"); never NULL. */
SHOAL_EXTERN const char *shoal_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
