/* engine.c - the engine's public face: load (parse, check, fold), execs (plan cache, arena,
 * thread pool) and runs. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "graph.h"
#include "kernels/gemm.h"
#include "onnx.h"
#include "ops/ops.h"
#include "opt.h"
#include "plan.h"
#include "threadpool.h"
#include "util.h"

#define PLAN_CACHE 8 /* input-shape signatures kept per exec */

struct eng_model {
	struct eg_graph *g;
	struct eng_io *inputs, *outputs;
	int threads;
	size_t arena_limit;
};

struct eng_exec {
	const struct eng_model *m;
	struct tpool *pool;
	struct plan *plans[PLAN_CACHE];
	int n_plans;
	uint64_t tick;
	void *arena;
	size_t arena_size;
};

/* Describe value v for eng_io. */
static void io_fill(struct eng_io *io, const struct eg_value *v)
{
	io->name = v->name;
	io->dtype = v->dtype;
	io->ndims = v->ndims;
	for (int i = 0; i < v->ndims && i < TENSOR_MAX_DIMS; i++)
		io->dims[i] = v->dims[i];
}

/* Parse and check: the shared first half of load and supported. */
static int parse_and_prepare(const void *onnx, size_t len, struct eg_graph **out, enum dtype **declared,
			     char **err)
{
	struct eg_graph *g;
	int rc = onnx_parse_model(onnx, len, &g, err);
	if (rc)
		return rc;
	enum dtype *decl = xcalloc(g->n_outputs + 1, sizeof(enum dtype));
	for (int i = 0; i < g->n_outputs; i++)
		decl[i] = g->values[g->outputs[i]].dtype;
	rc = eg_graph_prepare(g, err);
	for (int i = 0; !rc && i < g->n_outputs; i++) {
		const struct eg_value *v = &g->values[g->outputs[i]];
		if (decl[i] != DT_INVALID && decl[i] != v->dtype)
			rc = acc_err(err, -EINVAL, "graph output '%s' is declared %s but computed as %s", v->name,
				     dtype_name(decl[i]), dtype_name(v->dtype));
	}
	if (rc) {
		free(decl);
		eg_graph_free(g);
		return rc;
	}
	*out = g;
	if (declared)
		*declared = decl;
	else
		free(decl);
	return 0;
}

int eng_model_load(const void *onnx, size_t len, const struct eng_options *opt, struct eng_model **out,
		   char **err)
{
	struct eg_graph *g;
	int rc = parse_and_prepare(onnx, len, &g, NULL, err);
	if (rc)
		return rc;
	/* Declared output shapes, taken before folding replaces constant outputs' info. */
	struct eng_model *m = xcalloc(1, sizeof(*m));
	m->g = g;
	m->outputs = xcalloc(g->n_outputs + 1, sizeof(struct eng_io));
	for (int i = 0; i < g->n_outputs; i++)
		io_fill(&m->outputs[i], &g->values[g->outputs[i]]);
	rc = eg_graph_fold(g, err);
	if (rc) {
		eng_model_free(m);
		return rc;
	}
	for (int i = 0; i < g->n_outputs; i++)
		if (g->values[g->outputs[i]].konst)
			io_fill(&m->outputs[i], &g->values[g->outputs[i]]);
	if (!(opt && opt->no_opt) && !opt_disabled_by_env() && (rc = opt_graph(g, NULL, err))) {
		eng_model_free(m);
		return rc;
	}
	eg_graph_mark_plan_data(g);
	eng_gemm_pack_weights(g); /* weights held once, packed, before the first request */
	m->inputs = xcalloc(g->n_inputs + 1, sizeof(struct eng_io));
	for (int i = 0; i < g->n_inputs; i++)
		io_fill(&m->inputs[i], &g->values[g->inputs[i]]);
	m->threads = opt && opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (m->threads < 1)
		m->threads = 1;
	if (m->threads > 256)
		m->threads = 256;
	m->arena_limit = opt ? opt->arena_limit : 0;
	if (!m->arena_limit) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		m->arena_limit = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz / 2 : (size_t)1 << 32;
	}
	kgemm_init();
	*out = m;
	return 0;
}

int eng_model_supported(const void *onnx, size_t len, char **why)
{
	struct eg_graph *g;
	char *e = NULL;
	int rc = parse_and_prepare(onnx, len, &g, NULL, &e);
	if (rc == -ENOTSUP) {
		if (why)
			*why = e;
		else
			free(e);
		return 0;
	}
	if (rc) {
		if (why)
			*why = e;
		else
			free(e);
		return rc;
	}
	eg_graph_free(g);
	return 1;
}

bool eng_op_supported(const char *op_type, int64_t opset)
{
	return op_type && eng_op_find(op_type, opset) != NULL;
}

void eng_model_free(struct eng_model *m)
{
	if (!m)
		return;
	eg_graph_free(m->g);
	free(m->inputs);
	free(m->outputs);
	free(m);
}

size_t eng_model_n_inputs(const struct eng_model *m)
{
	return (size_t)m->g->n_inputs;
}

size_t eng_model_n_outputs(const struct eng_model *m)
{
	return (size_t)m->g->n_outputs;
}

const struct eng_io *eng_model_input(const struct eng_model *m, size_t i)
{
	return i < (size_t)m->g->n_inputs ? &m->inputs[i] : NULL;
}

const struct eng_io *eng_model_output(const struct eng_model *m, size_t i)
{
	return i < (size_t)m->g->n_outputs ? &m->outputs[i] : NULL;
}

const char *eng_model_producer(const struct eng_model *m)
{
	return m->g->producer ? m->g->producer : "";
}

int64_t eng_model_opset(const struct eng_model *m)
{
	return m->g->opset;
}

int eng_exec_create(const struct eng_model *m, struct eng_exec **out, char **err)
{
	if (!m)
		return acc_err(err, -EINVAL, "no model");
	struct eng_exec *x = xcalloc(1, sizeof(*x));
	x->m = m;
	x->pool = tpool_create(m->threads);
	*out = x;
	return 0;
}

void eng_exec_free(struct eng_exec *x)
{
	if (!x)
		return;
	for (int i = 0; i < x->n_plans; i++)
		plan_free(x->plans[i]);
	tpool_free(x->pool);
	free(x->arena);
	free(x);
}

/* Check the caller's inputs against the model's description. */
static int check_inputs(const struct eng_model *m, const struct eng_tensor *inputs, char **err)
{
	if (!inputs && m->g->n_inputs)
		return acc_err(err, -EINVAL, "no inputs given");
	for (int i = 0; i < m->g->n_inputs; i++) {
		const struct eng_io *io = &m->inputs[i];
		const struct eng_tensor *t = &inputs[i];
		if (t->dtype != io->dtype)
			return acc_err(err, -EINVAL, "input '%s': type %s, expected %s", io->name, dtype_name(t->dtype),
				       dtype_name(io->dtype));
		if (t->ndims != io->ndims)
			return acc_err(err, -EINVAL, "input '%s': %d dims, expected %d", io->name, t->ndims, io->ndims);
		for (int d = 0; d < t->ndims; d++)
			if (t->dims[d] < 0 || (io->dims[d] >= 0 && t->dims[d] != io->dims[d]))
				return acc_err(err, -EINVAL, "input '%s': dim %d is %lld, expected %lld", io->name, d,
					       (long long)t->dims[d], (long long)io->dims[d]);
		int64_t n = shape_numel(t->dims, t->ndims);
		if (n < 0 || (uint64_t)n > SIZE_MAX / 16)
			return acc_err(err, -EINVAL, "input '%s': shape too large", io->name);
		size_t want = (size_t)n * dtype_size(t->dtype);
		if (t->bytes != want)
			return acc_err(err, -EINVAL, "input '%s': %zu bytes, its shape needs %zu", io->name, t->bytes,
				       want);
		if (want && !t->data)
			return acc_err(err, -EINVAL, "input '%s': no data", io->name);
	}
	return 0;
}

/* The plan for these input shapes: cached, or built (evicting the least recently used). */
static int get_plan(struct eng_exec *x, const struct eng_tensor *inputs, struct plan **out, char **err)
{
	for (int i = 0; i < x->n_plans; i++)
		if (plan_matches(x->plans[i], inputs, x->m->g->n_inputs)) {
			x->plans[i]->last_used = ++x->tick;
			*out = x->plans[i];
			return 0;
		}
	struct plan *p = NULL;
	int rc = plan_build(x->m->g, inputs, &p, err);
	if (rc)
		return rc;
	if (p->arena_size > x->m->arena_limit) {
		rc = acc_err(err, -ENOMEM, "these input shapes need %zu MiB of working memory, over the limit of %zu MiB",
			     p->arena_size >> 20, x->m->arena_limit >> 20);
		plan_free(p);
		return rc;
	}
	if (p->arena_size > x->arena_size) {
		/* Grow once per new largest shape; touch it now so runs never fault pages in. */
		size_t sz = (p->arena_size + 4095) & ~(size_t)4095;
		void *a = NULL;
		if (posix_memalign(&a, 4096, sz)) {
			plan_free(p);
			return acc_err(err, -ENOMEM, "cannot allocate %zu MiB of working memory", sz >> 20);
		}
		memset(a, 0, sz);
		free(x->arena);
		x->arena = a;
		x->arena_size = sz;
	}
	if (x->n_plans == PLAN_CACHE) {
		int lru = 0;
		for (int i = 1; i < x->n_plans; i++)
			if (x->plans[i]->last_used < x->plans[lru]->last_used)
				lru = i;
		plan_free(x->plans[lru]);
		x->plans[lru] = x->plans[--x->n_plans];
	}
	p->last_used = ++x->tick;
	x->plans[x->n_plans++] = p;
	*out = p;
	return 0;
}

int eng_exec_run(struct eng_exec *x, const struct eng_tensor *inputs, struct eng_tensor *outputs, char **err)
{
	if (!x || !outputs)
		return acc_err(err, -EINVAL, "no exec or no outputs");
	int rc = check_inputs(x->m, inputs, err);
	if (rc)
		return rc;
	struct plan *p = NULL;
	rc = get_plan(x, inputs, &p, err);
	if (rc)
		return rc;
	plan_bind(p, x->arena, inputs);
	struct eng_ctx ctx = { .pool = x->pool };
	return plan_run(p, x->arena, &ctx, outputs, err);
}
