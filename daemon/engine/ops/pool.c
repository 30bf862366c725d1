/* pool.c - MaxPool (with Indices), AveragePool, GlobalAveragePool, GlobalMaxPool (fp32, N-D). */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/ops.h"
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

/* Planes [p0, p1). */
static void gpool_part(void *arg, int64_t p0, int64_t p1)
{
	const struct gpool_job *j = arg;
	for (int64_t p = p0; p < p1; p++) {
		const float *x = j->x + p * j->isz;
		if (j->maxp) {
			float m = -INFINITY;
			for (int64_t i = 0; i < j->isz; i++)
				m = x[i] > m ? x[i] : m;
			j->y[p] = m;
		} else {
			double s = 0;
			for (int64_t i = 0; i < j->isz; i++)
				s += x[i];
			j->y[p] = j->isz ? (float)(s / (double)j->isz) : 0.0f;
		}
	}
}

static int gpool_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	struct gpool_job j = { !strcmp(n->op_type, "GlobalMaxPool"), in[0]->data, out[0]->data, 1 };
	for (int i = 2; i < in[0]->ndims; i++)
		j.isz *= in[0]->dims[i];
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
