/* norm.c - Softmax, LogSoftmax, BatchNormalization, LayerNormalization, InstanceNormalization
 * (fp32). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "kernels/broadcast.h"
#include "kernels/transcend.h"
#include "ops/ops.h"
#include "ops/vmath.h"
#include "threadpool.h"

/* fp32 op with lo..hi inputs, all fp32; outputs fp32. */
static int f32_prepare(struct eg_graph *g, struct eg_node *n, int lo, int hi, int max_out, char **err)
{
	int rc = eng_check_arity(n, lo, hi, max_out, err);
	for (int i = 0; !rc && i < n->n_in; i++)
		if (n->in[i] >= 0)
			rc = eng_check_type(g, n, i, n->op->types, err);
	if (rc)
		return rc;
	for (int i = 0; i < n->n_out; i++)
		eng_set_out_dtype(g, n, i, DT_FP32);
	return 0;
}

/* ---- Softmax / LogSoftmax ---- */

static int softmax_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	return f32_prepare(g, n, 1, 1, 1, err);
}

/* Split the shape into outer x len x inner for the softmax axis (opset < 13: the flattened
 * trailing block from axis on, as one row). */
static int softmax_geom(const struct eg_node *n, const struct eng_tensor *x, int64_t *outer, int64_t *len,
			int64_t *inner, char **err)
{
	int r = x->ndims;
	bool old = n->opset < 13;
	int a = eng_axis(eg_attr_int(n, "axis", old ? 1 : -1), r);
	if (r == 0 || a < 0)
		return eng_node_err(err, -EINVAL, n, "axis out of range for rank %d", r);
	*outer = *len = *inner = 1;
	for (int d = 0; d < r; d++) {
		if (d < a)
			*outer *= x->dims[d];
		else if (d == a || old)
			*len *= x->dims[d];
		else
			*inner *= x->dims[d];
	}
	return 0;
}

static int same_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	int64_t a, b, c;
	if (!strcmp(n->op_type, "Softmax") || !strcmp(n->op_type, "LogSoftmax")) {
		int rc = softmax_geom(n, in[0], &a, &b, &c, err);
		if (rc)
			return rc;
	}
	out[0]->ndims = in[0]->ndims;
	memcpy(out[0]->dims, in[0]->dims, sizeof(in[0]->dims));
	return 0;
}

struct softmax_job {
	bool logsm;
	int64_t len, inner;
	const float *x;
	float *y;
};

#define LANES 16 /* partial sums per reduction: one AVX-512 or two AVX2 registers */

/* Softmax or LogSoftmax of one contiguous row (y may be x). */
VM_VEC static void softmax_row(bool logsm, const float *x, float *y, int64_t len)
{
	float mv[LANES];
	for (int k = 0; k < LANES; k++)
		mv[k] = -INFINITY;
	int64_t i = 0;
	for (; i + LANES <= len; i += LANES)
		for (int k = 0; k < LANES; k++)
			mv[k] = x[i + k] > mv[k] ? x[i + k] : mv[k];
	float m = -INFINITY;
	for (; i < len; i++)
		m = x[i] > m ? x[i] : m;
	for (int k = 0; k < LANES; k++)
		m = mv[k] > m ? mv[k] : m;
	float sv[LANES] = { 0 };
	float s = 0;
	i = 0;
	if (logsm) {
		for (; i + LANES <= len; i += LANES)
			for (int k = 0; k < LANES; k++)
				sv[k] += vm_exp(x[i + k] - m);
		for (; i < len; i++)
			s += vm_exp(x[i] - m);
		for (int k = 0; k < LANES; k++)
			s += sv[k];
		float ls = m + logf(s);
		for (i = 0; i < len; i++)
			y[i] = x[i] - ls;
		return;
	}
	float inv = 1.0f / ktrans_exp_sum(x, m, y, len);
	for (i = 0; i < len; i++)
		y[i] *= inv;
}

/* Rows [r0, r1): a row is one (outer, inner) position. */
static void softmax_part(void *arg, int64_t r0, int64_t r1)
{
	const struct softmax_job *j = arg;
	int64_t len = j->len, in = j->inner;
	if (in == 1) {
		for (int64_t r = r0; r < r1; r++)
			softmax_row(j->logsm, j->x + r * len, j->y + r * len, len);
		return;
	}
	for (int64_t r = r0; r < r1; r++) {
		int64_t o = r / in, i = r % in;
		const float *x = j->x + o * len * in + i;
		float *y = j->y + o * len * in + i;
		float m = -INFINITY;
		for (int64_t k = 0; k < len; k++)
			m = x[k * in] > m ? x[k * in] : m;
		double s = 0;
		if (j->logsm) {
			for (int64_t k = 0; k < len; k++)
				s += expf(x[k * in] - m);
			float ls = logf((float)s);
			for (int64_t k = 0; k < len; k++)
				y[k * in] = x[k * in] - m - ls;
		} else {
			for (int64_t k = 0; k < len; k++) {
				float e = expf(x[k * in] - m);
				y[k * in] = e;
				s += e;
			}
			float inv = (float)(1.0 / s);
			for (int64_t k = 0; k < len; k++)
				y[k * in] *= inv;
		}
	}
}

static int softmax_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       void *scratch, struct eng_ctx *ctx, char **err)
{
	int64_t outer, len, inner;
	int rc = softmax_geom(n, in[0], &outer, &len, &inner, err);
	if (rc)
		return rc;
	struct softmax_job j = { !strcmp(n->op_type, "LogSoftmax"), len, inner, in[0]->data, out[0]->data };
	tpool_for(ctx->pool, outer * inner, 1 + 16384 / (len + 1), softmax_part, &j);
	return 0;
}

/* ---- BatchNormalization ---- */

static int bn_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = f32_prepare(g, n, 5, 5, 3, err);
	if (rc)
		return rc;
	bool training = eg_attr_int(n, "training_mode", 0) != 0;
	if (n->opset < 14 && n->n_out > 1)
		return eng_node_err(err, -ENOTSUP, n, "training outputs (opset < 14) are not supported");
	if (!training && n->n_out > 1)
		return eng_node_err(err, -EINVAL, n, "extra outputs need training_mode=1");
	return 0;
}

static int bn_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    size_t *scratch, char **err)
{
	if (in[0]->ndims < 2)
		return eng_node_err(err, -EINVAL, n, "X must have rank >= 2");
	int64_t C = in[0]->dims[1];
	for (int i = 1; i < 5; i++)
		if (eng_numel(in[i]) != C || in[i]->ndims != 1)
			return eng_node_err(err, -EINVAL, n, "input %d must have C = %lld entries", i, (long long)C);
	out[0]->ndims = in[0]->ndims;
	memcpy(out[0]->dims, in[0]->dims, sizeof(in[0]->dims));
	for (int i = 1; i < n->n_out; i++)
		if (out[i]) {
			out[i]->ndims = 1;
			out[i]->dims[0] = C;
		}
	if (eg_attr_int(n, "training_mode", 0))
		*scratch = 2 * C * sizeof(float);
	return 0;
}

struct bn_job {
	int64_t C, inner;
	const float *x, *scale, *bias, *mean, *var;
	float *y;
	float eps;
};

/* Planes [p0, p1) of (n, c). */
static void bn_part(void *arg, int64_t p0, int64_t p1)
{
	const struct bn_job *j = arg;
	for (int64_t p = p0; p < p1; p++) {
		int64_t c = p % j->C;
		float a = j->scale[c] / sqrtf(j->var[c] + j->eps);
		float b = j->bias[c] - j->mean[c] * a;
		const float *x = j->x + p * j->inner;
		float *y = j->y + p * j->inner;
		for (int64_t i = 0; i < j->inner; i++)
			y[i] = x[i] * a + b;
	}
}

static int bn_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		  void *scratch, struct eng_ctx *ctx, char **err)
{
	int64_t N = in[0]->dims[0], C = in[0]->dims[1], inner = 1;
	for (int d = 2; d < in[0]->ndims; d++)
		inner *= in[0]->dims[d];
	struct bn_job j = { C, inner, in[0]->data, in[1]->data, in[2]->data, in[3]->data, in[4]->data,
			    out[0]->data, eg_attr_float(n, "epsilon", 1e-5f) };
	if (eg_attr_int(n, "training_mode", 0)) {
		/* Normalise with the batch's statistics; report the updated running ones. */
		float mom = eg_attr_float(n, "momentum", 0.9f);
		float *bm = scratch, *bv = bm + C;
		const float *x = in[0]->data;
		for (int64_t c = 0; c < C; c++) {
			double s = 0, s2 = 0;
			for (int64_t b = 0; b < N; b++)
				for (int64_t i = 0; i < inner; i++)
					s += x[(b * C + c) * inner + i];
			double cnt = (double)(N * inner), mean = cnt ? s / cnt : 0;
			for (int64_t b = 0; b < N; b++)
				for (int64_t i = 0; i < inner; i++) {
					double d = x[(b * C + c) * inner + i] - mean;
					s2 += d * d;
				}
			bm[c] = (float)mean;
			bv[c] = (float)(cnt ? s2 / cnt : 0);
		}
		const float *rm = in[3]->data, *rv = in[4]->data;
		if (n->n_out > 1 && out[1])
			for (int64_t c = 0; c < C; c++)
				((float *)out[1]->data)[c] = rm[c] * mom + bm[c] * (1 - mom);
		if (n->n_out > 2 && out[2])
			for (int64_t c = 0; c < C; c++)
				((float *)out[2]->data)[c] = rv[c] * mom + bv[c] * (1 - mom);
		j.mean = bm;
		j.var = bv;
	}
	tpool_for(ctx->pool, N * C, 1 + 65536 / (inner + 1), bn_part, &j);
	return 0;
}

/* ---- LayerNormalization / InstanceNormalization ---- */

static int ln_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool inst = !strcmp(n->op_type, "InstanceNormalization");
	bool skip = !inst && eg_attr_int(n, "_skip", 0);
	int rc = f32_prepare(g, n, inst ? 3 : 2, skip ? 4 : 3, inst ? 1 : 3, err);
	if (!rc && skip && (n->n_in < 4 || n->in[3] < 0))
		return eng_node_err(err, -EINVAL, n, "_skip needs a fourth input");
	return rc;
}

/* The LayerNormalization's input: X, or with a fused residual (`_skip`, set by the graph
 * optimiser: LN(X + R) for Add(X, R) -> LN) the broadcast of X and R, in *x. */
static int ln_input(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *x, char **err)
{
	*x = *in[0];
	if (n->n_in < 4 || !in[3])
		return 0;
	struct eng_tensor *pair[2] = { in[0], in[3] };
	if (eng_broadcast_shape(pair, 2, x))
		return eng_node_err(err, -EINVAL, n, "the residual does not broadcast with X");
	return 0;
}

/* Whether a fused residual is added row by row (R and X of the same shape, Scale and B full
 * rows) rather than summed into scratch first. */
static bool ln_skip_rowwise(struct eng_tensor *const *in, int64_t len)
{
	return in[3]->ndims == in[0]->ndims && !memcmp(in[3]->dims, in[0]->dims, in[0]->ndims * sizeof(int64_t)) &&
	       eng_numel(in[1]) == len && (!in[2] || eng_numel(in[2]) == len);
}

static int ln_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    size_t *scratch, char **err)
{
	struct eng_tensor xs;
	int rc = ln_input(n, in, &xs, err);
	if (rc)
		return rc;
	struct eng_tensor *const *given = in, *ins[3] = { &xs, in[1], n->n_in > 2 ? in[2] : NULL };
	in = ins;
	int r = in[0]->ndims;
	bool inst = !strcmp(n->op_type, "InstanceNormalization");
	if (inst) {
		if (r < 3 || eng_numel(in[1]) != in[0]->dims[1] || eng_numel(in[2]) != in[0]->dims[1])
			return eng_node_err(err, -EINVAL, n, "bad shapes");
	} else {
		int a = eng_axis(eg_attr_int(n, "axis", -1), r);
		if (a < 0 || r == 0)
			return eng_node_err(err, -EINVAL, n, "axis out of range");
		/* Scale and B broadcast onto the normalised block X.shape[axis:]. */
		for (int i = 1; i < n->n_in && i < 3; i++) {
			if (!in[i])
				continue;
			if (in[i]->ndims > r - a)
				return eng_node_err(err, -EINVAL, n, "input %d has too many dims", i);
			for (int d = 0; d < in[i]->ndims; d++) {
				int64_t xd = in[0]->dims[r - in[i]->ndims + d];
				if (in[i]->dims[d] != xd && in[i]->dims[d] != 1)
					return eng_node_err(err, -EINVAL, n, "input %d does not broadcast", i);
			}
		}
		for (int i = 1; i < n->n_out; i++)
			if (out[i]) {
				out[i]->ndims = r;
				for (int d = 0; d < r; d++)
					out[i]->dims[d] = d < a ? in[0]->dims[d] : 1;
			}
	}
	out[0]->ndims = r;
	memcpy(out[0]->dims, in[0]->dims, sizeof(in[0]->dims));
	if (n->n_in > 3 && given[3]) {
		int64_t len = 1;
		for (int d = eng_axis(eg_attr_int(n, "axis", -1), r); d < r; d++)
			len *= xs.dims[d];
		if (!ln_skip_rowwise(given, len))
			*scratch = (size_t)eng_numel(&xs) * sizeof(float);
	}
	return 0;
}

struct ln_job {
	bool inst;
	int64_t len, C;
	float eps;
	const float *x, *scale, *bias, *skip; /* skip: a residual of X's shape added row by row */
	int64_t scale_n, bias_n;
	float *y, *mean, *istd;
};

/* Mean and 1 / standard deviation of one row (inlined into the VM_VEC row functions). */
VM_INLINE void ln_moments(const float *restrict x, int64_t len, float eps, float *mean, float *istd)
{
	float sv[LANES] = { 0 };
	float s = 0;
	int64_t i = 0;
	for (; i + LANES <= len; i += LANES)
		for (int k = 0; k < LANES; k++)
			sv[k] += x[i + k];
	for (; i < len; i++)
		s += x[i];
	for (int k = 0; k < LANES; k++)
		s += sv[k];
	float m = s / (float)len;
	float qv[LANES] = { 0 };
	float q = 0;
	for (i = 0; i + LANES <= len; i += LANES)
		for (int k = 0; k < LANES; k++) {
			float d = x[i + k] - m;
			qv[k] += d * d;
		}
	for (; i < len; i++)
		q += (x[i] - m) * (x[i] - m);
	for (int k = 0; k < LANES; k++)
		q += qv[k];
	*mean = m;
	*istd = 1.0f / sqrtf(q / (float)len + eps);
}

/* LayerNormalization of one row with a full-length scale and optional bias. */
VM_VEC static void ln_row(const float *restrict x, float *restrict y, int64_t len, const float *restrict scale,
			  const float *restrict bias, float eps, float *mean, float *istd)
{
	float m, is;
	ln_moments(x, len, eps, &m, &is);
	*mean = m;
	*istd = is;
	if (bias)
		for (int64_t i = 0; i < len; i++)
			y[i] = (x[i] - m) * is * scale[i] + bias[i];
	else
		for (int64_t i = 0; i < len; i++)
			y[i] = (x[i] - m) * is * scale[i];
}

/* The same for the row x + r (a fused residual): the sum goes to y, still in L1 for the rest. */
VM_VEC static void ln_row_skip(const float *restrict x, const float *restrict r, float *restrict y, int64_t len,
			       const float *restrict scale, const float *restrict bias, float eps, float *mean,
			       float *istd)
{
	for (int64_t i = 0; i < len; i++)
		y[i] = x[i] + r[i];
	float m, is;
	ln_moments(y, len, eps, &m, &is);
	*mean = m;
	*istd = is;
	if (bias)
		for (int64_t i = 0; i < len; i++)
			y[i] = (y[i] - m) * is * scale[i] + bias[i];
	else
		for (int64_t i = 0; i < len; i++)
			y[i] = (y[i] - m) * is * scale[i];
}

/* Rows [r0, r1): normalise each row of len elements. */
static void ln_part(void *arg, int64_t r0, int64_t r1)
{
	const struct ln_job *j = arg;
	int64_t len = j->len;
	if (!j->inst && len > 0 && j->scale_n == len && (!j->bias || j->bias_n == len)) {
		for (int64_t r = r0; r < r1; r++) {
			float m, is;
			if (j->skip)
				ln_row_skip(j->x + r * len, j->skip + r * len, j->y + r * len, len, j->scale, j->bias,
					    j->eps, &m, &is);
			else
				ln_row(j->x + r * len, j->y + r * len, len, j->scale, j->bias, j->eps, &m, &is);
			if (j->mean)
				j->mean[r] = m;
			if (j->istd)
				j->istd[r] = is;
		}
		return;
	}
	for (int64_t r = r0; r < r1; r++) {
		const float *x = j->x + r * len;
		float *y = j->y + r * len;
		double s = 0, s2 = 0;
		for (int64_t i = 0; i < len; i++)
			s += x[i];
		float m = len ? (float)(s / len) : 0;
		for (int64_t i = 0; i < len; i++) {
			float d = x[i] - m;
			s2 += d * d;
		}
		float is = 1.0f / sqrtf((float)(len ? s2 / len : 0) + j->eps);
		if (j->mean)
			j->mean[r] = m;
		if (j->istd)
			j->istd[r] = is;
		if (j->inst) {
			int64_t c = r % j->C;
			float a = j->scale[c] * is, b = j->bias[c] - m * a;
			for (int64_t i = 0; i < len; i++)
				y[i] = x[i] * a + b;
			continue;
		}
		for (int64_t i = 0; i < len; i++) {
			float v = (x[i] - m) * is * j->scale[j->scale_n == len ? i : i % j->scale_n];
			if (j->bias)
				v += j->bias[j->bias_n == len ? i : i % j->bias_n];
			y[i] = v;
		}
	}
}

static int ln_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		  void *scratch, struct eng_ctx *ctx, char **err)
{
	struct eng_tensor xs;
	int rc = ln_input(n, in, &xs, err);
	if (rc)
		return rc;
	int r = xs.ndims;
	bool inst = !strcmp(n->op_type, "InstanceNormalization");
	int a = inst ? 2 : eng_axis(eg_attr_int(n, "axis", -1), r);
	int64_t rows = 1, len = 1;
	for (int d = 0; d < r; d++)
		*(d < a ? &rows : &len) *= xs.dims[d];
	const float *x = in[0]->data, *skip = NULL;
	if (n->n_in > 3 && in[3]) {
		if (ln_skip_rowwise(in, len)) {
			skip = in[3]->data;
		} else { /* X + R broadcast, summed into scratch first */
			bcast_add_f32(in[0], in[0]->data, in[3], in[3]->data, &xs, scratch, ctx->pool);
			x = scratch;
		}
	}
	struct ln_job j = { inst, len, inst ? xs.dims[1] : 1, eg_attr_float(n, "epsilon", 1e-5f), x,
			    in[1]->data, n->n_in > 2 && in[2] ? in[2]->data : NULL, skip, eng_numel(in[1]),
			    n->n_in > 2 && in[2] ? eng_numel(in[2]) : 1, out[0]->data,
			    n->n_out > 1 && out[1] ? out[1]->data : NULL, n->n_out > 2 && out[2] ? out[2]->data : NULL };
	if (!inst) {
		/* A scale or bias smaller than the row must tile it exactly (a trailing broadcast). */
		if ((j.scale_n != len && (j.scale_n != 1 && len % j.scale_n)) ||
		    (j.bias && j.bias_n != len && j.bias_n != 1 && len % j.bias_n))
			return eng_node_err(err, -ENOTSUP, n, "this broadcast of Scale/B is not supported");
	}
	tpool_for(ctx->pool, rows, 1 + 16384 / (len + 1), ln_part, &j);
	return 0;
}

const struct eng_op eng_ops_norm[] = {
	{ "Softmax", 1, ENG_OPSET_LATEST, DTM_FLOAT, "axis", ENG_OP_INPLACE, softmax_prepare, same_infer, softmax_run, 0 },
	{ "LogSoftmax", 1, ENG_OPSET_LATEST, DTM_FLOAT, "axis", ENG_OP_INPLACE, softmax_prepare, same_infer,
	  softmax_run, 0 },
	{ "BatchNormalization", 9, ENG_OPSET_LATEST, DTM_FLOAT, "epsilon momentum training_mode", 0, bn_prepare,
	  bn_infer, bn_run, 0 },
	{ "LayerNormalization", 17, ENG_OPSET_LATEST, DTM_FLOAT, "axis epsilon stash_type _skip", 0, ln_prepare, ln_infer,
	  ln_run, 0 },
	{ "InstanceNormalization", 6, ENG_OPSET_LATEST, DTM_FLOAT, "epsilon", 0, ln_prepare, ln_infer, ln_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
