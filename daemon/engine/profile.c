/* profile.c - per-op-type run time table (see profile.h). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"
#include "util.h"

#define PROF_MAX 128 /* distinct keys kept; later ones are counted under "other" */

struct prof_row {
	char key[96];
	uint64_t calls, ns;
};

static pthread_once_t prof_once = PTHREAD_ONCE_INIT;
static bool prof_on, prof_shapes;
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prof_row prof_rows[PROF_MAX + 1];
static int prof_n;

/* Read the environment once. */
static void prof_init(void)
{
	const char *e = getenv("ACCELD_ENGINE_PROFILE");
	prof_on = e && *e && strcmp(e, "0");
	prof_shapes = prof_on && !strcmp(e, "2");
}

bool eng_profile_enabled(void)
{
	pthread_once(&prof_once, prof_init);
	return prof_on;
}

/* The activation name for the optimiser's _act code (see opt.h). */
static const char *act_name(int64_t a)
{
	static const char *const names[] = { "", "Relu", "Clip", "Sigmoid", "HardSwish", "LeakyRelu", "Gelu", "Tanh" };
	return a > 0 && a < (int64_t)ACC_ARRAY_LEN(names) ? names[a] : "";
}

/* The table key of node n: op type plus fused bias/activation; with shapes, the dims of its
 * first input and output and, for a Conv, its weight dims and strides. */
static void prof_key(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     char *buf, size_t len)
{
	int64_t act = eg_attr_int(n, "_act", 0);
	int64_t bias = eg_attr_int(n, "_bias", 0), sum = eg_attr_int(n, "_sum", 0);
	int k = snprintf(buf, len, "%s%s%s%s%s", n->op_type, bias ? "+Bias" : "", sum ? "+Sum" : "", act ? "+" : "",
			 act_name(act));
	if (!prof_shapes || !in || !out || k < 0 || (size_t)k >= len)
		return;
	const struct eng_tensor *ts[3] = { n->n_in > 0 ? in[0] : NULL, n->n_out > 0 ? out[0] : NULL,
					   !strcmp(n->op_type, "Conv") && n->n_in > 1 ? in[1] : NULL };
	for (int t = 0; t < 3; t++) {
		if (!ts[t])
			continue;
		k += snprintf(buf + k, len - k, t ? (t == 1 ? "->" : " w") : " ");
		if (t < 2 && ts[t]->layout == ENG_LAYOUT_NCHW8C && (size_t)k < len)
			k += snprintf(buf + k, len - k, "[8c]");
		for (int d = 0; d < ts[t]->ndims && (size_t)k < len; d++)
			k += snprintf(buf + k, len - k, "%s%lld", d ? "x" : "", (long long)ts[t]->dims[d]);
		if ((size_t)k >= len)
			return;
	}
	size_t ns;
	const int64_t *st = eg_attr_ints(n, "strides", &ns);
	if (st && ns && st[0] != 1)
		snprintf(buf + k, len - k, " s%lld", (long long)st[0]);
}

void eng_profile_add(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     uint64_t ns)
{
	char key[96];
	prof_key(n, in, out, key, sizeof(key));
	pthread_mutex_lock(&prof_lock);
	int i = 0;
	while (i < prof_n && strcmp(prof_rows[i].key, key))
		i++;
	if (i == prof_n) {
		if (prof_n < PROF_MAX) {
			prof_n++;
			snprintf(prof_rows[i].key, sizeof(prof_rows[i].key), "%s", key);
		} else {
			i = PROF_MAX;
			snprintf(prof_rows[i].key, sizeof(prof_rows[i].key), "other");
		}
	}
	prof_rows[i].calls++;
	prof_rows[i].ns += ns;
	pthread_mutex_unlock(&prof_lock);
}

void eng_profile_reset(void)
{
	pthread_mutex_lock(&prof_lock);
	memset(prof_rows, 0, sizeof(prof_rows));
	prof_n = 0;
	pthread_mutex_unlock(&prof_lock);
}

/* Order rows by time, most first. */
static int row_cmp(const void *a, const void *b)
{
	const struct prof_row *x = a, *y = b;
	return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

void eng_profile_print(FILE *f, const char *title, int runs)
{
	pthread_mutex_lock(&prof_lock);
	int n = prof_n + (prof_rows[PROF_MAX].calls ? 1 : 0);
	struct prof_row *rows = xcalloc(n + 1, sizeof(*rows));
	memcpy(rows, prof_rows, prof_n * sizeof(*rows));
	if (n > prof_n)
		rows[prof_n] = prof_rows[PROF_MAX];
	pthread_mutex_unlock(&prof_lock);
	qsort(rows, n, sizeof(*rows), row_cmp);
	uint64_t total = 0;
	for (int i = 0; i < n; i++)
		total += rows[i].ns;
	int div = runs > 0 ? runs : 1;
	fprintf(f, "profile %s: %.3f ms per run over %d runs\n", title ? title : "", total / 1e6 / div, div);
	fprintf(f, "  %-44s %8s %10s %6s %10s\n", "op", "calls/run", "ms/run", "share", "us/call");
	for (int i = 0; i < n; i++)
		fprintf(f, "  %-44s %8.1f %10.3f %5.1f%% %10.1f\n", rows[i].key, (double)rows[i].calls / div,
			rows[i].ns / 1e6 / div, total ? 100.0 * rows[i].ns / total : 0.0,
			rows[i].calls ? rows[i].ns / 1e3 / rows[i].calls : 0.0);
	free(rows);
}
