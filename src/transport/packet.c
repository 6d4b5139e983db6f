/* Binary packet protocol (RFC 4253 section 6) and message dispatch.
 *
 * Sending: packets are built in place at the end of the output buffer (header space is
 * reserved first, the payload appended, then padding and tag added and the
 * whole sealed), so bulk data is copied once into the output buffer.
 *
 * Receiving: bytes accumulate in the input buffer; a packet's length is learned from
 * its first block, checked against SHOAL_MAX_PACKET and the cipher's
 * alignment before anything else, and the packet is authenticated and
 * decrypted in place once complete. The payload is handed to the layer that
 * owns its message number only if the per-state table allows it. */
#include <string.h>

#include "transport/transport_impl.h"

/* Messages that must wait while our key exchange is in progress
 * (RFC 4253 7.1: only 1-19 except 5/6, 20-29 except KEXINIT, 30-49). */
static int held_during_kex(uint8_t type)
{
    return type >= 50 || type == SSH_MSG_SERVICE_REQUEST || type == SSH_MSG_SERVICE_ACCEPT ||
           type == SSH_MSG_EXT_INFO;
}

int shoal__pkt_begin(shoal_session *s, uint8_t type, size_t *mark)
{
    shoal_transport *tp = shoal__tp(s);
    uint8_t *h;
    *mark = shoal_buf_len(&tp->out);
    int rc = shoal_buf_reserve(&tp->out, 5, &h);
    if (rc)
        return rc;
    return shoal_buf_put_u8(&tp->out, type);
}

static int seal_at(shoal_session *s, size_t mark)
{
    shoal_transport *tp = shoal__tp(s);
    size_t payload_len = shoal_buf_len(&tp->out) - mark - 5;
    size_t block = tp->tx ? shoal_pktcrypt_block_len(tp->tx) : 8;
    int clear = tp->tx ? shoal_pktcrypt_length_in_clear(tp->tx) : 0;
    size_t tag = tp->tx ? shoal_pktcrypt_tag_len(tp->tx) : 0;
    size_t unpadded = (clear ? 1 : 5) + payload_len;
    size_t pad = block - (unpadded % block);
    if (pad < 4)
        pad += block;
    size_t pkt_len = 1 + payload_len + pad;
    if (pkt_len + 4 > SHOAL_MAX_PACKET) {
        shoal_buf_truncate(&tp->out, mark);
        return SHOAL_ERR_TOO_LARGE;
    }
    uint8_t *tail;
    int rc = shoal_buf_reserve(&tp->out, pad + tag, &tail);
    if (rc) {
        shoal_buf_truncate(&tp->out, mark);
        return rc;
    }
    rc = shoal_random_public(tail, pad);
    if (rc)
        return rc;
    uint8_t *base = shoal_buf_mutptr(&tp->out) + mark;
    shoal_store_u32(base, (uint32_t)pkt_len);
    base[4] = (uint8_t)pad;
    if (tp->tx) {
        rc = shoal_pktcrypt_seal(tp->tx, tp->tx_seq, base, 4 + pkt_len, base + 4 + pkt_len);
        if (rc) {
            shoal_buf_truncate(&tp->out, mark);
            return rc;
        }
    }
    tp->tx_seq++;
    tp->tx_bytes += 4 + pkt_len + tag;
    if (tp->tx_seq == 0 && !tp->first_kex_done && tp->strict)
        return SHOAL_ERR_STRICT_KEX;
    return SHOAL_OK;
}

static int maybe_rekey(shoal_session *s)
{
    shoal_transport *tp = shoal__tp(s);
    if (tp->first_kex_done && !tp->kexinit_sent && !tp->closed &&
        (tp->tx_bytes >= tp->rekey_bytes || tp->rx_bytes >= tp->rekey_bytes)) {
        shoal__log(s, 1, "rekeying after %llu bytes sent, %llu received", (unsigned long long)tp->tx_bytes,
                   (unsigned long long)tp->rx_bytes);
        return shoal__kex_start(s);
    }
    return SHOAL_OK;
}

int shoal__pkt_end(shoal_session *s, size_t mark)
{
    shoal_transport *tp = shoal__tp(s);
    uint8_t *base = shoal_buf_mutptr(&tp->out) + mark;
    uint8_t type = base[5];
    if (tp->kexinit_sent && !tp->newkeys_sent && held_during_kex(type)) {
        size_t plen = shoal_buf_len(&tp->out) - mark - 5;
        int rc = shoal_buf_put_u32(&tp->kex_queue, (uint32_t)plen);
        if (!rc)
            rc = shoal_buf_put(&tp->kex_queue, shoal_buf_ptr(&tp->out) + mark + 5, plen);
        if (!rc)
            tp->kex_queue_n++;
        shoal_buf_truncate(&tp->out, mark);
        return rc;
    }
    int rc = seal_at(s, mark);
    if (rc)
        return shoal__fail(s, rc, 0, "cannot build packet: %s", shoal_strerror(rc));
    return maybe_rekey(s);
}

int shoal__send_payload(shoal_session *s, const uint8_t *payload, size_t len)
{
    shoal_transport *tp = shoal__tp(s);
    size_t mark;
    if (len == 0)
        return SHOAL_ERR_INVALID_ARG;
    int rc = shoal__pkt_begin(s, payload[0], &mark);
    if (!rc)
        rc = shoal_buf_put(&tp->out, payload + 1, len - 1);
    if (rc) {
        shoal_buf_truncate(&tp->out, mark);
        return rc;
    }
    return shoal__pkt_end(s, mark);
}

int shoal__kex_flush_queue(shoal_session *s)
{
    shoal_transport *tp = shoal__tp(s);
    shoal_buf q = tp->kex_queue;
    shoal_buf_init(&tp->kex_queue, SHOAL_KEX_QUEUE_MAX);
    tp->kex_queue_n = 0;
    shoal_rd r;
    int rc = SHOAL_OK;
    shoal_rd_init(&r, shoal_buf_ptr(&q), shoal_buf_len(&q));
    while (!rc && shoal_rd_left(&r)) {
        uint32_t n;
        const uint8_t *p;
        rc = shoal_rd_u32(&r, &n);
        if (!rc)
            rc = shoal_rd_bytes(&r, n, &p);
        if (!rc)
            rc = shoal__send_payload(s, p, n);
    }
    shoal_buf_free(&q);
    return rc;
}

int shoal__send_disconnect(shoal_session *s, uint32_t reason, const char *msg)
{
    shoal_transport *tp = shoal__tp(s);
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_DISCONNECT, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&tp->out, reason);
    if (!rc)
        rc = shoal_buf_put_cstring(&tp->out, msg);
    if (!rc)
        rc = shoal_buf_put_cstring(&tp->out, "");
    if (!rc)
        rc = seal_at(s, mark);
    return rc;
}

/* ---- receive side ---- */

/* Which messages may arrive now. Returns 1 when allowed; anything else ends
 * the session. The peer's role decides which direction a message may take
 * (a server never receives USERAUTH_SUCCESS, a client never SERVICE_REQUEST). */
static int message_allowed(shoal_session *s, uint8_t t)
{
    shoal_transport *tp = shoal__tp(s);
    if (t == SSH_MSG_DISCONNECT)
        return 1;
    int generic = (t == SSH_MSG_IGNORE || t == SSH_MSG_DEBUG || t == SSH_MSG_UNIMPLEMENTED);
    uint8_t kex_method = tp->is_server ? SSH_MSG_KEX_ECDH_INIT : SSH_MSG_KEX_ECDH_REPLY;
    if (!tp->first_kex_done) {
        /* Initial key exchange. Under strict kex nothing but the exchange
         * itself may appear (Terrapin countermeasure). Without it, generic
         * messages are tolerated. */
        if (generic)
            return !tp->strict;
        if (!tp->kexinit_received)
            return t == SSH_MSG_KEXINIT;
        return t == SSH_MSG_NEWKEYS || t == kex_method;
    }
    if (tp->kexinit_received) /* re-exchange running: the peer sends only kex messages */
        return generic || t == SSH_MSG_NEWKEYS || t == kex_method;
    if (generic || t == SSH_MSG_KEXINIT)
        return 1;
    if (tp->is_server) {
        if (tp->phase == SHOAL_PHASE_AUTH)
            return t == SSH_MSG_SERVICE_REQUEST || t == SSH_MSG_USERAUTH_REQUEST || t == SSH_MSG_EXT_INFO ||
                   t == SSH_MSG_USERAUTH_INFO_RESPONSE;
        if (tp->phase == SHOAL_PHASE_OPEN)
            return t == SSH_MSG_USERAUTH_REQUEST || t == SSH_MSG_GLOBAL_REQUEST || t == SSH_MSG_REQUEST_SUCCESS ||
                   t == SSH_MSG_REQUEST_FAILURE || (t >= SSH_MSG_CHANNEL_OPEN && t <= SSH_MSG_CHANNEL_FAILURE);
        return 0;
    }
    if (tp->phase == SHOAL_PHASE_AUTH)
        return t == SSH_MSG_SERVICE_ACCEPT || t == SSH_MSG_EXT_INFO || t == SSH_MSG_USERAUTH_FAILURE ||
               t == SSH_MSG_USERAUTH_SUCCESS || t == SSH_MSG_USERAUTH_BANNER || t == SSH_MSG_USERAUTH_PK_OK;
    if (tp->phase == SHOAL_PHASE_OPEN)
        return t == SSH_MSG_GLOBAL_REQUEST || t == SSH_MSG_REQUEST_SUCCESS || t == SSH_MSG_REQUEST_FAILURE ||
               (t >= SSH_MSG_CHANNEL_OPEN && t <= SSH_MSG_CHANNEL_FAILURE);
    return 0;
}

/* Numbers no SSH message uses: answered with UNIMPLEMENTED once authenticated. */
static int message_unassigned(uint8_t t)
{
    return (t >= 8 && t <= 19) || (t >= 22 && t <= 29) || (t >= 62 && t <= 79) || (t >= 83 && t <= 89) ||
           t >= 101;
}

static int handle_generic(shoal_session *s, uint8_t t, const uint8_t *p, size_t n)
{
    shoal_transport *tp = shoal__tp(s);
    shoal_rd r;
    shoal_rd_init(&r, p + 1, n - 1);
    if (t == SSH_MSG_DISCONNECT) {
        uint32_t reason = 0;
        const char *msg = NULL;
        size_t ml = 0;
        if (shoal_rd_u32(&r, &reason) || shoal_rd_cstring(&r, &msg, &ml))
            msg = NULL;
        char clean[256];
        size_t k = 0;
        for (size_t i = 0; msg && i < ml && k + 1 < sizeof(clean); i++)
            clean[k++] = (msg[i] >= 0x20 && msg[i] < 0x7f) ? msg[i] : '?';
        clean[k] = 0;
        return shoal__fail(s, SHOAL_ERR_DISCONNECTED, 0, "%s disconnected (reason %u): %s", tp->is_server ? "client" : "server", reason,
                           k ? clean : "no message");
    }
    if (t == SSH_MSG_DEBUG) {
        int display;
        const char *msg;
        size_t ml;
        if (!shoal_rd_bool(&r, &display) && !shoal_rd_cstring(&r, &msg, &ml))
            shoal__log(s, 2, "peer debug message: %.*s", (int)(ml > 200 ? 200 : ml), msg);
    } else if (t == SSH_MSG_UNIMPLEMENTED) {
        uint32_t seq = 0;
        shoal_rd_u32(&r, &seq);
        shoal__log(s, 1, "peer did not implement our packet %u", seq);
    }
    return SHOAL_OK;
}

static int send_unimplemented(shoal_session *s, uint32_t seq)
{
    shoal_transport *tp = shoal__tp(s);
    size_t mark;
    int rc = shoal__pkt_begin(s, SSH_MSG_UNIMPLEMENTED, &mark);
    if (!rc)
        rc = shoal_buf_put_u32(&tp->out, seq);
    if (!rc)
        rc = shoal__pkt_end(s, mark);
    return rc;
}

static int dispatch(shoal_session *s, const uint8_t *p, size_t n, uint32_t seq)
{
    shoal_transport *tp = shoal__tp(s);
    uint8_t t = p[0];
    int ext_ok = tp->ext_info_next;
    tp->ext_info_next = 0;
    /* RFC 8308 2.4: the second EXT_INFO comes immediately before
     * USERAUTH_SUCCESS; one anywhere else is injected (CVE-2023-46445). */
    if (tp->ext_info_awaits_success && t != SSH_MSG_USERAUTH_SUCCESS && t != SSH_MSG_DISCONNECT)
        return shoal__fail(s, SHOAL_ERR_UNEXPECTED_MESSAGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "EXT_INFO out of place: message %u follows it, not USERAUTH_SUCCESS", t);
    tp->ext_info_awaits_success = 0;
    if (tp->ignore_next_kex_packet && shoal__kex_is_msg(t) && t != SSH_MSG_KEXINIT && t != SSH_MSG_NEWKEYS) {
        tp->ignore_next_kex_packet = 0;
        return SHOAL_OK;
    }
    if (!message_allowed(s, t)) {
        if (tp->phase == SHOAL_PHASE_OPEN && message_unassigned(t))
            return send_unimplemented(s, seq);
        if (!tp->first_kex_done && tp->strict)
            return shoal__fail(s, SHOAL_ERR_STRICT_KEX, SSH_DISCONNECT_PROTOCOL_ERROR,
                               "message %u during the initial key exchange under strict kex", t);
        return shoal__fail(s, SHOAL_ERR_UNEXPECTED_MESSAGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                           "%s sent message %u, not allowed in this state", tp->is_server ? "client" : "server", t);
    }
    if (t <= SSH_MSG_DEBUG)
        return handle_generic(s, t, p, n);
    if (t == SSH_MSG_EXT_INFO && !ext_ok) {
        if (!(tp->phase == SHOAL_PHASE_AUTH && tp->ext_info_in_auth_ok))
            return shoal__fail(s, SHOAL_ERR_UNEXPECTED_MESSAGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                               "EXT_INFO out of place");
        tp->ext_info_in_auth_ok = 0; /* once */
        tp->ext_info_awaits_success = 1;
    }
    if (shoal__kex_is_msg(t))
        return shoal__kex_dispatch(s, t, p, n);
    /* The service that owns the range (message_allowed let through only
     * 5-7 and 50-127 here), as the session installed it. */
    return tp->hooks->service[shoal__service_of(t)](s, t, p, n);
}

static int process_packets(shoal_session *s);

/* Server: while an authentication decision is deferred, the packets after
 * the request wait in the input buffer, so that the connection messages a
 * client may send right behind the request that succeeds (RFC 4252 5.1)
 * are read once the user is known. */
int shoal__process_packets(shoal_session *s)
{
    shoal_transport *tp = shoal__tp(s);
    if (tp->processing)
        return SHOAL_OK; /* a callback inside the loop: the loop goes on */
    tp->processing = 1;
    int rc = process_packets(s);
    tp->processing = 0;
    return rc;
}

/* A held payload becomes a packet of up to this much more once sealed
 * (length, padding up to a block and more, tag). */
#define SEALED_OVERHEAD 64u

int shoal__input_room(const shoal_session *s)
{
    const shoal_transport *tp = shoal__tp_c(s);
    size_t pending = shoal_buf_len(&tp->out) + shoal_buf_len(&tp->kex_queue) + tp->kex_queue_n * SEALED_OVERHEAD;
    return pending < (tp->phase == SHOAL_PHASE_OPEN ? SHOAL_IN_PAUSE : SHOAL_IN_PAUSE_PREAUTH);
}

static int process_packets(shoal_session *s)
{
    shoal_transport *tp = shoal__tp(s);
    while (!tp->closed && !tp->hostkey_pending && !tp->hold_input && shoal__input_room(s)) {
        size_t avail = shoal_buf_len(&tp->in);
        uint8_t *p = shoal_buf_mutptr(&tp->in);
        size_t tag = tp->rx ? shoal_pktcrypt_tag_len(tp->rx) : 0;
        if (!tp->rx_have_len) {
            size_t first = tp->rx ? shoal_pktcrypt_first_len(tp->rx) : 8;
            if (avail < first)
                break;
            uint32_t len;
            if (tp->rx) {
                int rc = shoal_pktcrypt_peek_length(tp->rx, tp->rx_seq, p, &len);
                if (rc)
                    return shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "cannot decrypt packet length");
            } else {
                len = shoal_load_u32(p);
            }
            size_t block = tp->rx ? shoal_pktcrypt_block_len(tp->rx) : 8;
            int clear = tp->rx ? shoal_pktcrypt_length_in_clear(tp->rx) : 0;
            /* Checked before reading (or allocating for) the rest. */
            if (len < 5 || len > SHOAL_MAX_PACKET - 4)
                return shoal__fail(s, SHOAL_ERR_TOO_LARGE, SSH_DISCONNECT_PROTOCOL_ERROR,
                                   "bad packet length %u (allowed 5..%u)", len, SHOAL_MAX_PACKET - 4);
            if ((clear ? len : len + 4) % block != 0)
                return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR,
                                   "packet length %u not a multiple of the cipher block size %zu", len, block);
            tp->rx_have_len = 1;
            tp->rx_pkt_len = len;
        }
        size_t total = 4 + (size_t)tp->rx_pkt_len + tag;
        if (avail < total)
            break;
        if (tp->rx) {
            int rc = shoal_pktcrypt_open(tp->rx, tp->rx_seq, p, 4 + tp->rx_pkt_len, p + 4 + tp->rx_pkt_len);
            if (rc)
                return shoal__fail(s, rc, rc == SHOAL_ERR_MAC ? SSH_DISCONNECT_MAC_ERROR : SSH_DISCONNECT_PROTOCOL_ERROR,
                                   "packet %u: %s", tp->rx_seq, shoal_strerror(rc));
        }
        uint8_t padlen = p[4];
        if (padlen < 4 || (size_t)padlen + 1 >= tp->rx_pkt_len)
            return shoal__fail(s, SHOAL_ERR_PROTOCOL, SSH_DISCONNECT_PROTOCOL_ERROR, "bad padding length %u",
                               padlen);
        size_t plen = tp->rx_pkt_len - padlen - 1;
        uint32_t seq = tp->rx_seq;
        tp->rx_seq++;
        tp->rx_have_len = 0;
        tp->rx_bytes += total;
        tp->rx_packets_total++;
        if (tp->rx_seq == 0 && !tp->first_kex_done && tp->strict)
            return shoal__fail(s, SHOAL_ERR_STRICT_KEX, SSH_DISCONNECT_PROTOCOL_ERROR,
                               "sequence number wrapped during the initial key exchange");
        int rc = dispatch(s, p + 5, plen, seq);
        shoal_buf_consume(&tp->in, total);
        if (rc)
            return tp->closed ? rc : shoal__fail(s, rc, SSH_DISCONNECT_PROTOCOL_ERROR, "%s", shoal_strerror(rc));
        rc = maybe_rekey(s);
        if (rc)
            return rc;
    }
    return SHOAL_OK;
}
