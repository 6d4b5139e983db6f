/* Per-source limits of the server driver (sshd's srclimit): how many
 * unauthenticated connections one source block holds (PerSourceMaxStartups,
 * PerSourceNetBlockSize) and the penalties a block accrues when its
 * connections end badly (PerSourcePenalties, PerSourcePenaltyExemptList).
 *
 * A source block is the peer address with its host bits cleared: a /32
 * (IPv4) or /128 (IPv6) by default, so each address on its own. IPv4-mapped
 * IPv6 peers count as IPv4.
 *
 * Penalties: each bad ending adds its duration to the block's refusal time,
 * which runs down in real time and is capped at max. While it is at least
 * min the penalty is active and new connections from the block are refused
 * (connections already open go on). IPv4 and IPv6 blocks are tracked in
 * separate tables of at most max_sources4 / max_sources6 entries; when one
 * is full, "permissive" forgets the penalty closest to expiry and
 * "deny-all" refuses every non-exempt source of that family until an entry
 * expires. Exempt addresses are never penalised nor refused.
 *
 * Everything is bounded and O(1) or O(log n) per event (hash index with a
 * secret seed, a min-heap on expiry). Time is passed in by the caller
 * (milliseconds); nothing here reads a clock or allocates per lookup. */
#ifndef SHOAL_UV_SRCLIMIT_H
#define SHOAL_UV_SRCLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct shoal_srclimit shoal_srclimit;

typedef struct shoal_srclimit_config {
    unsigned max_startups;          /* per block; 0 = no limit */
    unsigned bits4, bits6;          /* block sizes, 1..32 and 1..128 (0 = 32, 128) */
    int penalties;                  /* 0 = no penalties at all */
    unsigned authfail_s, noauth_s, grace_s; /* durations per kind; 0 = that kind off */
    unsigned min_s, max_s;
    unsigned max_sources4, max_sources6; /* 0 = 65536 */
    int deny_all4, deny_all6;       /* overflow modes */
    const char *exempt;             /* address list (CIDR, wildcards); NULL = none */
} shoal_srclimit_config;

typedef struct shoal_srckey {
    uint8_t fam; /* 4 or 6 */
    uint8_t bits;
    uint8_t a[16];
} shoal_srckey;

enum { SHOAL_PENALTY_AUTHFAIL = 1, SHOAL_PENALTY_NOAUTH = 2, SHOAL_PENALTY_GRACE = 3 };

int shoal__srclimit_new(const shoal_srclimit_config *cfg, uint64_t seed, shoal_srclimit **out);
void shoal__srclimit_free(shoal_srclimit *sl);

/* The block of a peer; -1 for another family (such peers are never limited). */
int shoal__srclimit_key(const shoal_srclimit *sl, const struct sockaddr *sa, shoal_srckey *k);
/* "192.0.2.0/24" */
void shoal__srclimit_key_str(const shoal_srckey *k, char *buf, size_t bufsz);

/* ---- unauthenticated connections per block ---- */

/* 1 when one more may start (always 1 without PerSourceMaxStartups). */
int shoal__srclimit_startup_ok(const shoal_srclimit *sl, const shoal_srckey *k);
/* Counts one more / one fewer (no-ops without a limit). begin returns
 * SHOAL_ERR_NOMEM when it cannot count (the caller then refuses). */
int shoal__srclimit_startup_begin(shoal_srclimit *sl, const shoal_srckey *k);
void shoal__srclimit_startup_end(shoal_srclimit *sl, const shoal_srckey *k);
unsigned shoal__srclimit_startups(const shoal_srclimit *sl, const shoal_srckey *k);

/* ---- penalties ---- */

/* 1 when a new connection from addr (its text form, for the exempt list)
 * in block k is refused at now_ms; why then names the reason ("penalty:
 * failed authentication", "penalty table full"). */
int shoal__srclimit_refused(shoal_srclimit *sl, const shoal_srckey *k, const char *addr, uint64_t now_ms,
                            const char **why);
/* Charges block k with a penalty of kind. Returns 1 when this made the
 * block's penalty active (msg then has a log line), 2 for another change
 * worth a debug line (msg too), 0 when nothing was charged. */
int shoal__srclimit_penalise(shoal_srclimit *sl, const shoal_srckey *k, const char *addr, int kind, uint64_t now_ms,
                             char *msg, size_t msgsz);
/* Blocks of a family (4 or 6) tracked now, active or not (after expiring). */
unsigned shoal__srclimit_tracked(shoal_srclimit *sl, int fam, uint64_t now_ms);
/* The reason text sshd logs for a kind. */
const char *shoal__srclimit_reason(int kind);

#endif
