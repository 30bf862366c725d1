/* threadpool.h - a small fork-join pool for parallel loops inside one operator.
 * The calling thread takes part; a pool runs one parallel region at a time (callers of one
 * pool are serialised by its owner, an eng_exec). */
#ifndef ACC_ENGINE_THREADPOOL_H
#define ACC_ENGINE_THREADPOOL_H

#include <stdint.h>

struct tpool;

/* Body of a parallel loop: handle items [begin, end). */
typedef void (*tpool_fn)(void *arg, int64_t begin, int64_t end);

/* Create a pool of n threads in all (n - 1 workers plus the caller); n <= 1 makes none. */
struct tpool *tpool_create(int n);
/* Stop and join the workers, free the pool (NULL is fine). */
void tpool_free(struct tpool *p);
/* Number of threads that take part (1 for a NULL pool). */
int tpool_size(const struct tpool *p);
/* Run fn over [0, n) split in chunks of at least grain items, in parallel; returns when all
 * are done. A NULL pool, or a small n, runs inline. */
void tpool_for(struct tpool *p, int64_t n, int64_t grain, tpool_fn fn, void *arg);
/* Run fn(arg, i, i + 1) once on every thread of the pool (i = 0 .. size - 1, the caller
 * included), for per-thread set-up; returns when all have run. */
void tpool_each(struct tpool *p, tpool_fn fn, void *arg);

#endif
