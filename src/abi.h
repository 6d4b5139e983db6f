/* Versioned options structs (docs/API.md, "Options structs").
 *
 * Every struct a caller fills and hands to the library starts with a
 * size_t size member holding the caller's sizeof(struct). The library reads
 * only that many bytes and zero-fills the members it has and the caller's
 * header did not, so a program built against an older header keeps working
 * with a newer library. */
#ifndef SHOAL_ABI_H
#define SHOAL_ABI_H

#include <stddef.h>

/* Copies the caller's struct at src (first member: size_t size) into dst,
 * which is dst_size bytes of the library's own version of it: at most
 * min(src size, dst_size) bytes, the rest zero, and dst's size member set to
 * dst_size. SHOAL_ERR_INVALID_ARG (dst zeroed, its size set) when src is
 * NULL or its size is smaller than the size member itself (never
 * initialised). */
int shoal__struct_copy(void *dst, size_t dst_size, const void *src);

/* The same, but NULL means "all defaults": dst is zeroed, its size set, 0. */
int shoal__struct_copy_opt(void *dst, size_t dst_size, const void *src);

/* Zero-fills the struct at p (dst_size bytes) and sets its size member: the
 * body of every public shoal_*_init(). */
void shoal__struct_init(void *p, size_t size);

/* Defines the public init function T_init(T *x) of a versioned struct T. */
#define SHOAL__INIT_FN(T)                                                                                          \
    void T##_init(T *x)                                                                                            \
    {                                                                                                              \
        shoal__struct_init(x, sizeof(*x));                                                                         \
    }

#define SHOAL_COPY_IN(dst, src) shoal__struct_copy((dst), sizeof(*(dst)), (src))
#define SHOAL_COPY_IN_OPT(dst, src) shoal__struct_copy_opt((dst), sizeof(*(dst)), (src))

#endif
