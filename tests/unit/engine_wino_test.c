/* engine_wino_test.c - the Winograd F(4x4, 3x3) path (kernels/winograd.c) against a naive
 * convolution: sizes that are and are not multiples of the 4x4 tile, symmetric, asymmetric and
 * zero pads, 1 and 3 images (and a group limit forcing several image groups), every activation
 * it takes, with and without bias and a residual already in y, with and without a thread pool;
 * and the rule of which layers it takes. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/act.h"
#include "kernels/gemm.h"
#include "kernels/winograd.h"
#include "threadpool.h"
#include "pool_fixture.h"

/* A reproducible value in [-1, 1). */
static float rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)(*s >> 8) / (float)(1 << 23) - 1.0f;
}

/* NCHW index -> nChw8c index. */
static size_t blk(int64_t n, int64_t c, int64_t h, int64_t w, int64_t C, int64_t H, int64_t W)
{
	return (size_t)((((n * (C / 8) + c / 8) * H + h) * W + w) * 8 + c % 8);
}

/* The activation of e on v. */
static double act(const struct kepi *e, double v)
{
	switch (e->act) {
	case KACT_RELU:
		return v > 0 ? v : 0;
	case KACT_LEAKYRELU:
		return v >= 0 ? v : e->alpha * v;
	case KACT_CLIP:
		return v < e->min ? e->min : v > e->max ? e->max : v;
	}
	return v;
}

/* One layer: run the path on blocked data and compare with a naive convolution in double. */
static void check(const struct kwino_desc *d, int64_t N, int64_t H, int64_t W, const struct kepi *e, bool bias,
		  bool sum, struct tpool *pool)
{
	uint32_t s = 7u + (uint32_t)(d->C * 3 + d->M + H * 11 + W + N * 5 + d->pt);
	int64_t C = d->C, M = d->M, OH = H + d->pt + d->pb - 2, OW = W + d->pl + d->pr - 2;
	float *w = malloc(M * C * 9 * sizeof(float)), *b = malloc(M * sizeof(float));
	float *x = malloc(N * C * H * W * sizeof(float)), *y = malloc(N * M * OH * OW * sizeof(float));
	float *res = malloc(N * M * OH * OW * sizeof(float));
	for (int64_t i = 0; i < M * C * 9; i++)
		w[i] = rnd(&s) * 0.5f;
	for (int64_t i = 0; i < M; i++)
		b[i] = rnd(&s);
	for (int64_t i = 0; i < N * C * H * W; i++)
		x[i] = rnd(&s); /* blocked order: which element is which does not matter for random data */
	for (int64_t i = 0; i < N * M * OH * OW; i++)
		res[i] = y[i] = sum ? rnd(&s) : NAN;
	struct kwino *k = kwino_new(d, w, bias ? b : NULL, e);
	void *scratch = malloc(kwino_scratch(d, N, H, W));
	assert_int_equal(kwino_run(k, N, H, W, x, y, sum, scratch, pool), 0);
	double md = 0;
	for (int64_t n = 0; n < N; n++)
		for (int64_t m = 0; m < M; m++)
			for (int64_t oh = 0; oh < OH; oh++)
				for (int64_t ow = 0; ow < OW; ow++) {
					double acc = bias ? b[m] : 0;
					for (int64_t c = 0; c < C; c++)
						for (int i = 0; i < 3; i++)
							for (int j = 0; j < 3; j++) {
								int64_t ih = oh - d->pt + i, iw = ow - d->pl + j;
								if (ih < 0 || ih >= H || iw < 0 || iw >= W)
									continue;
								acc += (double)x[blk(n, c, ih, iw, C, H, W)] * w[(m * C + c) * 9 + i * 3 + j];
							}
					size_t at = blk(n, m, oh, ow, M, OH, OW);
					if (sum)
						acc += res[at];
					double want = act(e, acc), diff = fabs(y[at] - want) / (1.0 + fabs(want));
					if (!(diff <= md))
						md = isnan(diff) ? INFINITY : diff;
				}
	/* F(4x4, 3x3) rounds more than a direct sum (its transforms scale by up to 8 and back): about
	 * 1e-4 of the result's size at 64 channels; a wrong index or pad is off by O(1). */
	if (md > 5e-4)
		fail_msg("C %lld M %lld %lldx%lld pads %lld %lld %lld %lld N %lld act %d sum %d: max rel diff %g",
			 (long long)C, (long long)M, (long long)H, (long long)W, (long long)d->pt, (long long)d->pl,
			 (long long)d->pb, (long long)d->pr, (long long)N, e->act, sum, md);
	kwino_free(k);
	free(scratch);
	free(w);
	free(b);
	free(x);
	free(y);
	free(res);
}

/* Geometries: tile-aligned and ragged sizes, pads 0..2 and asymmetric, channel counts. */
static void test_geometries(void **state)
{
	struct tpool *pool = *state;
	const struct kepi none = { 0 };
	const struct kwino_desc ds[] = {
		{ 16, 16, 1, 1, 1, 1 },
		{ 16, 24, 1, 1, 1, 1 },
		{ 32, 16, 0, 0, 0, 0 },
		{ 24, 32, 2, 0, 1, 2 },
		{ 8, 8, 1, 2, 0, 1 },
	};
	const int64_t hw[][2] = { { 16, 16 }, { 13, 17 }, { 14, 12 } };
	for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++)
		for (size_t j = 0; j < sizeof(hw) / sizeof(hw[0]); j++)
			check(&ds[i], i % 2 ? 3 : 1, hw[j][0], hw[j][1], &none, j != 1, false, pool);
}

/* Activations, bias and a residual in y. */
static void test_epilogues(void **state)
{
	struct tpool *pool = *state;
	const struct kwino_desc d = { 16, 32, 1, 1, 1, 1 };
	const struct kepi es[] = {
		{ .act = KACT_NONE },
		{ .act = KACT_RELU },
		{ .act = KACT_LEAKYRELU, .alpha = 0.1f },
		{ .act = KACT_CLIP, .min = -0.5f, .max = 2.0f },
	};
	for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
		check(&d, 2, 15, 13, &es[i], true, false, pool);
		check(&d, 2, 15, 13, &es[i], true, true, pool);
	}
}

/* Many images of a large layer: more than one image group per run (the scratch limit). */
static void test_groups(void **state)
{
	struct tpool *pool = *state;
	const struct kepi relu = { .act = KACT_RELU };
	const struct kwino_desc d = { 64, 64, 1, 1, 1, 1 };
	assert_true(kwino_scratch(&d, 12, 56, 56) < kwino_scratch(&d, 1, 56, 56) * 12); /* grouped */
	check(&d, 12, 56, 56, &relu, true, true, pool);
}

/* Which layers the path takes. */
static void test_rule(void **state)
{
	(void)state;
	const struct kepi none = { 0 }, sig = { .act = KACT_SIGMOID };
	const struct kwino_desc ok = { 64, 64, 1, 1, 1, 1 }, odd = { 60, 64, 1, 1, 1, 1 }, pad3 = { 64, 64, 3, 3, 3, 3 };
	assert_true(kwino_wanted(&ok, 56, 56, &none) || getenv("ACCELD_ENGINE_WINOGRAD"));
	assert_false(kwino_wanted(&ok, 7, 7, &none)); /* too few tiles */
	assert_false(kwino_wanted(&odd, 56, 56, &none));
	assert_false(kwino_wanted(&pad3, 56, 56, &none));
	assert_false(kwino_wanted(&ok, 56, 56, &sig));
}

int main(void)
{
	kgemm_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_geometries, setup_pool, teardown_pool),
		cmocka_unit_test_setup_teardown(test_geometries, setup_none, NULL),
		cmocka_unit_test_setup_teardown(test_epilogues, setup_pool, teardown_pool),
		cmocka_unit_test_setup_teardown(test_groups, setup_pool, teardown_pool),
		cmocka_unit_test(test_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
