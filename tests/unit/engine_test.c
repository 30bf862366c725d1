/* engine_test.c - unit tests of the ONNX engine on hand-built models. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "onnx.pb-c.h"
#include "onnx_builder.h"
#include "util.h"

/* ---- models ---- */

static const float W1[4 * 3] = { 0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, -0.7f, 0.8f, 0.9f, 1.0f, -1.1f, 1.2f };
static const float B1[3] = { 0.05f, -0.1f, 0.2f };
static const float W2[3 * 2] = { 1.0f, -1.0f, 0.5f, 0.25f, -0.3f, 0.7f };

/* X[N,4] -> Gemm(W1,B1) -> Relu -> MatMul(W2) -> Softmax(axis 1) -> Y[N,2]. */
static uint8_t *mlp_model(size_t *len)
{
	Onnx__ModelProto *m = mb_new(13, "engine_test");
	int64_t xd[2] = { -1, 4 }, w1d[2] = { 4, 3 }, b1d[1] = { 3 }, w2d[2] = { 3, 2 };
	mb_input(m, "X", MB_FLOAT, 2, xd);
	mb_init(m, "W1", MB_FLOAT, 2, w1d, W1);
	mb_init(m, "B1", MB_FLOAT, 1, b1d, B1);
	mb_init(m, "W2", MB_FLOAT, 2, w2d, W2);
	mb_node(m, "Gemm", "fc1", MB_L("X", "W1", "B1"), MB_L("h"));
	mb_node(m, "Relu", "relu", MB_L("h"), MB_L("r"));
	mb_node(m, "MatMul", "fc2", MB_L("r", "W2"), MB_L("z"));
	Onnx__NodeProto *sm = mb_node(m, "Softmax", "sm", MB_L("z"), MB_L("Y"));
	mb_attr_int(sm, "axis", 1);
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

/* The MLP computed plainly. */
static void mlp_ref(const float *x, int n, float *y)
{
	for (int b = 0; b < n; b++) {
		float h[3], z[2];
		for (int j = 0; j < 3; j++) {
			h[j] = B1[j];
			for (int k = 0; k < 4; k++)
				h[j] += x[b * 4 + k] * W1[k * 3 + j];
			h[j] = h[j] > 0 ? h[j] : 0;
		}
		for (int j = 0; j < 2; j++) {
			z[j] = 0;
			for (int k = 0; k < 3; k++)
				z[j] += h[k] * W2[k * 2 + j];
		}
		float mx = z[0] > z[1] ? z[0] : z[1], s = expf(z[0] - mx) + expf(z[1] - mx);
		for (int j = 0; j < 2; j++)
			y[b * 2 + j] = expf(z[j] - mx) / s;
	}
}

static struct eng_tensor f32_tensor(float *data, int ndims, const int64_t *dims)
{
	struct eng_tensor t = { .dtype = DT_FP32, .ndims = ndims, .data = data };
	int64_t n = 1;
	for (int i = 0; i < ndims; i++) {
		t.dims[i] = dims[i];
		n *= dims[i];
	}
	t.bytes = n * sizeof(float);
	return t;
}

static void load(const uint8_t *buf, size_t len, int threads, struct eng_model **m, struct eng_exec **x)
{
	char *err = NULL;
	struct eng_options opt = { .threads = threads };
	int rc = eng_model_load(buf, len, &opt, m, &err);
	if (rc)
		fail_msg("load: %s", err);
	assert_int_equal(eng_exec_create(*m, x, &err), 0);
}

/* ---- tests ---- */

static void test_mlp_runs_and_reuses_plan(void **state)
{
	size_t len;
	uint8_t *buf = mlp_model(&len);
	struct eng_model *m;
	struct eng_exec *x;
	load(buf, len, 1, &m, &x);
	free(buf);

	assert_int_equal(eng_model_n_inputs(m), 1); /* initializers are not inputs */
	assert_int_equal(eng_model_n_outputs(m), 1);
	assert_string_equal(eng_model_producer(m), "engine_test");
	assert_int_equal(eng_model_opset(m), 13);
	const struct eng_io *in = eng_model_input(m, 0);
	assert_string_equal(in->name, "X");
	assert_int_equal(in->dtype, DT_FP32);
	assert_int_equal(in->ndims, 2);
	assert_true(in->dims[0] < 0);
	assert_int_equal(in->dims[1], 4);
	assert_int_equal(eng_model_output(m, 0)->dtype, DT_FP32);

	float xs[5 * 4], want[5 * 2];
	for (int i = 0; i < 20; i++)
		xs[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
	mlp_ref(xs, 5, want);
	void *first = NULL;
	int batches[] = { 5, 1, 5, 3, 5 };
	for (size_t r = 0; r < ACC_ARRAY_LEN(batches); r++) {
		int n = batches[r];
		int64_t dims[2] = { n, 4 };
		struct eng_tensor t = f32_tensor(xs, 2, dims), out;
		char *err = NULL;
		assert_int_equal(eng_exec_run(x, &t, &out, &err), 0);
		assert_int_equal(out.dtype, DT_FP32);
		assert_int_equal(out.ndims, 2);
		assert_int_equal(out.dims[0], n);
		assert_int_equal(out.dims[1], 2);
		assert_int_equal(out.bytes, n * 2 * sizeof(float));
		for (int i = 0; i < n * 2; i++)
			assert_float_equal(((float *)out.data)[i], want[i], 1e-5);
		/* Same shape again: same plan, same arena, so the same output address. */
		if (n == 5) {
			if (!first)
				first = out.data;
			assert_ptr_equal(out.data, first);
		}
	}
	eng_exec_free(x);
	eng_model_free(m);
}

static void test_bad_inputs(void **state)
{
	size_t len;
	uint8_t *buf = mlp_model(&len);
	struct eng_model *m;
	struct eng_exec *x;
	load(buf, len, 1, &m, &x);
	free(buf);
	float xs[8] = { 0 };
	int64_t ok[2] = { 2, 4 }, bad_dim[2] = { 2, 5 };
	struct eng_tensor out, t;
	char *err = NULL;

	t = f32_tensor(xs, 2, ok);
	t.dtype = DT_INT32;
	assert_int_equal(eng_exec_run(x, &t, &out, &err), -EINVAL);
	assert_non_null(strstr(err, "type"));
	free(err);
	err = NULL;

	t = f32_tensor(xs, 2, bad_dim);
	assert_int_equal(eng_exec_run(x, &t, &out, &err), -EINVAL);
	free(err);
	err = NULL;

	t = f32_tensor(xs, 1, ok);
	assert_int_equal(eng_exec_run(x, &t, &out, &err), -EINVAL);
	free(err);
	err = NULL;

	t = f32_tensor(xs, 2, ok);
	t.bytes -= 4;
	assert_int_equal(eng_exec_run(x, &t, &out, &err), -EINVAL);
	free(err);
	err = NULL;

	t = f32_tensor(NULL, 2, ok);
	assert_int_equal(eng_exec_run(x, &t, &out, &err), -EINVAL);
	free(err);
	err = NULL;

	int64_t neg[2] = { -3, 4 };
	t = f32_tensor(xs, 2, ok);
	t.dims[0] = neg[0];
	assert_int_equal(eng_exec_run(x, &t, &out, &err), -EINVAL);
	free(err);
	err = NULL;

	assert_int_equal(eng_exec_run(x, NULL, &out, &err), -EINVAL);
	free(err);
	err = NULL;

	/* A good run still works after the bad ones. */
	t = f32_tensor(xs, 2, ok);
	assert_int_equal(eng_exec_run(x, &t, &out, &err), 0);
	eng_exec_free(x);
	eng_model_free(m);
}

static void test_malformed_bytes(void **state)
{
	size_t len;
	uint8_t *buf = mlp_model(&len);
	char *err = NULL;
	struct eng_model *m = NULL;
	/* Every truncation either loads (a shorter valid message) or fails cleanly. */
	for (size_t cut = 0; cut < len; cut++) {
		int rc = eng_model_load(buf, cut, NULL, &m, &err);
		if (rc == 0) {
			eng_model_free(m);
		} else {
			assert_true(rc == -EINVAL || rc == -ENOTSUP);
			assert_non_null(err);
			free(err);
			err = NULL;
		}
	}
	/* Flipped bytes likewise. */
	for (size_t i = 0; i < len; i++) {
		uint8_t *c = xmalloc(len);
		memcpy(c, buf, len);
		c[i] ^= (uint8_t)(0x5a + i);
		int rc = eng_model_load(c, len, NULL, &m, &err);
		if (rc == 0) {
			struct eng_exec *x;
			assert_int_equal(eng_exec_create(m, &x, &err), 0);
			eng_exec_free(x);
			eng_model_free(m);
		} else {
			free(err);
			err = NULL;
		}
		free(c);
	}
	const char garbage[] = "\xff\xff\xff\xff\x0f not a protobuf";
	assert_int_equal(eng_model_load(garbage, sizeof(garbage), NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "ONNX"));
	free(err);
	err = NULL;
	assert_int_equal(eng_model_load("", 0, NULL, &m, &err), -EINVAL);
	free(err);
	free(buf);
}

static void test_unsupported_op_names_op_node_opset(void **state)
{
	Onnx__ModelProto *mp = mb_new(13, "engine_test");
	int64_t d[1] = { 4 };
	mb_input(mp, "X", MB_FLOAT, 1, d);
	mb_node(mp, "Relu", "ok", MB_L("X"), MB_L("a"));
	mb_node(mp, "FrobnicateX", "my_node", MB_L("a"), MB_L("Y"));
	mb_output(mp, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(mp, &len);
	struct eng_model *m;
	char *err = NULL;
	assert_int_equal(eng_model_load(buf, len, NULL, &m, &err), -ENOTSUP);
	assert_non_null(strstr(err, "FrobnicateX"));
	assert_non_null(strstr(err, "my_node"));
	assert_non_null(strstr(err, "13"));
	free(err);
	err = NULL;
	assert_int_equal(eng_model_supported(buf, len, &err), 0);
	assert_non_null(strstr(err, "FrobnicateX"));
	free(err);
	free(buf);
}

static void test_unsupported_attribute_and_external_data(void **state)
{
	Onnx__ModelProto *mp = mb_new(13, "engine_test");
	int64_t d[1] = { 4 };
	mb_input(mp, "X", MB_FLOAT, 1, d);
	Onnx__NodeProto *n = mb_node(mp, "Relu", "r", MB_L("X"), MB_L("Y"));
	mb_attr_int(n, "sparkle", 1);
	mb_output(mp, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(mp, &len);
	struct eng_model *m;
	char *err = NULL;
	assert_int_equal(eng_model_load(buf, len, NULL, &m, &err), -ENOTSUP);
	assert_non_null(strstr(err, "sparkle"));
	assert_non_null(strstr(err, "Relu"));
	free(err);
	err = NULL;
	free(buf);

	mp = mb_new(13, "engine_test");
	mb_input(mp, "X", MB_FLOAT, 1, d);
	float w[4] = { 1, 2, 3, 4 };
	Onnx__TensorProto *t = mb_init(mp, "W", MB_FLOAT, 1, d, w);
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	mb_node(mp, "Add", "add", MB_L("X", "W"), MB_L("Y"));
	mb_output(mp, "Y", MB_FLOAT);
	buf = mb_pack(mp, &len);
	assert_int_equal(eng_model_load(buf, len, NULL, &m, &err), -ENOTSUP);
	assert_non_null(strstr(err, "external"));
	free(err);
	free(buf);
}

static void test_op_supported(void **state)
{
	assert_true(eng_op_supported("Conv", 11));
	assert_true(eng_op_supported("Softmax", 13));
	assert_true(eng_op_supported("Gemm", 21));
	assert_false(eng_op_supported("Gemm", 1));
	assert_false(eng_op_supported("NoSuchOp", 13));
	assert_false(eng_op_supported(NULL, 13));
}

/* X[N,6] -> Relu -> Reshape(shape input S) -> Sigmoid -> Y: views, in place, shape-keyed plans. */
static void test_reshape_by_input_and_views(void **state)
{
	Onnx__ModelProto *mp = mb_new(14, "engine_test");
	int64_t xd[2] = { -1, 6 }, sd[1] = { 2 };
	mb_input(mp, "X", MB_FLOAT, 2, xd);
	mb_input(mp, "S", MB_INT64, 1, sd);
	mb_node(mp, "Relu", "relu", MB_L("X"), MB_L("a"));
	mb_node(mp, "Reshape", "rs", MB_L("a", "S"), MB_L("b"));
	mb_node(mp, "Sigmoid", "sig", MB_L("b"), MB_L("Y"));
	mb_output(mp, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(mp, &len);
	struct eng_model *m;
	struct eng_exec *x;
	load(buf, len, 1, &m, &x);
	free(buf);
	float xs[12];
	for (int i = 0; i < 12; i++)
		xs[i] = (float)i - 5.5f;
	int64_t shapes[3][2] = { { 3, 4 }, { -1, 2 }, { 4, 3 } };
	int64_t want_dims[3][2] = { { 3, 4 }, { 6, 2 }, { 4, 3 } };
	for (int r = 0; r < 3; r++) {
		int64_t dims[2] = { 2, 6 };
		struct eng_tensor in[2] = { f32_tensor(xs, 2, dims),
					    { .dtype = DT_INT64, .ndims = 1, .dims = { 2 }, .data = shapes[r], .bytes = 16 } };
		struct eng_tensor out;
		char *err = NULL;
		int rc = eng_exec_run(x, in, &out, &err);
		if (rc)
			fail_msg("run: %s", err);
		assert_int_equal(out.ndims, 2);
		assert_int_equal(out.dims[0], want_dims[r][0]);
		assert_int_equal(out.dims[1], want_dims[r][1]);
		for (int i = 0; i < 12; i++) {
			float v = xs[i] > 0 ? xs[i] : 0;
			assert_float_equal(((float *)out.data)[i], 1 / (1 + expf(-v)), 1e-6);
		}
		/* The caller's input is untouched (no op may write in place into it). */
		assert_float_equal(xs[0], -5.5f, 0);
	}
	int64_t bad[2] = { 5, 5 }, dims[2] = { 2, 6 };
	struct eng_tensor in[2] = { f32_tensor(xs, 2, dims),
				    { .dtype = DT_INT64, .ndims = 1, .dims = { 2 }, .data = bad, .bytes = 16 } };
	struct eng_tensor out;
	char *err = NULL;
	assert_int_equal(eng_exec_run(x, in, &out, &err), -EINVAL);
	assert_non_null(strstr(err, "Reshape"));
	free(err);
	eng_exec_free(x);
	eng_model_free(m);
}

/* Transpose of rank-3 tensors big enough for the blocked (8 x 8 register) paths, with edges
 * that are not multiples of 8, for every permutation, against index arithmetic. */
static void test_transpose_perms(void **state)
{
	static const int64_t perms[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
	int64_t d[3] = { 5, 19, 37 };
	float *xs = malloc(5 * 19 * 37 * sizeof(float));
	for (int i = 0; i < 5 * 19 * 37; i++)
		xs[i] = (float)i;
	for (int p = 0; p < 6; p++) {
		Onnx__ModelProto *mp = mb_new(13, "engine_test");
		mb_input(mp, "X", MB_FLOAT, 3, d);
		Onnx__NodeProto *t = mb_node(mp, "Transpose", "t", MB_L("X"), MB_L("Y"));
		mb_attr_ints(t, "perm", 3, perms[p]);
		mb_output(mp, "Y", MB_FLOAT);
		size_t len;
		uint8_t *buf = mb_pack(mp, &len);
		struct eng_model *m;
		struct eng_exec *x;
		load(buf, len, 2, &m, &x);
		free(buf);
		struct eng_tensor in = f32_tensor(xs, 3, d), out;
		char *err = NULL;
		if (eng_exec_run(x, &in, &out, &err))
			fail_msg("run: %s", err);
		assert_int_equal(out.ndims, 3);
		int64_t od[3] = { d[perms[p][0]], d[perms[p][1]], d[perms[p][2]] };
		for (int k = 0; k < 3; k++)
			assert_int_equal(out.dims[k], od[k]);
		const float *y = out.data;
		for (int64_t i = 0; i < od[0]; i++)
			for (int64_t j = 0; j < od[1]; j++)
				for (int64_t k = 0; k < od[2]; k++) {
					int64_t idx[3];
					idx[perms[p][0]] = i;
					idx[perms[p][1]] = j;
					idx[perms[p][2]] = k;
					float want = xs[(idx[0] * d[1] + idx[1]) * d[2] + idx[2]];
					if (y[(i * od[1] + j) * od[2] + k] != want)
						fail_msg("perm %d: y[%lld,%lld,%lld] = %g, want %g", p, (long long)i, (long long)j,
							 (long long)k, y[(i * od[1] + j) * od[2] + k], want);
				}
		eng_exec_free(x);
		eng_model_free(m);
	}
	free(xs);
}

/* X[N,5,6] -> MatMul(W[6,9]) -> Add(b) -> three Slices of the last axis whose bounds come from
 * the product's shape (Shape -> Gather(-1) -> Div 3 -> Mul k), as exporters write the attention's
 * QKV split, plus a Relu on each part. */
static uint8_t *qkv_model(size_t *len, float *w, float *b)
{
	Onnx__ModelProto *m = mb_new(13, "engine_test");
	int64_t xd[3] = { -1, 5, 6 }, wd[2] = { 6, 9 }, bd[1] = { 9 }, one[1] = { 1 };
	int64_t last = -1, three = 3, zero = 0, k1 = 1, k2 = 2;
	mb_input(m, "X", MB_FLOAT, 3, xd);
	mb_init(m, "W", MB_FLOAT, 2, wd, w);
	mb_init(m, "B", MB_FLOAT, 1, bd, b);
	mb_init(m, "last", MB_INT64, 1, one, &last);
	mb_init(m, "three", MB_INT64, 0, NULL, &three);
	mb_init(m, "zero", MB_INT64, 1, one, &zero);
	mb_init(m, "k1", MB_INT64, 1, one, &k1);
	mb_init(m, "k2", MB_INT64, 1, one, &k2);
	mb_node(m, "MatMul", "mm", MB_L("X", "W"), MB_L("p"));
	mb_node(m, "Add", "add", MB_L("B", "p"), MB_L("qkv"));
	mb_node(m, "Shape", "shape", MB_L("qkv"), MB_L("s"));
	mb_node(m, "Gather", "gather", MB_L("s", "last"), MB_L("n"));
	mb_node(m, "Div", "div", MB_L("n", "three"), MB_L("d"));
	mb_node(m, "Mul", "mul1", MB_L("d", "k1"), MB_L("e1"));
	mb_node(m, "Mul", "mul2", MB_L("d", "k2"), MB_L("e2"));
	mb_node(m, "Slice", "q", MB_L("qkv", "zero", "e1", "last"), MB_L("qs"));
	mb_node(m, "Slice", "k", MB_L("qkv", "e1", "e2", "last"), MB_L("ks"));
	mb_node(m, "Slice", "v", MB_L("qkv", "e2", "n", "last"), MB_L("vs"));
	mb_node(m, "Relu", "rq", MB_L("qs"), MB_L("Q"));
	mb_node(m, "Relu", "rk", MB_L("ks"), MB_L("K"));
	mb_node(m, "Relu", "rv", MB_L("vs"), MB_L("V"));
	mb_output(m, "Q", MB_FLOAT);
	mb_output(m, "K", MB_FLOAT);
	mb_output(m, "V", MB_FLOAT);
	return mb_pack(m, len);
}

/* The QKV split (one MatMul per Slice after the graph rewrite) computes what the graph says,
 * at two batch sizes, with and without the rewrites. */
static void test_matmul_sliced_outputs(void **state)
{
	float w[54], b[9], xs[2 * 5 * 6];
	for (int i = 0; i < 54; i++)
		w[i] = (float)((i * 7) % 11) * 0.1f - 0.5f;
	for (int i = 0; i < 9; i++)
		b[i] = (float)i * 0.05f - 0.2f;
	for (int i = 0; i < 60; i++)
		xs[i] = (float)((i * 5) % 13) * 0.1f - 0.6f;
	for (int no_opt = 0; no_opt < 2; no_opt++) {
		size_t len;
		uint8_t *buf = qkv_model(&len, w, b);
		char *err = NULL;
		struct eng_options opt = { .threads = 2, .no_opt = no_opt };
		struct eng_model *m;
		struct eng_exec *x;
		if (eng_model_load(buf, len, &opt, &m, &err))
			fail_msg("load: %s", err);
		free(buf);
		assert_int_equal(eng_exec_create(m, &x, &err), 0);
		for (int n = 1; n <= 2; n++) {
			int64_t dims[3] = { n, 5, 6 };
			struct eng_tensor in = f32_tensor(xs, 3, dims), out[3];
			if (eng_exec_run(x, &in, out, &err))
				fail_msg("run: %s", err);
			for (int o = 0; o < 3; o++) {
				assert_int_equal(out[o].ndims, 3);
				assert_int_equal(out[o].dims[0], n);
				assert_int_equal(out[o].dims[1], 5);
				assert_int_equal(out[o].dims[2], 3);
				for (int r = 0; r < n * 5; r++)
					for (int c = 0; c < 3; c++) {
						double v = b[o * 3 + c];
						for (int k = 0; k < 6; k++)
							v += (double)xs[r * 6 + k] * w[k * 9 + o * 3 + c];
						v = v > 0 ? v : 0;
						assert_float_equal(((float *)out[o].data)[r * 3 + c], v, 1e-5);
					}
			}
		}
		eng_exec_free(x);
		eng_model_free(m);
	}
}

/* Attention over inputs laid out [seq, heads, d] as exporters give them: Q, K, V transposed to
 * [heads, seq, d] (K to [heads, d, seq]), Q scaled by a Div, scores, Softmax, context, the
 * context transposed back. */
static uint8_t *attention_model(size_t *len)
{
	Onnx__ModelProto *m = mb_new(13, "engine_test");
	int64_t qd[3] = { 7, 3, 4 }, kd[3] = { 6, 3, 4 }, vd[3] = { 6, 3, 5 }, p102[3] = { 1, 0, 2 }, p120[3] = { 1, 2, 0 };
	mb_input(m, "Q", MB_FLOAT, 3, qd);
	mb_input(m, "K", MB_FLOAT, 3, kd);
	mb_input(m, "V", MB_FLOAT, 3, vd);
	mb_scalar(m, "scale", 2.0f);
	mb_attr_ints(mb_node(m, "Transpose", "tq", MB_L("Q"), MB_L("qt")), "perm", 3, p102);
	mb_attr_ints(mb_node(m, "Transpose", "tk", MB_L("K"), MB_L("kt")), "perm", 3, p120);
	mb_attr_ints(mb_node(m, "Transpose", "tv", MB_L("V"), MB_L("vt")), "perm", 3, p102);
	mb_node(m, "Div", "div", MB_L("qt", "scale"), MB_L("qs"));
	mb_node(m, "MatMul", "scores", MB_L("qs", "kt"), MB_L("s"));
	mb_attr_int(mb_node(m, "Softmax", "sm", MB_L("s"), MB_L("p")), "axis", -1);
	mb_node(m, "MatMul", "ctx", MB_L("p", "vt"), MB_L("c"));
	mb_attr_ints(mb_node(m, "Transpose", "tc", MB_L("c"), MB_L("Y")), "perm", 3, p102);
	mb_output(m, "Y", MB_FLOAT);
	return mb_pack(m, len);
}

/* The head transposes folded into the MatMuls' operands give what the plain graph gives. */
static void test_matmul_transposed_operands(void **state)
{
	float q[7 * 3 * 4], k[6 * 3 * 4], v[6 * 3 * 5], want[7 * 3 * 5];
	for (int i = 0; i < 84; i++)
		q[i] = (float)((i * 7) % 17) * 0.1f - 0.8f;
	for (int i = 0; i < 72; i++)
		k[i] = (float)((i * 5) % 13) * 0.1f - 0.6f;
	for (int i = 0; i < 90; i++)
		v[i] = (float)((i * 3) % 11) * 0.2f - 1.0f;
	int64_t qd[3] = { 7, 3, 4 }, kd[3] = { 6, 3, 4 }, vd[3] = { 6, 3, 5 };
	for (int no_opt = 1; no_opt >= 0; no_opt--) {
		size_t len;
		uint8_t *buf = attention_model(&len);
		char *err = NULL;
		struct eng_options opt = { .threads = 2, .no_opt = no_opt };
		struct eng_model *m;
		struct eng_exec *x;
		if (eng_model_load(buf, len, &opt, &m, &err))
			fail_msg("load: %s", err);
		free(buf);
		assert_int_equal(eng_exec_create(m, &x, &err), 0);
		struct eng_tensor in[3] = { f32_tensor(q, 3, qd), f32_tensor(k, 3, kd), f32_tensor(v, 3, vd) }, out;
		if (eng_exec_run(x, in, &out, &err))
			fail_msg("run: %s", err);
		assert_int_equal(out.ndims, 3);
		assert_int_equal(out.dims[0], 7);
		assert_int_equal(out.dims[1], 3);
		assert_int_equal(out.dims[2], 5);
		for (int i = 0; i < 7 * 3 * 5; i++) {
			float y = ((float *)out.data)[i];
			if (no_opt)
				want[i] = y;
			else
				assert_float_equal(y, want[i], 1e-5);
		}
		/* The plain graph against index arithmetic, at one head and query. */
		if (no_opt) {
			int h = 1, s = 2;
			double sc[6], mx = -1e30, sum = 0;
			for (int j = 0; j < 6; j++) {
				sc[j] = 0;
				for (int d = 0; d < 4; d++)
					sc[j] += q[(s * 3 + h) * 4 + d] / 2.0 * k[(j * 3 + h) * 4 + d];
				mx = sc[j] > mx ? sc[j] : mx;
			}
			for (int j = 0; j < 6; j++)
				sum += (sc[j] = exp(sc[j] - mx));
			for (int e = 0; e < 5; e++) {
				double c = 0;
				for (int j = 0; j < 6; j++)
					c += sc[j] / sum * v[(j * 3 + h) * 5 + e];
				assert_float_equal(want[(s * 3 + h) * 5 + e], c, 1e-5);
			}
		}
		eng_exec_free(x);
		eng_model_free(m);
	}
}

static void test_graph_order_and_cycles(void **state)
{
	/* Nodes listed out of order still run in dependency order. */
	Onnx__ModelProto *mp = mb_new(13, "engine_test");
	int64_t d[1] = { 3 };
	mb_input(mp, "X", MB_FLOAT, 1, d);
	mb_node(mp, "Neg", "second", MB_L("a"), MB_L("Y"));
	mb_node(mp, "Abs", "first", MB_L("X"), MB_L("a"));
	mb_node(mp, "Exp", "unused", MB_L("X"), MB_L("dead")); /* no output needs it: dropped */
	mb_output(mp, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(mp, &len);
	struct eng_model *m;
	struct eng_exec *x;
	load(buf, len, 1, &m, &x);
	free(buf);
	float xs[3] = { -1, 2, -3 };
	struct eng_tensor t = f32_tensor(xs, 1, d), out;
	char *err = NULL;
	assert_int_equal(eng_exec_run(x, &t, &out, &err), 0);
	assert_float_equal(((float *)out.data)[0], -1, 0);
	assert_float_equal(((float *)out.data)[1], -2, 0);
	assert_float_equal(((float *)out.data)[2], -3, 0);
	eng_exec_free(x);
	eng_model_free(m);

	mp = mb_new(13, "engine_test");
	mb_input(mp, "X", MB_FLOAT, 1, d);
	mb_node(mp, "Add", "a", MB_L("X", "c"), MB_L("b"));
	mb_node(mp, "Relu", "b", MB_L("b"), MB_L("c"));
	mb_output(mp, "c", MB_FLOAT);
	buf = mb_pack(mp, &len);
	assert_int_equal(eng_model_load(buf, len, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "cycle"));
	free(err);
	free(buf);

	mp = mb_new(13, "engine_test");
	mb_input(mp, "X", MB_FLOAT, 1, d);
	mb_node(mp, "Add", "a", MB_L("X", "nowhere"), MB_L("Y"));
	mb_output(mp, "Y", MB_FLOAT);
	buf = mb_pack(mp, &len);
	err = NULL;
	assert_int_equal(eng_model_load(buf, len, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err, "nowhere"));
	free(err);
	free(buf);
}

/* A Gemm big enough to be split over the pool, run from two threads on two execs at once. */
#define BM 48
#define BK 96
#define BN 80
static float big_w[BK * BN], big_x[BM * BK], big_want[BM * BN];

struct par_arg {
	struct eng_exec *x;
	int ok;
};

static void *par_run(void *p)
{
	struct par_arg *a = p;
	int64_t dims[2] = { BM, BK };
	a->ok = 1;
	for (int r = 0; r < 20; r++) {
		struct eng_tensor t = f32_tensor(big_x, 2, dims), out;
		char *err = NULL;
		if (eng_exec_run(a->x, &t, &out, &err)) {
			free(err);
			a->ok = 0;
			return NULL;
		}
		for (int i = 0; i < BM * BN; i++)
			if (fabsf(((float *)out.data)[i] - big_want[i]) > 1e-3f * (1 + fabsf(big_want[i])))
				a->ok = 0;
	}
	return NULL;
}

static void test_threads_and_parallel_execs(void **state)
{
	for (int i = 0; i < BK * BN; i++)
		big_w[i] = (float)((i * 37) % 19) / 19.0f - 0.5f;
	for (int i = 0; i < BM * BK; i++)
		big_x[i] = (float)((i * 13) % 23) / 23.0f - 0.5f;
	for (int i = 0; i < BM; i++)
		for (int j = 0; j < BN; j++) {
			double s = 0;
			for (int k = 0; k < BK; k++)
				s += (double)big_x[i * BK + k] * big_w[k * BN + j];
			big_want[i * BN + j] = (float)(s > 0 ? s : 0);
		}
	Onnx__ModelProto *mp = mb_new(13, "engine_test");
	int64_t xd[2] = { -1, BK }, wd[2] = { BK, BN };
	mb_input(mp, "X", MB_FLOAT, 2, xd);
	mb_init(mp, "W", MB_FLOAT, 2, wd, big_w);
	mb_node(mp, "MatMul", "mm", MB_L("X", "W"), MB_L("h"));
	mb_node(mp, "Relu", "relu", MB_L("h"), MB_L("Y"));
	mb_output(mp, "Y", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(mp, &len);
	struct eng_model *m;
	struct eng_exec *x1, *x2;
	load(buf, len, 2, &m, &x1);
	char *err = NULL;
	assert_int_equal(eng_exec_create(m, &x2, &err), 0);
	free(buf);
	struct par_arg a1 = { x1, 0 }, a2 = { x2, 0 };
	pthread_t t1, t2;
	assert_int_equal(pthread_create(&t1, NULL, par_run, &a1), 0);
	assert_int_equal(pthread_create(&t2, NULL, par_run, &a2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_true(a1.ok);
	assert_true(a2.ok);
	eng_exec_free(x1);
	eng_exec_free(x2);
	eng_model_free(m);
}

/* Constant subgraphs are folded at load; a graph output that is a constant is still returned. */
static void test_constant_output(void **state)
{
	Onnx__ModelProto *mp = mb_new(13, "engine_test");
	int64_t d[1] = { 2 };
	mb_input(mp, "X", MB_FLOAT, 1, d);
	float c[2] = { 3, 4 };
	mb_init(mp, "C", MB_FLOAT, 1, d, c);
	mb_node(mp, "Mul", "sq", MB_L("C", "C"), MB_L("C2"));
	mb_node(mp, "Add", "add", MB_L("X", "C2"), MB_L("Y"));
	mb_output(mp, "Y", MB_FLOAT);
	mb_output(mp, "C2", MB_FLOAT);
	size_t len;
	uint8_t *buf = mb_pack(mp, &len);
	struct eng_model *m;
	struct eng_exec *x;
	load(buf, len, 1, &m, &x);
	free(buf);
	float xs[2] = { 1, 2 };
	struct eng_tensor t = f32_tensor(xs, 1, d), out[2];
	char *err = NULL;
	assert_int_equal(eng_exec_run(x, &t, out, &err), 0);
	assert_float_equal(((float *)out[0].data)[0], 10, 0);
	assert_float_equal(((float *)out[0].data)[1], 18, 0);
	assert_float_equal(((float *)out[1].data)[0], 9, 0);
	assert_float_equal(((float *)out[1].data)[1], 16, 0);
	eng_exec_free(x);
	eng_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mlp_runs_and_reuses_plan),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_malformed_bytes),
		cmocka_unit_test(test_unsupported_op_names_op_node_opset),
		cmocka_unit_test(test_unsupported_attribute_and_external_data),
		cmocka_unit_test(test_op_supported),
		cmocka_unit_test(test_reshape_by_input_and_views),
		cmocka_unit_test(test_transpose_perms),
		cmocka_unit_test(test_matmul_sliced_outputs),
		cmocka_unit_test(test_matmul_transposed_operands),
		cmocka_unit_test(test_graph_order_and_cycles),
		cmocka_unit_test(test_threads_and_parallel_execs),
		cmocka_unit_test(test_constant_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
