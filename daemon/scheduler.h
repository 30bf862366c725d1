/* scheduler.h - per-model scheduler: a queue of requests in front of the model's instances.
 *
 * Each instance gets one worker thread that forms a batch when it is free (never earlier),
 * runs it on its device instance and completes the requests. With dynamic batching,
 * requests of the same shape are concatenated along the batch dimension up to
 * max_batch_size, waiting at most max_queue_delay_us for the batch to fill. Priority levels:
 * 1 is served first. All functions are thread-safe.
 */
#ifndef ACC_SCHEDULER_H
#define ACC_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched;
struct model;
struct model_stats;
struct infer_request;
struct device_instance;

struct sched_options {
	int max_batch_size;          /* 0: requests carry no batch dimension; run one by one */
	bool dynamic_batching;       /* batch queued requests together */
	uint64_t max_queue_delay_us; /* how long a batch may wait to fill */
	size_t n_preferred;
	const int *preferred_batch_sizes; /* copied */
	size_t max_queue_size;       /* queued requests beyond this are refused (-EBUSY); 0 = 4096 */
	int priority_levels;         /* >= 1 */
	int default_priority;        /* 1..priority_levels, used for priority 0 */
};

/* Create a scheduler for model over n instances (on success the scheduler owns the
 * instances, on error the caller still does) and start one worker per instance. model is not referenced: the caller keeps
 * it alive until sched_shutdown has returned. */
int sched_create(const struct sched_options *opt, struct model *model,
		 struct device_instance **instances, size_t n, struct sched **out, char **err);
/* Queue a validated request whose inputs are in model order. 0, -EAGAIN (shutting down) or
 * -EBUSY (queue full) with *err; on error the caller keeps the request. */
int sched_submit(struct sched *s, struct infer_request *req, char **err);
/* Refuse new requests, finish the queued ones, join the workers. Idempotent; never call it
 * from a worker (i.e. from a request's done callback). */
void sched_shutdown(struct sched *s);
/* Shut down if needed, free the instances and the scheduler. */
void sched_free(struct sched *s);
/* Add the counters of this scheduler into out (names are left alone). */
void sched_stats(struct sched *s, struct model_stats *out);
/* Requests queued now. */
size_t sched_queue_length(struct sched *s);

#endif
