/* scheduler_test.c - batching, priorities, timeouts, queue limits and draining, against a
 * fake device that doubles its fp32 input and records the batch sizes it ran. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "infer.h"
#include "repo.h"
#include "scheduler.h"
#include "util.h"

/* ---- fakes for the modules the scheduler calls ---- */

struct model {
	int dummy;
};
static struct model the_model;
static struct model_io out_io = { .name = "y", .dtype = DT_FP32 };

const char *model_name(const struct model *m) { return "fake"; }
size_t model_n_inputs(const struct model *m) { return 1; }
size_t model_n_outputs(const struct model *m) { return 1; }
const struct model_io *model_output(const struct model *m, size_t i) { return &out_io; }

struct device_instance {
	float out[1024];
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open = true;
static int entered; /* executions started */
static int64_t batches[64];
static float first_values[64];
static int n_batches;
static int misaligned; /* executions handed an input not 64-byte aligned */
static int64_t fake_rows; /* > 0: the output's first dimension, whatever the batch */

/* Close or open the gate that holds executions. */
static void gate(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* Wait until n executions have started. */
static void wait_entered(int n)
{
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&gate_lock);
		int e = entered;
		pthread_mutex_unlock(&gate_lock);
		if (e >= n)
			return;
		usleep(1000);
	}
	fail_msg("execution %d never started", n);
}

int device_instance_execute(struct device_instance *in, struct drv_batch *b, device_done_fn done,
			    void *arg)
{
	pthread_mutex_lock(&gate_lock);
	entered++;
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	const float *x = b->inputs[0].data;
	misaligned += (uintptr_t)x % 64 != 0;
	int64_t n = shape_numel(b->inputs[0].dims, b->inputs[0].ndims);
	batches[n_batches] = b->inputs[0].dims[0];
	first_values[n_batches++] = x[0];
	pthread_mutex_unlock(&gate_lock);
	for (int64_t i = 0; i < n; i++)
		in->out[i] = 2 * x[i];
	b->outputs[0] = b->inputs[0];
	b->outputs[0].data = in->out;
	if (fake_rows > 0)
		b->outputs[0].dims[0] = fake_rows;
	done(b, 0, arg);
	return 0;
}

void device_instance_free(struct device_instance *in) { free(in); }

/* ---- helpers ---- */

struct result {
	pthread_mutex_t lock;
	int done, status;
	float values[8];
	int64_t rows;
};

static void on_done(struct infer_request *r, void *arg)
{
	struct result *res = arg;
	pthread_mutex_lock(&res->lock);
	res->status = r->status;
	if (r->status == 0) {
		res->rows = r->results[0].dims[0];
		memcpy(res->values, r->results[0].data, r->results[0].bytes < sizeof(res->values) ? r->results[0].bytes : sizeof(res->values));
	}
	res->done++;
	pthread_mutex_unlock(&res->lock);
	free(r->owner ? r->owner : r->inputs[0].data);
	free(r->inputs[0].name);
	free(r->inputs);
	for (size_t i = 0; i < r->n_results; i++) {
		free(r->results[i].name);
		free(r->results[i].data);
	}
	free(r->results);
	free(r->error);
	free(r);
}

/* A request of `rows` rows of `width` floats, all equal to v. */
static struct infer_request *mkreq(int64_t rows, int64_t width, float v, struct result *res)
{
	struct infer_request *r = xcalloc(1, sizeof(*r));
	r->model = &the_model;
	r->n_inputs = 1;
	r->inputs = xcalloc(1, sizeof(*r->inputs));
	r->inputs[0].name = xstrdup("x");
	r->inputs[0].dtype = DT_FP32;
	r->inputs[0].ndims = 2;
	r->inputs[0].dims[0] = rows;
	r->inputs[0].dims[1] = width;
	r->inputs[0].bytes = (size_t)(rows * width) * sizeof(float);
	float *d = xmalloc(r->inputs[0].bytes);
	for (int64_t i = 0; i < rows * width; i++)
		d[i] = v;
	r->inputs[0].data = d;
	r->done = on_done;
	r->arg = res;
	pthread_mutex_init(&res->lock, NULL);
	return r;
}

static struct sched *mksched(int max_batch, bool dyn, int levels, size_t max_queue)
{
	struct sched_options o = { .max_batch_size = max_batch, .dynamic_batching = dyn,
				   .priority_levels = levels, .default_priority = levels,
				   .max_queue_size = max_queue };
	struct device_instance *in = xcalloc(1, sizeof(*in));
	struct sched *s;
	char *err = NULL;
	assert_int_equal(sched_create(&o, &the_model, &in, 1, &s, &err), 0);
	n_batches = 0;
	entered = 0;
	return s;
}

/* ---- tests ---- */

static void test_single_request(void **state)
{
	struct sched *s = mksched(8, true, 1, 0);
	struct result res = { 0 };
	char *err = NULL;
	misaligned = 0;
	assert_int_equal(sched_submit(s, mkreq(1, 4, 1.5f, &res), &err), 0);
	sched_shutdown(s);
	assert_int_equal(res.done, 1);
	assert_int_equal(res.status, 0);
	assert_true(res.values[0] == 3.0f && res.values[3] == 3.0f);
	assert_int_equal(misaligned, 0);
	sched_free(s);
}

/* Wire buffers sit at odd offsets: the device must still get aligned data, and a model
 * without a batch dimension keeps its shape. */
static void test_misaligned_input_without_batching(void **state)
{
	struct sched *s = mksched(0, false, 1, 0);
	struct result res = { 0 };
	char *err = NULL;
	misaligned = 0;
	struct infer_request *r = mkreq(3, 2, 2.0f, &res);
	char *raw = xmalloc(r->inputs[0].bytes + 3);
	memcpy(raw + 2, r->inputs[0].data, r->inputs[0].bytes);
	free(r->inputs[0].data);
	r->inputs[0].data = raw + 2;
	r->owner = raw;
	assert_int_equal(sched_submit(s, r, &err), 0);
	sched_shutdown(s);
	assert_int_equal(res.status, 0);
	assert_int_equal(misaligned, 0);
	assert_int_equal(batches[0], 3); /* dims[0] is not a batch dimension here */
	assert_int_equal(res.rows, 3);
	assert_true(res.values[5] == 4.0f);
	sched_free(s);
}

static void test_dynamic_batching_concatenates_and_splits(void **state)
{
	struct sched *s = mksched(8, true, 1, 0);
	struct result a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	char *err = NULL;
	gate(false);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 1, &a), &err), 0);
	wait_entered(1);
	assert_int_equal(sched_submit(s, mkreq(2, 2, 10, &b), &err), 0);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 100, &c), &err), 0);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 1000, &d), &err), 0);
	gate(true);
	sched_shutdown(s);
	assert_int_equal(n_batches, 2);
	assert_int_equal(batches[0], 1);
	assert_int_equal(batches[1], 4); /* 2 + 1 + 1 rows in one execution */
	assert_int_equal(b.rows, 2);
	assert_true(b.values[0] == 20 && b.values[3] == 20);
	assert_int_equal(c.rows, 1);
	assert_true(c.values[0] == 200 && c.values[1] == 200);
	assert_true(d.values[0] == 2000);
	sched_free(s);
}

static void test_batch_limit_and_shapes(void **state)
{
	struct sched *s = mksched(2, true, 1, 0);
	struct result r[4] = { 0 };
	char *err = NULL;
	gate(false);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 1, &r[0]), &err), 0);
	wait_entered(1);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 2, &r[1]), &err), 0);
	assert_int_equal(sched_submit(s, mkreq(1, 3, 3, &r[2]), &err), 0); /* other shape */
	assert_int_equal(sched_submit(s, mkreq(1, 2, 4, &r[3]), &err), 0);
	gate(true);
	sched_shutdown(s);
	/* [1] and [3] share a shape and fit max_batch_size 2; [2] runs alone. */
	assert_int_equal(n_batches, 3);
	assert_int_equal(batches[1], 2);
	assert_true(first_values[1] == 2);
	assert_int_equal(batches[2], 1);
	assert_true(first_values[2] == 3);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i].status, 0);
	sched_free(s);
}

/* An output without a batch dimension must not be split across batched requests. */
static void test_output_without_batch_dimension(void **state)
{
	struct sched *s = mksched(8, true, 1, 0);
	struct result a = { 0 }, b = { 0 }, c = { 0 };
	char *err = NULL;
	gate(false);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 1, &a), &err), 0);
	wait_entered(1);
	fake_rows = 7;
	assert_int_equal(sched_submit(s, mkreq(1, 2, 2, &b), &err), 0);
	assert_int_equal(sched_submit(s, mkreq(1, 2, 3, &c), &err), 0);
	gate(true);
	sched_shutdown(s);
	fake_rows = 0;
	assert_int_equal(a.status, 0);
	assert_int_equal(b.status, -EINVAL); /* batched together: refused, not mixed */
	assert_int_equal(c.status, -EINVAL);
	sched_free(s);
}

static void test_priority_order(void **state)
{
	struct sched *s = mksched(0, false, 2, 0);
	struct result a = { 0 }, lo = { 0 }, hi = { 0 };
	char *err = NULL;
	gate(false);
	assert_int_equal(sched_submit(s, mkreq(1, 1, 1, &a), &err), 0);
	wait_entered(1);
	struct infer_request *l = mkreq(1, 1, 5, &lo), *h = mkreq(1, 1, 7, &hi);
	l->priority = 2;
	h->priority = 1;
	assert_int_equal(sched_submit(s, l, &err), 0);
	assert_int_equal(sched_submit(s, h, &err), 0);
	gate(true);
	sched_shutdown(s);
	assert_int_equal(n_batches, 3);
	assert_true(first_values[1] == 7); /* the high-priority request ran first */
	assert_true(first_values[2] == 5);
	sched_free(s);
}

static void test_timeout_and_queue_full(void **state)
{
	struct sched *s = mksched(0, false, 1, 1);
	struct result a = { 0 }, t = { 0 }, full = { 0 };
	char *err = NULL;
	gate(false);
	assert_int_equal(sched_submit(s, mkreq(1, 1, 1, &a), &err), 0);
	wait_entered(1);
	struct infer_request *tr = mkreq(1, 1, 2, &t);
	tr->timeout_us = 1000;
	assert_int_equal(sched_submit(s, tr, &err), 0);
	struct infer_request *fr = mkreq(1, 1, 3, &full);
	assert_int_equal(sched_submit(s, fr, &err), -EBUSY);
	assert_non_null(strstr(err, "queue full"));
	free(err);
	err = NULL;
	fr->status = -EBUSY;
	on_done(fr, &full); /* refused: still ours to free */
	usleep(5000);
	gate(true);
	sched_shutdown(s);
	assert_int_equal(a.status, 0);
	assert_int_equal(t.status, -ETIMEDOUT);
	assert_int_equal(n_batches, 1);
	/* After shutdown nothing is accepted. */
	struct result late = { 0 };
	struct infer_request *lr = mkreq(1, 1, 1, &late);
	assert_int_equal(sched_submit(s, lr, &err), -EAGAIN);
	free(err);
	lr->status = -EAGAIN;
	on_done(lr, &late);
	struct model_stats st = { 0 };
	sched_stats(s, &st);
	assert_int_equal(st.success.count, 1);
	assert_int_equal(st.fail.count, 1);
	assert_int_equal(st.execution_count, 1);
	free(st.batch);
	sched_free(s);
}

static void test_shutdown_drains(void **state)
{
	struct sched *s = mksched(4, true, 1, 0);
	struct result r[16];
	memset(r, 0, sizeof(r));
	char *err = NULL;
	for (int i = 0; i < 16; i++)
		assert_int_equal(sched_submit(s, mkreq(1, 1, (float)i, &r[i]), &err), 0);
	sched_shutdown(s);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].status, 0);
		assert_true(r[i].values[0] == 2.0f * (float)i);
	}
	sched_free(s);
}

/* Never leave the gate closed for the next test, even after a failure. */
static int open_gate(void **state)
{
	gate(true);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_single_request, open_gate),
		cmocka_unit_test_teardown(test_misaligned_input_without_batching, open_gate),
		cmocka_unit_test_teardown(test_dynamic_batching_concatenates_and_splits, open_gate),
		cmocka_unit_test_teardown(test_batch_limit_and_shapes, open_gate),
		cmocka_unit_test_teardown(test_output_without_batch_dimension, open_gate),
		cmocka_unit_test_teardown(test_priority_order, open_gate),
		cmocka_unit_test_teardown(test_timeout_and_queue_full, open_gate),
		cmocka_unit_test_teardown(test_shutdown_drains, open_gate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
