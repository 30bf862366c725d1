/* engine_dnnl_test.c - the oneDNN convolution path (kernels/dnnl_conv.c) against a naive
 * convolution over odd geometries: dense and depthwise, strides, asymmetric pads, dilations,
 * channel counts that are and are not multiples of 8, batches 1 and 3, every fused activation
 * with a post-op, with and without a thread pool, and input sizes changing between runs. */
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
#include "kernels/dnnl_conv.h"
#include "threadpool.h"
#include "pool_fixture.h"

/* A reproducible value in [-1, 1). */
static float rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)(*s >> 8) / (float)(1 << 23) - 1.0f;
}

/* The activation of e on v, as ONNX defines it. */
static float act(const struct kepi *e, float v)
{
	switch (e->act) {
	case KACT_RELU:
		return v > 0 ? v : 0;
	case KACT_CLIP:
		return v < e->min ? e->min : v > e->max ? e->max : v;
	case KACT_SIGMOID:
		return 1.0f / (1.0f + expf(-v));
	case KACT_HARDSWISH: {
		float t = v / 6.0f + 0.5f;
		return v * (t < 0 ? 0 : t > 1 ? 1 : t);
	}
	case KACT_LEAKYRELU:
		return v >= 0 ? v : e->alpha * v;
	case KACT_GELU:
		return 0.5f * v * (1.0f + erff(v / sqrtf(2.0f)));
	case KACT_TANH:
		return tanhf(v);
	}
	return v;
}

/* Naive grouped 2-D convolution, NCHW. */
static void ref_conv(const struct kdnn_conv_desc *d, int64_t N, int64_t H, int64_t W, int64_t OH, int64_t OW,
		     const float *x, const float *w, const float *b, const struct kepi *e, float *y)
{
	int64_t Cg = d->C / d->G, Mg = d->M / d->G;
	for (int64_t n = 0; n < N; n++)
		for (int64_t m = 0; m < d->M; m++) {
			int64_t g = m / Mg;
			for (int64_t oh = 0; oh < OH; oh++)
				for (int64_t ow = 0; ow < OW; ow++) {
					double s = b ? b[m] : 0;
					for (int64_t c = 0; c < Cg; c++)
						for (int64_t i = 0; i < d->kh; i++)
							for (int64_t j = 0; j < d->kw; j++) {
								int64_t ih = oh * d->sh - d->pt + i * d->dh;
								int64_t iw = ow * d->sw - d->pl + j * d->dw;
								if (ih < 0 || ih >= H || iw < 0 || iw >= W)
									continue;
								s += (double)x[((n * d->C + g * Cg + c) * H + ih) * W + iw] *
								     w[((m * Cg + c) * d->kh + i) * d->kw + j];
							}
					y[((n * d->M + m) * OH + oh) * OW + ow] = act(e, (float)s);
				}
		}
}

/* Runs that oneDNN did (the others it refused with -ENOTSUP: ops/conv.c then uses its own). */
static int n_done;

/* Run one geometry through oneDNN at each (N, H, W) in sizes and compare. */
static void check(const struct kdnn_conv_desc *d, const struct kepi *e, bool bias, const int64_t (*sizes)[3],
		  int n_sizes, struct tpool *pool)
{
	if (!kdnn_conv_wanted(d, e))
		return; /* the rule keeps this one on our own kernels */
	uint32_t s = 12345u + (uint32_t)(d->C * 31 + d->M * 7 + d->kh);
	int64_t wn = d->M * (d->C / d->G) * d->kh * d->kw;
	float *w = malloc(wn * sizeof(float)), *b = malloc(d->M * sizeof(float));
	for (int64_t i = 0; i < wn; i++)
		w[i] = rnd(&s) * 0.5f;
	for (int64_t i = 0; i < d->M; i++)
		b[i] = rnd(&s);
	struct kdnn_conv *c = kdnn_conv_new(d, e);
	assert_non_null(c);
	for (int k = 0; k < n_sizes; k++) {
		int64_t N = sizes[k][0], H = sizes[k][1], W = sizes[k][2];
		int64_t OH = (H + d->pt + d->pb - ((d->kh - 1) * d->dh + 1)) / d->sh + 1;
		int64_t OW = (W + d->pl + d->pr - ((d->kw - 1) * d->dw + 1)) / d->sw + 1;
		int64_t xn = N * d->C * H * W, yn = N * d->M * OH * OW;
		float *x = malloc(xn * sizeof(float)), *y = malloc(yn * sizeof(float)), *r = malloc(yn * sizeof(float));
		void *scratch = malloc(kdnn_conv_scratch(d, N, H, W) + 1);
		for (int64_t i = 0; i < xn; i++)
			x[i] = rnd(&s);
		for (int64_t i = 0; i < yn; i++)
			y[i] = NAN;
		int rc = kdnn_conv_run(c, w, bias ? b : NULL, N, H, W, OH, OW, x, y, scratch, 0, pool);
		if (rc == -ENOTSUP) {
			free(x);
			free(y);
			free(r);
			free(scratch);
			continue;
		}
		assert_int_equal(rc, 0);
		n_done++;
		ref_conv(d, N, H, W, OH, OW, x, w, bias ? b : NULL, e, r);
		double md = 0;
		for (int64_t i = 0; i < yn; i++) {
			double diff = fabs((double)y[i] - r[i]);
			if (!(diff <= md))
				md = isnan(diff) ? INFINITY : diff;
		}
		if (md > 1e-4)
			fail_msg("C %lld M %lld G %lld k %lldx%lld s %lld d %lld pads %lld %lld %lld %lld act %d N %lld %lldx%lld: max diff %g",
				 (long long)d->C, (long long)d->M, (long long)d->G, (long long)d->kh, (long long)d->kw,
				 (long long)d->sh, (long long)d->dh, (long long)d->pt, (long long)d->pl, (long long)d->pb,
				 (long long)d->pr, e->act, (long long)N, (long long)H, (long long)W, md);
		free(x);
		free(y);
		free(r);
		free(scratch);
	}
	kdnn_conv_free(c);
	free(w);
	free(b);
}

static const int64_t sizes[][3] = { { 1, 9, 11 }, { 3, 9, 11 }, { 1, 6, 5 }, { 3, 9, 11 } };

/* Dense convolutions: kernels, strides, pads, dilations, channel counts. */
static void test_dense(void **state)
{
	struct tpool *pool = *state;
	struct kepi e = { 0 };
	const struct kdnn_conv_desc ds[] = {
		{ 3, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 }, /* stem-like: C not a multiple of 8 */
		{ 16, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 },
		{ 16, 64, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0 },
		{ 8, 24, 1, 3, 2, 2, 1, 2, 1, 0, 1, 2, 0, 0 }, /* asymmetric pads, dilation */
		{ 5, 7, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0 }, /* odd channels, no pad */
		{ 32, 64, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0 }, /* strided 1x1 */
		{ 24, 16, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0 }, /* padded 1x1 */
		{ 12, 40, 1, 5, 5, 1, 2, 1, 1, 2, 2, 2, 2, 0 },
	};
	n_done = 0;
	for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++)
		check(&ds[i], &e, i % 2 == 0, sizes, 4, pool);
	if (!getenv("ACCELD_ENGINE_DNNL"))
		assert_true(n_done >= 20);
}

/* Depthwise convolutions (group == C == M). */
static void test_depthwise(void **state)
{
	struct tpool *pool = *state;
	struct kepi e = { .act = KACT_CLIP, .min = 0, .max = 6 };
	const struct kdnn_conv_desc ds[] = {
		{ 32, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 },
		{ 48, 48, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0 },
		{ 13, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 }, /* channels not a multiple of 8 */
		{ 16, 16, 16, 5, 5, 2, 2, 2, 2, 3, 1, 2, 4, 0 },
	};
	n_done = 0;
	for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++)
		check(&ds[i], &e, i != 1, sizes, 4, pool);
	if (!getenv("ACCELD_ENGINE_DNNL"))
		assert_true(n_done >= 14); /* oneDNN refuses the 5x5 dilated one on 6x5 inputs */
}

/* Every activation the epilogue contract has. */
static void test_activations(void **state)
{
	struct tpool *pool = *state;
	const struct kdnn_conv_desc d = { 8, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 };
	const struct kdnn_conv_desc dw = { 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 };
	const struct kepi es[] = {
		{ .act = KACT_RELU },
		{ .act = KACT_CLIP, .min = -0.5f, .max = 0.75f },
		{ .act = KACT_CLIP, .min = -INFINITY, .max = 1.0f },
		{ .act = KACT_SIGMOID },
		{ .act = KACT_HARDSWISH },
		{ .act = KACT_LEAKYRELU, .alpha = 0.1f },
		{ .act = KACT_GELU },
		{ .act = KACT_TANH },
	};
	for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
		check(&d, &es[i], true, sizes, 2, pool);
		check(&dw, &es[i], true, sizes, 2, pool);
	}
}

/* NCHW -> nChw8c (C a multiple of 8). */
static void to_blocked(const float *x, int64_t N, int64_t C, int64_t HW, float *y)
{
	for (int64_t n = 0; n < N; n++)
		for (int64_t c = 0; c < C; c++)
			for (int64_t i = 0; i < HW; i++)
				y[((n * C + c / 8 * 8) * HW + i * 8) + c % 8] = x[(n * C + c) * HW + i];
}

/* Blocked input and/or output, and a residual added before the activation (sum): results
 * equal the NCHW reference (plus the residual) after converting back. The last cases are
 * layers of one slice (24 outputs) at batch 1, big enough that with a pool their two halves of
 * input channels run as separate tasks and are summed after. */
static void test_blocked_sum(void **state)
{
	struct tpool *pool = *state;
	const struct {
		struct kdnn_conv_desc d;
		int act;
		int64_t N, H, W;
	} cs[] = {
		{ { 16, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 }, KACT_RELU, 2, 9, 7 },
		{ { 16, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, KACT_RELU, 2, 9, 7 },
		{ { 32, 16, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1 }, KACT_RELU, 2, 9, 7 }, /* 1x1 + residual (ResNet) */
		{ { 24, 48, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0 }, KACT_RELU, 2, 9, 7 }, /* strided 1x1 */
		{ { 16, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0 }, KACT_RELU, 2, 9, 7 }, /* depthwise */
		{ { 144, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1 }, KACT_NONE, 1, 29, 27 }, /* MobileNetV2 projection */
		{ { 96, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 }, KACT_NONE, 1, 33, 31 },
		{ { 48, 24, 1, 3, 3, 1, 1, 1, 1, 1, 0, 1, 0, 0 }, KACT_NONE, 1, 17, 15 }, /* 3x3, pads on 2 sides */
	};
	int checked = 0;
	for (size_t k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
		const struct kdnn_conv_desc *d = &cs[k].d;
		const struct kepi e = { .act = cs[k].act };
		if (!kdnn_conv_possible(d, &e))
			continue;
		uint32_t s = 99u + (uint32_t)k;
		int64_t N = cs[k].N, H = cs[k].H, W = cs[k].W, wn = d->M * (d->C / d->G) * d->kh * d->kw;
		int64_t OH = (H + d->pt + d->pb - ((d->kh - 1) * d->dh + 1)) / d->sh + 1;
		int64_t OW = (W + d->pl + d->pr - ((d->kw - 1) * d->dw + 1)) / d->sw + 1;
		int64_t xn = N * d->C * H * W, yn = N * d->M * OH * OW;
		float *w = malloc(wn * sizeof(float)), *b = malloc(d->M * sizeof(float));
		float *x = malloc(xn * sizeof(float)), *xb = malloc(xn * sizeof(float)), *res = malloc(yn * sizeof(float));
		float *ref = malloc(yn * sizeof(float)), *refb = malloc(yn * sizeof(float)), *y = malloc(yn * sizeof(float));
		for (int64_t i = 0; i < wn; i++)
			w[i] = rnd(&s) * 0.5f;
		for (int64_t i = 0; i < d->M; i++)
			b[i] = rnd(&s);
		for (int64_t i = 0; i < xn; i++)
			x[i] = rnd(&s);
		for (int64_t i = 0; i < yn; i++)
			res[i] = rnd(&s);
		struct kepi none = { 0 };
		ref_conv(d, N, H, W, OH, OW, x, w, b, &none, ref);
		for (int64_t i = 0; i < yn; i++)
			ref[i] = act(&e, ref[i] + (d->sum ? res[i] : 0.0f));
		to_blocked(x, N, d->C, H * W, xb);
		to_blocked(ref, N, d->M, OH * OW, refb);
		struct kdnn_conv *c = kdnn_conv_new(d, &e);
		void *scratch = malloc(kdnn_conv_scratch(d, N, H, W) + 1);
		for (unsigned flags = 0; flags <= (KDNN_X_BLOCKED | KDNN_Y_BLOCKED); flags++) {
			bool can = kdnn_conv_can(c, w, b, H, W, flags);
			if (d->sum && !(flags & KDNN_Y_BLOCKED)) {
				assert_false(can); /* the residual must already be in the primitive's layout */
				continue;
			}
			if (!can)
				continue;
			if (d->sum)
				to_blocked(res, N, d->M, OH * OW, y);
			assert_int_equal(kdnn_conv_run(c, w, b, N, H, W, OH, OW, flags & KDNN_X_BLOCKED ? xb : x, y, scratch,
						       flags, pool),
					 0);
			const float *want = flags & KDNN_Y_BLOCKED ? refb : ref;
			for (int64_t i = 0; i < yn; i++)
				if (!(fabsf(y[i] - want[i]) <= 1e-4f * (1 + fabsf(want[i]))))
					fail_msg("desc %zu flags %u element %lld: %g vs %g", k, flags, (long long)i, y[i], want[i]);
			checked++;
		}
		kdnn_conv_free(c);
		free(scratch);
		free(w);
		free(b);
		free(x);
		free(xb);
		free(res);
		free(ref);
		free(refb);
		free(y);
	}
	if (!getenv("ACCELD_ENGINE_DNNL"))
		assert_true(checked >= 18);
}

/* The rule: plain 1x1 convolutions and grouped non-depthwise ones stay on our kernels. */
static void test_rule(void **state)
{
	(void)state;
	struct kepi e = { 0 };
	const struct kdnn_conv_desc pw = { 16, 32, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 };
	const struct kdnn_conv_desc grp = { 16, 32, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 };
	const struct kdnn_conv_desc k3 = { 16, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0 };
	assert_false(kdnn_conv_wanted(&grp, &e));
	if (!getenv("ACCELD_ENGINE_DNNL")) { /* 0: nothing wanted; 2: plain 1x1 wanted too */
		assert_false(kdnn_conv_wanted(&pw, &e));
		assert_true(kdnn_conv_wanted(&k3, &e));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dense, setup_pool, teardown_pool),
		cmocka_unit_test_setup_teardown(test_dense, setup_none, NULL),
		cmocka_unit_test_setup_teardown(test_depthwise, setup_pool, teardown_pool),
		cmocka_unit_test_setup_teardown(test_depthwise, setup_none, NULL),
		cmocka_unit_test_setup_teardown(test_activations, setup_pool, teardown_pool),
		cmocka_unit_test_setup_teardown(test_blocked_sum, setup_pool, teardown_pool),
		cmocka_unit_test_setup_teardown(test_blocked_sum, setup_none, NULL),
		cmocka_unit_test(test_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
