/* engine_layout_test.c - the plan's blocked (nChw8c) layout chains: small convolutional
 * networks run with the layout pass on and off (ACCELD_ENGINE_BLOCKED=0) give the same outputs,
 * the pass really keeps values blocked where every reader can take them (seen in the shape
 * profile, ACCELD_ENGINE_PROFILE=2, which marks blocked tensors "[8c]"), and values with a plain
 * reader, odd channel counts or broadcasting stay plain; a convolution with a fused residual
 * (Conv+Sum) keeps output and residual in one layout. */
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

/* Network variants. */
enum {
	NET_POOL = 1, /* the MaxPool reading r3 also gives Indices (a plain reader mid-chain) */
	NET_ODD = 2, /* the first convolution has 12 outputs (not a multiple of 8) */
	NET_BCAST = 4, /* the residual Add broadcasts a [1,16,1,1] constant instead */
};

/* X[N,8,12,10] -> Conv 3x3 + Relu -> AveragePool 3x3 -> depthwise 3x3 s2 + Clip(0,6) -> Conv 1x1
 * -> Add(residual) -> Relu -> Conv 3x3 (24) -> GlobalAveragePool -> Flatten = Y; GlobalMaxPool of
 * MaxPool 2x2 s2 of the Relu = P (and the MaxPool's Indices = I with NET_POOL). */
static uint8_t *net(unsigned v, size_t *len)
{
	unsigned seed = 7;
	const int64_t c1 = 16;
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[4] = { -1, 8, 12, 10 };
	mb_input(m, "X", MB_FLOAT, 4, xd);
	int64_t w1[4] = { c1, 8, 3, 3 }, b1[1] = { c1 }, wd[4] = { c1, 1, 3, 3 }, w3[4] = { 16, c1, 1, 1 };
	int64_t w4[4] = { 24, 16, 3, 3 }, b4[1] = { 24 }, rc[4] = { 1, 16, 1, 1 };
	mb_init_rand(m, "W1", 4, w1, &seed);
	mb_init_rand(m, "B1", 1, b1, &seed);
	mb_init_rand(m, "Wd", 4, wd, &seed);
	mb_init_rand(m, "W3", 4, w3, &seed);
	mb_init_rand(m, "W4", 4, w4, &seed);
	mb_init_rand(m, "B4", 1, b4, &seed);
	mb_init_rand(m, "R", 4, rc, &seed);
	mb_scalar(m, "lo", 0.0f);
	mb_scalar(m, "hi", 6.0f);
	int64_t p1[4] = { 1, 1, 1, 1 }, s2[2] = { 2, 2 }, k2[2] = { 2, 2 };
	const char *stem_in = "X";
	if (v & NET_ODD) { /* 8 -> 12 channels (plain) -> 8 again before the chain */
		int64_t wa[4] = { 12, 8, 1, 1 }, wb[4] = { 8, 12, 1, 1 };
		mb_init_rand(m, "Wa", 4, wa, &seed);
		mb_init_rand(m, "Wb", 4, wb, &seed);
		mb_node_auto(m, "Conv", MB_L("X", "Wa"), MB_L("o1"));
		mb_node_auto(m, "Relu", MB_L("o1"), MB_L("o2"));
		mb_node_auto(m, "Conv", MB_L("o2", "Wb"), MB_L("o3"));
		stem_in = "o3";
	}
	mb_attr_ints(mb_node_auto(m, "Conv", MB_L(stem_in, "W1", "B1"), MB_L("c1")), "pads", 4, p1);
	mb_node_auto(m, "Relu", MB_L("c1"), MB_L("r1"));
	int64_t k3[2] = { 3, 3 };
	Onnx__NodeProto *ap = mb_node_auto(m, "AveragePool", MB_L("r1"), MB_L("m1"));
	mb_attr_ints(ap, "kernel_shape", 2, k3);
	mb_attr_ints(ap, "pads", 4, p1); /* edges average fewer values (count_include_pad 0) */
	Onnx__NodeProto *dw = mb_node_auto(m, "Conv", MB_L("m1", "Wd"), MB_L("c2"));
	mb_attr_int(dw, "group", c1);
	mb_attr_ints(dw, "pads", 4, p1);
	mb_attr_ints(dw, "strides", 2, s2);
	mb_node_auto(m, "Clip", MB_L("c2", "lo", "hi"), MB_L("r2"));
	mb_node_auto(m, "Conv", MB_L("r2", "W3"), MB_L("c3"));
	mb_node_auto(m, "Add", MB_L("c3", v & NET_BCAST ? "R" : "r2"), MB_L("a"));
	mb_node_auto(m, "Relu", MB_L("a"), MB_L("r3"));
	mb_attr_ints(mb_node_auto(m, "Conv", MB_L("r3", "W4", "B4"), MB_L("c4")), "pads", 4, p1);
	mb_node_auto(m, "GlobalAveragePool", MB_L("c4"), MB_L("g"));
	mb_node_auto(m, "Flatten", MB_L("g"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	Onnx__NodeProto *mp = mb_node_auto(m, "MaxPool", MB_L("r3"), v & NET_POOL ? MB_L("m2", "I") : MB_L("m2"));
	mb_attr_ints(mp, "kernel_shape", 2, k2);
	mb_attr_ints(mp, "strides", 2, s2);
	mb_node_auto(m, "GlobalMaxPool", MB_L("m2"), MB_L("P"));
	mb_output(m, "P", MB_FLOAT);
	if (v & NET_POOL)
		mb_output(m, "I", MB_INT64);
	return mb_pack(m, len);
}

/* X[N,8,12,10] -> Conv 3x3 (64) + Relu = r -> Conv 1x1 (64) + r -> Relu -> GlobalAveragePool ->
 * Flatten = Y: the residual is the 1x1's own input, whose buffer must not become the output
 * (the 1x1 runs as two slices of 32 channels, the second reading what the first would have
 * overwritten). */
static uint8_t *net_self(size_t *len)
{
	unsigned seed = 3;
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[4] = { -1, 8, 12, 10 }, w1[4] = { 64, 8, 3, 3 }, w2[4] = { 64, 64, 1, 1 }, p1[4] = { 1, 1, 1, 1 };
	mb_input(m, "X", MB_FLOAT, 4, xd);
	mb_init_rand(m, "W1", 4, w1, &seed);
	mb_init_rand(m, "W2", 4, w2, &seed);
	mb_attr_ints(mb_node_auto(m, "Conv", MB_L("X", "W1"), MB_L("c1")), "pads", 4, p1);
	mb_node_auto(m, "Relu", MB_L("c1"), MB_L("r"));
	mb_node_auto(m, "Conv", MB_L("r", "W2"), MB_L("c2"));
	mb_node_auto(m, "Add", MB_L("c2", "r"), MB_L("a"));
	mb_node_auto(m, "Relu", MB_L("a"), MB_L("b"));
	mb_node_auto(m, "GlobalAveragePool", MB_L("b"), MB_L("g"));
	mb_node_auto(m, "Flatten", MB_L("g"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

/* Run the model once on n images; copies every output into out[] (caller frees); returns the
 * shape profile of that run (caller frees). */
static char *run(const uint8_t *buf, size_t len, bool blocked, int64_t n, float **out, size_t *out_n)
{
	if (blocked)
		unsetenv("ACCELD_ENGINE_BLOCKED");
	else
		setenv("ACCELD_ENGINE_BLOCKED", "0", 1);
	struct eng_model *m = NULL;
	struct eng_exec *e = NULL;
	char *err = NULL;
	struct eng_options o = { .threads = 2 };
	if (eng_model_load(buf, len, &o, &m, &err) || eng_exec_create(m, &e, &err))
		fail_msg("load: %s", err);
	int64_t xn = n * 8 * 12 * 10;
	float *x = xmalloc(xn * sizeof(float));
	for (int64_t i = 0; i < xn; i++)
		x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	struct eng_tensor in = { .dtype = DT_FP32, .ndims = 4, .dims = { n, 8, 12, 10 }, .data = x,
				 .bytes = xn * sizeof(float) };
	struct eng_tensor outs[3];
	eng_profile_reset();
	if (eng_exec_run(e, &in, outs, &err))
		fail_msg("run: %s", err);
	char *prof = NULL;
	size_t plen = 0;
	FILE *f = open_memstream(&prof, &plen);
	eng_profile_print(f, "layout", 1);
	fclose(f);
	size_t no = eng_model_n_outputs(m);
	for (size_t i = 0; i < no; i++) {
		assert_int_equal(outs[i].layout, ENG_LAYOUT_PLAIN);
		out_n[i] = outs[i].bytes / sizeof(float);
		out[i] = xmalloc(outs[i].bytes);
		memcpy(out[i], outs[i].data, outs[i].bytes);
	}
	eng_exec_free(e);
	eng_model_free(m);
	free(x);
	unsetenv("ACCELD_ENGINE_BLOCKED");
	return prof;
}

/* Whether the profile has a row whose key contains all of the given pieces. */
static bool prof_has(const char *prof, const char *a, const char *b)
{
	for (const char *line = prof; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t l = end ? (size_t)(end - line) : strlen(line);
		char *row = xstrndup(line, l);
		bool hit = strstr(row, a) && (!b || strstr(row, b));
		free(row);
		if (hit)
			return true;
		line = end ? end + 1 : NULL;
	}
	return false;
}

/* Run variant v (NET_SELF_RES: net_self) both ways at batch n and compare; returns the blocked
 * run's profile. */
#define NET_SELF_RES 0x100
static char *compare(unsigned v, int64_t n)
{
	size_t len;
	uint8_t *buf = v == NET_SELF_RES ? net_self(&len) : net(v, &len);
	float *a[3] = { 0 }, *b[3] = { 0 };
	size_t an[3] = { 0 }, bn[3] = { 0 };
	char *pa = run(buf, len, true, n, a, an);
	char *pb = run(buf, len, false, n, b, bn);
	assert_false(strstr(pb, "[8c]")); /* off means off */
	for (int o = 0; o < 3; o++) {
		assert_int_equal(an[o], bn[o]);
		for (size_t i = 0; i < an[o]; i++)
			if (!(fabsf(a[o][i] - b[o][i]) <= 1e-4f + 1e-4f * fabsf(b[o][i])))
				fail_msg("variant %u batch %lld output %d element %zu: blocked %g, plain %g", v,
					 (long long)n, o, i, a[o][i], b[o][i]);
		free(a[o]);
		free(b[o]);
	}
	free(pb);
	free(buf);
	return pa;
}

/* The whole chain stays blocked: every convolution reads and writes [8c], the residual Add
 * and the activations run on blocked data, the global pool reads it and writes plain. */
static void test_chain(void **state)
{
	(void)state;
	for (int64_t n = 1; n <= 3; n += 2) {
		char *p = compare(0, n);
#ifdef HAVE_DNNL
		assert_true(prof_has(p, "x8x12x10->[8c]", "Conv+Relu")); /* plain graph input, blocked output */
		assert_true(prof_has(p, "Conv+Sum+Relu [8c]", "->[8c]")); /* 1x1 + residual Add + Relu */
		assert_true(prof_has(p, "GlobalAveragePool [8c]", NULL));
		assert_true(prof_has(p, "AveragePool [8c]", "->[8c]"));
		assert_true(prof_has(p, "MaxPool [8c]", "->[8c]"));
		assert_false(prof_has(p, "Flatten [8c]", NULL));
#endif
		free(p);
	}
}

/* A plain reader (MaxPool) of the residual's Relu makes that Relu, the Add and its inputs
 * plain; the convolutions before and after still convert at their edges. */
static void test_plain_reader(void **state)
{
	(void)state;
	char *p = compare(NET_POOL, 2);
#ifdef HAVE_DNNL
	assert_true(prof_has(p, "MaxPool 2x16", NULL)); /* Indices: plain */
	assert_true(prof_has(p, "Conv+Sum+Relu 2x", NULL)); /* residual, output and input all plain */
	assert_false(prof_has(p, "Conv+Sum+Relu [8c]", NULL));
	assert_true(prof_has(p, "GlobalAveragePool [8c]", NULL)); /* last conv: plain in, blocked out */
#endif
	free(p);
}

/* Twelve channels cannot be blocked; a broadcasting Add is not layout-free. */
static void test_odd_and_broadcast(void **state)
{
	(void)state;
	char *p = compare(NET_ODD, 2);
#ifdef HAVE_DNNL
	assert_false(prof_has(p, "[8c]2x12", NULL));
	assert_false(prof_has(p, "->[8c]2x12", NULL));
	assert_true(prof_has(p, "GlobalAveragePool [8c]", NULL));
#endif
	free(p);
	p = compare(NET_BCAST, 2);
#ifdef HAVE_DNNL
	assert_false(prof_has(p, "Add [8c]", NULL));
#endif
	free(p);
}

/* A residual that is its convolution's own input keeps its own buffer. */
static void test_self_residual(void **state)
{
	(void)state;
	char *p = compare(NET_SELF_RES, 2);
#ifdef HAVE_DNNL
	assert_true(prof_has(p, "Conv+Sum+Relu [8c]", "->[8c]"));
#endif
	free(p);
}

int main(void)
{
	setenv("ACCELD_ENGINE_PROFILE", "2", 1); /* read once, before the engine's first use */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_plain_reader),
		cmocka_unit_test(test_odd_and_broadcast),
		cmocka_unit_test(test_self_residual),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
