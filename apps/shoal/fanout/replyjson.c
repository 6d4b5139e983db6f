/* JSON lines of the agent protocol (see replyjson.h). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "replyjson.h"

/* Length of a valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return c ? 1 : 0; /* NUL is replaced too: JSON consumers choke on it */
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

json_t *replyjson_text(const uint8_t *d, size_t n)
{
    /* Fast path: already valid. */
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(d + i, n - i);
        if (!l)
            break;
        i += l;
    }
    if (i == n)
        return json_stringn_nocheck((const char *)(d ? d : (const uint8_t *)""), n);
    size_t cap = n * 3 + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    i = 0;
    while (i < n) {
        size_t l = utf8_seq(d + i, n - i);
        if (l) {
            memcpy(out + o, d + i, l);
            o += l;
            i += l;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *s = json_stringn_nocheck(out, o);
    free(out);
    return s;
}

json_t *replyjson_base64(const uint8_t *d, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    int len = n ? EVP_EncodeBlock((unsigned char *)out, d, (int)n) : 0;
    json_t *s = json_stringn_nocheck(out, (size_t)len);
    free(out);
    return s;
}

json_t *replyjson_reply(const shoal_fleet_event *ev, const char *hostname, json_t *id, int base64)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "Type", json_string("Reply"));
    json_object_set_new(o, "Hostname", replyjson_text((const uint8_t *)hostname, strlen(hostname)));
    json_t *(*enc)(const uint8_t *, size_t) = base64 ? replyjson_base64 : replyjson_text;
    json_object_set_new(o, "Stdout", enc(ev->out, ev->out_len));
    json_object_set_new(o, "Stderr", enc(ev->errout, ev->err_len));
    json_object_set_new(o, "Success", json_boolean(ev->cls == SHOAL_FLEET_OK));
    const char *msg = ev->message ? ev->message : "";
    json_object_set_new(o, "ErrMsg", replyjson_text((const uint8_t *)msg, strlen(msg)));
    /* Extensions: absent fields keep old front-ends' view unchanged. */
    if (id)
        json_object_set(o, "Id", id);
    if (ev->exit_kind == SHOAL_EXIT_STATUS)
        json_object_set_new(o, "ExitStatus", json_integer(ev->status));
    if (ev->exit_kind == SHOAL_EXIT_SIGNAL)
        json_object_set_new(o, "ExitSignal", json_string(ev->signal));
    if (ev->cls != SHOAL_FLEET_OK) {
        json_object_set_new(o, "ErrorClass", json_string(shoal_fleet_class_name(ev->cls)));
        if (ev->phase)
            json_object_set_new(o, "Phase", json_string(ev->phase));
    }
    if (ev->via)
        json_object_set_new(o, "Via", json_string(ev->via));
    if (base64)
        json_object_set_new(o, "Base64", json_true());
    if (ev->core_dumped)
        json_object_set_new(o, "CoreDumped", json_true());
    /* Always said, so a reader can tell "all of it" from "not cut". */
    json_object_set_new(o, "Truncated", json_boolean(ev->truncated != 0));
    if (ev->truncated) {
        json_t *which = json_array();
        if (ev->truncated & SHOAL_FLEET_TRUNC_STDOUT)
            json_array_append_new(which, json_string("stdout"));
        if (ev->truncated & SHOAL_FLEET_TRUNC_STDERR)
            json_array_append_new(which, json_string("stderr"));
        json_object_set_new(o, "TruncatedStreams", which);
    }
    json_object_set_new(o, "Time", json_real(ev->seconds));
    return o;
}

/* Writes jansson's output with U+0085, U+2028 and U+2029 escaped: JSON
 * allows them raw, but a reader that splits lines with Python's
 * str.splitlines() (or JavaScript's line terminators) would cut a reply in
 * two. They only occur inside strings, where \uXXXX means the same. A
 * sequence split between two calls is held back until the next. */
typedef struct line_writer {
    FILE *f;
    unsigned char held[2];
    size_t nheld;
    int failed;
} line_writer;

static void lw_put(line_writer *w, const unsigned char *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        w->failed = 1;
}

static int lw_write(const char *buf, size_t size, void *data)
{
    line_writer *w = data;
    const unsigned char *p = (const unsigned char *)buf;
    size_t i = 0, run = 0;
    /* Complete a sequence held back from the previous call. */
    while (w->nheld && i < size) {
        unsigned char seq[3];
        memcpy(seq, w->held, w->nheld);
        size_t need = (seq[0] == 0xe2 ? 3 : 2) - w->nheld;
        size_t take = need <= size - i ? need : size - i;
        memcpy(seq + w->nheld, p + i, take);
        if (take < need) {
            memcpy(w->held, seq, w->nheld + take);
            w->nheld += take;
            return 0;
        }
        i += take;
        size_t len = w->nheld + take;
        w->nheld = 0;
        if (len == 2 && seq[0] == 0xc2 && seq[1] == 0x85)
            lw_put(w, (const unsigned char *)"\\u0085", 6);
        else if (len == 3 && seq[0] == 0xe2 && seq[1] == 0x80 && (seq[2] == 0xa8 || seq[2] == 0xa9))
            lw_put(w, (const unsigned char *)(seq[2] == 0xa8 ? "\\u2028" : "\\u2029"), 6);
        else
            lw_put(w, seq, len);
    }
    run = i;
    while (i < size) {
        unsigned char c = p[i];
        if (c != 0xc2 && c != 0xe2) {
            i++;
            continue;
        }
        size_t len = c == 0xc2 ? 2 : 3;
        if (size - i < len) { /* may continue in the next call */
            lw_put(w, p + run, i - run);
            memcpy(w->held, p + i, size - i);
            w->nheld = size - i;
            return 0;
        }
        const char *esc = NULL;
        if (c == 0xc2 && p[i + 1] == 0x85)
            esc = "\\u0085";
        else if (c == 0xe2 && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
            esc = p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
        if (!esc) {
            i++;
            continue;
        }
        lw_put(w, p + run, i - run);
        lw_put(w, (const unsigned char *)esc, 6);
        i += len;
        run = i;
    }
    lw_put(w, p + run, size - run);
    return 0;
}

int replyjson_emit(FILE *f, json_t *obj)
{
    if (!obj)
        return -1;
    line_writer w = {f, {0, 0}, 0, 0};
    int rc = json_dump_callback(obj, lw_write, &w, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (w.nheld)
        lw_put(&w, w.held, w.nheld);
    if (w.failed)
        rc = -1;
    json_decref(obj);
    if (rc == 0)
        rc = fputc('\n', f) == EOF ? -1 : 0;
    if (fflush(f) != 0)
        rc = -1;
    return rc;
}
