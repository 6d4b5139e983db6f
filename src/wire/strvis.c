/* Log-safe text: see include/shoal/strvis.h for the encoding. */
#include "shoal/strvis.h"

#include <string.h>

size_t shoal_strvis(char *dst, size_t dstsz, const void *src, size_t len, unsigned flags)
{
    const unsigned char *s = src;
    size_t o = 0;
    if (!dst || dstsz == 0)
        return 0;
    for (size_t i = 0; s && i < len; i++) {
        unsigned char c = s[i];
        int text = (flags & SHOAL_VIS_TEXT) != 0;
        if (text && c == '\r' && i + 1 < len && s[i + 1] == '\n')
            continue; /* CR LF -> LF */
        int plain = (c >= 0x20 && c <= 0x7e && c != '\\') || (text && (c == '\n' || c == '\t' || c == '\\'));
        size_t need = plain ? 1 : 4;
        if (o + need >= dstsz)
            break;
        if (plain) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = (char)('0' + ((c >> 6) & 7));
            dst[o++] = (char)('0' + ((c >> 3) & 7));
            dst[o++] = (char)('0' + (c & 7));
        }
    }
    dst[o] = 0;
    return o;
}

const char *shoal_vis(char *dst, size_t dstsz, const char *s)
{
    shoal_strvis(dst, dstsz, s ? s : "", s ? strlen(s) : 0, 0);
    return dst;
}
