/* scheduler.c - per-model request queues, batch formation and instance workers. */
#include "config.h"
#include "scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "device.h"
#include "infer.h"
#include "log.h"
#include "repo.h"
#include "util.h"

#define SCHED_MAX_LEVELS 16
#define ENG_INPUT_ALIGN 64

struct queue {
	struct infer_request *head, *tail;
};

struct worker;

struct sched {
	struct sched_options opt;
	struct model *model;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping, joined;
	size_t queued;
	struct queue levels[SCHED_MAX_LEVELS];
	size_t n_workers;
	struct worker *workers;

	/* statistics, under lock */
	struct model_stats stats;
	size_t n_batch_cap;
};

/* A worker owns its instance and the buffers batches are assembled in. */
struct worker {
	struct sched *s;
	struct device_instance *instance;
	pthread_t thread;
	bool started;
	size_t n_in;
	void **in_buf;
	size_t *in_cap;
};

/* Completion state of one batch execution; drivers may complete from their own thread. */
struct exec_result {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int status;
	bool done;
};

/* Monotonic deadline to a timespec for pthread_cond_timedwait (the cond uses CLOCK_MONOTONIC). */
static struct timespec ns_to_timespec(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
	return ts;
}

/* Wall-clock milliseconds since the epoch. */
static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Batch size a request contributes (1 when the model has no batch dimension). */
static int64_t req_batch(const struct sched *s, const struct infer_request *r)
{
	if (s->opt.max_batch_size <= 0 || r->n_inputs == 0 || r->inputs[0].ndims == 0)
		return 1;
	return r->inputs[0].dims[0];
}

/* True when b can join a batch led by a: same dtypes and same non-batch dims on every input. */
static bool req_compatible(const struct infer_request *a, const struct infer_request *b)
{
	if (a->n_inputs != b->n_inputs)
		return false;
	for (size_t i = 0; i < a->n_inputs; i++) {
		const struct infer_tensor *x = &a->inputs[i], *y = &b->inputs[i];
		if (x->dtype != y->dtype || x->ndims != y->ndims || x->ndims == 0)
			return false;
		for (int d = 1; d < x->ndims; d++)
			if (x->dims[d] != y->dims[d])
				return false;
	}
	return true;
}

/* Map a request priority to a queue level (0 = most urgent). */
static int level_of(const struct sched *s, int priority)
{
	int p = priority <= 0 ? s->opt.default_priority : priority;
	if (p > s->opt.priority_levels)
		p = s->opt.priority_levels;
	return p - 1;
}

/* Append to a queue. */
static void queue_push(struct queue *q, struct infer_request *r)
{
	r->sched_next = NULL;
	if (q->tail)
		q->tail->sched_next = r;
	else
		q->head = r;
	q->tail = r;
}

/* Unlink r (whose predecessor is prev, or NULL at the head) from q. */
static void queue_unlink(struct queue *q, struct infer_request *prev, struct infer_request *r)
{
	if (prev)
		prev->sched_next = r->sched_next;
	else
		q->head = r->sched_next;
	if (q->tail == r)
		q->tail = prev;
	r->sched_next = NULL;
}

/* Queue a request. */
int sched_submit(struct sched *s, struct infer_request *req, char **err)
{
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return acc_err(err, -EAGAIN, "model '%s' is being unloaded", model_name(s->model));
	}
	if (s->queued >= s->opt.max_queue_size) {
		size_t n = s->queued;
		pthread_mutex_unlock(&s->lock);
		return acc_err(err, -EBUSY, "model '%s': queue full (%zu requests waiting)",
			       model_name(s->model), n);
	}
	if (!req->t_arrive_ns)
		req->t_arrive_ns = acc_now_ns();
	queue_push(&s->levels[level_of(s, req->priority)], req);
	s->queued++;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The most urgent queued request, or NULL. */
static struct infer_request *peek_first(struct sched *s)
{
	for (int l = 0; l < s->opt.priority_levels; l++)
		if (s->levels[l].head)
			return s->levels[l].head;
	return NULL;
}

/* Samples queued that could join a batch led by first. */
static int64_t compatible_samples(struct sched *s, const struct infer_request *first)
{
	int64_t n = 0;
	for (int l = 0; l < s->opt.priority_levels; l++)
		for (struct infer_request *r = s->levels[l].head; r; r = r->sched_next)
			if (r == first || req_compatible(first, r))
				n += req_batch(s, r);
	return n;
}

/* Fail a request now (called without the lock). */
static void complete_error(struct sched *s, struct infer_request *r, int status, char *msg)
{
	r->status = status;
	free(r->error);
	r->error = msg;
	uint64_t now = acc_now_ns();
	pthread_mutex_lock(&s->lock);
	s->stats.fail.count++;
	s->stats.fail.ns += now - r->t_arrive_ns;
	pthread_mutex_unlock(&s->lock);
	r->done(r, r->arg);
}

/* Take a batch off the queues (lock held): expired requests go to *expired. Returns the
 * number of requests placed in batch[]. */
static size_t take_batch(struct sched *s, struct infer_request **batch, size_t cap,
			 struct infer_request **expired)
{
	uint64_t now = acc_now_ns();
	struct infer_request *first = NULL;
	size_t n = 0;
	int64_t samples = 0;
	int64_t max = s->opt.max_batch_size > 0 && s->opt.dynamic_batching ? s->opt.max_batch_size : 0;
	for (int l = 0; l < s->opt.priority_levels; l++) {
		struct queue *q = &s->levels[l];
		struct infer_request *prev = NULL, *r = q->head;
		while (r) {
			struct infer_request *next = r->sched_next;
			if (r->timeout_us && (now - r->t_arrive_ns) / 1000 > r->timeout_us) {
				queue_unlink(q, prev, r);
				s->queued--;
				r->sched_next = *expired;
				*expired = r;
				r = next;
				continue;
			}
			bool take = false;
			if (!first)
				take = true;
			else if (max && n < cap && req_compatible(first, r) &&
				 samples + req_batch(s, r) <= max)
				take = true;
			if (take) {
				queue_unlink(q, prev, r);
				s->queued--;
				if (!first)
					first = r;
				batch[n++] = r;
				samples += req_batch(s, r);
				if (!max || samples >= max || n >= cap)
					return n;
			} else {
				prev = r;
			}
			r = next;
		}
	}
	return n;
}

/* Grow a reusable buffer to at least n bytes (never shrinks). */
static void *buf_reserve(void **buf, size_t *cap, size_t n)
{
	if (*cap < n) {
		free(*buf);
		*cap = n + n / 4;
		*buf = xaligned_alloc(64, *cap);
	}
	return *buf;
}

/* Completion of the device: remember status (the CPU driver completes inline). */
static void exec_done(struct drv_batch *b, int status, void *arg)
{
	struct exec_result *res = arg;
	pthread_mutex_lock(&res->lock);
	res->status = status;
	res->done = true;
	pthread_cond_signal(&res->cond);
	pthread_mutex_unlock(&res->lock);
}

/* Record statistics of one executed batch. */
static void record_batch(struct sched *s, struct infer_request **reqs, size_t n, int64_t samples,
			 uint64_t t_in, uint64_t t_infer, uint64_t t_out, uint64_t t_end, bool ok)
{
	pthread_mutex_lock(&s->lock);
	struct model_stats *st = &s->stats;
	for (size_t i = 0; i < n; i++) {
		struct infer_request *r = reqs[i];
		st->queue.count++;
		st->queue.ns += r->t_start_ns - r->t_arrive_ns;
		if (!ok)
			continue;
		st->success.count++;
		st->success.ns += t_end - r->t_arrive_ns;
		st->compute_input.count++;
		st->compute_input.ns += t_infer - t_in;
		st->compute_infer.count++;
		st->compute_infer.ns += t_out - t_infer;
		st->compute_output.count++;
		st->compute_output.ns += t_end - t_out;
	}
	if (ok) {
		st->inference_count += (uint64_t)samples;
		st->execution_count++;
		st->last_inference_ms = wall_ms();
		struct model_batch_stat *bs = NULL;
		for (size_t i = 0; i < st->n_batch; i++)
			if (st->batch[i].batch_size == (uint64_t)samples)
				bs = &st->batch[i];
		if (!bs) {
			st->batch = xreallocarray(st->batch, st->n_batch + 1, sizeof(*st->batch));
			bs = &st->batch[st->n_batch++];
			memset(bs, 0, sizeof(*bs));
			bs->batch_size = (uint64_t)samples;
		}
		bs->compute_input.count++;
		bs->compute_input.ns += t_infer - t_in;
		bs->compute_infer.count++;
		bs->compute_infer.ns += t_out - t_infer;
		bs->compute_output.count++;
		bs->compute_output.ns += t_end - t_out;
	}
	pthread_mutex_unlock(&s->lock);
}

/* Copy the requested outputs of one request (rows [row0, row0+rows) of the batch). */
static void split_outputs(struct sched *s, struct infer_request *r, const struct eng_tensor *outs,
			  size_t n_out, int64_t row0, int64_t rows, int64_t total)
{
	size_t want = r->n_requested ? r->n_requested : n_out;
	r->results = xcalloc(want, sizeof(*r->results));
	r->n_results = want;
	for (size_t k = 0; k < want; k++) {
		size_t o = k;
		if (r->n_requested) {
			for (o = 0; o < n_out; o++)
				if (strcmp(model_output(s->model, o)->name, r->requested[k]) == 0)
					break;
		}
		struct infer_tensor *res = &r->results[k];
		const struct eng_tensor *t = &outs[o];
		res->name = xstrdup(model_output(s->model, o)->name);
		res->dtype = t->dtype;
		res->ndims = t->ndims;
		memcpy(res->dims, t->dims, sizeof(res->dims));
		size_t off = 0, len = t->bytes;
		bool batched = s->opt.max_batch_size > 0 && t->ndims > 0 && t->dims[0] == total;
		if (batched && total > 0) {
			size_t row_bytes = t->bytes / (size_t)total;
			off = row_bytes * (size_t)row0;
			len = row_bytes * (size_t)rows;
			res->dims[0] = rows;
		}
		res->bytes = len;
		res->data = xmalloc(len);
		memcpy(res->data, (const char *)t->data + off, len);
	}
}

/* Assemble, execute and complete one batch of n requests. */
static void run_batch(struct worker *w, struct infer_request **reqs, size_t n)
{
	struct sched *s = w->s;
	size_t n_in = model_n_inputs(s->model), n_out = model_n_outputs(s->model);
	uint64_t t_in = acc_now_ns();
	for (size_t i = 0; i < n; i++)
		reqs[i]->t_start_ns = t_in;
	int64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += req_batch(s, reqs[i]);

	struct eng_tensor in[n_in ? n_in : 1];
	struct eng_tensor out[n_out ? n_out : 1];
	memset(in, 0, sizeof(in));
	memset(out, 0, sizeof(out));
	for (size_t i = 0; i < n_in; i++) {
		const struct infer_tensor *t0 = &reqs[0]->inputs[i];
		in[i].dtype = t0->dtype;
		in[i].ndims = t0->ndims;
		memcpy(in[i].dims, t0->dims, sizeof(in[i].dims));
		/* A lone request whose tensor is suitably aligned runs in place; wire buffers sit at
		 * any byte offset inside the message, and kernels expect aligned elements. */
		if (n == 1 && (uintptr_t)t0->data % ENG_INPUT_ALIGN == 0) {
			in[i].data = t0->data;
			in[i].bytes = t0->bytes;
			continue;
		}
		size_t bytes = 0;
		for (size_t r = 0; r < n; r++)
			bytes += reqs[r]->inputs[i].bytes;
		char *dst = buf_reserve(&w->in_buf[i], &w->in_cap[i], bytes);
		size_t off = 0;
		for (size_t r = 0; r < n; r++) {
			memcpy(dst + off, reqs[r]->inputs[i].data, reqs[r]->inputs[i].bytes);
			off += reqs[r]->inputs[i].bytes;
		}
		in[i].data = dst;
		in[i].bytes = bytes;
		if (s->opt.max_batch_size > 0)
			in[i].dims[0] = total;
	}
	struct drv_batch b = { .n_inputs = n_in, .n_outputs = n_out, .inputs = in, .outputs = out };
	struct exec_result res = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	uint64_t t_infer = acc_now_ns();
	int rc = device_instance_execute(w->instance, &b, exec_done, &res);
	if (rc == 0) {
		pthread_mutex_lock(&res.lock);
		while (!res.done)
			pthread_cond_wait(&res.cond, &res.lock);
		rc = res.status;
		pthread_mutex_unlock(&res.lock);
	}
	uint64_t t_out = acc_now_ns();
	/* Rows go back to their requests only through a batch dimension: an output whose first
	 * dimension is not the batch would hand one client's rows to another. */
	for (size_t k = 0; rc == 0 && n > 1 && k < n_out; k++) {
		if (out[k].ndims < 1 || out[k].dims[0] != total) {
			rc = -EINVAL;
			b.error = xasprintf("output '%s' has no batch dimension (first dimension %lld, batch %lld): "
					    "the model cannot be batched; set max_batch_size 0 or drop dynamic_batching",
					    model_output(s->model, k)->name,
					    (long long)(out[k].ndims ? out[k].dims[0] : 0), (long long)total);
		}
	}
	if (rc == 0) {
		int64_t row = 0;
		for (size_t i = 0; i < n; i++) {
			int64_t rows = req_batch(s, reqs[i]);
			split_outputs(s, reqs[i], out, n_out, row, rows, total);
			row += rows;
		}
	}
	uint64_t t_end = acc_now_ns();
	record_batch(s, reqs, n, total, t_in, t_infer, t_out, t_end, rc == 0);
	if (rc < 0 && !b.error)
		b.error = xasprintf("execution failed (%d)", rc);
	for (size_t i = 0; i < n; i++) {
		if (rc < 0) {
			complete_error(s, reqs[i], rc, xasprintf("model '%s': %s", model_name(s->model), b.error));
			continue;
		}
		reqs[i]->status = 0;
		reqs[i]->done(reqs[i], reqs[i]->arg);
	}
	free(b.error);
}

/* Worker thread: wait for work, form a batch, run it; exit when stopping and drained. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct sched *s = w->s;
	size_t cap = s->opt.max_batch_size > 0 ? (size_t)s->opt.max_batch_size : 1;
	struct infer_request **batch = xcalloc(cap, sizeof(*batch));
	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct infer_request *first = peek_first(s);
		if (!first) {
			if (s->stopping)
				break;
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		/* Dynamic batching: let the batch fill until the oldest request's delay runs out. */
		if (s->opt.dynamic_batching && s->opt.max_batch_size > 1 && !s->stopping &&
		    compatible_samples(s, first) < s->opt.max_batch_size) {
			uint64_t deadline = first->t_arrive_ns + s->opt.max_queue_delay_us * 1000ull;
			if (acc_now_ns() < deadline) {
				struct timespec ts = ns_to_timespec(deadline);
				pthread_cond_timedwait(&s->cond, &s->lock, &ts);
				continue;
			}
		}
		struct infer_request *expired = NULL;
		size_t n = take_batch(s, batch, cap, &expired);
		if (s->queued)
			pthread_cond_signal(&s->cond); /* another idle worker can take what is left */
		pthread_mutex_unlock(&s->lock);
		while (expired) {
			struct infer_request *r = expired;
			expired = r->sched_next;
			complete_error(s, r, -ETIMEDOUT,
				       xasprintf("request timed out after %llu us in the queue of '%s'",
						 (unsigned long long)r->timeout_us, model_name(s->model)));
		}
		if (n)
			run_batch(w, batch, n);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	free(batch);
	return NULL;
}

/* Create the scheduler and start its workers. */
int sched_create(const struct sched_options *opt, struct model *model,
		 struct device_instance **instances, size_t n, struct sched **out, char **err)
{
	if (n == 0)
		return acc_err(err, -EINVAL, "model '%s' has no instance", model_name(model));
	if (opt->priority_levels > SCHED_MAX_LEVELS)
		return acc_err(err, -EINVAL, "priority_levels %d exceeds %d", opt->priority_levels,
			       SCHED_MAX_LEVELS);
	struct sched *s = xcalloc(1, sizeof(*s));
	s->opt = *opt;
	s->opt.preferred_batch_sizes = NULL;
	s->opt.n_preferred = 0;
	if (s->opt.priority_levels < 1)
		s->opt.priority_levels = 1;
	if (s->opt.default_priority < 1 || s->opt.default_priority > s->opt.priority_levels)
		s->opt.default_priority = (s->opt.priority_levels + 1) / 2;
	if (!s->opt.max_queue_size)
		s->opt.max_queue_size = 4096;
	s->model = model;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->n_workers = n;
	s->workers = xcalloc(n, sizeof(*s->workers));
	size_t n_in = model_n_inputs(model);
	for (size_t i = 0; i < n; i++) {
		struct worker *w = &s->workers[i];
		w->s = s;
		w->instance = instances[i];
		w->n_in = n_in;
		w->in_buf = xcalloc(n_in ? n_in : 1, sizeof(void *));
		w->in_cap = xcalloc(n_in ? n_in : 1, sizeof(size_t));
	}
	for (size_t i = 0; i < n; i++) {
		int e = pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
		if (e) {
			log_err("cannot start a worker for '%s': %s", model_name(model), strerror(e));
			break;
		}
		s->workers[i].started = true;
	}
	if (!s->workers[0].started) {
		for (size_t i = 0; i < n; i++)
			s->workers[i].instance = NULL; /* on error the caller keeps the instances */
		sched_free(s);
		return acc_err(err, -EAGAIN, "cannot start worker threads");
	}
	*out = s;
	return 0;
}

/* Stop taking requests, drain, join. */
void sched_shutdown(struct sched *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	bool joined = s->joined;
	s->joined = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (joined)
		return;
	for (size_t i = 0; i < s->n_workers; i++)
		if (s->workers[i].started)
			pthread_join(s->workers[i].thread, NULL);
}

/* Free everything. */
void sched_free(struct sched *s)
{
	if (!s)
		return;
	sched_shutdown(s);
	for (size_t i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		device_instance_free(w->instance);
		for (size_t k = 0; k < w->n_in; k++)
			free(w->in_buf[k]);
		free(w->in_buf);
		free(w->in_cap);
	}
	free(s->workers);
	free(s->stats.batch);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* Add one duration into another. */
static void dur_add(struct model_stat_duration *a, const struct model_stat_duration *b)
{
	a->count += b->count;
	a->ns += b->ns;
}

/* Sum counters into out. */
void sched_stats(struct sched *s, struct model_stats *out)
{
	pthread_mutex_lock(&s->lock);
	const struct model_stats *st = &s->stats;
	if (st->last_inference_ms > out->last_inference_ms)
		out->last_inference_ms = st->last_inference_ms;
	out->inference_count += st->inference_count;
	out->execution_count += st->execution_count;
	dur_add(&out->success, &st->success);
	dur_add(&out->fail, &st->fail);
	dur_add(&out->queue, &st->queue);
	dur_add(&out->compute_input, &st->compute_input);
	dur_add(&out->compute_infer, &st->compute_infer);
	dur_add(&out->compute_output, &st->compute_output);
	for (size_t i = 0; i < st->n_batch; i++) {
		struct model_batch_stat *bs = NULL;
		for (size_t j = 0; j < out->n_batch; j++)
			if (out->batch[j].batch_size == st->batch[i].batch_size)
				bs = &out->batch[j];
		if (!bs) {
			out->batch = xreallocarray(out->batch, out->n_batch + 1, sizeof(*out->batch));
			bs = &out->batch[out->n_batch++];
			memset(bs, 0, sizeof(*bs));
			bs->batch_size = st->batch[i].batch_size;
		}
		dur_add(&bs->compute_input, &st->batch[i].compute_input);
		dur_add(&bs->compute_infer, &st->batch[i].compute_infer);
		dur_add(&bs->compute_output, &st->batch[i].compute_output);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Queue length. */
size_t sched_queue_length(struct sched *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->queued;
	pthread_mutex_unlock(&s->lock);
	return n;
}
