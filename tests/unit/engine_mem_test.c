/* engine_mem_test.c - steady state of an exec: once a shape's plan exists, runs of our own
 * kernels allocate nothing, and with oneDNN (whose primitive execution makes small short-lived
 * allocations of its own) the heap does not grow. Counted by wrapping glibc's allocator in this
 * program. */
#include "config.h"

#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "onnx.pb-c.h"
#include "onnx_builder.h"
#include "util.h"

/* ---- allocation counter: this program's malloc family forwards to glibc's and counts ---- */
/* AddressSanitizer owns the malloc family: under it there is nothing to wrap, and the two
 * counting tests skip. */
static atomic_long n_allocs, n_live; /* allocations made; blocks not yet freed */

#ifndef __SANITIZE_ADDRESS__

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);


void *malloc(size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	return __libc_malloc(n);
}

void free(void *p)
{
	if (p)
		atomic_fetch_sub_explicit(&n_live, 1, memory_order_relaxed);
	__libc_free(p);
}

void *calloc(size_t k, size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	if (!p)
		atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	else if (!n)
		atomic_fetch_sub_explicit(&n_live, 1, memory_order_relaxed);
	return __libc_realloc(p, n);
}

void *aligned_alloc(size_t a, size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	return __libc_memalign(a, n);
}

void *memalign(size_t a, size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	return __libc_memalign(a, n);
}

int posix_memalign(void **out, size_t a, size_t n)
{
	atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
	void *p = __libc_memalign(a, n);
	if (!p && n)
		return 12; /* ENOMEM */
	atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	*out = p;
	return 0;
}
#endif

/* ---- a small CNN: Conv+Relu, MaxPool, Conv, AveragePool, GlobalAveragePool, Flatten, Gemm,
 * MatMul ---- */

static uint8_t *cnn_model(size_t *len)
{
	unsigned seed = 5;
	Onnx__ModelProto *m = mb_new(13, NULL);
	mb_input(m, "X", MB_FLOAT, 4, (int64_t[]){ -1, 3, 32, 32 });
	mb_output(m, "Y", MB_FLOAT);
	mb_init_rand(m, "W1", 4, (int64_t[]){ 16, 3, 3, 3 }, &seed);
	mb_init_rand(m, "B1", 1, (int64_t[]){ 16 }, &seed);
	mb_init_rand(m, "W2", 4, (int64_t[]){ 32, 16, 3, 3 }, &seed);
	mb_init_rand(m, "W3", 4, (int64_t[]){ 32, 1, 3, 3 }, &seed);
	mb_init_rand(m, "G", 2, (int64_t[]){ 32, 64 }, &seed);
	mb_init_rand(m, "GB", 1, (int64_t[]){ 64 }, &seed);
	mb_init_rand(m, "M", 2, (int64_t[]){ 64, 10 }, &seed);
	const int64_t p1[4] = { 1, 1, 1, 1 }, k3[2] = { 3, 3 }, s2[2] = { 2, 2 };
	mb_attr_ints(mb_node(m, "Conv", NULL, MB_L("X", "W1", "B1"), MB_L("c1")), "pads", 4, p1);
	mb_node(m, "Relu", NULL, MB_L("c1"), MB_L("r1"));
	Onnx__NodeProto *mp = mb_node(m, "MaxPool", NULL, MB_L("r1"), MB_L("p1"));
	mb_attr_ints(mp, "kernel_shape", 2, k3);
	mb_attr_ints(mp, "strides", 2, s2);
	mb_attr_ints(mp, "pads", 4, p1);
	mb_attr_ints(mb_node(m, "Conv", NULL, MB_L("p1", "W2"), MB_L("c2")), "pads", 4, p1);
	Onnx__NodeProto *dw = mb_node(m, "Conv", NULL, MB_L("c2", "W3"), MB_L("c3"));
	mb_attr_ints(dw, "pads", 4, p1);
	mb_attr_int(dw, "group", 32);
	Onnx__NodeProto *ap = mb_node(m, "AveragePool", NULL, MB_L("c3"), MB_L("a3"));
	mb_attr_ints(ap, "kernel_shape", 2, k3);
	mb_attr_ints(ap, "pads", 4, p1);
	mb_node(m, "GlobalAveragePool", NULL, MB_L("a3"), MB_L("g"));
	mb_node(m, "Flatten", NULL, MB_L("g"), MB_L("f"));
	mb_node(m, "Gemm", NULL, MB_L("f", "G", "GB"), MB_L("h"));
	mb_node(m, "Relu", NULL, MB_L("h"), MB_L("hr"));
	mb_node(m, "MatMul", NULL, MB_L("hr", "M"), MB_L("Y"));
	return mb_pack(m, len);
}

/* Load the CNN, and for threads 1 and 2, batch 1 and 4: warm up, then check that steady-state
 * runs give the same output and, when count, make no allocations, and that live heap blocks do
 * not grow. */
static void check_steady_state(bool count)
{
	size_t len;
	uint8_t *buf = cnn_model(&len);
	for (int threads = 1; threads <= 2; threads++) {
		char *err = NULL;
		struct eng_options opt = { .threads = threads };
		struct eng_model *m;
		struct eng_exec *x;
		if (eng_model_load(buf, len, &opt, &m, &err))
			fail_msg("load: %s", err);
		assert_int_equal(eng_exec_create(m, &x, &err), 0);
		for (int batch = 1; batch <= 4; batch *= 4) {
			size_t n = (size_t)batch * 3 * 32 * 32;
			float *xd = xmalloc(n * sizeof(float));
			unsigned seed = 11;
			for (size_t i = 0; i < n; i++)
				xd[i] = (float)(rand_r(&seed) % 2001 - 1000) / 1000.0f;
			struct eng_tensor in = { .dtype = DT_FP32, .ndims = 4, .dims = { batch, 3, 32, 32 }, .data = xd,
						 .bytes = n * sizeof(float) };
			struct eng_tensor out;
			float first[40];
			for (int r = 0; r < 3; r++) /* plan, arena, packed weights: made here */
				if (eng_exec_run(x, &in, &out, &err))
					fail_msg("run: %s", err);
			assert_int_equal(out.ndims, 2);
			assert_int_equal(out.dims[1], 10);
			memcpy(first, out.data, sizeof(float) * 10 * batch);
			/* Three windows of 10 runs. A thread's first part in a kernel may set up its own
			 * buffers once (the pool's worker may first take part in any window); anything made
			 * per run would show in every window. */
			long made_min = LONG_MAX, made_sum = 0, grown_min = LONG_MAX, grown_sum = 0;
			for (int w = 0; w < 3; w++) {
				long allocs = atomic_load(&n_allocs), live = atomic_load(&n_live);
				for (int r = 0; r < 10; r++)
					if (eng_exec_run(x, &in, &out, &err))
						fail_msg("run: %s", err);
				long made = atomic_load(&n_allocs) - allocs, grown = atomic_load(&n_live) - live;
				made_min = made < made_min ? made : made_min;
				grown_min = grown < grown_min ? grown : grown_min;
				made_sum += made;
				grown_sum += grown;
			}
			if (count && (made_min > 0 || made_sum > 8))
				fail_msg("allocations in steady-state runs: %ld in 30 runs, %ld in the quietest 10 "
					 "(threads %d, batch %d)", made_sum, made_min, threads, batch);
			if (grown_min > 0 || grown_sum > 8)
				fail_msg("live heap blocks grow in steady-state runs: %ld in 30 runs, %ld in the quietest "
					 "10 (threads %d, batch %d)", grown_sum, grown_min, threads, batch);
			assert_memory_equal(first, out.data, sizeof(float) * 10 * batch);
			free(xd);
		}
		eng_exec_free(x);
		eng_model_free(m);
	}
	free(buf);
}

/* Our kernels only (oneDNN off, in a child process: the switch is read once per process). */
static void test_own_kernels_allocate_nothing(void **state)
{
#ifdef __SANITIZE_ADDRESS__
	skip();
#endif
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("ACCELD_ENGINE_DNNL", "0", 1);
		check_steady_state(true);
		_exit(0); /* a failed check exits nonzero through cmocka's longjmp handler */
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* The default configuration (oneDNN where it is built in): no growth. */
static void test_default_heap_does_not_grow(void **state)
{
#ifdef __SANITIZE_ADDRESS__
	skip();
#endif
	check_steady_state(false);
}

/* X[N,8] -> MatMul(S) -> MatMul(S) -> MatMul(T) -> Add(T) -> Gemm(U, transB) -> Y[N,8]: S is
 * read only as packed B (freed at load), T also by an Add (kept), U packed transposed. */
static uint8_t *shared_model(size_t *len, float *S, float *T, float *U)
{
	unsigned seed = 3;
	Onnx__ModelProto *m = mb_new(13, NULL);
	mb_input(m, "X", MB_FLOAT, 2, (int64_t[]){ -1, 8 });
	mb_output(m, "Y", MB_FLOAT);
	const int64_t d[2] = { 8, 8 };
	mb_init_rand(m, "S", 2, d, &seed);
	mb_init_rand(m, "T", 2, d, &seed);
	mb_init_rand(m, "U", 2, d, &seed);
	memcpy(S, m->graph->initializer[0]->raw_data.data, 64 * sizeof(float));
	memcpy(T, m->graph->initializer[1]->raw_data.data, 64 * sizeof(float));
	memcpy(U, m->graph->initializer[2]->raw_data.data, 64 * sizeof(float));
	mb_node(m, "MatMul", NULL, MB_L("X", "S"), MB_L("a"));
	mb_node(m, "MatMul", NULL, MB_L("a", "S"), MB_L("b"));
	mb_node(m, "MatMul", NULL, MB_L("b", "T"), MB_L("c"));
	mb_node(m, "Add", NULL, MB_L("c", "T"), MB_L("e"));
	Onnx__NodeProto *gm = mb_node(m, "Gemm", NULL, MB_L("e", "U"), MB_L("Y"));
	mb_attr_int(gm, "transB", 1);
	return mb_pack(m, len);
}

/* y[n,8] = x[n,8] @ w (w 8x8, transposed when t). */
static void mm8(const float *x, const float *w, bool t, int n, float *y)
{
	for (int r = 0; r < n; r++)
		for (int j = 0; j < 8; j++) {
			double acc = 0;
			for (int k = 0; k < 8; k++)
				acc += (double)x[r * 8 + k] * w[t ? j * 8 + k : k * 8 + j];
			y[r * 8 + j] = (float)acc;
		}
}

static void test_weights_freed_once_packed_still_compute(void **state)
{
	float S[64], T[64], U[64];
	size_t len;
	uint8_t *buf = shared_model(&len, S, T, U);
	char *err = NULL;
	struct eng_options opt = { .threads = 2 };
	struct eng_model *m;
	struct eng_exec *x;
	if (eng_model_load(buf, len, &opt, &m, &err))
		fail_msg("load: %s", err);
	assert_int_equal(eng_exec_create(m, &x, &err), 0);
	/* Plans are made after load, so every run here reads the packed copies only; batch 5 does
	 * not broadcast against T and must fail cleanly. */
	for (int n = 8; n >= 5; n -= 3) {
		float xd[8 * 8], a[8 * 8], b[8 * 8], c[8 * 8], want[8 * 8];
		unsigned seed = 17;
		for (int i = 0; i < n * 8; i++)
			xd[i] = (float)(rand_r(&seed) % 2001 - 1000) / 1000.0f;
		struct eng_tensor in = { .dtype = DT_FP32, .ndims = 2, .dims = { n, 8 }, .data = xd,
					 .bytes = n * 8 * sizeof(float) };
		struct eng_tensor out;
		int rc = eng_exec_run(x, &in, &out, &err);
		if (n != 8) {
			assert_int_not_equal(rc, 0);
			free(err);
			err = NULL;
			continue;
		}
		if (rc)
			fail_msg("run: %s", err);
		mm8(xd, S, false, n, a);
		mm8(a, S, false, n, b);
		mm8(b, T, false, n, c);
		for (int i = 0; i < 64; i++)
			c[i] += T[i];
		mm8(c, U, true, n, want);
		for (int i = 0; i < 64; i++)
			if (!(fabsf(((float *)out.data)[i] - want[i]) <= 1e-4f + 1e-4f * fabsf(want[i])))
				fail_msg("element %d: got %g want %g", i, ((float *)out.data)[i], want[i]);
	}
	eng_exec_free(x);
	eng_model_free(m);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_kernels_allocate_nothing),
		cmocka_unit_test(test_default_heap_does_not_grow),
		cmocka_unit_test(test_weights_freed_once_packed_still_compute),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
