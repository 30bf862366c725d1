/* util.h - allocation wrappers that never return NULL, error strings, time. */
#ifndef ACC_UTIL_H
#define ACC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ACC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ACC_UNUSED __attribute__((unused))
#define ACC_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Allocate n bytes; aborts the process with a message if memory is exhausted. */
void *xmalloc(size_t n);
/* Allocate n zeroed elements of size sz; aborts on overflow or exhaustion. */
void *xcalloc(size_t n, size_t sz);
/* Resize p to n bytes; aborts on exhaustion. */
void *xrealloc(void *p, size_t n);
/* Resize p to n elements of size sz, checking n * sz for overflow. */
void *xreallocarray(void *p, size_t n, size_t sz);
/* Duplicate a string (NULL gives NULL). */
char *xstrdup(const char *s);
/* Duplicate at most n bytes of s, NUL-terminated. */
char *xstrndup(const char *s, size_t n);
/* printf into a fresh string the caller frees. */
char *xasprintf(const char *fmt, ...) ACC_PRINTF(1, 2);
/* vprintf into a fresh string the caller frees. */
char *xvasprintf(const char *fmt, va_list ap) ACC_PRINTF(1, 0);
/* Allocate n bytes aligned to align (a power of two >= sizeof(void *)); free with free(). */
void *xaligned_alloc(size_t align, size_t n);
/* Like xaligned_alloc(64, n) for big, long-lived buffers (weights, working memory): from
 * ACC_HUGE_MIN bytes on, 2 MiB-aligned, rounded up to 2 MiB and marked for transparent huge
 * pages. Returns NULL when out of memory. Free with free(). */
#define ACC_HUGE_MIN ((size_t)4 << 20)
void *acc_alloc_big(size_t n);

/* Set *err (if err is non-NULL) to a fresh formatted message and return code (a -errno).
 * Typical use: return acc_err(err, -EINVAL, "bad shape %d", n). The caller owns *err. */
int acc_err(char **err, int code, const char *fmt, ...) ACC_PRINTF(3, 4);

/* Monotonic clock in nanoseconds. */
uint64_t acc_now_ns(void);

/* Read a whole file into a fresh buffer (NUL-terminated, not counted in *len); 0 or -errno. */
int acc_read_file(const char *path, char **data, size_t *len, char **err);

#endif
