/* gemm.c - the engine's sgemm: Goto-style blocking with packed panels and register-blocked
 * micro-kernels, run-time dispatch between AVX-512 (8x32 tiles), AVX2+FMA (6x16; 4x16 for
 * 4, 8 or 16 rows) and a portable kernel (4x8, SSE2 vectors), fused bias + activation epilogue
 * on each tile while it is in registers' reach, threads splitting the columns (or rows) of C
 * into parts claimed dynamically.
 *
 * Why our own kernel rather than the libraries (measured on the dev machine, Zen 3, AVX2 only,
 * 2 threads; see the helper's report for the numbers): Debian's OpenBLAS 0.3.21 picks its
 * Haswell kernels on Zen CPUs (no AVX-512 even where the CPU has it) and repacks constant
 * weights on every call; with weights packed once at plan time and the epilogue fused, the
 * network-level time is lower than cblas_sgemm + separate bias/activation passes.
 *
 * Blocking: KC = 256 deep (512 for AVX2), MC = 96 rows of A (L2), NC = 1024 columns of B; A
 * strips of MR rows and B panels of NR columns are stored k-major so the micro-kernel streams
 * both linearly.
 * The micro-kernels are written once with GCC vector extensions and instantiated per target;
 * the 16-wide variant is also built without AVX-512 ("w16") so its logic can be tested on CPUs
 * that lack it. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/gemm.h"
#include "threadpool.h"
#include "log.h"
#include "util.h"

#ifdef HAVE_OPENBLAS
#include <cblas.h>
#endif

#define KC 256 /* k block (AVX-512 and portable kernels) */
/* AVX2: k blocks twice as deep halve the passes over C; measured on the MLP (medians of 8
 * interleaved pairs): batch 8 1.11x, batch 32 1.09x, batch 1 0.96x; the transformer 1.00x. */
#define KC_AVX2 512
#define KC_MAX 512
#define MC 96
#define NC 1024
#define PART_WORK 1.6e7 /* multiply-adds per part of a big product */
#define B_PREFETCH 1536 /* floats: 6 KiB, 96 k steps of a 16-wide panel (weights may stream from DRAM) */

typedef int (*ukr_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int m, int n,
		      float alpha, int acc, const struct kepi *e, int64_t i0, int64_t j0);

/* ---- micro-kernels ----
 * c[m x n] (+)= alpha * sum_k a[k][0..m) b[k][0..n): a is a packed strip (kc x MR), b a packed
 * panel (kc x NR, NR = 2 vectors). acc = 0 overwrites C, 1 adds to it. On full-width tiles the
 * kernel also applies epilogue e (bias, Relu / Clip) in registers, for rows i0.. and columns j0..
 * of C, and returns 1; otherwise (other activations, edge tiles) it returns 0 and the caller
 * applies e. */

#define UKR_DEFINE_X(NAME, ATTR, VL, MR, PF)                                                                               \
	typedef float NAME##_v __attribute__((vector_size(VL * 4)));                                                       \
	typedef float NAME##_vu __attribute__((vector_size(VL * 4), aligned(4)));                                          \
	typedef int32_t NAME##_vi __attribute__((vector_size(VL * 4)));                                                    \
	static inline __attribute__((always_inline)) ATTR int NAME##_body(                                                 \
		const int m, int64_t kc, const float *restrict a, const float *restrict b,                                 \
		float *restrict c, int64_t ldc, int n, float alpha, int acc, const struct kepi *e,                         \
		int64_t i0, int64_t j0)                                                                                    \
	{                                                                                                                  \
		NAME##_v c0[MR], c1[MR], ones = (NAME##_v){ 0 } + 1.0f;                                                    \
		_Pragma("GCC unroll 16") for (int i = 0; i < m; i++) {                                                     \
			/* Big products (no B prefetch): the tile of C is written (and read when                           \
			 * acc) after the k loop, and may be out in L3: start fetching it now. */                          \
			if (!PF) {                                                                                         \
				__builtin_prefetch(c + i * ldc, 1, 3);                                                     \
				__builtin_prefetch(c + i * ldc + 2 * VL - 1, 1, 3);                                        \
			}                                                                                                  \
			c0[i] = c1[i] = (NAME##_v){ 0 };                                                                   \
		}                                                                                                          \
		if (m <= 2) {                                                                                              \
			/* One or two rows: 2 or 4 accumulators would wait on the FMA latency every k, so                  \
			 * k is split over 4 / m interleaved sets, summed at the end. */                                   \
			enum { S = 4 };                                                                                    \
			NAME##_v d0[S][2], d1[S][2];                                                                       \
			const int ns = 4 / m;                                                                              \
			_Pragma("GCC unroll 4") for (int s = 0; s < ns; s++)                                               \
				_Pragma("GCC unroll 2") for (int i = 0; i < m; i++) d0[s][i] = d1[s][i] = (NAME##_v){ 0 }; \
			int64_t k = 0;                                                                                     \
			for (; k + ns <= kc; k += ns) {                                                                    \
				_Pragma("GCC unroll 4") for (int s = 0; s < ns; s++)                                       \
				{                                                                                          \
					NAME##_v b0 = *(const NAME##_v *)(b + (k + s) * 2 * VL);                           \
					NAME##_v b1 = *(const NAME##_v *)(b + (k + s) * 2 * VL + VL);                      \
					if (PF)                                                                            \
						__builtin_prefetch(b + (k + s) * 2 * VL + B_PREFETCH, 0, 3);               \
					_Pragma("GCC unroll 2") for (int i = 0; i < m; i++)                                \
					{                                                                                  \
						NAME##_v av = a[(k + s) * MR + i] * ones;                                  \
						d0[s][i] += av * b0;                                                       \
						d1[s][i] += av * b1;                                                       \
					}                                                                                  \
				}                                                                                          \
			}                                                                                                  \
			for (; k < kc; k++) {                                                                              \
				NAME##_v b0 = *(const NAME##_v *)(b + k * 2 * VL);                                         \
				NAME##_v b1 = *(const NAME##_v *)(b + k * 2 * VL + VL);                                    \
				_Pragma("GCC unroll 2") for (int i = 0; i < m; i++)                                        \
				{                                                                                          \
					NAME##_v av = a[k * MR + i] * ones;                                                \
					d0[0][i] += av * b0;                                                               \
					d1[0][i] += av * b1;                                                               \
				}                                                                                          \
			}                                                                                                  \
			_Pragma("GCC unroll 4") for (int s = 0; s < ns; s++)                                               \
				_Pragma("GCC unroll 2") for (int i = 0; i < m; i++)                                        \
				{                                                                                          \
					c0[i] += d0[s][i];                                                                 \
					c1[i] += d1[s][i];                                                                 \
				}                                                                                          \
		} else {                                                                                                   \
			for (int64_t k = 0; k < kc; k++) {                                                                 \
				NAME##_v b0 = *(const NAME##_v *)(b + k * 2 * VL);                                         \
				NAME##_v b1 = *(const NAME##_v *)(b + k * 2 * VL + VL);                                    \
				if (PF)                                                                                    \
					__builtin_prefetch(b + k * 2 * VL + B_PREFETCH, 0, 3);                             \
				_Pragma("GCC unroll 16") for (int i = 0; i < m; i++)                                       \
				{                                                                                          \
					NAME##_v av = a[k * MR + i] * ones;                                                \
					c0[i] += av * b0;                                                                  \
					c1[i] += av * b1;                                                                  \
				}                                                                                          \
			}                                                                                                  \
		}                                                                                                          \
		if (alpha != 1.0f)                                                                                         \
			_Pragma("GCC unroll 16") for (int i = 0; i < m; i++)                                               \
			{                                                                                                  \
				c0[i] *= alpha;                                                                            \
				c1[i] *= alpha;                                                                            \
			}                                                                                                  \
		if (n == 2 * VL && (!e || e->act == KACT_NONE || e->act == KACT_RELU || e->act == KACT_CLIP)) {            \
			const NAME##_v zero = { 0 };                                                                       \
			NAME##_v lo = zero + (e && e->act == KACT_CLIP ? e->min : 0.0f);                                   \
			NAME##_v hi = zero + (e && e->act == KACT_CLIP ? e->max : 0.0f);                                   \
			NAME##_v cb0 = zero, cb1 = zero;                                                                   \
			if (e && e->bias && !e->bias_per_row) {                                                            \
				cb0 = *(const NAME##_vu *)(e->bias + j0);                                                  \
				cb1 = *(const NAME##_vu *)(e->bias + j0 + VL);                                             \
			}                                                                                                  \
			_Pragma("GCC unroll 16") for (int i = 0; i < m; i++)                                               \
			{                                                                                                  \
				NAME##_vu *p = (NAME##_vu *)(c + i * ldc);                                                 \
				NAME##_v r0 = c0[i], r1 = c1[i];                                                           \
				if (acc) {                                                                                 \
					r0 += p[0];                                                                        \
					r1 += p[1];                                                                        \
				}                                                                                          \
				if (e) {                                                                                   \
					if (e->bias && e->bias_per_row) {                                                  \
						float bb = e->bias[i0 + i];                                                \
						r0 += bb;                                                                  \
						r1 += bb;                                                                  \
					} else {                                                                           \
						r0 += cb0;                                                                 \
						r1 += cb1;                                                                 \
					}                                                                                  \
					if (e->act == KACT_RELU) {                                                         \
						r0 = (NAME##_v)((NAME##_vi)r0 & (r0 > zero));                              \
						r1 = (NAME##_v)((NAME##_vi)r1 & (r1 > zero));                              \
					} else if (e->act == KACT_CLIP) {                                                  \
						NAME##_vi m0 = r0 < lo, m1 = r1 < lo;                                      \
						r0 = (NAME##_v)(((NAME##_vi)r0 & ~m0) | ((NAME##_vi)lo & m0));             \
						r1 = (NAME##_v)(((NAME##_vi)r1 & ~m1) | ((NAME##_vi)lo & m1));             \
						m0 = r0 > hi;                                                              \
						m1 = r1 > hi;                                                              \
						r0 = (NAME##_v)(((NAME##_vi)r0 & ~m0) | ((NAME##_vi)hi & m0));             \
						r1 = (NAME##_v)(((NAME##_vi)r1 & ~m1) | ((NAME##_vi)hi & m1));             \
					}                                                                                  \
				}                                                                                          \
				p[0] = r0;                                                                                 \
				p[1] = r1;                                                                                 \
			}                                                                                                  \
			return 1;                                                                                          \
		}                                                                                                          \
		float t[MR][2 * VL] __attribute__((aligned(64)));                                                          \
		_Pragma("GCC unroll 16") for (int i = 0; i < m; i++)                                                       \
		{                                                                                                          \
			*(NAME##_v *)&t[i][0] = c0[i];                                                                     \
			*(NAME##_v *)&t[i][VL] = c1[i];                                                                    \
		}                                                                                                          \
		for (int i = 0; i < m; i++)                                                                                \
			for (int j = 0; j < n; j++)                                                                        \
				c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];                                 \
		return 0;                                                                                                  \
	}

#define UKR_DEFINE(NAME, ATTR, VL, MR) UKR_DEFINE_X(NAME, ATTR, VL, MR, 0)
/* The same, prefetching B B_PREFETCH floats ahead (for few rows: B streams from L3 once). */
#define UKR_DEFINE_PF(NAME, ATTR, VL, MR) UKR_DEFINE_X(NAME, ATTR, VL, MR, 1)

#define UKR_CASE(NAME, M)                                          \
	case M:                                                    \
		return NAME##_body(M, kc, a, b, c, ldc, n, alpha, acc, e, i0, j0);

/* The kernels start on 64-byte boundaries and their loops on 64 (32 for the B-prefetching
 * 6-row kernel): Zen 3 fetches a loop from its op cache by 64-byte windows, and where the link
 * happened to put a kernel decided how many windows its loop spanned. Measured (engine-bench
 * pairs against one earlier build): the same 4-row kernel code at 0.73-0.77x of it on the MLP at
 * batch 8 when only other files had changed; aligned, MLP b8 1.01x, b32 1.04x, b1 0.97x, and
 * the same whatever else changes (loops at 64 for every kernel: b32 0.94x; at 32: b8 0.88x). */
#ifdef __clang__
#define UKR_ALIGN(LOOPS) __attribute__((aligned(64))) /* no per-function loop alignment */
#else
#define UKR_ALIGN(LOOPS) __attribute__((aligned(64), optimize("align-loops=" #LOOPS)))
#endif

#define UKR_DISPATCH(NAME, ATTR, CASES)                                                                 \
	ATTR static int NAME(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int m, int n, \
			     float alpha, int acc, const struct kepi *e, int64_t i0, int64_t j0)               \
	{                                                                                               \
		switch (m) {                                                                            \
			CASES                                                                           \
		}                                                                                       \
		return 0;                                                                               \
	}

UKR_DEFINE(ukr_generic, , 4, 4)
UKR_DISPATCH(ukr_generic, , UKR_CASE(ukr_generic, 1) UKR_CASE(ukr_generic, 2) UKR_CASE(ukr_generic, 3)
				    UKR_CASE(ukr_generic, 4))

UKR_DEFINE(ukr_w16, , 16, 8)
UKR_DISPATCH(ukr_w16, , UKR_CASE(ukr_w16, 1) UKR_CASE(ukr_w16, 2) UKR_CASE(ukr_w16, 3) UKR_CASE(ukr_w16, 4)
				UKR_CASE(ukr_w16, 5) UKR_CASE(ukr_w16, 6) UKR_CASE(ukr_w16, 7) UKR_CASE(ukr_w16, 8))

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_KERNELS 1
#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx512f,fma")))
UKR_DEFINE(ukr_avx2, T_AVX2, 8, 6)
UKR_DISPATCH(ukr_avx2, T_AVX2 UKR_ALIGN(64), UKR_CASE(ukr_avx2, 1) UKR_CASE(ukr_avx2, 2) UKR_CASE(ukr_avx2, 3)
				       UKR_CASE(ukr_avx2, 4) UKR_CASE(ukr_avx2, 5) UKR_CASE(ukr_avx2, 6))
/* For few rows (A packed ahead in kgemm_ex), prefetching B: each B panel serves one or two
 * strips, so it streams from L3 at the kernel's pace. 4 x 16 tiles: 8 accumulators keep both
 * FMA pipes busy, so M = 8 takes two of these instead of a 6-row tile and a latency-bound
 * 2-row one. */
UKR_DEFINE_PF(ukr_avx2pf, T_AVX2, 8, 6)
UKR_DISPATCH(ukr_avx2pf, T_AVX2 UKR_ALIGN(32), UKR_CASE(ukr_avx2pf, 1) UKR_CASE(ukr_avx2pf, 2) UKR_CASE(ukr_avx2pf, 3)
					 UKR_CASE(ukr_avx2pf, 4) UKR_CASE(ukr_avx2pf, 5) UKR_CASE(ukr_avx2pf, 6))
UKR_DEFINE_PF(ukr_avx2m4, T_AVX2, 8, 4)
UKR_DISPATCH(ukr_avx2m4, T_AVX2 UKR_ALIGN(64), UKR_CASE(ukr_avx2m4, 1) UKR_CASE(ukr_avx2m4, 2) UKR_CASE(ukr_avx2m4, 3)
					 UKR_CASE(ukr_avx2m4, 4))
UKR_DEFINE(ukr_avx512, T_AVX512, 16, 8)
UKR_DISPATCH(ukr_avx512, T_AVX512 UKR_ALIGN(64), UKR_CASE(ukr_avx512, 1) UKR_CASE(ukr_avx512, 2) UKR_CASE(ukr_avx512, 3)
					   UKR_CASE(ukr_avx512, 4) UKR_CASE(ukr_avx512, 5) UKR_CASE(ukr_avx512, 6)
						   UKR_CASE(ukr_avx512, 7) UKR_CASE(ukr_avx512, 8))
#endif

struct kfam {
	int isa, mr, nr;
	ukr_fn ukr;
	const char *name;
	int kc; /* k block depth (packed operands are laid out in blocks of it) */
};

static const struct kfam fams[] = {
	[KGEMM_ISA_GENERIC] = { KGEMM_ISA_GENERIC, 4, 8, ukr_generic, "generic", KC },
#ifdef HAVE_X86_KERNELS
	[KGEMM_ISA_AVX2] = { KGEMM_ISA_AVX2, 6, 16, ukr_avx2, "avx2", KC_AVX2 },
	[KGEMM_ISA_AVX512] = { KGEMM_ISA_AVX512, 8, 32, ukr_avx512, "avx512", KC },
#endif
	[KGEMM_ISA_W16] = { KGEMM_ISA_W16, 8, 32, ukr_w16, "w16", KC },
};

#ifdef HAVE_X86_KERNELS
/* The AVX2 family prefetching B, with 6- or 4-row strips (same B panels), for A packed in
 * kgemm_ex. */
static const struct kfam fam_avx2pf = { KGEMM_ISA_AVX2, 6, 16, ukr_avx2pf, "avx2", KC_AVX2 };
static const struct kfam fam_avx2m4 = { KGEMM_ISA_AVX2, 4, 16, ukr_avx2m4, "avx2", KC_AVX2 };
#endif

static const struct kfam *fam = &fams[KGEMM_ISA_GENERIC];
static bool pack_avx2; /* pack A with AVX2 transposes (ACCELD_GEMM_PACK_SCALAR=1: never) */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t buf_key, pre_key;
static void prepack_free(void *p);

/* Whether this CPU (and OS) can run family isa. */
static bool isa_usable(int isa)
{
	switch (isa) {
	case KGEMM_ISA_GENERIC:
	case KGEMM_ISA_W16:
		return true;
#ifdef HAVE_X86_KERNELS
	case KGEMM_ISA_AVX2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	case KGEMM_ISA_AVX512:
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
	default:
		return false;
	}
}

/* The best family for this CPU. */
static int isa_best(void)
{
	if (isa_usable(KGEMM_ISA_AVX512))
		return KGEMM_ISA_AVX512;
	if (isa_usable(KGEMM_ISA_AVX2))
		return KGEMM_ISA_AVX2;
	return KGEMM_ISA_GENERIC;
}

/* One-time set-up: BLAS single-threaded, kernel family, per-thread buffer key. */
static void init_all(void)
{
#ifdef HAVE_OPENBLAS
	openblas_set_num_threads(1);
#endif
	pthread_key_create(&buf_key, free);
	pthread_key_create(&pre_key, prepack_free);
	int isa = isa_best();
	const char *env = getenv("ACCELD_GEMM_ISA");
	if (env) {
		for (int i = KGEMM_ISA_GENERIC; i <= KGEMM_ISA_W16; i++)
			if (fams[i].name && !strcmp(env, fams[i].name) && isa_usable(i))
				isa = i;
	}
	fam = &fams[isa];
#ifdef HAVE_X86_KERNELS
	pack_avx2 = isa_usable(KGEMM_ISA_AVX2) && !getenv("ACCELD_GEMM_PACK_SCALAR");
#endif
}

void kgemm_init(void)
{
	pthread_once(&init_once, init_all);
}

int kgemm_set_isa(int isa)
{
	kgemm_init();
	if (isa == KGEMM_ISA_AUTO || isa < 0 || isa > KGEMM_ISA_W16 || !fams[isa].name || !isa_usable(isa))
		isa = isa_best();
	fam = &fams[isa];
	return isa;
}

int kgemm_isa(void)
{
	kgemm_init();
	return fam->isa;
}

const char *kgemm_isa_name(void)
{
	kgemm_init();
	return fam->name;
}

/* ---- packing ---- */

#ifdef HAVE_X86_KERNELS
#include <immintrin.h>

/* Transpose the 8x8 block held in x[0..8) (x[i] = row i) in registers: afterwards x[c] holds
 * column c. */
T_AVX2 static inline __attribute__((always_inline)) void tr8x8(__m256 *x)
{
	__m256 u0 = _mm256_unpacklo_ps(x[0], x[1]), u1 = _mm256_unpackhi_ps(x[0], x[1]);
	__m256 u2 = _mm256_unpacklo_ps(x[2], x[3]), u3 = _mm256_unpackhi_ps(x[2], x[3]);
	__m256 u4 = _mm256_unpacklo_ps(x[4], x[5]), u5 = _mm256_unpackhi_ps(x[4], x[5]);
	__m256 u6 = _mm256_unpacklo_ps(x[6], x[7]), u7 = _mm256_unpackhi_ps(x[6], x[7]);
	__m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee);
	__m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee);
	__m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee);
	__m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
	x[0] = _mm256_permute2f128_ps(v0, v4, 0x20);
	x[1] = _mm256_permute2f128_ps(v1, v5, 0x20);
	x[2] = _mm256_permute2f128_ps(v2, v6, 0x20);
	x[3] = _mm256_permute2f128_ps(v3, v7, 0x20);
	x[4] = _mm256_permute2f128_ps(v0, v4, 0x31);
	x[5] = _mm256_permute2f128_ps(v1, v5, 0x31);
	x[6] = _mm256_permute2f128_ps(v2, v6, 0x31);
	x[7] = _mm256_permute2f128_ps(v3, v7, 0x31);
}

/* One full strip of mr (6 or 8) rows of row-major a (row stride rs) for k [0, kc): 8 k at a
 * time, 8 contiguous floats from each row transposed in registers into 8 k-major groups of mr,
 * with the rows of the next strip prefetched. Returns how many k it packed (a multiple of 8). */
T_AVX2 static int64_t pack_a_strip_avx2(const float *s, int64_t rs, int64_t kc, int mr, float *dst)
{
	const float *r[8];
	for (int i = 0; i < 8; i++)
		r[i] = s + (i < mr ? i : 0) * rs;
	const float *nx = s + mr * rs;
	int64_t k = 0;
	for (; k + 8 <= kc; k += 8) {
		if (!(k & 15))
			for (int i = 0; i < mr; i++)
				_mm_prefetch((const char *)(nx + i * rs + k), _MM_HINT_T0);
		__m256 t[8];
		_Pragma("GCC unroll 6") for (int i = 0; i < 6; i++)
			t[i] = _mm256_loadu_ps(r[i] + k);
		t[6] = t[7] = _mm256_setzero_ps();
		if (mr == 8) {
			t[6] = _mm256_loadu_ps(r[6] + k);
			t[7] = _mm256_loadu_ps(r[7] + k);
		}
		tr8x8(t); /* t[c] holds rows 0..7 of column k + c */
		float *d = dst + k * mr;
		if (mr == 8) {
			for (int c = 0; c < 8; c++)
				_mm256_storeu_ps(d + c * 8, t[c]);
		} else {
			/* Groups of 6: each 8-wide store's last two lanes are overwritten by the next;
			 * the last group is stored as 4 + 2 so nothing past it is touched. */
			for (int c = 0; c < 7; c++)
				_mm256_storeu_ps(d + c * 6, t[c]);
			_mm_storeu_ps(d + 42, _mm256_castps256_ps128(t[7]));
			_mm_storel_pi((__m64 *)(d + 46), _mm256_extractf128_ps(t[7], 1));
		}
	}
	return k;
}

/* One full panel of nr (a multiple of 8) columns of a transposed B (column j contiguous in k,
 * columns cs apart) for k [0, kc): 8 columns x 8 k loaded, transposed in registers, stored as
 * 8 k-rows of the panel. Returns how many k it packed (a multiple of 8). */
T_AVX2 static int64_t pack_bt_panel_avx2(const float *s, int64_t cs, int64_t kc, int nr, float *dst)
{
	int64_t k8 = kc & ~(int64_t)7;
	for (int h = 0; h < nr; h += 8) {
		const float *r = s + h * cs;
		for (int64_t k = 0; k < k8; k += 8) {
			__m256 x[8];
			_Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
				x[i] = _mm256_loadu_ps(r + i * cs + k);
			tr8x8(x);
			float *d = dst + k * nr + h;
			_Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
				_mm256_storeu_ps(d + i * nr, x[i]);
		}
	}
	return k8;
}
#endif

/* dst[k * w .. + w) = s[k * stride .. + w) for k < kc, with fixed-size copies for the panel
 * widths the kernels use (the compiler turns each into vector moves). */
static inline __attribute__((always_inline)) void copy_rows(float *dst, const float *s, int64_t stride, int64_t kc,
							     int w)
{
	switch (w) {
	case 6:
		for (int64_t k = 0; k < kc; k++)
			memcpy(dst + k * 6, s + k * stride, 6 * sizeof(float));
		break;
	case 8:
		for (int64_t k = 0; k < kc; k++)
			memcpy(dst + k * 8, s + k * stride, 8 * sizeof(float));
		break;
	case 16:
		for (int64_t k = 0; k < kc; k++)
			memcpy(dst + k * 16, s + k * stride, 16 * sizeof(float));
		break;
	case 32:
		for (int64_t k = 0; k < kc; k++)
			memcpy(dst + k * 32, s + k * stride, 32 * sizeof(float));
		break;
	default:
		for (int64_t k = 0; k < kc; k++)
			memcpy(dst + k * w, s + k * stride, (size_t)w * sizeof(float));
	}
}
/* Pack rows [0, m) x k [0, kc) of a (element (i, k) at a[i * rs + k * cs]) into strips of mr. */
static void pack_a(const float *a, int64_t rs, int64_t cs, int64_t m, int64_t kc, int mr, float *dst)
{
	for (int64_t i0 = 0; i0 < m; i0 += mr) {
		int64_t h = m - i0 < mr ? m - i0 : mr;
		const float *s = a + i0 * rs;
		if (cs == 1 && h == mr) {
			int64_t k0 = 0;
#ifdef HAVE_X86_KERNELS
			if (pack_avx2 && (mr == 6 || mr == 8))
				k0 = pack_a_strip_avx2(s, rs, kc, mr, dst);
#endif
			for (int64_t i = 0; i < h; i++) {
				const float *row = s + i * rs;
				for (int64_t k = k0; k < kc; k++)
					dst[k * mr + i] = row[k];
			}
		} else if (rs == 1 && h == mr) {
			/* Transposed A: each k's mr rows are contiguous. */
			copy_rows(dst, s, cs, kc, mr);
		} else if (cs == 1) {
			/* A partial strip: zeros first (one contiguous fill, not mr - h strided passes). */
			memset(dst, 0, (size_t)(mr * kc) * sizeof(float));
			for (int64_t i = 0; i < h; i++) {
				const float *row = s + i * rs;
				for (int64_t k = 0; k < kc; k++)
					dst[k * mr + i] = row[k];
			}
		} else {
			for (int64_t k = 0; k < kc; k++) {
				const float *col = s + k * cs;
				for (int64_t i = 0; i < h; i++)
					dst[k * mr + i] = col[i * rs];
				for (int64_t i = h; i < mr; i++)
					dst[k * mr + i] = 0;
			}
		}
		dst += mr * kc;
	}
}

/* Pack k [0, kc) x columns [0, n) of b (element (k, j) at b[k * rs + j * cs]) into panels of nr. */
static void pack_b(const float *b, int64_t rs, int64_t cs, int64_t kc, int64_t n, int nr, float *dst)
{
	for (int64_t j0 = 0; j0 < n; j0 += nr) {
		int64_t w = n - j0 < nr ? n - j0 : nr;
		if (cs == 1 && w == nr) {
			copy_rows(dst, b + j0, rs, kc, nr);
		} else if (cs == 1) {
			const float *s = b + j0;
			for (int64_t k = 0; k < kc; k++) {
				for (int64_t j = 0; j < w; j++)
					dst[k * nr + j] = s[k * rs + j];
				for (int64_t j = w; j < nr; j++)
					dst[k * nr + j] = 0;
			}
		} else {
			int64_t k0 = 0;
#ifdef HAVE_X86_KERNELS
			/* Transposed B: each column contiguous in k, as A's rows are for pack_a. */
			if (pack_avx2 && rs == 1 && w == nr && nr % 8 == 0)
				k0 = pack_bt_panel_avx2(b + j0 * cs, cs, kc, nr, dst);
#endif
			for (int64_t j = 0; j < w; j++) {
				const float *s = b + (j0 + j) * cs;
				for (int64_t k = k0; k < kc; k++)
					dst[k * nr + j] = s[k * rs];
			}
			for (int64_t k = 0; k < kc; k++)
				for (int64_t j = w; j < nr; j++)
					dst[k * nr + j] = 0;
		}
		dst += nr * kc;
	}
}

static int64_t round_up(int64_t x, int64_t m)
{
	return (x + m - 1) / m * m;
}

/* Pack a whole operand into p (data at dst, or allocated when dst is NULL): K in blocks of the family's kc,
 * each block the strips / panels of all rows / columns. */
static void pack_full_f(const struct kfam *f, struct kgemm_packed *p, bool is_b, int64_t outer, int64_t K,
			const float *X, int64_t rs, int64_t cs, float *dst)
{
	int w = is_b ? f->nr : f->mr;
	int64_t pad = round_up(outer > 0 ? outer : 1, w);
	p->isa = f->isa;
	p->is_b = is_b;
	p->rows = is_b ? K : outer;
	p->cols = is_b ? outer : K;
	p->bytes = (size_t)(pad * (K > 0 ? K : 1)) * sizeof(float);
	p->data = dst ? dst : acc_alloc_big(round_up(p->bytes, 64));
	if (!p->data)
		fatal("out of memory packing a %zu-byte operand", p->bytes);
	for (int64_t pc = 0; pc < K; pc += f->kc) {
		int64_t kc = K - pc < f->kc ? K - pc : f->kc;
		float *d = p->data + pc * pad;
		if (is_b)
			pack_b(X + pc * rs, rs, cs, kc, outer, w, d);
		else
			pack_a(X + pc * cs, rs, cs, outer, kc, w, d);
	}
}

static void pack_full(struct kgemm_packed *p, bool is_b, int64_t outer, int64_t K, const float *X, int64_t rs,
		      int64_t cs, float *dst)
{
	kgemm_init();
	pack_full_f(fam, p, is_b, outer, K, X, rs, cs, dst);
}

/* Largest padding any family uses: MR in {4, 6, 8}, NR in {8, 16, 32}. */
size_t kgemm_pack_a_bytes(int64_t M, int64_t K)
{
	return (size_t)(round_up(M > 0 ? M : 1, 24) * (K > 0 ? K : 1)) * sizeof(float);
}

size_t kgemm_pack_b_bytes(int64_t K, int64_t N)
{
	return (size_t)(round_up(N > 0 ? N : 1, 32) * (K > 0 ? K : 1)) * sizeof(float);
}

void kgemm_pack_a_to(struct kgemm_packed *p, bool trans, int64_t M, int64_t K, const float *A, int64_t lda,
		     float *dst)
{
	pack_full(p, false, M, K, A, trans ? 1 : lda, trans ? lda : 1, dst);
}

void kgemm_pack_b_to(struct kgemm_packed *p, bool trans, int64_t K, int64_t N, const float *B, int64_t ldb,
		     float *dst)
{
	pack_full(p, true, N, K, B, trans ? 1 : ldb, trans ? ldb : 1, dst);
}

struct kgemm_packed *kgemm_pack_a(bool trans, int64_t M, int64_t K, const float *A, int64_t lda)
{
	struct kgemm_packed *p = xcalloc(1, sizeof(*p));
	pack_full(p, false, M, K, A, trans ? 1 : lda, trans ? lda : 1, NULL);
	return p;
}

struct kgemm_packed *kgemm_pack_b(bool trans, int64_t K, int64_t N, const float *B, int64_t ldb)
{
	struct kgemm_packed *p = xcalloc(1, sizeof(*p));
	pack_full(p, true, N, K, B, trans ? 1 : ldb, trans ? ldb : 1, NULL);
	return p;
}

void kgemm_packed_free(struct kgemm_packed *p)
{
	if (!p)
		return;
	free(p->data);
	free(p);
}

bool kgemm_packed_ok(const struct kgemm_packed *p)
{
	kgemm_init();
	return p && p->isa == fam->isa;
}

/* ---- driver ---- */

struct gemm_job {
	const struct kfam *f;
	int64_t M, N, K;
	float alpha;
	int acc0; /* add to C on the first K block (beta 1) */
	const float *A, *B;
	int64_t rsa, csa, rsb, csb, ldc;
	const struct kgemm_packed *pa, *pb;
	float *C;
	const struct kepi *epi;
	bool split_n;
	int64_t units, parts; /* panels (split_n) or strips, shared out among parts */
};

/* This thread's packing buffers (MC x KC_MAX of A, KC_MAX x NC of B), allocated once per thread. */
static float *thread_buf(void)
{
	float *b = pthread_getspecific(buf_key);
	if (!b) {
		b = aligned_alloc(64, (size_t)(MC * KC_MAX + KC_MAX * NC) * sizeof(float));
		if (!b)
			fatal("out of memory for GEMM packing buffers");
		pthread_setspecific(buf_key, b);
	}
	return b;
}

/* A packed before a split, in the calling thread's buffer (grown to the largest asked, kept
 * for the thread's life, freed at its exit). */
#define PREPACK_MAX_BYTES ((size_t)2 << 20)
struct prepack_mem {
	size_t size;
	float *data;
};

static void prepack_free(void *p)
{
	struct prepack_mem *m = p;
	free(m->data);
	free(m);
}

static float *prepack_buf(size_t bytes)
{
	struct prepack_mem *m = pthread_getspecific(pre_key);
	if (!m) {
		m = xcalloc(1, sizeof(*m));
		pthread_setspecific(pre_key, m);
	}
	if (bytes > m->size) {
		free(m->data);
		m->data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
		if (!m->data)
			fatal("out of memory for GEMM packing buffers");
		m->size = bytes;
	}
	return m->data;
}

/* Rows [m0, m1) x columns [n0, n1) of C (m0 a multiple of MR, n0 of NR). */
static void gemm_block(const struct gemm_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1)
{
	const struct kfam *f = j->f;
	const int mr = f->mr, nr = f->nr;
	float *abuf = NULL, *bbuf = NULL;
	if (!j->pa || !j->pb) {
		abuf = thread_buf();
		bbuf = abuf + MC * KC_MAX;
	}
	int64_t mpad = j->pa ? round_up(j->M, mr) : 0, npad = j->pb ? round_up(j->N, nr) : 0;
	for (int64_t jc = n0; jc < n1; jc += NC) {
		int64_t nc = n1 - jc < NC ? n1 - jc : NC;
		for (int64_t pc = 0; pc < j->K; pc += f->kc) {
			int64_t kc = j->K - pc < f->kc ? j->K - pc : f->kc;
			const float *bp;
			if (j->pb) {
				bp = j->pb->data + pc * npad + jc * kc;
			} else {
				pack_b(j->B + pc * j->rsb + jc * j->csb, j->rsb, j->csb, kc, nc, nr, bbuf);
				bp = bbuf;
			}
			int acc = pc > 0 || j->acc0, last = pc + kc >= j->K;
			/* Transcendental activations (Sigmoid, Gelu, Tanh, ...) are not done per tile:
			 * the kernel adds only the bias, then whole rows of the block get the activation
			 * in long vector loops while the block is still in L2. */
			const struct kepi *e = last ? j->epi : NULL, *et = e;
			struct kepi eb;
			bool defer = e && e->act != KACT_NONE && e->act != KACT_RELU && e->act != KACT_CLIP;
			if (defer) {
				eb = *e;
				eb.act = KACT_NONE;
				et = eb.bias ? &eb : NULL;
			}
			for (int64_t ic = m0; ic < m1; ic += MC) {
				int64_t mc = m1 - ic < MC ? m1 - ic : MC;
				const float *ap;
				if (j->pa) {
					ap = j->pa->data + pc * mpad + ic * kc;
				} else {
					pack_a(j->A + ic * j->rsa + pc * j->csa, j->rsa, j->csa, mc, kc, mr, abuf);
					ap = abuf;
				}
				for (int64_t jr = 0; jr < nc; jr += nr) {
					int n = nc - jr < nr ? (int)(nc - jr) : nr;
					for (int64_t ir = 0; ir < mc; ir += mr) {
						int m = mc - ir < mr ? (int)(mc - ir) : mr;
						float *ct = j->C + (ic + ir) * j->ldc + jc + jr;
						if (!f->ukr(kc, ap + ir * kc, bp + jr * kc, ct, j->ldc, m, n, j->alpha, acc, et,
							    ic + ir, jc + jr) &&
						    et)
							kepi_apply(et, ct, j->ldc, ic + ir, m, jc + jr, n);
					}
				}
				if (defer)
					for (int64_t i = ic; i < ic + mc; i++)
						kact_apply(e, j->C + i * j->ldc + jc, nc);
			}
		}
	}
}

/* Parts [b, e) of the split. */
static void gemm_part(void *arg, int64_t b, int64_t e)
{
	const struct gemm_job *j = arg;
	for (int64_t p = b; p < e; p++) {
		int64_t u0 = p * j->units / j->parts, u1 = (p + 1) * j->units / j->parts;
		if (u0 == u1)
			continue;
		if (j->split_n) {
			int64_t n0 = u0 * j->f->nr, n1 = u1 * j->f->nr;
			gemm_block(j, 0, j->M, n0, n1 < j->N ? n1 : j->N);
		} else {
			int64_t m0 = u0 * j->f->mr, m1 = u1 * j->f->mr;
			gemm_block(j, m0, m1 < j->M ? m1 : j->M, 0, j->N);
		}
	}
}

void kgemm_ex(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
	      const struct kgemm_packed *pa, const float *B, int64_t ldb, const struct kgemm_packed *pb,
	      float beta, float *C, int64_t ldc, const struct kepi *epi, struct tpool *pool)
{
	kgemm_init();
	if (M <= 0 || N <= 0)
		return;
	if (!kepi_active(epi))
		epi = NULL;
	if (beta != 0 && beta != 1) {
		for (int64_t i = 0; i < M; i++)
			for (int64_t jj = 0; jj < N; jj++)
				C[i * ldc + jj] *= beta;
		beta = 1;
	}
	if (K <= 0) {
		for (int64_t i = 0; i < M && beta == 0; i++)
			memset(C + i * ldc, 0, N * sizeof(float));
		if (epi)
			kepi_apply(epi, C, ldc, 0, M, 0, N);
		return;
	}
	if (pa && !kgemm_packed_ok(pa))
		pa = NULL;
	if (pb && !kgemm_packed_ok(pb))
		pb = NULL;
	if (!pa && !A)
		fatal("kgemm: A was neither given nor packed for this kernel");
	if (!pb && !B)
		fatal("kgemm: B was neither given nor packed for this kernel");
#ifdef HAVE_OPENBLAS
	/* One or two rows against an unpacked B: a matrix-vector product skips packing B. */
	if (M <= 2 && !pa && !pb && !ta && !epi) {
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
#endif
	const struct kfam *f = fam;
	int nt = tpool_size(pool);
	double work = (double)M * N * K;
	/* Few rows against packed weights (the MLP, small batches): pack A once here, so that the
	 * columns are split among the threads, each part reading its share of B once (splitting
	 * the rows had every part stream all of B; splitting the columns without this had each
	 * part pack all of A). On AVX2 the kernels prefetch B, and M = 4, 8, 16 take 4-row
	 * strips. Not for a single panel of columns (a classifier's 10 outputs): that splits by
	 * rows, each thread packing its own strips, instead of one thread packing all of A while
	 * the others wait (the MLP's 1024 -> 10 layer, 2 threads: 1.7x at 8 and 32 rows; the MLP
	 * at batch 32 1.01x, median of 12 pairs). */
	struct kgemm_packed pa_own;
	if (pb && !pa && M <= MC && N > f->nr && work >= 6e4 && kgemm_pack_a_bytes(M, K) <= PREPACK_MAX_BYTES) {
#ifdef HAVE_X86_KERNELS
		if (f == &fams[KGEMM_ISA_AVX2])
			f = M <= 16 && M % 4 == 0 && M % 6 != 0 ? &fam_avx2m4 : &fam_avx2pf;
#endif
		pack_full_f(f, &pa_own, false, M, K, A, ta ? 1 : lda, ta ? lda : 1,
			    prepack_buf(kgemm_pack_a_bytes(M, K)));
		pa = &pa_own;
	}
	struct gemm_job j = {
		.f = f, .M = M, .N = N, .K = K, .alpha = alpha, .acc0 = beta != 0, .A = A, .B = B,
		.rsa = ta ? 1 : lda, .csa = ta ? lda : 1, .rsb = tb ? 1 : ldb, .csb = tb ? ldb : 1, .ldc = ldc,
		.pa = pa, .pb = pb, .C = C, .epi = epi,
	};
	int64_t panels = (N + f->nr - 1) / f->nr, strips = (M + f->mr - 1) / f->mr;
	j.split_n = panels >= 2 * nt || panels >= strips;
	/* B packed ahead (weights) and A not: splitting the rows packs each row of A once, where
	 * splitting the columns packs all of A once per part. */
	if (pb && !pa && strips >= 2 * nt)
		j.split_n = false;
	j.units = j.split_n ? panels : strips;
	/* Big products in parts of about PART_WORK multiply-adds (at least two per thread): parts
	 * are claimed dynamically, so a thread the OS takes away on a loaded machine holds back at
	 * most one small part. */
	int64_t parts = work < 6e4 ? 1 : work < 2e7 ? nt : 2 * nt;
	if (work >= 2e7 && work / PART_WORK > parts)
		parts = (int64_t)(work / PART_WORK);
	if (parts > j.units)
		parts = j.units;
	j.parts = parts;
	if (parts <= 1 || nt <= 1) {
		j.parts = 1;
		gemm_part(&j, 0, 1);
		return;
	}
	tpool_for(pool, parts, 1, gemm_part, &j);
}

void kgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
	   const float *B, int64_t ldb, float beta, float *C, int64_t ldc, struct tpool *pool)
{
	kgemm_ex(ta, tb, M, N, K, alpha, A, lda, NULL, B, ldb, NULL, beta, C, ldc, NULL, pool);
}
