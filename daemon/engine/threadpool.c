/* threadpool.c - fork-join pool. A region is published by storing its parameters, then a
 * chunk counter tagged with the region's number, then bumping a 32-bit sequence word. Idle
 * workers spin on the sequence word (with the pause instruction, no system calls) for a while,
 * then sleep on it with futex; the caller makes the wake-up system call only when a worker
 * sleeps. Chunks are claimed by compare-and-swap on the tagged counter, so a worker that
 * arrives late (region over, or a newer one started) claims nothing and never sees half-set
 * parameters; the caller takes chunks too and the region ends when every chunk is done. */
#include "config.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "threadpool.h"
#include "util.h"

/* An idle worker spins with pause for PAUSE_NS (regions back to back start at once), then
 * spins calling sched_yield up to SPIN_NS (operators at batch 1 run microseconds apart; the
 * yields hand the core to other processes on a loaded machine instead of pushing them onto
 * the caller's core), then sleeps. The caller waits on stragglers the same way. */
#define PAUSE_NS 5000
#define SPIN_NS 200000
#define JOIN_SPIN_NS 5000

struct tpool {
	int n; /* threads in all, the caller included */
	pthread_t *threads;
	_Alignas(64) atomic_uint seq; /* futex word: bumped once per region (and at stop) */
	atomic_int sleepers; /* workers in (or about to enter) futex_wait */
	atomic_bool stop;
	_Alignas(64) atomic_uint_fast64_t next; /* region number << 32 | next chunk to claim */
	_Alignas(64) atomic_int_fast64_t done; /* chunks finished in the current region */
	/* The region: written by the caller before next is published, read-only until it ends. */
	_Alignas(64) atomic_int_fast64_t n_chunks; /* read before a claim, maybe a newer region's: atomic */
	int64_t chunk, total;
	tpool_fn fn;
	void *arg;
	uint32_t region;
};

/* One spin-wait step: tell the core we are spinning. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void futex_wait(atomic_uint *w, unsigned val)
{
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Claim and run chunks of region r until none are left (or r is over). */
static void work(struct tpool *p, uint32_t r)
{
	uint64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
	for (;;) {
		if ((uint32_t)(v >> 32) != r)
			return;
		int64_t c = (int64_t)(v & 0xffffffffu);
		if (c >= atomic_load_explicit(&p->n_chunks, memory_order_relaxed))
			return;
		if (!atomic_compare_exchange_weak_explicit(&p->next, &v, v + 1, memory_order_acq_rel,
							   memory_order_acquire))
			continue;
		/* The chunk is ours: region r cannot end (nor the next begin) before we count it
		 * done, so its parameters stay put. */
		int64_t b = c * p->chunk, e = b + p->chunk;
		p->fn(p->arg, b, e < p->total ? e : p->total);
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
		v = atomic_load_explicit(&p->next, memory_order_acquire);
	}
}

/* Worker thread: wait for the sequence word to move, help with the region, repeat. */
static void *worker(void *arg)
{
	struct tpool *p = arg;
	unsigned seen = 0; /* seq's value at creation: a stop (or region) before we ran still counts */
	for (;;) {
		uint64_t t0 = acc_now_ns();
		int spins = 0;
		bool yield = false;
		while (atomic_load_explicit(&p->seq, memory_order_acquire) == seen) {
			if (yield)
				sched_yield();
			else
				cpu_relax();
			if ((++spins & (yield ? 7 : 127)) != 0)
				continue;
			uint64_t dt = acc_now_ns() - t0;
			yield = dt > PAUSE_NS;
			if (dt > SPIN_NS) {
				atomic_fetch_add(&p->sleepers, 1);
				while (atomic_load(&p->seq) == seen && !atomic_load(&p->stop))
					futex_wait(&p->seq, seen);
				atomic_fetch_sub(&p->sleepers, 1);
				break;
			}
		}
		if (atomic_load(&p->stop))
			return NULL;
		seen = atomic_load_explicit(&p->seq, memory_order_acquire);
		uint64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
		work(p, (uint32_t)(v >> 32));
	}
}

struct tpool *tpool_create(int n)
{
	if (n <= 1)
		return NULL;
	struct tpool *p = aligned_alloc(64, (sizeof(*p) + 63) / 64 * 64);
	if (!p)
		fatal("out of memory");
	*p = (struct tpool){ .n = n };
	p->threads = xcalloc(n - 1, sizeof(pthread_t));
	for (int i = 0; i < n - 1; i++)
		if (pthread_create(&p->threads[i], NULL, worker, p)) {
			p->n = i + 1; /* run with the workers we got */
			break;
		}
	return p;
}

void tpool_free(struct tpool *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	atomic_fetch_add(&p->seq, 1);
	futex_wake_all(&p->seq);
	for (int i = 0; i < p->n - 1; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	free(p);
}

int tpool_size(const struct tpool *p)
{
	return p ? p->n : 1;
}

void tpool_for(struct tpool *p, int64_t n, int64_t grain, tpool_fn fn, void *arg)
{
	if (n <= 0)
		return;
	if (grain < 1)
		grain = 1;
	if (!p || p->n <= 1 || n <= grain) {
		fn(arg, 0, n);
		return;
	}
	/* Close the previous region first: a late worker holding its counter value now fails to
	 * claim, before the parameters below change. */
	atomic_store(&p->next, (uint64_t)p->region << 32 | 0xffffffffu);
	int64_t chunks = (n + grain - 1) / grain;
	if (chunks > 4 * p->n)
		chunks = 4 * p->n;
	p->chunk = (n + chunks - 1) / chunks;
	int64_t n_chunks = (n + p->chunk - 1) / p->chunk;
	atomic_store_explicit(&p->n_chunks, n_chunks, memory_order_relaxed);
	p->total = n;
	p->fn = fn;
	p->arg = arg;
	uint32_t r = ++p->region;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store_explicit(&p->next, (uint64_t)r << 32, memory_order_release);
	atomic_fetch_add(&p->seq, 1); /* seq_cst: pairs with the sleepers count */
	if (atomic_load(&p->sleepers) > 0)
		futex_wake_all(&p->seq);
	work(p, r);
	/* Every chunk is claimed; wait for those still running elsewhere. */
	if (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) {
		uint64_t t0 = acc_now_ns();
		int spins = 0;
		while (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) {
			cpu_relax();
			if ((++spins & 255) == 0 && acc_now_ns() - t0 > JOIN_SPIN_NS)
				sched_yield();
		}
	}
}

struct each_job {
	tpool_fn fn;
	void *arg;
	int n;
	atomic_int arrived;
};

/* One thread's part of tpool_each: run, then hold the thread until every thread has taken its
 * chunk, so that no thread takes two. */
static void each_part(void *arg, int64_t b, int64_t e)
{
	struct each_job *j = arg;
	for (int64_t i = b; i < e; i++)
		j->fn(j->arg, i, i + 1);
	atomic_fetch_add(&j->arrived, 1);
	while (atomic_load(&j->arrived) < j->n)
		sched_yield();
}

void tpool_each(struct tpool *p, tpool_fn fn, void *arg)
{
	int n = tpool_size(p);
	if (n <= 1) {
		fn(arg, 0, 1);
		return;
	}
	struct each_job j = { fn, arg, n, 0 };
	tpool_for(p, n, 1, each_part, &j);
}
