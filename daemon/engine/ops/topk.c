/* topk.c - TopK: the k largest (or smallest) entries along an axis with their int64 indices;
 * equal values keep the lower index first. k is the attribute (opset 1-9) or input 1 (10+). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "threadpool.h"
#include "util.h"

static int topk_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool old = n->opset < 10;
	int rc = eng_check_arity(n, old ? 1 : 2, old ? 1 : 2, 2, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (!rc && !old)
		rc = eng_check_type(g, n, 1, DTB(DT_INT64), err);
	if (rc)
		return rc;
	if (old && !eg_attr_find(n, "k"))
		return eng_node_err(err, -EINVAL, n, "attribute 'k' is required");
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 0));
	eng_set_out_dtype(g, n, 1, DT_INT64);
	return 0;
}

/* The axis and k for input x. */
static int topk_geom(const struct eg_node *n, struct eng_tensor *const *in, int *axis, int64_t *k, char **err)
{
	int r = in[0]->ndims;
	*axis = eng_axis(eg_attr_int(n, "axis", -1), r);
	if (r == 0 || *axis < 0)
		return eng_node_err(err, -EINVAL, n, "axis out of range for rank %d", r);
	if (n->opset < 10) {
		*k = eg_attr_int(n, "k", 0);
	} else {
		if (!in[1]->data)
			return eng_node_err(err, -ENOTSUP, n, "K must be known before running");
		if (eng_numel(in[1]) != 1)
			return eng_node_err(err, -EINVAL, n, "K must have one element");
		*k = eng_get_int(in[1], 0);
	}
	if (*k < 0 || *k > in[0]->dims[*axis])
		return eng_node_err(err, -EINVAL, n, "k = %lld is outside [0, %lld]", (long long)*k,
				    (long long)in[0]->dims[*axis]);
	return 0;
}

static int topk_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	int axis;
	int64_t k;
	int rc = topk_geom(n, in, &axis, &k, err);
	if (rc)
		return rc;
	for (int i = 0; i < 2; i++) {
		if (i >= n->n_out || !out[i])
			continue;
		out[i]->ndims = in[0]->ndims;
		memcpy(out[i]->dims, in[0]->dims, sizeof(out[i]->dims));
		out[i]->dims[axis] = k;
	}
	return 0;
}

struct topk_item {
	double v;
	int64_t i;
};

/* Largest first, NaN above everything, then lower index first. */
static int cmp_largest(const void *pa, const void *pb)
{
	const struct topk_item *a = pa, *b = pb;
	bool na = isnan(a->v), nb = isnan(b->v);
	if (na != nb)
		return na ? -1 : 1;
	if (!na && a->v != b->v)
		return a->v > b->v ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* Smallest first, NaN below nothing (last), then lower index first. */
static int cmp_smallest(const void *pa, const void *pb)
{
	const struct topk_item *a = pa, *b = pb;
	bool na = isnan(a->v), nb = isnan(b->v);
	if (na != nb)
		return na ? 1 : -1;
	if (!na && a->v != b->v)
		return a->v < b->v ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

struct topk_job {
	enum dtype dt;
	bool largest;
	int64_t len, inner, k;
	const void *x;
	void *vals;
	int64_t *idx;
};

/* Element i of x as double (int64 beyond 2^53 loses order only between such huge values). */
static double topk_load(enum dtype t, const void *x, int64_t i)
{
	switch (t) {
	case DT_FP32: return ((const float *)x)[i];
	case DT_FP64: return ((const double *)x)[i];
	case DT_INT32: return ((const int32_t *)x)[i];
	case DT_INT64: return (double)((const int64_t *)x)[i];
	default: return 0;
	}
}

/* Slices [s0, s1): a slice is one (outer, inner) position. */
static void topk_part(void *arg, int64_t s0, int64_t s1)
{
	const struct topk_job *j = arg;
	struct topk_item *it = xmalloc((size_t)(j->len ? j->len : 1) * sizeof(*it));
	size_t esz = dtype_size(j->dt);
	for (int64_t s = s0; s < s1; s++) {
		int64_t o = s / j->inner, in = s % j->inner;
		int64_t xb = o * j->len * j->inner + in, yb = o * j->k * j->inner + in;
		for (int64_t q = 0; q < j->len; q++) {
			it[q].v = topk_load(j->dt, j->x, xb + q * j->inner);
			it[q].i = q;
		}
		qsort(it, (size_t)j->len, sizeof(*it), j->largest ? cmp_largest : cmp_smallest);
		for (int64_t q = 0; q < j->k; q++) {
			int64_t dst = yb + q * j->inner, src = xb + it[q].i * j->inner;
			memcpy((uint8_t *)j->vals + dst * esz, (const uint8_t *)j->x + src * esz, esz);
			if (j->idx)
				j->idx[dst] = it[q].i;
		}
	}
	free(it);
}

static int topk_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	int axis;
	int64_t k;
	int rc = topk_geom(n, in, &axis, &k, err);
	if (rc)
		return rc;
	int64_t outer = 1, inner = 1, len = in[0]->dims[axis];
	for (int d = 0; d < in[0]->ndims; d++)
		if (d < axis)
			outer *= in[0]->dims[d];
		else if (d > axis)
			inner *= in[0]->dims[d];
	struct eng_tensor *idx = n->n_out > 1 ? out[1] : NULL;
	struct topk_job j = { in[0]->dtype, eg_attr_int(n, "largest", 1) != 0, len, inner, k, in[0]->data,
			      out[0]->data, idx ? idx->data : NULL };
	if (k == 0 || outer * inner == 0)
		return 0;
	tpool_for(ctx->pool, outer * inner, 1 + 4096 / (len + 1), topk_part, &j);
	return 0;
}

#define TOPK_TYPES (DTB(DT_FP32) | DTB(DT_FP64) | DTB(DT_INT32) | DTB(DT_INT64))

const struct eng_op eng_ops_topk[] = {
	{ "TopK", 1, 9, TOPK_TYPES, "axis k", 0, topk_prepare, topk_infer, topk_run, 0 },
	{ "TopK", 10, 10, TOPK_TYPES, "axis", 0, topk_prepare, topk_infer, topk_run, 1u << 1 },
	{ "TopK", 11, ENG_OPSET_LATEST, TOPK_TYPES, "axis largest sorted", 0, topk_prepare, topk_infer, topk_run,
	  1u << 1 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
