/* rpc.c - the gRPC transport, written against gRPC core's C API (the only grpc_* user).
 *
 * Threads: n completion-queue (CQ) threads, each polling its own queue with
 * grpc_completion_queue_next; one loader thread for RepositoryModelLoad/Unload (they block
 * for seconds); inference results arrive on scheduler worker threads. gRPC allows
 * grpc_call_start_batch from any thread, so every thread finishes its own calls.
 *
 * A call is a small state machine driven by typed tags, one per pending operation batch:
 *   NEW   (grpc_server_request_call matched a call) -> start CLOSE and RECV
 *   RECV  (the request message arrived)             -> decode, dispatch to a handler
 *   SEND  (initial metadata, message, status sent)  -> done
 *   CLOSE (RECV_CLOSE_ON_SERVER: finished or cancelled by the client)
 * Each pending batch, each deferred job (inference, load) and each running handler holds a
 * reference on the call; the last one frees it, so a client that vanishes mid-call, or an
 * inference that completes after the client left, touches only memory that is still alive.
 */
#include "config.h"
#include "rpc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "health.pb-c.h"
#include "inference.pb-c.h"
#include "infer.h"
#include "log.h"
#include "repo.h"
#include "rpc_codec.h"
#include "util.h"

#define RPC_MAX_CQ 8
#define RPC_PENDING_PER_CQ 32            /* calls requested ahead on each queue */
#define RPC_STOP_GRACE_NS 5000000000ull   /* in-flight calls get this long at rpc_stop */
#define RPC_MAX_DETAILS 1024             /* longest status message sent */
#define SERVICE "inference.GRPCInferenceService"

/* gRPC status codes (grpc_status_code), named here so the mapping reads plainly. */
enum {
	ST_OK = 0, ST_CANCELLED = 1, ST_INVALID_ARGUMENT = 3, ST_DEADLINE_EXCEEDED = 4,
	ST_NOT_FOUND = 5, ST_RESOURCE_EXHAUSTED = 8, ST_UNIMPLEMENTED = 12, ST_INTERNAL = 13,
	ST_UNAVAILABLE = 14,
};

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_CLOSE, TAG_SHUTDOWN };

struct rpc_call;

/* What a CQ event's tag points at: which operation finished, for which call. */
struct rpc_tag {
	enum tag_kind kind;
	struct rpc_call *call;
};

struct rpc_cq {
	struct rpc *r;
	grpc_completion_queue *cq;
	pthread_t thread;
	bool running;
};

struct rpc_method;

enum work_kind { WORK_LOAD, WORK_UNLOAD };

struct rpc_call {
	struct rpc *r;
	struct rpc_cq *q;
	atomic_int refs;
	bool accepted;                /* counted in rpc.live */
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv;
	grpc_byte_buffer *send;
	int cancelled;                /* RECV_CLOSE_ON_SERVER result */
	atomic_bool closed;           /* RECV_CLOSE_ON_SERVER completed */
	atomic_bool finished;         /* the status has been handed to gRPC */
	const struct rpc_method *method;
	struct rpc_tag t_new, t_recv, t_send, t_close;

	/* Deferred repository work, queued to the loader thread. */
	struct rpc_call *work_next;
	enum work_kind work;
	char *work_name, *work_config;
};

struct rpc {
	struct repo *repo;
	grpc_server *server;
	size_t max_msg;
	int n_cq;
	struct rpc_cq cqs[RPC_MAX_CQ];
	struct rpc_tag t_shutdown;
	atomic_bool stopping;
	atomic_long live;

	pthread_mutex_t mu;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	bool shutdown_done;

	pthread_t loader;
	bool loader_running, loader_exit;
	struct rpc_call *work_head, *work_tail;

	size_t n_listen;
	int *ports;
	char **unix_paths;
};

/* A handler gets the decoded request; it may take it over (setting *req to NULL). */
typedef void (*rpc_handler)(struct rpc_call *c, ProtobufCMessage **req);
/* A handler that decodes the request bytes itself; it takes over the slice. */
typedef void (*rpc_bytes_handler)(struct rpc_call *c, grpc_slice body);

struct rpc_method {
	const char *path;
	const ProtobufCMessageDescriptor *in;
	rpc_handler fn;
	rpc_bytes_handler bytes_fn; /* used instead of fn when set */
};

/* ------------------------------------------------------------------ status mapping -- */

/* Map a -errno to a gRPC status code. */
int rpc_status_from_errno(int err)
{
	switch (err) {
	case 0: return ST_OK;
	case -ENOENT: return ST_NOT_FOUND;
	case -EINVAL: return ST_INVALID_ARGUMENT;
	case -EAGAIN: return ST_UNAVAILABLE;
	case -EBUSY:
	case -ENOMEM: return ST_RESOURCE_EXHAUSTED;
	case -ETIMEDOUT: return ST_DEADLINE_EXCEEDED;
	case -ECANCELED: return ST_CANCELLED;
	case -ENOTSUP: return ST_UNIMPLEMENTED;
	default: return ST_INTERNAL;
	}
}

/* ------------------------------------------------------------------- call lifetime -- */

/* Free a call once nothing refers to it. */
static void call_free(struct rpc_call *c)
{
	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	free(c->work_name);
	free(c->work_config);
	bool accepted = c->accepted;
	struct rpc *r = c->r;
	free(c);
	if (accepted)
		atomic_fetch_sub(&r->live, 1); /* the last touch of r: teardown waits for live == 0 */
}

/* Take a reference. */
static void call_ref(struct rpc_call *c)
{
	atomic_fetch_add(&c->refs, 1);
}

/* Drop a reference; the last one frees the call. */
static void call_unref(struct rpc_call *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		call_free(c);
}

/* True once the call has ended without our status: cancelled, deadline, client gone. */
static bool call_cancelled(struct rpc_call *c)
{
	return atomic_load(&c->closed) && c->cancelled;
}

/* Start a batch for tag t, holding a reference until its completion arrives. */
static bool call_batch(struct rpc_call *c, const grpc_op *ops, size_t n, struct rpc_tag *t)
{
	call_ref(c);
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
	if (e == GRPC_CALL_OK)
		return true;
	log_warn("rpc: cannot start a batch: %s", grpc_call_error_to_string(e));
	call_unref(c);
	return false;
}

/* Send initial metadata, the response message (status OK only) and the status. Only the
 * first finish of a call counts; msg is taken over in every case. */
static void call_finish(struct rpc_call *c, int status, const char *details, grpc_byte_buffer *msg)
{
	if (atomic_exchange(&c->finished, true)) {
		if (msg)
			grpc_byte_buffer_destroy(msg);
		return;
	}
	grpc_op ops[3];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (msg && status == ST_OK) {
		c->send = msg;
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = msg;
	} else if (msg) {
		grpc_byte_buffer_destroy(msg);
	}
	grpc_slice text = grpc_slice_from_copied_string(details ? details : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)status;
	ops[n++].data.send_status_from_server.status_details = details ? &text : NULL;
	call_batch(c, ops, n, &c->t_send);
	grpc_slice_unref(text);
}

/* Finish with an error status and a formatted message. */
static void ACC_PRINTF(3, 4) reply_err(struct rpc_call *c, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (strlen(msg) > RPC_MAX_DETAILS) /* clients refuse big trailers (8 KiB by default) */
		strcpy(msg + RPC_MAX_DETAILS - 3, "...");
	/* Client mistakes are the client's business; failures of our own deserve a warning. */
	log_msg(status == ST_INTERNAL ? LOG_LVL_WARN : LOG_LVL_DEBUG, "rpc: %.*s -> status %d: %s",
		(int)GRPC_SLICE_LENGTH(c->details.method),
		(const char *)GRPC_SLICE_START_PTR(c->details.method), status, msg);
	call_finish(c, status, msg, NULL);
	free(msg);
}

/* Finish with status OK and a serialized response. */
static void reply(struct rpc_call *c, const ProtobufCMessage *resp)
{
	size_t len = protobuf_c_message_get_packed_size(resp);
	if (len > c->r->max_msg) {
		reply_err(c, ST_RESOURCE_EXHAUSTED, "response of %zu bytes exceeds the limit of %zu bytes",
			  len, c->r->max_msg);
		return;
	}
	grpc_slice s = grpc_empty_slice();
	if (len) {
		uint8_t *buf = xmalloc(len);
		protobuf_c_message_pack(resp, buf);
		s = grpc_slice_new(buf, len, free);
	}
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	call_finish(c, ST_OK, NULL, bb);
}

/* The received message as one contiguous slice (the caller unrefs it); false if it cannot be
 * read (a compressed message that does not decompress). */
static bool call_body(struct rpc_call *c, grpc_slice *out)
{
	grpc_byte_buffer_reader rd;
	if (!grpc_byte_buffer_reader_init(&rd, c->recv))
		return false;
	*out = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	grpc_byte_buffer_destroy(c->recv); /* the slice keeps the bytes */
	c->recv = NULL;
	return true;
}

/* ---------------------------------------------------------------------- handlers -- */

/* Look up a ready model; on failure the call is finished with the matching status. */
static struct model *get_model(struct rpc_call *c, const char *name, const char *version)
{
	if (!name || !name[0]) {
		reply_err(c, ST_INVALID_ARGUMENT, "a model name is required");
		return NULL;
	}
	struct model *m = NULL;
	char *err = NULL;
	int rc = repo_get(c->r->repo, name, version, &m, &err);
	if (rc == 0)
		return m;
	if (err) /* the repository's message names the model, version and reason */
		reply_err(c, rpc_status_from_errno(rc), "%s", err);
	else if (rc == -ENOENT)
		reply_err(c, ST_NOT_FOUND, "model '%s'%s%s is not found", name,
			  version && version[0] ? " version " : "", version ? version : "");
	else
		reply_err(c, rpc_status_from_errno(rc), "model '%s' is not ready", name);
	free(err);
	return NULL;
}

/* ServerLive: the process answers, so it is live. */
static void h_server_live(struct rpc_call *c, ProtobufCMessage **req)
{
	Inference__ServerLiveResponse resp = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
	resp.live = 1;
	reply(c, &resp.base);
}

/* ServerReady: the start-up load of the repository has finished. */
static void h_server_ready(struct rpc_call *c, ProtobufCMessage **req)
{
	Inference__ServerReadyResponse resp = INFERENCE__SERVER_READY_RESPONSE__INIT;
	resp.ready = repo_ready(c->r->repo);
	reply(c, &resp.base);
}

/* grpc.health.v1.Health/Check for the server as a whole or the inference service. */
static void h_health(struct rpc_call *c, ProtobufCMessage **req)
{
	const Grpc__Health__V1__HealthCheckRequest *in = (void *)*req;
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	if (!in->service[0] || strcmp(in->service, SERVICE) == 0)
		resp.status = repo_ready(c->r->repo)
				      ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
				      : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	else
		resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
	reply(c, &resp.base);
}

/* ServerMetadata: name, version and the protocol extensions that work here. */
static void h_server_metadata(struct rpc_call *c, ProtobufCMessage **req)
{
	static const char *const ext[] = { "model_repository", "model_configuration", "statistics",
					   "schedule_policy" };
	Inference__ServerMetadataResponse resp = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
	resp.name = (char *)"acceld";
	resp.version = (char *)PACKAGE_VERSION;
	resp.n_extensions = ACC_ARRAY_LEN(ext);
	resp.extensions = (char **)ext;
	reply(c, &resp.base);
}

/* ModelReady: the named version (or the latest) is READY. */
static void h_model_ready(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__ModelReadyRequest *in = (void *)*req;
	if (!in->name[0]) {
		reply_err(c, ST_INVALID_ARGUMENT, "a model name is required");
		return;
	}
	Inference__ModelReadyResponse resp = INFERENCE__MODEL_READY_RESPONSE__INIT;
	resp.ready = repo_state(c->r->repo, in->name, in->version) == MODEL_READY;
	reply(c, &resp.base);
}

/* One TensorMetadata entry pointing into io. */
static void tensor_meta(Inference__ModelMetadataResponse__TensorMetadata *t, const struct model_io *io)
{
	inference__model_metadata_response__tensor_metadata__init(t);
	t->name = io->name;
	t->datatype = (char *)dtype_name(io->dtype);
	t->n_shape = io->ndims > 0 ? (size_t)io->ndims : 0; /* < 0: rank not declared */
	t->shape = (int64_t *)io->dims;
}

/* ModelMetadata: versions, platform and tensors of a ready model. */
static void h_model_metadata(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__ModelMetadataRequest *in = (void *)*req;
	struct model *m = get_model(c, in->name, in->version);
	if (!m)
		return;
	size_t ni = model_n_inputs(m), no = model_n_outputs(m);
	Inference__ModelMetadataResponse__TensorMetadata *ts = xcalloc(ni + no + 1, sizeof(*ts));
	Inference__ModelMetadataResponse__TensorMetadata **tp = xcalloc(ni + no + 1, sizeof(*tp));
	for (size_t i = 0; i < ni + no; i++) {
		tensor_meta(&ts[i], i < ni ? model_input(m, i) : model_output(m, i - ni));
		tp[i] = &ts[i];
	}
	const char **versions;
	Inference__ModelMetadataResponse resp = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
	resp.name = (char *)model_name(m);
	resp.n_versions = model_versions(m, &versions);
	resp.versions = (char **)versions;
	resp.platform = (char *)model_platform(m);
	resp.n_inputs = ni;
	resp.inputs = tp;
	resp.n_outputs = no;
	resp.outputs = tp + ni;
	reply(c, &resp.base);
	free(ts);
	free(tp);
	model_put(m);
}

/* ModelConfig: the effective configuration, translated from its JSON form. */
static void h_model_config(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__ModelConfigRequest *in = (void *)*req;
	struct model *m = get_model(c, in->name, in->version);
	if (!m)
		return;
	Inference__ModelConfig *cfg = NULL;
	char *err = NULL;
	if (rpc_codec_model_config(model_config(m), &cfg, &err) < 0) {
		reply_err(c, ST_INTERNAL, "model '%s': configuration cannot be expressed: %s",
			  model_name(m), err);
	} else {
		Inference__ModelConfigResponse resp = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
		resp.config = cfg;
		reply(c, &resp.base);
		protobuf_c_message_free_unpacked(&cfg->base, NULL);
	}
	free(err);
	model_put(m);
}

/* ModelStatistics: one model (all versions or one) or every loaded model. */
static void h_model_statistics(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__ModelStatisticsRequest *in = (void *)*req;
	struct model_stats *s = NULL;
	size_t n = 0;
	char *err = NULL;
	int rc = repo_stats(c->r->repo, in->name, in->version, &s, &n, &err);
	if (rc < 0) {
		reply_err(c, rpc_status_from_errno(rc), "%s", err ? err : "no statistics");
		free(err);
		return;
	}
	Inference__ModelStatisticsResponse *resp = rpc_codec_stats(s, n);
	reply(c, &resp->base);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	repo_stats_free(s, n);
}

/* RepositoryIndex: every model found, with state and reason. */
static void h_repository_index(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__RepositoryIndexRequest *in = (void *)*req;
	struct repo_index_entry *e = NULL;
	size_t n = 0;
	int rc = repo_index(c->r->repo, in->ready, &e, &n);
	if (rc < 0) {
		reply_err(c, rpc_status_from_errno(rc), "cannot list the model repository");
		return;
	}
	Inference__RepositoryIndexResponse__ModelIndex *mi = xcalloc(n + 1, sizeof(*mi));
	Inference__RepositoryIndexResponse__ModelIndex **mp = xcalloc(n + 1, sizeof(*mp));
	for (size_t i = 0; i < n; i++) {
		inference__repository_index_response__model_index__init(&mi[i]);
		mi[i].name = e[i].name;
		mi[i].version = e[i].version ? e[i].version : (char *)"";
		mi[i].state = (char *)model_state_name(e[i].state);
		mi[i].reason = e[i].reason ? e[i].reason : (char *)"";
		mp[i] = &mi[i];
	}
	Inference__RepositoryIndexResponse resp = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
	resp.n_models = n;
	resp.models = mp;
	reply(c, &resp.base);
	free(mi);
	free(mp);
	repo_index_free(e, n);
}

/* Queue repository work for the loader thread (it holds a call reference). */
static void work_push(struct rpc_call *c)
{
	struct rpc *r = c->r;
	call_ref(c);
	pthread_mutex_lock(&r->mu);
	c->work_next = NULL;
	if (r->work_tail)
		r->work_tail->work_next = c;
	else
		r->work_head = c;
	r->work_tail = c;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* The string value of a repository parameter, or NULL if it has none. */
static char *repo_param_string(const Inference__ModelRepositoryParameter *p)
{
	if (!p)
		return NULL;
	if (p->parameter_choice_case == INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM)
		return xstrdup(p->string_param);
	if (p->parameter_choice_case == INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_BYTES_PARAM)
		return xstrndup((const char *)p->bytes_param.data, p->bytes_param.len);
	return NULL;
}

/* RepositoryModelLoad: load or reload a model, optionally with a configuration override. */
static void h_repository_load(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__RepositoryModelLoadRequest *in = (void *)*req;
	if (!in->model_name[0]) {
		reply_err(c, ST_INVALID_ARGUMENT, "a model name is required");
		return;
	}
	for (size_t i = 0; i < in->n_parameters; i++) {
		const char *key = in->parameters[i]->key;
		if (strncmp(key, "file:", 5) == 0) {
			reply_err(c, ST_UNIMPLEMENTED, "loading model files sent with the request ('%s') is not supported", key);
			return;
		}
		if (strcmp(key, "config") == 0) {
			free(c->work_config);
			c->work_config = repo_param_string(in->parameters[i]->value);
			if (!c->work_config) {
				reply_err(c, ST_INVALID_ARGUMENT, "parameter 'config' must be a JSON string");
				return;
			}
		}
	}
	c->work = WORK_LOAD;
	c->work_name = xstrdup(in->model_name);
	work_push(c);
}

/* RepositoryModelUnload: unload a model (requests in flight finish). */
static void h_repository_unload(struct rpc_call *c, ProtobufCMessage **req)
{
	const Inference__RepositoryModelUnloadRequest *in = (void *)*req;
	if (!in->model_name[0]) {
		reply_err(c, ST_INVALID_ARGUMENT, "a model name is required");
		return;
	}
	c->work = WORK_UNLOAD;
	c->work_name = xstrdup(in->model_name);
	work_push(c);
}

/* Run one queued repository job and finish its call. */
static void work_run(struct rpc_call *c)
{
	if (call_cancelled(c)) { /* the client left (or shutdown cancelled the call) */
		call_finish(c, ST_CANCELLED, "cancelled", NULL);
		return;
	}
	char *err = NULL;
	int rc = c->work == WORK_LOAD ? repo_load(c->r->repo, c->work_name, c->work_config, &err)
				      : repo_unload(c->r->repo, c->work_name, &err);
	Inference__RepositoryModelLoadResponse loaded = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
	Inference__RepositoryModelUnloadResponse unloaded = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
	if (rc == 0)
		reply(c, c->work == WORK_LOAD ? &loaded.base : &unloaded.base);
	else
		reply_err(c, rpc_status_from_errno(rc), "%s '%s' failed: %s",
			  c->work == WORK_LOAD ? "load of" : "unload of", c->work_name,
			  err ? err : strerror(-rc));
	free(err);
}

/* The loader thread: runs repository jobs one at a time. */
static void *loader_main(void *arg)
{
	struct rpc *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->work_head && !r->loader_exit)
			pthread_cond_wait(&r->cond, &r->mu);
		if (!r->work_head)
			break;
		struct rpc_call *c = r->work_head;
		r->work_head = c->work_next;
		if (!r->work_head)
			r->work_tail = NULL;
		pthread_mutex_unlock(&r->mu);
		work_run(c);
		call_unref(c);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Keeps a finished request alive while gRPC still sends slices pointing into its results. */
struct rpc_hold {
	atomic_int refs;
	struct infer_request *req;
};

/* Drop a hold reference (also gRPC's slice destructor); the last frees the request. */
static void hold_unref(void *p)
{
	struct rpc_hold *h = p;
	if (atomic_fetch_sub(&h->refs, 1) == 1) {
		infer_request_free(h->req);
		free(h);
	}
}

/* Completion of an inference (scheduler worker thread): encode and send the response. */
static void infer_done(struct infer_request *req, void *arg)
{
	struct rpc_call *c = arg;
	struct rpc *r = c->r;
	char *err = NULL;
	if (req->status < 0) {
		reply_err(c, rpc_status_from_errno(req->status), "%s",
			  req->error ? req->error : strerror(-req->status));
		goto out_free;
	}
	if (call_cancelled(c)) /* the client is gone: nothing to encode */
		goto out_free;
	struct rpc_wire w;
	if (rpc_codec_infer_response(req, &w, &err) < 0) {
		reply_err(c, ST_INTERNAL, "cannot encode the response: %s", err);
		goto out_free;
	}
	if (w.total > r->max_msg) {
		reply_err(c, ST_RESOURCE_EXHAUSTED,
			  "response of %zu bytes exceeds the limit of %zu bytes (max_message_bytes)",
			  w.total, r->max_msg);
		rpc_codec_wire_free(&w);
		goto out_free;
	}
	struct rpc_hold *h = xmalloc(sizeof(*h));
	atomic_init(&h->refs, 1);
	h->req = req;
	grpc_slice *sl = xcalloc(w.n ? w.n : 1, sizeof(*sl));
	for (size_t i = 0; i < w.n; i++) {
		if (w.parts[i].borrowed) {
			atomic_fetch_add(&h->refs, 1);
			sl[i] = grpc_slice_new_with_user_data((void *)w.parts[i].data, w.parts[i].len,
							      hold_unref, h);
		} else {
			sl[i] = grpc_slice_from_copied_buffer((const char *)w.parts[i].data, w.parts[i].len);
		}
	}
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, w.n);
	for (size_t i = 0; i < w.n; i++)
		grpc_slice_unref(sl[i]);
	free(sl);
	rpc_codec_wire_free(&w);
	call_finish(c, ST_OK, NULL, bb);
	hold_unref(h);
	call_unref(c);
	return;
out_free:
	free(err);
	infer_request_free(req);
	call_unref(c);
}

/* Microseconds left before the client's deadline: UINT64_MAX if it set none, 0 if passed. */
static uint64_t call_time_left_us(const struct rpc_call *c)
{
	gpr_timespec dl = c->details.deadline;
	if (gpr_time_cmp(dl, gpr_inf_future(dl.clock_type)) >= 0)
		return UINT64_MAX;
	double us = gpr_timespec_to_micros(gpr_time_sub(dl, gpr_now(dl.clock_type)));
	return us <= 0 ? 0 : us >= 1e18 ? UINT64_MAX : (uint64_t)us;
}

/* Release the received bytes a request's raw inputs pointed into. */
static void slice_free(void *p)
{
	grpc_slice *s = p;
	grpc_slice_unref(*s);
	free(s);
}

/* ModelInfer: decode (raw inputs stay in the received slice), validate and queue with the
 * client's deadline as queue timeout (when tighter); the response is sent by infer_done. */
static void h_model_infer(struct rpc_call *c, grpc_slice body)
{
	Inference__ModelInferRequest *in =
		rpc_codec_unpack_infer_request(GRPC_SLICE_START_PTR(body), GRPC_SLICE_LENGTH(body));
	if (!in) {
		grpc_slice_unref(body);
		reply_err(c, ST_INVALID_ARGUMENT, "malformed inference.ModelInferRequest message");
		return;
	}
	struct model *m = get_model(c, in->model_name, in->model_version);
	if (!m) {
		rpc_codec_free_infer_request(in);
		grpc_slice_unref(body);
		return;
	}
	struct infer_request *ir = infer_request_new(m);
	model_put(m);
	grpc_slice *keep = xmalloc(sizeof(*keep));
	*keep = body;
	char *err = NULL;
	int rc = rpc_codec_infer_request(in, keep, slice_free, ir, &err); /* ir owns both now */
	if (rc == 0) { /* no point queueing past the client's deadline: make it the queue timeout */
		uint64_t left = call_time_left_us(c);
		if (left == 0)
			rc = acc_err(&err, -ETIMEDOUT, "the client's deadline passed before queueing");
		else if (left != UINT64_MAX && (!ir->timeout_us || left < ir->timeout_us))
			ir->timeout_us = left;
	}
	if (rc == 0) {
		ir->done = infer_done;
		ir->arg = c;
		call_ref(c);
		rc = infer_submit(ir, &err);
		if (rc < 0)
			call_unref(c);
	}
	if (rc < 0) {
		reply_err(c, rpc_status_from_errno(rc), "%s", err ? err : strerror(-rc));
		infer_request_free(ir);
	}
	free(err);
}

static const struct rpc_method methods[] = {
	{ "/" SERVICE "/ServerLive", &inference__server_live_request__descriptor, h_server_live, NULL },
	{ "/" SERVICE "/ServerReady", &inference__server_ready_request__descriptor, h_server_ready, NULL },
	{ "/" SERVICE "/ModelReady", &inference__model_ready_request__descriptor, h_model_ready, NULL },
	{ "/" SERVICE "/ServerMetadata", &inference__server_metadata_request__descriptor, h_server_metadata, NULL },
	{ "/" SERVICE "/ModelMetadata", &inference__model_metadata_request__descriptor, h_model_metadata, NULL },
	{ "/" SERVICE "/ModelInfer", &inference__model_infer_request__descriptor, NULL, h_model_infer },
	{ "/" SERVICE "/ModelConfig", &inference__model_config_request__descriptor, h_model_config, NULL },
	{ "/" SERVICE "/ModelStatistics", &inference__model_statistics_request__descriptor, h_model_statistics, NULL },
	{ "/" SERVICE "/RepositoryIndex", &inference__repository_index_request__descriptor, h_repository_index, NULL },
	{ "/" SERVICE "/RepositoryModelLoad", &inference__repository_model_load_request__descriptor, h_repository_load, NULL },
	{ "/" SERVICE "/RepositoryModelUnload", &inference__repository_model_unload_request__descriptor, h_repository_unload, NULL },
	{ "/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor, h_health, NULL },
};

/* The method table entry for a request path, or NULL. */
static const struct rpc_method *find_method(grpc_slice path)
{
	size_t len = GRPC_SLICE_LENGTH(path);
	for (size_t i = 0; i < ACC_ARRAY_LEN(methods); i++)
		if (strlen(methods[i].path) == len && memcmp(methods[i].path, GRPC_SLICE_START_PTR(path), len) == 0)
			return &methods[i];
	return NULL;
}

/* ------------------------------------------------------------------- event handling -- */

/* Ask gRPC for the next incoming call on queue q. */
static void request_call(struct rpc_cq *q)
{
	struct rpc *r = q->r;
	if (atomic_load(&r->stopping))
		return;
	struct rpc_call *c = xcalloc(1, sizeof(*c));
	c->r = r;
	c->q = q;
	atomic_init(&c->refs, 1);
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	c->t_new = (struct rpc_tag){ TAG_NEW, c };
	c->t_recv = (struct rpc_tag){ TAG_RECV, c };
	c->t_send = (struct rpc_tag){ TAG_SEND, c };
	c->t_close = (struct rpc_tag){ TAG_CLOSE, c };
	grpc_call_error e = grpc_server_request_call(r->server, &c->call, &c->details, &c->md, q->cq,
						     q->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		log_warn("rpc: cannot request a call: %s", grpc_call_error_to_string(e));
		call_free(c);
	}
}

/* A new call arrived: replace the request, then watch for close and read the message. */
static void on_new(struct rpc_call *c, bool ok)
{
	if (!ok) { /* the server is shutting down: the request was never matched */
		call_unref(c);
		return;
	}
	request_call(c->q);
	c->accepted = true;
	atomic_fetch_add(&c->r->live, 1);

	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	call_batch(c, &op, 1, &c->t_close);

	c->method = find_method(c->details.method);
	if (!c->method) {
		reply_err(c, ST_UNIMPLEMENTED, "unknown method %.*s",
			  (int)GRPC_SLICE_LENGTH(c->details.method),
			  (const char *)GRPC_SLICE_START_PTR(c->details.method));
		call_unref(c);
		return;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv;
	call_batch(c, &op, 1, &c->t_recv);
	call_unref(c); /* the NEW reference; the batches hold their own */
}

/* The request message arrived (or the call failed): decode and dispatch. */
static void on_recv(struct rpc_call *c, bool ok)
{
	if (!ok)
		goto out; /* the call is dead; CLOSE reports it */
	if (!c->recv) {
		reply_err(c, ST_INVALID_ARGUMENT, "no request message received");
		goto out;
	}
	grpc_slice body;
	if (!call_body(c, &body)) {
		reply_err(c, ST_INVALID_ARGUMENT, "cannot read the request message");
		goto out;
	}
	if (c->method->bytes_fn) {
		c->method->bytes_fn(c, body);
		goto out;
	}
	ProtobufCMessage *req = protobuf_c_message_unpack(c->method->in, NULL, GRPC_SLICE_LENGTH(body),
							  GRPC_SLICE_START_PTR(body));
	grpc_slice_unref(body);
	if (!req) {
		reply_err(c, ST_INVALID_ARGUMENT, "malformed %s message", c->method->in->name);
		goto out;
	}
	c->method->fn(c, &req);
	if (req)
		protobuf_c_message_free_unpacked(req, NULL);
out:
	call_unref(c);
}

/* Dispatch one completion-queue event. */
static void on_event(struct rpc *r, struct rpc_tag *t, bool ok)
{
	struct rpc_call *c = t->call;
	switch (t->kind) {
	case TAG_NEW:
		on_new(c, ok);
		break;
	case TAG_RECV:
		on_recv(c, ok);
		break;
	case TAG_SEND:
		if (c->send) {
			grpc_byte_buffer_destroy(c->send);
			c->send = NULL;
		}
		call_unref(c);
		break;
	case TAG_CLOSE:
		atomic_store(&c->closed, true);
		call_unref(c);
		break;
	case TAG_SHUTDOWN:
		pthread_mutex_lock(&r->mu);
		r->shutdown_done = true;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);
		break;
	}
}

/* A completion-queue thread: poll until the queue is shut down. */
static void *cq_main(void *arg)
{
	struct rpc_cq *q = arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(q->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			on_event(q->r, ev.tag, ev.success != 0);
	}
	return NULL;
}

/* --------------------------------------------------------------------- listeners -- */

/* Remove a socket file nobody listens on; refuse other files and live sockets. */
static int clear_stale_socket(const char *path, char **err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : acc_err(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return acc_err(err, -EEXIST, "%s exists and is not a socket", path);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return acc_err(err, -ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return acc_err(err, -errno, "socket: %s", strerror(errno));
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	if (rc == 0)
		return acc_err(err, -EADDRINUSE, "%s: another server is listening there", path);
	if (e != ECONNREFUSED)
		return acc_err(err, -e, "%s: %s", path, strerror(e));
	if (unlink(path) < 0 && errno != ENOENT)
		return acc_err(err, -errno, "cannot remove stale socket %s: %s", path, strerror(errno));
	log_info("rpc: removed stale socket %s", path);
	return 0;
}

/* Add listen entry i (TCP "host:port" or "unix:/path") to the server. */
static int listen_one(struct rpc *r, size_t i, const char *addr, grpc_server_credentials *creds,
		      char **err)
{
	const char *path = NULL;
	bool abstract = false; /* Linux abstract socket: no file, no port */
	if (strncmp(addr, "unix:", 5) == 0) {
		path = addr + 5;
		if (strncmp(path, "//", 2) == 0)
			path += 2; /* "unix:///run/x.sock" */
		if (!path[0])
			return acc_err(err, -EINVAL, "listen address '%s' has no socket path", addr);
		int rc = clear_stale_socket(path, err);
		if (rc < 0)
			return rc;
	} else if (strncmp(addr, "unix-abstract:", 14) == 0) {
		abstract = true;
	} else if (!strchr(addr, ':')) {
		return acc_err(err, -EINVAL, "listen address '%s' is neither host:port nor unix:/path", addr);
	}
	int port = grpc_server_add_http2_port(r->server, addr, creds);
	if (port <= 0)
		return acc_err(err, -EADDRINUSE, "cannot listen on %s (address in use, or invalid)", addr);
	if (path) {
		r->unix_paths[i] = xstrdup(path);
		if (chmod(path, 0660) < 0)
			return acc_err(err, -errno, "chmod %s: %s", path, strerror(errno));
	} else if (!abstract) {
		r->ports[i] = port;
	}
	return 0;
}

/* ------------------------------------------------------------------ start and stop -- */

/* Wait for the shutdown tag until deadline_ns (0 = forever); true if it arrived. */
static bool wait_shutdown(struct rpc *r, uint64_t deadline_ns)
{
	pthread_mutex_lock(&r->mu);
	while (!r->shutdown_done) {
		if (!deadline_ns) {
			pthread_cond_wait(&r->cond, &r->mu);
			continue;
		}
		struct timespec ts = { (time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u) };
		if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
			break;
	}
	bool done = r->shutdown_done;
	pthread_mutex_unlock(&r->mu);
	return done;
}

/* Tear down what rpc_start built; the server must be started or never have had a port. */
static void teardown(struct rpc *r)
{
	if (r->server) {
		grpc_server_shutdown_and_notify(r->server, r->cqs[0].cq, &r->t_shutdown);
		bool threads = r->cqs[0].running;
		if (!threads) { /* nobody polls yet: drain here until the shutdown tag */
			for (;;) {
				grpc_event ev = grpc_completion_queue_next(r->cqs[0].cq,
									   gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
				if (ev.type == GRPC_OP_COMPLETE && ev.tag == &r->t_shutdown)
					break;
				if (ev.type == GRPC_OP_COMPLETE)
					on_event(r, ev.tag, ev.success != 0);
			}
		} else if (!wait_shutdown(r, acc_now_ns() + RPC_STOP_GRACE_NS)) {
			log_warn("rpc: %ld call(s) still running after %llu s: cancelling them",
				 atomic_load(&r->live), RPC_STOP_GRACE_NS / 1000000000ull);
			grpc_server_cancel_all_calls(r->server);
			wait_shutdown(r, 0);
		}
	}
	/* The shutdown tag can come before the last cancelled call is freed (its request may still
	 * be queued in a scheduler, which runs on): wait for them, or they would touch freed r. */
	for (uint64_t t0 = acc_now_ns(), warned = 0; atomic_load(&r->live) > 0;) {
		if (!warned && acc_now_ns() - t0 > RPC_STOP_GRACE_NS) {
			log_warn("rpc: waiting for %ld call(s) to finish", atomic_load(&r->live));
			warned = 1;
		}
		usleep(1000);
	}
	if (r->loader_running) {
		pthread_mutex_lock(&r->mu);
		r->loader_exit = true;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->loader, NULL);
	}
	if (r->server)
		grpc_server_destroy(r->server);
	for (int i = 0; i < r->n_cq; i++) {
		grpc_completion_queue_shutdown(r->cqs[i].cq);
		if (r->cqs[i].running) {
			pthread_join(r->cqs[i].thread, NULL);
		} else {
			while (grpc_completion_queue_next(r->cqs[i].cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
							  NULL).type != GRPC_QUEUE_SHUTDOWN)
				;
		}
		grpc_completion_queue_destroy(r->cqs[i].cq);
	}
	for (size_t i = 0; i < r->n_listen; i++) {
		struct stat st;
		if (r->unix_paths[i] && lstat(r->unix_paths[i], &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(r->unix_paths[i]);
		free(r->unix_paths[i]);
	}
	free(r->unix_paths);
	free(r->ports);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r);
	grpc_shutdown();
}

/* Start the server. */
int rpc_start(const struct rpc_options *opt, struct repo *repo, struct rpc **out, char **err)
{
	*out = NULL;
	if (!opt->n_listen)
		return acc_err(err, -EINVAL, "no listen address");
	int threads = opt->threads ? opt->threads : 1;
	if (threads < 1 || threads > RPC_MAX_CQ)
		return acc_err(err, -EINVAL, "rpc threads must be 1..%d, not %d", RPC_MAX_CQ, threads);
	size_t max_msg = opt->max_message_bytes ? opt->max_message_bytes : RPC_DEFAULT_MAX_MESSAGE_BYTES;
	if (max_msg > INT_MAX)
		return acc_err(err, -EINVAL, "max message size %zu is above %d bytes", max_msg, INT_MAX);

	grpc_init();
	struct rpc *r = xcalloc(1, sizeof(*r));
	r->repo = repo;
	r->max_msg = max_msg;
	r->t_shutdown.kind = TAG_SHUTDOWN;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->n_listen = opt->n_listen;
	r->ports = xcalloc(opt->n_listen, sizeof(int));
	r->unix_paths = xcalloc(opt->n_listen, sizeof(char *));

	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = (int)max_msg },
		{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = (int)max_msg },
		/* gRPC sets SO_REUSEPORT by default: a second daemon would then share the port. */
		{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0 },
	};
	grpc_channel_args chargs = { ACC_ARRAY_LEN(args), args };
	r->server = grpc_server_create(&chargs, NULL);
	r->n_cq = threads;
	for (int i = 0; i < threads; i++) {
		r->cqs[i].r = r;
		r->cqs[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(r->server, r->cqs[i].cq, NULL);
	}

	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	int rc = 0;
	for (size_t i = 0; i < opt->n_listen && rc == 0; i++)
		rc = listen_one(r, i, opt->listen[i], creds, err);
	grpc_server_credentials_release(creds);
	if (rc < 0) {
		teardown(r);
		return rc;
	}

	grpc_server_start(r->server);
	for (int i = 0; i < threads; i++)
		for (int k = 0; k < RPC_PENDING_PER_CQ; k++)
			request_call(&r->cqs[i]);
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&r->cqs[i].thread, NULL, cq_main, &r->cqs[i]) != 0)
			fatal("rpc: cannot start a completion-queue thread");
		r->cqs[i].running = true;
		char name[16];
		snprintf(name, sizeof(name), "rpc-cq%d", i);
		pthread_setname_np(r->cqs[i].thread, name);
	}
	if (pthread_create(&r->loader, NULL, loader_main, r) != 0)
		fatal("rpc: cannot start the loader thread");
	r->loader_running = true;
	pthread_setname_np(r->loader, "rpc-load");
	for (size_t i = 0; i < opt->n_listen; i++) {
		if (r->ports[i])
			log_info("rpc: listening on %s (port %d)", opt->listen[i], r->ports[i]);
		else
			log_info("rpc: listening on %s", opt->listen[i]);
	}
	*out = r;
	return 0;
}

/* The bound TCP port of listen entry i. */
int rpc_port(const struct rpc *r, size_t i)
{
	return r && i < r->n_listen ? r->ports[i] : 0;
}

/* Live accepted calls. */
long rpc_live_calls(const struct rpc *r)
{
	return atomic_load(&r->live);
}

/* Graceful stop. */
void rpc_stop(struct rpc *r)
{
	if (!r)
		return;
	atomic_store(&r->stopping, true);
	teardown(r);
}
