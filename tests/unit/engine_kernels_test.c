/* engine_kernels_test.c - the GEMM, depthwise convolution and epilogue kernels against naive
 * references over odd sizes, transposes, packed operands and every kernel family this CPU runs
 * ("w16" is the AVX-512 kernel's logic built for any CPU). */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/act.h"
#include "kernels/dwconv.h"
#include "kernels/gemm.h"
#include "kernels/transcend.h"
#include "threadpool.h"

static unsigned rng = 12345;

/* A deterministic value in [-1, 1). */
static float frand(void)
{
	rng = rng * 1103515245u + 12345u;
	return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rand_buf(size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof(float));
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
	return p;
}

/* Reference activation of one value. */
static float ref_act(const struct kepi *e, float v)
{
	switch (e->act) {
	case KACT_RELU:
		return v > 0 ? v : 0;
	case KACT_CLIP:
		return v < e->min ? e->min : v > e->max ? e->max : v;
	case KACT_SIGMOID:
		return 1.0f / (1.0f + expf(-v));
	case KACT_HARDSWISH:
		return v * fminf(fmaxf(v / 6.0f + 0.5f, 0.0f), 1.0f);
	case KACT_LEAKYRELU:
		return v < 0 ? v * e->alpha : v;
	case KACT_GELU:
		return 0.5f * v * (1.0f + erff(v / sqrtf(2.0f)));
	case KACT_TANH:
		return tanhf(v);
	default:
		return v;
	}
}

/* Every kernel family usable here. */
static int families(int *out)
{
	int n = 0;
	for (int isa = KGEMM_ISA_GENERIC; isa <= KGEMM_ISA_W16; isa++)
		if (kgemm_set_isa(isa) == isa)
			out[n++] = isa;
	kgemm_set_isa(KGEMM_ISA_AUTO);
	return n;
}

/* One GEMM case checked against a double-precision loop. */
static void check_gemm(struct tpool *pool, int64_t M, int64_t N, int64_t K, bool ta, bool tb, float alpha, float beta,
		       int pack, const struct kepi *epi)
{
	int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
	float *A = rand_buf((size_t)(ta ? K : M) * lda), *B = rand_buf((size_t)(tb ? N : K) * ldb);
	float *C = rand_buf((size_t)M * ldc), *R = malloc((size_t)M * ldc * sizeof(float));
	memcpy(R, C, (size_t)M * ldc * sizeof(float));
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = 0; j < N; j++) {
			double s = 0;
			for (int64_t k = 0; k < K; k++)
				s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
			double v = alpha * s + (beta != 0 ? beta * (double)R[i * ldc + j] : 0.0);
			if (epi && epi->bias)
				v += epi->bias[epi->bias_per_row ? i : j];
			R[i * ldc + j] = epi ? ref_act(epi, (float)v) : (float)v;
		}
	struct kgemm_packed *pa = pack & 1 ? kgemm_pack_a(ta, M, K, A, lda) : NULL;
	struct kgemm_packed *pb = pack & 2 ? kgemm_pack_b(tb, K, N, B, ldb) : NULL;
	kgemm_ex(ta, tb, M, N, K, alpha, pa ? NULL : A, lda, pa, pb ? NULL : B, ldb, pb, beta, C, ldc, epi, pool);
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = 0; j < N; j++) {
			float r = R[i * ldc + j], c = C[i * ldc + j];
			if (fabsf(r - c) > 1e-4f * (1 + (float)K) * 0.1f + 1e-4f * fabsf(r))
				fail_msg("%s M=%lld N=%lld K=%lld ta=%d tb=%d pack=%d: C[%lld,%lld] = %g, want %g",
					 kgemm_isa_name(), (long long)M, (long long)N, (long long)K, ta, tb, pack, (long long)i,
					 (long long)j, c, r);
		}
	/* The padding between rows is never written. */
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = N; j < ldc; j++)
			assert_true(C[i * ldc + j] == R[i * ldc + j]);
	kgemm_packed_free(pa);
	kgemm_packed_free(pb);
	free(A);
	free(B);
	free(C);
	free(R);
}

/* Odd sizes, transposes, packed operands, alpha / beta, each kernel family, 1 and 2 threads. */
static void test_gemm_sizes(void **state)
{
	(void)state;
	static const int64_t sz[] = { 1, 2, 3, 5, 7, 8, 13, 17, 31, 33, 64, 67 };
	int fam[8], nf = families(fam);
	struct tpool *pool = tpool_create(2);
	for (int f = 0; f < nf; f++) {
		assert_int_equal(kgemm_set_isa(fam[f]), fam[f]);
		for (size_t a = 0; a < sizeof(sz) / sizeof(*sz); a++)
			for (size_t b = 0; b < sizeof(sz) / sizeof(*sz); b++) {
				int64_t M = sz[a], N = sz[b], K = sz[(a * 5 + b * 3) % (sizeof(sz) / sizeof(*sz))];
				int v = (int)(a + b);
				check_gemm(v % 3 ? pool : NULL, M, N, K, v & 1, (v >> 1) & 1, 1.0f, 0.0f, v & 3, NULL);
			}
		check_gemm(pool, 9, 11, 7, false, false, 0.5f, 1.0f, 0, NULL);
		check_gemm(pool, 9, 11, 7, true, true, 2.0f, 0.25f, 3, NULL);
		check_gemm(pool, 4, 5, 0, false, false, 1.0f, 0.0f, 0, NULL);
		/* Deep, tall and wide enough to cross the KC, MC and NC blocks. */
		check_gemm(pool, 100, 37, 300, false, true, 1.0f, 0.0f, 2, NULL);
		check_gemm(pool, 101, 45, 520, true, false, 1.0f, 1.0f, 1, NULL);
		check_gemm(pool, 3, 1100, 19, false, false, 1.0f, 0.0f, 0, NULL);
		check_gemm(pool, 1, 1030, 70, false, true, 1.0f, 0.0f, 2, NULL);
		/* Few rows against a packed B: A is packed once before the columns are split (4-row
		 * strips for M = 4, 8, 16 on AVX2), across the KC block and a partial last panel. */
		static const int64_t few[] = { 1, 4, 5, 8, 12, 16, 32, 96 };
		for (size_t a = 0; a < sizeof(few) / sizeof(*few); a++) {
			check_gemm(pool, few[a], 300, 270, a & 1, false, 1.0f, a & 2 ? 1.0f : 0.0f, 2, NULL);
			check_gemm(NULL, few[a], 130, 90, false, a & 1, 1.0f, 0.0f, 2, NULL);
		}
	}
	kgemm_set_isa(KGEMM_ISA_AUTO);
	tpool_free(pool);
}

/* Bias per row and per column with each activation, in the GEMM's epilogue. */
static void test_gemm_epilogue(void **state)
{
	(void)state;
	int fam[8], nf = families(fam);
	struct tpool *pool = tpool_create(2);
	float *bias = rand_buf(200);
	for (int f = 0; f < nf; f++) {
		kgemm_set_isa(fam[f]);
		for (int act = KACT_NONE; act <= KACT_MAX_; act++) {
			struct kepi e = { bias, act & 1, act, -0.3f, 0.4f, 0.2f };
			check_gemm(pool, 13 + act, 21, 17, false, act & 2, 1.0f, 0.0f, act & 3, &e);
			check_gemm(pool, 70, 50, 40, true, false, 1.0f, 1.0f, 1, &e);
			check_gemm(pool, 8, 130, 90, false, false, 1.0f, 0.0f, 2, &e);
			/* 4-row strips over two k blocks (on AVX2; more elsewhere): the epilogue only
			 * after the last. */
			check_gemm(pool, 16, 40, 812, false, true, 0.5f, act & 1 ? 1.0f : 0.0f, 2, &e);
		}
	}
	kgemm_set_isa(KGEMM_ISA_AUTO);
	free(bias);
	tpool_free(pool);
}

/* Depthwise convolution against a direct loop: kernels 1-5, strides, pads, dilations. */
static void test_dwconv(void **state)
{
	(void)state;
	int fam[8], nf = families(fam);
	struct tpool *pool = tpool_create(2);
	for (int f = 0; f < nf; f++) {
		kgemm_set_isa(fam[f]);
		for (int c = 0; c < 40; c++) {
			struct kdw_geom g = { 1 + c % 2, 1 + c % 5, 1 + (c * 7) % 23, 1 + (c * 11) % 37, 0, 0,
					      1 + c % 5, 1 + (c / 2) % 5, 1 + c % 2, 1 + (c / 3) % 2, 1 + (c / 4) % 2,
					      1 + (c / 7) % 2, c % 3, (c / 5) % 3 };
			int64_t ekh = (g.kh - 1) * g.dh + 1, ekw = (g.kw - 1) * g.dw + 1;
			if (g.ih + 2 * g.ph < ekh || g.iw + 2 * g.pw < ekw)
				continue;
			g.oh = (g.ih + 2 * g.ph - ekh) / g.sh + 1;
			g.ow = (g.iw + 2 * g.pw - ekw) / g.sw + 1;
			size_t ni = g.n * g.c * g.ih * g.iw, no = g.n * g.c * g.oh * g.ow;
			float *x = rand_buf(ni), *w = rand_buf(g.c * g.kh * g.kw), *b = rand_buf(g.c);
			float *y = malloc(no * sizeof(float));
			struct kepi e = { c % 4 ? b : NULL, 1, c % 3 ? KACT_RELU : KACT_NONE, 0, 0, 0 };
			kdwconv(&g, x, w, y, &e, c % 2 ? pool : NULL);
			for (int64_t p = 0; p < g.n * g.c; p++)
				for (int64_t oh = 0; oh < g.oh; oh++)
					for (int64_t ow = 0; ow < g.ow; ow++) {
						double s = e.bias ? e.bias[p % g.c] : 0;
						for (int64_t i = 0; i < g.kh; i++)
							for (int64_t j = 0; j < g.kw; j++) {
								int64_t ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
								if (ih >= 0 && ih < g.ih && iw >= 0 && iw < g.iw)
									s += (double)x[(p * g.ih + ih) * g.iw + iw] *
									     w[((p % g.c) * g.kh + i) * g.kw + j];
							}
						float r = ref_act(&e, (float)s), v = y[(p * g.oh + oh) * g.ow + ow];
						if (fabsf(r - v) > 1e-5f + 1e-5f * fabsf(r))
							fail_msg("%s case %d: y[%lld,%lld,%lld] = %g, want %g", kgemm_isa_name(), c,
								 (long long)p, (long long)oh, (long long)ow, v, r);
					}
			free(x);
			free(w);
			free(b);
			free(y);
		}
	}
	kgemm_set_isa(KGEMM_ISA_AUTO);
	tpool_free(pool);
}

/* Whether y is r within rel * |r| + abs (NaN for NaN, the same infinity for an infinity). */
static bool near(float y, double r, double rel, double abs)
{
	if (r != r)
		return y != y;
	if (isinf(r))
		return y == r;
	return fabs(y - r) <= rel * fabs(r) + abs;
}

/* kact_apply (the vectorised loops included: odd lengths leave scalar tails) matches the
 * reference formulas on a spread of values: across the polynomial switch-over points, tiny
 * values (relative error), the saturated tails, infinities and NaN. */
static void test_activations(void **state)
{
	(void)state;
	enum { NX = 1203 };
	static float x[NX], y[NX];
	for (int i = 0; i < 1001; i++)
		x[i] = (i - 500) * 0.031f;
	for (int i = 1001; i < 1101; i++)
		x[i] = (i - 1050) * 1e-3f;
	for (int i = 1101; i < 1199; i++)
		x[i] = (i - 1150) * 0.61f;
	x[1199] = INFINITY;
	x[1200] = -INFINITY;
	x[1201] = 1e-30f;
	x[1202] = NAN;
	for (int act = KACT_NONE; act <= KACT_MAX_; act++) {
		struct kepi e = { NULL, 0, act, -1.5f, 2.5f, 0.1f };
		for (int n = 1; n <= NX; n += n < 40 ? 1 : 389) {
			memcpy(y, x, sizeof(x));
			kact_apply(&e, y, n);
			for (int i = 0; i < NX; i++) {
				float r = i < n ? ref_act(&e, x[i]) : x[i];
				if (!near(y[i], r, 1e-6, 1e-7))
					fail_msg("act %d n %d: f(%g) = %.9g, want %.9g", act, n, x[i], y[i], r);
			}
		}
	}
}

/* ktrans_gelu and ktrans_exp_sum, on both paths (the AVX2 kernels where the CPU has them, the
 * portable loops), in place and not, at every length around the 32-value blocks, against double
 * references: GELU as x/2 erfc(-x / sqrt 2), so the negative tail is held to relative accuracy. */
static void test_transcend(void **state)
{
	(void)state;
	enum { NX = 2300 };
	static float x[NX], y[NX];
	for (int i = 0; i < 2000; i++)
		x[i] = (i - 1000) * 0.0137f; /* -13.7 .. 13.7: past the tails' cut-offs */
	for (int i = 2000; i < 2200; i++)
		x[i] = (i - 2100) * 1e-4f;
	for (int i = 2200; i < NX; i++)
		x[i] = frand() * 4;
	x[17] = INFINITY;
	x[45] = -INFINITY;
	x[77] = NAN;
	x[98] = 1e-30f;
	x[99] = -1e30f;
	for (int path = 0; path < 2; path++) {
		bool was = ktrans_force_portable(path == 1);
		for (int inplace = 0; inplace < 2; inplace++)
			for (int n = 0; n <= NX; n += n < 70 ? 1 : 743) {
				for (int i = 0; i < NX; i++)
					y[i] = inplace ? x[i] : -7.0f;
				ktrans_gelu(inplace ? y : x, y, n);
				for (int i = 0; i < NX; i++) {
					double v = x[i], r = 0.5 * v * erfc(-v / sqrt(2.0));
					if (i >= n) {
						assert_true(inplace ? (y[i] == x[i] || (y[i] != y[i] && x[i] != x[i])) : y[i] == -7.0f);
						continue;
					}
					/* relative 1e-6, and beyond |x| = 3 the rounding of the float
					 * exponent -x^2 / 2 (about 6e-8 x^2 relative) */
					if (!near(y[i], r, 1e-6 + 1e-7 * v * v, 1e-37))
						fail_msg("path %d n %d: gelu(%g) = %.9g, want %.9g", path, n, x[i], y[i], r);
				}
			}
		/* e^(x - m) and the sum, with values far below the maximum (0 there) */
		for (int n = 0; n <= 300; n += n < 70 ? 1 : 23) {
			float m = 2.5f;
			for (int i = 0; i < n; i++)
				x[i] = i % 5 == 4 ? -100.0f - i : frand() * 10;
			float s = ktrans_exp_sum(x, m, y, n);
			double rs = 0;
			for (int i = 0; i < n; i++) {
				double r = exp((double)x[i] - m);
				r = (double)x[i] - m < -87.3 ? 0 : r;
				rs += r;
				if (!(fabs(y[i] - r) <= 3e-7 * r))
					fail_msg("path %d n %d: exp(%g) = %.9g, want %.9g", path, n, x[i] - m, y[i], r);
			}
			assert_true(fabs(s - rs) <= 1e-6 * rs);
		}
		x[3] = NAN;
		assert_true(isnan(ktrans_exp_sum(x, 0, y, 40)) && isnan(y[3]));
		ktrans_force_portable(was);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gemm_sizes),
		cmocka_unit_test(test_gemm_epilogue),
		cmocka_unit_test(test_dwconv),
		cmocka_unit_test(test_activations),
		cmocka_unit_test(test_transcend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
