/* vmath.h - branch-free fp32 exp, erf and erfc for the op kernels: plain C the compiler turns
 * into SIMD code inside loops (no libm calls, selects instead of branches). Relative error
 * about 2e-7 (exp), 3e-7 (erf), 2e-7 (erfc) over the whole range; NaN propagates.
 *
 * VM_VEC marks a hot loop function: cloned for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and
 * the baseline, picked once at load time by the dynamic linker (ifunc), and built at -O3 without
 * trapping math (so that selects if-convert) so the loops vectorise whatever the project's -O level. */
#ifndef ACC_ENGINE_VMATH_H
#define ACC_ENGINE_VMATH_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VM_VEC __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("O3", "no-trapping-math")))
#else
#define VM_VEC
#endif
/* The helpers below must inline into VM_VEC loops although their options differ. */
#define VM_INLINE static inline __attribute__((always_inline))

/* for (i = 0; i < n; i++) BODY, in blocks of 32 with the inner loop unrolled: the vectoriser
 * then interleaves 4 independent vectors (AVX2), whose long exp / erfc dependency chains
 * overlap (GELU alone: 1.15-1.25x); the rest one by one. */
#define VM_FOR_BLOCKED(i, n, ...)                                                       \
	do {                                                                            \
		int64_t vm_b_ = 0;                                                      \
		for (; vm_b_ + 32 <= (n); vm_b_ += 32) {                                \
			_Pragma("GCC unroll 32") for (int64_t i = vm_b_; i < vm_b_ + 32; i++) \
			{                                                               \
				__VA_ARGS__                                             \
			}                                                               \
		}                                                                       \
		for (int64_t i = vm_b_; i < (n); i++) {                                 \
			__VA_ARGS__                                                     \
		}                                                                       \
	} while (0)

/* Float from bits and back. */
VM_INLINE float vm_f(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/* e^x: x = n ln2 + r, |r| <= ln2/2, a degree-7 polynomial for e^r, 2^n applied in two halves
 * so that results down to the denormals and up to overflow come out right. */
VM_INLINE float vm_exp(float x)
{
	float c = x > -104.0f ? x : -104.0f; /* NaN becomes -104 here and is put back at the end */
	c = c < 89.0f ? c : 89.0f;
	float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
	float r = c - n * 0.693145751953125f;
	r = r - n * 1.428606765330187045e-06f;
	/* The degree-7 Taylor polynomial in Estrin's form: a dependency chain of 3 multiply-adds
	 * instead of 7, so more elements are in flight at once. */
	float r2 = r * r, r4 = r2 * r2;
	float p01 = 1.0f + r, p23 = 0.5f + r * (1.0f / 6), p45 = 1.0f / 24 + r * (1.0f / 120),
	      p67 = 1.0f / 720 + r * (1.0f / 5040);
	float p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
	int32_t ni = (int32_t)n, h = ni >> 1;
	float s1 = vm_f((uint32_t)(h + 127) << 23), s2 = vm_f((uint32_t)(ni - h + 127) << 23);
	float y = p * s1 * s2;
	return x != x ? x : y;
}

/* erfc(|x|) for the tail (a Chebyshev-fitted form, relative error ~1e-7 everywhere). */
VM_INLINE float vm_erfc_abs(float ax)
{
	float t = 1.0f / (1.0f + 0.5f * ax);
	/* Degree 9 in t, Estrin's form (as in vm_exp). */
	float t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
	float q0 = -1.26551223f + t * 1.00002368f, q1 = 0.37409196f + t * 0.09678418f;
	float q2 = -0.18628806f + t * 0.27886807f, q3 = -1.13520398f + t * 1.48851587f;
	float q4 = -0.82215223f + t * 0.17087277f;
	float p = (q0 + t2 * q1) + t4 * (q2 + t2 * q3) + t8 * q4;
	return t * vm_exp(p - ax * ax);
}

/* erf(x): an odd Taylor polynomial below 0.5, 1 - erfc above. */
VM_INLINE float vm_erf(float x)
{
	float ax = x < 0 ? -x : x, s = x * x;
	float p = -1.0f / 1320;
	p = p * s + 1.0f / 216;
	p = p * s - 1.0f / 42;
	p = p * s + 1.0f / 10;
	p = p * s - 1.0f / 3;
	p = p * s + 1.0f;
	float small = 1.12837916709551257f * x * p;
	float big = 1.0f - vm_erfc_abs(ax);
	big = x < 0 ? -big : big;
	return ax < 0.5f ? small : big;
}

/* 1 + erf(x), accurate also where it is tiny (x very negative): GELU's factor. */
VM_INLINE float vm_one_plus_erf(float x)
{
	float ax = x < 0 ? -x : x;
	float e = vm_erfc_abs(ax);
	float tail = x < 0 ? e : 2.0f - e;
	return ax < 0.5f ? 1.0f + vm_erf(x) : tail;
}

#endif
