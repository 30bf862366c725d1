/* plan.c - shape inference per input-shape signature, plan-time folding of shape arithmetic,
 * and the static arena layout (first fit by liveness, views and in-place reuse). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "plan.h"
#include "profile.h"
#include "util.h"

#define ALIGN 64
#define FOLD_MAX_BYTES (1u << 20) /* larger values computed from shapes are left to run time */
#define LAST_FOREVER INT_MAX

/* Round up to the arena alignment (at least one unit, so every buffer has an address). */
static size_t align_up(size_t n)
{
	return n ? (n + ALIGN - 1) & ~(size_t)(ALIGN - 1) : ALIGN;
}

/* ---- a first-fit allocator over offsets ---- */

struct blk {
	size_t off, size;
};

struct alloc {
	struct blk *free;
	int n, cap;
	size_t top;
};

/* Reserve size bytes; returns the offset. */
static size_t alloc_take(struct alloc *a, size_t size)
{
	int best = -1;
	for (int i = 0; i < a->n; i++)
		if (a->free[i].size >= size && (best < 0 || a->free[i].size < a->free[best].size))
			best = i;
	if (best >= 0) {
		size_t off = a->free[best].off;
		a->free[best].off += size;
		a->free[best].size -= size;
		if (!a->free[best].size) {
			memmove(&a->free[best], &a->free[best + 1], (a->n - best - 1) * sizeof(struct blk));
			a->n--;
		}
		return off;
	}
	/* Grow the top, starting inside a free block that touches it. */
	if (a->n && a->free[a->n - 1].off + a->free[a->n - 1].size == a->top) {
		size_t off = a->free[a->n - 1].off;
		a->n--;
		a->top = off + size;
		return off;
	}
	size_t off = a->top;
	a->top += size;
	return off;
}

/* Return [off, off + size) to the free list, merging neighbours (the list is sorted). */
static void alloc_give(struct alloc *a, size_t off, size_t size)
{
	int i = 0;
	while (i < a->n && a->free[i].off < off)
		i++;
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 16;
		a->free = xreallocarray(a->free, a->cap, sizeof(struct blk));
	}
	memmove(&a->free[i + 1], &a->free[i], (a->n - i) * sizeof(struct blk));
	a->free[i] = (struct blk){ off, size };
	a->n++;
	if (i + 1 < a->n && a->free[i].off + a->free[i].size == a->free[i + 1].off) {
		a->free[i].size += a->free[i + 1].size;
		memmove(&a->free[i + 1], &a->free[i + 2], (a->n - i - 2) * sizeof(struct blk));
		a->n--;
	}
	if (i > 0 && a->free[i - 1].off + a->free[i - 1].size == a->free[i].off) {
		a->free[i - 1].size += a->free[i].size;
		memmove(&a->free[i], &a->free[i + 1], (a->n - i - 1) * sizeof(struct blk));
		a->n--;
	}
}

/* ---- building ---- */

void plan_free(struct plan *p)
{
	if (!p)
		return;
	for (int v = 0; p->vals && v < p->g->n_values; v++)
		free(p->vals[v].owned);
	for (int s = 0; s < p->n_steps; s++) {
		free(p->steps[s].in);
		free(p->steps[s].out);
	}
	free(p->steps);
	free(p->vals);
	free(p->out_copy);
	free(p->sig);
	free(p);
}

/* The storage root of value v. */
static int root_of(const struct plan *p, int v)
{
	return p->vals[v].kind == PV_VIEW ? p->vals[v].root : v;
}

/* Whether value v's data is known while planning. */
static bool known(const struct plan *p, int v)
{
	return p->vals[v].kind == PV_CONST || p->vals[v].kind == PV_FOLDED ||
	       (p->vals[v].kind == PV_INPUT && p->g->values[v].plan_data);
}

/* Infer one node's outputs; fold it now, or append it as a step. */
static int plan_node(struct plan *p, int ni, char **err)
{
	const struct eg_graph *g = p->g;
	const struct eg_node *n = &g->nodes[ni];
	struct eng_tensor **in = xcalloc(n->n_in + 1, sizeof(*in));
	struct eng_tensor **out = xcalloc(n->n_out + 1, sizeof(*out));
	bool all_known = true;
	for (int j = 0; j < n->n_in; j++) {
		if (n->in[j] < 0)
			continue;
		in[j] = &p->vals[n->in[j]].t;
		all_known &= known(p, n->in[j]);
	}
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] >= 0) {
			out[j] = &p->vals[n->out[j]].t;
			out[j]->ndims = 0;
			out[j]->data = NULL;
		}
	size_t scratch = 0;
	int rc = n->op->infer(n, in, out, &scratch, err);
	size_t out_bytes = 0;
	for (int j = 0; !rc && j < n->n_out; j++) {
		if (!out[j])
			continue;
		int64_t cnt = shape_numel(out[j]->dims, out[j]->ndims);
		if (cnt < 0 || (uint64_t)cnt > ((uint64_t)1 << 40) / (dtype_size(out[j]->dtype) + 1))
			rc = eng_node_err(err, -EINVAL, n, "output %d would be too large or has a negative dim", j);
		else
			out[j]->bytes = (size_t)cnt * dtype_size(out[j]->dtype);
		out_bytes += out[j]->bytes;
	}
	if (rc)
		goto fail;

	bool fold = (n->op->flags & ENG_OP_SHAPE_ONLY) || (all_known && out_bytes <= FOLD_MAX_BYTES);
	if (fold) {
		for (int j = 0; j < n->n_out; j++) {
			if (!out[j])
				continue;
			struct plan_val *pv = &p->vals[n->out[j]];
			pv->owned = xaligned_alloc(ALIGN, align_up(out[j]->bytes));
			memset(pv->owned, 0, align_up(out[j]->bytes));
			pv->t.data = pv->owned;
			pv->kind = PV_FOLDED;
		}
		void *s = scratch ? xaligned_alloc(ALIGN, align_up(scratch)) : NULL;
		struct eng_ctx ctx = { .pool = NULL };
		rc = n->op->run(n, in, out, s, &ctx, err);
		free(s);
		free(in);
		free(out);
		return rc;
	}
	for (int j = 0; j < n->n_out; j++) {
		if (!out[j])
			continue;
		struct plan_val *pv = &p->vals[n->out[j]];
		if (j == 0 && (n->op->flags & ENG_OP_VIEW) && in[0]->bytes == out[0]->bytes) {
			pv->kind = PV_VIEW;
			pv->root = root_of(p, n->in[0]);
		} else {
			pv->kind = PV_ARENA;
		}
	}
	struct plan_step *st = &p->steps[p->n_steps++];
	st->node = ni;
	st->scratch = scratch;
	st->in = in;
	st->out = out;
	return 0;
fail:
	free(in);
	free(out);
	return rc;
}

/* ---- layouts ---- */

/* How a step treats the nChw8c layout. */
enum lay_class {
	LAY_OTHER, /* reads and writes plain values only */
	LAY_CONV, /* a convolution oneDNN runs: input 0 and output 0 may each be blocked (see can_x/can_y) */
	LAY_SAME, /* elementwise on equal shapes, or a 2-D pool: data inputs and output 0 share one layout */
	LAY_GPOOL, /* global pool: input 0 may be blocked, output plain */
};

/* Whether elementwise op `op` computes the same thing in any element order (given equal input
 * shapes): true for the unary activations and binary arithmetic kept in blocked chains. */
static bool lay_elementwise(const char *op, int *n_data)
{
	static const char *const un[] = { "Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh" };
	static const char *const bin[] = { "Add", "Sub", "Mul", "Max", "Min" };
	for (size_t i = 0; i < ACC_ARRAY_LEN(un); i++)
		if (!strcmp(op, un[i]))
			return *n_data = 1, true;
	for (size_t i = 0; i < ACC_ARRAY_LEN(bin); i++)
		if (!strcmp(op, bin[i]))
			return *n_data = 2, true;
	return false;
}

/* Whether a blocked layout is off (ACCELD_ENGINE_BLOCKED=0, for A/B runs). */
static bool lay_disabled(void)
{
	const char *e = getenv("ACCELD_ENGINE_BLOCKED");
	return e && !strcmp(e, "0");
}

/* Choose the values kept in nChw8c order: 4-D fp32 arena values with channels a multiple of 8
 * that flow only between steps able to take them (oneDNN convolutions, same-shape elementwise
 * ops, global pools), so chains of convolutions run without converting to NCHW and back. Starts
 * from every candidate and demotes values that break a rule until nothing changes. */
static void plan_layouts(struct plan *p)
{
	const struct eg_graph *g = p->g;
	int nv = g->n_values, ns = p->n_steps;
	if (lay_disabled() || !ns)
		return;
	bool *blk = xcalloc(nv + 1, sizeof(bool));
	int *prod = xmalloc((nv + 1) * sizeof(int));
	enum lay_class *cls = xcalloc(ns + 1, sizeof(*cls));
	bool *can_x = xcalloc(ns + 1, sizeof(bool)), *can_y = xcalloc(ns + 1, sizeof(bool));
	int *n_data = xcalloc(ns + 1, sizeof(int));
	for (int v = 0; v < nv; v++) {
		const struct eng_tensor *t = &p->vals[v].t;
		prod[v] = -1;
		blk[v] = p->vals[v].kind == PV_ARENA && t->dtype == DT_FP32 && t->ndims == 4 && t->dims[1] > 0 &&
			 t->dims[1] % 8 == 0 && !g->values[v].is_output;
	}
	for (int v = 0; v < nv; v++)
		if (p->vals[v].kind == PV_VIEW)
			blk[p->vals[v].root] = false;
	bool any = false;
	for (int s = 0; s < ns; s++) {
		const struct plan_step *st = &p->steps[s];
		const struct eg_node *n = &g->nodes[st->node];
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0)
				prod[n->out[j]] = s;
		if (!strcmp(n->op_type, "Conv") && n->n_out == 1 && n->out[0] >= 0 && n->in[0] >= 0) {
			/* With a fused residual (input 3) the output can only be blocked together with
			 * the residual, of the same shape; its input only when the output is. */
			int r = n->n_in > 3 ? n->in[3] : -1;
			bool bx = blk[n->in[0]], by = blk[n->out[0]];
			if (r >= 0 && !(blk[r] && !memcmp(st->in[3]->dims, st->out[0]->dims, 4 * sizeof(int64_t))))
				by = false;
			can_x[s] = bx && eng_conv_layout_ok(n, st->in, st->out, true, r >= 0);
			can_y[s] = by && eng_conv_layout_ok(n, st->in, st->out, false, true);
			if (r >= 0 && !can_y[s])
				can_x[s] = false;
			cls[s] = can_x[s] || can_y[s] ? LAY_CONV : LAY_OTHER;
			any |= can_x[s] || can_y[s];
		} else if (lay_elementwise(n->op_type, &n_data[s]) && n->n_in >= n_data[s] && n->out[0] >= 0) {
			cls[s] = LAY_SAME;
			for (int j = 0; j < n_data[s]; j++)
				if (n->in[j] < 0 || st->in[j]->ndims != 4 ||
				    memcmp(st->in[j]->dims, st->out[0]->dims, 4 * sizeof(int64_t)))
					cls[s] = LAY_OTHER;
		} else if ((!strcmp(n->op_type, "MaxPool") || !strcmp(n->op_type, "AveragePool")) &&
			   (n->n_out == 1 || n->out[1] < 0) && n->out[0] >= 0 && st->in[0]->ndims == 4 &&
			   st->in[0]->dims[3] <= 2048 /* pool.c: POOL8_W_MAX */) {
			cls[s] = LAY_SAME; /* 2-D windows, no Indices: input and output share the layout */
			n_data[s] = 1;
		} else if (!strcmp(n->op_type, "GlobalAveragePool") || !strcmp(n->op_type, "GlobalMaxPool")) {
			cls[s] = LAY_GPOOL;
		}
	}
	/* A value is blocked only if its producer can write it so. */
	for (int v = 0; v < nv; v++)
		if (blk[v] && (!any || prod[v] < 0 || (cls[prod[v]] == LAY_CONV ? !can_y[prod[v]] : cls[prod[v]] != LAY_SAME)))
			blk[v] = false;
	for (bool changed = any; changed;) {
		changed = false;
		for (int s = 0; s < ns; s++) {
			const struct eg_node *n = &g->nodes[p->steps[s].node];
			if (cls[s] == LAY_SAME) {
				bool all = blk[n->out[0]];
				for (int j = 0; j < n_data[s]; j++)
					all &= blk[n->in[j]];
				if (!all) {
					for (int j = 0; j < n_data[s]; j++)
						changed |= blk[n->in[j]], blk[n->in[j]] = false;
					changed |= blk[n->out[0]], blk[n->out[0]] = false;
				}
			}
			/* A convolution with a residual: output and residual blocked together, and a
			 * plain output needs a plain input (our own kernels run it then). */
			int r = cls[s] == LAY_CONV && n->n_in > 3 ? n->in[3] : -1;
			if (r >= 0 && (blk[r] != blk[n->out[0]] || (!blk[n->out[0]] && blk[n->in[0]]))) {
				changed |= blk[r] || blk[n->out[0]] || blk[n->in[0]];
				blk[r] = blk[n->out[0]] = blk[n->in[0]] = false;
			}
			/* Inputs a step cannot read blocked: every input of LAY_OTHER steps, inputs past
			 * the first of convolutions and pools (but a blocked convolution's residual), a
			 * convolution's input 0 without can_x. */
			for (int j = 0; j < n->n_in; j++) {
				int v = n->in[j];
				if (v < 0 || !blk[v])
					continue;
				bool ok = (cls[s] == LAY_SAME && j < n_data[s]) || (cls[s] == LAY_GPOOL && j == 0) ||
					  (cls[s] == LAY_CONV && j == 0 && can_x[s]) || (cls[s] == LAY_CONV && j == 3 && r >= 0);
				if (!ok)
					blk[v] = false, changed = true;
			}
		}
	}
	for (int v = 0; v < nv; v++)
		p->vals[v].t.layout = blk[v] ? ENG_LAYOUT_NCHW8C : ENG_LAYOUT_PLAIN;
	free(blk);
	free(prod);
	free(cls);
	free(can_x);
	free(can_y);
	free(n_data);
}

/* Lay out the arena: first fit in step order, freeing buffers after their last use. */
static void plan_layout(struct plan *p)
{
	const struct eg_graph *g = p->g;
	int nv = g->n_values;
	int *last = xmalloc((nv + 1) * sizeof(int));
	bool *given = xcalloc(nv + 1, sizeof(bool));
	for (int v = 0; v < nv; v++)
		last[v] = -1;
	for (int s = 0; s < p->n_steps; s++) {
		const struct eg_node *n = &g->nodes[p->steps[s].node];
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0)
				last[n->out[j]] = s;
	}
	for (int s = 0; s < p->n_steps; s++) {
		const struct eg_node *n = &g->nodes[p->steps[s].node];
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0)
				last[n->in[j]] = s;
	}
	for (int i = 0; i < g->n_outputs; i++)
		last[g->outputs[i]] = LAST_FOREVER;
	for (int v = 0; v < nv; v++)
		if (p->vals[v].kind == PV_VIEW && last[v] > last[p->vals[v].root])
			last[p->vals[v].root] = last[v];

	struct alloc a = { 0 };
	for (int s = 0; s < p->n_steps; s++) {
		struct plan_step *st = &p->steps[s];
		const struct eg_node *n = &g->nodes[st->node];
		for (int j = 0; j < n->n_out; j++) {
			int v = n->out[j];
			if (v < 0 || p->vals[v].kind != PV_ARENA)
				continue;
			/* In place: output 0 takes input 0's buffer (input 3's for a fused residual) when
			 * that dies here and has the same size and layout. */
			int ip = (n->op->flags & ENG_OP_INPLACE) ? 0 : (n->op->flags & ENG_OP_INPLACE_SUM) ? 3 : -1;
			/* (A residual that is also the convolution's input must stay: y is written
			 * while x is still read.) */
			if (ip >= n->n_in || (ip == 3 && n->in[0] >= 0 && n->in[3] >= 0 &&
					      root_of(p, n->in[3]) == root_of(p, n->in[0])))
				ip = -1;
			if (j == 0 && ip >= 0 && ip < n->n_in && n->in[ip] >= 0) {
				int r = root_of(p, n->in[ip]);
				if (p->vals[r].kind == PV_ARENA && last[r] == s && !given[r] &&
				    p->vals[r].t.layout == p->vals[v].t.layout &&
				    align_up(p->vals[r].t.bytes) == align_up(p->vals[v].t.bytes)) {
					p->vals[v].off = p->vals[r].off;
					given[r] = true; /* ownership moves to v */
					continue;
				}
			}
			p->vals[v].off = alloc_take(&a, align_up(p->vals[v].t.bytes));
		}
		/* Scratch lives during the step only: it cannot overlap the (live) inputs or the
		 * outputs just placed, and is free again for later steps. */
		if (st->scratch) {
			st->scratch_off = alloc_take(&a, align_up(st->scratch));
			alloc_give(&a, st->scratch_off, align_up(st->scratch));
		}
		/* Free what dies here: inputs' roots and outputs nobody reads. */
		for (int pass = 0; pass < 2; pass++) {
			int cnt = pass ? n->n_out : n->n_in;
			for (int j = 0; j < cnt; j++) {
				int v = pass ? n->out[j] : n->in[j];
				if (v < 0)
					continue;
				int r = root_of(p, v);
				if (p->vals[r].kind == PV_ARENA && last[r] == s && !given[r]) {
					given[r] = true;
					alloc_give(&a, p->vals[r].off, align_up(p->vals[r].t.bytes));
				}
			}
		}
	}
	/* Graph outputs whose storage is not the arena get a copy slot. */
	for (int i = 0; i < g->n_outputs; i++) {
		int r = root_of(p, g->outputs[i]);
		p->out_copy[i] = SIZE_MAX;
		if (p->vals[r].kind != PV_ARENA) {
			p->out_copy[i] = a.top;
			a.top += align_up(p->vals[g->outputs[i]].t.bytes);
		}
	}
	p->arena_size = a.top;
	free(a.free);
	free(last);
	free(given);
}

int plan_build(const struct eg_graph *g, const struct eng_tensor *inputs, struct plan **out, char **err)
{
	struct plan *p = xcalloc(1, sizeof(*p));
	p->g = g;
	p->vals = xcalloc(g->n_values + 1, sizeof(*p->vals));
	p->steps = xcalloc(g->n_nodes + 1, sizeof(*p->steps));
	p->out_copy = xcalloc(g->n_outputs + 1, sizeof(size_t));
	size_t sl = 0;
	for (int i = 0; i < g->n_inputs; i++)
		sl += 1 + inputs[i].ndims + (g->values[g->inputs[i]].plan_data ? (inputs[i].bytes + 7) / 8 : 0);
	p->sig = xcalloc(sl + 1, sizeof(int64_t));
	p->sig_len = sl;
	sl = 0;
	for (int i = 0; i < g->n_inputs; i++) {
		p->sig[sl++] = inputs[i].ndims;
		for (int d = 0; d < inputs[i].ndims; d++)
			p->sig[sl++] = inputs[i].dims[d];
		if (g->values[g->inputs[i]].plan_data && inputs[i].bytes) {
			memcpy(&p->sig[sl], inputs[i].data, inputs[i].bytes);
			sl += (inputs[i].bytes + 7) / 8;
		}
	}
	for (int v = 0; v < g->n_values; v++) {
		struct plan_val *pv = &p->vals[v];
		pv->t.dtype = g->values[v].dtype;
		if (g->values[v].konst) {
			pv->kind = PV_CONST;
			pv->t = *g->values[v].konst;
		}
	}
	for (int i = 0; i < g->n_inputs; i++) {
		struct plan_val *pv = &p->vals[g->inputs[i]];
		pv->kind = PV_INPUT;
		pv->t.ndims = inputs[i].ndims;
		memcpy(pv->t.dims, inputs[i].dims, sizeof(pv->t.dims));
		pv->t.bytes = (size_t)shape_numel(inputs[i].dims, inputs[i].ndims) * dtype_size(pv->t.dtype);
		/* Inputs whose values decide shapes are read while planning (and key the plan). */
		pv->t.data = g->values[g->inputs[i]].plan_data ? inputs[i].data : NULL;
	}
	int rc = 0;
	for (int ni = 0; ni < g->n_nodes && !rc; ni++)
		rc = plan_node(p, ni, err);
	if (rc) {
		plan_free(p);
		return rc;
	}
	plan_layouts(p);
	plan_layout(p);
	*out = p;
	return 0;
}

bool plan_matches(const struct plan *p, const struct eng_tensor *inputs, int n_inputs)
{
	size_t k = 0;
	for (int i = 0; i < n_inputs; i++) {
		if (k >= p->sig_len || p->sig[k++] != inputs[i].ndims)
			return false;
		for (int d = 0; d < inputs[i].ndims; d++)
			if (k >= p->sig_len || p->sig[k++] != inputs[i].dims[d])
				return false;
		if (p->g->values[p->g->inputs[i]].plan_data && inputs[i].bytes) {
			size_t words = (inputs[i].bytes + 7) / 8;
			if (k + words > p->sig_len || memcmp(&p->sig[k], inputs[i].data, inputs[i].bytes))
				return false;
			k += words;
		}
	}
	return k == p->sig_len;
}

void plan_bind(struct plan *p, void *arena, const struct eng_tensor *inputs)
{
	const struct eg_graph *g = p->g;
	for (int i = 0; i < g->n_inputs; i++)
		p->vals[g->inputs[i]].t.data = inputs[i].data;
	for (int v = 0; v < g->n_values; v++)
		if (p->vals[v].kind == PV_ARENA)
			p->vals[v].t.data = (uint8_t *)arena + p->vals[v].off;
	for (int v = 0; v < g->n_values; v++)
		if (p->vals[v].kind == PV_VIEW)
			p->vals[v].t.data = p->vals[p->vals[v].root].t.data;
}

int plan_run(struct plan *p, void *arena, struct eng_ctx *ctx, struct eng_tensor *outputs, char **err)
{
	const struct eg_graph *g = p->g;
	bool prof = eng_profile_enabled();
	for (int s = 0; s < p->n_steps; s++) {
		const struct plan_step *st = &p->steps[s];
		const struct eg_node *n = &g->nodes[st->node];
		void *scratch = st->scratch ? (uint8_t *)arena + st->scratch_off : NULL;
		uint64_t t0 = prof ? acc_now_ns() : 0;
		int rc = n->op->run(n, st->in, st->out, scratch, ctx, err);
		if (rc)
			return rc;
		if (prof)
			eng_profile_add(n, st->in, st->out, acc_now_ns() - t0);
	}
	for (int i = 0; i < g->n_outputs; i++) {
		const struct eng_tensor *t = &p->vals[g->outputs[i]].t;
		outputs[i] = *t;
		if (p->out_copy[i] != SIZE_MAX) {
			outputs[i].data = (uint8_t *)arena + p->out_copy[i];
			if (t->bytes)
				memcpy(outputs[i].data, t->data, t->bytes);
		}
	}
	return 0;
}
