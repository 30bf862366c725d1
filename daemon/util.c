/* util.c - allocation wrappers, error strings, time, file reading. */
#include "config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Abort with a message: the only sane reaction to exhausted memory in a daemon. */
static void oom(size_t n)
{
	fprintf(stderr, "acceld: out of memory allocating %zu bytes\n", n);
	abort();
}

/* Allocate n bytes or abort. */
void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

/* Allocate zeroed elements or abort. */
void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		oom(n * sz);
	return p;
}

/* Resize or abort. */
void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

/* Resize an array or abort, checking for overflow. */
void *xreallocarray(void *p, size_t n, size_t sz)
{
	if (sz && n > SIZE_MAX / sz)
		oom(SIZE_MAX);
	return xrealloc(p, n * sz);
}

/* Duplicate a string or abort. */
char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	return xstrndup(s, strlen(s));
}

/* Duplicate a prefix of a string or abort. */
char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Format into a fresh string or abort. */
char *xvasprintf(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		oom(strlen(fmt));
	return s;
}

/* Format into a fresh string or abort. */
char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

/* Aligned allocation or abort. */
void *xaligned_alloc(size_t align, size_t n)
{
	void *p;
	if (posix_memalign(&p, align, n ? n : 1) != 0)
		oom(n);
	return p;
}

/* Big buffers on huge pages: streaming weights and activations through 4 KiB pages costs a TLB
 * miss every 4 KiB, and a miss under virtualisation walks two sets of page tables. */
void *acc_alloc_big(size_t n)
{
	void *p = NULL;
	if (n < ACC_HUGE_MIN)
		return posix_memalign(&p, 64, n ? n : 1) ? NULL : p;
	size_t huge = (size_t)2 << 20, sz = (n + huge - 1) & ~(huge - 1);
	if (posix_memalign(&p, huge, sz))
		return NULL;
#ifdef MADV_HUGEPAGE
	madvise(p, sz, MADV_HUGEPAGE); /* advice only: without THP the buffer works the same */
#endif
	return p;
}

/* Store a formatted message in *err and return code. */
int acc_err(char **err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		free(*err);
		*err = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Monotonic nanoseconds. */
uint64_t acc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Read a whole file. */
int acc_read_file(const char *path, char **data, size_t *len, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return acc_err(err, -errno, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno ? errno : EINVAL;
		close(fd);
		return acc_err(err, -e, "%s is not a regular file", path);
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (n + 1 >= cap)
			buf = xrealloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			return acc_err(err, -e, "cannot read %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return 0;
}
