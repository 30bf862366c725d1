/* engine_pool_test.c - MaxPool / AveragePool / GlobalAveragePool / GlobalMaxPool against a
 * naive reference over random 1-D, 2-D and 3-D geometries (kernel, stride, dilation, pads,
 * ceil_mode, count_include_pad), and the thread pool's loops. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "onnx.pb-c.h"
#include "onnx_builder.h"
#include "threadpool.h"
#include "util.h"

/* Geometry of one random case. */
struct geo {
	bool maxp, global, include_pad, ceil;
	int k; /* spatial rank */
	int64_t N, C, in[3], kern[3], stride[3], dil[3], pb[3], pe[3], out[3];
};

/* A one-node model for g, serialised. */
static uint8_t *pool_model(const struct geo *g, size_t *len)
{
	Onnx__ModelProto *m = mb_new(19, NULL);
	int64_t dims[5] = { g->N, g->C, g->in[0], g->in[1], g->in[2] };
	mb_input(m, "X", MB_FLOAT, 2 + g->k, dims);
	mb_output(m, "Y", MB_FLOAT);
	const char *op = g->global ? (g->maxp ? "GlobalMaxPool" : "GlobalAveragePool")
				   : (g->maxp ? "MaxPool" : "AveragePool");
	Onnx__NodeProto *n = mb_node(m, op, NULL, MB_L("X"), MB_L("Y"));
	if (!g->global) {
		int64_t pads[6];
		for (int i = 0; i < g->k; i++) {
			pads[i] = g->pb[i];
			pads[g->k + i] = g->pe[i];
		}
		mb_attr_ints(n, "kernel_shape", g->k, g->kern);
		mb_attr_ints(n, "strides", g->k, g->stride);
		mb_attr_ints(n, "dilations", g->k, g->dil);
		mb_attr_ints(n, "pads", 2 * g->k, pads);
		mb_attr_int(n, "ceil_mode", g->ceil);
		if (!g->maxp)
			mb_attr_int(n, "count_include_pad", g->include_pad);
	}
	return mb_pack(m, len);
}

/* Output element o (flat spatial index) of plane x, from the ONNX definition. */
static float ref_at(const struct geo *g, const float *x, int64_t o)
{
	int64_t oi[3], isz = 1, ksz = 1;
	for (int d = g->k - 1; d >= 0; d--) {
		oi[d] = o % g->out[d];
		o /= g->out[d];
		isz *= g->in[d];
		ksz *= g->kern[d];
	}
	float best = -INFINITY, sum = 0;
	int64_t cnt = 0, cnt_pad = 0;
	for (int64_t kk = 0; kk < ksz; kk++) {
		int64_t rem = kk, off = 0;
		bool in = true, in_pad = true;
		int64_t ki[3];
		for (int d = g->k - 1; d >= 0; d--) {
			ki[d] = rem % g->kern[d];
			rem /= g->kern[d];
		}
		for (int d = 0; d < g->k; d++) {
			int64_t q = oi[d] * g->stride[d] - g->pb[d] + ki[d] * g->dil[d];
			in &= q >= 0 && q < g->in[d];
			in_pad &= q >= -g->pb[d] && q < g->in[d] + g->pe[d];
			off = off * g->in[d] + q;
		}
		cnt_pad += in_pad;
		if (in) {
			cnt++;
			sum += x[off];
			best = x[off] > best ? x[off] : best;
		}
	}
	(void)isz;
	if (g->maxp)
		return best;
	int64_t div = g->include_pad ? cnt_pad : cnt;
	return div ? sum / (float)div : 0.0f;
}

/* Random geometry: a valid window configuration of spatial rank k. */
static void random_geo(struct geo *g, int k, unsigned *seed)
{
	memset(g, 0, sizeof(*g));
	g->k = k;
	g->maxp = rand_r(seed) & 1;
	g->include_pad = rand_r(seed) & 1;
	g->ceil = rand_r(seed) & 1;
	g->N = 1 + rand_r(seed) % 2;
	g->C = 1 + rand_r(seed) % 5;
	for (int d = 0; d < k; d++) {
		g->kern[d] = 1 + rand_r(seed) % 4;
		g->stride[d] = 1 + rand_r(seed) % 3;
		g->dil[d] = rand_r(seed) % 4 ? 1 : 2;
		int64_t ek = (g->kern[d] - 1) * g->dil[d] + 1;
		g->pb[d] = rand_r(seed) % (ek < 3 ? ek : 3);
		g->pe[d] = rand_r(seed) % (ek < 3 ? ek : 3);
		g->in[d] = (k == 3 ? 1 : 2) + rand_r(seed) % (k == 3 ? 6 : 40);
		if (g->in[d] + g->pb[d] + g->pe[d] < ek)
			g->in[d] = ek;
		int64_t span = g->in[d] + g->pb[d] + g->pe[d] - ek, s = g->stride[d];
		int64_t o = (g->ceil ? (span + s - 1) / s : span / s) + 1;
		if (g->ceil && (o - 1) * s >= g->in[d] + g->pb[d])
			o--;
		g->out[d] = o;
	}
}

/* Run g on random data through the engine with the given threads; compare with ref_at. */
static void check_geo(const struct geo *g, int threads, unsigned *seed)
{
	size_t len;
	uint8_t *buf = pool_model(g, &len);
	char *err = NULL;
	struct eng_options opt = { .threads = threads };
	struct eng_model *m;
	struct eng_exec *x;
	if (eng_model_load(buf, len, &opt, &m, &err))
		fail_msg("load: %s", err);
	assert_int_equal(eng_exec_create(m, &x, &err), 0);
	int64_t isz = 1, osz = 1;
	for (int d = 0; d < g->k; d++) {
		isz *= g->in[d];
		osz *= g->global ? 1 : g->out[d];
	}
	int64_t planes = g->N * g->C;
	float *xd = xmalloc(planes * isz * sizeof(float));
	for (int64_t i = 0; i < planes * isz; i++)
		xd[i] = (float)(rand_r(seed) % 2001 - 1000) / 250.0f;
	struct eng_tensor in = { .dtype = DT_FP32, .ndims = 2 + g->k, .data = xd, .bytes = planes * isz * 4 };
	in.dims[0] = g->N;
	in.dims[1] = g->C;
	for (int d = 0; d < g->k; d++)
		in.dims[2 + d] = g->in[d];
	struct eng_tensor out;
	if (eng_exec_run(x, &in, &out, &err))
		fail_msg("run: %s", err);
	assert_int_equal(out.ndims, 2 + g->k);
	for (int d = 0; d < g->k; d++)
		assert_int_equal(out.dims[2 + d], g->global ? 1 : g->out[d]);
	const float *y = out.data;
	for (int64_t p = 0; p < planes; p++)
		for (int64_t o = 0; o < osz; o++) {
			float want;
			if (g->global) {
				double s = 0;
				float mx = -INFINITY;
				for (int64_t i = 0; i < isz; i++) {
					s += xd[p * isz + i];
					mx = xd[p * isz + i] > mx ? xd[p * isz + i] : mx;
				}
				want = g->maxp ? mx : (float)(s / (double)isz);
			} else {
				want = ref_at(g, xd + p * isz, o);
			}
			float got = y[p * osz + o];
			if (!(fabsf(got - want) <= 1e-5f + 1e-5f * fabsf(want)) && !(isinf(want) && got == want))
				fail_msg("%s k=%d in %ldx%ldx%ld kern %ldx%ldx%ld stride %ldx%ldx%ld dil %ldx%ldx%ld pads "
					 "%ld,%ld,%ld/%ld,%ld,%ld ceil %d incl %d: plane %ld out %ld got %g want %g",
					 g->maxp ? "max" : "avg", g->k, (long)g->in[0], (long)g->in[1], (long)g->in[2],
					 (long)g->kern[0], (long)g->kern[1], (long)g->kern[2], (long)g->stride[0],
					 (long)g->stride[1], (long)g->stride[2], (long)g->dil[0], (long)g->dil[1],
					 (long)g->dil[2], (long)g->pb[0], (long)g->pb[1], (long)g->pb[2], (long)g->pe[0],
					 (long)g->pe[1], (long)g->pe[2], g->ceil, g->include_pad, (long)p, (long)o, got, want);
		}
	free(xd);
	eng_exec_free(x);
	eng_model_free(m);
	free(buf);
}

static void test_windowed_pools_match_reference(void **state)
{
	unsigned seed = 12345;
	for (int i = 0; i < 300; i++) {
		struct geo g;
		random_geo(&g, 1 + i % 3, &seed);
		check_geo(&g, 1 + (i & 1), &seed);
	}
}

static void test_resnet_stem_maxpool(void **state)
{
	/* The shape every ResNet has (3x3, stride 2, pad 1) with enough planes to split. */
	unsigned seed = 7;
	struct geo g = { .maxp = true, .k = 2, .N = 2, .C = 16, .in = { 112, 112 }, .kern = { 3, 3 },
			 .stride = { 2, 2 }, .dil = { 1, 1 }, .pb = { 1, 1 }, .pe = { 1, 1 }, .out = { 56, 56 } };
	check_geo(&g, 2, &seed);
	g.maxp = false;
	check_geo(&g, 2, &seed);
}

static void test_global_pools(void **state)
{
	unsigned seed = 99;
	for (int i = 0; i < 8; i++) {
		struct geo g = { .maxp = i & 1, .global = true, .k = 2, .N = 1 + i % 2, .C = 3 + i,
				 .in = { 1 + i * 3, 7 } };
		check_geo(&g, 2, &seed);
	}
}

/* ---- thread pool ---- */

struct sum_job {
	atomic_int_fast64_t sum;
	atomic_int calls;
};

/* Add the indices of [b, e) to the job's sum. */
static void sum_part(void *arg, int64_t b, int64_t e)
{
	struct sum_job *j = arg;
	int64_t s = 0;
	for (int64_t i = b; i < e; i++)
		s += i;
	atomic_fetch_add(&j->sum, s);
	atomic_fetch_add(&j->calls, 1);
}

static void test_tpool_covers_every_item_once(void **state)
{
	for (int threads = 1; threads <= 3; threads++) {
		struct tpool *p = tpool_create(threads);
		assert_int_equal(tpool_size(p), threads);
		for (int64_t n = 0; n < 2000; n += 1 + n / 3)
			for (int64_t grain = 1; grain < 600; grain *= 7) {
				struct sum_job j = { 0, 0 };
				tpool_for(p, n, grain, sum_part, &j);
				assert_int_equal(atomic_load(&j.sum), n * (n - 1) / 2);
				if (n > 0 && n <= grain)
					assert_int_equal(atomic_load(&j.calls), 1);
			}
		tpool_free(p);
	}
}

static void test_tpool_regions_across_sleep_and_wake(void **state)
{
	/* Gaps around the workers' spin-then-sleep threshold, busy gaps and back-to-back regions
	 * of random sizes: every region still covers each item once. */
	unsigned seed = 1;
	for (int threads = 2; threads <= 3; threads++) {
		struct tpool *p = tpool_create(threads);
		for (int i = 0; i < 3000; i++) {
			int r = rand_r(&seed) % 100;
			if (r < 2)
				usleep(150 + rand_r(&seed) % 150);
			else if (r < 8)
				for (volatile int k = 0, m = rand_r(&seed) % 20000; k < m; k++)
					;
			int64_t n = 1 + rand_r(&seed) % 300;
			struct sum_job j = { 0, 0 };
			tpool_for(p, n, 1 + rand_r(&seed) % 8, sum_part, &j);
			assert_int_equal(atomic_load(&j.sum), n * (n - 1) / 2);
		}
		tpool_free(p);
	}
}

static void test_tpool_create_free_at_once(void **state)
{
	/* Stopping before a worker first ran must not leave it asleep (join would hang). */
	for (int i = 0; i < 200; i++) {
		struct tpool *p = tpool_create(2 + i % 2);
		if (i & 1) {
			struct sum_job j = { 0, 0 };
			tpool_for(p, 100, 1, sum_part, &j);
			assert_int_equal(atomic_load(&j.sum), 4950);
		}
		tpool_free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windowed_pools_match_reference),
		cmocka_unit_test(test_resnet_stem_maxpool),
		cmocka_unit_test(test_global_pools),
		cmocka_unit_test(test_tpool_covers_every_item_once),
		cmocka_unit_test(test_tpool_regions_across_sleep_and_wake),
		cmocka_unit_test(test_tpool_create_free_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
