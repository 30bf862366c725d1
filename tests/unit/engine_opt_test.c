/* engine_opt_test.c - unit tests of the load-time graph rewrites (opt.c): each rewrite fires on
 * its pattern (fewer nodes), leaves look-alikes that are not legal to rewrite alone, and the
 * optimised model computes what the unoptimised one and a plain C reference compute. */
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

#include "engine.h"
#include "graph.h"
#include "onnx.h"
#include "onnx.pb-c.h"
#include "onnx_builder.h"
#include "ops/ops.h"
#include "opt.h"
#include "util.h"

/* ---- running ---- */

/* Nodes left after parse, prepare, fold and (if optimise) opt_graph; *st gets opt's counts. */
static int count_nodes(const uint8_t *buf, size_t len, bool optimise, struct opt_stats *st)
{
	struct eg_graph *g = NULL;
	char *err = NULL;
	if (onnx_parse_model(buf, len, &g, &err) || eg_graph_prepare(g, &err) || eg_graph_fold(g, &err))
		fail_msg("prepare: %s", err);
	memset(st, 0, sizeof(*st));
	if (optimise && opt_graph(g, st, &err))
		fail_msg("opt: %s", err);
	int n = g->n_nodes;
	eg_graph_free(g);
	return n;
}

/* Run the one-input, one-output model on x (dims given) into y (ny floats). */
static void run_model(const uint8_t *buf, size_t len, bool no_opt, const float *x, int ndims, const int64_t *dims,
		      float *y, size_t ny)
{
	struct eng_model *m = NULL;
	struct eng_exec *e = NULL;
	char *err = NULL;
	struct eng_options o = { .threads = 2, .no_opt = no_opt };
	if (eng_model_load(buf, len, &o, &m, &err) || eng_exec_create(m, &e, &err))
		fail_msg("load: %s", err);
	struct eng_tensor in = { .dtype = DT_FP32, .ndims = ndims, .data = (void *)x };
	int64_t n = 1;
	for (int i = 0; i < ndims; i++)
		n *= in.dims[i] = dims[i];
	in.bytes = n * sizeof(float);
	struct eng_tensor out;
	if (eng_exec_run(e, &in, &out, &err))
		fail_msg("run: %s", err);
	assert_int_equal(out.bytes, ny * sizeof(float));
	memcpy(y, out.data, out.bytes);
	eng_exec_free(e);
	eng_model_free(m);
}

/* Fill a with n deterministic values in [-2, 2). */
static void fill(float *a, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		a[i] = ((seed >> 8) & 0xffff) / 16384.0f - 2.0f;
	}
}

/* Assert |a - b| <= tol elementwise. */
static void assert_close(const float *a, const float *b, size_t n, float tol)
{
	for (size_t i = 0; i < n; i++)
		if (!(fabsf(a[i] - b[i]) <= tol))
			fail_msg("element %zu: %g vs %g", i, a[i], b[i]);
}

/* Whether op_type's table entry at opset accepts attribute name. */
static bool op_accepts(const char *op_type, int64_t opset, const char *name)
{
	const struct eng_op *op = eng_op_find(op_type, opset);
	if (!op || !op->attrs)
		return false;
	size_t l = strlen(name);
	for (const char *p = strstr(op->attrs, name); p; p = strstr(p + 1, name))
		if ((p == op->attrs || p[-1] == ' ') && (p[l] == ' ' || !p[l]))
			return true;
	return false;
}

/* ---- Conv + BatchNormalization + activation ---- */

#define CB_N 2
#define CB_C 2
#define CB_K 3
#define CB_H 5

static float cb_w[CB_K * CB_C * 9], cb_b[CB_K], cb_scale[CB_K], cb_beta[CB_K], cb_mean[CB_K], cb_var[CB_K];

/* X[N,2,5,5] -> Conv(3x3, pad 1) -> BatchNormalization -> act (Relu, or Clip(0, 6) when clip). */
static uint8_t *conv_bn_model(bool clip, size_t *len)
{
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[4] = { -1, CB_C, CB_H, CB_H }, wd[4] = { CB_K, CB_C, 3, 3 }, kd[1] = { CB_K };
	mb_input(m, "X", MB_FLOAT, 4, xd);
	fill(cb_w, ACC_ARRAY_LEN(cb_w), 1);
	fill(cb_b, CB_K, 2);
	fill(cb_scale, CB_K, 3);
	fill(cb_beta, CB_K, 4);
	fill(cb_mean, CB_K, 5);
	fill(cb_var, CB_K, 6);
	for (int i = 0; i < CB_K; i++)
		cb_var[i] = fabsf(cb_var[i]) + 0.1f;
	mb_init(m, "W", MB_FLOAT, 4, wd, cb_w);
	mb_init(m, "B", MB_FLOAT, 1, kd, cb_b);
	mb_init(m, "scale", MB_FLOAT, 1, kd, cb_scale);
	mb_init(m, "beta", MB_FLOAT, 1, kd, cb_beta);
	mb_init(m, "mean", MB_FLOAT, 1, kd, cb_mean);
	mb_init(m, "var", MB_FLOAT, 1, kd, cb_var);
	Onnx__NodeProto *c = mb_node_auto(m, "Conv", MB_L("X", "W", "B"), MB_L("c"));
	int64_t pads[4] = { 1, 1, 1, 1 };
	mb_attr_ints(c, "pads", 4, pads);
	Onnx__NodeProto *bn = mb_node_auto(m, "BatchNormalization", MB_L("c", "scale", "beta", "mean", "var"), MB_L("bn"));
	mb_attr_float(bn, "epsilon", 1e-3f);
	if (clip) {
		mb_scalar(m, "lo", 0.0f);
		mb_scalar(m, "hi", 6.0f);
		mb_node_auto(m, "Clip", MB_L("bn", "lo", "hi"), MB_L("Y"));
	} else {
		mb_node_auto(m, "Relu", MB_L("bn"), MB_L("Y"));
	}
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

/* The same network computed plainly. */
static void conv_bn_ref(const float *x, bool clip, float *y)
{
	for (int n = 0; n < CB_N; n++)
		for (int k = 0; k < CB_K; k++)
			for (int i = 0; i < CB_H; i++)
				for (int j = 0; j < CB_H; j++) {
					double s = cb_b[k];
					for (int c = 0; c < CB_C; c++)
						for (int di = 0; di < 3; di++)
							for (int dj = 0; dj < 3; dj++) {
								int ii = i + di - 1, jj = j + dj - 1;
								if (ii < 0 || jj < 0 || ii >= CB_H || jj >= CB_H)
									continue;
								s += (double)x[((n * CB_C + c) * CB_H + ii) * CB_H + jj] *
								     cb_w[((k * CB_C + c) * 3 + di) * 3 + dj];
							}
					double v = (s - cb_mean[k]) / sqrt(cb_var[k] + 1e-3) * cb_scale[k] + cb_beta[k];
					v = v < 0 ? 0 : v;
					if (clip && v > 6)
						v = 6;
					y[((n * CB_K + k) * CB_H + i) * CB_H + j] = (float)v;
				}
}

static void test_conv_bn_act(void **state)
{
	(void)state;
	for (int clip = 0; clip < 2; clip++) {
		size_t len;
		uint8_t *buf = conv_bn_model(clip, &len);
		struct opt_stats st;
		assert_int_equal(count_nodes(buf, len, false, &st), 3);
		int left = count_nodes(buf, len, true, &st);
		assert_int_equal(st.bn_folded, 1);
		bool act = op_accepts("Conv", 13, "_act") && (!clip || op_accepts("Conv", 13, "_act_min"));
		assert_int_equal(st.act_fused, act ? 1 : 0);
		assert_int_equal(left, act ? 1 : 2);
		float x[CB_N * CB_C * CB_H * CB_H], y0[CB_N * CB_K * CB_H * CB_H], y1[ACC_ARRAY_LEN(y0)], want[ACC_ARRAY_LEN(y0)];
		fill(x, ACC_ARRAY_LEN(x), 7);
		for (size_t i = 0; i < ACC_ARRAY_LEN(x); i += 3)
			x[i] *= 3; /* some values past the Clip's 6 */
		int64_t dims[4] = { CB_N, CB_C, CB_H, CB_H };
		run_model(buf, len, true, x, 4, dims, y0, ACC_ARRAY_LEN(y0));
		run_model(buf, len, false, x, 4, dims, y1, ACC_ARRAY_LEN(y1));
		conv_bn_ref(x, clip, want);
		assert_close(y0, want, ACC_ARRAY_LEN(want), 1e-4f);
		assert_close(y1, want, ACC_ARRAY_LEN(want), 1e-4f);
		free(buf);
	}
}

/* A BatchNormalization whose Conv output is also read elsewhere stays. */
static void test_conv_bn_shared_output_kept(void **state)
{
	(void)state;
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[4] = { -1, CB_C, CB_H, CB_H }, wd[4] = { CB_K, CB_C, 3, 3 }, kd[1] = { CB_K };
	mb_input(m, "X", MB_FLOAT, 4, xd);
	fill(cb_w, ACC_ARRAY_LEN(cb_w), 1);
	for (int i = 0; i < CB_K; i++)
		cb_var[i] = 1.0f, cb_scale[i] = 2.0f, cb_beta[i] = cb_mean[i] = 0.5f;
	mb_init(m, "W", MB_FLOAT, 4, wd, cb_w);
	mb_init(m, "scale", MB_FLOAT, 1, kd, cb_scale);
	mb_init(m, "beta", MB_FLOAT, 1, kd, cb_beta);
	mb_init(m, "mean", MB_FLOAT, 1, kd, cb_mean);
	mb_init(m, "var", MB_FLOAT, 1, kd, cb_var);
	mb_node_auto(m, "Conv", MB_L("X", "W"), MB_L("c"));
	mb_node_auto(m, "BatchNormalization", MB_L("c", "scale", "beta", "mean", "var"), MB_L("bn"));
	mb_node_auto(m, "Add", MB_L("c", "bn"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(m, &len);
	struct opt_stats st;
	assert_int_equal(count_nodes(buf, len, true, &st), 3);
	assert_int_equal(st.bn_folded, 0);
	free(buf);
}

/* ---- GELU ---- */

/* X[N,6] -> x*0.5*(1+erf(x/sqrt2)), spelled as PyTorch does (late) or with the 0.5 first
 * (early); leak makes the Erf output a second graph output. */
static uint8_t *gelu_model(bool early, bool leak, size_t *len)
{
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[2] = { -1, 6 };
	mb_input(m, "X", MB_FLOAT, 2, xd);
	mb_scalar(m, "half", 0.5f);
	mb_scalar(m, "one", 1.0f);
	if (early) {
		mb_scalar(m, "rs2", (float)M_SQRT1_2);
		mb_node_auto(m, "Mul", MB_L("X", "rs2"), MB_L("q"));
	} else {
		mb_scalar(m, "s2", (float)M_SQRT2);
		mb_node_auto(m, "Div", MB_L("X", "s2"), MB_L("q"));
	}
	mb_node_auto(m, "Erf", MB_L("q"), MB_L("e"));
	mb_node_auto(m, "Add", MB_L("e", "one"), MB_L("a"));
	if (early) {
		mb_node_auto(m, "Mul", MB_L("half", "X"), MB_L("h"));
		mb_node_auto(m, "Mul", MB_L("h", "a"), MB_L("Y"));
	} else {
		mb_node_auto(m, "Mul", MB_L("X", "a"), MB_L("p"));
		mb_node_auto(m, "Mul", MB_L("p", "half"), MB_L("Y"));
	}
	mb_output(m, "Y", MB_FLOAT);
	if (leak)
		mb_output(m, "e", MB_FLOAT);
	return mb_pack(m, len);
}

static void test_gelu_pattern(void **state)
{
	(void)state;
	float x[3 * 6], y0[18], y1[18], want[18];
	fill(x, 18, 11);
	for (int i = 0; i < 18; i++)
		want[i] = (float)(0.5 * x[i] * (1 + erf(x[i] / M_SQRT2)));
	int64_t dims[2] = { 3, 6 };
	for (int early = 0; early < 2; early++) {
		size_t len;
		uint8_t *buf = gelu_model(early, false, &len);
		struct opt_stats st;
		assert_int_equal(count_nodes(buf, len, true, &st), 1);
		assert_int_equal(st.gelu, 1);
		run_model(buf, len, true, x, 2, dims, y0, 18);
		run_model(buf, len, false, x, 2, dims, y1, 18);
		assert_close(y0, want, 18, 1e-5f);
		assert_close(y1, want, 18, 1e-5f);
		free(buf);
	}
	size_t len;
	uint8_t *buf = gelu_model(false, true, &len);
	struct opt_stats st;
	assert_int_equal(count_nodes(buf, len, true, &st), 5);
	assert_int_equal(st.gelu, 0);
	free(buf);
}

/* ---- LayerNorm ---- */

#define LN_D 8

static float ln_w[LN_D], ln_b[LN_D];

/* X[N,4,8] -> the opset-13 LayerNorm spelling over axes (last, or 1 when axis1). */
static uint8_t *layernorm_model(bool axis1, size_t *len)
{
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[3] = { -1, 4, LN_D }, kd[1] = { LN_D };
	int64_t ax = axis1 ? 1 : -1;
	mb_input(m, "X", MB_FLOAT, 3, xd);
	fill(ln_w, LN_D, 21);
	fill(ln_b, LN_D, 22);
	mb_init(m, "w", MB_FLOAT, 1, kd, ln_w);
	mb_init(m, "b", MB_FLOAT, 1, kd, ln_b);
	mb_scalar(m, "two", 2.0f);
	mb_scalar(m, "eps", 1e-5f);
	mb_attr_ints(mb_node_auto(m, "ReduceMean", MB_L("X"), MB_L("mu")), "axes", 1, &ax);
	mb_node_auto(m, "Sub", MB_L("X", "mu"), MB_L("d"));
	mb_node_auto(m, "Pow", MB_L("d", "two"), MB_L("d2"));
	mb_attr_ints(mb_node_auto(m, "ReduceMean", MB_L("d2"), MB_L("var")), "axes", 1, &ax);
	mb_node_auto(m, "Add", MB_L("var", "eps"), MB_L("ve"));
	mb_node_auto(m, "Sqrt", MB_L("ve"), MB_L("sd"));
	mb_node_auto(m, "Div", MB_L("d", "sd"), MB_L("nrm"));
	mb_node_auto(m, "Mul", MB_L("nrm", "w"), MB_L("sc"));
	mb_node_auto(m, "Add", MB_L("sc", "b"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

static void test_layernorm_pattern(void **state)
{
	(void)state;
	enum { R = 2 * 4 };
	float x[R * LN_D], y0[R * LN_D], y1[R * LN_D], want[R * LN_D];
	fill(x, R * LN_D, 31);
	size_t len;
	uint8_t *buf = layernorm_model(false, &len);
	for (int r = 0; r < R; r++) {
		double s = 0, s2 = 0;
		for (int i = 0; i < LN_D; i++)
			s += x[r * LN_D + i];
		s /= LN_D;
		for (int i = 0; i < LN_D; i++)
			s2 += (x[r * LN_D + i] - s) * (x[r * LN_D + i] - s);
		double is = 1 / sqrt(s2 / LN_D + 1e-5);
		for (int i = 0; i < LN_D; i++)
			want[r * LN_D + i] = (float)((x[r * LN_D + i] - s) * is * ln_w[i] + ln_b[i]);
	}
	struct opt_stats st;
	assert_int_equal(count_nodes(buf, len, false, &st), 9);
	assert_int_equal(count_nodes(buf, len, true, &st), 1);
	assert_int_equal(st.layernorm, 1);
	int64_t dims[3] = { 2, 4, LN_D };
	run_model(buf, len, true, x, 3, dims, y0, R * LN_D);
	run_model(buf, len, false, x, 3, dims, y1, R * LN_D);
	assert_close(y0, want, R * LN_D, 1e-4f);
	assert_close(y1, want, R * LN_D, 1e-4f);
	free(buf);
	/* Over another axis it is not a LayerNormalization over the last one: left alone. */
	buf = layernorm_model(true, &len);
	assert_int_equal(count_nodes(buf, len, true, &st), 9);
	assert_int_equal(st.layernorm, 0);
	free(buf);
}

/* ---- MatMul + bias + activation ---- */

static void test_matmul_bias_act(void **state)
{
	(void)state;
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[2] = { -1, 4 }, wd[2] = { 4, 5 }, bd[1] = { 5 };
	float w[20], b[5];
	fill(w, 20, 41);
	fill(b, 5, 42);
	mb_input(m, "X", MB_FLOAT, 2, xd);
	mb_init(m, "W", MB_FLOAT, 2, wd, w);
	mb_init(m, "b", MB_FLOAT, 1, bd, b);
	mb_node_auto(m, "MatMul", MB_L("X", "W"), MB_L("p"));
	mb_node_auto(m, "Add", MB_L("b", "p"), MB_L("q"));
	mb_node_auto(m, "Relu", MB_L("q"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(m, &len);
	struct opt_stats st;
	int left = count_nodes(buf, len, true, &st);
	bool bias = op_accepts("MatMul", 13, "_bias"), act = op_accepts("MatMul", 13, "_act");
	assert_int_equal(st.bias_fused, bias ? 1 : 0);
	assert_int_equal(st.act_fused, act ? 1 : 0);
	assert_int_equal(left, 3 - bias - act);
	float x[3 * 4], y0[15], y1[15], want[15];
	fill(x, 12, 43);
	for (int r = 0; r < 3; r++)
		for (int j = 0; j < 5; j++) {
			double s = b[j];
			for (int k = 0; k < 4; k++)
				s += (double)x[r * 4 + k] * w[k * 5 + j];
			want[r * 5 + j] = s > 0 ? (float)s : 0;
		}
	int64_t dims[2] = { 3, 4 };
	run_model(buf, len, true, x, 2, dims, y0, 15);
	run_model(buf, len, false, x, 2, dims, y1, 15);
	assert_close(y0, want, 15, 1e-5f);
	assert_close(y1, want, 15, 1e-5f);
	free(buf);
}

/* A bias that is not one row of the product ([2,5] here) is left to the Add. */
static void test_matmul_bias_wrong_shape_kept(void **state)
{
	(void)state;
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[2] = { 2, 4 }, wd[2] = { 4, 5 }, bd[2] = { 2, 5 };
	float w[20], b[10];
	fill(w, 20, 51);
	fill(b, 10, 52);
	mb_input(m, "X", MB_FLOAT, 2, xd);
	mb_init(m, "W", MB_FLOAT, 2, wd, w);
	mb_init(m, "b", MB_FLOAT, 2, bd, b);
	mb_node_auto(m, "MatMul", MB_L("X", "W"), MB_L("p"));
	mb_node_auto(m, "Add", MB_L("p", "b"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(m, &len);
	struct opt_stats st;
	assert_int_equal(count_nodes(buf, len, true, &st), 2);
	assert_int_equal(st.bias_fused, 0);
	free(buf);
}

/* Each activation after a Gemm (and the erf GELU after MatMul + bias) folds into the producer
 * when the op accepts _act, and the outputs stay those of the unfused graph. */
static void test_activation_kinds(void **state)
{
	(void)state;
	static const char *const acts[] = { "Relu", "Sigmoid", "Tanh", "HardSwish", "LeakyRelu", "Clip", "GELU" };
	float w[4 * 5], b[5], x[3 * 4], y0[15], y1[15];
	fill(w, 20, 61);
	fill(b, 5, 62);
	fill(x, 12, 63);
	static const int codes[] = { OPT_ACT_RELU, OPT_ACT_SIGMOID, OPT_ACT_TANH, OPT_ACT_HARDSWISH,
				     OPT_ACT_LEAKYRELU, OPT_ACT_CLIP, OPT_ACT_GELU };
	int64_t xd[2] = { -1, 4 }, wd[2] = { 4, 5 }, bd[1] = { 5 }, dims[2] = { 3, 4 };
	/* Second pass: with every kind fused, so each epilogue is checked. */
	for (size_t k = 0; k < 2 * ACC_ARRAY_LEN(acts); k++) {
		if (k == ACC_ARRAY_LEN(acts))
			setenv("ACCELD_ENGINE_FUSE_ALL_ACTS", "1", 1);
		size_t ak = k % ACC_ARRAY_LEN(acts);
		bool gelu = !strcmp(acts[ak], "GELU");
		Onnx__ModelProto *m = mb_new(14, NULL); /* HardSwish */
		mb_input(m, "X", MB_FLOAT, 2, xd);
		mb_init(m, "W", MB_FLOAT, 2, wd, w);
		mb_init(m, "B", MB_FLOAT, 1, bd, b);
		if (gelu) {
			mb_node_auto(m, "MatMul", MB_L("X", "W"), MB_L("p"));
			mb_node_auto(m, "Add", MB_L("p", "B"), MB_L("h"));
			mb_scalar(m, "s2", (float)M_SQRT2);
			mb_scalar(m, "one", 1.0f);
			mb_scalar(m, "half", 0.5f);
			mb_node_auto(m, "Div", MB_L("h", "s2"), MB_L("q"));
			mb_node_auto(m, "Erf", MB_L("q"), MB_L("e"));
			mb_node_auto(m, "Add", MB_L("e", "one"), MB_L("a"));
			mb_node_auto(m, "Mul", MB_L("h", "a"), MB_L("g"));
			mb_node_auto(m, "Mul", MB_L("g", "half"), MB_L("Y"));
		} else {
			mb_node_auto(m, "Gemm", MB_L("X", "W", "B"), MB_L("h"));
			if (!strcmp(acts[ak], "Clip")) {
				mb_scalar(m, "lo", -0.5f);
				mb_scalar(m, "hi", 0.75f);
				mb_node_auto(m, "Clip", MB_L("h", "lo", "hi"), MB_L("Y"));
			} else {
				Onnx__NodeProto *a = mb_node_auto(m, acts[ak], MB_L("h"), MB_L("Y"));
				if (!strcmp(acts[ak], "LeakyRelu"))
					mb_attr_float(a, "alpha", 0.2f);
			}
		}
		mb_output(m, "Y", MB_FLOAT);
		size_t len;
		uint8_t *buf = mb_pack(m, &len);
		struct opt_stats st;
		int before = count_nodes(buf, len, false, &st);
		int left = count_nodes(buf, len, true, &st);
		const char *op = gelu ? "MatMul" : "Gemm";
		bool fused = op_accepts(op, 14, "_act") && (!gelu || op_accepts(op, 14, "_bias")) &&
			     opt_act_fusable(codes[ak]);
		if (fused)
			assert_int_equal(left, 1);
		else
			assert_int_equal(left, gelu ? 3 - op_accepts(op, 14, "_bias") : 2); /* GELU: one node */
		assert_true(left < before || !(fused || gelu));
		run_model(buf, len, true, x, 2, dims, y0, 15);
		run_model(buf, len, false, x, 2, dims, y1, 15);
		for (int i = 0; i < 15; i++)
			if (!(fabsf(y0[i] - y1[i]) <= 1e-5f + 1e-5f * fabsf(y0[i])))
				fail_msg("%s: element %d: %g unfused vs %g fused", acts[ak], i, y0[i], y1[i]);
		free(buf);
	}
	unsetenv("ACCELD_ENGINE_FUSE_ALL_ACTS");
}

/* ---- Conv + residual Add ---- */

enum { RS_PLAIN, RS_SWAPPED, RS_BCAST_IN, RS_BCAST_OUT, RS_TWO_CONVS, RS_CONST, RS_SELF, RS_N };

/* X[N,4,5,5] and a residual Add after a Conv, per variant:
 * RS_PLAIN: Relu(Add(Conv3x3(X), X)); RS_SWAPPED: Add(X, Conv3x3(X)), no Relu;
 * RS_BCAST_IN: the residual is ReduceMean(X) over H, W ([N,4,1,1], broadcast into the output);
 * RS_BCAST_OUT: a 5x5 Conv without pads ([N,4,1,1]) plus X: the Add's output is larger;
 * RS_TWO_CONVS: Add(Conv_a(X), Conv_b(X)): only Conv_b (the later) can take the residual;
 * RS_CONST: Add(Conv(X), constant [4,1,1]): a bias, not a residual, left alone;
 * RS_SELF: r = Relu(X), Add(Conv(r), r): the residual is the Conv's own input, which dies there
 * (its buffer must not become the output while the Conv still reads it). */
static uint8_t *residual_model(int v, size_t *len)
{
	unsigned seed = 11;
	Onnx__ModelProto *m = mb_new(13, NULL);
	int64_t xd[4] = { -1, 4, 5, 5 }, w3[4] = { 4, 4, 3, 3 }, w5[4] = { 4, 4, 5, 5 }, bd[1] = { 4 }, cd[3] = { 4, 1, 1 };
	int64_t pads[4] = { 1, 1, 1, 1 }, axes[2] = { 2, 3 };
	mb_input(m, "X", MB_FLOAT, 4, xd);
	mb_init_rand(m, "W", 4, v == RS_BCAST_OUT ? w5 : w3, &seed);
	mb_init_rand(m, "B", 1, bd, &seed);
	mb_init_rand(m, "W2", 4, w3, &seed);
	mb_init_rand(m, "K", 3, cd, &seed);
	const char *res = "X";
	if (v == RS_BCAST_IN) {
		mb_attr_ints(mb_node_auto(m, "ReduceMean", MB_L("X"), MB_L("mu")), "axes", 2, axes);
		res = "mu";
	}
	if (v == RS_TWO_CONVS)
		mb_attr_ints(mb_node_auto(m, "Conv", MB_L("X", "W2"), MB_L("c0")), "pads", 4, pads);
	if (v == RS_SELF) {
		mb_node_auto(m, "Relu", MB_L("X"), MB_L("r"));
		res = "r";
	}
	Onnx__NodeProto *c = mb_node_auto(m, "Conv", MB_L(v == RS_SELF ? "r" : "X", "W", "B"), MB_L("c"));
	if (v != RS_BCAST_OUT)
		mb_attr_ints(c, "pads", 4, pads);
	if (v == RS_TWO_CONVS)
		res = "c0";
	if (v == RS_CONST)
		res = "K";
	bool relu = v == RS_PLAIN || v == RS_BCAST_OUT;
	const char *sum = relu ? "a" : "Y";
	mb_node_auto(m, "Add", v == RS_SWAPPED ? MB_L(res, "c") : MB_L("c", res), MB_L(sum));
	if (relu)
		mb_node_auto(m, "Relu", MB_L("a"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

/* Each variant: fused where legal (fewer nodes, sum_fused counted), same outputs as unoptimised. */
static void test_conv_residual(void **state)
{
	(void)state;
	/* nodes after the rewrites, and whether the residual fused */
	static const int want_nodes[RS_N] = { 1, 1, 2, 1, 2, 2, 2 };
	static const int want_sum[RS_N] = { 1, 1, 1, 1, 1, 0, 1 };
	for (int v = 0; v < RS_N; v++) {
		size_t len;
		uint8_t *buf = residual_model(v, &len);
		struct opt_stats st;
		int nodes = count_nodes(buf, len, true, &st);
		if (nodes != want_nodes[v] || st.sum_fused != want_sum[v])
			fail_msg("variant %d: %d nodes, %d residuals fused", v, nodes, st.sum_fused);
		float x[2 * 4 * 5 * 5], a[2 * 4 * 5 * 5], b[2 * 4 * 5 * 5];
		fill(x, ACC_ARRAY_LEN(x), 40 + v);
		int64_t dims[4] = { 2, 4, 5, 5 };
		run_model(buf, len, false, x, 4, dims, a, ACC_ARRAY_LEN(a));
		run_model(buf, len, true, x, 4, dims, b, ACC_ARRAY_LEN(b));
		assert_close(a, b, ACC_ARRAY_LEN(a), 1e-4f);
		free(buf);
	}
}

/* ---- residual Add + LayerNormalization ---- */

/* X[N,4,8] and Y = LayerNormalization(Add(a, b)) over the last axis, per variant:
 * SK_SAME: a = X, b = Relu(X); SK_BCAST_IN: b = ReduceMean(X) over axis 1 ([N,1,8]);
 * SK_BCAST_OUT: a = that mean, b = X (the sum is larger than LN's own input);
 * SK_CONST: b = a constant [8]; SK_SHARED: the sum is also read by the Mul after the LN
 * (left alone). */
enum { SK_SAME, SK_BCAST_IN, SK_BCAST_OUT, SK_CONST, SK_SHARED, SK_N };

static uint8_t *skip_ln_model(int v, size_t *len)
{
	unsigned seed = 5;
	Onnx__ModelProto *m = mb_new(17, NULL);
	int64_t xd[3] = { -1, 4, LN_D }, kd[1] = { LN_D }, ax = 1;
	mb_input(m, "X", MB_FLOAT, 3, xd);
	mb_init_rand(m, "w", 1, kd, &seed);
	mb_init_rand(m, "b", 1, kd, &seed);
	mb_init_rand(m, "K", 1, kd, &seed);
	mb_node_auto(m, "Relu", MB_L("X"), MB_L("r"));
	mb_attr_ints(mb_node_auto(m, "ReduceMean", MB_L("X"), MB_L("mu")), "axes", 1, &ax);
	const char *a = v == SK_BCAST_OUT ? "mu" : "X";
	const char *b = v == SK_BCAST_IN ? "mu" : v == SK_BCAST_OUT ? "X" : v == SK_CONST ? "K" : "r";
	mb_node_auto(m, "Add", MB_L(a, b), MB_L("s"));
	mb_attr_float(mb_node_auto(m, "LayerNormalization", MB_L("s", "w", "b"), MB_L(v == SK_SHARED ? "n" : "Y")),
		      "epsilon", 1e-3f);
	if (v == SK_SHARED)
		mb_node_auto(m, "Mul", MB_L("n", "s"), MB_L("Y"));
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

/* Each variant: fused unless the sum is read elsewhere, same outputs as unoptimised (the
 * row-by-row path for same shapes, the summed-into-scratch path for broadcasts). */
static void test_skip_layernorm(void **state)
{
	(void)state;
	static const int want_skip[SK_N] = { 1, 1, 1, 1, 0 };
	for (int v = 0; v < SK_N; v++) {
		size_t len;
		uint8_t *buf = skip_ln_model(v, &len);
		struct opt_stats st;
		int before = count_nodes(buf, len, false, &st), after = count_nodes(buf, len, true, &st);
		if (st.skip_ln != want_skip[v] || after != before - want_skip[v])
			fail_msg("variant %d: %d -> %d nodes, %d fused", v, before, after, st.skip_ln);
		float x[3 * 4 * LN_D], a[3 * 4 * LN_D], b[3 * 4 * LN_D];
		fill(x, ACC_ARRAY_LEN(x), 50 + v);
		int64_t dims[3] = { 3, 4, LN_D };
		run_model(buf, len, false, x, 3, dims, a, ACC_ARRAY_LEN(a));
		run_model(buf, len, true, x, 3, dims, b, ACC_ARRAY_LEN(b));
		assert_close(a, b, ACC_ARRAY_LEN(a), 1e-4f);
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conv_bn_act),
		cmocka_unit_test(test_conv_bn_shared_output_kept),
		cmocka_unit_test(test_gelu_pattern),
		cmocka_unit_test(test_layernorm_pattern),
		cmocka_unit_test(test_matmul_bias_act),
		cmocka_unit_test(test_matmul_bias_wrong_shape_kept),
		cmocka_unit_test(test_activation_kinds),
		cmocka_unit_test(test_conv_residual),
		cmocka_unit_test(test_skip_layernorm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
