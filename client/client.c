/* client.c - libacceld-client: Open Inference Protocol v2 calls over gRPC core's C API.
 *
 * Every grpc_* call of the library is in this file. One RPC = one grpc_call with the client's
 * deadline, driven to completion on a pluck completion queue taken from a small pool (a pluck
 * queue serves one waiter here, so concurrent callers never share one).
 */
#include "config.h"

#include "acceld/client.h"
#include "pbjson.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "health.pb-c.h"
#include "inference.pb-c.h"

#define SVC "/inference.GRPCInferenceService/"
#define DEFAULT_TIMEOUT_MS 60000u
#define CQ_POOL_MAX 64

struct acc_client {
	grpc_channel *channel;
	unsigned timeout_ms; /* read and written atomically */
	pthread_mutex_t lock; /* guards the queue pool */
	grpc_completion_queue *pool[CQ_POOL_MAX];
	size_t n_pool;
};

/* --- Status ---------------------------------------------------------------------------------- */

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

/* Name of a gRPC status code. */
const char *acc_code_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(code_names) / sizeof(code_names[0])))
		return "UNKNOWN_CODE";
	return code_names[code];
}

/* Free a status message and reset it to OK. */
void acc_status_clear(struct acc_status *st)
{
	if (!st)
		return;
	free(st->message);
	st->message = NULL;
	st->code = ACC_OK;
}

/* The negative errno a gRPC status code maps to. */
static int code_errno(int code)
{
	switch (code) {
	case ACC_OK: return 0;
	case ACC_CANCELLED: return -ECANCELED;
	case ACC_INVALID_ARGUMENT: return -EINVAL;
	case ACC_DEADLINE_EXCEEDED: return -ETIMEDOUT;
	case ACC_NOT_FOUND: return -ENOENT;
	case ACC_ALREADY_EXISTS: return -EEXIST;
	case ACC_PERMISSION_DENIED: return -EACCES;
	case ACC_RESOURCE_EXHAUSTED: return -EBUSY;
	case ACC_FAILED_PRECONDITION: return -EAGAIN;
	case ACC_ABORTED: return -ECONNABORTED;
	case ACC_OUT_OF_RANGE: return -ERANGE;
	case ACC_UNIMPLEMENTED: return -ENOSYS;
	case ACC_UNAVAILABLE: return -ECONNREFUSED;
	case ACC_UNAUTHENTICATED: return -EPERM;
	case ACC_INTERNAL:
	case ACC_DATA_LOSS:
		return -EIO;
	default: return -EPROTO;
	}
}

/* Fill st with code and a formatted message (msg may be NULL); return the matching -errno. */
__attribute__((format(printf, 3, 4)))
static int set_status(struct acc_status *st, int code, const char *fmt, ...)
{
	if (st) {
		free(st->message);
		st->code = code;
		st->message = NULL;
		if (fmt) {
			va_list ap;
			va_start(ap, fmt);
			if (vasprintf(&st->message, fmt, ap) < 0)
				st->message = NULL;
			va_end(ap);
		}
	}
	return code_errno(code);
}

/* Reset st to OK at the start of a call. */
static void status_ok(struct acc_status *st)
{
	acc_status_clear(st);
}

/* --- Memory helpers ---------------------------------------------------------------------------- */

/* malloc that never returns NULL (a client library has no better answer to exhaustion). */
static void *xalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p) {
		fprintf(stderr, "libacceld-client: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

/* Duplicate a string (NULL gives ""). */
static char *dup(const char *s)
{
	s = s ? s : "";
	size_t n = strlen(s) + 1;
	return memcpy(xalloc(n), s, n);
}

/* A protobuf string field from a caller's string (NULL gives ""). */
static char *pbstr(const char *s)
{
	return (char *)(s ? s : "");
}

/* --- Connection -------------------------------------------------------------------------------- */

/* Create a client for target. */
int acc_client_connect(const char *target, struct acc_client **out, struct acc_status *st)
{
	status_ok(st);
	*out = NULL;
	if (!target || !*target)
		return set_status(st, ACC_INVALID_ARGUMENT, "empty server address");
	grpc_init();
	grpc_arg args[4];
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = -1;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = -1;
	/* A local daemon that restarts should be reached again quickly, not after minutes. The
	 * minimum backoff is left at gRPC's default: core also uses it as the connect timeout, and
	 * a short one fails handshakes on a loaded machine. */
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[2].value.integer = 100;
	args[3].type = GRPC_ARG_INTEGER;
	args[3].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[3].value.integer = 1000;
	grpc_channel_args cargs = { .num_args = 4, .args = args };
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	if (!ch) {
		grpc_shutdown();
		return set_status(st, ACC_INVALID_ARGUMENT, "cannot create a channel to %s", target);
	}
	struct acc_client *c = xalloc(sizeof(*c));
	c->channel = ch;
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

/* Shut down and destroy a pluck queue that has no pending work. */
static void cq_destroy(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}
	grpc_completion_queue_destroy(cq);
}

/* Close the client. */
void acc_client_close(struct acc_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_pool; i++)
		cq_destroy(c->pool[i]);
	grpc_channel_destroy(c->channel);
	pthread_mutex_destroy(&c->lock);
	free(c);
	grpc_shutdown();
}

/* Set the per-call deadline. */
void acc_client_set_timeout(struct acc_client *c, unsigned timeout_ms)
{
	__atomic_store_n(&c->timeout_ms, timeout_ms, __ATOMIC_RELAXED);
}

/* A pluck queue for one call: from the pool, or a new one. */
static grpc_completion_queue *cq_take(struct acc_client *c)
{
	grpc_completion_queue *cq = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->n_pool)
		cq = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->lock);
	return cq ? cq : grpc_completion_queue_create_for_pluck(NULL);
}

/* Return a queue (with no pending events) to the pool. */
static void cq_give(struct acc_client *c, grpc_completion_queue *cq)
{
	pthread_mutex_lock(&c->lock);
	if (c->n_pool < CQ_POOL_MAX) {
		c->pool[c->n_pool++] = cq;
		cq = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (cq)
		cq_destroy(cq);
}

/* --- The one RPC path -------------------------------------------------------------------------- */

/* Unary call: send req (len bytes; ownership of req passes to gRPC, released with free), wait
 * for the reply; on OK *resp is a malloc'd flat copy of the reply. */
static int unary(struct acc_client *c, const char *method, void *req, size_t len, void **resp,
		 size_t *resp_len, struct acc_status *st)
{
	*resp = NULL;
	*resp_len = 0;
	unsigned ms = __atomic_load_n(&c->timeout_ms, __ATOMIC_RELAXED);
	gpr_timespec deadline = ms ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						  gpr_time_from_millis(ms, GPR_TIMESPAN))
				   : gpr_inf_future(GPR_CLOCK_MONOTONIC);
	grpc_completion_queue *cq = cq_take(c);
	grpc_slice mslice = grpc_slice_from_copied_string(method);
	grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
						   mslice, NULL, deadline, NULL);
	grpc_slice_unref(mslice);
	if (!call) {
		free(req);
		cq_give(c, cq);
		return set_status(st, ACC_INTERNAL, "cannot create a call to %s", method);
	}

	grpc_slice rslice = len ? grpc_slice_new(req, len, free) : grpc_empty_slice();
	if (!len)
		free(req);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&rslice, 1);
	grpc_slice_unref(rslice);
	grpc_byte_buffer *recv = NULL;
	grpc_metadata_array initial_md, trailing_md;
	grpc_metadata_array_init(&initial_md);
	grpc_metadata_array_init(&trailing_md);
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();

	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[5].data.recv_status_on_client.status = &code;
	ops[5].data.recv_status_on_client.status_details = &details;

	int rc;
	grpc_call_error ce = grpc_call_start_batch(call, ops, 6, call, NULL);
	if (ce != GRPC_CALL_OK) {
		rc = set_status(st, ACC_INTERNAL, "cannot start a call to %s (error %d)", method, (int)ce);
	} else {
		grpc_event ev = grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE) {
			rc = set_status(st, ACC_INTERNAL, "completion queue failed during %s", method);
		} else if (code != GRPC_STATUS_OK) {
			size_t dl = GRPC_SLICE_LENGTH(details);
			rc = set_status(st, (int)code, "%.*s", (int)dl,
					(const char *)GRPC_SLICE_START_PTR(details));
			if (dl == 0 && st) {
				free(st->message);
				st->message = dup(acc_code_name((int)code));
			}
		} else if (!recv) {
			rc = set_status(st, ACC_INTERNAL, "no reply message from %s", method);
		} else {
			grpc_byte_buffer_reader reader;
			if (!grpc_byte_buffer_reader_init(&reader, recv)) {
				rc = set_status(st, ACC_INTERNAL, "cannot read the reply of %s", method);
			} else {
				grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
				size_t n = GRPC_SLICE_LENGTH(all);
				*resp = xalloc(n);
				memcpy(*resp, GRPC_SLICE_START_PTR(all), n);
				*resp_len = n;
				grpc_slice_unref(all);
				grpc_byte_buffer_reader_destroy(&reader);
				rc = 0;
			}
		}
	}
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_byte_buffer_destroy(send);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&initial_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_call_unref(call);
	cq_give(c, cq);
	return rc;
}

/* One call with a pre-encoded request (copied). */
int acc_client_call_raw(struct acc_client *c, const char *method, const void *req, size_t req_len,
			void **resp, size_t *resp_len, struct acc_status *st)
{
	status_ok(st);
	void *copy = xalloc(req_len);
	if (req_len)
		memcpy(copy, req, req_len);
	return unary(c, method, copy, req_len, resp, resp_len, st);
}

/* Encode req, call method, decode the reply as rdesc into *out (free with
 * protobuf_c_message_free_unpacked). */
static int call_pb(struct acc_client *c, const char *method, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **out,
		   struct acc_status *st)
{
	status_ok(st);
	*out = NULL;
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = xalloc(len);
	protobuf_c_message_pack(req, buf);
	void *resp;
	size_t resp_len;
	int rc = unary(c, method, buf, len, &resp, &resp_len, st);
	if (rc < 0)
		return rc;
	*out = protobuf_c_message_unpack(rdesc, NULL, resp_len, resp);
	free(resp);
	if (!*out)
		return set_status(st, ACC_INTERNAL, "undecodable reply from %s (%zu bytes)", method,
				  resp_len);
	return 0;
}

/* --- Health and metadata ------------------------------------------------------------------------ */

/* ServerLive. */
int acc_client_server_live(struct acc_client *c, bool *live, struct acc_status *st)
{
	Inference__ServerLiveRequest req = INFERENCE__SERVER_LIVE_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "ServerLive", &req.base, &inference__server_live_response__descriptor,
			 &m, st);
	if (rc < 0)
		return rc;
	*live = ((Inference__ServerLiveResponse *)m)->live;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* ServerReady. */
int acc_client_server_ready(struct acc_client *c, bool *ready, struct acc_status *st)
{
	Inference__ServerReadyRequest req = INFERENCE__SERVER_READY_REQUEST__INIT;
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "ServerReady", &req.base,
			 &inference__server_ready_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	*ready = ((Inference__ServerReadyResponse *)m)->ready;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Copy an array of protobuf strings. */
static char **dup_strv(char **v, size_t n)
{
	char **out = xalloc(n * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = dup(v[i]);
	return out;
}

/* Free an array of strings. */
static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* ServerMetadata. */
int acc_client_server_metadata(struct acc_client *c, struct acc_server_metadata **out,
			       struct acc_status *st)
{
	Inference__ServerMetadataRequest req = INFERENCE__SERVER_METADATA_REQUEST__INIT;
	ProtobufCMessage *m;
	*out = NULL;
	int rc = call_pb(c, SVC "ServerMetadata", &req.base,
			 &inference__server_metadata_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	Inference__ServerMetadataResponse *r = (Inference__ServerMetadataResponse *)m;
	struct acc_server_metadata *md = xalloc(sizeof(*md));
	md->name = dup(r->name);
	md->version = dup(r->version);
	md->n_extensions = r->n_extensions;
	md->extensions = dup_strv(r->extensions, r->n_extensions);
	protobuf_c_message_free_unpacked(m, NULL);
	*out = md;
	return 0;
}

/* Free server metadata. */
void acc_server_metadata_free(struct acc_server_metadata *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->version);
	free_strv(m->extensions, m->n_extensions);
	free(m);
}

/* Check a model-name argument. */
static int need_model(const char *model, struct acc_status *st)
{
	if (!model || !*model)
		return set_status(st, ACC_INVALID_ARGUMENT, "no model name given");
	return 0;
}

/* ModelReady. */
int acc_client_model_ready(struct acc_client *c, const char *model, const char *version,
			   bool *ready, struct acc_status *st)
{
	status_ok(st);
	int bad = need_model(model, st);
	if (bad < 0)
		return bad;
	Inference__ModelReadyRequest req = INFERENCE__MODEL_READY_REQUEST__INIT;
	req.name = pbstr(model);
	req.version = pbstr(version);
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "ModelReady", &req.base, &inference__model_ready_response__descriptor,
			 &m, st);
	if (rc < 0)
		return rc;
	*ready = ((Inference__ModelReadyResponse *)m)->ready;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Copy protobuf tensor metadata. */
static struct acc_tensor_metadata *dup_tensor_md(Inference__ModelMetadataResponse__TensorMetadata **v,
						 size_t n)
{
	struct acc_tensor_metadata *out = xalloc(n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		out[i].name = dup(v[i]->name);
		out[i].datatype = dup(v[i]->datatype);
		out[i].ndims = v[i]->n_shape;
		out[i].shape = xalloc(v[i]->n_shape * sizeof(int64_t));
		if (v[i]->n_shape)
			memcpy(out[i].shape, v[i]->shape, v[i]->n_shape * sizeof(int64_t));
	}
	return out;
}

/* Free tensor metadata. */
static void free_tensor_md(struct acc_tensor_metadata *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].datatype);
		free(v[i].shape);
	}
	free(v);
}

/* ModelMetadata. */
int acc_client_model_metadata(struct acc_client *c, const char *model, const char *version,
			      struct acc_model_metadata **out, struct acc_status *st)
{
	status_ok(st);
	*out = NULL;
	int bad = need_model(model, st);
	if (bad < 0)
		return bad;
	Inference__ModelMetadataRequest req = INFERENCE__MODEL_METADATA_REQUEST__INIT;
	req.name = pbstr(model);
	req.version = pbstr(version);
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "ModelMetadata", &req.base,
			 &inference__model_metadata_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	Inference__ModelMetadataResponse *r = (Inference__ModelMetadataResponse *)m;
	struct acc_model_metadata *md = xalloc(sizeof(*md));
	md->name = dup(r->name);
	md->n_versions = r->n_versions;
	md->versions = dup_strv(r->versions, r->n_versions);
	md->platform = dup(r->platform);
	md->n_inputs = r->n_inputs;
	md->inputs = dup_tensor_md(r->inputs, r->n_inputs);
	md->n_outputs = r->n_outputs;
	md->outputs = dup_tensor_md(r->outputs, r->n_outputs);
	protobuf_c_message_free_unpacked(m, NULL);
	*out = md;
	return 0;
}

/* Free model metadata. */
void acc_model_metadata_free(struct acc_model_metadata *m)
{
	if (!m)
		return;
	free(m->name);
	free_strv(m->versions, m->n_versions);
	free(m->platform);
	free_tensor_md(m->inputs, m->n_inputs);
	free_tensor_md(m->outputs, m->n_outputs);
	free(m);
}

/* ModelConfig as JSON text. */
int acc_client_model_config(struct acc_client *c, const char *model, const char *version,
			    char **json, struct acc_status *st)
{
	status_ok(st);
	*json = NULL;
	int bad = need_model(model, st);
	if (bad < 0)
		return bad;
	Inference__ModelConfigRequest req = INFERENCE__MODEL_CONFIG_REQUEST__INIT;
	req.name = pbstr(model);
	req.version = pbstr(version);
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "ModelConfig", &req.base, &inference__model_config_response__descriptor,
			 &m, st);
	if (rc < 0)
		return rc;
	Inference__ModelConfigResponse *r = (Inference__ModelConfigResponse *)m;
	json_t *j = r->config ? pbjson_from_message(&r->config->base) : json_object();
	protobuf_c_message_free_unpacked(m, NULL);
	*json = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!*json)
		return set_status(st, ACC_INTERNAL, "cannot write the configuration as JSON");
	return 0;
}

/* --- Repository ---------------------------------------------------------------------------------- */

/* RepositoryIndex. */
int acc_client_repository_index(struct acc_client *c, bool ready_only,
				struct acc_repo_model **out, size_t *n, struct acc_status *st)
{
	Inference__RepositoryIndexRequest req = INFERENCE__REPOSITORY_INDEX_REQUEST__INIT;
	req.ready = ready_only;
	ProtobufCMessage *m;
	*out = NULL;
	*n = 0;
	int rc = call_pb(c, SVC "RepositoryIndex", &req.base,
			 &inference__repository_index_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	Inference__RepositoryIndexResponse *r = (Inference__RepositoryIndexResponse *)m;
	struct acc_repo_model *v = xalloc(r->n_models * sizeof(*v));
	for (size_t i = 0; i < r->n_models; i++) {
		v[i].name = dup(r->models[i]->name);
		v[i].version = dup(r->models[i]->version);
		v[i].state = dup(r->models[i]->state);
		v[i].reason = dup(r->models[i]->reason);
	}
	*n = r->n_models;
	*out = v;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Free an index listing. */
void acc_repo_index_free(struct acc_repo_model *models, size_t n)
{
	for (size_t i = 0; models && i < n; i++) {
		free(models[i].name);
		free(models[i].version);
		free(models[i].state);
		free(models[i].reason);
	}
	free(models);
}

/* RepositoryModelLoad. */
int acc_client_load(struct acc_client *c, const char *model, const char *config_json,
		    struct acc_status *st)
{
	status_ok(st);
	int bad = need_model(model, st);
	if (bad < 0)
		return bad;
	Inference__RepositoryModelLoadRequest req = INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__INIT;
	Inference__RepositoryModelLoadRequest__ParametersEntry entry =
		INFERENCE__REPOSITORY_MODEL_LOAD_REQUEST__PARAMETERS_ENTRY__INIT;
	Inference__ModelRepositoryParameter param = INFERENCE__MODEL_REPOSITORY_PARAMETER__INIT;
	Inference__RepositoryModelLoadRequest__ParametersEntry *entries[1] = { &entry };
	req.model_name = pbstr(model);
	if (config_json) {
		param.parameter_choice_case = INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
		param.string_param = (char *)config_json;
		entry.key = (char *)"config";
		entry.value = &param;
		req.n_parameters = 1;
		req.parameters = entries;
	}
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "RepositoryModelLoad", &req.base,
			 &inference__repository_model_load_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* RepositoryModelUnload. */
int acc_client_unload(struct acc_client *c, const char *model, struct acc_status *st)
{
	status_ok(st);
	int bad = need_model(model, st);
	if (bad < 0)
		return bad;
	Inference__RepositoryModelUnloadRequest req = INFERENCE__REPOSITORY_MODEL_UNLOAD_REQUEST__INIT;
	req.model_name = pbstr(model);
	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "RepositoryModelUnload", &req.base,
			 &inference__repository_model_unload_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* --- Statistics ---------------------------------------------------------------------------------- */

/* A protobuf duration (possibly unset) as a struct. */
static struct acc_duration dur(const Inference__StatisticDuration *d)
{
	struct acc_duration r = { 0, 0 };
	if (d) {
		r.count = d->count;
		r.ns = d->ns;
	}
	return r;
}

/* ModelStatistics. */
int acc_client_model_statistics(struct acc_client *c, const char *model, const char *version,
				struct acc_model_stats **out, size_t *n, struct acc_status *st)
{
	Inference__ModelStatisticsRequest req = INFERENCE__MODEL_STATISTICS_REQUEST__INIT;
	req.name = pbstr(model);
	req.version = pbstr(version);
	ProtobufCMessage *m;
	*out = NULL;
	*n = 0;
	int rc = call_pb(c, SVC "ModelStatistics", &req.base,
			 &inference__model_statistics_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	Inference__ModelStatisticsResponse *r = (Inference__ModelStatisticsResponse *)m;
	struct acc_model_stats *v = xalloc(r->n_model_stats * sizeof(*v));
	for (size_t i = 0; i < r->n_model_stats; i++) {
		const Inference__ModelStatistics *s = r->model_stats[i];
		const Inference__InferStatistics *is = s->inference_stats;
		v[i].name = dup(s->name);
		v[i].version = dup(s->version);
		v[i].last_inference_ms = s->last_inference;
		v[i].inference_count = s->inference_count;
		v[i].execution_count = s->execution_count;
		if (is) {
			v[i].success = dur(is->success);
			v[i].fail = dur(is->fail);
			v[i].queue = dur(is->queue);
			v[i].compute_input = dur(is->compute_input);
			v[i].compute_infer = dur(is->compute_infer);
			v[i].compute_output = dur(is->compute_output);
		}
		v[i].n_batch = s->n_batch_stats;
		v[i].batch = xalloc(s->n_batch_stats * sizeof(*v[i].batch));
		for (size_t k = 0; k < s->n_batch_stats; k++) {
			const Inference__InferBatchStatistics *b = s->batch_stats[k];
			v[i].batch[k].batch_size = b->batch_size;
			v[i].batch[k].compute_input = dur(b->compute_input);
			v[i].batch[k].compute_infer = dur(b->compute_infer);
			v[i].batch[k].compute_output = dur(b->compute_output);
		}
	}
	*n = r->n_model_stats;
	*out = v;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* Free statistics. */
void acc_model_stats_free(struct acc_model_stats *s, size_t n)
{
	for (size_t i = 0; s && i < n; i++) {
		free(s[i].name);
		free(s[i].version);
		free(s[i].batch);
	}
	free(s);
}

/* --- Inference ------------------------------------------------------------------------------------ */

static const struct {
	const char *name;
	size_t size;
} datatypes[] = {
	{ "BOOL", 1 }, { "UINT8", 1 }, { "UINT16", 2 }, { "UINT32", 4 }, { "UINT64", 8 },
	{ "INT8", 1 }, { "INT16", 2 }, { "INT32", 4 }, { "INT64", 8 }, { "FP16", 2 },
	{ "FP32", 4 }, { "FP64", 8 }, { "BF16", 2 },
};

/* Element size of a v2 datatype name. */
size_t acc_datatype_size(const char *datatype)
{
	for (size_t i = 0; datatype && i < sizeof(datatypes) / sizeof(datatypes[0]); i++)
		if (strcmp(datatype, datatypes[i].name) == 0)
			return datatypes[i].size;
	return 0;
}

/* Typed contents of an output as raw little-endian bytes in a fresh buffer (*bytes set). */
static int contents_to_raw(const char *dt, const Inference__InferTensorContents *ct, void **data,
			   size_t *bytes, struct acc_status *st)
{
	size_t i;
	uint8_t *p;
	*data = NULL;
	*bytes = 0;
	if (!ct)
		return 0;
#define COPY_AS(field, ctype)                                        \
	do {                                                             \
		*bytes = ct->n_##field * sizeof(ctype);                      \
		ctype *o = xalloc(*bytes);                                   \
		for (i = 0; i < ct->n_##field; i++)                          \
			o[i] = (ctype)ct->field[i];                              \
		*data = o;                                                   \
	} while (0)
	if (!strcmp(dt, "BOOL"))
		COPY_AS(bool_contents, uint8_t);
	else if (!strcmp(dt, "INT8"))
		COPY_AS(int_contents, int8_t);
	else if (!strcmp(dt, "INT16"))
		COPY_AS(int_contents, int16_t);
	else if (!strcmp(dt, "INT32"))
		COPY_AS(int_contents, int32_t);
	else if (!strcmp(dt, "INT64"))
		COPY_AS(int64_contents, int64_t);
	else if (!strcmp(dt, "UINT8"))
		COPY_AS(uint_contents, uint8_t);
	else if (!strcmp(dt, "UINT16"))
		COPY_AS(uint_contents, uint16_t);
	else if (!strcmp(dt, "UINT32"))
		COPY_AS(uint_contents, uint32_t);
	else if (!strcmp(dt, "UINT64"))
		COPY_AS(uint64_contents, uint64_t);
	else if (!strcmp(dt, "FP32"))
		COPY_AS(fp32_contents, float);
	else if (!strcmp(dt, "FP64"))
		COPY_AS(fp64_contents, double);
	else if (!strcmp(dt, "BYTES")) {
		/* Each element as a 4-byte little-endian length and its bytes (Triton's layout). */
		for (i = 0; i < ct->n_bytes_contents; i++)
			*bytes += 4 + ct->bytes_contents[i].len;
		p = xalloc(*bytes);
		*data = p;
		for (i = 0; i < ct->n_bytes_contents; i++) {
			uint32_t l = (uint32_t)ct->bytes_contents[i].len;
			p[0] = l & 0xff;
			p[1] = (l >> 8) & 0xff;
			p[2] = (l >> 16) & 0xff;
			p[3] = (l >> 24) & 0xff;
			if (l)
				memcpy(p + 4, ct->bytes_contents[i].data, l);
			p += 4 + l;
		}
	} else {
		return set_status(st, ACC_INTERNAL, "output with datatype %s has typed contents", dt);
	}
#undef COPY_AS
	return 0;
}

/* Copy a decoded response into a result. */
static int result_from_pb(const Inference__ModelInferResponse *r, struct acc_infer_result **out,
			  struct acc_status *st)
{
	if (r->n_raw_output_contents && r->n_raw_output_contents != r->n_outputs)
		return set_status(st, ACC_INTERNAL, "reply has %zu outputs but %zu raw contents",
				  r->n_outputs, r->n_raw_output_contents);
	struct acc_infer_result *res = xalloc(sizeof(*res));
	res->model_name = dup(r->model_name);
	res->model_version = dup(r->model_version);
	res->id = dup(r->id);
	res->outputs = xalloc(r->n_outputs * sizeof(*res->outputs));
	res->n_outputs = r->n_outputs;
	for (size_t i = 0; i < r->n_outputs; i++) {
		const Inference__ModelInferResponse__InferOutputTensor *o = r->outputs[i];
		struct acc_tensor *t = &res->outputs[i];
		int64_t *shape = xalloc(o->n_shape * sizeof(int64_t));
		if (o->n_shape)
			memcpy(shape, o->shape, o->n_shape * sizeof(int64_t));
		t->name = dup(o->name);
		t->datatype = dup(o->datatype);
		t->shape = shape;
		t->ndims = o->n_shape;
		if (r->n_raw_output_contents) {
			const ProtobufCBinaryData *b = &r->raw_output_contents[i];
			void *d = xalloc(b->len);
			if (b->len)
				memcpy(d, b->data, b->len);
			t->data = d;
			t->bytes = b->len;
		} else {
			void *d;
			if (contents_to_raw(t->datatype, o->contents, &d, &t->bytes, st) < 0) {
				acc_infer_result_free(res);
				return code_errno(ACC_INTERNAL);
			}
			t->data = d ? d : xalloc(0);
		}
	}
	*out = res;
	return 0;
}

/* ModelInfer with raw inputs. */
int acc_client_infer(struct acc_client *c, const struct acc_infer_request *rq,
		     struct acc_infer_result **out, struct acc_status *st)
{
	status_ok(st);
	*out = NULL;
	if (!rq || need_model(rq->model, st) < 0)
		return set_status(st, ACC_INVALID_ARGUMENT, "no model name given");
	Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
	req.model_name = pbstr(rq->model);
	req.model_version = pbstr(rq->version);
	req.id = pbstr(rq->id);

	size_t ni = rq->n_inputs, no = rq->n_outputs;
	Inference__ModelInferRequest__InferInputTensor *in = xalloc(ni * sizeof(*in));
	Inference__ModelInferRequest__InferInputTensor **inp = xalloc(ni * sizeof(*inp));
	ProtobufCBinaryData *raw = xalloc(ni * sizeof(*raw));
	for (size_t i = 0; i < ni; i++) {
		const struct acc_tensor *t = &rq->inputs[i];
		Inference__ModelInferRequest__InferInputTensor init =
			INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
		in[i] = init;
		in[i].name = pbstr(t->name);
		in[i].datatype = pbstr(t->datatype);
		in[i].n_shape = t->ndims;
		in[i].shape = (int64_t *)t->shape;
		inp[i] = &in[i];
		raw[i].len = t->bytes;
		raw[i].data = (uint8_t *)t->data;
	}
	req.n_inputs = ni;
	req.inputs = inp;
	req.n_raw_input_contents = ni;
	req.raw_input_contents = raw;

	Inference__ModelInferRequest__InferRequestedOutputTensor *ot = xalloc(no * sizeof(*ot));
	Inference__ModelInferRequest__InferRequestedOutputTensor **otp = xalloc(no * sizeof(*otp));
	for (size_t i = 0; i < no; i++) {
		Inference__ModelInferRequest__InferRequestedOutputTensor init =
			INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
		ot[i] = init;
		ot[i].name = pbstr(rq->outputs[i]);
		otp[i] = &ot[i];
	}
	req.n_outputs = no;
	req.outputs = otp;

	Inference__InferParameter pv[2] = { INFERENCE__INFER_PARAMETER__INIT,
					    INFERENCE__INFER_PARAMETER__INIT };
	Inference__ModelInferRequest__ParametersEntry pe[2] = {
		INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT,
		INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT
	};
	Inference__ModelInferRequest__ParametersEntry *pep[2];
	size_t np = 0;
	if (rq->priority) {
		pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		pv[np].int64_param = rq->priority;
		pe[np].key = (char *)"priority";
		pe[np].value = &pv[np];
		pep[np] = &pe[np];
		np++;
	}
	if (rq->timeout_us) {
		pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
		pv[np].int64_param = (int64_t)rq->timeout_us;
		pe[np].key = (char *)"timeout";
		pe[np].value = &pv[np];
		pep[np] = &pe[np];
		np++;
	}
	req.n_parameters = np;
	req.parameters = pep;

	ProtobufCMessage *m;
	int rc = call_pb(c, SVC "ModelInfer", &req.base, &inference__model_infer_response__descriptor,
			 &m, st);
	free(in);
	free(inp);
	free(raw);
	free(ot);
	free(otp);
	if (rc < 0)
		return rc;
	rc = result_from_pb((Inference__ModelInferResponse *)m, out, st);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* Free an inference result. */
void acc_infer_result_free(struct acc_infer_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_outputs; i++) {
		free((void *)r->outputs[i].name);
		free((void *)r->outputs[i].datatype);
		free((void *)r->outputs[i].shape);
		free((void *)r->outputs[i].data);
	}
	free(r->outputs);
	free(r->model_name);
	free(r->model_version);
	free(r->id);
	free(r);
}

/* The output named name. */
const struct acc_tensor *acc_infer_result_output(const struct acc_infer_result *r, const char *name)
{
	for (size_t i = 0; r && name && i < r->n_outputs; i++)
		if (strcmp(r->outputs[i].name, name) == 0)
			return &r->outputs[i];
	return NULL;
}

/* --- grpc.health.v1 ------------------------------------------------------------------------------- */

/* Health/Check. */
int acc_client_health_check(struct acc_client *c, const char *service, int *serving,
			    struct acc_status *st)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	req.service = pbstr(service);
	ProtobufCMessage *m;
	int rc = call_pb(c, "/grpc.health.v1.Health/Check", &req.base,
			 &grpc__health__v1__health_check_response__descriptor, &m, st);
	if (rc < 0)
		return rc;
	*serving = ((Grpc__Health__V1__HealthCheckResponse *)m)->status;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
