/* Fuzz target: the replies of an `scp -t` sink (src/fleet/scp_ack.c),
 * which a hostile server controls entirely. The first input byte picks how
 * the rest is cut into pieces, as a network would; whatever the bytes, the
 * parser must take every byte, report replies in order, and keep its
 * message bounded and free of control bytes. The same bytes fed in one
 * piece must give the same replies. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* Not assert(): the normal build has NDEBUG, and its replay must check too. */
#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c))                                                                                                      \
            abort();                                                                                                   \
    } while (0)

#include "../src/fleet/scp_ack.c"

typedef struct replies {
    int kinds[64];
    size_t n;
} replies;

static void run(const uint8_t *d, size_t n, size_t piece, replies *out)
{
    scp_ack a;
    scp_ack_init(&a);
    out->n = 0;
    size_t off = 0;
    while (off < n) {
        size_t len = n - off < piece ? n - off : piece;
        const uint8_t *p = d + off;
        while (len > 0) {
            size_t used = 0;
            scp_ack_kind k = scp_ack_feed(&a, p, len, &used);
            CHECK(used <= len);
            CHECK(a.msg_len <= SCP_ACK_MSG_MAX && a.msg[a.msg_len] == 0);
            for (size_t i = 0; i < a.msg_len; i++)
                CHECK((unsigned char)a.msg[i] >= 0x20 && a.msg[i] != 0x7f);
            if (k == SCP_ACK_NONE) {
                CHECK(used == len);
            } else {
                CHECK(used > 0);
                if (out->n < 64)
                    out->kinds[out->n++] = (int)k;
            }
            p += used;
            len -= used;
            off += used;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    size_t piece = (size_t)(data[0] % 17) + 1;
    replies a, b;
    run(data + 1, size - 1, piece, &a);
    run(data + 1, size - 1, size, &b);
    CHECK(a.n == b.n && memcmp(a.kinds, b.kinds, a.n * sizeof(a.kinds[0])) == 0);
    return 0;
}
