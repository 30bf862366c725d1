/* reduce.c - Reduce* over any set of axes, ArgMax/ArgMin. Accumulates in double. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vmath.h"
#include "threadpool.h"
#include "util.h"

enum red_code { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_ARGMAX, R_ARGMIN };

static const struct {
	const char *name;
	enum red_code code;
	int axes_input_since; /* opset from which axes is an input */
} red_names[] = {
	{ "ReduceSum", R_SUM, 13 }, { "ReduceMean", R_MEAN, 18 }, { "ReduceMax", R_MAX, 18 },
	{ "ReduceMin", R_MIN, 18 }, { "ReduceProd", R_PROD, 18 }, { "ReduceSumSquare", R_SUMSQ, 18 },
	{ "ReduceL1", R_L1, 18 }, { "ReduceL2", R_L2, 18 }, { "ReduceLogSum", R_LOGSUM, 18 },
	{ "ReduceLogSumExp", R_LOGSUMEXP, 18 }, { "ArgMax", R_ARGMAX, 1000 }, { "ArgMin", R_ARGMIN, 1000 },
};

struct red_params {
	enum red_code code;
	bool axes_input;
};

static int red_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	struct red_params *p = xcalloc(1, sizeof(*p));
	n->params = p;
	for (size_t i = 0; i < ACC_ARRAY_LEN(red_names); i++)
		if (!strcmp(red_names[i].name, n->op_type)) {
			p->code = red_names[i].code;
			p->axes_input = n->opset >= red_names[i].axes_input_since;
		}
	int rc = eng_check_arity(n, 1, p->axes_input ? 2 : 1, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (!rc && n->n_in > 1 && n->in[1] >= 0)
		rc = eng_check_type(g, n, 1, DTB(DT_INT64), err);
	if (rc)
		return rc;
	if (p->axes_input && eg_attr_find(n, "axes"))
		return eng_node_err(err, -EINVAL, n, "axes is an input at this opset");
	bool arg = p->code == R_ARGMAX || p->code == R_ARGMIN;
	eng_set_out_dtype(g, n, 0, arg ? DT_INT64 : eng_in_dtype(g, n, 0));
	return 0;
}

/* Which dims are reduced; false if the node reduces nothing (noop). */
static int red_axes(const struct eg_node *n, struct eng_tensor *const *in, bool *red, bool *noop, char **err)
{
	const struct red_params *p = n->params;
	int r = in[0]->ndims;
	memset(red, 0, TENSOR_MAX_DIMS * sizeof(bool));
	*noop = false;
	if (p->code == R_ARGMAX || p->code == R_ARGMIN) {
		int a = eng_axis(eg_attr_int(n, "axis", 0), r);
		if (a < 0 || r == 0)
			return eng_node_err(err, -EINVAL, n, "axis out of range");
		red[a] = true;
		return 0;
	}
	int64_t axes[TENSOR_MAX_DIMS];
	int k = 0;
	if (p->axes_input) {
		if (n->n_in > 1 && in[1]) {
			if (!in[1]->data)
				return eng_node_err(err, -ENOTSUP, n, "axes must be known before running");
			int64_t c = eng_numel(in[1]);
			if (c > TENSOR_MAX_DIMS)
				return eng_node_err(err, -EINVAL, n, "too many axes");
			for (int i = 0; i < c; i++)
				axes[k++] = eng_get_int(in[1], i);
		}
	} else {
		size_t c;
		const int64_t *a = eg_attr_ints(n, "axes", &c);
		if (c > TENSOR_MAX_DIMS)
			return eng_node_err(err, -EINVAL, n, "too many axes");
		for (size_t i = 0; i < c; i++)
			axes[k++] = a[i];
	}
	if (!k) {
		if (p->axes_input && eg_attr_int(n, "noop_with_empty_axes", 0))
			*noop = true;
		for (int d = 0; d < r; d++)
			red[d] = !*noop;
		return 0;
	}
	for (int i = 0; i < k; i++) {
		int a = eng_axis(axes[i], r);
		if (a < 0)
			return eng_node_err(err, -EINVAL, n, "axis %lld out of range", (long long)axes[i]);
		red[a] = true;
	}
	return 0;
}

static int red_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     size_t *scratch, char **err)
{
	bool red[TENSOR_MAX_DIMS], noop;
	int rc = red_axes(n, in, red, &noop, err);
	if (rc)
		return rc;
	bool keep = eg_attr_int(n, "keepdims", 1) != 0;
	out[0]->ndims = 0;
	for (int d = 0; d < in[0]->ndims; d++) {
		if (!red[d])
			out[0]->dims[out[0]->ndims++] = in[0]->dims[d];
		else if (keep)
			out[0]->dims[out[0]->ndims++] = 1;
	}
	return 0;
}

struct red_job {
	enum red_code code;
	enum dtype dt;
	bool last_index;
	const void *x;
	void *y;
	int nk, nr; /* kept and reduced dims */
	int64_t kd[TENSOR_MAX_DIMS], ks[TENSOR_MAX_DIMS]; /* kept dims and their input strides */
	int64_t rd[TENSOR_MAX_DIMS], rs[TENSOR_MAX_DIMS]; /* reduced dims and strides */
	int64_t rcount;
};

/* Element at offset i as a double. */
static double ld(const struct red_job *j, int64_t i)
{
	switch (j->dt) {
	case DT_FP32: return ((const float *)j->x)[i];
	case DT_FP64: return ((const double *)j->x)[i];
	case DT_INT32: return ((const int32_t *)j->x)[i];
	case DT_INT64: return (double)((const int64_t *)j->x)[i];
	default: return 0;
	}
}

#define LANES 16

/* Sum (sum true) or maximum/minimum (max) of a contiguous fp32 run, with 16 partial results so
 * that it vectorises. NaN propagates from max/min. */
VM_VEC static float red_row_f32(const float *restrict x, int64_t n, bool sum, bool max)
{
	float v[LANES];
	float acc = sum ? 0.0f : max ? -INFINITY : INFINITY;
	bool nan = false;
	for (int k = 0; k < LANES; k++)
		v[k] = acc;
	int64_t i = 0;
	if (sum) {
		for (; i + LANES <= n; i += LANES)
			for (int k = 0; k < LANES; k++)
				v[k] += x[i + k];
		for (; i < n; i++)
			acc += x[i];
		for (int k = 0; k < LANES; k++)
			acc += v[k];
		return acc;
	}
	for (; i + LANES <= n; i += LANES)
		for (int k = 0; k < LANES; k++) {
			float e = x[i + k];
			nan |= e != e;
			v[k] = max ? (e > v[k] ? e : v[k]) : (e < v[k] ? e : v[k]);
		}
	for (; i < n; i++) {
		nan |= x[i] != x[i];
		acc = max ? (x[i] > acc ? x[i] : acc) : (x[i] < acc ? x[i] : acc);
	}
	for (int k = 0; k < LANES; k++)
		acc = max ? (v[k] > acc ? v[k] : acc) : (v[k] < acc ? v[k] : acc);
	return nan ? NAN : acc;
}

/* Output elements [o0, o1). */
static void red_part(void *arg, int64_t o0, int64_t o1)
{
	const struct red_job *j = arg;
	bool fast = j->dt == DT_FP32 && j->nr == 1 && j->rs[0] == 1 &&
		    (j->code == R_SUM || j->code == R_MEAN || j->code == R_MAX || j->code == R_MIN);
	for (int64_t o = o0; fast && o < o1; o++) {
		int64_t base = 0, rem = o;
		for (int d = j->nk - 1; d >= 0; d--) {
			base += (rem % j->kd[d]) * j->ks[d];
			rem /= j->kd[d];
		}
		float v = red_row_f32((const float *)j->x + base, j->rcount, j->code == R_SUM || j->code == R_MEAN,
				      j->code == R_MAX);
		((float *)j->y)[o] = j->code == R_MEAN ? v / (float)j->rcount : v;
	}
	for (int64_t o = o0; !fast && o < o1; o++) {
		int64_t base = 0, rem = o;
		for (int d = j->nk - 1; d >= 0; d--) {
			base += (rem % j->kd[d]) * j->ks[d];
			rem /= j->kd[d];
		}
		double acc;
		switch (j->code) {
		case R_MAX: case R_ARGMAX: acc = -INFINITY; break;
		case R_MIN: case R_ARGMIN: acc = INFINITY; break;
		case R_PROD: acc = 1; break;
		default: acc = 0; break;
		}
		double lse_max = -INFINITY;
		if (j->code == R_LOGSUMEXP) {
			int64_t idx[TENSOR_MAX_DIMS] = { 0 };
			for (int64_t r = 0; r < j->rcount; r++) {
				int64_t off = base;
				for (int d = 0; d < j->nr; d++)
					off += idx[d] * j->rs[d];
				double v = ld(j, off);
				lse_max = v > lse_max ? v : lse_max;
				for (int d = j->nr - 1; d >= 0; d--) {
					if (++idx[d] < j->rd[d])
						break;
					idx[d] = 0;
				}
			}
			if (isinf(lse_max))
				lse_max = 0;
		}
		int64_t idx[TENSOR_MAX_DIMS] = { 0 }, best = 0;
		bool first = true;
		for (int64_t r = 0; r < j->rcount; r++) {
			int64_t off = base;
			for (int d = 0; d < j->nr; d++)
				off += idx[d] * j->rs[d];
			double v = ld(j, off);
			switch (j->code) {
			case R_SUM: case R_MEAN: acc += v; break;
			case R_MAX: acc = (v > acc || v != v) ? v : acc; break;
			case R_MIN: acc = (v < acc || v != v) ? v : acc; break;
			case R_PROD: acc *= v; break;
			case R_SUMSQ: case R_L2: acc += v * v; break;
			case R_L1: acc += fabs(v); break;
			case R_LOGSUM: acc += v; break;
			case R_LOGSUMEXP: acc += exp(v - lse_max); break;
			case R_ARGMAX:
				if (first || v > acc || (j->last_index && v == acc)) {
					acc = v;
					best = r;
				}
				break;
			case R_ARGMIN:
				if (first || v < acc || (j->last_index && v == acc)) {
					acc = v;
					best = r;
				}
				break;
			}
			first = false;
			for (int d = j->nr - 1; d >= 0; d--) {
				if (++idx[d] < j->rd[d])
					break;
				idx[d] = 0;
			}
		}
		switch (j->code) {
		case R_MEAN: acc = acc / (double)j->rcount; break;
		case R_L2: acc = sqrt(acc); break;
		case R_LOGSUM: acc = log(acc); break;
		case R_LOGSUMEXP: acc = log(acc) + lse_max; break;
		case R_ARGMAX: case R_ARGMIN: ((int64_t *)j->y)[o] = best; continue;
		default: break;
		}
		switch (j->dt) {
		case DT_FP32: ((float *)j->y)[o] = (float)acc; break;
		case DT_FP64: ((double *)j->y)[o] = acc; break;
		case DT_INT32: ((int32_t *)j->y)[o] = (int32_t)acc; break;
		case DT_INT64: ((int64_t *)j->y)[o] = (int64_t)acc; break;
		default: break;
		}
	}
}

static int red_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		   void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct red_params *p = n->params;
	bool red[TENSOR_MAX_DIMS], noop;
	int rc = red_axes(n, in, red, &noop, err);
	if (rc)
		return rc;
	if (noop) {
		memcpy(out[0]->data, in[0]->data, out[0]->bytes);
		return 0;
	}
	struct red_job j = { .code = p->code, .dt = in[0]->dtype, .x = in[0]->data, .y = out[0]->data, .rcount = 1,
			     .last_index = eg_attr_int(n, "select_last_index", 0) != 0 };
	int64_t s = 1, st[TENSOR_MAX_DIMS];
	for (int d = in[0]->ndims - 1; d >= 0; d--) {
		st[d] = s;
		s *= in[0]->dims[d];
	}
	for (int d = 0; d < in[0]->ndims; d++) {
		if (red[d]) {
			j.rd[j.nr] = in[0]->dims[d];
			j.rs[j.nr++] = st[d];
			j.rcount *= in[0]->dims[d];
		} else {
			j.kd[j.nk] = in[0]->dims[d];
			j.ks[j.nk++] = st[d];
		}
	}
	int64_t total = eng_numel(out[0]);
	tpool_for(ctx->pool, total, 1 + 16384 / (j.rcount + 1), red_part, &j);
	return 0;
}

#define RED(name, since, attrs) { name, since, ENG_OPSET_LATEST, DTM_NUM, attrs, 0, red_prepare, red_infer, red_run, 1u << 1 }

const struct eng_op eng_ops_reduce[] = {
	RED("ReduceSum", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceMean", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceMax", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceMin", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceProd", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceSumSquare", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceL1", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceL2", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceLogSum", 1, "axes keepdims noop_with_empty_axes"),
	RED("ReduceLogSumExp", 1, "axes keepdims noop_with_empty_axes"),
	RED("ArgMax", 1, "axis keepdims select_last_index"),
	RED("ArgMin", 1, "axis keepdims select_last_index"),
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
