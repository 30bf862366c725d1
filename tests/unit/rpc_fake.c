/* rpc_fake.c - an in-memory stand-in for the repository and the scheduler (see rpc_fake.h). */
#include "config.h"
#include "rpc_fake.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "infer.h"
#include "repo.h"
#include "util.h"

int fake_slow_ms = 300;

enum fake_kind { FK_ECHO, FK_SLOW, FK_BIG, FK_FAIL, FK_LOADING, FK_BROKEN };

struct model {
	const char *name;
	enum fake_kind kind;
	int max_batch;
	struct model_io in, out[2];
	size_t n_out;
	json_t *config;
	atomic_long refs;
};

struct repo {
	int unused;
};

static struct repo the_repo;
static struct model models[6];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_bool ready = true;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int in_flight;
static atomic_long alive;
static atomic_ullong last_timeout;
static char *last_config;
static int load_count;
static const char *versions[] = { "1" };

static const char *echo_config =
	"{\"name\":\"echo\",\"platform\":\"onnxruntime_onnx\",\"backend\":\"onnxruntime\","
	"\"max_batch_size\":8,"
	"\"input\":[{\"name\":\"INPUT0\",\"data_type\":\"TYPE_FP32\",\"dims\":[4]}],"
	"\"output\":[{\"name\":\"OUTPUT0\",\"data_type\":\"TYPE_FP32\",\"dims\":[4]},"
	"{\"name\":\"OUTPUT1\",\"data_type\":\"TYPE_FP32\",\"dims\":[\"4\"]}],"
	"\"version_policy\":{\"latest\":{\"num_versions\":1}},"
	"\"instance_group\":[{\"name\":\"echo_0\",\"kind\":\"KIND_CPU\",\"count\":2}],"
	"\"dynamic_batching\":{\"preferred_batch_size\":[4,8],\"max_queue_delay_microseconds\":\"100\","
	"\"priority_levels\":2,\"default_priority_level\":1,"
	"\"default_queue_policy\":{\"timeout_action\":\"REJECT\",\"max_queue_size\":16}},"
	"\"parameters\":{\"threads\":{\"string_value\":\"2\"}},"
	"\"acceld_private\":{\"ignored\":true}}";

/* Set up one io description. */
static void io(struct model_io *t, const char *name, enum dtype dt, int ndims, int64_t d0, int64_t d1)
{
	t->name = (char *)name;
	t->dtype = dt;
	t->ndims = ndims;
	t->dims[0] = d0;
	t->dims[1] = d1;
}

/* Build the model table. */
static void init(void)
{
	const char *names[] = { "echo", "slow", "big", "fail", "loading", "broken" };
	for (int i = 0; i < 6; i++) {
		struct model *m = &models[i];
		m->name = names[i];
		m->kind = (enum fake_kind)i;
		m->max_batch = 8;
		io(&m->in, "INPUT0", DT_FP32, 2, -1, 4);
		io(&m->out[0], "OUTPUT0", DT_FP32, 2, -1, 4);
		io(&m->out[1], "OUTPUT1", DT_FP32, 2, -1, 4);
		m->n_out = 2;
		m->config = json_loads(echo_config, 0, NULL);
		json_object_set_new(m->config, "name", json_string(names[i]));
	}
	struct model *big = &models[FK_BIG];
	big->max_batch = 0;
	io(&big->in, "INPUT0", DT_UINT8, 1, -1, 0);
	io(&big->out[0], "OUTPUT0", DT_UINT8, 1, -1, 0);
	big->n_out = 1;
}

/* The fake repository. */
struct repo *fake_repo(void)
{
	pthread_once(&once, init);
	return &the_repo;
}

void fake_set_ready(bool r) { ready = r; }
long fake_requests_alive(void) { return atomic_load(&alive); }
unsigned long long fake_last_timeout_us(void) { return atomic_load(&last_timeout); }

/* Last configuration override loaded. */
const char *fake_last_config(void)
{
	return last_config ? last_config : "";
}

int fake_load_count(void) { return load_count; }

/* Wait for in-flight requests. */
void fake_drain(void)
{
	pthread_mutex_lock(&mu);
	while (in_flight)
		pthread_cond_wait(&cond, &mu);
	pthread_mutex_unlock(&mu);
}

/* Find a model by name. */
static struct model *find(const char *name)
{
	fake_repo();
	for (int i = 0; name && i < 6; i++)
		if (strcmp(models[i].name, name) == 0)
			return &models[i];
	return NULL;
}

/* ------------------------------------------------------------------------- repo.h -- */

bool repo_ready(const struct repo *r) { return ready; }

/* Load: see the header. */
int repo_load(struct repo *r, const char *name, const char *config_json, char **err)
{
	usleep(50 * 1000);
	if (strcmp(name, "missing") == 0)
		return acc_err(err, -ENOENT, "no model directory '%s'", name);
	if (strcmp(name, "echo") != 0)
		return acc_err(err, -EINVAL, "model '%s': config.json: parse error", name);
	pthread_mutex_lock(&mu);
	free(last_config);
	last_config = xstrdup(config_json ? config_json : "");
	load_count++;
	pthread_mutex_unlock(&mu);
	return 0;
}

/* Unload: only known models. */
int repo_unload(struct repo *r, const char *name, char **err)
{
	if (!find(name))
		return acc_err(err, -ENOENT, "model '%s' is not loaded", name);
	return 0;
}

/* State of a fake model. */
static enum model_state state_of(const struct model *m)
{
	return m->kind == FK_LOADING ? MODEL_LOADING : m->kind == FK_BROKEN ? MODEL_UNAVAILABLE : MODEL_READY;
}

/* Index of all six models. */
int repo_index(struct repo *r, bool ready_only, struct repo_index_entry **out, size_t *n)
{
	fake_repo();
	struct repo_index_entry *e = xcalloc(6, sizeof(*e));
	size_t k = 0;
	for (int i = 0; i < 6; i++) {
		enum model_state s = state_of(&models[i]);
		if (ready_only && s != MODEL_READY)
			continue;
		e[k].name = xstrdup(models[i].name);
		e[k].version = xstrdup(s == MODEL_READY ? "1" : "");
		e[k].state = s;
		e[k].reason = xstrdup(s == MODEL_UNAVAILABLE ? "bad config" : "");
		k++;
	}
	*out = e;
	*n = k;
	return 0;
}

/* Free an index. */
void repo_index_free(struct repo_index_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].version);
		free(e[i].reason);
	}
	free(e);
}

/* Look up a ready model. */
int repo_get(struct repo *r, const char *name, const char *version, struct model **out, char **err)
{
	struct model *m = find(name);
	*out = NULL;
	if (!m)
		return acc_err(err, -ENOENT, "unknown model '%s'", name ? name : "");
	if (version && version[0] && strcmp(version, "1") != 0)
		return acc_err(err, -ENOENT, "model '%s' has no version '%s'", name, version);
	if (m->kind == FK_LOADING)
		return acc_err(err, -EAGAIN, "model '%s' is not ready (LOADING)", name);
	if (m->kind == FK_BROKEN)
		return acc_err(err, -EAGAIN, "model '%s' is not ready (UNAVAILABLE: bad config)", name);
	*out = model_get(m);
	return 0;
}

/* State by name. */
enum model_state repo_state(struct repo *r, const char *name, const char *version)
{
	struct model *m = find(name);
	if (!m || (version && version[0] && strcmp(version, "1") != 0))
		return MODEL_UNKNOWN;
	return state_of(m);
}

/* Statistics with fixed numbers per ready model. */
int repo_stats(struct repo *r, const char *name, const char *version, struct model_stats **out,
	       size_t *n, char **err)
{
	fake_repo();
	if (name && name[0] && (!find(name) || state_of(find(name)) != MODEL_READY))
		return acc_err(err, -ENOENT, "model '%s' is not loaded", name);
	struct model_stats *s = xcalloc(6, sizeof(*s));
	size_t k = 0;
	for (int i = 0; i < 6; i++) {
		if (state_of(&models[i]) != MODEL_READY || (name && name[0] && strcmp(name, models[i].name)))
			continue;
		s[k].name = xstrdup(models[i].name);
		s[k].version = xstrdup("1");
		s[k].last_inference_ms = 1700000000000ull + (uint64_t)i;
		s[k].inference_count = 10;
		s[k].execution_count = 5;
		s[k].success = (struct model_stat_duration){ 5, 5000 };
		s[k].queue = (struct model_stat_duration){ 5, 700 };
		s[k].n_batch = 1;
		s[k].batch = xcalloc(1, sizeof(*s[k].batch));
		s[k].batch[0].batch_size = 2;
		s[k].batch[0].compute_infer = (struct model_stat_duration){ 5, 3000 };
		k++;
	}
	*out = s;
	*n = k;
	return 0;
}

/* Free statistics. */
void repo_stats_free(struct model_stats *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].name);
		free(s[i].version);
		free(s[i].batch);
	}
	free(s);
}

struct model *model_get(struct model *m) { atomic_fetch_add(&m->refs, 1); return m; }
void model_put(struct model *m) { atomic_fetch_sub(&m->refs, 1); }
const char *model_name(const struct model *m) { return m->name; }
const char *model_version(const struct model *m) { return "1"; }
size_t model_versions(const struct model *m, const char ***out) { *out = versions; return 1; }
const char *model_platform(const struct model *m) { return "onnxruntime_onnx"; }
int model_max_batch_size(const struct model *m) { return m->max_batch; }
size_t model_n_inputs(const struct model *m) { return 1; }
size_t model_n_outputs(const struct model *m) { return m->n_out; }
const struct model_io *model_input(const struct model *m, size_t i) { return &m->in; }
const struct model_io *model_output(const struct model *m, size_t i) { return &m->out[i]; }
const json_t *model_config(const struct model *m) { return m->config; }

/* Names as the real repository gives them. */
const char *model_state_name(enum model_state s)
{
	switch (s) {
	case MODEL_LOADING: return "LOADING";
	case MODEL_READY: return "READY";
	case MODEL_UNLOADING: return "UNLOADING";
	case MODEL_UNAVAILABLE: return "UNAVAILABLE";
	default: return "UNKNOWN";
	}
}

/* ------------------------------------------------------------------------ infer.h -- */

/* A zeroed request with a model reference. */
struct infer_request *infer_request_new(struct model *model)
{
	struct infer_request *r = xcalloc(1, sizeof(*r));
	r->model = model ? model_get(model) : NULL;
	atomic_fetch_add(&alive, 1);
	return r;
}

/* Free a request the way the real one does. */
void infer_request_free(struct infer_request *req)
{
	if (!req)
		return;
	for (size_t i = 0; i < req->n_inputs; i++)
		free(req->inputs[i].name);
	free(req->inputs);
	for (size_t i = 0; i < req->n_requested; i++)
		free(req->requested[i]);
	free(req->requested);
	for (size_t i = 0; i < req->n_results; i++) {
		free(req->results[i].name);
		free(req->results[i].data);
	}
	free(req->results);
	free(req->error);
	free(req->id);
	if (req->owner_free)
		req->owner_free(req->owner);
	if (req->model)
		model_put(req->model);
	atomic_fetch_sub(&alive, 1);
	free(req);
}

/* Check the single input and the requested outputs. */
int infer_validate(const struct infer_request *req, char **err)
{
	const struct model *m = req->model;
	if (!m)
		return acc_err(err, -EINVAL, "no model");
	if (req->n_inputs != 1 || strcmp(req->inputs[0].name, m->in.name) != 0)
		return acc_err(err, -EINVAL, "model '%s' expects exactly one input 'INPUT0'", m->name);
	const struct infer_tensor *t = &req->inputs[0];
	if (t->dtype != m->in.dtype || t->ndims != m->in.ndims)
		return acc_err(err, -EINVAL, "input 'INPUT0': expected %s with %d dims, got %s with %d",
			       dtype_name(m->in.dtype), m->in.ndims, dtype_name(t->dtype), t->ndims);
	for (int d = 0; d < t->ndims; d++)
		if (m->in.dims[d] >= 0 && t->dims[d] != m->in.dims[d])
			return acc_err(err, -EINVAL, "input 'INPUT0': dim %d expected %lld, got %lld", d,
				       (long long)m->in.dims[d], (long long)t->dims[d]);
	if (m->max_batch && (t->dims[0] < 1 || t->dims[0] > m->max_batch))
		return acc_err(err, -EINVAL, "input 'INPUT0': batch size %lld outside 1..%d",
			       (long long)t->dims[0], m->max_batch);
	int64_t numel = shape_numel(t->dims, t->ndims);
	if (numel < 0 || (size_t)numel * dtype_size(t->dtype) != t->bytes)
		return acc_err(err, -EINVAL, "input 'INPUT0': expected %lld bytes, got %zu bytes",
			       (long long)(numel * (int64_t)dtype_size(t->dtype)), t->bytes);
	for (size_t i = 0; i < req->n_requested; i++) {
		bool ok = false;
		for (size_t k = 0; k < m->n_out; k++)
			ok |= strcmp(req->requested[i], m->out[k].name) == 0;
		if (!ok)
			return acc_err(err, -EINVAL, "model '%s' has no output named '%s'", m->name,
				       req->requested[i]);
	}
	return 0;
}

/* Produce the results of a request: OUTPUT0 = INPUT0, OUTPUT1 = -INPUT0. */
static void compute(struct infer_request *req)
{
	const struct model *m = req->model;
	const struct infer_tensor *in = &req->inputs[0];
	size_t n = req->n_requested ? req->n_requested : m->n_out;
	req->results = xcalloc(n, sizeof(*req->results));
	req->n_results = n;
	for (size_t i = 0; i < n; i++) {
		const char *name = req->n_requested ? req->requested[i] : m->out[i].name;
		struct infer_tensor *t = &req->results[i];
		t->name = xstrdup(name);
		t->dtype = in->dtype;
		t->ndims = in->ndims;
		memcpy(t->dims, in->dims, sizeof(t->dims));
		t->bytes = in->bytes;
		t->data = xmalloc(in->bytes + 1);
		if (in->bytes)
			memcpy(t->data, in->data, in->bytes);
		if (strcmp(name, "OUTPUT1") == 0)
			for (size_t k = 0; k < in->bytes / 4; k++)
				((float *)t->data)[k] = -((float *)t->data)[k];
	}
}

/* A request's own completion thread. */
static void *run(void *arg)
{
	struct infer_request *req = arg;
	if (req->model->kind == FK_SLOW)
		usleep((useconds_t)fake_slow_ms * 1000);
	if (req->model->kind == FK_FAIL) {
		req->status = -ETIMEDOUT;
		req->error = xstrdup("queue timeout");
	} else {
		compute(req);
	}
	req->done(req, req->arg);
	pthread_mutex_lock(&mu);
	if (--in_flight == 0)
		pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* Validate and complete asynchronously. */
int infer_submit(struct infer_request *req, char **err)
{
	if (!req->done)
		return acc_err(err, -EINVAL, "request has no completion callback");
	int rc = infer_validate(req, err);
	if (rc < 0)
		return rc;
	req->t_arrive_ns = acc_now_ns();
	atomic_store(&last_timeout, req->timeout_us);
	pthread_mutex_lock(&mu);
	in_flight++;
	pthread_mutex_unlock(&mu);
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, run, req) != 0)
		abort();
	pthread_attr_destroy(&a);
	return 0;
}
