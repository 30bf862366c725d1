/* engine_bench.c - time the engine on the benchmark models, the way bench_ort.js times ONNX
 * Runtime, and print one JSON line per (model, batch) with the same field names.
 *
 * usage: engine-bench [--dir DIR] [--models a,b] [--batches 1,8,32] [--threads 2]
 *                     [--min-time 3] [--min-iters 10] [--warmup 5] [--rtol 1e-3] [--atol 1e-4]
 *
 * DIR holds NAME.onnx, NAME.in.bin (one sample, raw fp32) and NAME.ref.bin (its reference
 * output). The batch-B input repeats the sample B times along dim 0; every row of the output is
 * checked against the reference (max |y - ref| <= atol + rtol * max |ref|). Each model runs in a
 * child process of its own, so peak_rss_kb (VmHWM) is that model's, not the sum of all.
 * With ACCELD_ENGINE_PROFILE=1 a per-op time table goes to stderr after each timed batch.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "profile.h"
#include "util.h"

struct bench_opts {
	const char *dir;
	char *models;
	int batches[16], n_batches;
	int threads, min_iters, warmup;
	double min_time, rtol, atol;
};

/* Compare doubles for qsort. */
static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of n sorted values. */
static double median(const double *s, size_t n)
{
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The p-quantile of n sorted values, picked like bench_ort.js does. */
static double pct(const double *s, size_t n, double p)
{
	size_t i = (size_t)floor(p * n);
	return s[i < n - 1 ? i : n - 1];
}

/* This process's peak resident set (VmHWM) in KiB, or -1. */
static long peak_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* Read DIR/NAME.SUFFIX into a fresh buffer. */
static int read_part(const char *dir, const char *name, const char *suffix, char **data, size_t *len)
{
	char *path = xasprintf("%s/%s%s", dir, name, suffix);
	char *err = NULL;
	int rc = acc_read_file(path, data, len, &err);
	if (rc) {
		fprintf(stderr, "engine-bench: %s\n", err ? err : path);
		free(err);
	}
	free(path);
	return rc;
}

/* Worst |y - ref| over every row of a batch-B output (rows of ref_n floats). */
static double max_abs_diff(const float *y, const float *ref, size_t ref_n, int batch, double *row0)
{
	double worst = 0;
	for (int b = 0; b < batch; b++) {
		double w = 0;
		for (size_t i = 0; i < ref_n; i++) {
			double d = fabs((double)y[b * ref_n + i] - ref[i]);
			if (!(d <= w)) /* NaN counts as worst */
				w = isnan(d) ? INFINITY : d;
		}
		if (b == 0)
			*row0 = w;
		if (w > worst)
			worst = w;
	}
	return worst;
}

/* Load one model and time it at every batch size; prints JSON lines. Returns 0 or 1. */
static int bench_model(const struct bench_opts *o, const char *name)
{
	char *onnx = NULL, *inb = NULL, *refb = NULL, *err = NULL;
	size_t onnx_len, in_len, ref_len;
	if (read_part(o->dir, name, ".onnx", &onnx, &onnx_len) || read_part(o->dir, name, ".in.bin", &inb, &in_len) ||
	    read_part(o->dir, name, ".ref.bin", &refb, &ref_len))
		return 1;
	struct eng_options eo = { .threads = o->threads };
	struct eng_model *m = NULL;
	struct eng_exec *x = NULL;
	uint64_t t0 = acc_now_ns();
	int rc = eng_model_load(onnx, onnx_len, &eo, &m, &err);
	double load_ms = (acc_now_ns() - t0) / 1e6;
	free(onnx);
	if (!rc)
		rc = eng_exec_create(m, &x, &err);
	if (rc) {
		fprintf(stderr, "engine-bench: %s: %s\n", name, err ? err : strerror(-rc));
		free(err);
		return 1;
	}
	if (eng_model_n_inputs(m) != 1 || eng_model_n_outputs(m) != 1) {
		fprintf(stderr, "engine-bench: %s: want one input and one output\n", name);
		return 1;
	}
	const struct eng_io *io = eng_model_input(m, 0);
	int64_t per = 1;
	for (int d = 1; d < io->ndims; d++)
		per *= io->dims[d];
	if (io->dtype != DT_FP32 || io->ndims < 1 || per <= 0 || (size_t)per * 4 != in_len || ref_len % 4) {
		fprintf(stderr, "engine-bench: %s: input is not fp32 [N, ...] matching %s.in.bin\n", name, name);
		return 1;
	}
	const float *ref = (const float *)refb;
	size_t ref_n = ref_len / 4;
	double ref_max = 0;
	for (size_t i = 0; i < ref_n; i++)
		ref_max = fmax(ref_max, fabs(ref[i]));
	int fails = 0;
	for (int bi = 0; bi < o->n_batches; bi++) {
		int batch = o->batches[bi];
		float *data = xaligned_alloc(64, (size_t)batch * in_len);
		for (int b = 0; b < batch; b++)
			memcpy(data + (size_t)b * per, inb, in_len);
		struct eng_tensor in = { .dtype = DT_FP32, .ndims = io->ndims, .data = data,
					 .bytes = (size_t)batch * in_len };
		memcpy(in.dims, io->dims, sizeof(in.dims));
		in.dims[0] = batch;
		struct eng_tensor out;
		double row0 = INFINITY, worst = INFINITY;
		for (int w = 0; w < (o->warmup > 1 ? o->warmup : 1); w++) {
			rc = eng_exec_run(x, &in, &out, &err);
			if (rc)
				break;
			if (w == 0) {
				if (out.dtype == DT_FP32 && out.bytes == (size_t)batch * ref_len)
					worst = max_abs_diff(out.data, ref, ref_n, batch, &row0);
				else
					fprintf(stderr, "engine-bench: %s: output has %zu bytes, expected %zu\n", name,
						out.bytes, (size_t)batch * ref_len);
			}
		}
		if (rc) {
			fprintf(stderr, "engine-bench: %s batch %d: %s\n", name, batch, err ? err : strerror(-rc));
			free(err);
			free(data);
			fails++;
			continue;
		}
		if (eng_profile_enabled())
			eng_profile_reset();
		size_t n = 0, cap = 1024;
		double *times = xmalloc(cap * sizeof(double));
		uint64_t start = acc_now_ns();
		while (n < (size_t)o->min_iters || (acc_now_ns() - start) / 1e9 < o->min_time) {
			uint64_t s = acc_now_ns();
			rc = eng_exec_run(x, &in, &out, &err);
			if (rc)
				break;
			if (n == cap)
				times = xreallocarray(times, cap *= 2, sizeof(double));
			times[n++] = (acc_now_ns() - s) / 1e6;
		}
		if (rc) {
			fprintf(stderr, "engine-bench: %s batch %d: %s\n", name, batch, err ? err : strerror(-rc));
			free(err);
			free(times);
			free(data);
			fails++;
			continue;
		}
		if (eng_profile_enabled()) {
			char *title = xasprintf("%s batch %d", name, batch);
			eng_profile_print(stderr, title, (int)n);
			free(title);
		}
		qsort(times, n, sizeof(double), dcmp);
		double med = median(times, n);
		bool ok = worst <= o->atol + o->rtol * ref_max;
		fails += !ok;
		printf("{\"engine\":\"acceld\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,\"iters\":%zu,"
		       "\"median_ms\":%.3f,\"p10_ms\":%.3f,\"p90_ms\":%.3f,\"samples_per_s\":%.2f,"
		       "\"parity_max_abs\":%.2e,\"parity_rows_max_abs\":%.2e,\"ref_max_abs\":%.3f,\"parity_ok\":%s,"
		       "\"load_ms\":%.1f,\"peak_rss_kb\":%ld}\n",
		       name, batch, o->threads, n, med, pct(times, n, 0.1), pct(times, n, 0.9), batch * 1000.0 / med,
		       row0, worst, ref_max, ok ? "true" : "false", load_ms, peak_rss_kb());
		fflush(stdout);
		free(times);
		free(data);
	}
	eng_exec_free(x);
	eng_model_free(m);
	free(inb);
	free(refb);
	return fails ? 1 : 0;
}

/* Print usage and exit with code. */
static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: engine-bench [--dir DIR] [--models a,b] [--batches 1,8,32] [--threads N]\n"
		"                    [--min-time S] [--min-iters N] [--warmup N] [--rtol R] [--atol A]\n");
	exit(code);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .dir = ".bench-peers/models", .threads = 2, .min_iters = 10, .warmup = 5,
				.min_time = 3, .rtol = 1e-3, .atol = 1e-4 };
	o.models = xstrdup("mlp,resnet18,resnet50,mobilenet_v2,transformer");
	const char *batches = "1,32";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage(0);
		if (!v)
			usage(2);
		i++;
		if (!strcmp(a, "--dir"))
			o.dir = v;
		else if (!strcmp(a, "--models"))
			free(o.models), o.models = xstrdup(v);
		else if (!strcmp(a, "--batches"))
			batches = v;
		else if (!strcmp(a, "--threads"))
			o.threads = atoi(v);
		else if (!strcmp(a, "--min-time"))
			o.min_time = atof(v);
		else if (!strcmp(a, "--min-iters"))
			o.min_iters = atoi(v);
		else if (!strcmp(a, "--warmup"))
			o.warmup = atoi(v);
		else if (!strcmp(a, "--rtol"))
			o.rtol = atof(v);
		else if (!strcmp(a, "--atol"))
			o.atol = atof(v);
		else
			usage(2);
	}
	for (const char *p = batches; *p && o.n_batches < (int)ACC_ARRAY_LEN(o.batches);) {
		char *end;
		long b = strtol(p, &end, 10);
		if (end == p || b < 1 || b > 4096)
			usage(2);
		o.batches[o.n_batches++] = (int)b;
		p = *end == ',' ? end + 1 : end;
	}
	if (o.threads < 1 || !o.n_batches)
		usage(2);
	int fails = 0;
	for (char *save = NULL, *name = strtok_r(o.models, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			_exit(bench_model(&o, name));
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "engine-bench: %s failed (%s %d)\n", name, WIFEXITED(st) ? "exit" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			fails++;
		}
	}
	free(o.models);
	return fails ? 1 : 0;
}
