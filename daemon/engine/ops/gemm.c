/* gemm.c - Gemm and MatMul (fp32) on the sgemm kernel. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/ops.h"
#include "threadpool.h"

void eng_broadcast_copy(const struct eng_tensor *src, struct eng_tensor *dst, struct tpool *pool);

/* ---- Gemm ---- */

static int gemm_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 2, 3, 1, err);
	for (int i = 0; !rc && i < n->n_in; i++)
		if (n->in[i] >= 0)
			rc = eng_check_type(g, n, i, n->op->types, err);
	if (rc)
		return rc;
	eng_set_out_dtype(g, n, 0, DT_FP32);
	return 0;
}

static int gemm_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	if (in[0]->ndims != 2 || in[1]->ndims != 2)
		return eng_node_err(err, -EINVAL, n, "A and B must be 2-D");
	bool ta = eg_attr_int(n, "transA", 0), tb = eg_attr_int(n, "transB", 0);
	int64_t M = in[0]->dims[ta ? 1 : 0], K = in[0]->dims[ta ? 0 : 1];
	int64_t K2 = in[1]->dims[tb ? 1 : 0], N = in[1]->dims[tb ? 0 : 1];
	if (K != K2)
		return eng_node_err(err, -EINVAL, n, "inner dims differ (%lld, %lld)", (long long)K, (long long)K2);
	out[0]->ndims = 2;
	out[0]->dims[0] = M;
	out[0]->dims[1] = N;
	if (n->n_in > 2 && in[2]) {
		struct eng_tensor b;
		struct eng_tensor *ts[2] = { out[0], in[2] };
		if (in[2]->ndims > 2 || eng_broadcast_shape(ts, 2, &b) || b.dims[0] != M || b.dims[1] != N)
			return eng_node_err(err, -EINVAL, n, "C does not broadcast to [%lld, %lld]", (long long)M,
					    (long long)N);
	}
	return 0;
}

static int gemm_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	bool ta = eg_attr_int(n, "transA", 0), tb = eg_attr_int(n, "transB", 0);
	float alpha = eg_attr_float(n, "alpha", 1.0f), beta = eg_attr_float(n, "beta", 1.0f);
	int64_t M = out[0]->dims[0], N = out[0]->dims[1], K = in[0]->dims[ta ? 0 : 1];
	float *y = out[0]->data;
	float b = 0;
	if (n->n_in > 2 && in[2] && beta != 0) {
		eng_broadcast_copy(in[2], out[0], ctx->pool);
		if (beta != 1)
			for (int64_t i = 0; i < M * N; i++)
				y[i] *= beta;
		b = 1;
	}
	if (K == 0) {
		if (b == 0)
			memset(y, 0, M * N * sizeof(float));
		return 0;
	}
	kgemm(ta, tb, M, N, K, alpha, in[0]->data, in[0]->dims[1], in[1]->data, in[1]->dims[1], b, y, N, ctx->pool);
	return 0;
}

/* ---- MatMul ---- */

static int matmul_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 2, 2, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (!rc)
		rc = eng_check_type(g, n, 1, n->op->types, err);
	if (rc)
		return rc;
	eng_set_out_dtype(g, n, 0, DT_FP32);
	return 0;
}

/* Shapes of a MatMul: batch dims (broadcast), M, K, N; 1-D operands promoted. */
struct mm_geom {
	int nb; /* batch rank */
	int64_t batch[TENSOR_MAX_DIMS];
	int64_t M, K, N;
	struct eng_tensor a, b; /* batch-only views of the inputs' shapes */
};

static int mm_geom(const struct eg_node *n, const struct eng_tensor *A, const struct eng_tensor *B,
		   struct mm_geom *g, struct eng_tensor *out, char **err)
{
	if (A->ndims < 1 || B->ndims < 1)
		return eng_node_err(err, -EINVAL, n, "operands must have rank >= 1");
	g->M = A->ndims == 1 ? 1 : A->dims[A->ndims - 2];
	g->K = A->dims[A->ndims - 1];
	int64_t kb = B->ndims == 1 ? B->dims[0] : B->dims[B->ndims - 2];
	g->N = B->ndims == 1 ? 1 : B->dims[B->ndims - 1];
	if (g->K != kb)
		return eng_node_err(err, -EINVAL, n, "inner dims differ (%lld, %lld)", (long long)g->K, (long long)kb);
	memset(&g->a, 0, sizeof(g->a));
	memset(&g->b, 0, sizeof(g->b));
	g->a.ndims = A->ndims > 2 ? A->ndims - 2 : 0;
	g->b.ndims = B->ndims > 2 ? B->ndims - 2 : 0;
	memcpy(g->a.dims, A->dims, g->a.ndims * sizeof(int64_t));
	memcpy(g->b.dims, B->dims, g->b.ndims * sizeof(int64_t));
	struct eng_tensor bt;
	struct eng_tensor *ts[2] = { &g->a, &g->b };
	if (eng_broadcast_shape(ts, 2, &bt))
		return eng_node_err(err, -EINVAL, n, "batch dims do not broadcast");
	g->nb = bt.ndims;
	memcpy(g->batch, bt.dims, sizeof(bt.dims));
	if (out) {
		int k = 0;
		for (int i = 0; i < g->nb; i++)
			out->dims[k++] = g->batch[i];
		if (A->ndims > 1)
			out->dims[k++] = g->M;
		if (B->ndims > 1)
			out->dims[k++] = g->N;
		out->ndims = k;
	}
	return 0;
}

static int matmul_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			size_t *scratch, char **err)
{
	struct mm_geom g;
	return mm_geom(n, in[0], in[1], &g, out[0], err);
}

static int matmul_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      void *scratch, struct eng_ctx *ctx, char **err)
{
	struct mm_geom g;
	int rc = mm_geom(n, in[0], in[1], &g, NULL, err);
	if (rc)
		return rc;
	const float *A = in[0]->data, *B = in[1]->data;
	float *C = out[0]->data;
	int64_t M = g.M, N = g.N, K = g.K, nbatch = 1;
	for (int i = 0; i < g.nb; i++)
		nbatch *= g.batch[i];
	if (K == 0) {
		memset(C, 0, out[0]->bytes);
		return 0;
	}
	/* B without batch dims: fold A's batch into M (one big GEMM). */
	if (g.b.ndims == 0 || eng_numel(&g.b) == 1) {
		int64_t rows = nbatch * M;
		if (eng_numel(&g.a) == nbatch) {
			kgemm(false, false, rows, N, K, 1.0f, A, K, B, N, 0.0f, C, N, ctx->pool);
			return 0;
		}
	}
	/* General case: one GEMM per batch index, with broadcast offsets. */
	int64_t idx[TENSOR_MAX_DIMS] = { 0 };
	for (int64_t bi = 0; bi < nbatch; bi++) {
		int64_t oa = 0, ob = 0, sa = 1, sb = 1;
		for (int d = g.nb - 1; d >= 0; d--) {
			int da = d - (g.nb - g.a.ndims), db = d - (g.nb - g.b.ndims);
			if (da >= 0) {
				if (g.a.dims[da] != 1)
					oa += idx[d] * sa;
				sa *= g.a.dims[da];
			}
			if (db >= 0) {
				if (g.b.dims[db] != 1)
					ob += idx[d] * sb;
				sb *= g.b.dims[db];
			}
		}
		kgemm(false, false, M, N, K, 1.0f, A + oa * M * K, K, B + ob * K * N, N, 0.0f, C + bi * M * N, N,
		      ctx->pool);
		for (int d = g.nb - 1; d >= 0; d--) {
			if (++idx[d] < g.batch[d])
				break;
			idx[d] = 0;
		}
	}
	return 0;
}

const struct eng_op eng_ops_gemm[] = {
	{ "Gemm", 7, ENG_OPSET_LATEST, DTM_FLOAT, "alpha beta transA transB", 0, gemm_prepare, gemm_infer,
	  gemm_run, 0 },
	{ "MatMul", 1, ENG_OPSET_LATEST, DTM_FLOAT, "", 0, matmul_prepare, matmul_infer, matmul_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
