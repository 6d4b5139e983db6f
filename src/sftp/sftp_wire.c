/* SFTP v3 wire format: packet framing, ATTRS, VERSION and replies.
 * Pure functions over borrowed bytes; every field goes through shoal_rd. */
#include <string.h>

#include "sftp/sftp_impl.h"

int shoal__sftp_pkt_begin(shoal_buf *b, uint8_t type, size_t *mark)
{
    int rc = shoal_buf_begin_string(b, mark);
    if (!rc)
        rc = shoal_buf_put_u8(b, type);
    if (rc)
        shoal_buf_truncate(b, *mark);
    return rc;
}

int shoal__sftp_pkt_end(shoal_buf *b, size_t mark)
{
    size_t body = b->len - mark - 4;
    if (body > SFTP_MAX_PACKET) {
        shoal_buf_truncate(b, mark);
        return SHOAL_ERR_TOO_LARGE;
    }
    shoal_buf_end_string(b, mark);
    return SHOAL_OK;
}

int shoal__sftp_attrs_put(shoal_buf *b, const shoal_sftp_attrs *a)
{
    uint32_t f = a->flags & (SHOAL_SFTP_ATTR_SIZE | SHOAL_SFTP_ATTR_UIDGID | SHOAL_SFTP_ATTR_PERMISSIONS |
                             SHOAL_SFTP_ATTR_ACMODTIME);
    int rc = shoal_buf_put_u32(b, f);
    if (!rc && (f & SHOAL_SFTP_ATTR_SIZE))
        rc = shoal_buf_put_u64(b, a->size);
    if (!rc && (f & SHOAL_SFTP_ATTR_UIDGID)) {
        rc = shoal_buf_put_u32(b, a->uid);
        if (!rc)
            rc = shoal_buf_put_u32(b, a->gid);
    }
    if (!rc && (f & SHOAL_SFTP_ATTR_PERMISSIONS))
        rc = shoal_buf_put_u32(b, a->permissions);
    if (!rc && (f & SHOAL_SFTP_ATTR_ACMODTIME)) {
        rc = shoal_buf_put_u32(b, a->atime);
        if (!rc)
            rc = shoal_buf_put_u32(b, a->mtime);
    }
    return rc;
}

int shoal__sftp_attrs_parse(shoal_rd *r, shoal_sftp_attrs *a)
{
    memset(a, 0, sizeof(*a));
    uint32_t f;
    int rc = shoal_rd_u32(r, &f);
    if (rc)
        return rc;
    if (f & ~SFTP_ATTR_KNOWN)
        return SHOAL_ERR_BAD_FORMAT; /* v3 defines no other bits */
    if ((f & SHOAL_SFTP_ATTR_SIZE) && (rc = shoal_rd_u64(r, &a->size)) != 0)
        return rc;
    if ((f & SHOAL_SFTP_ATTR_UIDGID) && ((rc = shoal_rd_u32(r, &a->uid)) || (rc = shoal_rd_u32(r, &a->gid))))
        return rc;
    if ((f & SHOAL_SFTP_ATTR_PERMISSIONS) && (rc = shoal_rd_u32(r, &a->permissions)) != 0)
        return rc;
    if ((f & SHOAL_SFTP_ATTR_ACMODTIME) && ((rc = shoal_rd_u32(r, &a->atime)) || (rc = shoal_rd_u32(r, &a->mtime))))
        return rc;
    if (f & SSH_FILEXFER_ATTR_EXTENDED) {
        uint32_t count;
        if ((rc = shoal_rd_u32(r, &count)) != 0)
            return rc;
        if (count > SFTP_MAX_ATTR_EXT)
            return SHOAL_ERR_TOO_LARGE;
        for (uint32_t i = 0; i < count; i++) {
            const uint8_t *p;
            size_t n;
            if ((rc = shoal_rd_string(r, &p, &n)) || (rc = shoal_rd_string(r, &p, &n)))
                return rc;
        }
    }
    a->flags = f & ~SSH_FILEXFER_ATTR_EXTENDED;
    return SHOAL_OK;
}

int shoal__sftp_frame(const uint8_t *p, size_t n, size_t *pkt_len)
{
    *pkt_len = 0;
    if (n < 4)
        return SHOAL_OK;
    uint32_t len = shoal_load_u32(p);
    if (len > SFTP_MAX_PACKET)
        return SHOAL_ERR_TOO_LARGE;
    if (len == 0)
        return SHOAL_ERR_BAD_FORMAT; /* no room for the type byte */
    *pkt_len = 4 + (size_t)len;
    return SHOAL_OK;
}

static void copy_name(char *out, size_t outsz, const char *p, size_t n)
{
    memcpy(out, p, n);
    out[n] = 0;
    (void)outsz;
}

int shoal__sftp_parse_version(const uint8_t *p, size_t n, uint32_t *version, sftp_ext *exts, unsigned max,
                              unsigned *n_exts)
{
    shoal_rd r;
    uint8_t type;
    unsigned k = 0, seen = 0;
    int rc;
    *version = 0;
    *n_exts = 0;
    shoal_rd_init(&r, p, n);
    if ((rc = shoal_rd_u8(&r, &type)) != 0)
        return rc;
    if (type != SSH_FXP_VERSION)
        return SHOAL_ERR_UNEXPECTED_MESSAGE;
    if ((rc = shoal_rd_u32(&r, version)) != 0)
        return rc;
    while (shoal_rd_left(&r) > 0) {
        const char *name;
        size_t nl;
        const uint8_t *data;
        size_t dl;
        if ((rc = shoal_rd_cstring(&r, &name, &nl)) || (rc = shoal_rd_string(&r, &data, &dl)))
            return rc;
        if (++seen > 4 * SFTP_MAX_EXTENSIONS)
            return SHOAL_ERR_TOO_LARGE;
        if (nl == 0 || nl >= SFTP_EXT_NAME_MAX || dl >= SFTP_EXT_VER_MAX || k >= max)
            continue;
        if (memchr(data, 0, dl))
            continue; /* versions are text */
        copy_name(exts[k].name, sizeof(exts[k].name), name, nl);
        copy_name(exts[k].version, sizeof(exts[k].version), (const char *)data, dl);
        k++;
    }
    *n_exts = k;
    return SHOAL_OK;
}

int shoal__sftp_parse_reply(const uint8_t *p, size_t n, sftp_reply *out)
{
    shoal_rd r;
    int rc;
    memset(out, 0, sizeof(*out));
    shoal_rd_init(&r, p, n);
    if ((rc = shoal_rd_u8(&r, &out->type)) || (rc = shoal_rd_u32(&r, &out->id)))
        return rc;
    switch (out->type) {
    case SSH_FXP_STATUS: {
        if ((rc = shoal_rd_u32(&r, &out->code)) != 0)
            return rc;
        /* Some v3 servers end the packet after the code. */
        if (shoal_rd_left(&r) == 0)
            return SHOAL_OK;
        const char *lang;
        size_t ll;
        if ((rc = shoal_rd_string(&r, (const uint8_t **)&out->msg, &out->msg_len)) ||
            (rc = shoal_rd_string(&r, (const uint8_t **)&lang, &ll)))
            return rc;
        break;
    }
    case SSH_FXP_HANDLE:
        if ((rc = shoal_rd_string(&r, &out->handle, &out->handle_len)) != 0)
            return rc;
        if (out->handle_len == 0 || out->handle_len > SFTP_MAX_HANDLE)
            return SHOAL_ERR_BAD_FORMAT;
        break;
    case SSH_FXP_DATA:
        if ((rc = shoal_rd_string(&r, &out->data, &out->data_len)) != 0)
            return rc;
        break;
    case SSH_FXP_NAME: {
        if ((rc = shoal_rd_u32(&r, &out->count)) != 0)
            return rc;
        /* Each entry takes at least 12 bytes: a count beyond that is a lie. */
        if (out->count > shoal_rd_left(&r) / 12)
            return SHOAL_ERR_BAD_FORMAT;
        out->entries = shoal_rd_cur(&r);
        out->entries_len = shoal_rd_left(&r);
        for (uint32_t i = 0; i < out->count; i++) {
            const char *name, *lname;
            size_t nl, ll;
            shoal_sftp_attrs a;
            if ((rc = shoal_rd_cstring(&r, &name, &nl)) || (rc = shoal_rd_string(&r, (const uint8_t **)&lname, &ll)) ||
                (rc = shoal__sftp_attrs_parse(&r, &a)))
                return rc;
            if (i == 0) {
                out->name = name;
                out->name_len = nl;
                out->attrs = a;
            }
        }
        break;
    }
    case SSH_FXP_ATTRS:
        if ((rc = shoal__sftp_attrs_parse(&r, &out->attrs)) != 0)
            return rc;
        break;
    case SSH_FXP_EXTENDED_REPLY:
        out->data = shoal_rd_cur(&r);
        out->data_len = shoal_rd_left(&r);
        return SHOAL_OK;
    default:
        return SHOAL_ERR_UNEXPECTED_MESSAGE;
    }
    return shoal_rd_end(&r);
}

int shoal__sftp_name_next(shoal_rd *r, sftp_name_entry *e)
{
    if (shoal_rd_left(r) == 0)
        return 0;
    if (shoal_rd_cstring(r, &e->name, &e->name_len) ||
        shoal_rd_string(r, (const uint8_t **)&e->longname, &e->longname_len) || shoal__sftp_attrs_parse(r, &e->attrs))
        return 0;
    return 1;
}

const char *shoal__sftp_status_text(uint32_t code)
{
    switch (code) {
    case SSH_FX_OK:
        return "success";
    case SSH_FX_EOF:
        return "end of file";
    case SSH_FX_NO_SUCH_FILE:
        return "no such file";
    case SSH_FX_PERMISSION_DENIED:
        return "permission denied";
    case SSH_FX_FAILURE:
        return "failure";
    case SSH_FX_BAD_MESSAGE:
        return "bad message";
    case SSH_FX_NO_CONNECTION:
        return "no connection";
    case SSH_FX_CONNECTION_LOST:
        return "connection lost";
    case SSH_FX_OP_UNSUPPORTED:
        return "operation unsupported";
    }
    return "unknown status";
}

int shoal__sftp_status_err(uint32_t code)
{
    switch (code) {
    case SSH_FX_OK:
        return SHOAL_OK;
    case SSH_FX_NO_SUCH_FILE:
        return SHOAL_ERR_NOT_FOUND;
    case SSH_FX_PERMISSION_DENIED:
        return SHOAL_ERR_PERMISSION;
    case SSH_FX_OP_UNSUPPORTED:
        return SHOAL_ERR_UNSUPPORTED;
    }
    return SHOAL_ERR_SFTP;
}

void shoal__sftp_clean(char *out, size_t outsz, const char *in, size_t n)
{
    size_t k = 0;
    if (outsz == 0)
        return;
    for (size_t i = 0; i < n && k + 1 < outsz; i++) {
        unsigned char c = (unsigned char)in[i];
        out[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[k] = 0;
}
