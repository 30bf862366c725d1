/* infer.c - inference requests: lifetime, validation against the model, submission. */
#include "config.h"
#include "infer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo.h"
#include "scheduler.h"
#include "util.h"

/* Defined in repo.c: the scheduler of a ready model. */
struct sched *repo_model_sched(struct model *m);

/* A new request holding a model reference. */
struct infer_request *infer_request_new(struct model *model)
{
	struct infer_request *r = xcalloc(1, sizeof(*r));
	r->model = model_get(model);
	return r;
}

/* Free a request and everything it owns. */
void infer_request_free(struct infer_request *req)
{
	if (!req)
		return;
	for (size_t i = 0; i < req->n_inputs; i++)
		free(req->inputs[i].name);
	free(req->inputs);
	for (size_t i = 0; i < req->n_requested; i++)
		free(req->requested[i]);
	free(req->requested);
	for (size_t i = 0; i < req->n_results; i++) {
		free(req->results[i].name);
		free(req->results[i].data);
	}
	free(req->results);
	free(req->error);
	free(req->id);
	if (req->owner_free)
		req->owner_free(req->owner);
	if (req->model)
		model_put(req->model);
	free(req);
}

/* Format a shape as "[1,784]" into buf. */
static const char *shape_str(char *buf, size_t len, const int64_t *dims, int ndims)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, len - o, "[");
	for (int i = 0; i < ndims && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)dims[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
	return buf;
}

/* Check one input tensor against the model's description. */
static int check_input(const struct model *m, const struct model_io *io,
		       const struct infer_tensor *t, char **err)
{
	char want[160], got[160];
	if (t->dtype != io->dtype)
		return acc_err(err, -EINVAL, "input '%s': expected datatype %s, got %s", t->name,
			       dtype_name(io->dtype), dtype_name(t->dtype));
	if (t->ndims != io->ndims)
		return acc_err(err, -EINVAL, "input '%s': expected shape %s (%d dims), got %s", t->name,
			       shape_str(want, sizeof(want), io->dims, io->ndims), io->ndims,
			       shape_str(got, sizeof(got), t->dims, t->ndims));
	for (int d = 0; d < t->ndims; d++) {
		if (t->dims[d] < 0 || (io->dims[d] >= 0 && t->dims[d] != io->dims[d]))
			return acc_err(err, -EINVAL, "input '%s': expected shape %s, got %s", t->name,
				       shape_str(want, sizeof(want), io->dims, io->ndims),
				       shape_str(got, sizeof(got), t->dims, t->ndims));
	}
	int mbs = model_max_batch_size(m);
	if (mbs > 0 && (t->dims[0] < 1 || t->dims[0] > mbs))
		return acc_err(err, -EINVAL, "input '%s': batch size %lld outside 1..%d (max_batch_size)",
			       t->name, (long long)t->dims[0], mbs);
	int64_t numel = shape_numel(t->dims, t->ndims);
	size_t esz = dtype_size(t->dtype);
	if (numel < 0 || esz == 0 || (uint64_t)numel > SIZE_MAX / esz)
		return acc_err(err, -EINVAL, "input '%s': unsupported datatype or shape %s", t->name,
			       shape_str(got, sizeof(got), t->dims, t->ndims));
	if ((size_t)numel * esz != t->bytes)
		return acc_err(err, -EINVAL,
			       "input '%s': expected %zu bytes for %s shape %s, got %zu bytes", t->name,
			       (size_t)numel * esz, dtype_name(t->dtype),
			       shape_str(got, sizeof(got), t->dims, t->ndims), t->bytes);
	return 0;
}

/* Validate a request against its model. */
int infer_validate(const struct infer_request *req, char **err)
{
	const struct model *m = req->model;
	size_t n = model_n_inputs(m);
	if (req->n_inputs > n)
		return acc_err(err, -EINVAL, "model '%s' has %zu input%s, the request gives %zu", model_name(m),
			       n, n == 1 ? "" : "s", req->n_inputs);
	for (size_t i = 0; i < req->n_inputs; i++) {
		if (!req->inputs[i].name)
			return acc_err(err, -EINVAL, "input %zu has no name", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->inputs[i].name, req->inputs[j].name) == 0)
				return acc_err(err, -EINVAL, "input '%s' given twice", req->inputs[i].name);
	}
	int64_t batch = -1;
	for (size_t k = 0; k < n; k++) {
		const struct model_io *io = model_input(m, k);
		const struct infer_tensor *t = NULL;
		for (size_t i = 0; i < req->n_inputs; i++)
			if (strcmp(req->inputs[i].name, io->name) == 0)
				t = &req->inputs[i];
		if (!t)
			return acc_err(err, -EINVAL, "model '%s' expects input '%s' (%s), which is missing",
				       model_name(m), io->name, dtype_name(io->dtype));
		int rc = check_input(m, io, t, err);
		if (rc < 0)
			return rc;
		if (model_max_batch_size(m) > 0) {
			if (batch >= 0 && t->dims[0] != batch)
				return acc_err(err, -EINVAL,
					       "input '%s': batch size %lld differs from other inputs (%lld)",
					       t->name, (long long)t->dims[0], (long long)batch);
			batch = t->dims[0];
		}
	}
	for (size_t i = 0; i < req->n_inputs; i++) {
		bool known = false;
		for (size_t k = 0; k < n && !known; k++)
			known = strcmp(req->inputs[i].name, model_input(m, k)->name) == 0;
		if (!known)
			return acc_err(err, -EINVAL, "model '%s' has no input named '%s'", model_name(m),
				       req->inputs[i].name);
	}
	for (size_t i = 0; i < req->n_requested; i++) {
		bool known = false;
		for (size_t k = 0; k < model_n_outputs(m) && !known; k++)
			known = req->requested[i] && strcmp(req->requested[i], model_output(m, k)->name) == 0;
		if (!known)
			return acc_err(err, -EINVAL, "model '%s' has no output named '%s'", model_name(m),
				       req->requested[i] ? req->requested[i] : "");
	}
	return 0;
}

/* Put the inputs in model order (validation guarantees a one-to-one match). */
static void order_inputs(struct infer_request *req)
{
	size_t n = req->n_inputs;
	struct infer_tensor *sorted = xcalloc(n ? n : 1, sizeof(*sorted));
	for (size_t k = 0; k < n; k++) {
		const char *name = model_input(req->model, k)->name;
		for (size_t i = 0; i < n; i++)
			if (strcmp(req->inputs[i].name, name) == 0)
				sorted[k] = req->inputs[i];
	}
	free(req->inputs);
	req->inputs = sorted;
}

/* Validate and queue. */
int infer_submit(struct infer_request *req, char **err)
{
	if (!req->done)
		return acc_err(err, -EINVAL, "request has no completion callback");
	int rc = infer_validate(req, err);
	if (rc < 0)
		return rc;
	order_inputs(req);
	struct sched *s = repo_model_sched(req->model);
	if (!s)
		return acc_err(err, -EAGAIN, "model '%s' is not serving", model_name(req->model));
	req->t_arrive_ns = acc_now_ns();
	return sched_submit(s, req, err);
}
