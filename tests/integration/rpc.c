/* rpc.c - black-box test of every RPC of the real acceld, over TCP and over the Unix socket.
 *
 * main() builds a model repository (make_test_models.py), starts daemon/acceld on a free port
 * and a temporary socket, runs every test once per transport through libacceld-client (and
 * hand-built protobuf messages for what the library does not send: typed contents, junk),
 * then stops the daemon with SIGTERM and expects a clean exit.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acceld/client.h"
#include "harness.h"
#include "inference.pb-c.h"

#define INFER SVC_PREFIX "ModelInfer"
#define SVC_PREFIX "/inference.GRPCInferenceService/"

static struct harness H;
static json_t *expected; /* the generator's reference values */

/* One transport under test. */
struct conn {
	const char *label;
	const char *addr;
	struct acc_client *c;
};
static struct conn tcp = { "tcp", NULL, NULL }, uds = { "unix", NULL, NULL };

/* Fail the test with the status of a call that should have succeeded. */
#define assert_rpc_ok(rc, st)                                                                 \
	do {                                                                                  \
		if ((rc) < 0)                                                                 \
			fail_msg("%s:%d: %s: %s", __FILE__, __LINE__, acc_code_name((st)->code),      \
				 (st)->message ? (st)->message : "");                                 \
	} while (0)

/* Fail unless a call failed with code want and (if needle) a message containing needle. */
static void check_err(int rc, const struct acc_status *st, int want, const char *needle,
		      const char *file, int line)
{
	if (rc >= 0)
		fail_msg("%s:%d: call succeeded, expected %s", file, line, acc_code_name(want));
	if (st->code != want)
		fail_msg("%s:%d: got %s (%s), expected %s", file, line, acc_code_name(st->code),
			 st->message ? st->message : "", acc_code_name(want));
	if (needle && (!st->message || !strstr(st->message, needle)))
		fail_msg("%s:%d: message '%s' does not name '%s'", file, line,
			 st->message ? st->message : "", needle);
}
#define assert_rpc_err(rc, st, want, needle) check_err((rc), (st), (want), (needle), __FILE__, __LINE__)

/* Numbers of a JSON array of the reference file as floats (n returned). */
static size_t ref_floats(const char *model, const char *key, float *out, size_t max)
{
	json_t *arr = json_object_get(json_object_get(expected, model), key);
	assert_non_null(arr);
	size_t n = json_array_size(arr);
	assert_true(n <= max);
	for (size_t i = 0; i < n; i++)
		out[i] = (float)json_number_value(json_array_get(arr, i));
	return n;
}

/* A tensor descriptor in a request. */
static struct acc_tensor tensor(const char *name, const char *dt, const int64_t *shape, size_t nd,
				const void *data, size_t bytes)
{
	struct acc_tensor t = { name, dt, nd, shape, data, bytes };
	return t;
}

/* Check an FP32 output against want[n] within tol. */
static void assert_floats_near(const struct acc_tensor *t, const float *want, size_t n, double atol,
			       double rtol)
{
	assert_non_null(t);
	assert_string_equal(t->datatype, "FP32");
	assert_int_equal(t->bytes, n * sizeof(float));
	const float *got = t->data;
	for (size_t i = 0; i < n; i++)
		if (fabs((double)got[i] - want[i]) > atol + rtol * fabs(want[i]))
			fail_msg("%s[%zu] = %.9g, expected %.9g", t->name, i, got[i], want[i]);
}

/* Infer on tiny with the reference input; checks the output; returns nothing. */
static void tiny_roundtrip(struct acc_client *c, const char *id)
{
	float x[8], y[6];
	ref_floats("tiny", "x", x, 8);
	ref_floats("tiny", "y", y, 6);
	int64_t shape[2] = { 2, 4 };
	struct acc_tensor in = tensor("x", "FP32", shape, 2, x, sizeof(x));
	struct acc_infer_request rq = { .model = "tiny", .id = id, .n_inputs = 1, .inputs = &in };
	struct acc_infer_result *r;
	struct acc_status st = { 0 };
	int rc = acc_client_infer(c, &rq, &r, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(r->n_outputs, 1);
	const struct acc_tensor *out = acc_infer_result_output(r, "y");
	assert_non_null(out);
	assert_int_equal(out->ndims, 2);
	assert_int_equal(out->shape[0], 2);
	assert_int_equal(out->shape[1], 3);
	assert_floats_near(out, y, 6, 1e-6, 1e-6);
	assert_string_equal(r->model_name, "tiny");
	assert_string_equal(r->id, id ? id : "");
	acc_infer_result_free(r);
}

/* The server still answers: live, and a correct inference. */
static void assert_still_serves(struct acc_client *c)
{
	struct acc_status st = { 0 };
	bool live = false;
	int rc = acc_client_server_live(c, &live, &st);
	assert_rpc_ok(rc, &st);
	assert_true(live);
	assert_true(harness_running(&H));
	tiny_roundtrip(c, "after");
}

/* --- Health and metadata ------------------------------------------------------------------- */

/* ServerLive, ServerReady, ServerMetadata, grpc.health.v1. */
static void test_server(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	bool live = false, ready = false;
	int rc = acc_client_server_live(k->c, &live, &st);
	assert_rpc_ok(rc, &st);
	assert_true(live);
	rc = acc_client_server_ready(k->c, &ready, &st);
	assert_rpc_ok(rc, &st);
	assert_true(ready);

	struct acc_server_metadata *md;
	rc = acc_client_server_metadata(k->c, &md, &st);
	assert_rpc_ok(rc, &st);
	assert_string_equal(md->name, "acceld");
	assert_string_equal(md->version, PACKAGE_VERSION);
	bool has_repo_ext = false;
	for (size_t i = 0; i < md->n_extensions; i++)
		has_repo_ext |= !strcmp(md->extensions[i], "model_repository");
	assert_true(has_repo_ext);
	acc_server_metadata_free(md);

	int serving = -1;
	rc = acc_client_health_check(k->c, "", &serving, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(serving, 1);
	rc = acc_client_health_check(k->c, "inference.GRPCInferenceService", &serving, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(serving, 1);
	rc = acc_client_health_check(k->c, "no.such.Service", &serving, &st);
	if (rc == 0)
		assert_int_equal(serving, 3); /* SERVICE_UNKNOWN */
	else
		assert_rpc_err(rc, &st, ACC_NOT_FOUND, NULL);
	acc_status_clear(&st);
}

/* ModelReady: ready, unavailable, unknown. */
static void test_model_ready(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	bool ready = false;
	int rc = acc_client_model_ready(k->c, "tiny", NULL, &ready, &st);
	assert_rpc_ok(rc, &st);
	assert_true(ready);
	rc = acc_client_model_ready(k->c, "tiny", "1", &ready, &st);
	assert_rpc_ok(rc, &st);
	assert_true(ready);
	ready = true;
	rc = acc_client_model_ready(k->c, "broken", NULL, &ready, &st);
	assert_rpc_ok(rc, &st);
	assert_false(ready);
	ready = true;
	rc = acc_client_model_ready(k->c, "tiny", "7", &ready, &st);
	if (rc == 0)
		assert_false(ready);
	else
		assert_rpc_err(rc, &st, ACC_NOT_FOUND, NULL);
	ready = true;
	rc = acc_client_model_ready(k->c, "no_such_model", NULL, &ready, &st);
	if (rc == 0)
		assert_false(ready);
	else
		assert_rpc_err(rc, &st, ACC_NOT_FOUND, "no_such_model");
	acc_status_clear(&st);
}

/* ModelMetadata of tiny and pair; unknown model. */
static void test_model_metadata(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	struct acc_model_metadata *md;
	int rc = acc_client_model_metadata(k->c, "tiny", NULL, &md, &st);
	assert_rpc_ok(rc, &st);
	assert_string_equal(md->name, "tiny");
	assert_int_equal(md->n_versions, 1);
	assert_string_equal(md->versions[0], "1");
	assert_string_equal(md->platform, "onnxruntime_onnx");
	assert_int_equal(md->n_inputs, 1);
	assert_string_equal(md->inputs[0].name, "x");
	assert_string_equal(md->inputs[0].datatype, "FP32");
	assert_int_equal(md->inputs[0].ndims, 2);
	assert_int_equal(md->inputs[0].shape[0], -1);
	assert_int_equal(md->inputs[0].shape[1], 4);
	assert_int_equal(md->n_outputs, 1);
	assert_string_equal(md->outputs[0].name, "y");
	assert_int_equal(md->outputs[0].shape[1], 3);
	acc_model_metadata_free(md);

	rc = acc_client_model_metadata(k->c, "ident_int64", NULL, &md, &st);
	assert_rpc_ok(rc, &st);
	assert_string_equal(md->inputs[0].datatype, "INT64");
	assert_string_equal(md->outputs[0].datatype, "INT64");
	acc_model_metadata_free(md);

	rc = acc_client_model_metadata(k->c, "pair", NULL, &md, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(md->n_inputs, 2);
	assert_int_equal(md->n_outputs, 2);
	assert_string_equal(md->inputs[0].name, "a");
	assert_string_equal(md->inputs[1].name, "b");
	acc_model_metadata_free(md);

	rc = acc_client_model_metadata(k->c, "no_such_model", NULL, &md, &st);
	assert_rpc_err(rc, &st, ACC_NOT_FOUND, "no_such_model");
	assert_null(md);
	acc_status_clear(&st);
}

/* ModelConfig as JSON: the fields of tiny's config.json come back. */
static void test_model_config(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	char *text;
	int rc = acc_client_model_config(k->c, "tiny", NULL, &text, &st);
	assert_rpc_ok(rc, &st);
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("config is not JSON: %s\n%s", je.text, text);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "tiny");
	assert_int_equal(json_integer_value(json_object_get(j, "max_batch_size")), 8);
	json_t *in = json_array_get(json_object_get(j, "input"), 0);
	assert_string_equal(json_string_value(json_object_get(in, "name")), "x");
	assert_string_equal(json_string_value(json_object_get(in, "data_type")), "TYPE_FP32");
	assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "dims"), 0)), 4);
	json_t *out = json_array_get(json_object_get(j, "output"), 0);
	assert_string_equal(json_string_value(json_object_get(out, "name")), "y");
	json_decref(j);
	free(text);

	rc = acc_client_model_config(k->c, "no_such_model", NULL, &text, &st);
	assert_rpc_err(rc, &st, ACC_NOT_FOUND, "no_such_model");
	acc_status_clear(&st);
}

/* --- Inference -------------------------------------------------------------------------------- */

/* One inference that must fail with want and a message naming needle. */
static void expect_infer_error(struct acc_client *c, const struct acc_infer_request *rq, int want,
			       const char *needle)
{
	struct acc_status st = { 0 };
	struct acc_infer_result *r = NULL;
	int rc = acc_client_infer(c, rq, &r, &st);
	assert_rpc_err(rc, &st, want, needle);
	assert_null(r);
	acc_status_clear(&st);
}

/* ModelInfer on tiny: values against numpy's, request id and model name echoed. */
static void test_infer_tiny(void **state)
{
	struct conn *k = *state;
	tiny_roundtrip(k->c, "request-42");
	tiny_roundtrip(k->c, NULL);

	/* The "priority" and "timeout" request parameters: accepted when sane, refused if not. */
	float x[4] = { 1, 2, 3, 4 };
	int64_t shape[2] = { 1, 4 };
	struct acc_tensor in = tensor("x", "FP32", shape, 2, x, sizeof(x));
	struct acc_infer_request rq = { .model = "tiny", .n_inputs = 1, .inputs = &in,
					.priority = 1, .timeout_us = 5000000 };
	struct acc_infer_result *r;
	struct acc_status st = { 0 };
	int rc = acc_client_infer(k->c, &rq, &r, &st);
	assert_rpc_ok(rc, &st);
	acc_infer_result_free(r);
	rq.priority = -1;
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "priority");
}

/* Identity models: every dtype travels raw and comes back bit-identical. */
static void test_infer_dtypes(void **state)
{
	struct conn *k = *state;
	static const float f32[10] = { 1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -0.0f, 1e30f, -7.0f, 0.5f, 42.0f };
	static const double f64[10] = { 1e300, -1e-300, 0.1, -2.5, 3.0, 0, 1, -1, 1e-10, 12345.678 };
	static const int32_t i32[10] = { INT32_MIN, -1, 0, 1, INT32_MAX, 7, -7, 100000, -100000, 3 };
	static const int64_t i64[10] = { INT64_MIN, -1, 0, 1, INT64_MAX, 1LL << 40, -(1LL << 40), 5, 6, 7 };
	static const uint8_t u8[10] = { 0, 1, 127, 128, 255, 2, 3, 4, 5, 200 };
	static const uint8_t b8[10] = { 1, 0, 1, 1, 0, 0, 0, 1, 0, 1 };
	static const struct {
		const char *model, *dt;
		const void *data;
		size_t bytes;
	} cases[] = {
		{ "ident_fp32", "FP32", f32, sizeof(f32) },   { "ident_fp64", "FP64", f64, sizeof(f64) },
		{ "ident_int32", "INT32", i32, sizeof(i32) }, { "ident_int64", "INT64", i64, sizeof(i64) },
		{ "ident_uint8", "UINT8", u8, sizeof(u8) },   { "ident_bool", "BOOL", b8, sizeof(b8) },
	};
	int64_t shape[2] = { 2, 5 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct acc_tensor in = tensor("x", cases[i].dt, shape, 2, cases[i].data, cases[i].bytes);
		struct acc_infer_request rq = { .model = cases[i].model, .n_inputs = 1, .inputs = &in };
		struct acc_infer_result *r;
		struct acc_status st = { 0 };
		int rc = acc_client_infer(k->c, &rq, &r, &st);
		if (rc < 0)
			fail_msg("%s: %s: %s", cases[i].model, acc_code_name(st.code), st.message);
		const struct acc_tensor *y = acc_infer_result_output(r, "y");
		assert_non_null(y);
		assert_string_equal(y->datatype, cases[i].dt);
		assert_int_equal(y->ndims, 2);
		assert_int_equal(y->shape[0], 2);
		assert_int_equal(y->shape[1], 5);
		assert_int_equal(y->bytes, cases[i].bytes);
		if (memcmp(y->data, cases[i].data, cases[i].bytes) != 0)
			fail_msg("%s: output differs from input", cases[i].model);
		acc_infer_result_free(r);
	}
}

/* Requested outputs: a subset, and the order asked for. */
static void test_infer_outputs(void **state)
{
	struct conn *k = *state;
	float a[4], b[4], sum[4], prod[4];
	ref_floats("pair", "a", a, 4);
	ref_floats("pair", "b", b, 4);
	ref_floats("pair", "sum", sum, 4);
	ref_floats("pair", "prod", prod, 4);
	int64_t shape[2] = { 1, 4 };
	struct acc_tensor in[2] = { tensor("a", "FP32", shape, 2, a, sizeof(a)),
				    tensor("b", "FP32", shape, 2, b, sizeof(b)) };
	struct acc_status st = { 0 };
	struct acc_infer_result *r;

	struct acc_infer_request all = { .model = "pair", .n_inputs = 2, .inputs = in };
	int rc = acc_client_infer(k->c, &all, &r, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(r->n_outputs, 2);
	assert_floats_near(acc_infer_result_output(r, "sum"), sum, 4, 0, 0);
	assert_floats_near(acc_infer_result_output(r, "prod"), prod, 4, 0, 0);
	acc_infer_result_free(r);

	const char *only_prod[] = { "prod" };
	struct acc_infer_request one = { .model = "pair", .n_inputs = 2, .inputs = in,
					 .n_outputs = 1, .outputs = only_prod };
	rc = acc_client_infer(k->c, &one, &r, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(r->n_outputs, 1);
	assert_string_equal(r->outputs[0].name, "prod");
	assert_floats_near(&r->outputs[0], prod, 4, 0, 0);
	acc_infer_result_free(r);

	const char *reversed[] = { "prod", "sum" };
	struct acc_infer_request two = { .model = "pair", .n_inputs = 2, .inputs = in,
					 .n_outputs = 2, .outputs = reversed };
	rc = acc_client_infer(k->c, &two, &r, &st);
	assert_rpc_ok(rc, &st);
	assert_int_equal(r->n_outputs, 2);
	assert_string_equal(r->outputs[0].name, "prod");
	assert_string_equal(r->outputs[1].name, "sum");
	assert_floats_near(&r->outputs[1], sum, 4, 0, 0);
	acc_infer_result_free(r);
}

/* Send a hand-built request; on OK return the decoded response (else NULL, st filled). */
static Inference__ModelInferResponse *infer_pb(struct acc_client *c,
					       const Inference__ModelInferRequest *req,
					       struct acc_status *st)
{
	size_t len = inference__model_infer_request__get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	inference__model_infer_request__pack(req, buf);
	void *resp;
	size_t resp_len;
	int rc = acc_client_call_raw(c, INFER, buf, len, &resp, &resp_len, st);
	free(buf);
	if (rc < 0)
		return NULL;
	Inference__ModelInferResponse *r = inference__model_infer_response__unpack(NULL, resp_len, resp);
	free(resp);
	assert_non_null(r);
	return r;
}

/* The bytes of output name in a decoded response: raw contents, or typed contents packed. */
static const void *pb_output(const Inference__ModelInferResponse *r, const char *name, size_t *bytes,
			     void **tofree)
{
	*tofree = NULL;
	for (size_t i = 0; i < r->n_outputs; i++) {
		if (strcmp(r->outputs[i]->name, name))
			continue;
		if (r->n_raw_output_contents) {
			*bytes = r->raw_output_contents[i].len;
			return r->raw_output_contents[i].data;
		}
		const Inference__InferTensorContents *ct = r->outputs[i]->contents;
		assert_non_null(ct);
		if (ct->n_fp32_contents) {
			*bytes = ct->n_fp32_contents * 4;
			return ct->fp32_contents;
		}
		if (ct->n_int_contents) {
			*bytes = ct->n_int_contents * 4;
			return ct->int_contents;
		}
		if (ct->n_int64_contents) {
			*bytes = ct->n_int64_contents * 8;
			return ct->int64_contents;
		}
		if (ct->n_bool_contents) {
			uint8_t *p = malloc(ct->n_bool_contents);
			for (size_t k = 0; k < ct->n_bool_contents; k++)
				p[k] = (uint8_t)ct->bool_contents[k];
			*tofree = p;
			*bytes = ct->n_bool_contents;
			return p;
		}
		fail_msg("output %s has no contents", name);
	}
	fail_msg("no output %s in the response", name);
	return NULL;
}

/* Typed input contents (fp32, int32, int64, bool, uint8, fp64) instead of raw bytes. */
static void test_infer_typed(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	int64_t shape[2] = { 1, 4 };
	float a[4], b[4], sum[4], prod[4];
	ref_floats("pair", "a", a, 4);
	ref_floats("pair", "b", b, 4);
	ref_floats("pair", "sum", sum, 4);
	ref_floats("pair", "prod", prod, 4);

	Inference__InferTensorContents ca = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	Inference__InferTensorContents cb = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	ca.n_fp32_contents = 4;
	ca.fp32_contents = a;
	cb.n_fp32_contents = 4;
	cb.fp32_contents = b;
	Inference__ModelInferRequest__InferInputTensor ta = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
	Inference__ModelInferRequest__InferInputTensor tb = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
	ta.name = "a";
	ta.datatype = "FP32";
	ta.n_shape = 2;
	ta.shape = shape;
	ta.contents = &ca;
	tb = ta;
	tb.name = "b";
	tb.contents = &cb;
	Inference__ModelInferRequest__InferInputTensor *tin[2] = { &ta, &tb };
	Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
	req.model_name = "pair";
	req.id = "typed";
	req.n_inputs = 2;
	req.inputs = tin;
	Inference__ModelInferResponse *r = infer_pb(k->c, &req, &st);
	if (!r)
		fail_msg("typed fp32: %s: %s", acc_code_name(st.code), st.message);
	assert_string_equal(r->id, "typed");
	size_t n;
	void *tofree;
	const float *got = pb_output(r, "sum", &n, &tofree);
	assert_int_equal(n, sizeof(sum));
	assert_memory_equal(got, sum, sizeof(sum));
	got = pb_output(r, "prod", &n, &tofree);
	assert_memory_equal(got, prod, sizeof(prod));
	inference__model_infer_response__free_unpacked(r, NULL);

	/* Typed and raw together is ambiguous: rejected. */
	ProtobufCBinaryData raw[2] = { { sizeof(a), (uint8_t *)a }, { sizeof(b), (uint8_t *)b } };
	req.n_raw_input_contents = 2;
	req.raw_input_contents = raw;
	r = infer_pb(k->c, &req, &st);
	assert_null(r);
	assert_int_equal(st.code, ACC_INVALID_ARGUMENT);
	req.n_raw_input_contents = 0;
	req.raw_input_contents = NULL;

	/* Wrong number of typed values: rejected, naming the tensor. */
	cb.n_fp32_contents = 3;
	r = infer_pb(k->c, &req, &st);
	assert_null(r);
	assert_int_equal(st.code, ACC_INVALID_ARGUMENT);
	assert_non_null(strstr(st.message, "b"));
	cb.n_fp32_contents = 4;

	/* Integer and boolean identity models with typed contents. */
	int64_t shape5[2] = { 1, 5 };
	int32_t i32[5] = { -5, 0, 5, INT32_MAX, INT32_MIN };
	int64_t i64[5] = { INT64_MIN, -1, 0, 1, INT64_MAX };
	protobuf_c_boolean bools[5] = { 1, 0, 0, 1, 1 };
	uint8_t bools8[5] = { 1, 0, 0, 1, 1 };
	uint32_t u8v[5] = { 0, 1, 128, 200, 255 };
	uint8_t u8b[5] = { 0, 1, 128, 200, 255 };
	double f64[5] = { 0.1, -1e200, 3, 4, 5 };
	struct {
		const char *model, *dt;
		const void *want;
		size_t bytes;
	} cases[] = {
		{ "ident_int32", "INT32", i32, sizeof(i32) }, { "ident_int64", "INT64", i64, sizeof(i64) },
		{ "ident_bool", "BOOL", bools8, 5 },          { "ident_uint8", "UINT8", u8b, 5 },
		{ "ident_fp64", "FP64", f64, sizeof(f64) },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Inference__InferTensorContents ct = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
		switch (i) {
		case 0: ct.n_int_contents = 5; ct.int_contents = i32; break;
		case 1: ct.n_int64_contents = 5; ct.int64_contents = i64; break;
		case 2: ct.n_bool_contents = 5; ct.bool_contents = bools; break;
		case 3: ct.n_uint_contents = 5; ct.uint_contents = u8v; break;
		case 4: ct.n_fp64_contents = 5; ct.fp64_contents = f64; break;
		}
		Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
		t.name = "x";
		t.datatype = (char *)cases[i].dt;
		t.n_shape = 2;
		t.shape = shape5;
		t.contents = &ct;
		Inference__ModelInferRequest__InferInputTensor *tp = &t;
		Inference__ModelInferRequest rq = INFERENCE__MODEL_INFER_REQUEST__INIT;
		rq.model_name = (char *)cases[i].model;
		rq.n_inputs = 1;
		rq.inputs = &tp;
		r = infer_pb(k->c, &rq, &st);
		if (!r)
			fail_msg("typed %s: %s: %s", cases[i].model, acc_code_name(st.code), st.message);
		const void *y = NULL;
		for (size_t o = 0; o < r->n_outputs; o++)
			if (!strcmp(r->outputs[o]->name, "y")) {
				assert_string_equal(r->outputs[o]->datatype, cases[i].dt);
				assert_true(r->n_raw_output_contents > o);
				assert_int_equal(r->raw_output_contents[o].len, cases[i].bytes);
				y = r->raw_output_contents[o].data;
			}
		assert_non_null(y);
		if (memcmp(y, cases[i].want, cases[i].bytes))
			fail_msg("typed %s: output differs from input", cases[i].model);
		inference__model_infer_response__free_unpacked(r, NULL);
	}
	acc_status_clear(&st);
}

/* Bad requests: unknown model, wrong shape / dtype / byte size, missing or unknown tensors. */
static void test_infer_errors(void **state)
{
	struct conn *k = *state;
	float x[40] = { 0 };
	int64_t s14[2] = { 1, 4 }, s15[2] = { 1, 5 }, s94[2] = { 9, 4 }, s4[1] = { 4 };
	struct acc_tensor t;
	struct acc_infer_request rq = { .model = "tiny", .n_inputs = 1, .inputs = &t };

	rq.model = "no_such_model";
	t = tensor("x", "FP32", s14, 2, x, 16);
	expect_infer_error(k->c, &rq, ACC_NOT_FOUND, "no_such_model");
	rq.model = "tiny";
	rq.version = "9";
	expect_infer_error(k->c, &rq, ACC_NOT_FOUND, NULL);
	rq.version = NULL;

	t = tensor("x", "FP32", s15, 2, x, 20); /* wrong inner dim */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("x", "FP32", s4, 1, x, 16); /* batch dimension missing */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("x", "FP32", s94, 2, x, 144); /* batch 9 > max_batch_size 8 */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("x", "FP64", s14, 2, x, 32); /* wrong dtype */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("x", "FP33", s14, 2, x, 16); /* no such dtype */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("x", "FP32", s14, 2, x, 12); /* byte size does not match the shape */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("x", "FP32", s14, 2, x, 20);
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "x");
	t = tensor("zz", "FP32", s14, 2, x, 16); /* unknown input (and x missing) */
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, NULL);

	const char *bad_out[] = { "no_such_output" };
	t = tensor("x", "FP32", s14, 2, x, 16);
	rq.n_outputs = 1;
	rq.outputs = bad_out;
	expect_infer_error(k->c, &rq, ACC_INVALID_ARGUMENT, "no_such_output");
	rq.n_outputs = 0;
	rq.outputs = NULL;

	/* pair without its second input. */
	struct acc_tensor a = tensor("a", "FP32", s14, 2, x, 16);
	struct acc_infer_request missing = { .model = "pair", .n_inputs = 1, .inputs = &a };
	expect_infer_error(k->c, &missing, ACC_INVALID_ARGUMENT, "b");
	/* The same input twice. */
	struct acc_tensor twice[2] = { a, a };
	struct acc_infer_request dup = { .model = "pair", .n_inputs = 2, .inputs = twice };
	expect_infer_error(k->c, &dup, ACC_INVALID_ARGUMENT, "a");

	/* The unavailable model: not servable, with a clear code. */
	rq.model = "broken";
	struct acc_status st = { 0 };
	struct acc_infer_result *r = NULL;
	int rc = acc_client_infer(k->c, &rq, &r, &st);
	assert_true(rc < 0);
	if (st.code != ACC_UNAVAILABLE && st.code != ACC_NOT_FOUND)
		fail_msg("infer on broken: %s: %s", acc_code_name(st.code), st.message);
	acc_status_clear(&st);
	assert_still_serves(k->c);
}

/* Junk on the wire: garbage bytes, a truncated message, unknown and streaming methods. */
static void test_wire_junk(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	void *resp = NULL;
	size_t len;

	uint8_t junk[256];
	uint64_t x = 0x12345678abcdefULL;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		junk[i] = (uint8_t)(x >> 56);
	}
	junk[0] = 0xff; /* field 31, wire type 7: never valid */
	int rc = acc_client_call_raw(k->c, INFER, junk, sizeof(junk), &resp, &len, &st);
	assert_rpc_err(rc, &st, ACC_INVALID_ARGUMENT, NULL);

	/* A valid request cut inside its last field. */
	float xv[4] = { 1, 2, 3, 4 };
	int64_t shape[2] = { 1, 4 };
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
	t.name = "x";
	t.datatype = "FP32";
	t.n_shape = 2;
	t.shape = shape;
	Inference__ModelInferRequest__InferInputTensor *tp = &t;
	ProtobufCBinaryData raw = { sizeof(xv), (uint8_t *)xv };
	Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
	req.model_name = "tiny";
	req.n_inputs = 1;
	req.inputs = &tp;
	req.n_raw_input_contents = 1;
	req.raw_input_contents = &raw;
	size_t full = inference__model_infer_request__get_packed_size(&req);
	uint8_t *buf = malloc(full);
	inference__model_infer_request__pack(&req, buf);
	rc = acc_client_call_raw(k->c, INFER, buf, full - 5, &resp, &len, &st);
	assert_rpc_err(rc, &st, ACC_INVALID_ARGUMENT, NULL);
	/* The whole message still works (the cut was the only problem). */
	rc = acc_client_call_raw(k->c, INFER, buf, full, &resp, &len, &st);
	assert_rpc_ok(rc, &st);
	free(resp);
	free(buf);

	/* Junk to the other methods too. */
	static const char *const methods[] = { "ServerLive", "ModelReady", "ModelMetadata",
					       "ModelConfig", "ModelStatistics", "RepositoryIndex",
					       "RepositoryModelLoad", "RepositoryModelUnload" };
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char m[128];
		snprintf(m, sizeof(m), SVC_PREFIX "%s", methods[i]);
		rc = acc_client_call_raw(k->c, m, junk, sizeof(junk), &resp, &len, &st);
		if (rc >= 0 || st.code != ACC_INVALID_ARGUMENT)
			fail_msg("junk to %s: %s (%s)", methods[i], rc >= 0 ? "accepted" : acc_code_name(st.code),
				 st.message ? st.message : "");
	}

	rc = acc_client_call_raw(k->c, SVC_PREFIX "NoSuchMethod", NULL, 0, &resp, &len, &st);
	assert_rpc_err(rc, &st, ACC_UNIMPLEMENTED, NULL);
	rc = acc_client_call_raw(k->c, SVC_PREFIX "ModelStreamInfer", NULL, 0, &resp, &len, &st);
	assert_rpc_err(rc, &st, ACC_UNIMPLEMENTED, NULL);
	acc_status_clear(&st);
	assert_still_serves(k->c);
}

/* --- Repository --------------------------------------------------------------------------------- */

/* Find a model in an index listing. */
static const struct acc_repo_model *find_model(const struct acc_repo_model *m, size_t n,
					       const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].name, name))
			return &m[i];
	return NULL;
}

/* RepositoryIndex: every model, the broken one UNAVAILABLE with its reason. */
static void test_repository_index(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	struct acc_repo_model *m;
	size_t n;
	int rc = acc_client_repository_index(k->c, false, &m, &n, &st);
	assert_rpc_ok(rc, &st);
	static const char *const ready[] = { "tiny", "pair", "ident_fp32", "ident_fp64", "ident_int32",
					     "ident_int64", "ident_uint8", "ident_bool", "mlp" };
	for (size_t i = 0; i < sizeof(ready) / sizeof(ready[0]); i++) {
		const struct acc_repo_model *e = find_model(m, n, ready[i]);
		if (!e)
			fail_msg("%s missing from the index", ready[i]);
		if (strcmp(e->state, "READY"))
			fail_msg("%s is %s (%s)", ready[i], e->state, e->reason);
		assert_string_equal(e->version, "1");
	}
	const struct acc_repo_model *b = find_model(m, n, "broken");
	assert_non_null(b);
	assert_string_equal(b->state, "UNAVAILABLE");
	assert_true(strlen(b->reason) > 0);
	acc_repo_index_free(m, n);

	rc = acc_client_repository_index(k->c, true, &m, &n, &st);
	assert_rpc_ok(rc, &st);
	assert_null(find_model(m, n, "broken"));
	assert_non_null(find_model(m, n, "tiny"));
	acc_repo_index_free(m, n);
}

/* Unload, not ready, infer refused; load back, ready and serving; config override. */
static void test_load_unload(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	bool ready = true;
	int rc = acc_client_unload(k->c, "pair", &st);
	assert_rpc_ok(rc, &st);
	rc = acc_client_model_ready(k->c, "pair", NULL, &ready, &st);
	if (rc == 0)
		assert_false(ready);
	float a[4] = { 1, 2, 3, 4 };
	int64_t s14[2] = { 1, 4 };
	struct acc_tensor in[2] = { tensor("a", "FP32", s14, 2, a, 16),
				    tensor("b", "FP32", s14, 2, a, 16) };
	struct acc_infer_request rq = { .model = "pair", .n_inputs = 2, .inputs = in };
	struct acc_infer_result *r = NULL;
	rc = acc_client_infer(k->c, &rq, &r, &st);
	assert_true(rc < 0);
	if (st.code != ACC_NOT_FOUND && st.code != ACC_UNAVAILABLE)
		fail_msg("infer on an unloaded model: %s: %s", acc_code_name(st.code), st.message);
	struct acc_repo_model *m;
	size_t n;
	rc = acc_client_repository_index(k->c, false, &m, &n, &st);
	assert_rpc_ok(rc, &st);
	const struct acc_repo_model *e = find_model(m, n, "pair");
	assert_non_null(e); /* still on disk, so still listed */
	assert_string_not_equal(e->state, "READY");
	acc_repo_index_free(m, n);

	rc = acc_client_load(k->c, "pair", NULL, &st);
	assert_rpc_ok(rc, &st);
	rc = acc_client_model_ready(k->c, "pair", NULL, &ready, &st);
	assert_rpc_ok(rc, &st);
	assert_true(ready);
	rc = acc_client_infer(k->c, &rq, &r, &st);
	assert_rpc_ok(rc, &st);
	acc_infer_result_free(r);

	/* A configuration override: tiny with max_batch_size 2 refuses batch 4. */
	const char *cfg = "{\"name\": \"tiny\", \"platform\": \"onnxruntime_onnx\", \"max_batch_size\": 2,"
			  " \"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]}],"
			  " \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_FP32\", \"dims\": [3]}]}";
	rc = acc_client_load(k->c, "tiny", cfg, &st);
	assert_rpc_ok(rc, &st);
	char *text;
	rc = acc_client_model_config(k->c, "tiny", NULL, &text, &st);
	assert_rpc_ok(rc, &st);
	json_t *j = json_loads(text, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "max_batch_size")), 2);
	json_decref(j);
	free(text);
	float x[16] = { 0 };
	int64_t s44[2] = { 4, 4 };
	struct acc_tensor t = tensor("x", "FP32", s44, 2, x, sizeof(x));
	struct acc_infer_request big = { .model = "tiny", .n_inputs = 1, .inputs = &t };
	expect_infer_error(k->c, &big, ACC_INVALID_ARGUMENT, "x");
	/* A bad override is refused and the model keeps serving. */
	rc = acc_client_load(k->c, "tiny", "{\"max_batch_size\": \"many\"", &st);
	assert_true(rc < 0);
	rc = acc_client_load(k->c, "tiny", NULL, &st); /* back to config.json */
	assert_rpc_ok(rc, &st);
	tiny_roundtrip(k->c, "reloaded");

	rc = acc_client_load(k->c, "no_such_model", NULL, &st);
	assert_true(rc < 0);
	assert_int_equal(st.code, ACC_NOT_FOUND);
	rc = acc_client_load(k->c, "broken", NULL, &st);
	assert_true(rc < 0);
	assert_true(st.message && *st.message);
	rc = acc_client_unload(k->c, "no_such_model", &st);
	assert_true(rc < 0);
	acc_status_clear(&st);
	assert_still_serves(k->c);
}

/* --- Statistics ---------------------------------------------------------------------------------- */

/* Statistics of tiny (found in the all-model listing too). */
static struct acc_model_stats tiny_stats(struct acc_client *c, struct acc_model_stats **keep,
					 size_t *nkeep)
{
	struct acc_status st = { 0 };
	int rc = acc_client_model_statistics(c, "tiny", NULL, keep, nkeep, &st);
	assert_rpc_ok(rc, &st);
	assert_true(*nkeep >= 1);
	for (size_t i = 0; i < *nkeep; i++)
		if (!strcmp((*keep)[i].name, "tiny"))
			return (*keep)[i];
	fail_msg("no statistics for tiny");
	return (*keep)[0];
}

/* ModelStatistics: counts go up with inferences. */
static void test_statistics(void **state)
{
	struct conn *k = *state;
	struct acc_model_stats *keep0, *keep1;
	size_t n0, n1;
	struct acc_model_stats s0 = tiny_stats(k->c, &keep0, &n0);
	for (int i = 0; i < 3; i++)
		tiny_roundtrip(k->c, NULL); /* batch 2 each */
	struct acc_model_stats s1 = tiny_stats(k->c, &keep1, &n1);
	assert_true(s1.inference_count >= s0.inference_count + 6);
	assert_true(s1.execution_count >= s0.execution_count + 1);
	assert_true(s1.success.count >= s0.success.count + 3);
	assert_true(s1.success.ns > s0.success.ns);
	assert_true(s1.compute_infer.count > s0.compute_infer.count);
	assert_true(s1.last_inference_ms >= s0.last_inference_ms);
	assert_true(s1.last_inference_ms > 1600000000000ULL); /* a wall-clock time in ms */
	acc_model_stats_free(keep0, n0);
	acc_model_stats_free(keep1, n1);

	struct acc_status st = { 0 };
	struct acc_model_stats *all;
	size_t n;
	int rc = acc_client_model_statistics(k->c, NULL, NULL, &all, &n, &st);
	assert_rpc_ok(rc, &st);
	bool has_tiny = false, has_mlp = false;
	for (size_t i = 0; i < n; i++) {
		has_tiny |= !strcmp(all[i].name, "tiny");
		has_mlp |= !strcmp(all[i].name, "mlp");
	}
	assert_true(has_tiny && has_mlp);
	acc_model_stats_free(all, n);
	rc = acc_client_model_statistics(k->c, "no_such_model", NULL, &all, &n, &st);
	assert_rpc_err(rc, &st, ACC_NOT_FOUND, NULL);
	acc_status_clear(&st);
}

/* --- Clients that go away ------------------------------------------------------------------------ */

/* A 16 MiB request whose deadline passes while it is sent, and requests cancelled while the
 * model runs: the server must go on serving. */
static void test_cancelled_calls(void **state)
{
	struct conn *k = *state;
	struct acc_status st = { 0 };
	struct acc_client *c;
	int rc = acc_client_connect(k->addr, &c, &st);
	assert_rpc_ok(rc, &st);

	size_t big = 16u << 20;
	float *x = calloc(1, big);
	int64_t shape[2] = { 1, 4 };
	struct acc_tensor t = tensor("x", "FP32", shape, 2, x, big);
	struct acc_infer_request rq = { .model = "tiny", .n_inputs = 1, .inputs = &t };
	struct acc_infer_result *r = NULL;
	acc_client_set_timeout(c, 2);
	rc = acc_client_infer(c, &rq, &r, &st);
	assert_true(rc < 0); /* deadline, or (if it all arrived) the wrong byte size */

	/* Valid MLP batches with deadlines of 1..4 ms: some end while the model runs. */
	int64_t mshape[2] = { 64, 784 };
	t = tensor("input", "FP32", mshape, 2, x, 64 * 784 * sizeof(float));
	rq.model = "mlp";
	for (int i = 0; i < 16; i++) {
		acc_client_set_timeout(c, 1 + (unsigned)(i % 4));
		rc = acc_client_infer(c, &rq, &r, &st);
		if (rc == 0)
			acc_infer_result_free(r);
		else if (st.code != ACC_DEADLINE_EXCEEDED)
			fail_msg("mlp: %s: %s", acc_code_name(st.code), st.message);
	}
	acc_client_close(c); /* closes the channel, possibly with calls still running server-side */
	free(x);
	acc_status_clear(&st);
	assert_still_serves(k->c);
}

/* accelctl processes killed at random points of their call: the server goes on. */
static void test_killed_clients(void **state)
{
	struct conn *k = *state;
	char *ctl;
	if (asprintf(&ctl, "%s/client/accelctl", H.builddir) < 0)
		abort();
	for (int i = 0; i < 8; i++) {
		char *argv[] = { ctl, "-a", (char *)k->addr, "infer", "mlp", "--batch", "64", NULL };
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			dup2(null, 2);
			execv(ctl, argv);
			_exit(127);
		}
		struct timespec ts = { 0, (long)(i % 4) * 3000000L + 1000000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		if (WIFEXITED(status))
			assert_int_equal(WEXITSTATUS(status), 0);
	}
	free(ctl);
	assert_still_serves(k->c);
}

/* --- Concurrency ----------------------------------------------------------------------------------- */

struct worker {
	struct acc_client *c;
	int id;
	int failures;
	char msg[256];
};

/* Infer the MLP sample and tiny repeatedly, checking every answer. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	static float mlp_in[784], mlp_out[10];
	char path[4200];
	snprintf(path, sizeof(path), "%s/mlp/sample_input.bin", H.repo);
	FILE *f = fopen(path, "rb");
	if (!f || fread(mlp_in, 4, 784, f) != 784) {
		snprintf(w->msg, sizeof(w->msg), "cannot read %.200s", path);
		w->failures++;
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/mlp/sample_output.bin", H.repo);
	f = fopen(path, "rb");
	if (!f || fread(mlp_out, 4, 10, f) != 10) {
		snprintf(w->msg, sizeof(w->msg), "cannot read %.200s", path);
		w->failures++;
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	int64_t shape[2] = { 1, 784 };
	struct acc_tensor t = tensor("input", "FP32", shape, 2, mlp_in, sizeof(mlp_in));
	for (int i = 0; i < 40; i++) {
		char id[32];
		snprintf(id, sizeof(id), "w%d-%d", w->id, i);
		struct acc_infer_request rq = { .model = "mlp", .id = id, .n_inputs = 1, .inputs = &t };
		struct acc_infer_result *r;
		struct acc_status st = { 0 };
		if (acc_client_infer(w->c, &rq, &r, &st) < 0) {
			snprintf(w->msg, sizeof(w->msg), "%s: %s: %s", id, acc_code_name(st.code), st.message);
			acc_status_clear(&st);
			w->failures++;
			continue;
		}
		const struct acc_tensor *y = acc_infer_result_output(r, "probabilities");
		if (!y || y->bytes != 40 || strcmp(r->id, id) || y->shape[0] != 1) {
			snprintf(w->msg, sizeof(w->msg), "%s: bad reply", id);
			w->failures++;
		} else {
			const float *v = y->data;
			for (int j = 0; j < 10; j++)
				if (fabsf(v[j] - mlp_out[j]) > 1e-5f + 1e-4f * fabsf(mlp_out[j])) {
					snprintf(w->msg, sizeof(w->msg), "%s: probabilities[%d] %g != %g", id, j,
						 v[j], mlp_out[j]);
					w->failures++;
					break;
				}
		}
		acc_infer_result_free(r);
	}
	return NULL;
}

/* Eight threads on one client, every reply matched to its request (dynamic batching on). */
static void test_concurrent(void **state)
{
	struct conn *k = *state;
	enum { N = 8 };
	struct worker w[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){ .c = k->c, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		if (w[i].failures)
			fprintf(stderr, "worker %d: %d failures, last: %s\n", i, w[i].failures, w[i].msg);
		failures += w[i].failures;
	}
	assert_int_equal(failures, 0);
}

/* --- Shutdown -------------------------------------------------------------------------------------- */

/* SIGTERM: the daemon exits 0 within a few seconds and removes its socket. */
static void test_sigterm(void **state)
{
	(void)state;
	acc_client_close(tcp.c);
	acc_client_close(uds.c);
	tcp.c = uds.c = NULL;
	int status = 0;
	if (harness_stop(&H, SIGTERM, 10000, &status) < 0)
		fail_msg("acceld still runs 10 s after SIGTERM");
	if (!WIFEXITED(status))
		fail_msg("acceld died of signal %d", WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A test run once per transport, named after it. */
#define BOTH(f) { #f " (tcp)", f, NULL, NULL, &tcp }, { #f " (unix)", f, NULL, NULL, &uds }

int main(void)
{
	int rc = harness_start(&H);
	if (rc == HARNESS_SKIP) {
		harness_cleanup(&H);
		return 77;
	}
	if (rc < 0) {
		harness_cleanup(&H);
		return 1;
	}
	json_error_t je;
	expected = json_load_file(H.expected, 0, &je);
	tcp.addr = H.tcp_addr;
	uds.addr = H.unix_addr;
	struct acc_status st = { 0 };
	if (!expected || acc_client_connect(tcp.addr, &tcp.c, &st) < 0 ||
	    acc_client_connect(uds.addr, &uds.c, &st) < 0) {
		fprintf(stderr, "rpc.test: set-up failed: %s\n", expected ? st.message : je.text);
		harness_cleanup(&H);
		return 1;
	}
	acc_client_set_timeout(tcp.c, 30000);
	acc_client_set_timeout(uds.c, 30000);

	const struct CMUnitTest tests[] = {
		BOTH(test_server),
		BOTH(test_model_ready),
		BOTH(test_model_metadata),
		BOTH(test_model_config),
		BOTH(test_infer_tiny),
		BOTH(test_infer_dtypes),
		BOTH(test_infer_outputs),
		BOTH(test_infer_typed),
		BOTH(test_infer_errors),
		BOTH(test_wire_junk),
		BOTH(test_repository_index),
		BOTH(test_load_unload),
		BOTH(test_statistics),
		BOTH(test_concurrent),
		BOTH(test_cancelled_calls),
		BOTH(test_killed_clients),
		cmocka_unit_test(test_sigterm),
	};
	int failed = cmocka_run_group_tests_name("acceld rpc", tests, NULL, NULL);
	if (failed)
		harness_dump_log(&H, stderr, 80);
	acc_client_close(tcp.c);
	acc_client_close(uds.c);
	json_decref(expected);
	harness_cleanup(&H);
	return failed ? 1 : 0;
}
