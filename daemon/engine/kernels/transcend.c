/* transcend.c - whole-array GELU and exp (see transcend.h). */
#include "config.h"

#include <math.h>
#include <stdatomic.h>

#include "kernels/transcend.h"
#include "ops/vmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_TRANS_AVX2 1
#endif

static atomic_bool force_portable;

bool ktrans_force_portable(bool on)
{
	return atomic_exchange(&force_portable, on);
}

/* ---- portable loops (vmath.h's formulas, vectorised by the compiler) ---- */

VM_VEC static void gelu_portable(const float *x, float *y, int64_t n)
{
	/* 1 + erf(v) from erfc(|v|) alone: no second polynomial per element. */
	VM_FOR_BLOCKED(i, n, float v = x[i] * (float)M_SQRT1_2, e = vm_erfc_abs(v < 0 ? -v : v);
		       y[i] = 0.5f * x[i] * (v < 0 ? e : 2.0f - e););
}

VM_VEC static float exp_sum_portable(const float *x, float m, float *y, int64_t n)
{
	enum { L = 16 };
	float sv[L] = { 0 }, s = 0;
	int64_t i = 0;
	for (; i + L <= n; i += L)
		for (int k = 0; k < L; k++) {
			float z = x[i + k] - m, e = vm_exp(z);
			e = z < -87.3f ? 0.0f : e;
			y[i + k] = e;
			sv[k] += e;
		}
	for (; i < n; i++) {
		float z = x[i] - m, e = vm_exp(z);
		e = z < -87.3f ? 0.0f : e;
		y[i] = e;
		s += e;
	}
	for (int k = 0; k < L; k++)
		s += sv[k];
	return s;
}

#ifdef HAVE_TRANS_AVX2
/* ---- AVX2 + FMA: four vectors a step ----
 * Each statement below is one step of the formula applied to the U vectors of a block in turn,
 * so the instruction stream always holds U independent chains (the compiler does not interleave
 * the unrolled copies of a loop body on its own: the plain loop runs at about 1.45 ns per
 * element on one Zen 3 core, this at about 1.05). */
#define U 4
#define STEP(...)                                     \
	_Pragma("GCC unroll 4") for (int j = 0; j < U; j++) \
	{                                             \
		__VA_ARGS__;                          \
	}
#define C8(v) _mm256_set1_ps(v)
#define T_AVX2 __attribute__((target("avx2,fma")))

/* E = 2^n (E holds n, a float integer in [-126, 0] or so) times e^r, r = z - n ln 2, Z = z. The
 * degree-7 Taylor polynomial in Estrin's form, as vm_exp. */
#define EXP_STEPS(Z, N, R, P, Q, W, R2, E)                                                                   \
	STEP(N[j] = _mm256_round_ps(_mm256_mul_ps(Z[j], C8(1.44269504088896341f)),                               \
				    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))                              \
	STEP(R[j] = _mm256_fnmadd_ps(N[j], C8(0.693145751953125f), Z[j]))                                        \
	STEP(R[j] = _mm256_fnmadd_ps(N[j], C8(1.428606765330187045e-06f), R[j]))                                 \
	STEP(R2[j] = _mm256_mul_ps(R[j], R[j]))                                                                  \
	STEP(E[j] = _mm256_add_ps(R[j], C8(1.0f)))                                                               \
	STEP(Q[j] = _mm256_fmadd_ps(R[j], C8(1.0f / 6), C8(0.5f)))                                               \
	STEP(P[j] = _mm256_fmadd_ps(R[j], C8(1.0f / 120), C8(1.0f / 24)))                                        \
	STEP(W[j] = _mm256_fmadd_ps(R[j], C8(1.0f / 5040), C8(1.0f / 720)))                                      \
	STEP(E[j] = _mm256_fmadd_ps(R2[j], Q[j], E[j]))                                                          \
	STEP(P[j] = _mm256_fmadd_ps(R2[j], W[j], P[j]))                                                          \
	STEP(R2[j] = _mm256_mul_ps(R2[j], R2[j]))                                                                \
	STEP(E[j] = _mm256_fmadd_ps(R2[j], P[j], E[j]))                                                          \
	STEP(E[j] = _mm256_mul_ps(E[j], _mm256_castsi256_ps(_mm256_slli_epi32(                                   \
						 _mm256_add_epi32(_mm256_cvtps_epi32(N[j]), _mm256_set1_epi32(127)), \
						 23))))

T_AVX2 static void gelu_avx2(const float *x, float *y, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 * U <= n; i += 8 * U) {
		__m256 X[U], V[U], A[U], T[U], P[U], Q[U], W[U], T2[U], T4[U], Z[U], N[U], R[U], E[U], big[U];
		STEP(X[j] = _mm256_loadu_ps(x + i + 8 * j))
		STEP(V[j] = _mm256_mul_ps(X[j], C8((float)M_SQRT1_2)))
		STEP(A[j] = _mm256_andnot_ps(C8(-0.0f), V[j]))
		/* erfc(|v|) < 1.2e-38 beyond 9.2 (and 0 is what the plain formula gives there) */
		STEP(big[j] = _mm256_cmp_ps(A[j], C8(9.2f), _CMP_GE_OQ))
		STEP(A[j] = _mm256_min_ps(A[j], C8(9.2f)))
		/* erfc(a) = t e^(P(t) - a^2), t = 1 / (1 + a/2), P of degree 9 (vm_erfc_abs) */
		STEP(T[j] = _mm256_div_ps(C8(1.0f), _mm256_fmadd_ps(A[j], C8(0.5f), C8(1.0f))))
		STEP(T2[j] = _mm256_mul_ps(T[j], T[j]))
		STEP(P[j] = _mm256_fmadd_ps(T[j], C8(1.00002368f), C8(-1.26551223f)))
		STEP(Q[j] = _mm256_fmadd_ps(T[j], C8(0.09678418f), C8(0.37409196f)))
		STEP(T4[j] = _mm256_mul_ps(T2[j], T2[j]))
		STEP(P[j] = _mm256_fmadd_ps(T2[j], Q[j], P[j]))
		STEP(Q[j] = _mm256_fmadd_ps(T[j], C8(0.27886807f), C8(-0.18628806f)))
		STEP(W[j] = _mm256_fmadd_ps(T[j], C8(1.48851587f), C8(-1.13520398f)))
		STEP(Q[j] = _mm256_fmadd_ps(T2[j], W[j], Q[j]))
		STEP(W[j] = _mm256_fmadd_ps(T[j], C8(0.17087277f), C8(-0.82215223f)))
		STEP(T2[j] = _mm256_mul_ps(T4[j], T4[j]))
		STEP(P[j] = _mm256_fmadd_ps(T4[j], Q[j], P[j]))
		STEP(P[j] = _mm256_fmadd_ps(T2[j], W[j], P[j]))
		STEP(Z[j] = _mm256_fnmadd_ps(A[j], A[j], P[j])) /* >= -86: 2^n stays a normal number */
		EXP_STEPS(Z, N, R, P, Q, W, T2, E)
		STEP(E[j] = _mm256_andnot_ps(big[j], _mm256_mul_ps(T[j], E[j])))
		/* 1 + erf(v): erfc(|v|) for v < 0, 2 - erfc(|v|) above (the sign bit picks) */
		STEP(E[j] = _mm256_blendv_ps(_mm256_sub_ps(C8(2.0f), E[j]), E[j], V[j]))
		STEP(_mm256_storeu_ps(y + i + 8 * j, _mm256_mul_ps(_mm256_mul_ps(C8(0.5f), X[j]), E[j])))
	}
	if (i < n)
		gelu_portable(x + i, y + i, n - i);
}

T_AVX2 static float exp_sum_avx2(const float *x, float m, float *y, int64_t n)
{
	__m256 S[U];
	STEP(S[j] = _mm256_setzero_ps())
	const __m256 M = C8(m);
	int64_t i = 0;
	for (; i + 8 * U <= n; i += 8 * U) {
		__m256 Z[U], N[U], R[U], P[U], Q[U], W[U], R2[U], E[U], low[U];
		STEP(Z[j] = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8 * j), M))
		STEP(low[j] = _mm256_cmp_ps(Z[j], C8(-87.3f), _CMP_LT_OQ))
		STEP(Z[j] = _mm256_max_ps(C8(-87.3f), Z[j])) /* NaN stays (second operand) */
		EXP_STEPS(Z, N, R, P, Q, W, R2, E)
		STEP(E[j] = _mm256_andnot_ps(low[j], E[j]))
		STEP(_mm256_storeu_ps(y + i + 8 * j, E[j]))
		STEP(S[j] = _mm256_add_ps(S[j], E[j]))
	}
	__m256 s = _mm256_add_ps(_mm256_add_ps(S[0], S[1]), _mm256_add_ps(S[2], S[3]));
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	float sum = _mm_cvtss_f32(h);
	if (i < n)
		sum += exp_sum_portable(x + i, m, y + i, n - i);
	return sum;
}

/* Whether the AVX2 kernels may run. */
static bool use_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !atomic_load(&force_portable);
}
#endif

void ktrans_gelu(const float *x, float *y, int64_t n)
{
#ifdef HAVE_TRANS_AVX2
	if (use_avx2()) {
		gelu_avx2(x, y, n);
		return;
	}
#endif
	gelu_portable(x, y, n);
}

float ktrans_exp_sum(const float *x, float m, float *y, int64_t n)
{
#ifdef HAVE_TRANS_AVX2
	if (use_avx2())
		return exp_sum_avx2(x, m, y, n);
#endif
	return exp_sum_portable(x, m, y, n);
}
