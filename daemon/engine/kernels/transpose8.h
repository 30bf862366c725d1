/* transpose8.h - one 8 x 8 block of floats transposed through AVX2 registers, shared by the
 * GEMM's packing of transposed operands and the Transpose op. x86-64 with GCC only; inlines
 * into functions compiled for AVX2. */
#ifndef ACC_ENGINE_KTRANSPOSE8_H
#define ACC_ENGINE_KTRANSPOSE8_H

#include <immintrin.h>
#include <stdint.h>

/* d[i * ld + j] = s[j * ls + i] for i, j < 8 (row strides in floats; unaligned loads/stores). */
__attribute__((target("avx2"), always_inline)) static inline void ktr8x8(const float *s, int64_t ls, float *d,
									  int64_t ld)
{
	__m256 x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + ls);
	__m256 x2 = _mm256_loadu_ps(s + 2 * ls), x3 = _mm256_loadu_ps(s + 3 * ls);
	__m256 x4 = _mm256_loadu_ps(s + 4 * ls), x5 = _mm256_loadu_ps(s + 5 * ls);
	__m256 x6 = _mm256_loadu_ps(s + 6 * ls), x7 = _mm256_loadu_ps(s + 7 * ls);
	__m256 u0 = _mm256_unpacklo_ps(x0, x1), u1 = _mm256_unpackhi_ps(x0, x1);
	__m256 u2 = _mm256_unpacklo_ps(x2, x3), u3 = _mm256_unpackhi_ps(x2, x3);
	__m256 u4 = _mm256_unpacklo_ps(x4, x5), u5 = _mm256_unpackhi_ps(x4, x5);
	__m256 u6 = _mm256_unpacklo_ps(x6, x7), u7 = _mm256_unpackhi_ps(x6, x7);
	__m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee);
	__m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee);
	__m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee);
	__m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
	_mm256_storeu_ps(d, _mm256_permute2f128_ps(v0, v4, 0x20));
	_mm256_storeu_ps(d + ld, _mm256_permute2f128_ps(v1, v5, 0x20));
	_mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(v2, v6, 0x20));
	_mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(v3, v7, 0x20));
	_mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(v0, v4, 0x31));
	_mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(v1, v5, 0x31));
	_mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(v2, v6, 0x31));
	_mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(v3, v7, 0x31));
}

#endif
