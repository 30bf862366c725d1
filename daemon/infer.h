/* infer.h - one inference request, independent of the protocol that carried it.
 *
 * Life: the transport fills a request (inputs point into memory the transport owns, kept
 * alive by owner/owner_free), calls infer_submit(); on success the request belongs to the
 * scheduler until done() is called exactly once, from a worker thread, with status and
 * results filled in. done() must not block; the transport then encodes the response and
 * frees the request with infer_request_free(). If infer_submit() fails, nothing was queued
 * and the caller still owns the request.
 */
#ifndef ACC_INFER_H
#define ACC_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

struct model;

struct infer_tensor {
	char *name;
	enum dtype dtype;
	int ndims;
	int64_t dims[TENSOR_MAX_DIMS];
	void *data; /* inputs: borrowed from the owner; results: owned by the request */
	size_t bytes;
};

struct infer_request {
	char *id;            /* echoed in the response; may be NULL */
	struct model *model; /* a reference, dropped by infer_request_free */
	size_t n_inputs;
	struct infer_tensor *inputs;
	size_t n_requested; /* 0 = every output */
	char **requested;   /* output names wanted, in the order the response lists them */
	int priority;       /* 0 = default; 1 is the highest (Triton's convention) */
	uint64_t timeout_us; /* 0 = none; queued longer than this fails with -ETIMEDOUT */
	uint64_t t_arrive_ns;

	void (*done)(struct infer_request *req, void *arg);
	void *arg;

	/* Filled before done(): status 0 or -errno, error message, results. */
	int status;
	char *error;
	size_t n_results;
	struct infer_tensor *results;

	void *owner; /* transport memory backing the inputs */
	void (*owner_free)(void *owner);

	struct infer_request *sched_next; /* scheduler-private queue link */
	uint64_t t_start_ns;              /* scheduler-private: when execution began */
};

/* A zeroed request holding a reference to model (taken here). */
struct infer_request *infer_request_new(struct model *model);
/* Free a request, its results, strings and owner; drops the model reference. */
void infer_request_free(struct infer_request *req);
/* Check inputs and requested outputs against the model: names, dtypes, shapes (batch dim
 * within max_batch_size), byte sizes. -EINVAL with a message naming the tensor, expected and
 * got. */
int infer_validate(const struct infer_request *req, char **err);
/* Validate and queue the request on its model's scheduler. 0, or -EINVAL / -EAGAIN (model
 * not serving) / -EBUSY (queue full) with *err; on error the caller keeps the request. */
int infer_submit(struct infer_request *req, char **err);

#endif
