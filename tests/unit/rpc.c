/* rpc.c (tests) - the protocol codec and the status mapping, without a server. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infer.h"
#include "inference.pb-c.h"
#include "repo.h"
#include "rpc.h"
#include "rpc_codec.h"
#include "rpc_fake.h"
#include "util.h"

/* The bytes of the last message decode() sent: raw inputs must point into them. */
static uint8_t *last_wire;
static size_t last_wire_len;

/* Decode a hand-built message the way the transport does (packed, then unpacked without
 * copying raw contents) into a fresh request for model "echo"; returns the code. */
static int decode(const Inference__ModelInferRequest *msg, struct infer_request **req, char **err)
{
	size_t n = inference__model_infer_request__get_packed_size(msg);
	uint8_t *buf = xmalloc(n + 1);
	inference__model_infer_request__pack(msg, buf);
	Inference__ModelInferRequest *in = rpc_codec_unpack_infer_request(buf, n);
	assert_non_null(in);
	last_wire = buf;
	last_wire_len = n;
	struct model *m;
	assert_int_equal(repo_get(fake_repo(), "echo", NULL, &m, NULL), 0);
	*req = infer_request_new(m);
	model_put(m);
	*err = NULL;
	return rpc_codec_infer_request(in, buf, free, *req, err);
}

/* Expect decoding to fail with -EINVAL and a message containing want. */
static void expect_invalid(const Inference__ModelInferRequest *msg, const char *want)
{
	struct infer_request *req;
	char *err;
	assert_int_equal(decode(msg, &req, &err), -EINVAL);
	assert_non_null(err);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
	free(err);
	infer_request_free(req);
}

/* An input tensor message. */
static void input(Inference__ModelInferRequest__InferInputTensor *t, const char *name,
		  const char *dt, int64_t *shape, size_t nshape, Inference__InferTensorContents *c)
{
	inference__model_infer_request__infer_input_tensor__init(t);
	t->name = (char *)name;
	t->datatype = (char *)dt;
	t->shape = shape;
	t->n_shape = nshape;
	t->contents = c;
}

/* The mapping of -errno to gRPC status codes. */
static void test_status_from_errno(void **state)
{
	assert_int_equal(rpc_status_from_errno(0), 0);
	assert_int_equal(rpc_status_from_errno(-ENOENT), 5);
	assert_int_equal(rpc_status_from_errno(-EINVAL), 3);
	assert_int_equal(rpc_status_from_errno(-EAGAIN), 14);
	assert_int_equal(rpc_status_from_errno(-EBUSY), 8);
	assert_int_equal(rpc_status_from_errno(-ENOMEM), 8);
	assert_int_equal(rpc_status_from_errno(-ETIMEDOUT), 4);
	assert_int_equal(rpc_status_from_errno(-ECANCELED), 1);
	assert_int_equal(rpc_status_from_errno(-ENOTSUP), 12);
	assert_int_equal(rpc_status_from_errno(-EIO), 13);
	assert_int_equal(rpc_status_from_errno(-EPERM), 13);
}

/* Typed contents of every datatype land in one buffer in the element layout. */
static void test_typed_contents(void **state)
{
	float f32[] = { 1.5f, -2.0f };
	double f64[] = { 3.25 };
	int32_t i8[] = { -128, 0, 127 }, i16[] = { -32768, 7 }, i32[] = { -5, 1 << 30 };
	uint32_t u8[] = { 0, 255 }, u16[] = { 65535 }, u32[] = { 4000000000u };
	int64_t i64[] = { -(INT64_C(1) << 40) };
	uint64_t u64[] = { UINT64_MAX };
	protobuf_c_boolean bl[] = { 1, 0, 1 };
	ProtobufCBinaryData by[] = { { 2, (uint8_t *)"ab" }, { 0, NULL } };
	int64_t s2[] = { 2 }, s3[] = { 3 }, s1[] = { 1 }, s12[] = { 1, 2 };

	Inference__InferTensorContents c[11];
	for (int i = 0; i < 11; i++)
		inference__infer_tensor_contents__init(&c[i]);
	c[0].fp32_contents = f32, c[0].n_fp32_contents = 2;
	c[1].fp64_contents = f64, c[1].n_fp64_contents = 1;
	c[2].int_contents = i8, c[2].n_int_contents = 3;
	c[3].int_contents = i16, c[3].n_int_contents = 2;
	c[4].int_contents = i32, c[4].n_int_contents = 2;
	c[5].uint_contents = u8, c[5].n_uint_contents = 2;
	c[6].uint_contents = u16, c[6].n_uint_contents = 1;
	c[7].uint_contents = u32, c[7].n_uint_contents = 1;
	c[8].int64_contents = i64, c[8].n_int64_contents = 1;
	c[9].uint64_contents = u64, c[9].n_uint64_contents = 1;
	c[10].bool_contents = bl, c[10].n_bool_contents = 3;
	Inference__InferTensorContents cb = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	cb.bytes_contents = by, cb.n_bytes_contents = 2;

	Inference__ModelInferRequest__InferInputTensor t[12], *tp[12];
	input(&t[0], "f32", "FP32", s2, 1, &c[0]);
	input(&t[1], "f64", "FP64", s1, 1, &c[1]);
	input(&t[2], "i8", "INT8", s3, 1, &c[2]);
	input(&t[3], "i16", "INT16", s2, 1, &c[3]);
	input(&t[4], "i32", "INT32", s12, 2, &c[4]);
	input(&t[5], "u8", "UINT8", s2, 1, &c[5]);
	input(&t[6], "u16", "UINT16", s1, 1, &c[6]);
	input(&t[7], "u32", "UINT32", s1, 1, &c[7]);
	input(&t[8], "i64", "INT64", s1, 1, &c[8]);
	input(&t[9], "u64", "UINT64", s1, 1, &c[9]);
	input(&t[10], "b", "BOOL", s3, 1, &c[10]);
	input(&t[11], "s", "BYTES", s2, 1, &cb);
	for (int i = 0; i < 12; i++)
		tp[i] = &t[i];
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.model_name = (char *)"echo";
	m.inputs = tp;
	m.n_inputs = 12;

	struct infer_request *req;
	char *err;
	assert_int_equal(decode(&m, &req, &err), 0);
	assert_null(err);
	assert_int_equal(req->n_inputs, 12);
	struct infer_tensor *in = req->inputs;
	assert_string_equal(in[0].name, "f32");
	assert_int_equal(in[0].dtype, DT_FP32);
	assert_int_equal(in[0].bytes, 8);
	assert_memory_equal(in[0].data, f32, 8);
	assert_memory_equal(in[1].data, f64, 8);
	assert_int_equal(in[2].bytes, 3);
	assert_memory_equal(in[2].data, ((int8_t[]){ -128, 0, 127 }), 3);
	assert_memory_equal(in[3].data, ((int16_t[]){ -32768, 7 }), 4);
	assert_int_equal(in[4].ndims, 2);
	assert_int_equal(in[4].dims[1], 2);
	assert_memory_equal(in[4].data, i32, 8);
	assert_memory_equal(in[5].data, ((uint8_t[]){ 0, 255 }), 2);
	assert_memory_equal(in[6].data, ((uint16_t[]){ 65535 }), 2);
	assert_memory_equal(in[7].data, u32, 4);
	assert_memory_equal(in[8].data, i64, 8);
	assert_memory_equal(in[9].data, u64, 8);
	assert_memory_equal(in[10].data, ((uint8_t[]){ 1, 0, 1 }), 3);
	assert_int_equal(in[11].dtype, DT_BYTES);
	assert_int_equal(in[11].bytes, 4 + 2 + 4);
	assert_memory_equal(in[11].data, ((uint8_t[]){ 2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0 }), 10);
	infer_request_free(req);
	assert_int_equal(fake_requests_alive(), 0);
}

/* Raw contents are used in place (no copy), one per input, in order. */
static void test_raw_contents(void **state)
{
	int64_t s[] = { 1, 4 };
	Inference__ModelInferRequest__InferInputTensor t[2], *tp[2] = { &t[0], &t[1] };
	input(&t[0], "INPUT0", "FP32", s, 2, NULL);
	input(&t[1], "AUX", "FP16", s, 1, NULL);
	uint8_t a[16] = { 1, 2, 3 }, b[2] = { 9, 8 };
	ProtobufCBinaryData raw[2] = { { 16, a }, { 2, b } };
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.model_name = (char *)"echo";
	m.inputs = tp;
	m.n_inputs = 2;
	m.raw_input_contents = raw;
	m.n_raw_input_contents = 2;

	struct infer_request *req;
	char *err;
	assert_int_equal(decode(&m, &req, &err), 0);
	for (int i = 0; i < 2; i++) { /* in place: inside the received bytes */
		const uint8_t *d = req->inputs[i].data;
		assert_true(d >= last_wire && d + req->inputs[i].bytes <= last_wire + last_wire_len);
	}
	assert_int_equal(req->inputs[0].bytes, 16);
	assert_memory_equal(req->inputs[0].data, a, 16);
	assert_int_equal(req->inputs[1].dtype, DT_FP16);
	assert_memory_equal(req->inputs[1].data, b, 2);
	assert_int_equal(infer_validate(req, &err), -EINVAL); /* echo has one input */
	free(err);
	infer_request_free(req);
}

/* The zero-copy decoder agrees with protobuf-c and rejects broken framing. */
static void test_unpack_framing(void **state)
{
	/* model_name "m", raw 'ab', unknown field 15 (varint), raw '' , id "x" */
	static const uint8_t ok[] = { 0x0a, 1, 'm', 0x3a, 2, 'a', 'b', 0x78, 0x96, 0x01, 0x3a, 0, 0x1a, 1, 'x' };
	Inference__ModelInferRequest *m = rpc_codec_unpack_infer_request(ok, sizeof(ok));
	assert_non_null(m);
	assert_string_equal(m->model_name, "m");
	assert_string_equal(m->id, "x");
	assert_int_equal(m->n_raw_input_contents, 2);
	assert_ptr_equal(m->raw_input_contents[0].data, ok + 5);
	assert_int_equal(m->raw_input_contents[0].len, 2);
	assert_int_equal(m->raw_input_contents[1].len, 0);
	rpc_codec_free_infer_request(m);
	static const uint8_t *bad[] = {
		(const uint8_t *)"\x3a\x05" "ab",               /* length past the end */
		(const uint8_t *)"\x38\x01",                   /* field 7 as a varint */
		(const uint8_t *)"\x0a\x01",                   /* truncated string */
		(const uint8_t *)"\x0b\x0c",                   /* a group */
		(const uint8_t *)"\x00\x01",                   /* field number 0 */
		(const uint8_t *)"\x78\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", /* 11-byte varint */
	};
	static const size_t bad_len[] = { 4, 2, 2, 2, 2, 12 };
	for (size_t i = 0; i < ACC_ARRAY_LEN(bad); i++)
		if (rpc_codec_unpack_infer_request(bad[i], bad_len[i]))
			fail_msg("malformed input %zu accepted", i);
	assert_non_null(m = rpc_codec_unpack_infer_request(ok, 0)); /* empty = all defaults */
	rpc_codec_free_infer_request(m);
}

/* Raw and typed contents cannot be mixed; raw needs one entry per input. */
static void test_mixed_rejected(void **state)
{
	int64_t s[] = { 1 };
	float f[] = { 1 };
	Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	c.fp32_contents = f, c.n_fp32_contents = 1;
	Inference__ModelInferRequest__InferInputTensor t[2], *tp[2] = { &t[0], &t[1] };
	input(&t[0], "A", "FP32", s, 1, NULL);
	input(&t[1], "B", "FP32", s, 1, &c);
	uint8_t four[4] = { 0 };
	ProtobufCBinaryData raw[2] = { { 4, four }, { 4, four } };
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.inputs = tp;
	m.n_inputs = 2;
	m.raw_input_contents = raw;
	m.n_raw_input_contents = 2;
	expect_invalid(&m, "input 'B': contents must not be given when raw_input_contents is used");
	m.n_raw_input_contents = 1;
	expect_invalid(&m, "expected 2 raw_input_contents entries, one per input, got 1");
}

/* Malformed inputs give clear messages naming the tensor. */
static void test_input_errors(void **state)
{
	int64_t s23[] = { 2, 3 }, neg[] = { -1 }, nine[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, s1[] = { 1 };
	float f5[5] = { 0 };
	int32_t big[] = { 300 };
	Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	Inference__ModelInferRequest__InferInputTensor t, *tp = &t;
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.inputs = &tp;
	m.n_inputs = 1;

	input(&t, "x", "FP33", s1, 1, &c);
	expect_invalid(&m, "input 'x': unknown datatype 'FP33'");
	input(&t, "x", "FP16", s1, 1, &c);
	expect_invalid(&m, "input 'x': datatype FP16 has no typed contents; send it in raw_input_contents");
	c.fp32_contents = f5, c.n_fp32_contents = 5;
	input(&t, "x", "FP32", s23, 2, &c);
	expect_invalid(&m, "input 'x': shape needs 6 elements, fp32_contents has 5");
	input(&t, "x", "INT32", s23, 2, &c);
	expect_invalid(&m, "input 'x': shape needs 6 elements, int_contents has 0");
	Inference__InferTensorContents ci = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	ci.int_contents = big, ci.n_int_contents = 1;
	input(&t, "x", "INT8", s1, 1, &ci);
	expect_invalid(&m, "input 'x': element 0 = 300 is out of range for INT8");
	input(&t, "x", "FP32", neg, 1, &c);
	expect_invalid(&m, "input 'x': invalid shape [-1]");
	input(&t, "x", "FP32", nine, 9, &c);
	expect_invalid(&m, "input 'x': 9 dimensions, at most 8 are supported");
	input(&t, "x", "FP32", s23, 2, NULL);
	expect_invalid(&m, "input 'x': no data (set contents or raw_input_contents) for shape [2,3]");
	input(&t, "", "FP32", s1, 1, NULL);
	expect_invalid(&m, "input 0 has no name");
}

/* Requested outputs, id and the priority/timeout parameters. */
static void test_params_outputs(void **state)
{
	Inference__ModelInferRequest__InferRequestedOutputTensor o[2], *op[2] = { &o[0], &o[1] };
	inference__model_infer_request__infer_requested_output_tensor__init(&o[0]);
	inference__model_infer_request__infer_requested_output_tensor__init(&o[1]);
	o[0].name = (char *)"OUTPUT1";
	o[1].name = (char *)"OUTPUT0";
	Inference__InferParameter pv[3];
	for (int i = 0; i < 3; i++)
		inference__infer_parameter__init(&pv[i]);
	pv[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	pv[0].int64_param = 2;
	pv[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
	pv[1].uint64_param = 1500;
	pv[2].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
	pv[2].string_param = (char *)"whatever";
	Inference__ModelInferRequest__ParametersEntry pe[3], *pp[3] = { &pe[0], &pe[1], &pe[2] };
	const char *keys[] = { "priority", "timeout", "custom" };
	for (int i = 0; i < 3; i++) {
		inference__model_infer_request__parameters_entry__init(&pe[i]);
		pe[i].key = (char *)keys[i];
		pe[i].value = &pv[i];
	}
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.id = (char *)"req-7";
	m.outputs = op;
	m.n_outputs = 2;
	m.parameters = pp;
	m.n_parameters = 3;

	struct infer_request *req;
	char *err;
	assert_int_equal(decode(&m, &req, &err), 0);
	assert_string_equal(req->id, "req-7");
	assert_int_equal(req->n_requested, 2);
	assert_string_equal(req->requested[0], "OUTPUT1");
	assert_string_equal(req->requested[1], "OUTPUT0");
	assert_int_equal(req->priority, 2);
	assert_int_equal(req->timeout_us, 1500);
	infer_request_free(req);

	pv[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
	pv[0].string_param = (char *)"high";
	expect_invalid(&m, "parameter 'priority' must be an integer");
	pv[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	pv[0].int64_param = 2; /* the oneof members share storage */
	pv[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	pv[1].int64_param = -1;
	expect_invalid(&m, "parameter 'timeout' must be an integer");
	pv[1].int64_param = 10;
	o[1].name = (char *)"OUTPUT1";
	expect_invalid(&m, "output 'OUTPUT1' requested twice");
	o[1].name = (char *)"";
	expect_invalid(&m, "requested output 1 has no name");
}

/* The response wire decodes with protobuf-c to what the request holds; tensors are borrowed. */
static void test_response_roundtrip(void **state)
{
	struct model *m;
	assert_int_equal(repo_get(fake_repo(), "echo", NULL, &m, NULL), 0);
	struct infer_request *req = infer_request_new(m);
	model_put(m);
	req->id = xstrdup("abc");
	req->n_results = 3;
	req->results = xcalloc(3, sizeof(*req->results));
	float f[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	int64_t l[200];
	for (int i = 0; i < 200; i++)
		l[i] = i * 1000003;
	struct infer_tensor *r = req->results;
	r[0] = (struct infer_tensor){ xstrdup("OUTPUT0"), DT_FP32, 2, { 2, 4 }, xmalloc(32), 32 };
	memcpy(r[0].data, f, 32);
	r[1] = (struct infer_tensor){ xstrdup("L"), DT_INT64, 1, { 200 }, xmalloc(1600), 1600 };
	memcpy(r[1].data, l, 1600);
	r[2] = (struct infer_tensor){ xstrdup("EMPTY"), DT_UINT8, 2, { 0, 3 }, NULL, 0 };

	struct rpc_wire w;
	char *err = NULL;
	assert_int_equal(rpc_codec_infer_response(req, &w, &err), 0);
	uint8_t *flat = xmalloc(w.total);
	size_t o = 0;
	int borrowed = 0;
	for (size_t i = 0; i < w.n; i++) {
		memcpy(flat + o, w.parts[i].data, w.parts[i].len);
		o += w.parts[i].len;
		if (w.parts[i].borrowed) {
			borrowed++;
			assert_true(w.parts[i].data == r[0].data || w.parts[i].data == r[1].data);
		}
	}
	assert_int_equal(o, w.total);
	assert_int_equal(borrowed, 2);
	Inference__ModelInferResponse *resp = inference__model_infer_response__unpack(NULL, o, flat);
	assert_non_null(resp);
	assert_string_equal(resp->model_name, "echo");
	assert_string_equal(resp->model_version, "1");
	assert_string_equal(resp->id, "abc");
	assert_int_equal(resp->n_outputs, 3);
	assert_int_equal(resp->n_raw_output_contents, 3);
	assert_string_equal(resp->outputs[0]->name, "OUTPUT0");
	assert_string_equal(resp->outputs[0]->datatype, "FP32");
	assert_int_equal(resp->outputs[0]->n_shape, 2);
	assert_int_equal(resp->outputs[0]->shape[1], 4);
	assert_string_equal(resp->outputs[1]->datatype, "INT64");
	assert_int_equal(resp->outputs[1]->shape[0], 200);
	assert_int_equal(resp->outputs[2]->shape[0], 0);
	assert_int_equal(resp->raw_output_contents[0].len, 32);
	assert_memory_equal(resp->raw_output_contents[0].data, f, 32);
	assert_int_equal(resp->raw_output_contents[1].len, 1600); /* a 2-byte length varint */
	assert_memory_equal(resp->raw_output_contents[1].data, l, 1600);
	assert_int_equal(resp->raw_output_contents[2].len, 0);
	inference__model_infer_response__free_unpacked(resp, NULL);
	free(flat);
	rpc_codec_wire_free(&w);

	r[2].dtype = DT_INVALID;
	assert_int_equal(rpc_codec_infer_response(req, &w, &err), -EINVAL);
	assert_non_null(strstr(err, "output 2 ('EMPTY') is malformed"));
	free(err);
	infer_request_free(req);
}

/* Triton's JSON configuration becomes the ModelConfig message with Triton's field numbers. */
static void test_model_config(void **state)
{
	struct model *m;
	assert_int_equal(repo_get(fake_repo(), "echo", NULL, &m, NULL), 0);
	Inference__ModelConfig *c;
	char *err = NULL;
	assert_int_equal(rpc_codec_model_config(model_config(m), &c, &err), 0);
	model_put(m);
	assert_string_equal(c->name, "echo");
	assert_string_equal(c->platform, "onnxruntime_onnx");
	assert_string_equal(c->backend, "onnxruntime");
	assert_int_equal(c->max_batch_size, 8);
	assert_int_equal(c->n_input, 1);
	assert_string_equal(c->input[0]->name, "INPUT0");
	assert_int_equal(c->input[0]->data_type, INFERENCE__DATA_TYPE__TYPE_FP32);
	assert_int_equal(c->input[0]->n_dims, 1);
	assert_int_equal(c->input[0]->dims[0], 4);
	assert_int_equal(c->n_output, 2);
	assert_int_equal(c->output[1]->dims[0], 4); /* given as the string "4" */
	assert_int_equal(c->version_policy->policy_choice_case,
			 INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST);
	assert_int_equal(c->version_policy->latest->num_versions, 1);
	assert_int_equal(c->n_instance_group, 1);
	assert_int_equal(c->instance_group[0]->kind, INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU);
	assert_int_equal(c->instance_group[0]->count, 2);
	assert_int_equal(c->scheduling_choice_case, INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING);
	Inference__ModelDynamicBatching *db = c->dynamic_batching;
	assert_int_equal(db->n_preferred_batch_size, 2);
	assert_int_equal(db->preferred_batch_size[1], 8);
	assert_int_equal(db->max_queue_delay_microseconds, 100);
	assert_int_equal(db->priority_levels, 2);
	assert_int_equal(db->default_queue_policy->max_queue_size, 16);
	assert_int_equal(c->n_parameters, 1);
	assert_string_equal(c->parameters[0]->key, "threads");
	assert_string_equal(c->parameters[0]->value->string_value, "2");

	/* Field numbers: a known prefix of the wire form (name = 1, platform = 2). */
	size_t n = inference__model_config__get_packed_size(c);
	uint8_t *buf = xmalloc(n);
	inference__model_config__pack(c, buf);
	assert_int_equal(buf[0], (1 << 3) | 2);
	assert_int_equal(buf[1], 4);
	assert_memory_equal(buf + 2, "echo", 4);
	assert_int_equal(buf[6], (2 << 3) | 2);
	Inference__ModelConfig *back = inference__model_config__unpack(NULL, n, buf);
	assert_non_null(back);
	assert_int_equal(back->dynamic_batching->max_queue_delay_microseconds, 100);
	inference__model_config__free_unpacked(back, NULL);
	free(buf);
	inference__model_config__free_unpacked(c, NULL);
}

/* Convert text; expect failure naming the path in want (or success when want is NULL). */
static void json_case(const char *text, const char *want)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	Inference__ModelConfig *c = NULL;
	char *err = NULL;
	int rc = rpc_codec_model_config(j, &c, &err);
	json_decref(j);
	if (!want) {
		assert_int_equal(rc, 0);
		inference__model_config__free_unpacked(c, NULL);
		return;
	}
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	if (!err || !strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err ? err : "(none)", want);
	free(err);
}

/* Wrong JSON types are reported with their path; partial messages are freed. */
static void test_model_config_errors(void **state)
{
	json_case("{\"name\":\"a\",\"max_batch_size\":\"x\"}", "max_batch_size: wrong type");
	json_case("{\"max_batch_size\":4294967296}", "max_batch_size: wrong type");
	json_case("{\"input\":[{\"name\":\"a\",\"dims\":[1]},{\"data_type\":\"TYPE_NOPE\"}]}",
		  "input[1].data_type: 'TYPE_NOPE' is not a inference.DataType");
	json_case("{\"input\":{\"name\":\"a\"}}", "input: expected an array");
	json_case("{\"output\":[{\"dims\":[1,\"-2\",\"q\"]}]}", "output[0].dims[2]: wrong type");
	json_case("{\"version_policy\":{\"latest\":{},\"all\":{}}}", "only one of a set of alternatives");
	json_case("{\"instance_group\":[{\"count\":-1,\"gpus\":[0,1],\"kind\":2}]}", NULL);
	json_case("{\"dynamic_batching\":{\"priority_queue_policy\":{\"1\":{\"max_queue_size\":3}}}}", NULL);
	json_case("{\"dynamic_batching\":{\"priority_queue_policy\":{\"x\":{}}}}",
		  "dynamic_batching.priority_queue_policy.x: wrong type");
	json_case("{\"name\":null,\"unknown\":[1,2],\"max_batch_size\":2.0}", NULL);
	json_case("[]", "expected an object");
}

/* Statistics become one ModelStatistics per model with every duration filled. */
static void test_stats(void **state)
{
	struct model_stats *s;
	size_t n;
	assert_int_equal(repo_stats(fake_repo(), "echo", "", &s, &n, NULL), 0);
	Inference__ModelStatisticsResponse *r = rpc_codec_stats(s, n);
	assert_int_equal(r->n_model_stats, 1);
	Inference__ModelStatistics *m = r->model_stats[0];
	assert_string_equal(m->name, "echo");
	assert_string_equal(m->version, "1");
	assert_int_equal(m->inference_count, 10);
	assert_int_equal(m->execution_count, 5);
	assert_int_equal(m->inference_stats->success->count, 5);
	assert_int_equal(m->inference_stats->success->ns, 5000);
	assert_int_equal(m->inference_stats->queue->ns, 700);
	assert_int_equal(m->inference_stats->fail->count, 0);
	assert_int_equal(m->n_batch_stats, 1);
	assert_int_equal(m->batch_stats[0]->batch_size, 2);
	assert_int_equal(m->batch_stats[0]->compute_infer->ns, 3000);
	size_t len = inference__model_statistics_response__get_packed_size(r);
	assert_true(len > 20);
	inference__model_statistics_response__free_unpacked(r, NULL);
	repo_stats_free(s, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_from_errno),
		cmocka_unit_test(test_typed_contents),
		cmocka_unit_test(test_raw_contents),
		cmocka_unit_test(test_unpack_framing),
		cmocka_unit_test(test_mixed_rejected),
		cmocka_unit_test(test_input_errors),
		cmocka_unit_test(test_params_outputs),
		cmocka_unit_test(test_response_roundtrip),
		cmocka_unit_test(test_model_config),
		cmocka_unit_test(test_model_config_errors),
		cmocka_unit_test(test_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
