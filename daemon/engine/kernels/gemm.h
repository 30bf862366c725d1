/* gemm.h - single-precision matrix multiply: OpenBLAS where available, a plain loop otherwise,
 * split across the exec's thread pool (OpenBLAS itself runs one thread per call). */
#ifndef ACC_ENGINE_KGEMM_H
#define ACC_ENGINE_KGEMM_H

#include <stdbool.h>
#include <stdint.h>

struct tpool;

/* Set up the BLAS library once (single-threaded calls: the engine parallelises itself). */
void kgemm_init(void);
/* C = alpha * op(A) * op(B) + beta * C; row-major, op(A) is M x K, op(B) is K x N; lda, ldb, ldc
 * are the row strides of A, B and C as stored. pool may be NULL. */
void kgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
	   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
	   struct tpool *pool);

#endif
