/* gemm.c - Gemm and MatMul (fp32) on the sgemm kernel. A constant 2-D B (the weights of a
 * fully connected layer) is packed once at load time (eng_gemm_pack_weights, after the graph
 * rewrites) into room reserved in the node's params, and the original is freed when nothing
 * else reads it; bias and the fused activation (`_act...`; MatMul's `_bias=1` third input,
 * set by the graph optimiser) run in the GEMM's epilogue. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/gemm.h"
#include "ops/ops.h"
#include "threadpool.h"
#include "util.h"

void eng_broadcast_copy(const struct eng_tensor *src, struct eng_tensor *dst, struct tpool *pool);

/* Per-node state: room for a packed constant B, filled at load time (or at the first run if
 * the constant changed after that). One allocation (the graph frees params with free()); the
 * mutex holds no resources. */
struct mm_params {
	const struct eg_graph *g;
	pthread_mutex_t mu;
	const void *_Atomic src; /* B data the packed copy was made from; NULL until packed */
	bool sole; /* the packed copy is all there is: B's data was freed */
	bool trans; /* B stored N x K */
	int64_t K, N;
	struct kgemm_packed pk;
	float *room; /* 64-byte aligned, inside this block */
};

/* Reserve room to pack input 1 when it is a constant 2-D fp32 matrix. */
static int reserve_b(struct eg_graph *g, struct eg_node *n, bool trans, char **err)
{
	const struct eng_tensor *b = g->values[n->in[1]].konst;
	if (!b || b->dtype != DT_FP32 || b->ndims != 2 || b->dims[0] < 1 || b->dims[1] < 1)
		return 0;
	int64_t K = b->dims[trans ? 1 : 0], N = b->dims[trans ? 0 : 1];
	size_t head = (sizeof(struct mm_params) + 63) & ~(size_t)63;
	struct mm_params *p = acc_alloc_big(head + kgemm_pack_b_bytes(K, N));
	if (!p)
		return eng_node_err(err, -ENOMEM, n, "no memory for packed weights");
	memset(p, 0, head);
	p->g = g;
	pthread_mutex_init(&p->mu, NULL);
	p->trans = trans;
	p->K = K;
	p->N = N;
	p->room = (float *)((char *)p + head);
	n->params = p;
	return 0;
}

/* The packed B (packing it on first use), or NULL when B is not the constant reserved for. */
static const struct kgemm_packed *packed_b(const struct eg_node *n, const struct eng_tensor *B, bool trans)
{
	struct mm_params *p = n->params;
	if (!p || p->trans != trans || B->ndims != 2 || B->dims[trans ? 1 : 0] != p->K || B->dims[trans ? 0 : 1] != p->N)
		return NULL;
	const struct eng_tensor *k = p->g->values[n->in[1]].konst;
	if (p->sole && k && kgemm_packed_ok(&p->pk))
		return &p->pk;
	if (!k || k->data != B->data || !B->data)
		return NULL;
	if (atomic_load(&p->src) == B->data && kgemm_packed_ok(&p->pk))
		return &p->pk;
	pthread_mutex_lock(&p->mu);
	if (!(atomic_load(&p->src) == B->data && kgemm_packed_ok(&p->pk))) {
		kgemm_pack_b_to(&p->pk, trans, p->K, p->N, B->data, B->dims[1], p->room);
		atomic_store(&p->src, B->data);
	}
	pthread_mutex_unlock(&p->mu);
	return &p->pk;
}

/* Whether node n is a Gemm or MatMul whose params hold room for its input 1. */
static struct mm_params *mm_params_of(const struct eg_node *n)
{
	if (n->dead || !n->op || (n->op->run != eng_ops_gemm[0].run && n->op->run != eng_ops_gemm[1].run))
		return NULL;
	return n->n_in > 1 ? n->params : NULL;
}

/* The constant B node n can pack (room reserved for exactly its shape), or NULL. */
static const struct eng_tensor *packable_b(const struct eg_graph *g, const struct eg_node *n, struct mm_params **pp)
{
	struct mm_params *p = mm_params_of(n);
	const struct eng_tensor *k = p && n->in[1] >= 0 ? g->values[n->in[1]].konst : NULL;
	if (!k || !k->data || k->dtype != DT_FP32 || k->ndims != 2 || k->dims[p->trans ? 1 : 0] != p->K ||
	    k->dims[p->trans ? 0 : 1] != p->N)
		return NULL;
	*pp = p;
	return k;
}

int eng_gemm_pack_weights(struct eg_graph *g)
{
	/* A constant can go once packed when every reader is a node that packs it as B: count
	 * those readers, rule out values read any other way, then pack node by node and free each
	 * original as soon as its last reader has packed it (so one layer at a time is doubled). */
	int *left = xcalloc(g->n_values + 1, sizeof(int));
	bool *keep = xcalloc(g->n_values + 1, sizeof(bool));
	for (int i = 0; i < g->n_outputs; i++)
		keep[g->outputs[i]] = true;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct eg_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		struct mm_params *p;
		bool packs = packable_b(g, n, &p) != NULL;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0) {
				if (j == 1 && packs)
					left[n->in[j]]++;
				else
					keep[n->in[j]] = true;
			}
	}
	int packed = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		struct eg_node *n = &g->nodes[i];
		struct mm_params *p;
		const struct eng_tensor *k = n->dead ? NULL : packable_b(g, n, &p);
		if (!k)
			continue;
		kgemm_pack_b_to(&p->pk, p->trans, p->K, p->N, k->data, k->dims[1], p->room);
		atomic_store(&p->src, k->data);
		packed++;
		int v = n->in[1];
		if (--left[v] == 0 && !keep[v] && !g->values[v].plan_data) {
			free(g->values[v].konst->data);
			g->values[v].konst->data = NULL;
		}
	}
	for (int i = 0; i < g->n_nodes; i++) {
		struct eg_node *n = &g->nodes[i];
		struct mm_params *p = mm_params_of(n);
		if (p && !n->dead && n->in[1] >= 0 && g->values[n->in[1]].konst && !g->values[n->in[1]].konst->data &&
		    atomic_load(&p->src))
			p->sole = true;
	}
	free(left);
	free(keep);
	return packed;
}

/* ---- Gemm ---- */

static int gemm_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_prepare_fused(g, n, 2, 3, err);
	if (rc)
		return rc;
	return reserve_b(g, n, eg_attr_int(n, "transB", 0) != 0, err);
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
	struct kepi epi;
	int rc = kepi_from_node(n, &epi, err);
	if (rc)
		return rc;
	float *y = out[0]->data;
	float b = 0;
	const struct eng_tensor *C = n->n_in > 2 ? in[2] : NULL;
	if (C && beta != 0) {
		int64_t cn = eng_numel(C);
		if (beta == 1 && cn == N && (C->ndims == 1 || C->dims[0] == 1)) {
			epi.bias = C->data; /* a row vector: the epilogue adds it */
		} else if (beta == 1 && cn == M && M > 1 && C->ndims == 2 && C->dims[1] == 1) {
			epi.bias = C->data;
			epi.bias_per_row = 1;
		} else {
			eng_broadcast_copy(C, out[0], ctx->pool);
			if (beta != 1)
				for (int64_t i = 0; i < M * N; i++)
					y[i] *= beta;
			b = 1;
		}
	}
	const struct kgemm_packed *pb = packed_b(n, in[1], tb);
	kgemm_ex(ta, tb, M, N, K, alpha, in[0]->data, in[0]->dims[1], NULL, in[1]->data, in[1]->dims[1], pb, b, y, N,
		 &epi, ctx->pool);
	return 0;
}

/* ---- MatMul ---- */

static int matmul_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool bias = eg_attr_int(n, "_bias", 0) != 0;
	int rc = eng_prepare_fused(g, n, 2, bias ? 3 : 2, err);
	if (rc)
		return rc;
	return reserve_b(g, n, false, err);
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

/* ---- MatMul on transposed views (the attention's head transposes folded in) ----
 * Internal attributes set by the graph optimiser, for rank-3 operands only: `_perm_a` 1: input 0
 * is X [M, T, K] and A = X transposed (1, 0, 2); `_perm_b` 1: input 1 is Y [K, T, N] and
 * B = Y transposed (1, 0, 2), 2: Y is [N, T, K] and B = Y transposed (1, 2, 0); `_perm_c` 1: the
 * output is stored [M, T, N] (C transposed (1, 0, 2)); `_alpha`: C = alpha * A B. */
struct mm_views {
	int pa, pb, pc;
	float alpha;
};

/* The view attributes of n; false when it has none. */
static bool mm_views_of(const struct eg_node *n, struct mm_views *v)
{
	v->pa = (int)eg_attr_int(n, "_perm_a", 0);
	v->pb = (int)eg_attr_int(n, "_perm_b", 0);
	v->pc = (int)eg_attr_int(n, "_perm_c", 0);
	v->alpha = eg_attr_float(n, "_alpha", 1.0f);
	return v->pa || v->pb || v->pc || v->alpha != 1.0f;
}

/* T, M, K, N of a MatMul on views (both operands rank 3, batch T equal). */
static int mm_views_geom(const struct eg_node *n, const struct mm_views *v, const struct eng_tensor *X,
			 const struct eng_tensor *Y, int64_t *T, int64_t *M, int64_t *K, int64_t *N, char **err)
{
	if (X->ndims != 3 || Y->ndims != 3 || v->pa < 0 || v->pa > 1 || v->pb < 0 || v->pb > 2 || v->pc < 0 ||
	    v->pc > 1)
		return eng_node_err(err, -EINVAL, n, "transposed operands must be 3-D");
	*T = v->pa ? X->dims[1] : X->dims[0];
	*M = v->pa ? X->dims[0] : X->dims[1];
	*K = X->dims[2];
	int64_t tb = v->pb == 0 ? Y->dims[0] : Y->dims[1];
	int64_t kb = v->pb == 0 ? Y->dims[1] : v->pb == 1 ? Y->dims[0] : Y->dims[2];
	*N = v->pb == 0 ? Y->dims[2] : v->pb == 1 ? Y->dims[2] : Y->dims[0];
	if (tb != *T || kb != *K)
		return eng_node_err(err, -EINVAL, n, "operands do not match (batch %lld / %lld, inner %lld / %lld)",
				    (long long)*T, (long long)tb, (long long)*K, (long long)kb);
	return 0;
}

/* One batch index range of a MatMul on views. */
struct mm_views_job {
	const struct mm_views *v;
	const float *X, *Y;
	float *C;
	int64_t T, M, K, N;
};

static void mm_views_part(void *arg, int64_t b, int64_t e)
{
	const struct mm_views_job *j = arg;
	const struct mm_views *v = j->v;
	int64_t T = j->T, M = j->M, K = j->K, N = j->N;
	for (int64_t t = b; t < e; t++) {
		const float *A = v->pa ? j->X + t * K : j->X + t * M * K;
		int64_t lda = v->pa ? T * K : K;
		const float *B = v->pb == 0 ? j->Y + t * K * N : v->pb == 1 ? j->Y + t * N : j->Y + t * K;
		int64_t ldb = v->pb == 0 ? N : v->pb == 1 ? T * N : T * K;
		float *C = v->pc ? j->C + t * N : j->C + t * M * N;
		int64_t ldc = v->pc ? T * N : N;
		kgemm_ex(false, v->pb == 2, M, N, K, v->alpha, A, lda, NULL, B, ldb, NULL, 0.0f, C, ldc, NULL, NULL);
	}
}

static int matmul_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			size_t *scratch, char **err)
{
	struct mm_views v;
	if (mm_views_of(n, &v)) {
		int64_t T, M, K, N;
		int rc = mm_views_geom(n, &v, in[0], in[1], &T, &M, &K, &N, err);
		if (rc)
			return rc;
		if (n->n_in > 2 || eg_attr_int(n, "_act", 0))
			return eng_node_err(err, -EINVAL, n, "no bias or activation with transposed operands");
		out[0]->ndims = 3;
		out[0]->dims[0] = v.pc ? M : T;
		out[0]->dims[1] = v.pc ? T : M;
		out[0]->dims[2] = N;
		return 0;
	}
	struct mm_geom g;
	int rc = mm_geom(n, in[0], in[1], &g, out[0], err);
	if (!rc && n->n_in > 2 && in[2] && eng_numel(in[2]) != g.N)
		return eng_node_err(err, -EINVAL, n, "bias must have %lld entries", (long long)g.N);
	return rc;
}

/* One MatMul's batched GEMMs, for a range of batch indices. */
struct mm_batch_job {
	const struct mm_geom *g;
	const float *A, *B;
	float *C;
	const struct kepi *epi;
	int64_t M, N, K;
	struct tpool *pool; /* for each GEMM (NULL when the batch is split among threads) */
};

/* Batch indices [b, e) of a mm_batch_job, broadcast offsets from each index's coordinates. */
static void mm_batch_part(void *arg, int64_t b, int64_t e)
{
	const struct mm_batch_job *j = arg;
	const struct mm_geom *g = j->g;
	int64_t M = j->M, N = j->N, K = j->K;
	for (int64_t bi = b; bi < e; bi++) {
		int64_t oa = 0, ob = 0, sa = 1, sb = 1, rest = bi;
		for (int d = g->nb - 1; d >= 0; d--) {
			int64_t id = rest % g->batch[d];
			rest /= g->batch[d];
			int da = d - (g->nb - g->a.ndims), db = d - (g->nb - g->b.ndims);
			if (da >= 0) {
				if (g->a.dims[da] != 1)
					oa += id * sa;
				sa *= g->a.dims[da];
			}
			if (db >= 0) {
				if (g->b.dims[db] != 1)
					ob += id * sb;
				sb *= g->b.dims[db];
			}
		}
		kgemm_ex(false, false, M, N, K, 1.0f, j->A + oa * M * K, K, NULL, j->B + ob * K * N, N, NULL, 0.0f,
			 j->C + bi * M * N, N, j->epi, j->pool);
	}
}

static int matmul_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      void *scratch, struct eng_ctx *ctx, char **err)
{
	struct mm_views v;
	if (mm_views_of(n, &v)) {
		struct mm_views_job j = { &v, in[0]->data, in[1]->data, out[0]->data, 0, 0, 0, 0 };
		int rc = mm_views_geom(n, &v, in[0], in[1], &j.T, &j.M, &j.K, &j.N, err);
		if (rc)
			return rc;
		/* One GEMM per thread at a time (they are small: the attention's per-head products). */
		int nt = tpool_size(ctx->pool);
		int64_t per = j.T / (2 * nt) > 0 ? j.T / (2 * nt) : 1;
		tpool_for(ctx->pool, j.T, per, mm_views_part, &j);
		return 0;
	}
	struct mm_geom g;
	int rc = mm_geom(n, in[0], in[1], &g, NULL, err);
	if (rc)
		return rc;
	struct kepi epi;
	rc = kepi_from_node(n, &epi, err);
	if (rc)
		return rc;
	if (n->n_in > 2 && in[2])
		epi.bias = in[2]->data; /* per column (the last dim) */
	const float *A = in[0]->data, *B = in[1]->data;
	float *C = out[0]->data;
	int64_t M = g.M, N = g.N, K = g.K, nbatch = 1;
	for (int i = 0; i < g.nb; i++)
		nbatch *= g.batch[i];
	/* B without batch dims: fold A's batch into M (one big GEMM). */
	if (g.b.ndims == 0 || eng_numel(&g.b) == 1) {
		int64_t rows = nbatch * M;
		if (eng_numel(&g.a) == nbatch) {
			kgemm_ex(false, false, rows, N, K, 1.0f, A, K, NULL, B, N, packed_b(n, in[1], false), 0.0f, C, N, &epi,
				 ctx->pool);
			return 0;
		}
	}
	/* General case: one GEMM per batch index, with broadcast offsets. Many small GEMMs (the
	 * attention products) share the batch out among the threads, each GEMM on one thread;
	 * a few big ones split inside each GEMM instead. */
	struct mm_batch_job bj = { &g, A, B, C, &epi, M, N, K, NULL };
	int nt = tpool_size(ctx->pool);
	if (nt > 1 && nbatch >= nt && (double)M * N * K < 2e7) {
		int64_t per = nbatch / (2 * nt) > 0 ? nbatch / (2 * nt) : 1;
		tpool_for(ctx->pool, nbatch, per, mm_batch_part, &bj);
	} else {
		bj.pool = ctx->pool;
		mm_batch_part(&bj, 0, nbatch);
	}
	return 0;
}

const struct eng_op eng_ops_gemm[] = {
	{ "Gemm", 7, ENG_OPSET_LATEST, DTM_FLOAT, "alpha beta transA transB " KACT_ATTRS, 0, gemm_prepare, gemm_infer,
	  gemm_run, 0 },
	{ "MatMul", 1, ENG_OPSET_LATEST, DTM_FLOAT, "_bias _perm_a _perm_b _perm_c _alpha " KACT_ATTRS, 0, matmul_prepare,
	  matmul_infer, matmul_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
