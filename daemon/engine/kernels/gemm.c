/* gemm.c - sgemm through OpenBLAS (or a portable loop), parallel over blocks of C. */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include "kernels/gemm.h"
#include "threadpool.h"

#ifdef HAVE_OPENBLAS
#include <cblas.h>
#endif

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* One-time BLAS set-up. */
static void init_blas(void)
{
#ifdef HAVE_OPENBLAS
	openblas_set_num_threads(1);
#endif
}

void kgemm_init(void)
{
	pthread_once(&init_once, init_blas);
}

/* C block = alpha op(A) op(B) + beta C on one thread. */
static void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
			int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
	if (M <= 0 || N <= 0)
		return;
#ifdef HAVE_OPENBLAS
	if (M <= 2 && !ta) {
		/* A row or two: matrix-vector products skip sgemm's packing of B. */
		for (int64_t i = 0; i < M; i++) {
			if (tb)
				cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, B, (int)ldb, A + i * lda, 1,
					    beta, C + i * ldc, 1);
			else
				cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, B, (int)ldb, A + i * lda, 1,
					    beta, C + i * ldc, 1);
		}
		return;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
		    (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
	for (int64_t i = 0; i < M; i++) {
		float *c = C + i * ldc;
		if (beta == 0)
			memset(c, 0, N * sizeof(float));
		else if (beta != 1)
			for (int64_t j = 0; j < N; j++)
				c[j] *= beta;
		for (int64_t k = 0; k < K; k++) {
			float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
			if (!tb) {
				const float *b = B + k * ldb;
				for (int64_t j = 0; j < N; j++)
					c[j] += a * b[j];
			} else {
				for (int64_t j = 0; j < N; j++)
					c[j] += a * B[j * ldb + k];
			}
		}
	}
#endif
}

struct gemm_job {
	bool ta, tb, split_m;
	int64_t M, N, K, lda, ldb, ldc, block;
	float alpha, beta;
	const float *A, *B;
	float *C;
};

/* Blocks [b, e) of rows (split_m) or columns. */
static void gemm_part(void *arg, int64_t b, int64_t e)
{
	struct gemm_job *j = arg;
	int64_t lo = b * j->block, hi = e * j->block;
	if (j->split_m) {
		if (hi > j->M)
			hi = j->M;
		const float *a = j->ta ? j->A + lo : j->A + lo * j->lda;
		gemm_serial(j->ta, j->tb, hi - lo, j->N, j->K, j->alpha, a, j->lda, j->B, j->ldb, j->beta,
			    j->C + lo * j->ldc, j->ldc);
	} else {
		if (hi > j->N)
			hi = j->N;
		const float *bp = j->tb ? j->B + lo * j->ldb : j->B + lo;
		gemm_serial(j->ta, j->tb, j->M, hi - lo, j->K, j->alpha, j->A, j->lda, bp, j->ldb, j->beta,
			    j->C + lo, j->ldc);
	}
}

void kgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
	   const float *B, int64_t ldb, float beta, float *C, int64_t ldc, struct tpool *pool)
{
	kgemm_init();
	int nt = tpool_size(pool);
	double flops = (double)M * N * K;
	if (nt <= 1 || flops < 2e5) {
		gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	struct gemm_job j = { ta, tb, M >= 4 * N || (M >= 64 && M >= N), M, N, K, lda, ldb, ldc, 0, alpha,
			      beta, A, B, C };
	int64_t dim = j.split_m ? M : N;
	/* Blocks of 16 rows or columns keep the BLAS micro-kernels fed. */
	int64_t blocks = (dim + 15) / 16;
	if (blocks > nt * 4)
		blocks = nt * 4;
	if (blocks < 1)
		blocks = 1;
	j.block = (dim + blocks - 1) / blocks;
	j.block = (j.block + 15) & ~(int64_t)15;
	blocks = (dim + j.block - 1) / j.block;
	tpool_for(pool, blocks, 1, gemm_part, &j);
}
