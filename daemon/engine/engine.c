/* engine.c - the engine's public face: load (parse, check, fold), execs (plan cache, arena,
 * thread pool) and runs. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "graph.h"
#ifdef HAVE_DNNL
#include "kernels/dnnl_conv.h"
#endif
#include "kernels/gemm.h"
#include "onnx.h"
#include "ops/ops.h"
#include "opt.h"
#include "plan.h"
#include "threadpool.h"
#include "util.h"

#define PLAN_CACHE 8 /* input-shape signatures kept per exec */
#define SAMPLES_MAX_THREADS 64 /* pools up to this size may run one sample per thread */
#define SAMPLES_MIN_PER_THREAD 4 /* ... for batches of at least this many samples per thread */
#define ROWS_SLICE 8 /* samples per claim in models without convolutions (GEMM rows) */

struct eng_model {
	struct eg_graph *g;
	struct eng_io *inputs, *outputs;
	int threads;
	size_t arena_limit;
	int batch_split; /* SPLIT_*: whether samples are independent, and how to split: see split_chunk */
};

struct eng_exec {
	const struct eng_model *m;
	struct tpool *pool;
	struct plan *plans[PLAN_CACHE];
	int n_plans;
	uint64_t tick;
	void *arena;
	size_t arena_size;
	struct eng_tensor *part_in, *part_out; /* one chunk's inputs and outputs (split runs) */
	void **out_buf; /* per graph output: the whole batch's result (split runs), grown once */
	size_t *out_cap;
	struct eng_exec **sub; /* per pool thread but the first: a pool-less exec (sample runs) */
};

/* ---- batch splitting ----
 * A batch whose samples are computed independently may run as consecutive chunks of a few
 * samples: every layer's activations then stay in the caches instead of streaming the whole
 * batch through memory once per layer, and the arena shrinks to one chunk's. Decided per model
 * from a conservative list of per-sample ops; anything else keeps the batch whole. */

/* Whether op type t computes each sample of input 0 on its own (its other inputs constant). */
static bool split_per_sample(const char *t)
{
	static const char *const ops[] = { "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
					   "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid",
					   "Identity", "BatchNormalization", "InstanceNormalization", "Gelu", "Erf",
					   "Exp", "Log", "Sqrt", "Neg", "Abs", "Gemm", "MatMul", "Flatten" };
	for (size_t i = 0; i < ACC_ARRAY_LEN(ops); i++)
		if (!strcmp(t, ops[i]))
			return true;
	return false;
}

enum {
	SPLIT_NO, /* samples not (provably) independent: the batch runs whole */
	SPLIT_CONV, /* independent, with convolutions: chunks, or one sample per thread */
	SPLIT_ROWS, /* independent, no convolutions (GEMMs): slices of ROWS_SLICE per thread */
};

/* SPLIT_NO unless dim 0 of every graph input is a batch of independent samples; then
 * SPLIT_CONV if the graph holds a convolution, else SPLIT_ROWS. */
static int split_ok(const struct eg_graph *g)
{
	/* per value: 1 carries the batch in dim 0, 0 constant, -1 anything else */
	signed char *st = xcalloc(g->n_values + 1, 1);
	bool ok = true, conv = false;
	for (int v = 0; v < g->n_values; v++)
		st[v] = g->values[v].konst ? 0 : -1;
	for (int i = 0; i < g->n_inputs && ok; i++) {
		const struct eg_value *v = &g->values[g->inputs[i]];
		ok = v->ndims >= 1 && !v->plan_data;
		st[g->inputs[i]] = 1;
	}
	for (int ni = 0; ni < g->n_nodes && ok; ni++) {
		const struct eg_node *n = &g->nodes[ni];
		const char *t = n->op_type;
		ok = n->n_out >= 1 && n->out[0] >= 0 && (!n->domain || !*n->domain);
		for (int j = 1; ok && j < n->n_out; j++)
			ok = n->out[j] < 0; /* MaxPool's Indices count across the batch */
		if (!ok)
			break;
		if (split_per_sample(t)) {
			conv |= !strcmp(t, "Conv");
			ok = n->in[0] >= 0 && st[n->in[0]] == 1;
			for (int j = 1; ok && j < n->n_in; j++) /* a Conv's fused residual is batched too */
				ok = n->in[j] < 0 || st[n->in[j]] == 0 || (j == 3 && !strcmp(t, "Conv") && st[n->in[j]] == 1);
			if (ok && !strcmp(t, "Gemm"))
				ok = !eg_attr_int(n, "transA", 0);
			if (ok && !strcmp(t, "MatMul"))
				ok = g->values[n->in[0]].ndims >= 2 && g->values[n->in[1]].ndims == 2;
			if (ok && !strcmp(t, "Flatten"))
				ok = eg_attr_int(n, "axis", 1) >= 1;
		} else if (!strcmp(t, "Add") || !strcmp(t, "Sub") || !strcmp(t, "Mul") || !strcmp(t, "Div") ||
			   !strcmp(t, "Max") || !strcmp(t, "Min")) {
			/* batched operands of one rank; constants that do not broadcast along dim 0 */
			int rank = -1, batched = 0;
			for (int j = 0; ok && j < n->n_in; j++) {
				const struct eg_value *v = &g->values[n->in[j]];
				if (st[n->in[j]] == 1) {
					ok = v->ndims >= 1 && (rank < 0 || v->ndims == rank);
					rank = v->ndims;
					batched++;
				} else {
					ok = st[n->in[j]] == 0;
				}
			}
			for (int j = 0; ok && j < n->n_in; j++) {
				const struct eng_tensor *k = g->values[n->in[j]].konst;
				if (k)
					ok = k->ndims < rank || (k->ndims == rank && k->dims[0] == 1);
			}
			ok = ok && batched > 0;
		} else {
			ok = false;
		}
		if (ok)
			st[n->out[0]] = 1;
	}
	for (int i = 0; i < g->n_outputs && ok; i++)
		ok = st[g->outputs[i]] == 1;
	free(st);
	return !ok ? SPLIT_NO : conv ? SPLIT_CONV : SPLIT_ROWS;
}

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
	m->batch_split = split_ok(g);
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

/* Per-thread set-up on every thread of a new exec's pool, so that a thread's first part in a
 * kernel, whenever it comes, allocates nothing: oneDNN's stream (GEMM buffers are per thread
 * too, but made at a thread's first GEMM of any size). */
static void exec_thread_setup(void *arg, int64_t b, int64_t e)
{
	(void)arg, (void)b, (void)e;
#ifdef HAVE_DNNL
	kdnn_thread_setup();
#endif
}

/* A new exec of m with a pool of threads (1: none). */
static struct eng_exec *exec_alloc(const struct eng_model *m, int threads)
{
	struct eng_exec *x = xcalloc(1, sizeof(*x));
	x->m = m;
	x->pool = tpool_create(threads);
	tpool_each(x->pool, exec_thread_setup, NULL);
	x->part_in = xcalloc(m->g->n_inputs + 1, sizeof(struct eng_tensor));
	x->part_out = xcalloc(m->g->n_outputs + 1, sizeof(struct eng_tensor));
	x->out_buf = xcalloc(m->g->n_outputs + 1, sizeof(void *));
	x->out_cap = xcalloc(m->g->n_outputs + 1, sizeof(size_t));
	return x;
}

int eng_exec_create(const struct eng_model *m, struct eng_exec **out, char **err)
{
	if (!m)
		return acc_err(err, -EINVAL, "no model");
	*out = exec_alloc(m, m->threads);
	return 0;
}

void eng_exec_free(struct eng_exec *x)
{
	if (!x)
		return;
	for (int t = 1; x->sub && t < tpool_size(x->pool); t++)
		eng_exec_free(x->sub[t]);
	free(x->sub);
	for (int i = 0; i < x->n_plans; i++)
		plan_free(x->plans[i]);
	tpool_free(x->pool);
	free(x->arena);
	for (int i = 0; i < x->m->g->n_outputs; i++)
		free(x->out_buf[i]);
	free(x->out_buf);
	free(x->out_cap);
	free(x->part_in);
	free(x->part_out);
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
		void *a = acc_alloc_big(sz);
		if (!a) {
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

/* How to split this batch: K > 0 chunks of K samples (all threads on each chunk), 0 not at
 * all, -K slices of K samples claimed by the threads one at a time (run_samples). With at least
 * SAMPLES_MIN_PER_THREAD samples per thread, models with convolutions run one sample per thread
 * and the others slices of up to ROWS_SLICE; below that, the first run chunks of one sample per
 * thread and the others the batch whole. ACCELD_ENGINE_SPLIT=K forces chunks of K, -K slices of
 * K, 0 no split. */
static int64_t split_chunk(const struct eng_exec *x, const struct eng_tensor *inputs)
{
	const struct eg_graph *g = x->m->g;
	if (x->m->batch_split == SPLIT_NO || g->n_inputs < 1)
		return 0;
	int nt = tpool_size(x->pool);
	int64_t n = inputs[0].dims[0];
	for (int i = 1; i < g->n_inputs; i++)
		if (inputs[i].dims[0] != n)
			return 0;
	bool threads_apart = nt > 1 && nt <= SAMPLES_MAX_THREADS;
	const char *e = getenv("ACCELD_ENGINE_SPLIT");
	if (e && *e) {
		int64_t k = atoll(e);
		if (k < 0)
			return threads_apart && -k < n ? k : 0;
		return k < n ? k : 0;
	}
	if (threads_apart && n >= SAMPLES_MIN_PER_THREAD * nt) {
		if (x->m->batch_split == SPLIT_CONV)
			return -1;
		return n / nt < ROWS_SLICE ? -(n / nt) : -ROWS_SLICE;
	}
	return x->m->batch_split == SPLIT_CONV && nt < n ? nt : 0;
}

/* Grow out_buf[o] to hold total bytes (zeroed once, so runs never fault its pages in). */
static void out_buf_grow(struct eng_exec *x, int o, size_t total)
{
	if (total > x->out_cap[o]) {
		free(x->out_buf[o]);
		x->out_buf[o] = xaligned_alloc(64, total ? total : 64);
		memset(x->out_buf[o], 0, total);
		x->out_cap[o] = total;
	}
}

/* Point part (one exec's part_in) at samples [b0, b0 + c) of inputs (n samples). */
static void part_inputs(const struct eg_graph *g, const struct eng_tensor *inputs, int64_t n, int64_t b0, int64_t c,
			struct eng_tensor *part)
{
	for (int i = 0; i < g->n_inputs; i++) {
		size_t per = inputs[i].bytes / (size_t)n;
		part[i] = inputs[i];
		part[i].dims[0] = c;
		part[i].data = (char *)inputs[i].data + (size_t)b0 * per;
		part[i].bytes = (size_t)c * per;
	}
}

/* ---- one sample (or slice of samples) per thread ----
 * Each thread of the pool runs whole samples through the graph on its own, with an exec of its
 * own (plans, arena; the weights are the model's, shared): no joins between layers and one
 * sample's activations per core, and a thread the host takes away holds back only its own
 * sample. Each extra thread's exec adds an arena of one slice (ResNet-50 +13 MiB peak).
 *
 * Convolutional models, one sample at a time, against chunks of one sample per thread, 2
 * threads (medians of paired runs): batch 32 MobileNetV2 1.10x, ResNet-18 1.13x, ResNet-50
 * 1.04x (5-8 pairs); batch 8 (4 per thread) MobileNetV2 0.96x in a first set, 1.17x and 1.29x
 * in two later ones on a busier host (10-12 pairs), the ResNets 1.03x: the chunks' joins are
 * what a busy host punishes. Below 4 per thread (not measured) chunks stay.
 *
 * Models without convolutions (the MLP) take slices of several samples, so that their GEMMs
 * keep rows. Against the whole batch with both threads on each GEMM: batch 32 in slices of 8
 * 1.11x (the median of five sets of 8-12 pairs, 0.98-1.13), of 4 about the same, of 16 1.01x;
 * batch 8 in slices of 4 1.07x and 1.15x. Each thread streams all the weights from L3 (7 MiB)
 * instead of half, but nothing waits on a join or on one thread packing A. The transformer
 * does not qualify (its Transposes move the batch) and, forced, measured 0.96-1.01x. */
struct samples_job {
	struct eng_exec *x;
	const struct eng_tensor *inputs;
	int64_t n;
	int64_t per, slices; /* samples per slice (the last one may have fewer), slices */
	struct plan **plans, **plans_last; /* per thread, built for per samples / the last slice's */
	atomic_int_fast64_t next; /* the next slice to claim */
	atomic_int rc;
	pthread_mutex_t mu;
	char *err; /* the first failure's message */
};

/* Thread t of the pool: claim slices until none are left. */
static void samples_part(void *arg, int64_t t, int64_t t_end)
{
	(void)t_end;
	struct samples_job *j = arg;
	struct eng_exec *w = t ? j->x->sub[t] : j->x;
	const struct eg_graph *g = w->m->g;
	struct eng_ctx ctx = { .pool = NULL };
	for (;;) {
		int64_t k = atomic_fetch_add(&j->next, 1);
		if (k >= j->slices || atomic_load(&j->rc))
			return;
		int64_t b = k * j->per, c = j->n - b < j->per ? j->n - b : j->per;
		struct plan *p = c == j->per ? j->plans[t] : j->plans_last[t];
		part_inputs(g, j->inputs, j->n, b, c, w->part_in);
		plan_bind(p, w->arena, w->part_in);
		char *err = NULL;
		int rc = plan_run(p, w->arena, &ctx, w->part_out, &err);
		for (int o = 0; !rc && o < g->n_outputs; o++) {
			const struct eng_tensor *r = &w->part_out[o];
			if (r->bytes)
				memcpy((char *)j->x->out_buf[o] + (size_t)b * (r->bytes / (size_t)c), r->data, r->bytes);
		}
		if (rc) {
			pthread_mutex_lock(&j->mu);
			if (!atomic_load(&j->rc)) {
				atomic_store(&j->rc, rc);
				j->err = err;
				err = NULL;
			}
			pthread_mutex_unlock(&j->mu);
			free(err);
			return;
		}
	}
}

/* Run the batch in slices of per samples claimed by the threads (split_chunk -per), gathering
 * the outputs in out_buf. */
static int run_samples(struct eng_exec *x, const struct eng_tensor *inputs, int64_t per, struct eng_tensor *outputs,
		       char **err)
{
	const struct eg_graph *g = x->m->g;
	int nt = tpool_size(x->pool);
	int64_t n = inputs[0].dims[0], slices = (n + per - 1) / per, last = n - (slices - 1) * per;
	if (!x->sub) { /* once per exec: each extra thread's own exec */
		x->sub = xcalloc(nt, sizeof(*x->sub));
		for (int t = 1; t < nt; t++)
			x->sub[t] = exec_alloc(x->m, 1);
	}
	struct plan *plans[SAMPLES_MAX_THREADS], *plans_last[SAMPLES_MAX_THREADS];
	for (int t = 0; t < nt; t++) {
		struct eng_exec *w = t ? x->sub[t] : x;
		part_inputs(g, inputs, n, 0, per, w->part_in);
		int rc = get_plan(w, w->part_in, &plans[t], err);
		plans_last[t] = plans[t];
		if (!rc && last != per) { /* the plan for per, just used, is not the one evicted */
			part_inputs(g, inputs, n, 0, last, w->part_in);
			rc = get_plan(w, w->part_in, &plans_last[t], err);
		}
		if (rc)
			return rc;
	}
	for (int o = 0; o < g->n_outputs; o++) {
		const struct eng_tensor *t = &plans[0]->vals[g->outputs[o]].t;
		if (t->ndims < 1 || t->dims[0] != per)
			return acc_err(err, -EIO, "internal: output '%s' lost its batch dimension", x->m->outputs[o].name);
		size_t each = t->bytes / (size_t)per;
		out_buf_grow(x, o, each * (size_t)n);
		outputs[o] = *t;
		outputs[o].dims[0] = n;
		outputs[o].data = x->out_buf[o];
		outputs[o].bytes = each * (size_t)n;
	}
	struct samples_job j = {
		.x = x, .inputs = inputs, .n = n, .per = per, .slices = slices, .plans = plans, .plans_last = plans_last,
	};
	pthread_mutex_init(&j.mu, NULL);
	tpool_each(x->pool, samples_part, &j);
	pthread_mutex_destroy(&j.mu);
	int rc = atomic_load(&j.rc);
	if (rc) {
		if (err)
			*err = j.err;
		else
			free(j.err);
	}
	return rc;
}

/* Run the batch as chunks of samples (split_chunk), gathering each output in out_buf. */
static int run_split(struct eng_exec *x, const struct eng_tensor *inputs, int64_t chunk, struct eng_tensor *outputs,
		     char **err)
{
	const struct eg_graph *g = x->m->g;
	int64_t n = inputs[0].dims[0];
	struct eng_ctx ctx = { .pool = x->pool };
	for (int64_t b0 = 0; b0 < n; b0 += chunk) {
		int64_t c = n - b0 < chunk ? n - b0 : chunk;
		part_inputs(g, inputs, n, b0, c, x->part_in);
		struct plan *p = NULL;
		int rc = get_plan(x, x->part_in, &p, err);
		if (rc)
			return rc;
		plan_bind(p, x->arena, x->part_in);
		if ((rc = plan_run(p, x->arena, &ctx, x->part_out, err)))
			return rc;
		for (int o = 0; o < g->n_outputs; o++) {
			const struct eng_tensor *t = &x->part_out[o];
			if (t->ndims < 1 || t->dims[0] != c)
				return acc_err(err, -EIO, "internal: output '%s' lost its batch dimension", x->m->outputs[o].name);
			size_t per = t->bytes / (size_t)c, total = per * (size_t)n;
			out_buf_grow(x, o, total); /* once per new largest batch */
			if (t->bytes)
				memcpy((char *)x->out_buf[o] + (size_t)b0 * per, t->data, t->bytes);
			if (b0 == 0) {
				outputs[o] = *t;
				outputs[o].dims[0] = n;
				outputs[o].data = x->out_buf[o];
				outputs[o].bytes = total;
			}
		}
	}
	return 0;
}

int eng_exec_run(struct eng_exec *x, const struct eng_tensor *inputs, struct eng_tensor *outputs, char **err)
{
	if (!x || !outputs)
		return acc_err(err, -EINVAL, "no exec or no outputs");
	int rc = check_inputs(x->m, inputs, err);
	if (rc)
		return rc;
	int64_t chunk = split_chunk(x, inputs);
	if (chunk < 0)
		return run_samples(x, inputs, -chunk, outputs, err);
	if (chunk)
		return run_split(x, inputs, chunk, outputs, err);
	struct plan *p = NULL;
	rc = get_plan(x, inputs, &p, err);
	if (rc)
		return rc;
	plan_bind(p, x->arena, inputs);
	struct eng_ctx ctx = { .pool = x->pool };
	return plan_run(p, x->arena, &ctx, outputs, err);
}
