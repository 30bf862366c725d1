/* client_test.c - unit tests of the client pieces that need no server: the protobuf-to-JSON
 * conversion, status handling, argument checks, unreachable servers, generated inputs. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "acceld/client.h"
#include "inference.pb-c.h"
#include "pbjson.h"
#include "tensorgen.h"

/* A ModelConfig with scalars, enums, repeated fields, a oneof, a map and a nested message
 * converts to Triton's JSON form. */
static void test_pbjson_model_config(void **state)
{
	(void)state;
	Inference__ModelConfig cfg = INFERENCE__MODEL_CONFIG__INIT;
	cfg.name = "mlp";
	cfg.platform = "onnxruntime_onnx";
	cfg.max_batch_size = 64;
	int64_t dims[2] = { 28, 28 };
	Inference__ModelInput in = INFERENCE__MODEL_INPUT__INIT;
	in.name = "image";
	in.data_type = INFERENCE__DATA_TYPE__TYPE_FP32;
	in.n_dims = 2;
	in.dims = dims;
	Inference__ModelInput *inputs[1] = { &in };
	cfg.n_input = 1;
	cfg.input = inputs;
	Inference__ModelInstanceGroup g = INFERENCE__MODEL_INSTANCE_GROUP__INIT;
	g.kind = INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU;
	g.count = 2;
	Inference__ModelInstanceGroup *groups[1] = { &g };
	cfg.n_instance_group = 1;
	cfg.instance_group = groups;
	Inference__ModelDynamicBatching db = INFERENCE__MODEL_DYNAMIC_BATCHING__INIT;
	int32_t pref[2] = { 4, 8 };
	db.n_preferred_batch_size = 2;
	db.preferred_batch_size = pref;
	db.max_queue_delay_microseconds = 100;
	cfg.scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING;
	cfg.dynamic_batching = &db;
	Inference__ModelParameter pv = INFERENCE__MODEL_PARAMETER__INIT;
	pv.string_value = "1";
	Inference__ModelConfig__ParametersEntry pe = INFERENCE__MODEL_CONFIG__PARAMETERS_ENTRY__INIT;
	pe.key = "threads";
	pe.value = &pv;
	Inference__ModelConfig__ParametersEntry *params[1] = { &pe };
	cfg.n_parameters = 1;
	cfg.parameters = params;

	json_t *j = pbjson_from_message(&cfg.base);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "mlp");
	assert_int_equal(json_integer_value(json_object_get(j, "max_batch_size")), 64);
	json_t *i0 = json_array_get(json_object_get(j, "input"), 0);
	assert_string_equal(json_string_value(json_object_get(i0, "data_type")), "TYPE_FP32");
	assert_string_equal(json_string_value(json_object_get(i0, "format")), "FORMAT_NONE");
	assert_int_equal(json_array_size(json_object_get(i0, "dims")), 2);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(i0, "dims"), 1)), 28);
	assert_null(json_object_get(i0, "reshape")); /* unset message: absent */
	json_t *g0 = json_array_get(json_object_get(j, "instance_group"), 0);
	assert_string_equal(json_string_value(json_object_get(g0, "kind")), "KIND_CPU");
	assert_int_equal(json_integer_value(json_object_get(g0, "count")), 2);
	json_t *d = json_object_get(j, "dynamic_batching");
	assert_non_null(d);
	assert_int_equal(json_integer_value(json_object_get(d, "max_queue_delay_microseconds")), 100);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(d, "preferred_batch_size"), 1)), 8);
	assert_true(json_is_object(json_object_get(d, "priority_queue_policy"))); /* empty map */
	json_t *p = json_object_get(j, "parameters");
	assert_true(json_is_object(p));
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "threads"), "string_value")), "1");
	assert_true(json_is_array(json_object_get(j, "output")));
	assert_int_equal(json_array_size(json_object_get(j, "output")), 0);
	json_decref(j);

	/* The oneof unselected: no dynamic_batching key at all. */
	cfg.scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE__NOT_SET;
	j = pbjson_from_message(&cfg.base);
	assert_null(json_object_get(j, "dynamic_batching"));
	json_decref(j);
}

/* Bytes print as base64 and map keys of integer type as decimal strings. */
static void test_pbjson_bytes_and_int_keys(void **state)
{
	(void)state;
	Inference__ModelRepositoryParameter rp = INFERENCE__MODEL_REPOSITORY_PARAMETER__INIT;
	uint8_t raw[4] = { 'a', 'b', 'c', 'd' };
	rp.parameter_choice_case = INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_BYTES_PARAM;
	rp.bytes_param.len = 4;
	rp.bytes_param.data = raw;
	json_t *j = pbjson_from_message(&rp.base);
	assert_string_equal(json_string_value(json_object_get(j, "bytes_param")), "YWJjZA==");
	assert_null(json_object_get(j, "string_param"));
	json_decref(j);

	Inference__ModelDynamicBatching db = INFERENCE__MODEL_DYNAMIC_BATCHING__INIT;
	Inference__ModelQueuePolicy qp = INFERENCE__MODEL_QUEUE_POLICY__INIT;
	qp.max_queue_size = 5;
	Inference__ModelDynamicBatching__PriorityQueuePolicyEntry e =
		INFERENCE__MODEL_DYNAMIC_BATCHING__PRIORITY_QUEUE_POLICY_ENTRY__INIT;
	e.key = 2;
	e.value = &qp;
	Inference__ModelDynamicBatching__PriorityQueuePolicyEntry *ep[1] = { &e };
	db.n_priority_queue_policy = 1;
	db.priority_queue_policy = ep;
	j = pbjson_from_message(&db.base);
	json_t *m = json_object_get(j, "priority_queue_policy");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "2"), "max_queue_size")), 5);
	json_decref(j);
}

/* Status codes have names and clear back to OK. */
static void test_status(void **state)
{
	(void)state;
	assert_string_equal(acc_code_name(ACC_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(acc_code_name(ACC_UNAUTHENTICATED), "UNAUTHENTICATED");
	assert_string_equal(acc_code_name(99), "UNKNOWN_CODE");
	assert_string_equal(acc_code_name(-1), "UNKNOWN_CODE");
	struct acc_status st = { 0 };
	struct acc_client *c = (struct acc_client *)1;
	assert_int_equal(acc_client_connect("", &c, &st), -EINVAL);
	assert_null(c);
	assert_int_equal(st.code, ACC_INVALID_ARGUMENT);
	assert_non_null(st.message);
	acc_status_clear(&st);
	assert_null(st.message);
	assert_int_equal(st.code, 0);
	acc_status_clear(NULL);
	assert_int_equal(acc_datatype_size("FP32"), 4);
	assert_int_equal(acc_datatype_size("BOOL"), 1);
	assert_int_equal(acc_datatype_size("INT64"), 8);
	assert_int_equal(acc_datatype_size("BF16"), 2);
	assert_int_equal(acc_datatype_size("BYTES"), 0);
	assert_int_equal(acc_datatype_size("FP33"), 0);
	assert_int_equal(acc_datatype_size(NULL), 0);
}

/* Calls to a port nobody listens on fail with UNAVAILABLE, and bad arguments locally. */
static void test_unreachable(void **state)
{
	(void)state;
	struct acc_status st = { 0 };
	struct acc_client *c;
	assert_int_equal(acc_client_connect("127.0.0.1:1", &c, &st), 0);
	acc_client_set_timeout(c, 5000);
	bool live = true;
	assert_int_equal(acc_client_server_live(c, &live, &st), -ECONNREFUSED);
	assert_int_equal(st.code, ACC_UNAVAILABLE);
	assert_non_null(st.message);
	/* A second call on the same status frees the first message (checked by ASan/valgrind). */
	struct acc_model_metadata *md = (struct acc_model_metadata *)1;
	assert_int_equal(acc_client_model_metadata(c, "", NULL, &md, &st), -EINVAL);
	assert_null(md);
	assert_int_equal(st.code, ACC_INVALID_ARGUMENT);
	struct acc_infer_request rq = { 0 };
	struct acc_infer_result *r = (struct acc_infer_result *)1;
	assert_int_equal(acc_client_infer(c, &rq, &r, &st), -EINVAL);
	assert_null(r);
	acc_status_clear(&st);
	acc_client_close(c);

	assert_int_equal(acc_client_connect("unix:/nonexistent/acceld.sock", &c, &st), 0);
	acc_client_set_timeout(c, 5000);
	int serving;
	assert_true(acc_client_health_check(c, "", &serving, &st) < 0);
	assert_int_equal(st.code, ACC_UNAVAILABLE);
	acc_status_clear(&st);
	acc_client_close(c);
}

/* Generated inputs: batch substitution, fill values, refusal of unknown shapes and dtypes. */
static void test_tensorgen(void **state)
{
	(void)state;
	int64_t shape[2] = { -1, 3 };
	struct acc_tensor_metadata md = { "x", "FP32", 2, shape };
	struct acc_tensor t;
	uint64_t rng = 7;
	char *err = NULL;
	assert_int_equal(tensorgen_make(&md, 4, 1, &rng, &t, &err), 0);
	assert_int_equal(t.ndims, 2);
	assert_int_equal(t.shape[0], 4);
	assert_int_equal(t.shape[1], 3);
	assert_int_equal(t.bytes, 48);
	for (int i = 0; i < 12; i++)
		assert_true(((const float *)t.data)[i] == 1.0f);
	free((void *)t.shape);
	free((void *)t.data);

	md.datatype = "INT64";
	assert_int_equal(tensorgen_make(&md, 2, -1, &rng, &t, &err), 0);
	assert_int_equal(t.bytes, 48);
	for (int i = 0; i < 6; i++) {
		int64_t v = ((const int64_t *)t.data)[i];
		assert_true(v >= 0 && v <= 9);
	}
	free((void *)t.shape);
	free((void *)t.data);

	md.datatype = "FP16";
	assert_int_equal(tensorgen_make(&md, 1, 1, &rng, &t, &err), 0);
	assert_int_equal(((const uint16_t *)t.data)[0], 0x3C00); /* 1.0 in half precision */
	free((void *)t.shape);
	free((void *)t.data);

	md.datatype = "BYTES";
	assert_int_equal(tensorgen_make(&md, 1, 0, &rng, &t, &err), -EINVAL);
	assert_non_null(strstr(err, "BYTES"));
	free(err);
	err = NULL;

	int64_t inner[2] = { 2, -1 };
	struct acc_tensor_metadata md2 = { "y", "FP32", 2, inner };
	assert_int_equal(tensorgen_make(&md2, 1, 0, &rng, &t, &err), -EINVAL);
	assert_non_null(strstr(err, "y"));
	free(err);

	int64_t d[3] = { 2, 3, 4 };
	assert_int_equal(tensorgen_numel(d, 3), 24);
	int64_t neg[2] = { 2, -1 };
	assert_int_equal(tensorgen_numel(neg, 2), -1);
	int64_t huge[2] = { INT64_MAX, 2 };
	assert_int_equal(tensorgen_numel(huge, 2), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pbjson_model_config),
		cmocka_unit_test(test_pbjson_bytes_and_int_keys),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_tensorgen),
	};
	return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
