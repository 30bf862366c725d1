/* threadpool.c - fork-join pool: workers spin briefly, then sleep on a condition variable. */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "threadpool.h"
#include "util.h"

struct tpool {
	int n; /* threads in all, the caller included */
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t wake, done_cv;
	atomic_uint_fast64_t gen; /* bumped for each region */
	atomic_int remaining; /* workers still busy in the current region */
	atomic_int_fast64_t next; /* next chunk to take */
	int64_t n_chunks, chunk, total;
	tpool_fn fn;
	void *arg;
	bool stop;
};

/* Take chunks of the current region until none are left. */
static void work(struct tpool *p)
{
	for (;;) {
		int64_t c = atomic_fetch_add(&p->next, 1);
		if (c >= p->n_chunks)
			return;
		int64_t b = c * p->chunk, e = b + p->chunk;
		p->fn(p->arg, b, e < p->total ? e : p->total);
	}
}

/* Worker thread: wait for a new generation, help, report. */
static void *worker(void *arg)
{
	struct tpool *p = arg;
	uint64_t seen = 0;
	for (;;) {
		int spins = 0;
		while (atomic_load(&p->gen) == seen && spins < 20000) {
			spins++;
			if ((spins & 63) == 0)
				sched_yield();
		}
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->gen) == seen && !p->stop)
			pthread_cond_wait(&p->wake, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		seen = atomic_load(&p->gen);
		pthread_mutex_unlock(&p->mu);
		work(p);
		if (atomic_fetch_sub(&p->remaining, 1) == 1) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

struct tpool *tpool_create(int n)
{
	if (n <= 1)
		return NULL;
	struct tpool *p = xcalloc(1, sizeof(*p));
	p->n = n;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done_cv, NULL);
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
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n - 1; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done_cv);
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
	if (!p || n <= grain) {
		fn(arg, 0, n);
		return;
	}
	int64_t chunks = (n + grain - 1) / grain;
	if (chunks > 4 * p->n)
		chunks = 4 * p->n;
	p->chunk = (n + chunks - 1) / chunks;
	p->n_chunks = (n + p->chunk - 1) / p->chunk;
	p->total = n;
	p->fn = fn;
	p->arg = arg;
	atomic_store(&p->next, 0);
	atomic_store(&p->remaining, p->n - 1);
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->gen, 1);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	work(p);
	int spins = 0;
	while (atomic_load(&p->remaining) > 0 && spins < 20000)
		if ((++spins & 63) == 0)
			sched_yield();
	pthread_mutex_lock(&p->mu);
	while (atomic_load(&p->remaining) > 0)
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
