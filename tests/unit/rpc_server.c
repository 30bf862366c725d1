/* rpc_server.c (tests) - the transport over real gRPC connections (Unix socket and TCP),
 * with the in-memory repository of rpc_fake.c behind it and a gRPC core client in front. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "health.pb-c.h"
#include "inference.pb-c.h"
#include "rpc.h"
#include "rpc_fake.h"
#include "util.h"

#define SVC "/inference.GRPCInferenceService/"

static char dir[64];
static char sock_path[128];
static struct rpc *server;
static grpc_channel *chan;

/* The outcome of one unary call. */
struct result {
	int status;
	char *details;
	uint8_t *body;
	size_t len;
	bool has_body;
};

/* A client channel to target, accepting responses up to 64 MiB. */
static grpc_channel *channel(const char *target)
{
	grpc_arg a = { .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		       .value.integer = 64 << 20 };
	grpc_channel_args args = { 1, &a };
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *c = grpc_channel_create(target, creds, &args);
	grpc_channel_credentials_release(creds);
	return c;
}

/* A started call on cq with the request bytes sent and the response requested; tag = res. */
struct pending {
	grpc_call *call;
	grpc_byte_buffer *send, *recv;
	grpc_metadata_array im, tm;
	grpc_status_code st;
	grpc_slice det;
	struct result res;
};

/* Start a unary call: send req, half-close, ask for response and status. */
static void start(struct pending *p, grpc_channel *ch, grpc_completion_queue *cq, const char *method,
		  const void *req, size_t len, int timeout_ms)
{
	memset(p, 0, sizeof(*p));
	gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
				       gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	grpc_slice m = grpc_slice_from_copied_string(method);
	p->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, dl, NULL);
	grpc_slice_unref(m);
	grpc_slice s = grpc_slice_from_copied_buffer(req, len);
	p->send = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	grpc_metadata_array_init(&p->im);
	grpc_metadata_array_init(&p->tm);
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = p->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &p->im;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &p->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &p->tm;
	ops[5].data.recv_status_on_client.status = &p->st;
	ops[5].data.recv_status_on_client.status_details = &p->det;
	assert_int_equal(grpc_call_start_batch(p->call, ops, 6, p, NULL), GRPC_CALL_OK);
}

/* After the call's tag completed: collect status, details and body; free the call. */
static void collect(struct pending *p)
{
	p->res.status = p->st;
	p->res.details = grpc_slice_to_c_string(p->det);
	if (p->recv) {
		grpc_byte_buffer_reader rd;
		assert_true(grpc_byte_buffer_reader_init(&rd, p->recv));
		grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		p->res.len = GRPC_SLICE_LENGTH(all);
		p->res.body = xmalloc(p->res.len + 1);
		memcpy(p->res.body, GRPC_SLICE_START_PTR(all), p->res.len);
		p->res.has_body = true;
		grpc_slice_unref(all);
		grpc_byte_buffer_destroy(p->recv);
	}
	grpc_byte_buffer_destroy(p->send);
	grpc_slice_unref(p->det);
	grpc_metadata_array_destroy(&p->im);
	grpc_metadata_array_destroy(&p->tm);
	grpc_call_unref(p->call);
}

/* Free a result. */
static void result_free(struct result *r)
{
	gpr_free(r->details);
	free(r->body);
}

/* One unary call with raw request bytes. */
static struct result call_bytes(grpc_channel *ch, const char *method, const void *req, size_t len)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	struct pending p;
	start(&p, ch, cq, method, req, len, 10000);
	grpc_event ev = grpc_completion_queue_pluck(cq, &p, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	assert_int_equal(ev.type, GRPC_OP_COMPLETE);
	collect(&p);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return p.res;
}

/* One unary call with a message; the response is decoded as rdesc (NULL on error status). */
static ProtobufCMessage *call_msg(const char *method, const ProtobufCMessage *req,
				  const ProtobufCMessageDescriptor *rdesc, struct result *res)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = xmalloc(n + 1);
	protobuf_c_message_pack(req, buf);
	*res = call_bytes(chan, method, buf, n);
	free(buf);
	if (res->status != 0)
		return NULL;
	assert_true(res->has_body);
	ProtobufCMessage *m = protobuf_c_message_unpack(rdesc, NULL, res->len, res->body);
	assert_non_null(m);
	return m;
}

/* Expect status code and a details substring. */
static void expect_status(struct result *r, int code, const char *want)
{
	if (r->status != code || (want && !strstr(r->details, want)))
		fail_msg("got status %d '%s', want %d '%s'", r->status, r->details, code, want ? want : "");
	result_free(r);
}

/* Wait (up to 3 s) for every call and request to be released. */
static void wait_idle(void)
{
	fake_drain();
	for (int i = 0; i < 300 && (rpc_live_calls(server) || fake_requests_alive()); i++)
		usleep(10000);
	assert_int_equal(rpc_live_calls(server), 0);
	assert_int_equal(fake_requests_alive(), 0);
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/acceld-rpc.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/acceld.sock", dir);
	char *unix_addr = xasprintf("unix:%s", sock_path);
	const char *listen[] = { unix_addr, "127.0.0.1:0" };
	struct rpc_options opt = { listen, 2, 2, 20u << 20 };
	char *err = NULL;
	int rc = rpc_start(&opt, fake_repo(), &server, &err);
	if (rc < 0)
		fail_msg("rpc_start: %s", err);
	chan = channel(unix_addr);
	free(unix_addr);
	return 0;
}

static int teardown(void **state)
{
	grpc_channel_destroy(chan);
	rpc_stop(server);
	assert_int_equal(access(sock_path, F_OK), -1); /* the socket file is removed */
	rmdir(dir);
	return 0;
}

/* Liveness, readiness, health and server metadata. */
static void test_server_endpoints(void **state)
{
	struct result r;
	Inference__ServerLiveRequest lq = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	Inference__ServerLiveResponse *live = (void *)call_msg(SVC "ServerLive", &lq.base,
		&inference__server_live_response__descriptor, &r);
	assert_non_null(live);
	assert_true(live->live);
	protobuf_c_message_free_unpacked(&live->base, NULL);
	result_free(&r);

	Inference__ServerReadyRequest rq = INFERENCE__SERVER_READY_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckRequest hq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	for (int ready = 0; ready < 2; ready++) {
		fake_set_ready(ready);
		Inference__ServerReadyResponse *rr = (void *)call_msg(SVC "ServerReady", &rq.base,
			&inference__server_ready_response__descriptor, &r);
		assert_int_equal(rr->ready, ready);
		protobuf_c_message_free_unpacked(&rr->base, NULL);
		result_free(&r);
		Grpc__Health__V1__HealthCheckResponse *h = (void *)call_msg("/grpc.health.v1.Health/Check",
			&hq.base, &grpc__health__v1__health_check_response__descriptor, &r);
		assert_int_equal(h->status, ready ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
						  : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
		protobuf_c_message_free_unpacked(&h->base, NULL);
		result_free(&r);
	}
	hq.service = (char *)"inference.GRPCInferenceService";
	Grpc__Health__V1__HealthCheckResponse *h = (void *)call_msg("/grpc.health.v1.Health/Check",
		&hq.base, &grpc__health__v1__health_check_response__descriptor, &r);
	assert_int_equal(h->status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	result_free(&r);
	hq.service = (char *)"other.Service";
	h = (void *)call_msg("/grpc.health.v1.Health/Check", &hq.base,
			     &grpc__health__v1__health_check_response__descriptor, &r);
	assert_int_equal(h->status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	result_free(&r);

	Inference__ServerMetadataRequest mq = INFERENCE__SERVER_METADATA_REQUEST__INIT;
	Inference__ServerMetadataResponse *md = (void *)call_msg(SVC "ServerMetadata", &mq.base,
		&inference__server_metadata_response__descriptor, &r);
	assert_string_equal(md->name, "acceld");
	assert_string_equal(md->version, PACKAGE_VERSION);
	assert_true(md->n_extensions >= 3);
	assert_string_equal(md->extensions[0], "model_repository");
	protobuf_c_message_free_unpacked(&md->base, NULL);
	result_free(&r);

	/* The same service over TCP, and the Unix socket's mode. */
	char *target = xasprintf("127.0.0.1:%d", rpc_port(server, 1));
	assert_int_equal(rpc_port(server, 0), 0);
	assert_true(rpc_port(server, 1) > 0);
	grpc_channel *tcp = channel(target);
	uint8_t empty = 0;
	r = call_bytes(tcp, SVC "ServerLive", &empty, 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.len, 2); /* live = true: tag 0x08, value 1 */
	assert_int_equal(r.body[0], 0x08);
	result_free(&r);
	grpc_channel_destroy(tcp);
	free(target);
	struct stat st;
	assert_int_equal(stat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
}

/* ModelReady, ModelMetadata, ModelConfig, ModelStatistics, RepositoryIndex. */
static void test_model_endpoints(void **state)
{
	struct result r;
	Inference__ModelReadyRequest ready = INFERENCE__MODEL_READY_REQUEST__INIT;
	const char *names[] = { "echo", "loading", "nosuch" };
	for (int i = 0; i < 3; i++) {
		ready.name = (char *)names[i];
		Inference__ModelReadyResponse *rr = (void *)call_msg(SVC "ModelReady", &ready.base,
			&inference__model_ready_response__descriptor, &r);
		assert_int_equal(rr->ready, i == 0);
		protobuf_c_message_free_unpacked(&rr->base, NULL);
		result_free(&r);
	}
	ready.name = (char *)"";
	call_msg(SVC "ModelReady", &ready.base, &inference__model_ready_response__descriptor, &r);
	expect_status(&r, 3, "a model name is required");

	Inference__ModelMetadataRequest mq = INFERENCE__MODEL_METADATA_REQUEST__INIT;
	mq.name = (char *)"echo";
	Inference__ModelMetadataResponse *md = (void *)call_msg(SVC "ModelMetadata", &mq.base,
		&inference__model_metadata_response__descriptor, &r);
	assert_string_equal(md->name, "echo");
	assert_int_equal(md->n_versions, 1);
	assert_string_equal(md->versions[0], "1");
	assert_string_equal(md->platform, "onnxruntime_onnx");
	assert_int_equal(md->n_inputs, 1);
	assert_string_equal(md->inputs[0]->name, "INPUT0");
	assert_string_equal(md->inputs[0]->datatype, "FP32");
	assert_int_equal(md->inputs[0]->n_shape, 2);
	assert_int_equal(md->inputs[0]->shape[0], -1);
	assert_int_equal(md->inputs[0]->shape[1], 4);
	assert_int_equal(md->n_outputs, 2);
	assert_string_equal(md->outputs[1]->name, "OUTPUT1");
	protobuf_c_message_free_unpacked(&md->base, NULL);
	result_free(&r);
	mq.name = (char *)"nosuch";
	call_msg(SVC "ModelMetadata", &mq.base, &inference__model_metadata_response__descriptor, &r);
	expect_status(&r, 5, "unknown model 'nosuch'");
	mq.name = (char *)"loading";
	call_msg(SVC "ModelMetadata", &mq.base, &inference__model_metadata_response__descriptor, &r);
	expect_status(&r, 14, "model 'loading' is not ready (LOADING)");
	mq.name = (char *)"echo";
	mq.version = (char *)"7";
	call_msg(SVC "ModelMetadata", &mq.base, &inference__model_metadata_response__descriptor, &r);
	expect_status(&r, 5, "model 'echo' has no version '7'");

	Inference__ModelConfigRequest cq = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
	cq.name = (char *)"slow";
	Inference__ModelConfigResponse *cr = (void *)call_msg(SVC "ModelConfig", &cq.base,
		&inference__model_config_response__descriptor, &r);
	assert_string_equal(cr->config->name, "slow");
	assert_int_equal(cr->config->max_batch_size, 8);
	assert_int_equal(cr->config->input[0]->data_type, INFERENCE__DATA_TYPE__TYPE_FP32);
	assert_int_equal(cr->config->dynamic_batching->n_preferred_batch_size, 2);
	protobuf_c_message_free_unpacked(&cr->base, NULL);
	result_free(&r);

	Inference__ModelStatisticsRequest sq = INFERENCE__MODEL_STATISTICS_REQUEST__INIT;
	Inference__ModelStatisticsResponse *sr = (void *)call_msg(SVC "ModelStatistics", &sq.base,
		&inference__model_statistics_response__descriptor, &r);
	assert_int_equal(sr->n_model_stats, 4);
	assert_int_equal(sr->model_stats[0]->inference_stats->success->ns, 5000);
	protobuf_c_message_free_unpacked(&sr->base, NULL);
	result_free(&r);
	sq.name = (char *)"nosuch";
	call_msg(SVC "ModelStatistics", &sq.base, &inference__model_statistics_response__descriptor, &r);
	expect_status(&r, 5, "model 'nosuch' is not loaded");

	Inference__RepositoryIndexRequest iq = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
	Inference__RepositoryIndexResponse *ir = (void *)call_msg(SVC "RepositoryIndex", &iq.base,
		&inference__repository_index_response__descriptor, &r);
	assert_int_equal(ir->n_models, 6);
	assert_string_equal(ir->models[5]->name, "broken");
	assert_string_equal(ir->models[5]->state, "UNAVAILABLE");
	assert_string_equal(ir->models[5]->reason, "bad config");
	assert_string_equal(ir->models[0]->state, "READY");
	assert_string_equal(ir->models[0]->version, "1");
	protobuf_c_message_free_unpacked(&ir->base, NULL);
	result_free(&r);
	iq.ready = 1;
	ir = (void *)call_msg(SVC "RepositoryIndex", &iq.base, &inference__repository_index_response__descriptor, &r);
	assert_int_equal(ir->n_models, 4);
	protobuf_c_message_free_unpacked(&ir->base, NULL);
	result_free(&r);
}

/* RepositoryModelLoad/Unload run on the loader thread, with a configuration override. */
static void test_load_unload(void **state)
{
	struct result r;
	Inference__ModelRepositoryParameter pv = INFERENCE__MODEL_REPOSITORY_PARAMETER__INIT;
	pv.parameter_choice_case = INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
	pv.string_param = (char *)"{\"max_batch_size\": 4}";
	Inference__RepositoryModelLoadRequest__ParametersEntry pe =
		INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__PARAMETERS_ENTRY__INIT, *pp = &pe;
	pe.key = (char *)"config";
	pe.value = &pv;
	Inference__RepositoryModelLoadRequest lq = INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
	lq.model_name = (char *)"echo";
	lq.parameters = &pp;
	lq.n_parameters = 1;
	int before = fake_load_count();
	ProtobufCMessage *m = call_msg(SVC "RepositoryModelLoad", &lq.base,
				       &inference__repository_model_load_response__descriptor, &r);
	assert_int_equal(r.status, 0);
	protobuf_c_message_free_unpacked(m, NULL);
	result_free(&r);
	assert_int_equal(fake_load_count(), before + 1);
	assert_string_equal(fake_last_config(), "{\"max_batch_size\": 4}");

	lq.n_parameters = 0;
	lq.model_name = (char *)"missing";
	call_msg(SVC "RepositoryModelLoad", &lq.base, &inference__repository_model_load_response__descriptor, &r);
	expect_status(&r, 5, "load of 'missing' failed: no model directory 'missing'");
	lq.model_name = (char *)"other";
	call_msg(SVC "RepositoryModelLoad", &lq.base, &inference__repository_model_load_response__descriptor, &r);
	expect_status(&r, 3, "config.json: parse error");
	pe.key = (char *)"file:1/model.onnx";
	lq.n_parameters = 1;
	call_msg(SVC "RepositoryModelLoad", &lq.base, &inference__repository_model_load_response__descriptor, &r);
	expect_status(&r, 12, "not supported");

	Inference__RepositoryModelUnloadRequest uq = INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
	uq.model_name = (char *)"echo";
	m = call_msg(SVC "RepositoryModelUnload", &uq.base, &inference__repository_model_unload_response__descriptor, &r);
	assert_int_equal(r.status, 0);
	protobuf_c_message_free_unpacked(m, NULL);
	result_free(&r);
	uq.model_name = (char *)"nosuch";
	call_msg(SVC "RepositoryModelUnload", &uq.base, &inference__repository_model_unload_response__descriptor, &r);
	expect_status(&r, 5, "unload of 'nosuch' failed");
	wait_idle();
}

/* A ModelInferRequest for model with one FP32 input of batch b (typed or raw contents). */
static Inference__ModelInferResponse *infer(const char *model, int b, bool raw, const char *want_out,
					    struct result *r)
{
	float data[4 * 16];
	assert_true(b <= 16);
	for (int i = 0; i < 4 * b; i++)
		data[i] = (float)i + 0.5f;
	int64_t shape[2] = { b, 4 };
	Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	c.fp32_contents = data;
	c.n_fp32_contents = (size_t)(4 * b);
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *tp = &t;
	t.name = (char *)"INPUT0";
	t.datatype = (char *)"FP32";
	t.shape = shape;
	t.n_shape = 2;
	ProtobufCBinaryData rc = { (size_t)(16 * b), (uint8_t *)data };
	Inference__ModelInferRequest__InferRequestedOutputTensor o = INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT, *op = &o;
	o.name = (char *)want_out;
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = (char *)model;
	q.id = (char *)"id-1";
	q.inputs = &tp;
	q.n_inputs = 1;
	if (raw) {
		q.raw_input_contents = &rc;
		q.n_raw_input_contents = 1;
	} else {
		t.contents = &c;
	}
	if (want_out) {
		q.outputs = &op;
		q.n_outputs = 1;
	}
	return (void *)call_msg(SVC "ModelInfer", &q.base, &inference__model_infer_response__descriptor, r);
}

/* ModelInfer end to end: typed and raw inputs, requested outputs, errors as statuses. */
static void test_infer(void **state)
{
	struct result r;
	for (int raw = 0; raw < 2; raw++) {
		Inference__ModelInferResponse *resp = infer("echo", 2, raw, NULL, &r);
		assert_non_null(resp);
		assert_string_equal(resp->model_name, "echo");
		assert_string_equal(resp->model_version, "1");
		assert_string_equal(resp->id, "id-1");
		assert_int_equal(resp->n_outputs, 2);
		assert_int_equal(resp->n_raw_output_contents, 2);
		assert_string_equal(resp->outputs[0]->name, "OUTPUT0");
		assert_string_equal(resp->outputs[0]->datatype, "FP32");
		assert_int_equal(resp->outputs[0]->shape[0], 2);
		assert_int_equal(resp->raw_output_contents[1].len, 32);
		const float *o0 = (const float *)resp->raw_output_contents[0].data;
		const float *o1 = (const float *)resp->raw_output_contents[1].data;
		for (int i = 0; i < 8; i++) {
			assert_true(o0[i] == (float)i + 0.5f);
			assert_true(o1[i] == -((float)i + 0.5f));
		}
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		result_free(&r);
	}
	Inference__ModelInferResponse *resp = infer("echo", 1, true, "OUTPUT1", &r);
	assert_int_equal(resp->n_outputs, 1);
	assert_string_equal(resp->outputs[0]->name, "OUTPUT1");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	result_free(&r);

	infer("echo", 9, false, NULL, &r);
	expect_status(&r, 3, "input 'INPUT0': batch size 9 outside 1..8");
	infer("echo", 1, false, "NOPE", &r);
	expect_status(&r, 3, "model 'echo' has no output named 'NOPE'");
	infer("nosuch", 1, false, NULL, &r);
	expect_status(&r, 5, "unknown model 'nosuch'");
	char *longname = xmalloc(20001);
	memset(longname, 'x', 20000);
	longname[20000] = 0;
	infer(longname, 1, false, NULL, &r); /* the message is cut, and still arrives */
	assert_int_equal(strlen(r.details), 1024);
	expect_status(&r, 5, "unknown model 'xxxx");
	free(longname);
	infer("broken", 1, false, NULL, &r);
	expect_status(&r, 14, "model 'broken' is not ready (UNAVAILABLE: bad config)");
	infer("fail", 1, false, NULL, &r);
	expect_status(&r, 4, "queue timeout");

	static const uint8_t garbage[] = { 0x0a, 0xff, 0xff, 0xff, 0x0f, 'x', 'y' };
	r = call_bytes(chan, SVC "ModelInfer", garbage, sizeof(garbage));
	expect_status(&r, 3, "malformed inference.ModelInferRequest message");
	r = call_bytes(chan, SVC "SystemSharedMemoryStatus", "", 0);
	expect_status(&r, 12, "unknown method /inference.GRPCInferenceService/SystemSharedMemoryStatus");
	r = call_bytes(chan, SVC "ModelStreamInfer", "", 0);
	expect_status(&r, 12, "unknown method");
	wait_idle();
}

/* 16 MiB tensors round-trip; messages over the limit are refused cleanly. */
static void test_big_messages(void **state)
{
	size_t n = 16u << 20;
	uint8_t *data = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 12));
	int64_t shape[1] = { (int64_t)n };
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *tp = &t;
	t.name = (char *)"INPUT0";
	t.datatype = (char *)"UINT8";
	t.shape = shape;
	t.n_shape = 1;
	ProtobufCBinaryData raw = { n, data };
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = (char *)"big";
	q.inputs = &tp;
	q.n_inputs = 1;
	q.raw_input_contents = &raw;
	q.n_raw_input_contents = 1;
	struct result r;
	for (int rep = 0; rep < 3; rep++) {
		Inference__ModelInferResponse *resp = (void *)call_msg(SVC "ModelInfer", &q.base,
			&inference__model_infer_response__descriptor, &r);
		assert_non_null(resp);
		assert_int_equal(resp->raw_output_contents[0].len, n);
		assert_memory_equal(resp->raw_output_contents[0].data, data, n);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		result_free(&r);
	}
	free(data);
	n = 24u << 20; /* the server was started with a 20 MiB limit */
	data = xcalloc(1, n);
	shape[0] = (int64_t)n;
	raw = (ProtobufCBinaryData){ n, data };
	call_msg(SVC "ModelInfer", &q.base, &inference__model_infer_response__descriptor, &r);
	expect_status(&r, 8, NULL);
	free(data);
	wait_idle();
}

/* Many slow inferences are served concurrently (the CQ thread never blocks on them). */
static void test_concurrency(void **state)
{
	enum { N = 32 };
	fake_slow_ms = 300;
	float data[4] = { 1, 2, 3, 4 };
	int64_t shape[2] = { 1, 4 };
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *tp = &t;
	t.name = (char *)"INPUT0";
	t.datatype = (char *)"FP32";
	t.shape = shape;
	t.n_shape = 2;
	ProtobufCBinaryData raw = { 16, (uint8_t *)data };
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = (char *)"slow";
	q.inputs = &tp;
	q.n_inputs = 1;
	q.raw_input_contents = &raw;
	q.n_raw_input_contents = 1;
	size_t len = inference__model_infer_request__get_packed_size(&q);
	uint8_t *buf = xmalloc(len);
	inference__model_infer_request__pack(&q, buf);

	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	static struct pending p[N];
	uint64_t t0 = acc_now_ns();
	for (int i = 0; i < N; i++)
		start(&p[i], chan, cq, SVC "ModelInfer", buf, len, 10000);
	for (int i = 0; i < N; i++) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		assert_int_equal(ev.type, GRPC_OP_COMPLETE);
		collect(ev.tag);
	}
	double secs = (double)(acc_now_ns() - t0) / 1e9;
	for (int i = 0; i < N; i++) {
		assert_int_equal(p[i].res.status, 0);
		result_free(&p[i].res);
	}
	if (secs > 2.0) /* serially it would take N * 0.3 s = 9.6 s */
		fail_msg("%d concurrent 300 ms calls took %.2f s", N, secs);
	grpc_completion_queue_shutdown(cq);
	assert_int_equal(grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type,
			 GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
	free(buf);
	wait_idle();
}

/* Clients that cancel or time out mid-inference leave nothing behind. */
static void test_cancel_and_deadline(void **state)
{
	enum { N = 8 };
	fake_slow_ms = 200;
	float data[4] = { 1, 2, 3, 4 };
	int64_t shape[2] = { 1, 4 };
	Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	c.fp32_contents = data;
	c.n_fp32_contents = 4;
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *tp = &t;
	t.name = (char *)"INPUT0";
	t.datatype = (char *)"FP32";
	t.shape = shape;
	t.n_shape = 2;
	t.contents = &c;
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = (char *)"slow";
	q.inputs = &tp;
	q.n_inputs = 1;
	size_t len = inference__model_infer_request__get_packed_size(&q);
	uint8_t *buf = xmalloc(len);
	inference__model_infer_request__pack(&q, buf);

	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	static struct pending p[N];
	for (int i = 0; i < N; i++) /* the odd ones time out after 50 ms, the even ones are cancelled */
		start(&p[i], chan, cq, SVC "ModelInfer", buf, len, i % 2 ? 50 : 10000);
	usleep(60 * 1000);
	for (int i = 0; i < N; i += 2)
		grpc_call_cancel(p[i].call, NULL);
	for (int i = 0; i < N; i++) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		assert_int_equal(ev.type, GRPC_OP_COMPLETE);
		collect(ev.tag);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(p[i].res.status, i % 2 ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_CANCELLED);
		result_free(&p[i].res);
	}
	grpc_completion_queue_shutdown(cq);
	assert_int_equal(grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type,
			 GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
	free(buf);
	wait_idle(); /* the inferences completed after their clients left, safely */

	struct result r;
	Inference__ModelInferResponse *resp = infer("echo", 1, false, NULL, &r);
	assert_non_null(resp);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	result_free(&r);
}

/* The client's deadline becomes the queue timeout, unless the request asks for less. */
static void test_deadline_as_timeout(void **state)
{
	float data[4] = { 1, 2, 3, 4 };
	int64_t shape[2] = { 1, 4 };
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *tp = &t;
	t.name = (char *)"INPUT0";
	t.datatype = (char *)"FP32";
	t.shape = shape;
	t.n_shape = 2;
	ProtobufCBinaryData raw = { 16, (uint8_t *)data };
	Inference__InferParameter pv = INFERENCE__INFER_PARAMETER__INIT;
	pv.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	pv.int64_param = 1000;
	Inference__ModelInferRequest__ParametersEntry pe = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT, *pp = &pe;
	pe.key = (char *)"timeout";
	pe.value = &pv;
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = (char *)"echo";
	q.inputs = &tp;
	q.n_inputs = 1;
	q.raw_input_contents = &raw;
	q.n_raw_input_contents = 1;
	for (int with_param = 0; with_param < 2; with_param++) {
		q.parameters = &pp;
		q.n_parameters = (size_t)with_param;
		size_t len = inference__model_infer_request__get_packed_size(&q);
		uint8_t *buf = xmalloc(len);
		inference__model_infer_request__pack(&q, buf);
		grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
		struct pending p;
		start(&p, chan, cq, SVC "ModelInfer", buf, len, 5000); /* a 5 s deadline */
		grpc_completion_queue_pluck(cq, &p, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		collect(&p);
		assert_int_equal(p.res.status, 0);
		result_free(&p.res);
		grpc_completion_queue_shutdown(cq);
		grpc_completion_queue_destroy(cq);
		free(buf);
		unsigned long long us = fake_last_timeout_us();
		if (with_param)
			assert_int_equal(us, 1000);
		else if (us < 4000000 || us > 5100000) /* grpc-timeout is sent rounded up */
			fail_msg("queue timeout %llu us for a 5 s deadline", us);
	}
	struct result r;
	Inference__ModelInferResponse *resp = infer("echo", 1, true, NULL, &r); /* 10 s deadline */
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	result_free(&r);
	assert_true(fake_last_timeout_us() > 9000000);
	wait_idle();
}

/* rpc_start refuses bad options and occupied addresses, and removes stale sockets. */
static void test_start_errors(void **state)
{
	struct rpc *r2 = NULL;
	char *err = NULL;
	struct rpc_options opt = { NULL, 0, 1, 0 };
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), -EINVAL);
	free(err);
	err = NULL;

	char *path = xasprintf("%s/file", dir);
	FILE *f = fopen(path, "w");
	fclose(f);
	char *addr = xasprintf("unix:%s", path);
	const char *l1[] = { addr };
	opt = (struct rpc_options){ l1, 1, 9, 0 };
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), -EINVAL);
	assert_non_null(strstr(err, "threads"));
	free(err);
	err = NULL;
	opt.threads = 1;
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), -EEXIST);
	assert_non_null(strstr(err, "exists and is not a socket"));
	free(err);
	err = NULL;
	unlink(path);

	/* A stale socket (bound, never unlinked, nobody listening) is replaced. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), 0);
	/* ... but a live one (ours) is not taken over. */
	struct rpc *r3 = NULL;
	assert_int_equal(rpc_start(&opt, fake_repo(), &r3, &err), -EADDRINUSE);
	assert_non_null(strstr(err, "another server is listening"));
	free(err);
	err = NULL;
	rpc_stop(r2);
	assert_int_equal(access(path, F_OK), -1);

	/* An occupied TCP port after a good listener: the half-built server is torn down. */
	char *busy = xasprintf("127.0.0.1:%d", rpc_port(server, 1));
	char *ok_addr = xasprintf("unix:%s", path);
	const char *l2[] = { ok_addr, busy };
	opt = (struct rpc_options){ l2, 2, 1, 0 };
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), -EADDRINUSE);
	assert_non_null(strstr(err, busy));
	free(err);
	err = NULL;
	const char *l3[] = { "nonsense" };
	opt = (struct rpc_options){ l3, 1, 1, 0 };
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), -EINVAL);
	free(err);
	free(busy);
	free(ok_addr);
	free(addr);
	free(path);
}

/* rpc_stop lets an in-flight call finish before it returns. */
static void test_stop_graceful(void **state)
{
	char *path = xasprintf("unix:%s/stop.sock", dir);
	const char *l[] = { path };
	struct rpc_options opt = { l, 1, 1, 0 };
	struct rpc *r2;
	char *err = NULL;
	assert_int_equal(rpc_start(&opt, fake_repo(), &r2, &err), 0);
	grpc_channel *ch = channel(path);

	fake_slow_ms = 300;
	float data[4] = { 1, 2, 3, 4 };
	int64_t shape[2] = { 1, 4 };
	Inference__ModelInferRequest__InferInputTensor t = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *tp = &t;
	t.name = (char *)"INPUT0";
	t.datatype = (char *)"FP32";
	t.shape = shape;
	t.n_shape = 2;
	ProtobufCBinaryData raw = { 16, (uint8_t *)data };
	Inference__ModelInferRequest q = INFERENCE__MODEL_INFER_REQUEST__INIT;
	q.model_name = (char *)"slow";
	q.inputs = &tp;
	q.n_inputs = 1;
	q.raw_input_contents = &raw;
	q.n_raw_input_contents = 1;
	size_t len = inference__model_infer_request__get_packed_size(&q);
	uint8_t *buf = xmalloc(len);
	inference__model_infer_request__pack(&q, buf);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	struct pending p;
	start(&p, ch, cq, SVC "ModelInfer", buf, len, 10000);
	usleep(100 * 1000);
	uint64_t t0 = acc_now_ns();
	rpc_stop(r2);
	double secs = (double)(acc_now_ns() - t0) / 1e9;
	grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	assert_int_equal(ev.type, GRPC_OP_COMPLETE);
	collect(&p);
	assert_int_equal(p.res.status, 0);
	assert_true(p.res.has_body);
	assert_true(secs > 0.1 && secs < 4.0);
	result_free(&p.res);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	fake_drain();
	free(buf);
	free(path);
}

int main(void)
{
	grpc_init(); /* the test's own client */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_endpoints),
		cmocka_unit_test(test_model_endpoints),
		cmocka_unit_test(test_load_unload),
		cmocka_unit_test(test_infer),
		cmocka_unit_test(test_big_messages),
		cmocka_unit_test(test_concurrency),
		cmocka_unit_test(test_cancel_and_deadline),
		cmocka_unit_test(test_deadline_as_timeout),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_stop_graceful),
	};
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	grpc_shutdown();
	return rc;
}
