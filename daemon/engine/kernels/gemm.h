/* gemm.h - single-precision matrix multiply with the engine's own packed, register-blocked
 * kernels (AVX-512, AVX2+FMA or portable, chosen at run time), constant operands packed once,
 * fused bias + activation epilogue, split across the exec's thread pool.
 *
 * Pack layout (internal, depends on the kernel chosen): the K dimension in blocks of KC; within
 * a block, A in strips of MR rows stored k-major (kc x MR), B in panels of NR columns stored
 * k-major (kc x NR), zero-padded at the edges. A packed operand is only valid in this process. */
#ifndef ACC_ENGINE_KGEMM_H
#define ACC_ENGINE_KGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpool;
struct kepi;

/* Kernel families kgemm can use. */
enum kgemm_isa { KGEMM_ISA_AUTO = 0, KGEMM_ISA_GENERIC, KGEMM_ISA_AVX2, KGEMM_ISA_AVX512, KGEMM_ISA_W16 };

/* A constant operand packed for the current kernel. */
struct kgemm_packed {
	int isa; /* the kernel family it was packed for */
	int is_b; /* 1: packed as B (K x N), 0: as A (M x K) */
	int64_t rows, cols; /* M x K (A) or K x N (B) */
	size_t bytes;
	float *data; /* 64-byte aligned */
};

/* Set up once (the BLAS library single-threaded, the kernel family chosen from the CPU or the
 * ACCELD_GEMM_ISA environment variable: generic, avx2, avx512). */
void kgemm_init(void);
/* Force a kernel family (tests, benchmarks); returns the family in use (AUTO picks from the CPU;
 * an unsupported request falls back). Packed operands made before are repacked lazily by
 * callers through kgemm_packed_ok. */
int kgemm_set_isa(int isa);
/* The family in use and a printable name of it. */
int kgemm_isa(void);
const char *kgemm_isa_name(void);

/* Pack op(A) (M x K; trans: A is stored K x M) with row stride lda. Caller frees with
 * kgemm_packed_free. */
struct kgemm_packed *kgemm_pack_a(bool trans, int64_t M, int64_t K, const float *A, int64_t lda);
/* Pack op(B) (K x N; trans: B is stored N x K) with row stride ldb. */
struct kgemm_packed *kgemm_pack_b(bool trans, int64_t K, int64_t N, const float *B, int64_t ldb);
/* Bytes a packed op(A) of M x K (resp. op(B) of K x N) may take with any kernel family. */
size_t kgemm_pack_a_bytes(int64_t M, int64_t K);
size_t kgemm_pack_b_bytes(int64_t K, int64_t N);
/* Pack into caller-owned memory dst (64-byte aligned, kgemm_pack_?_bytes long), filling *p
 * (whose data then points at dst; do not kgemm_packed_free it). */
void kgemm_pack_a_to(struct kgemm_packed *p, bool trans, int64_t M, int64_t K, const float *A,
		     int64_t lda, float *dst);
void kgemm_pack_b_to(struct kgemm_packed *p, bool trans, int64_t K, int64_t N, const float *B,
		     int64_t ldb, float *dst);
/* Free a packed operand (NULL is fine). */
void kgemm_packed_free(struct kgemm_packed *p);
/* Whether p is usable with the kernel family in use. */
bool kgemm_packed_ok(const struct kgemm_packed *p);

/* C = epi(alpha * op(A) * op(B) + beta * C); row-major, op(A) is M x K, op(B) is K x N; lda, ldb,
 * ldc are the row strides as stored. pa / pb, when non-NULL, replace A / B (packed from them).
 * beta is 0 or 1 for best speed (others scale C first). epi may be NULL; pool may be NULL. */
void kgemm_ex(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
	      int64_t lda, const struct kgemm_packed *pa, const float *B, int64_t ldb,
	      const struct kgemm_packed *pb, float beta, float *C, int64_t ldc, const struct kepi *epi,
	      struct tpool *pool);
/* kgemm_ex without packed operands or epilogue. */
void kgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
	   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
	   struct tpool *pool);

#endif
