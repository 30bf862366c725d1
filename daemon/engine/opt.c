/* opt.c - load-time graph rewrites (see opt.h): BatchNorm folding, bias and activation fusion,
 * GELU and LayerNorm pattern fusion, dropping constants nobody reads. */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "opt.h"
#include "util.h"

bool opt_disabled_by_env(void)
{
	const char *e = getenv("ACCELD_ENGINE_NO_OPT");
	return e && *e && strcmp(e, "0");
}

/* ---- small graph queries ---- */

/* Whether value v is one of the graph's outputs. */
static bool is_graph_output(const struct eg_graph *g, int v)
{
	if (g->values[v].is_output)
		return true;
	for (int i = 0; i < g->n_outputs; i++)
		if (g->outputs[i] == v)
			return true;
	return false;
}

/* The one live node reading v (once), or -1 when v has no reader, several, or is a graph output
 * (then the value itself must stay). */
static int only_consumer(const struct eg_graph *g, int v)
{
	if (v < 0 || is_graph_output(g, v))
		return -1;
	int found = -1;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct eg_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == v) {
				if (found >= 0)
					return -1;
				found = i;
			}
	}
	return found;
}

/* The live producer of v if its op type is op (NULL: any), else -1. */
static int producer_is(const struct eg_graph *g, int v, const char *op)
{
	if (v < 0)
		return -1;
	int p = g->values[v].producer;
	if (p < 0 || g->nodes[p].dead || (op && strcmp(g->nodes[p].op_type, op)))
		return -1;
	return p;
}

/* Whether node n is a live op_type node with default domain. */
static bool node_is(const struct eg_node *n, const char *op_type)
{
	return !n->dead && !strcmp(n->op_type, op_type) && (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx"));
}

/* The fp32 constant of value v, or NULL. */
static const struct eng_tensor *konst_f32(const struct eg_graph *g, int v)
{
	if (v < 0 || !g->values[v].konst || g->values[v].konst->dtype != DT_FP32)
		return NULL;
	return g->values[v].konst;
}

/* Whether v is a one-element fp32 constant; its value in *f. */
static bool konst_scalar(const struct eg_graph *g, int v, float *f)
{
	const struct eng_tensor *t = konst_f32(g, v);
	if (!t || shape_numel(t->dims, t->ndims) != 1)
		return false;
	*f = *(const float *)t->data;
	return true;
}

/* The input of binary node n that is not v (n has two inputs, one of them v), or -1. */
static int other_input(const struct eg_node *n, int v)
{
	if (n->n_in != 2 || n->n_out != 1)
		return -1;
	if (n->in[0] == v && n->in[1] != v)
		return n->in[1];
	if (n->in[1] == v && n->in[0] != v)
		return n->in[0];
	return -1;
}

/* Whether word occurs in a space-separated list. */
static bool word_in(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = list; p && *p;) {
		while (*p == ' ')
			p++;
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == len && !strncmp(p, word, len))
			return true;
		p = e ? e : p + l;
	}
	return false;
}

/* Whether node n's op accepts attribute name (internal ones only once the kernels honour them). */
static bool accepts(const struct eg_node *n, const char *name)
{
	return n->op && word_in(n->op->attrs, name);
}

/* ---- editing ---- */

/* The attribute slot called name on n, appended (zeroed) if missing. */
static struct eg_attr *attr_slot(struct eg_node *n, const char *name)
{
	for (int i = 0; i < n->n_attrs; i++)
		if (!strcmp(n->attrs[i].name, name))
			return &n->attrs[i];
	n->attrs = xreallocarray(n->attrs, n->n_attrs + 1, sizeof(*n->attrs));
	struct eg_attr *a = &n->attrs[n->n_attrs++];
	memset(a, 0, sizeof(*a));
	a->name = xstrdup(name);
	return a;
}

/* Set an INT attribute. */
static void set_int(struct eg_node *n, const char *name, int64_t v)
{
	struct eg_attr *a = attr_slot(n, name);
	a->type = EG_ATTR_INT;
	a->i = v;
}

/* Set a FLOAT attribute. */
static void set_float(struct eg_node *n, const char *name, float v)
{
	struct eg_attr *a = attr_slot(n, name);
	a->type = EG_ATTR_FLOAT;
	a->f = v;
}

/* Add a constant value owning t; returns its index (g->values may move). */
static int add_const(struct eg_graph *g, const char *base, const char *suffix, struct eng_tensor *t)
{
	char *name = xasprintf("%s%s", base, suffix);
	int v = eg_value_add(g, name);
	free(name);
	struct eg_value *val = &g->values[v];
	val->dtype = t->dtype;
	val->ndims = t->ndims;
	memcpy(val->dims, t->dims, sizeof(val->dims));
	val->konst = t;
	return v;
}

/* Set node n's inputs to the k values in vs. */
static void set_inputs(struct eg_node *n, int k, const int *vs)
{
	if (k > n->n_in)
		n->in = xreallocarray(n->in, k, sizeof(int));
	memcpy(n->in, vs, k * sizeof(int));
	n->n_in = k;
}

/* Re-run the op's load-time checks on a rewritten node (its attributes or inputs changed). */
static int reprepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	free(n->params); /* nothing beyond one block before the first run */
	n->params = NULL;
	n->params_free = NULL;
	int rc = n->op->prepare(g, n, err);
	if (rc && err && *err) {
		char *m = xasprintf("graph optimiser: %s", *err);
		free(*err);
		*err = m;
	}
	return rc;
}

/* Turn node n into a fresh node of op_type at opset (attributes dropped), reading the k inputs
 * in vs and writing output value out. */
static int become(struct eg_graph *g, struct eg_node *n, const char *op_type, int64_t opset, int k, const int *vs,
		  int out, char **err)
{
	const struct eng_op *op = eng_op_find(op_type, opset);
	if (!op)
		return acc_err(err, -ENOTSUP, "graph optimiser: no %s at opset %lld", op_type, (long long)opset);
	free(n->op_type);
	n->op_type = xstrdup(op_type);
	free(n->domain);
	n->domain = xstrdup("");
	for (int i = 0; i < n->n_attrs; i++) {
		struct eg_attr *a = &n->attrs[i];
		free(a->name);
		free(a->s);
		free(a->floats);
		free(a->ints);
		for (size_t j = 0; a->strings && j < a->n; j++)
			free(a->strings[j]);
		free(a->strings);
		eg_tensor_free(a->t);
	}
	free(n->attrs);
	n->attrs = NULL;
	n->n_attrs = 0;
	n->opset = opset;
	n->op = op;
	set_inputs(n, k, vs);
	n->out[0] = out;
	for (int j = 1; j < n->n_out; j++)
		n->out[j] = -1;
	n->n_out = 1;
	g->values[out].producer = (int)(n - g->nodes);
	return 0;
}

/* Node p takes over node n's output 0 (n is then dead). */
static void take_output(struct eg_graph *g, struct eg_node *p, struct eg_node *n)
{
	p->out[0] = n->out[0];
	g->values[p->out[0]].producer = (int)(p - g->nodes);
	n->dead = true;
}

/* Node p absorbs node n (an Add of one extra operand): p reads the k inputs in ins, gets
 * internal flag attribute flag = 1 and n's output, and is checked again. 1, or a -errno. */
static int absorb(struct eg_graph *g, struct eg_node *p, struct eg_node *n, int k, const int *ins, const char *flag,
		  char **err)
{
	set_inputs(p, k, ins);
	set_int(p, flag, 1);
	take_output(g, p, n);
	int rc = reprepare(g, p, err);
	return rc ? rc : 1;
}

/* ---- Conv + BatchNormalization ---- */

/* Fold BatchNormalization node bi into the Conv producing its input, if legal. 1 if done. */
static int fold_bn(struct eg_graph *g, int bi, char **err)
{
	struct eg_node *bn = &g->nodes[bi];
	if (!node_is(bn, "BatchNormalization") || bn->n_in != 5 || eg_attr_int(bn, "training_mode", 0))
		return 0;
	for (int j = 1; j < bn->n_out; j++)
		if (bn->out[j] >= 0)
			return 0;
	int v = bn->in[0], ci = producer_is(g, v, "Conv");
	if (ci < 0 || only_consumer(g, v) != bi)
		return 0;
	struct eg_node *conv = &g->nodes[ci];
	if (eg_attr_find(conv, "_act") || conv->n_out != 1)
		return 0;
	const struct eng_tensor *W = konst_f32(g, conv->in[1]);
	const struct eng_tensor *B = conv->n_in > 2 && conv->in[2] >= 0 ? konst_f32(g, conv->in[2]) : NULL;
	if (!W || W->ndims < 3 || (conv->n_in > 2 && conv->in[2] >= 0 && !B))
		return 0;
	int64_t C = W->dims[0];
	if (C < 1 || (B && shape_numel(B->dims, B->ndims) != C))
		return 0;
	const struct eng_tensor *p[4];
	for (int k = 0; k < 4; k++) {
		p[k] = konst_f32(g, bn->in[1 + k]);
		if (!p[k] || p[k]->ndims != 1 || p[k]->dims[0] != C)
			return 0;
	}
	const float *scale = p[0]->data, *beta = p[1]->data, *mean = p[2]->data, *var = p[3]->data;
	double eps = eg_attr_float(bn, "epsilon", 1e-5f);
	int64_t per = shape_numel(W->dims, W->ndims) / C;
	struct eng_tensor *W2 = eg_tensor_new(DT_FP32, W->ndims, W->dims);
	struct eng_tensor *B2 = eg_tensor_new(DT_FP32, 1, &C);
	const float *w = W->data, *b = B ? B->data : NULL;
	float *w2 = W2->data, *b2 = B2->data;
	for (int64_t c = 0; c < C; c++) {
		double s = scale[c] / sqrt((double)var[c] + eps);
		for (int64_t i = 0; i < per; i++)
			w2[c * per + i] = (float)(w[c * per + i] * s);
		b2[c] = (float)(((b ? b[c] : 0.0) - mean[c]) * s + beta[c]);
	}
	char *base = xstrdup(g->values[conv->in[1]].name);
	int wv = add_const(g, base, "/bn_folded", W2);
	int bv = add_const(g, base, "/bn_folded_bias", B2);
	free(base);
	conv = &g->nodes[ci];
	bn = &g->nodes[bi];
	int ins[3] = { conv->in[0], wv, bv };
	set_inputs(conv, 3, ins);
	take_output(g, conv, bn);
	int rc = reprepare(g, conv, err);
	return rc ? rc : 1;
}

/* ---- MatMul + Add(bias) ---- */

/* Fuse an Add of a constant [N] bias into the MatMul producing its other operand. 1 if done. */
static int fuse_bias(struct eg_graph *g, int ai, char **err)
{
	struct eg_node *add = &g->nodes[ai];
	if (!node_is(add, "Add") || add->n_in != 2 || add->n_out != 1)
		return 0;
	for (int side = 0; side < 2; side++) {
		int v = add->in[side], bv = add->in[1 - side];
		int mi = producer_is(g, v, "MatMul");
		if (mi < 0 || only_consumer(g, v) != ai)
			continue;
		struct eg_node *mm = &g->nodes[mi];
		if (mm->n_in != 2 || mm->n_out != 1 || !accepts(mm, "_bias") || eg_attr_find(mm, "_act"))
			continue;
		/* The bias must be exactly one row of the product: [N] with N the weight's last dim,
		 * and the weight at least 2-D so the product keeps that last dim. */
		const struct eng_tensor *Wt = konst_f32(g, mm->in[1]), *Bt = konst_f32(g, bv);
		if (!Wt || !Bt || Wt->ndims < 2 || Bt->ndims != 1 || Bt->dims[0] != Wt->dims[Wt->ndims - 1])
			continue;
		if (g->values[add->out[0]].dtype != DT_FP32)
			continue;
		int ins[3] = { mm->in[0], mm->in[1], bv };
		return absorb(g, mm, add, 3, ins, "_bias", err);
	}
	return 0;
}

/* ---- MatMul read only by Slices of its last axis (the attention's QKV split) ---- */

/* The one-element integer value v when it is known at load time: a constant, or integer
 * arithmetic, Cast, Unsqueeze or Squeeze over such values and over Gather(Shape(mv), last axis)
 * where value mv's last dim is dim (rank r, or -1 if unknown; exporters compute the Q / K / V bounds from the QKV
 * projection's shape). */
static bool eval_int(const struct eg_graph *g, int v, int mv, int r, int64_t dim, int depth, int64_t *out)
{
	if (v < 0 || depth > 12)
		return false;
	const struct eng_tensor *k = g->values[v].konst;
	if (k)
		return (k->dtype == DT_INT64 || k->dtype == DT_INT32) && shape_numel(k->dims, k->ndims) == 1 &&
		       (*out = eng_get_int(k, 0), true);
	int p = producer_is(g, v, NULL);
	if (p < 0)
		return false;
	const struct eg_node *n = &g->nodes[p];
	if (n->n_out != 1 || (n->domain && *n->domain && strcmp(n->domain, "ai.onnx")))
		return false;
	const char *t = n->op_type;
	int64_t a, b;
	if (!strcmp(t, "Cast") || !strcmp(t, "Unsqueeze") || !strcmp(t, "Squeeze") || !strcmp(t, "Identity")) {
		enum dtype dt = g->values[v].dtype;
		return n->n_in >= 1 && (dt == DT_INT64 || dt == DT_INT32) && eval_int(g, n->in[0], mv, r, dim, depth + 1, out);
	}
	if (!strcmp(t, "Add") || !strcmp(t, "Sub") || !strcmp(t, "Mul") || !strcmp(t, "Div")) {
		if (n->n_in != 2 || !eval_int(g, n->in[0], mv, r, dim, depth + 1, &a) ||
		    !eval_int(g, n->in[1], mv, r, dim, depth + 1, &b))
			return false;
		if (t[0] == 'D' && (b <= 0 || a < 0))
			return false;
		*out = t[0] == 'A' ? a + b : t[0] == 'S' ? a - b : t[0] == 'M' ? a * b : a / b;
		return true;
	}
	if (!strcmp(t, "Gather") && n->n_in == 2 && eg_attr_int(n, "axis", 0) == 0) {
		int sp = producer_is(g, n->in[0], "Shape");
		if (sp < 0 || g->nodes[sp].in[0] != mv || eg_attr_find(&g->nodes[sp], "start") ||
		    eg_attr_find(&g->nodes[sp], "end") || !eval_int(g, n->in[1], mv, r, dim, depth + 1, &a))
			return false;
		if (a != -1 && (r < 1 || a != r - 1))
			return false;
		*out = dim;
		return true;
	}
	return false;
}

/* Mark value v's producer dead when nothing live reads its outputs any more, then its inputs'
 * producers the same way (what a rewrite left behind: shape arithmetic, a replaced node). */
static void prune_unused(struct eg_graph *g, int v, int depth)
{
	int p = producer_is(g, v, NULL);
	if (p < 0 || depth > 32)
		return;
	struct eg_node *n = &g->nodes[p];
	for (int j = 0; j < n->n_out; j++) {
		int o = n->out[j];
		if (o < 0)
			continue;
		if (is_graph_output(g, o))
			return;
		for (int i = 0; i < g->n_nodes; i++)
			for (int q = 0; !g->nodes[i].dead && q < g->nodes[i].n_in; q++)
				if (g->nodes[i].in[q] == o)
					return;
	}
	n->dead = true;
	for (int j = 0; j < n->n_in; j++)
		prune_unused(g, n->in[j], depth + 1);
}

/* The [start, end) a Slice node takes of the last axis (rank r, length dim) of value mv, its
 * input, with starts / ends / axes / steps known at load time (one axis, step 1); false if it
 * is anything else. */
static bool slice_last_axis(const struct eg_graph *g, const struct eg_node *n, int mv, int r, int64_t dim,
			    int64_t *a, int64_t *b)
{
	if (!node_is(n, "Slice") || n->opset < 10 || n->n_in < 4 || n->n_in > 5 || n->n_out != 1 || n->in[0] != mv)
		return false;
	int64_t s, e, ax, step = 1;
	if (!eval_int(g, n->in[1], mv, r, dim, 0, &s) || !eval_int(g, n->in[2], mv, r, dim, 0, &e) ||
	    !eval_int(g, n->in[3], mv, r, dim, 0, &ax))
		return false; /* the axis must be given: it must be the last one */
	if (n->n_in > 4 && n->in[4] >= 0 && !eval_int(g, n->in[4], mv, r, dim, 0, &step))
		return false;
	if ((ax != -1 && (r < 1 || ax != r - 1)) || step != 1)
		return false;
	s = s < 0 ? (s < -dim ? 0 : s + dim) : (s > dim ? dim : s);
	e = e < 0 ? (e < -dim ? 0 : e + dim) : (e > dim ? dim : e);
	if (e <= s)
		return false;
	*a = s;
	*b = e;
	return true;
}

/* A MatMul with constant 2-D weights (and bias) whose output is read only by Slices of its last
 * axis becomes one MatMul per Slice on those weights' columns: the products land where the
 * Slices' outputs go and nothing is copied (the attention's Q / K / V split of one QKV
 * projection). 1 if done. */
static int split_sliced_matmul(struct eg_graph *g, int mi, char **err)
{
	struct eg_node *mm = &g->nodes[mi];
	if (!node_is(mm, "MatMul") || mm->n_out != 1 || eg_attr_find(mm, "_act"))
		return 0;
	bool bias = mm->n_in == 3 && eg_attr_int(mm, "_bias", 0);
	if (mm->n_in != (bias ? 3 : 2))
		return 0;
	const struct eng_tensor *W = konst_f32(g, mm->in[1]), *B = bias ? konst_f32(g, mm->in[2]) : NULL;
	int v = mm->out[0];
	if (!W || W->ndims != 2 || (bias && (!B || B->ndims != 1 || B->dims[0] != W->dims[1])) ||
	    is_graph_output(g, v) || g->values[v].dtype != DT_FP32)
		return 0;
	int64_t K = W->dims[0], N = W->dims[1];
	/* The product's rank is X's (when known; else only axis -1 names the last one). */
	int r = g->values[mm->in[0]].ndims;
	enum { MAXS = 8, MAXIN = 5 };
	int sl[MAXS], old[MAXS][MAXIN], ns = 0;
	int64_t lo[MAXS], hi[MAXS], cols = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct eg_node *n = &g->nodes[i];
		if (n->dead || i == mi)
			continue;
		for (int j = 0; j < n->n_in; j++) {
			if (n->in[j] != v || node_is(n, "Shape"))
				continue;
			if (j != 0 || ns == MAXS || !slice_last_axis(g, n, v, r, N, &lo[ns], &hi[ns]))
				return 0;
			for (int q = 0; q < MAXIN; q++)
				old[ns][q] = q < n->n_in ? n->in[q] : -1;
			cols += hi[ns] - lo[ns];
			sl[ns++] = i;
		}
	}
	if (ns < 2 || cols > N)
		return 0; /* one Slice is left as it is; overlapping ones would repeat work */
	int x = mm->in[0];
	int64_t opset = mm->opset;
	char *base = xstrdup(g->values[mm->in[1]].name);
	for (int s = 0; s < ns; s++) {
		int64_t w = hi[s] - lo[s], wd[2] = { K, w };
		struct eng_tensor *Ws = eg_tensor_new(DT_FP32, 2, wd), *Bs = bias ? eg_tensor_new(DT_FP32, 1, &w) : NULL;
		W = konst_f32(g, g->nodes[mi].in[1]);
		B = bias ? konst_f32(g, g->nodes[mi].in[2]) : NULL;
		for (int64_t k = 0; k < K; k++)
			memcpy((float *)Ws->data + k * w, (const float *)W->data + k * N + lo[s], w * sizeof(float));
		if (Bs)
			memcpy(Bs->data, (const float *)B->data + lo[s], w * sizeof(float));
		char *suf = xasprintf("/cols_%lld_%lld", (long long)lo[s], (long long)hi[s]);
		int wv = add_const(g, base, suf, Ws);
		int bv = Bs ? add_const(g, base, "_bias", Bs) : -1;
		free(suf);
		struct eg_node *n = &g->nodes[sl[s]];
		int ins[3] = { x, wv, bv };
		int rc = become(g, n, "MatMul", opset, bias ? 3 : 2, ins, n->out[0], err);
		if (!rc && bias)
			set_int(n, "_bias", 1);
		if (!rc)
			rc = reprepare(g, n, err);
		if (rc) {
			free(base);
			return rc;
		}
	}
	free(base);
	/* The bounds' shape arithmetic and then the product itself are read by nothing now. */
	for (int s = 0; s < ns; s++)
		for (int q = 1; q < MAXIN; q++)
			prune_unused(g, old[s][q], 0);
	prune_unused(g, v, 0);
	return 1;
}

/* ---- MatMul on the attention's head transposes ---- */

/* Whether live node n is a rank-3 Transpose with perm p0 p1 p2. */
static bool transpose3(const struct eg_node *n, int p0, int p1, int p2)
{
	size_t k;
	const int64_t *p = node_is(n, "Transpose") && n->n_in == 1 && n->n_out == 1 ? eg_attr_ints(n, "perm", &k) : NULL;
	return p && k == 3 && p[0] == p0 && p[1] == p1 && p[2] == p2;
}

/* Whether value v is 3-D for certain: a 3-D Transpose's output, a MatMul's on transposed
 * operands, or a Softmax / scalar Div or Mul of such a value. */
static bool rank3(const struct eg_graph *g, int v, int depth)
{
	if (v < 0 || depth > 8)
		return false;
	if (g->values[v].ndims == 3)
		return true;
	int p = producer_is(g, v, NULL);
	if (p < 0)
		return false;
	const struct eg_node *n = &g->nodes[p];
	size_t k;
	if (node_is(n, "Transpose"))
		return eg_attr_ints(n, "perm", &k) && k == 3;
	if (node_is(n, "MatMul"))
		return eg_attr_find(n, "_perm_a") || eg_attr_find(n, "_perm_b") || eg_attr_find(n, "_perm_c");
	float f;
	if ((node_is(n, "Div") || node_is(n, "Mul")) && n->n_in == 2 && konst_scalar(g, n->in[1], &f))
		return rank3(g, n->in[0], depth + 1);
	if (node_is(n, "Softmax"))
		return rank3(g, n->in[0], depth + 1);
	return false;
}

/* Fold the head transposes around a batched MatMul (scores = Q K^T, context = P V) into its
 * operands' strides (`_perm_a`, `_perm_b`, `_perm_c`), and a scalar Div / Mul of A (the 1/sqrt(d)
 * scale) into `_alpha`: Q, K and V are read where the projections wrote them and the context
 * is written where the output projection reads it. 1 if done. */
static int fold_head_transposes(struct eg_graph *g, int mi, char **err)
{
	struct eg_node *mm = &g->nodes[mi];
	if (!node_is(mm, "MatMul") || mm->n_in != 2 || mm->n_out != 1 || !accepts(mm, "_perm_a") ||
	    eg_attr_find(mm, "_act") || eg_attr_find(mm, "_bias") || eg_attr_find(mm, "_perm_a") ||
	    eg_attr_find(mm, "_perm_b") || eg_attr_find(mm, "_perm_c") || g->values[mm->out[0]].dtype != DT_FP32)
		return 0;
	/* A: [Div|Mul by a scalar](Transpose(x, 1 0 2)). */
	int a = mm->in[0], sc = -1, ta = -1;
	float alpha = 1.0f, f;
	int p = producer_is(g, a, NULL);
	if (p >= 0 && (node_is(&g->nodes[p], "Div") || node_is(&g->nodes[p], "Mul")) && g->nodes[p].n_in == 2 &&
	    konst_scalar(g, g->nodes[p].in[1], &f) && f != 0 && isfinite(f) && only_consumer(g, a) == mi) {
		sc = p;
		alpha = node_is(&g->nodes[p], "Div") ? 1.0f / f : f;
		a = g->nodes[p].in[0];
		p = producer_is(g, a, NULL);
	}
	if (p >= 0 && transpose3(&g->nodes[p], 1, 0, 2) && only_consumer(g, a) == (sc >= 0 ? sc : mi))
		ta = p;
	else
		sc = -1, alpha = 1.0f, a = mm->in[0];
	/* B: Transpose(y, 1 0 2) or Transpose(y, 1 2 0). */
	int b = mm->in[1], tb = -1, pb = 0;
	p = producer_is(g, b, NULL);
	if (p >= 0 && only_consumer(g, b) == mi) {
		if (transpose3(&g->nodes[p], 1, 0, 2))
			tb = p, pb = 1;
		else if (transpose3(&g->nodes[p], 1, 2, 0))
			tb = p, pb = 2;
	}
	/* C: read only by Transpose(., 1 0 2). */
	int c = only_consumer(g, mm->out[0]), tc = c >= 0 && transpose3(&g->nodes[c], 1, 0, 2) ? c : -1;
	if (ta < 0 && tb < 0)
		return 0;
	/* The operands left as they are must be 3-D too (the batch is one dim T). */
	if ((ta < 0 && !rank3(g, mm->in[0], 0)) || (tb < 0 && !rank3(g, mm->in[1], 0)))
		return 0;
	int ins[2] = { ta >= 0 ? g->nodes[ta].in[0] : mm->in[0], tb >= 0 ? g->nodes[tb].in[0] : mm->in[1] };
	set_inputs(mm, 2, ins);
	if (ta >= 0) {
		set_int(mm, "_perm_a", 1);
		g->nodes[ta].dead = true;
	}
	if (sc >= 0) {
		set_float(mm, "_alpha", alpha);
		g->nodes[sc].dead = true;
	}
	if (tb >= 0) {
		set_int(mm, "_perm_b", pb);
		g->nodes[tb].dead = true;
	}
	if (tc >= 0) {
		set_int(mm, "_perm_c", 1);
		take_output(g, mm, &g->nodes[tc]);
	}
	int rc = reprepare(g, mm, err);
	return rc ? rc : 1;
}

/* ---- Conv + residual Add ---- */

/* Fold Add node ai into the Conv producing one of its inputs, the other becoming the Conv's
 * residual input (y = conv + b + r). 1 if done. */
static int fuse_sum(struct eg_graph *g, int ai, char **err)
{
	struct eg_node *add = &g->nodes[ai];
	if (!node_is(add, "Add") || add->n_in != 2 || add->n_out != 1 || g->values[add->out[0]].dtype != DT_FP32)
		return 0;
	for (int side = 0; side < 2; side++) {
		int v = add->in[side], r = add->in[1 - side];
		int ci = producer_is(g, v, "Conv");
		if (ci < 0 || r < 0 || r == v || only_consumer(g, v) != ai || g->values[r].konst ||
		    g->values[r].dtype != DT_FP32)
			continue;
		/* Nodes run in index order: r must be ready when the Conv runs. */
		if (g->values[r].producer > ci)
			continue;
		struct eg_node *conv = &g->nodes[ci];
		if (conv->n_in > 3 || conv->n_out != 1 || eg_attr_find(conv, "_act") || eg_attr_find(conv, "_sum") ||
		    !accepts(conv, "_sum") || eg_attr_int(conv, "group", 1) != 1)
			continue;
		int ins[4] = { conv->in[0], conv->in[1], conv->n_in > 2 ? conv->in[2] : -1, r };
		return absorb(g, conv, add, 4, ins, "_sum", err);
	}
	return 0;
}

/* ---- residual Add + LayerNormalization ---- */

/* Fold the Add node producing LayerNormalization li's input into it, when nothing else reads
 * the sum: LN(x + r) with r as a fourth input and _skip=1 (the post-norm transformer's
 * residual connections), one pass over the rows instead of two. 1 if done. */
static int fuse_skip_ln(struct eg_graph *g, int li, char **err)
{
	struct eg_node *ln = &g->nodes[li];
	if (!node_is(ln, "LayerNormalization") || ln->n_in < 2 || ln->n_in > 3 || ln->n_out != 1 ||
	    eg_attr_find(ln, "_skip") || !accepts(ln, "_skip"))
		return 0;
	int v = ln->in[0], ai = producer_is(g, v, "Add");
	if (ai < 0 || only_consumer(g, v) != li)
		return 0;
	struct eg_node *add = &g->nodes[ai];
	if (add->n_in != 2 || add->n_out != 1 || eg_attr_find(add, "_act") || add->in[0] < 0 || add->in[1] < 0 ||
	    g->values[add->in[0]].dtype != DT_FP32 || g->values[add->in[1]].dtype != DT_FP32)
		return 0;
	int ins[4] = { add->in[0], ln->in[1], ln->n_in > 2 ? ln->in[2] : -1, add->in[1] };
	set_inputs(ln, 4, ins);
	set_int(ln, "_skip", 1);
	add->dead = true;
	int rc = reprepare(g, ln, err);
	return rc ? rc : 1;
}

/* ---- GELU ---- */

/* Whether f is within a few ulps of want. */
static bool near(float f, double want)
{
	return fabs(f - want) <= 4 * FLT_EPSILON * fabs(want);
}

/* Replace x*0.5*(1+erf(x/sqrt(2))) around Erf node ei with one Gelu node. 1 if done. */
static int fuse_gelu(struct eg_graph *g, int ei, char **err)
{
	struct eg_node *erf = &g->nodes[ei];
	if (!node_is(erf, "Erf") || erf->n_in != 1 || erf->n_out != 1)
		return 0;
	float c;
	/* q = x / sqrt(2) or x * (1/sqrt(2)) */
	int q = erf->in[0], di = producer_is(g, q, NULL);
	if (di < 0 || only_consumer(g, q) != ei)
		return 0;
	struct eg_node *div = &g->nodes[di];
	int x;
	if (node_is(div, "Div") && div->n_in == 2 && konst_scalar(g, div->in[1], &c) && near(c, M_SQRT2))
		x = div->in[0];
	else if (node_is(div, "Mul") && div->n_in == 2 && konst_scalar(g, div->in[1], &c) && near(c, M_SQRT1_2))
		x = div->in[0];
	else if (node_is(div, "Mul") && div->n_in == 2 && konst_scalar(g, div->in[0], &c) && near(c, M_SQRT1_2))
		x = div->in[1];
	else
		return 0;
	if (x < 0 || g->values[x].dtype != DT_FP32 || g->values[x].konst)
		return 0;
	/* a = erf + 1 */
	int e = erf->out[0], ai = only_consumer(g, e);
	if (ai < 0 || !node_is(&g->nodes[ai], "Add"))
		return 0;
	int one = other_input(&g->nodes[ai], e);
	if (!konst_scalar(g, one, &c) || c != 1.0f)
		return 0;
	int a = g->nodes[ai].out[0];
	/* Either (x * a) * 0.5 or (x * 0.5) * a, each Mul in either operand order. */
	int m1 = only_consumer(g, a);
	if (m1 < 0 || !node_is(&g->nodes[m1], "Mul"))
		return 0;
	int o = other_input(&g->nodes[m1], a);
	int last, dead_extra = -1;
	if (o == x) {
		int m2 = only_consumer(g, g->nodes[m1].out[0]);
		if (m2 < 0 || !node_is(&g->nodes[m2], "Mul"))
			return 0;
		int h = other_input(&g->nodes[m2], g->nodes[m1].out[0]);
		if (!konst_scalar(g, h, &c) || c != 0.5f)
			return 0;
		dead_extra = m1;
		last = m2;
	} else {
		int hi = producer_is(g, o, "Mul");
		if (hi < 0 || only_consumer(g, o) != m1)
			return 0;
		int h = other_input(&g->nodes[hi], x);
		if (!konst_scalar(g, h, &c) || c != 0.5f)
			return 0;
		dead_extra = hi;
		last = m1;
	}
	if (!eng_op_find("Gelu", 20))
		return 0;
	struct eg_node *n = &g->nodes[last];
	int rc = become(g, n, "Gelu", 20, 1, &x, n->out[0], err);
	if (rc)
		return rc;
	g->nodes[di].dead = g->nodes[ei].dead = g->nodes[ai].dead = g->nodes[dead_extra].dead = true;
	rc = reprepare(g, &g->nodes[last], err);
	return rc ? rc : 1;
}

/* ---- LayerNorm ---- */

/* Whether ReduceMean node n averages over the last axis only, keeping dims. */
static bool mean_last_axis(const struct eg_graph *g, const struct eg_node *n)
{
	if (!node_is(n, "ReduceMean") || n->n_out != 1 || eg_attr_int(n, "keepdims", 1) != 1)
		return false;
	size_t cnt;
	const int64_t *axes = eg_attr_ints(n, "axes", &cnt);
	if (n->n_in > 1 && n->in[1] >= 0) {
		const struct eg_value *av = &g->values[n->in[1]];
		if (!av->konst || av->konst->dtype != DT_INT64 || shape_numel(av->konst->dims, av->konst->ndims) != 1)
			return false;
		return ((const int64_t *)av->konst->data)[0] == -1;
	}
	return axes && cnt == 1 && axes[0] == -1;
}

/* Replace the LayerNorm subgraph starting at ReduceMean node ri with LayerNormalization. 1 if done. */
static int fuse_layernorm(struct eg_graph *g, int ri, char **err)
{
	struct eg_node *r1 = &g->nodes[ri];
	if (!mean_last_axis(g, r1))
		return 0;
	int x = r1->in[0], mean = r1->out[0];
	if (x < 0 || g->values[x].dtype != DT_FP32 || g->values[x].konst)
		return 0;
	/* d = x - mean, read by Pow(d, 2) and Div(d, ...) only */
	int si = only_consumer(g, mean);
	if (si < 0 || !node_is(&g->nodes[si], "Sub") || g->nodes[si].n_in != 2 || g->nodes[si].in[0] != x ||
	    g->nodes[si].in[1] != mean)
		return 0;
	int d = g->nodes[si].out[0];
	if (is_graph_output(g, d))
		return 0;
	int pi = -1, dvi = -1, uses = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct eg_node *n = &g->nodes[i];
		for (int j = 0; !n->dead && j < n->n_in; j++)
			if (n->in[j] == d) {
				uses++;
				if (j == 0 && node_is(n, "Pow"))
					pi = i;
				else if (j == 0 && node_is(n, "Div"))
					dvi = i;
			}
	}
	float c;
	if (uses != 2 || pi < 0 || dvi < 0 || g->nodes[pi].n_in != 2 || !konst_scalar(g, g->nodes[pi].in[1], &c) ||
	    c != 2.0f)
		return 0;
	/* var = mean(d^2); s = sqrt(var + eps); y = d / s */
	int r2 = only_consumer(g, g->nodes[pi].out[0]);
	if (r2 < 0 || !mean_last_axis(g, &g->nodes[r2]))
		return 0;
	int ei = only_consumer(g, g->nodes[r2].out[0]);
	if (ei < 0 || !node_is(&g->nodes[ei], "Add"))
		return 0;
	float eps;
	if (!konst_scalar(g, other_input(&g->nodes[ei], g->nodes[r2].out[0]), &eps) || !(eps >= 0))
		return 0;
	int qi = only_consumer(g, g->nodes[ei].out[0]);
	if (qi < 0 || !node_is(&g->nodes[qi], "Sqrt") || only_consumer(g, g->nodes[qi].out[0]) != dvi ||
	    g->nodes[dvi].in[1] != g->nodes[qi].out[0])
		return 0;
	/* y * w + b with w, b constant [K] */
	int y = g->nodes[dvi].out[0], mi = only_consumer(g, y);
	if (mi < 0 || !node_is(&g->nodes[mi], "Mul"))
		return 0;
	int wv = other_input(&g->nodes[mi], y);
	int bi = only_consumer(g, g->nodes[mi].out[0]);
	if (bi < 0 || !node_is(&g->nodes[bi], "Add"))
		return 0;
	int bv = other_input(&g->nodes[bi], g->nodes[mi].out[0]);
	const struct eng_tensor *W = konst_f32(g, wv), *B = konst_f32(g, bv);
	if (!W || !B || W->ndims != 1 || B->ndims != 1 || W->dims[0] != B->dims[0] || W->dims[0] < 2)
		return 0;
	if (g->values[g->nodes[bi].out[0]].dtype != DT_FP32 || !eng_op_find("LayerNormalization", 17))
		return 0;
	int ins[3] = { x, wv, bv };
	struct eg_node *n = &g->nodes[bi];
	int rc = become(g, n, "LayerNormalization", 17, 3, ins, n->out[0], err);
	if (rc)
		return rc;
	set_int(n, "axis", -1);
	set_float(n, "epsilon", eps);
	int dead[] = { ri, si, pi, r2, ei, qi, dvi, mi };
	for (size_t k = 0; k < ACC_ARRAY_LEN(dead); k++)
		g->nodes[dead[k]].dead = true;
	rc = reprepare(g, n, err);
	return rc ? rc : 1;
}

/* ---- activations ---- */

bool opt_act_fusable(int act)
{
	/* The epilogue computes Sigmoid, Tanh and GELU with scalar libm calls, which is slower than
	 * the vectorised standalone ops: GELU fused into the transformer's FFN MatMul made that
	 * MatMul 2.4x slower (11.2 ms vs 4.6 ms for the same FLOPs at batch 8) and the whole model
	 * 1.3x slower. Fuse the cheap ones only, unless told otherwise. */
	if (act == OPT_ACT_SIGMOID || act == OPT_ACT_TANH || act == OPT_ACT_GELU) {
		const char *e = getenv("ACCELD_ENGINE_FUSE_ALL_ACTS");
		return e && *e && strcmp(e, "0");
	}
	return act > OPT_ACT_NONE && act <= OPT_ACT_TANH;
}

/* Fold activation node ai into the Conv/Gemm/MatMul producing its input. 1 if done. */
static int fuse_act(struct eg_graph *g, int ai, char **err)
{
	struct eg_node *a = &g->nodes[ai];
	if (a->dead || a->n_in < 1 || a->n_out != 1 || a->in[0] < 0 || (a->domain && *a->domain))
		return 0;
	int act = OPT_ACT_NONE;
	float lo = -INFINITY, hi = INFINITY, alpha = 0;
	const char *t = a->op_type;
	if (!strcmp(t, "Relu")) {
		act = OPT_ACT_RELU;
	} else if (!strcmp(t, "Sigmoid")) {
		act = OPT_ACT_SIGMOID;
	} else if (!strcmp(t, "Tanh")) {
		act = OPT_ACT_TANH;
	} else if (!strcmp(t, "HardSwish")) {
		act = OPT_ACT_HARDSWISH;
	} else if (!strcmp(t, "LeakyRelu")) {
		act = OPT_ACT_LEAKYRELU;
		alpha = eg_attr_float(a, "alpha", 0.01f);
	} else if (!strcmp(t, "Gelu")) {
		if (strcmp(eg_attr_str(a, "approximate", "none"), "none"))
			return 0;
		act = OPT_ACT_GELU;
	} else if (!strcmp(t, "Clip")) {
		act = OPT_ACT_CLIP;
		if (a->opset < 11) {
			lo = eg_attr_float(a, "min", -FLT_MAX);
			hi = eg_attr_float(a, "max", FLT_MAX);
		} else {
			if (a->n_in > 1 && a->in[1] >= 0 && !konst_scalar(g, a->in[1], &lo))
				return 0;
			if (a->n_in > 2 && a->in[2] >= 0 && !konst_scalar(g, a->in[2], &hi))
				return 0;
		}
		if (isnan(lo) || isnan(hi))
			return 0;
	} else {
		return 0;
	}
	if (!opt_act_fusable(act))
		return 0;
	int v = a->in[0];
	int pi = producer_is(g, v, NULL);
	if (pi < 0 || only_consumer(g, v) != ai)
		return 0;
	/* Conv, Gemm and MatMul by the contract; any other op whose table entry lists _act too. */
	struct eg_node *p = &g->nodes[pi];
	if (p->dead || (p->domain && *p->domain))
		return 0;
	if (p->n_out != 1 || eg_attr_find(p, "_act") || !accepts(p, "_act") ||
	    g->values[v].dtype != DT_FP32 || g->values[a->out[0]].dtype != DT_FP32)
		return 0;
	if (act == OPT_ACT_CLIP && !(accepts(p, "_act_min") && accepts(p, "_act_max")))
		return 0;
	if (act == OPT_ACT_LEAKYRELU && !accepts(p, "_act_alpha"))
		return 0;
	set_int(p, "_act", act);
	if (act == OPT_ACT_CLIP) {
		set_float(p, "_act_min", lo);
		set_float(p, "_act_max", hi);
	}
	if (act == OPT_ACT_LEAKYRELU)
		set_float(p, "_act_alpha", alpha);
	take_output(g, p, a);
	int rc = reprepare(g, p, err);
	return rc ? rc : 1;
}

/* ---- clean-up ---- */

/* Drop dead nodes, recompute producers, and free constants no node or output reads. */
static void compact(struct eg_graph *g)
{
	int kept = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].dead) {
			eg_node_clear(&g->nodes[i]);
			continue;
		}
		g->nodes[kept++] = g->nodes[i];
	}
	g->n_nodes = kept;
	bool *used = xcalloc(g->n_values + 1, sizeof(bool));
	for (int v = 0; v < g->n_values; v++)
		g->values[v].producer = -1;
	for (int i = 0; i < kept; i++) {
		const struct eg_node *n = &g->nodes[i];
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0)
				g->values[n->out[j]].producer = i;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0)
				used[n->in[j]] = true;
	}
	for (int i = 0; i < g->n_outputs; i++)
		used[g->outputs[i]] = true;
	for (int v = 0; v < g->n_values; v++)
		if (!used[v] && g->values[v].konst && !g->values[v].is_input) {
			eg_tensor_free(g->values[v].konst);
			g->values[v].konst = NULL;
		}
	free(used);
}

/* Apply rewrite to every node in order; returns the number done or a -errno. */
static int each_node(struct eg_graph *g, int (*rewrite)(struct eg_graph *, int, char **), char **err)
{
	int done = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].dead)
			continue;
		int rc = rewrite(g, i, err);
		if (rc < 0)
			return rc;
		done += rc;
	}
	return done;
}

int opt_graph(struct eg_graph *g, struct opt_stats *st, char **err)
{
	struct opt_stats s = { .nodes_before = g->n_nodes };
	int rc;
	/* Order matters: BN into Conv before activations; bias before the GELU is formed and
	 * before activations, so MatMul+Add+GELU ends as one MatMul with bias and activation. */
	if ((rc = each_node(g, fold_bn, err)) < 0)
		goto out;
	s.bn_folded = rc;
	if ((rc = each_node(g, fuse_bias, err)) < 0)
		goto out;
	s.bias_fused = rc;
	if ((rc = each_node(g, split_sliced_matmul, err)) < 0)
		goto out;
	if ((rc = each_node(g, fold_head_transposes, err)) < 0)
		goto out;
	if ((rc = each_node(g, fuse_gelu, err)) < 0)
		goto out;
	s.gelu = rc;
	if ((rc = each_node(g, fuse_layernorm, err)) < 0)
		goto out;
	s.layernorm = rc;
	if ((rc = each_node(g, fuse_sum, err)) < 0)
		goto out;
	s.sum_fused = rc;
	if ((rc = each_node(g, fuse_skip_ln, err)) < 0)
		goto out;
	s.skip_ln = rc;
	if ((rc = each_node(g, fuse_act, err)) < 0)
		goto out;
	s.act_fused = rc;
	rc = 0;
out:
	compact(g);
	s.nodes_after = g->n_nodes;
	if (st)
		*st = s;
	return rc;
}
