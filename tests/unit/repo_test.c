/* repo_test.c - the repository, model configuration and request path with the real engine
 * and CPU driver, on copies of the example networks in temporary repositories. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "infer.h"
#include "log.h"
#include "repo.h"
#include "util.h"

static struct device_manager *dm;
static char root[64];

/* Path of a file of the example repository. */
static char *example(const char *rel)
{
	const char *top = getenv("top_srcdir");
	return xasprintf("%s/conf/models/%s", top ? top : ".", rel);
}

/* Write bytes to path, creating it. */
static void put_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* Add <root>/<name>/<version>/model.onnx copied from an example network, and config.json
 * (unless cfg is NULL). onnx NULL writes garbage instead of a network. */
static void add_model(const char *name, int version, const char *onnx, const char *cfg)
{
	char *dir = xasprintf("%s/%s", root, name);
	mkdir(dir, 0755);
	char *vdir = xasprintf("%s/%d", dir, version);
	mkdir(vdir, 0755);
	char *dst = xasprintf("%s/model.onnx", vdir);
	if (onnx) {
		char *src = example(onnx), *data, *err = NULL;
		size_t len;
		assert_int_equal(acc_read_file(src, &data, &len, &err), 0);
		put_file(dst, data, len);
		free(data);
		free(src);
	} else {
		put_file(dst, "\x08\x07garbage\xff\xff", 11);
	}
	if (cfg) {
		char *p = xasprintf("%s/config.json", dir);
		put_file(p, cfg, strlen(cfg));
		free(p);
	}
	free(dst);
	free(vdir);
	free(dir);
}

#define MLP_CFG_FMT \
	"{\"name\": \"%s\", \"platform\": \"%s\", \"max_batch_size\": 8," \
	" \"input\": [{\"name\": \"%s\", \"data_type\": \"%s\", \"dims\": [%s]}]," \
	" \"dynamic_batching\": {}%s}"

/* A config for a copy of the example MLP with one field changed. */
static char *mlp_cfg(const char *name, const char *platform, const char *in, const char *dt,
		     const char *dims, const char *extra)
{
	return xasprintf(MLP_CFG_FMT, name, platform, in, dt, dims, extra);
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/acceld-repo-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

static struct repo *open_repo(void)
{
	struct repo *r;
	char *err = NULL;
	assert_int_equal(repo_open(root, dm, 1, &r, &err), 0);
	repo_load_all(r);
	assert_true(repo_ready(r));
	return r;
}

/* The index row of a model, or NULL. */
static const struct repo_index_entry *row(const struct repo_index_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}

static void test_load_all_and_index(void **state)
{
	char *c = mlp_cfg("mlp", "onnxruntime_onnx", "input", "TYPE_FP32", "784", "");
	add_model("mlp", 1, "mlp/1/model.onnx", c);
	free(c);
	add_model("derived", 1, "mlp/1/model.onnx", NULL);
	add_model("broken", 1, NULL, NULL);
	struct repo *r = open_repo();
	struct repo_index_entry *e;
	size_t n;
	assert_int_equal(repo_index(r, false, &e, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(row(e, n, "mlp")->state, MODEL_READY);
	assert_string_equal(row(e, n, "mlp")->version, "1");
	assert_int_equal(row(e, n, "derived")->state, MODEL_READY);
	assert_int_equal(row(e, n, "broken")->state, MODEL_UNAVAILABLE);
	assert_non_null(strstr(row(e, n, "broken")->reason, "model.onnx"));
	repo_index_free(e, n);
	assert_int_equal(repo_index(r, true, &e, &n), 0);
	assert_int_equal(n, 2);
	repo_index_free(e, n);

	struct model *m;
	char *err = NULL;
	assert_int_equal(repo_get(r, "nope", NULL, &m, &err), -ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(repo_get(r, "broken", NULL, &m, &err), -EAGAIN);
	assert_non_null(strstr(err, "UNAVAILABLE"));
	free(err);
	err = NULL;
	assert_int_equal(repo_get(r, "mlp", "7", &m, &err), -ENOENT);
	free(err);
	err = NULL;

	/* A model without config.json gets its configuration from the graph. */
	assert_int_equal(repo_get(r, "derived", "", &m, &err), 0);
	assert_int_equal(model_max_batch_size(m), 64);
	assert_int_equal(model_n_inputs(m), 1);
	assert_string_equal(model_input(m, 0)->name, "input");
	assert_int_equal(model_input(m, 0)->dims[0], -1);
	assert_int_equal(model_input(m, 0)->dims[1], 784);
	assert_string_equal(json_string_value(json_object_get(model_config(m), "name")), "derived");
	model_put(m);
	repo_close(r);
}

static void test_config_errors(void **state)
{
	static const struct {
		const char *name, *platform, *input, *dtype, *dims, *extra, *expect;
	} cases[] = {
		{ "dtype", "onnxruntime_onnx", "input", "TYPE_INT32", "784", "", "data_type" },
		{ "dims", "onnxruntime_onnx", "input", "TYPE_FP32", "783", "", "dimension" },
		{ "rank", "onnxruntime_onnx", "input", "TYPE_FP32", "28, 28", "", "dimensions" },
		{ "inname", "onnxruntime_onnx", "pixels", "TYPE_FP32", "784", "", "not in the ONNX graph" },
		{ "platform", "tensorflow_graphdef", "input", "TYPE_FP32", "784", "", "not supported" },
		{ "other", "onnxruntime_onnx", "input", "TYPE_FP32", "784", "", "does not match" },
		{ "badtype", "onnxruntime_onnx", "input", "TYPE_NONSENSE", "784", "", "unknown type" },
		{ "kind", "onnxruntime_onnx", "input", "TYPE_FP32", "784",
		  ", \"instance_group\": [{\"kind\": \"KIND_TPU\"}]", "KIND_TPU" },
		{ "count", "onnxruntime_onnx", "input", "TYPE_FP32", "784",
		  ", \"instance_group\": [{\"count\": 0}]", "count" },
		{ "many", "onnxruntime_onnx", "input", "TYPE_FP32", "784",
		  ", \"instance_group\": [{\"count\": 64}, {\"count\": 1}]", "more than 64 instances" },
	};
	for (size_t i = 0; i < ACC_ARRAY_LEN(cases); i++) {
		char *c = mlp_cfg(strcmp(cases[i].name, "other") == 0 ? "someone_else" : cases[i].name,
				  cases[i].platform, cases[i].input, cases[i].dtype, cases[i].dims, cases[i].extra);
		add_model(cases[i].name, 1, "mlp/1/model.onnx", c);
		free(c);
	}
	char *dir = xasprintf("%s/json", root);
	add_model("json", 1, "mlp/1/model.onnx", "{\"name\": \"json\", \"max_batch_size\": 4,");
	free(dir);
	struct repo *r = open_repo();
	struct repo_index_entry *e;
	size_t n;
	assert_int_equal(repo_index(r, false, &e, &n), 0);
	for (size_t i = 0; i < ACC_ARRAY_LEN(cases); i++) {
		const struct repo_index_entry *x = row(e, n, cases[i].name);
		assert_non_null(x);
		if (x->state != MODEL_UNAVAILABLE || !strstr(x->reason, cases[i].expect))
			fail_msg("%s: state %s, reason '%s' (expected '%s')", cases[i].name,
				 model_state_name(x->state), x->reason, cases[i].expect);
	}
	assert_int_equal(row(e, n, "json")->state, MODEL_UNAVAILABLE);
	assert_non_null(strstr(row(e, n, "json")->reason, "config.json"));
	repo_index_free(e, n);
	repo_close(r);
}

static void test_versions_and_reload(void **state)
{
	add_model("v", 1, "mlp/1/model.onnx", NULL);
	add_model("v", 2, "mlp/1/model.onnx", NULL);
	add_model("v", 3, "mlp/1/model.onnx", NULL);
	struct repo *r = open_repo();
	struct model *m;
	char *err = NULL;
	assert_int_equal(repo_get(r, "v", NULL, &m, &err), 0);
	assert_string_equal(model_version(m), "3"); /* latest, one version */
	const char **vs;
	assert_int_equal(model_versions(m, &vs), 1);
	model_put(m);

	assert_int_equal(repo_load(r, "v", "{\"version_policy\": {\"all\": {}}}", &err), 0);
	assert_int_equal(repo_get(r, "v", "1", &m, &err), 0);
	assert_int_equal(model_versions(m, &vs), 3);
	assert_string_equal(vs[0], "3");
	model_put(m);

	assert_int_equal(repo_load(r, "v", "{\"version_policy\": {\"specific\": {\"versions\": [2]}}}", &err), 0);
	assert_int_equal(repo_get(r, "v", NULL, &m, &err), 0);
	assert_string_equal(model_version(m), "2");
	model_put(m);

	/* A failing reload keeps the serving version. */
	assert_int_not_equal(repo_load(r, "v", "{\"max_batch_size\": \"lots\"}", &err), 0);
	assert_non_null(strstr(err, "max_batch_size"));
	free(err);
	err = NULL;
	assert_int_equal(repo_state(r, "v", NULL), MODEL_READY);

	/* Unload, then load back. */
	assert_int_equal(repo_get(r, "v", NULL, &m, &err), 0); /* a request still holding it */
	assert_int_equal(repo_unload(r, "v", &err), 0);
	assert_string_equal(model_name(m), "v");
	model_put(m);
	assert_int_equal(repo_state(r, "v", NULL), MODEL_UNAVAILABLE);
	assert_int_equal(repo_get(r, "v", NULL, &m, &err), -EAGAIN);
	free(err);
	err = NULL;
	assert_int_equal(repo_unload(r, "nope", &err), -ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(repo_load(r, "nope", NULL, &err), -ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(repo_load(r, "../etc", NULL, &err), -EINVAL);
	free(err);
	err = NULL;
	assert_int_equal(repo_load(r, "v", NULL, &err), 0);
	assert_int_equal(repo_state(r, "v", "3"), MODEL_READY);
	repo_close(r);
}

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void on_done(struct infer_request *req, void *arg)
{
	struct waiter *w = arg;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* A request for the example MLP with one fp32 input of the given shape and bytes. */
static struct infer_request *mlp_request(struct model *m, const char *name, enum dtype dt,
					 int64_t rows, int64_t cols, void *data, size_t bytes,
					 struct waiter *w)
{
	struct infer_request *req = infer_request_new(m);
	req->n_inputs = 1;
	req->inputs = xcalloc(1, sizeof(*req->inputs));
	req->inputs[0].name = xstrdup(name);
	req->inputs[0].dtype = dt;
	req->inputs[0].ndims = 2;
	req->inputs[0].dims[0] = rows;
	req->inputs[0].dims[1] = cols;
	req->inputs[0].data = data;
	req->inputs[0].bytes = bytes;
	req->done = on_done;
	req->arg = w;
	return req;
}

static void test_infer_and_validation(void **state)
{
	add_model("mlp", 1, "mlp/1/model.onnx", NULL);
	char *cfgp = example("mlp/config.json"), *cfg, *err = NULL;
	size_t len;
	assert_int_equal(acc_read_file(cfgp, &cfg, &len, &err), 0);
	char *p = xasprintf("%s/mlp/config.json", root);
	put_file(p, cfg, len);
	free(p);
	free(cfg);
	free(cfgp);
	struct repo *r = open_repo();
	struct model *m;
	assert_int_equal(repo_get(r, "mlp", NULL, &m, &err), 0);

	char *in, *want;
	size_t in_len, want_len;
	char *ip = example("mlp/sample_input.bin"), *op = example("mlp/sample_output.bin");
	assert_int_equal(acc_read_file(ip, &in, &in_len, &err), 0);
	assert_int_equal(acc_read_file(op, &want, &want_len, &err), 0);
	free(ip);
	free(op);
	assert_int_equal(in_len, 784 * 4);

	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct infer_request *req = mlp_request(m, "input", DT_FP32, 1, 784, in, in_len, &w);
	req->n_requested = 1;
	req->requested = xcalloc(1, sizeof(char *));
	req->requested[0] = xstrdup("probabilities");
	assert_int_equal(infer_submit(req, &err), 0);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	assert_int_equal(req->status, 0);
	assert_int_equal(req->n_results, 1);
	assert_int_equal(req->results[0].bytes, want_len);
	const float *got = req->results[0].data, *exp = (const float *)want;
	for (size_t i = 0; i < want_len / 4; i++)
		assert_true(fabsf(got[i] - exp[i]) <= 1e-5f + 1e-3f * fabsf(exp[i]));
	infer_request_free(req);

	/* Each malformed request is refused with a message naming the problem. */
	static char buf[16 * 784 * 4];
	static const struct {
		const char *name;
		enum dtype dt;
		int64_t rows, cols;
		size_t bytes;
		const char *expect;
	} bad[] = {
		{ "input", DT_INT32, 1, 784, 784 * 4, "expected datatype FP32, got INT32" },
		{ "input", DT_FP32, 1, 783, 783 * 4, "expected shape [-1,784], got [1,783]" },
		{ "input", DT_FP32, 1, 784, 100, "expected 3136 bytes" },
		{ "input", DT_FP32, 65, 784, 65 * 784 * 4, "batch size 65" },
		{ "pixels", DT_FP32, 1, 784, 784 * 4, "expects input 'input'" },
	};
	for (size_t i = 0; i < ACC_ARRAY_LEN(bad); i++) {
		req = mlp_request(m, bad[i].name, bad[i].dt, bad[i].rows, bad[i].cols, buf, bad[i].bytes, &w);
		assert_int_equal(infer_submit(req, &err), -EINVAL);
		if (!strstr(err, bad[i].expect))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].expect);
		free(err);
		err = NULL;
		infer_request_free(req);
	}
	req = mlp_request(m, "input", DT_FP32, 1, 784, buf, 784 * 4, &w);
	req->n_requested = 1;
	req->requested = xcalloc(1, sizeof(char *));
	req->requested[0] = xstrdup("logits");
	assert_int_equal(infer_submit(req, &err), -EINVAL);
	assert_non_null(strstr(err, "no output named 'logits'"));
	free(err);
	err = NULL;
	infer_request_free(req);

	struct model_stats *st;
	size_t n;
	assert_int_equal(repo_stats(r, "mlp", NULL, &st, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].success.count, 1);
	assert_int_equal(st[0].inference_count, 1);
	repo_stats_free(st, n);
	assert_int_equal(repo_stats(r, "nope", NULL, &st, &n, &err), -ENOENT);
	free(err);

	free(in);
	free(want);
	model_put(m);
	repo_close(r);
}

int main(void)
{
	char *err = NULL;
	log_init(LOG_LVL_ERR, 0);
	if (device_manager_create(&dm, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_all_and_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_versions_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_infer_and_validation, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	device_manager_free(dm);
	return rc;
}
