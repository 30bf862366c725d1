/* pool.c - MaxPool (with Indices), AveragePool, GlobalAveragePool, GlobalMaxPool (fp32, N-D). */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vmath.h"
#include "threadpool.h"

static int pool_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool maxp = !strcmp(n->op_type, "MaxPool");
	int rc = eng_check_arity(n, 1, 1, maxp ? 2 : 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (rc)
		return rc;
	if (strncmp(n->op_type, "Global", 6) && !eg_attr_find(n, "kernel_shape"))
		return eng_node_err(err, -EINVAL, n, "attribute 'kernel_shape' is required");
	int64_t so = eg_attr_int(n, "storage_order", 0);
	if (so != 0 && so != 1)
		return eng_node_err(err, -EINVAL, n, "storage_order must be 0 or 1");
	eng_set_out_dtype(g, n, 0, DT_FP32);
	eng_set_out_dtype(g, n, 1, DT_INT64);
	return 0;
}

/* Geometry of a windowed pool. */
static int pool_geom(const struct eg_node *n, const struct eng_tensor *X, struct eng_win *w, char **err)
{
	int k = X->ndims - 2;
	if (k < 1)
		return eng_node_err(err, -EINVAL, n, "input rank must be >= 3");
	size_t ck;
	const int64_t *ks = eg_attr_ints(n, "kernel_shape", &ck);
	if (!ks || (int)ck != k)
		return eng_node_err(err, -EINVAL, n, "kernel_shape must have %d dims", k);
	return eng_win_geom(n, k, X->dims + 2, ks, eg_attr_int(n, "ceil_mode", 0) != 0, w, err);
}

static int pool_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	struct eng_win w;
	int rc = pool_geom(n, in[0], &w, err);
	if (rc)
		return rc;
	for (int j = 0; j < n->n_out; j++) {
		if (!out[j])
			continue;
		out[j]->ndims = in[0]->ndims;
		out[j]->dims[0] = in[0]->dims[0];
		out[j]->dims[1] = in[0]->dims[1];
		for (int i = 0; i < w.k; i++)
			out[j]->dims[2 + i] = w.out[i];
	}
	return 0;
}

struct pool_job {
	const struct eng_win *w;
	bool maxp, include_pad, col_major;
	const float *x;
	float *y;
	int64_t *ind;
	int64_t isz, osz, ksz;
};

/* Planes [p0, p1) (a plane is one image's channel). */
static void pool_part(void *arg, int64_t p0, int64_t p1)
{
	const struct pool_job *j = arg;
	const struct eng_win *w = j->w;
	int k = w->k;
	for (int64_t p = p0; p < p1; p++) {
		const float *x = j->x + p * j->isz;
		float *y = j->y + p * j->osz;
		int64_t oidx[TENSOR_MAX_DIMS] = { 0 };
		for (int64_t o = 0; o < j->osz; o++) {
			int64_t kidx[TENSOR_MAX_DIMS] = { 0 };
			float best = -INFINITY, sum = 0;
			int64_t best_at = -1, cnt = 0, cnt_pad = 0;
			for (int64_t kk = 0; kk < j->ksz; kk++) {
				bool in = true, in_pad = true;
				int64_t off = 0;
				for (int d = 0; d < k; d++) {
					int64_t q = oidx[d] * w->stride[d] - w->pb[d] + kidx[d] * w->dil[d];
					if (q < 0 || q >= w->in[d])
						in = false;
					if (q < -w->pb[d] || q >= w->in[d] + w->pe[d])
						in_pad = false;
					off = off * w->in[d] + q;
				}
				cnt_pad += in_pad;
				if (in) {
					float v = x[off];
					cnt++;
					sum += v;
					if (v > best || best_at < 0) {
						best = v;
						best_at = off;
					}
				}
				for (int d = k - 1; d >= 0; d--) {
					if (++kidx[d] < w->kern[d])
						break;
					kidx[d] = 0;
				}
			}
			if (j->maxp) {
				y[o] = best_at < 0 ? -INFINITY : best;
				if (j->ind) {
					int64_t at = best_at < 0 ? 0 : best_at;
					if (j->col_major) {
						/* Column-major position of the same spatial element. */
						int64_t rem = at, cm = 0, m = 1, idx[TENSOR_MAX_DIMS];
						for (int d = k - 1; d >= 0; d--) {
							idx[d] = rem % w->in[d];
							rem /= w->in[d];
						}
						for (int d = 0; d < k; d++) {
							cm += idx[d] * m;
							m *= w->in[d];
						}
						at = cm;
					}
					j->ind[p * j->osz + o] = p * j->isz + at;
				}
			} else {
				int64_t div = j->include_pad ? cnt_pad : cnt;
				y[o] = div ? sum / (float)div : 0.0f;
			}
			for (int d = k - 1; d >= 0; d--) {
				if (++oidx[d] < w->out[d])
					break;
				oidx[d] = 0;
			}
		}
	}
}

/* ---- fast path: 1-D and 2-D pools without an Indices output ----
 * Per output row, the kernel rows are first combined column by column into a row t that
 * spans every column any window of the row touches (input column c is t[c + pb]; columns
 * in the padding or past it hold -inf for MaxPool, 0 for AveragePool); each output is then
 * the max or sum of kw entries of t. Both passes are branch-free contiguous (or stride-2)
 * loops the compiler vectorises; AveragePool's divisor factors into a row count times a
 * column count. */

#define POOL_ROW_MAX 4096 /* longest t (floats, on the stack) the fast path handles */

/* t[i] = x[i] (first row) or max / sum of t[i] and x[i]. */
VM_VEC static void pool_vert(float *restrict t, const float *restrict x, int64_t n, bool first, bool maxp)
{
	if (first)
		for (int64_t i = 0; i < n; i++)
			t[i] = x[i];
	else if (maxp)
		for (int64_t i = 0; i < n; i++)
			t[i] = x[i] > t[i] ? x[i] : t[i];
	else
		for (int64_t i = 0; i < n; i++)
			t[i] += x[i];
}

/* y[o] = max / sum over k < kw of t[o * s + k * d], for s == 1, 2 or any. */
VM_VEC static void pool_horiz(float *restrict y, const float *restrict t, int64_t n, int64_t s, int64_t d, int64_t kw,
			      bool maxp)
{
	if (s == 1) {
		for (int64_t o = 0; o < n; o++)
			y[o] = t[o];
		for (int64_t k = 1; k < kw; k++) {
			const float *tk = t + k * d;
			if (maxp)
				for (int64_t o = 0; o < n; o++)
					y[o] = tk[o] > y[o] ? tk[o] : y[o];
			else
				for (int64_t o = 0; o < n; o++)
					y[o] += tk[o];
		}
	} else if (s == 2) {
		for (int64_t o = 0; o < n; o++)
			y[o] = t[2 * o];
		for (int64_t k = 1; k < kw; k++) {
			const float *tk = t + k * d;
			if (maxp)
				for (int64_t o = 0; o < n; o++)
					y[o] = tk[2 * o] > y[o] ? tk[2 * o] : y[o];
			else
				for (int64_t o = 0; o < n; o++)
					y[o] += tk[2 * o];
		}
	} else {
		for (int64_t o = 0; o < n; o++)
			y[o] = t[s * o];
		for (int64_t k = 1; k < kw; k++) {
			const float *tk = t + k * d;
			if (maxp)
				for (int64_t o = 0; o < n; o++)
					y[o] = tk[s * o] > y[o] ? tk[s * o] : y[o];
			else
				for (int64_t o = 0; o < n; o++)
					y[o] += tk[s * o];
		}
	}
}

/* y[o] /= rows * cols[o]. */
VM_VEC static void pool_avg_div(float *restrict y, const float *restrict cols, int64_t n, float rows)
{
	for (int64_t o = 0; o < n; o++) {
		float div = rows * cols[o];
		y[o] = div > 0 ? y[o] / div : 0.0f;
	}
}

/* Whether the fast path applies: spatial rank 1 or 2, no Indices, rows short enough. */
static bool pool_fast_ok(const struct pool_job *j)
{
	const struct eng_win *w = j->w;
	if (j->ind || w->k > 2)
		return false;
	int x = w->k - 1; /* the column dim */
	int64_t len = (w->out[x] - 1) * w->stride[x] + (w->kern[x] - 1) * w->dil[x] + 1;
	return w->out[x] >= 1 && len <= POOL_ROW_MAX && w->out[x] <= POOL_ROW_MAX;
}

/* Planes [p0, p1) on the fast path (pool_fast_ok holds). */
static void pool_fast_part(void *arg, int64_t p0, int64_t p1)
{
	const struct pool_job *j = arg;
	const struct eng_win *w = j->w;
	int x = w->k - 1;
	bool two = w->k == 2;
	int64_t H = two ? w->in[0] : 1, OH = two ? w->out[0] : 1, KH = two ? w->kern[0] : 1;
	int64_t SH = two ? w->stride[0] : 1, DH = two ? w->dil[0] : 1, PH = two ? w->pb[0] : 0;
	int64_t PHE = two ? w->pe[0] : 0;
	int64_t W = w->in[x], OW = w->out[x], KW = w->kern[x], SW = w->stride[x], DW = w->dil[x];
	int64_t PW = w->pb[x], PWE = w->pe[x];
	int64_t len = (OW - 1) * SW + (KW - 1) * DW + 1;
	float fill = j->maxp ? -INFINITY : 0.0f;
	float t[POOL_ROW_MAX], cols[POOL_ROW_MAX];
	/* t[i] is input column i - PW: the part [c0, c1) of t that holds input columns. */
	int64_t c0 = PW < len ? PW : len, c1 = PW + W < len ? PW + W : len;
	if (!j->maxp)
		for (int64_t o = 0; o < OW; o++) {
			int64_t c = 0;
			for (int64_t k = 0; k < KW; k++) {
				int64_t q = o * SW - PW + k * DW;
				c += j->include_pad ? (q >= -PW && q < W + PWE) : (q >= 0 && q < W);
			}
			cols[o] = (float)c;
		}
	for (int64_t p = p0; p < p1; p++) {
		const float *xp = j->x + p * j->isz;
		float *yp = j->y + p * j->osz;
		for (int64_t oh = 0; oh < OH; oh++) {
			int64_t rows = 0;
			bool first = true;
			for (int64_t k = 0; k < KH; k++) {
				int64_t r = oh * SH - PH + k * DH;
				if (j->include_pad ? (r >= -PH && r < H + PHE) : (r >= 0 && r < H))
					rows++;
				if (r < 0 || r >= H)
					continue;
				pool_vert(t + c0, xp + r * W + (c0 - PW), c1 - c0, first, j->maxp);
				first = false;
			}
			for (int64_t i = 0; i < c0; i++)
				t[i] = fill;
			for (int64_t i = first ? c0 : c1; i < len; i++)
				t[i] = fill;
			float *y = yp + oh * OW;
			pool_horiz(y, t, OW, SW, DW, KW, j->maxp);
			if (!j->maxp)
				pool_avg_div(y, cols, OW, (float)rows);
		}
	}
}

/* nChw8c input and output (2-D, no Indices): rows [r0, r1) of (image, block of 8 channels,
 * output row). As on the fast path, the window's input rows are first combined into one row t
 * (8 channels per column, contiguous vector loops), then each output combines kw columns of t. */
#define POOL8_W_MAX 2048 /* widest input row (columns) the blocked path keeps on the stack */
VM_VEC static void pool_part8(void *arg, int64_t r0, int64_t r1)
{
	const struct pool_job *j = arg;
	const struct eng_win *w = j->w;
	int64_t H = w->in[0], W = w->in[1], OH = w->out[0], OW = w->out[1];
	float t[POOL8_W_MAX * 8];
	for (int64_t r = r0; r < r1; r++) {
		int64_t pl = r / OH, oh = r % OH, h0 = oh * w->stride[0] - w->pb[0], rows = 0, rows_pad = 0;
		const float *restrict x = j->x + pl * H * W * 8;
		float *restrict y = j->y + (pl * OH + oh) * OW * 8;
		for (int64_t kh = 0; kh < w->kern[0]; kh++) {
			int64_t ih = h0 + kh * w->dil[0];
			rows_pad += ih >= -w->pb[0] && ih < H + w->pe[0];
			if (ih < 0 || ih >= H)
				continue;
			pool_vert(t, x + ih * W * 8, W * 8, rows == 0, j->maxp);
			rows++;
		}
		for (int64_t ow = 0; ow < OW; ow++) {
			int64_t w0 = ow * w->stride[1] - w->pb[1], cols = 0, cols_pad = 0;
			float acc[8];
			for (int l = 0; l < 8; l++)
				acc[l] = j->maxp ? -INFINITY : 0.0f;
			for (int64_t kw = 0; rows && kw < w->kern[1]; kw++) {
				int64_t iw = w0 + kw * w->dil[1];
				cols_pad += iw >= -w->pb[1] && iw < W + w->pe[1];
				if (iw < 0 || iw >= W)
					continue;
				cols++;
				const float *v = t + iw * 8;
				if (j->maxp)
					for (int l = 0; l < 8; l++)
						acc[l] = v[l] > acc[l] ? v[l] : acc[l];
				else
					for (int l = 0; l < 8; l++)
						acc[l] += v[l];
			}
			if (!rows) /* count the padded columns all the same */
				for (int64_t kw = 0; kw < w->kern[1]; kw++) {
					int64_t iw = w0 + kw * w->dil[1];
					cols_pad += iw >= -w->pb[1] && iw < W + w->pe[1];
				}
			float div = (float)(j->include_pad ? rows_pad * cols_pad : rows * cols);
			for (int l = 0; l < 8; l++)
				y[ow * 8 + l] = j->maxp ? acc[l] : div > 0 ? acc[l] / div : 0.0f;
		}
	}
}

static int pool_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	struct eng_win w;
	int rc = pool_geom(n, in[0], &w, err);
	if (rc)
		return rc;
	struct pool_job j = { &w, !strcmp(n->op_type, "MaxPool"), eg_attr_int(n, "count_include_pad", 0) != 0,
			      eg_attr_int(n, "storage_order", 0) == 1, in[0]->data, out[0]->data,
			      n->n_out > 1 && out[1] ? out[1]->data : NULL, 1, 1, 1 };
	for (int i = 0; i < w.k; i++) {
		j.isz *= w.in[i];
		j.osz *= w.out[i];
		j.ksz *= w.kern[i];
	}
	int64_t planes = in[0]->dims[0] * in[0]->dims[1];
	if (in[0]->layout == ENG_LAYOUT_NCHW8C || out[0]->layout == ENG_LAYOUT_NCHW8C) {
		/* the plan blocks only 2-D pools without Indices, input and output together */
		if (w.k != 2 || j.ind || in[0]->layout != out[0]->layout || w.in[1] > POOL8_W_MAX)
			return eng_node_err(err, -EIO, n, "internal: no kernel for its blocked layout");
		tpool_for(ctx->pool, planes / 8 * w.out[0], 1 + 16384 / (w.out[1] * j.ksz * 8 + 1), pool_part8, &j);
		return 0;
	}
	if (pool_fast_ok(&j)) {
		int x = w.k - 1;
		int64_t len = (w.out[x] - 1) * w.stride[x] + (w.kern[x] - 1) * w.dil[x] + 1;
		int64_t rows = w.k == 2 ? w.out[0] : 1, kh = w.k == 2 ? w.kern[0] : 1;
		int64_t cost = rows * (kh * len + w.kern[x] * w.out[x]) + 1; /* per plane */
		tpool_for(ctx->pool, planes, 1 + 262144 / cost, pool_fast_part, &j);
		return 0;
	}
	tpool_for(ctx->pool, planes, 1 + 65536 / (j.osz * j.ksz + 1), pool_part, &j);
	return 0;
}

/* ---- global pools ---- */

static int gpool_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       size_t *scratch, char **err)
{
	if (in[0]->ndims < 3)
		return eng_node_err(err, -EINVAL, n, "input rank must be >= 3");
	out[0]->ndims = in[0]->ndims;
	out[0]->dims[0] = in[0]->dims[0];
	out[0]->dims[1] = in[0]->dims[1];
	for (int i = 2; i < in[0]->ndims; i++)
		out[0]->dims[i] = 1;
	return 0;
}

struct gpool_job {
	bool maxp;
	const float *x;
	float *y;
	int64_t isz;
};

#define GP_LANES 16

/* Maximum (maxp) or sum of a contiguous run, with GP_LANES partial results so that it
 * vectorises. */
VM_VEC static float gpool_row(const float *restrict x, int64_t n, bool maxp)
{
	float v[GP_LANES], acc = maxp ? -INFINITY : 0.0f;
	for (int k = 0; k < GP_LANES; k++)
		v[k] = acc;
	int64_t i = 0;
	if (maxp) {
		for (; i + GP_LANES <= n; i += GP_LANES)
			for (int k = 0; k < GP_LANES; k++)
				v[k] = x[i + k] > v[k] ? x[i + k] : v[k];
		for (; i < n; i++)
			acc = x[i] > acc ? x[i] : acc;
		for (int k = 0; k < GP_LANES; k++)
			acc = v[k] > acc ? v[k] : acc;
		return acc;
	}
	for (; i + GP_LANES <= n; i += GP_LANES)
		for (int k = 0; k < GP_LANES; k++)
			v[k] += x[i + k];
	for (; i < n; i++)
		acc += x[i];
	for (int k = 0; k < GP_LANES; k++)
		acc += v[k];
	return acc;
}

/* Planes [p0, p1). */
static void gpool_part(void *arg, int64_t p0, int64_t p1)
{
	const struct gpool_job *j = arg;
	for (int64_t p = p0; p < p1; p++) {
		float r = gpool_row(j->x + p * j->isz, j->isz, j->maxp);
		j->y[p] = j->maxp ? r : j->isz ? r / (float)j->isz : 0.0f;
	}
}

/* nChw8c input: blocks [p0, p1) of 8 channels; each pixel holds 8 consecutive channels. */
VM_VEC static void gpool_part8(void *arg, int64_t p0, int64_t p1)
{
	const struct gpool_job *j = arg;
	for (int64_t p = p0; p < p1; p++) {
		const float *restrict x = j->x + p * j->isz * 8;
		float acc[8];
		for (int k = 0; k < 8; k++)
			acc[k] = j->maxp ? -INFINITY : 0.0f;
		if (j->maxp) {
			for (int64_t i = 0; i < j->isz; i++)
				for (int k = 0; k < 8; k++)
					acc[k] = x[i * 8 + k] > acc[k] ? x[i * 8 + k] : acc[k];
		} else {
			for (int64_t i = 0; i < j->isz; i++)
				for (int k = 0; k < 8; k++)
					acc[k] += x[i * 8 + k];
		}
		for (int k = 0; k < 8; k++)
			j->y[p * 8 + k] = j->maxp ? acc[k] : j->isz ? acc[k] / (float)j->isz : 0.0f;
	}
}

static int gpool_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	struct gpool_job j = { !strcmp(n->op_type, "GlobalMaxPool"), in[0]->data, out[0]->data, 1 };
	for (int i = 2; i < in[0]->ndims; i++)
		j.isz *= in[0]->dims[i];
	/* Output [N, C, 1, 1] is the same in either layout; blocks of 8 channels are image-major. */
	if (in[0]->layout == ENG_LAYOUT_NCHW8C) {
		tpool_for(ctx->pool, in[0]->dims[0] * in[0]->dims[1] / 8, 1 + 8192 / (j.isz + 1), gpool_part8, &j);
		return 0;
	}
	tpool_for(ctx->pool, in[0]->dims[0] * in[0]->dims[1], 1 + 65536 / (j.isz + 1), gpool_part, &j);
	return 0;
}

const struct eng_op eng_ops_pool[] = {
	{ "MaxPool", 1, ENG_OPSET_LATEST, DTM_FLOAT,
	  "auto_pad ceil_mode dilations kernel_shape pads storage_order strides", 0, pool_prepare, pool_infer,
	  pool_run, 0 },
	{ "AveragePool", 1, ENG_OPSET_LATEST, DTM_FLOAT,
	  "auto_pad ceil_mode count_include_pad dilations kernel_shape pads strides", 0, pool_prepare,
	  pool_infer, pool_run, 0 },
	{ "GlobalAveragePool", 1, ENG_OPSET_LATEST, DTM_FLOAT, "", 0, pool_prepare, gpool_infer, gpool_run, 0 },
	{ "GlobalMaxPool", 1, ENG_OPSET_LATEST, DTM_FLOAT, "", 0, pool_prepare, gpool_infer, gpool_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
