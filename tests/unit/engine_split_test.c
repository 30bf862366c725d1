/* engine_split_test.c - batch splitting in eng_exec_run: a convolutional network whose samples
 * are independent runs a batch as chunks (ACCELD_ENGINE_SPLIT=K) or one sample per thread, an
 * MLP in slices of rows per thread, and both give the outputs of the whole-batch run; networks
 * that mix samples (a reduction over the batch, MaxPool's Indices) run whole. Which way a run went is read off the shape profile
 * (ACCELD_ENGINE_PROFILE=2: every step's input shape, so chunks show as "2x..." rows). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "onnx_builder.h"
#include "profile.h"
#include "util.h"

enum { NET_CNN, NET_BATCH_MEAN, NET_INDICES, NET_MLP };

/* X[N,8,6,6] -> Conv 3x3 (16) + Relu -> MaxPool 2x2 -> Conv 1x1 + residual -> GlobalAveragePool
 * -> Flatten -> Gemm (5) = Y. NET_BATCH_MEAN adds Y2 = ReduceMean of X over the batch axis;
 * NET_INDICES gives the MaxPool's Indices as Y2; NET_MLP is X[N,8] -> Gemm + Relu -> Gemm. */
static uint8_t *net(int v, size_t *len)
{
	unsigned seed = 5;
	Onnx__ModelProto *m = mb_new(13, NULL);
	if (v == NET_MLP) {
		int64_t xd[2] = { -1, 8 }, w1[2] = { 16, 8 }, w2[2] = { 5, 16 };
		mb_input(m, "X", MB_FLOAT, 2, xd);
		mb_init_rand(m, "W1", 2, w1, &seed);
		mb_init_rand(m, "W2", 2, w2, &seed);
		mb_attr_int(mb_node_auto(m, "Gemm", MB_L("X", "W1"), MB_L("h")), "transB", 1);
		mb_node_auto(m, "Relu", MB_L("h"), MB_L("r"));
		mb_attr_int(mb_node_auto(m, "Gemm", MB_L("r", "W2"), MB_L("Y")), "transB", 1);
		mb_output(m, "Y", MB_FLOAT);
		return mb_pack(m, len);
	}
	int64_t xd[4] = { -1, 8, 6, 6 }, w1[4] = { 16, 8, 3, 3 }, w2[4] = { 16, 16, 1, 1 }, wg[2] = { 5, 16 };
	int64_t bg[1] = { 5 }, p1[4] = { 1, 1, 1, 1 }, k2[2] = { 2, 2 }, ax0[1] = { 0 };
	mb_input(m, "X", MB_FLOAT, 4, xd);
	mb_init_rand(m, "W1", 4, w1, &seed);
	mb_init_rand(m, "W2", 4, w2, &seed);
	mb_init_rand(m, "Wg", 2, wg, &seed);
	mb_init_rand(m, "Bg", 1, bg, &seed);
	mb_attr_ints(mb_node_auto(m, "Conv", MB_L("X", "W1"), MB_L("c1")), "pads", 4, p1);
	mb_node_auto(m, "Relu", MB_L("c1"), MB_L("r1"));
	Onnx__NodeProto *mp = mb_node_auto(m, "MaxPool", MB_L("r1"), v == NET_INDICES ? MB_L("p", "Y2") : MB_L("p"));
	mb_attr_ints(mp, "kernel_shape", 2, k2);
	mb_attr_ints(mp, "strides", 2, k2);
	mb_node_auto(m, "Conv", MB_L("p", "W2"), MB_L("c2"));
	mb_node_auto(m, "Add", MB_L("c2", "p"), MB_L("a"));
	mb_node_auto(m, "GlobalAveragePool", MB_L("a"), MB_L("g"));
	mb_node_auto(m, "Flatten", MB_L("g"), MB_L("f"));
	mb_attr_int(mb_node_auto(m, "Gemm", MB_L("f", "Wg", "Bg"), MB_L("Y")), "transB", 1);
	mb_output(m, "Y", MB_FLOAT);
	if (v == NET_BATCH_MEAN)
		mb_attr_ints(mb_node_auto(m, "ReduceMean", MB_L("X"), MB_L("Y2")), "axes", 1, ax0);
	if (v == NET_BATCH_MEAN || v == NET_INDICES)
		mb_output(m, "Y2", v == NET_INDICES ? MB_INT64 : MB_FLOAT);
	return mb_pack(m, len);
}

/* Run net v on n samples with ACCELD_ENGINE_SPLIT=split (NULL: unset), twice (the second run
 * reuses the plans and buffers); outputs copied to out[] (caller frees), the profile of the
 * second run returned (caller frees). */
static char *run(int v, int64_t n, const char *split, uint8_t **out, size_t *out_len)
{
	if (split)
		setenv("ACCELD_ENGINE_SPLIT", split, 1);
	else
		unsetenv("ACCELD_ENGINE_SPLIT");
	size_t len;
	uint8_t *buf = net(v, &len);
	struct eng_model *m = NULL;
	struct eng_exec *e = NULL;
	char *err = NULL;
	struct eng_options o = { .threads = 2 };
	if (eng_model_load(buf, len, &o, &m, &err) || eng_exec_create(m, &e, &err))
		fail_msg("load: %s", err);
	int64_t per = v == NET_MLP ? 8 : 8 * 6 * 6;
	float *x = xmalloc(n * per * sizeof(float));
	for (int64_t i = 0; i < n * per; i++)
		x[i] = (float)((i * 29) % 97) / 48.0f - 1.0f;
	struct eng_tensor in = { .dtype = DT_FP32, .ndims = v == NET_MLP ? 2 : 4, .dims = { n, 8, 6, 6 }, .data = x,
				 .bytes = n * per * sizeof(float) };
	struct eng_tensor outs[2];
	char *prof = NULL;
	for (int k = 0; k < 2; k++) {
		eng_profile_reset();
		if (eng_exec_run(e, &in, outs, &err))
			fail_msg("run: %s", err);
	}
	size_t plen = 0;
	FILE *f = open_memstream(&prof, &plen);
	eng_profile_print(f, "split", 1);
	fclose(f);
	for (size_t i = 0; i < eng_model_n_outputs(m); i++) {
		assert_int_equal(outs[i].dims[0], v == NET_BATCH_MEAN && i == 1 ? 1 : n);
		out_len[i] = outs[i].bytes;
		out[i] = xmalloc(outs[i].bytes + 1);
		memcpy(out[i], outs[i].data, outs[i].bytes);
	}
	eng_exec_free(e);
	eng_model_free(m);
	free(x);
	free(buf);
	unsetenv("ACCELD_ENGINE_SPLIT");
	return prof;
}

/* Run net v whole and split by chunk; compare; return the split run's profile. */
static char *compare(int v, int64_t n, const char *chunk)
{
	uint8_t *a[2] = { 0 }, *b[2] = { 0 };
	size_t al[2] = { 0 }, bl[2] = { 0 };
	char *pa = run(v, n, chunk, a, al);
	char *pb = run(v, n, "0", b, bl);
	for (int o = 0; o < 2; o++) {
		assert_int_equal(al[o], bl[o]);
		if (v == NET_INDICES && o == 1) {
			assert_memory_equal(a[o], b[o], al[o]);
		} else {
			const float *fa = (const float *)a[o], *fb = (const float *)b[o];
			for (size_t i = 0; i < al[o] / sizeof(float); i++)
				if (!(fabsf(fa[i] - fb[i]) <= 1e-5f + 1e-5f * fabsf(fb[i])))
					fail_msg("net %d output %d element %zu: split %g, whole %g", v, o, i, fa[i], fb[i]);
		}
		free(a[o]);
		free(b[o]);
	}
	free(pb);
	return pa;
}

/* The CNN runs as chunks of 2 (and a last one of 1) and matches the whole run. */
static void test_cnn_split(void **state)
{
	(void)state;
	char *p = compare(NET_CNN, 5, "2");
	assert_non_null(strstr(p, "Conv+Relu 2x8x6x6"));
	assert_non_null(strstr(p, "Conv+Relu 1x8x6x6"));
	assert_null(strstr(p, "5x8x6x6"));
	free(p);
	p = compare(NET_CNN, 5, "5"); /* a chunk as large as the batch: whole */
	assert_non_null(strstr(p, "Conv+Relu 5x8x6x6"));
	free(p);
	p = compare(NET_CNN, 4, NULL); /* default below 4 samples per thread: chunks of one per thread */
	assert_non_null(strstr(p, "Conv+Relu 2x8x6x6"));
	free(p);
}

/* From 4 samples per thread on (or with ACCELD_ENGINE_SPLIT=-1), each thread runs whole samples
 * on its own (odd counts too: the threads claim samples as they go), gathered in order into the
 * batch's outputs. */
static void test_cnn_samples(void **state)
{
	(void)state;
	for (int64_t n = 8; n <= 19; n += 11) {
		char *p = compare(NET_CNN, n, NULL);
		assert_non_null(strstr(p, "Conv+Relu 1x8x6x6"));
		assert_null(strstr(p, "Conv+Relu 2x8x6x6"));
		free(p);
	}
	char *p = compare(NET_CNN, 3, "-1");
	assert_non_null(strstr(p, "Conv+Relu 1x8x6x6"));
	assert_null(strstr(p, "Conv+Relu 2x8x6x6"));
	assert_null(strstr(p, "Conv+Relu 3x8x6x6"));
	free(p);
}

/* The MLP from 4 samples per thread on runs slices of up to 8 rows per thread (the last one
 * shorter), gathered in order; below that, whole (no chunks for GEMM-only networks). */
static void test_mlp_slices(void **state)
{
	(void)state;
	char *p = compare(NET_MLP, 8, NULL);
	assert_non_null(strstr(p, "Gemm+Relu 4x8->"));
	assert_null(strstr(p, "Gemm+Relu 8x8->"));
	free(p);
	p = compare(NET_MLP, 13, NULL); /* slices of 6, 6 and 1 */
	assert_non_null(strstr(p, "Gemm+Relu 6x8->"));
	assert_non_null(strstr(p, "Gemm+Relu 1x8->"));
	assert_null(strstr(p, "Gemm+Relu 13x8->"));
	free(p);
	p = compare(NET_MLP, 40, NULL);
	assert_non_null(strstr(p, "Gemm+Relu 8x8->"));
	assert_null(strstr(p, "Gemm+Relu 40x8->"));
	free(p);
	p = compare(NET_MLP, 7, "-3"); /* forced: 3, 3 and 1 */
	assert_non_null(strstr(p, "Gemm+Relu 3x8->"));
	assert_non_null(strstr(p, "Gemm+Relu 1x8->"));
	free(p);
}

/* A reduction over the batch or MaxPool's Indices: never split; the MLP below 4 samples per
 * thread: whole. */
static void test_not_split(void **state)
{
	(void)state;
	static const int nets[] = { NET_BATCH_MEAN, NET_INDICES };
	for (size_t i = 0; i < ACC_ARRAY_LEN(nets); i++) {
		char *p = compare(nets[i], 5, "2");
		assert_non_null(strstr(p, "5x8x6x6"));
		assert_null(strstr(p, "2x8x6x6"));
		free(p);
	}
	uint8_t *o[2] = { 0 };
	size_t ol[2] = { 0 };
	char *p = run(NET_MLP, 6, NULL, o, ol);
	assert_non_null(strstr(p, "Gemm+Relu 6x8->"));
	free(p);
	free(o[0]);
}

int main(void)
{
	setenv("ACCELD_ENGINE_PROFILE", "2", 1); /* read once, before the engine's first use */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cnn_split),
		cmocka_unit_test(test_cnn_samples),
		cmocka_unit_test(test_mlp_slices),
		cmocka_unit_test(test_not_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
