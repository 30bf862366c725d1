/* loadgen.c - closed-loop load generator for acceld: N threads, one request in flight each.
 *
 * Every thread sends the same random inputs (made once from the model's metadata) through one
 * shared client, back to back. Requests started and finished inside the measured window count;
 * the warm-up window before it only heats caches and connections.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acceld/client.h"
#include "daemon/util.h"
#include "tensorgen.h"

enum phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

struct worker {
	pthread_t thread;
	struct acc_client *client;
	const struct acc_infer_request *req;
	int *phase;
	uint64_t *lat_ns; /* latencies of measured requests */
	size_t n_lat, cap_lat;
	uint64_t errors;
	char *first_error;
};

/* Print the usage text to f. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: loadgen -m MODEL [-a ADDR] [-c CONCURRENCY] [-d SECONDS] [-b BATCH]\n"
		"               [-w WARMUP_SECONDS] [--json]\n"
		"\n"
		"Closed-loop load on an acceld server: CONCURRENCY threads (default 1), each with one\n"
		"ModelInfer in flight, for SECONDS (default 10) after WARMUP_SECONDS (default 2).\n"
		"Inputs are random, shaped from the model's metadata (a variable first dimension\n"
		"becomes BATCH, default 1). Prints requests/s, samples/s, latency percentiles (us) and\n"
		"the error count; --json prints them as one JSON line.\n"
		"ADDR: host:port or unix:/path (default $ACCELD_ADDRESS or 127.0.0.1:8001).\n");
}

/* Print a usage error and exit 2. */
ACC_PRINTF(1, 2) __attribute__((noreturn))
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "loadgen: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

/* Parse a positive number option or exit with a usage error. */
static double parse_num(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi)
		usage_error("%s wants a number in [%g, %g], got '%s'", opt, lo, hi, s);
	return v;
}

/* One thread: infer until told to stop, recording measured latencies. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct acc_status st = { 0 };
	for (;;) {
		int before = __atomic_load_n(w->phase, __ATOMIC_ACQUIRE);
		if (before == PHASE_STOP)
			break;
		uint64_t t0 = acc_now_ns();
		struct acc_infer_result *res = NULL;
		int rc = acc_client_infer(w->client, w->req, &res, &st);
		uint64_t dt = acc_now_ns() - t0;
		acc_infer_result_free(res);
		int after = __atomic_load_n(w->phase, __ATOMIC_ACQUIRE);
		if (before != PHASE_MEASURE || after != PHASE_MEASURE)
			continue;
		if (rc < 0) {
			w->errors++;
			if (!w->first_error)
				w->first_error = xasprintf("%s: %s", acc_code_name(st.code),
							   st.message ? st.message : "");
			continue;
		}
		if (w->n_lat == w->cap_lat) {
			w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 4096;
			w->lat_ns = xreallocarray(w->lat_ns, w->cap_lat, sizeof(*w->lat_ns));
		}
		w->lat_ns[w->n_lat++] = dt;
	}
	acc_status_clear(&st);
	return NULL;
}

/* qsort comparison of two uint64_t. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted values in microseconds (nearest rank). */
static double pct_us(const uint64_t *v, size_t n, double q)
{
	if (!n)
		return 0;
	size_t k = (size_t)(q * (double)n + 0.999999);
	k = k ? k - 1 : 0;
	if (k >= n)
		k = n - 1;
	return (double)v[k] / 1e3;
}

/* Sleep for s seconds. */
static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "address", required_argument, NULL, 'a' }, { "model", required_argument, NULL, 'm' },
		{ "concurrency", required_argument, NULL, 'c' }, { "duration", required_argument, NULL, 'd' },
		{ "batch", required_argument, NULL, 'b' },   { "warmup", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },          { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = getenv("ACCELD_ADDRESS");
	const char *model = NULL;
	int conc = 1;
	double duration = 10, warmup = 2;
	int64_t batch = 1;
	bool json = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "a:m:c:d:b:w:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'm': model = optarg; break;
		case 'c': conc = (int)parse_num("-c", optarg, 1, 1024); break;
		case 'd': duration = parse_num("-d", optarg, 0.1, 3600); break;
		case 'b': batch = (int64_t)parse_num("-b", optarg, 1, 1 << 20); break;
		case 'w': warmup = parse_num("-w", optarg, 0, 3600); break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage_error("bad option");
		}
	}
	if (optind != argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!model)
		usage_error("no model given (-m MODEL)");
	if (!addr || !*addr)
		addr = "127.0.0.1:8001";

	struct acc_status st = { 0 };
	struct acc_client *c;
	struct acc_model_metadata *md;
	if (acc_client_connect(addr, &c, &st) < 0 ||
	    acc_client_model_metadata(c, model, NULL, &md, &st) < 0) {
		fprintf(stderr, "loadgen: %s: %s\n", acc_code_name(st.code), st.message);
		return 1;
	}
	struct acc_tensor *in = xcalloc(md->n_inputs, sizeof(*in));
	uint64_t rng = (uint64_t)time(NULL);
	for (size_t i = 0; i < md->n_inputs; i++) {
		char *err = NULL;
		if (tensorgen_make(&md->inputs[i], batch, -1, &rng, &in[i], &err) < 0) {
			fprintf(stderr, "loadgen: %s\n", err);
			return 2;
		}
	}
	struct acc_infer_request req = { .model = model, .n_inputs = md->n_inputs, .inputs = in };

	int phase = PHASE_WARMUP;
	struct worker *w = xcalloc((size_t)conc, sizeof(*w));
	for (int i = 0; i < conc; i++) {
		w[i].client = c;
		w[i].req = &req;
		w[i].phase = &phase;
		if (pthread_create(&w[i].thread, NULL, worker_run, &w[i]) != 0) {
			fprintf(stderr, "loadgen: cannot start thread %d\n", i);
			return 1;
		}
	}
	sleep_s(warmup);
	uint64_t t0 = acc_now_ns();
	__atomic_store_n(&phase, PHASE_MEASURE, __ATOMIC_RELEASE);
	sleep_s(duration);
	__atomic_store_n(&phase, PHASE_STOP, __ATOMIC_RELEASE);
	double secs = (double)(acc_now_ns() - t0) / 1e9;

	size_t total = 0;
	uint64_t errors = 0;
	const char *first_error = NULL;
	for (int i = 0; i < conc; i++) {
		pthread_join(w[i].thread, NULL);
		total += w[i].n_lat;
		errors += w[i].errors;
		if (!first_error)
			first_error = w[i].first_error;
	}
	uint64_t *all = xmalloc((total ? total : 1) * sizeof(*all));
	size_t k = 0;
	double sum = 0;
	for (int i = 0; i < conc; i++) {
		for (size_t j = 0; j < w[i].n_lat; j++) {
			all[k++] = w[i].lat_ns[j];
			sum += (double)w[i].lat_ns[j];
		}
	}
	qsort(all, total, sizeof(*all), cmp_u64);
	double rps = (double)total / secs, mean_us = total ? sum / (double)total / 1e3 : 0;
	if (json) {
		printf("{\"model\":\"%s\",\"address\":\"%s\",\"concurrency\":%d,\"batch\":%" PRId64
		       ",\"duration_s\":%.3f,\"requests\":%zu,\"errors\":%" PRIu64
		       ",\"requests_per_s\":%.1f,\"samples_per_s\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f"
		       ",\"p99_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}\n",
		       model, addr, conc, batch, secs, total, errors, rps, rps * (double)batch,
		       pct_us(all, total, 0.5), pct_us(all, total, 0.9), pct_us(all, total, 0.99),
		       total ? (double)all[total - 1] / 1e3 : 0, mean_us);
	} else {
		printf("model %s at %s: concurrency %d, batch %" PRId64 ", %.1f s measured\n", model,
		       addr, conc, batch, secs);
		printf("requests %zu, errors %" PRIu64 "\n", total, errors);
		printf("throughput %.1f requests/s, %.1f samples/s\n", rps, rps * (double)batch);
		printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f\n",
		       pct_us(all, total, 0.5), pct_us(all, total, 0.9), pct_us(all, total, 0.99),
		       total ? (double)all[total - 1] / 1e3 : 0, mean_us);
	}
	if (first_error)
		fprintf(stderr, "loadgen: first error: %s\n", first_error);

	for (int i = 0; i < conc; i++) {
		free(w[i].lat_ns);
		free(w[i].first_error);
	}
	free(w);
	free(all);
	for (size_t i = 0; i < md->n_inputs; i++) {
		free((void *)in[i].shape);
		free((void *)in[i].data);
	}
	free(in);
	acc_model_metadata_free(md);
	acc_client_close(c);
	return errors && !total ? 1 : 0;
}
