/* conformance.c - run the ONNX backend node cases the engine claims to support.
 *
 * Cases live in $ACCELD_CONFORMANCE_DIR, or else $top_srcdir/../shared/onnx-conformance/node:
 * <case>/model.onnx and <case>/test_data_set_N/{input,output}_K.pb (serialized TensorProtos).
 * A case is claimed when eng_model_supported() says yes; every claimed case must load, run and
 * match (|a - b| <= atol + rtol * |b|, rtol 1e-3, atol 1e-7, NaN equal to NaN, integers exact).
 * Exit 0 all claimed cases passed, 1 a claimed case failed, 77 no cases found (automake SKIP).
 * ACCELD_CONFORMANCE_FILTER=substr runs only matching cases; ACCELD_CONFORMANCE_VERBOSE=1 also
 * prints why each case was skipped.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"
#include "graph.h"
#include "onnx.h"
#include "util.h"

#define RTOL 1e-3
#define ATOL 1e-7

/* Whether path exists. */
static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Element i of a numeric tensor as double, for comparing. */
static double elem(const struct eng_tensor *t, int64_t i)
{
	const void *p = t->data;
	switch (t->dtype) {
	case DT_FP32: return ((const float *)p)[i];
	case DT_FP64: return ((const double *)p)[i];
	default: return 0;
	}
}

/* Compare a result to the expected tensor; a message on mismatch (caller frees). */
static char *compare(const struct eng_tensor *got, const struct eng_tensor *want)
{
	if (got->dtype != want->dtype)
		return xasprintf("type %s, expected %s", dtype_name(got->dtype), dtype_name(want->dtype));
	if (got->ndims != want->ndims)
		return xasprintf("rank %d, expected %d", got->ndims, want->ndims);
	for (int d = 0; d < got->ndims; d++)
		if (got->dims[d] != want->dims[d])
			return xasprintf("dim %d is %lld, expected %lld", d, (long long)got->dims[d],
					 (long long)want->dims[d]);
	if (got->bytes != want->bytes)
		return xasprintf("%zu bytes, expected %zu", got->bytes, want->bytes);
	int64_t n = shape_numel(want->dims, want->ndims);
	if (want->dtype == DT_FP32 || want->dtype == DT_FP64) {
		for (int64_t i = 0; i < n; i++) {
			double a = elem(got, i), b = elem(want, i);
			if (isnan(a) && isnan(b))
				continue;
			if (a == b)
				continue;
			if (!(fabs(a - b) <= ATOL + RTOL * fabs(b)))
				return xasprintf("element %lld is %.9g, expected %.9g", (long long)i, a, b);
		}
		return NULL;
	}
	if (want->bytes && memcmp(got->data, want->data, want->bytes)) {
		size_t esz = dtype_size(want->dtype);
		for (int64_t i = 0; i < n; i++)
			if (memcmp((const char *)got->data + i * esz, (const char *)want->data + i * esz, esz))
				return xasprintf("element %lld differs (exact type %s)", (long long)i,
						 dtype_name(want->dtype));
	}
	return NULL;
}

/* Read a serialized TensorProto file. */
static int read_tensor(const char *path, struct eng_tensor **t, char **err)
{
	char *buf;
	size_t len;
	int rc = acc_read_file(path, &buf, &len, err);
	if (rc)
		return rc;
	rc = onnx_parse_tensor(buf, len, t, NULL, err);
	free(buf);
	return rc;
}

/* Run one test_data_set directory against an exec; NULL on success, else a message. */
static char *run_set(const struct eng_model *m, struct eng_exec *x, const char *dir)
{
	size_t ni = eng_model_n_inputs(m), no = eng_model_n_outputs(m);
	struct eng_tensor **ins = xcalloc(ni + 1, sizeof(*ins));
	struct eng_tensor *in_vals = xcalloc(ni + 1, sizeof(*in_vals));
	struct eng_tensor *outs = xcalloc(no + 1, sizeof(*outs));
	char *msg = NULL, *err = NULL;
	for (size_t i = 0; i < ni && !msg; i++) {
		char *p = xasprintf("%s/input_%zu.pb", dir, i);
		if (read_tensor(p, &ins[i], &err))
			msg = xasprintf("%s: %s", p, err);
		else
			in_vals[i] = *ins[i];
		free(p);
	}
	if (!msg) {
		char *p = xasprintf("%s/input_%zu.pb", dir, ni);
		if (exists(p))
			msg = xasprintf("the case has more inputs than the model's %zu", ni);
		free(p);
	}
	if (!msg && eng_exec_run(x, in_vals, outs, &err))
		msg = xasprintf("run: %s", err);
	for (size_t i = 0; i < no && !msg; i++) {
		char *p = xasprintf("%s/output_%zu.pb", dir, i);
		struct eng_tensor *want;
		if (read_tensor(p, &want, &err)) {
			msg = xasprintf("%s: %s", p, err);
		} else {
			char *c = compare(&outs[i], want);
			if (c)
				msg = xasprintf("output %zu: %s", i, c);
			free(c);
			eg_tensor_free(want);
		}
		free(p);
	}
	free(err);
	for (size_t i = 0; i < ni; i++)
		eg_tensor_free(ins[i]);
	free(ins);
	free(in_vals);
	free(outs);
	return msg;
}

/* Load and run every data set of a claimed case; NULL on success. */
static char *run_case(const char *cdir, const void *model, size_t len)
{
	struct eng_model *m = NULL;
	struct eng_exec *x = NULL;
	struct eng_options opt = { .threads = 1 };
	char *err = NULL, *msg = NULL;
	if (eng_model_load(model, len, &opt, &m, &err)) {
		msg = xasprintf("load: %s", err);
		free(err);
		return msg;
	}
	if (eng_exec_create(m, &x, &err)) {
		msg = xasprintf("exec: %s", err);
		free(err);
		eng_model_free(m);
		return msg;
	}
	int sets = 0;
	for (int s = 0; !msg; s++) {
		char *d = xasprintf("%s/test_data_set_%d", cdir, s);
		if (!exists(d)) {
			free(d);
			break;
		}
		/* Run each set twice: the second run reuses the cached plan and arena. */
		for (int rep = 0; rep < 2 && !msg; rep++)
			msg = run_set(m, x, d);
		sets++;
		free(d);
	}
	if (!msg && !sets)
		msg = xstrdup("no test_data_set_* folders");
	eng_exec_free(x);
	eng_model_free(m);
	return msg;
}

/* Sort case names. */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	const char *dir = getenv("ACCELD_CONFORMANCE_DIR");
	char *owned = NULL;
	if (!dir || !*dir) {
		const char *top = getenv("top_srcdir");
		owned = xasprintf("%s/../shared/onnx-conformance/node", top && *top ? top : ".");
		dir = owned;
	}
	DIR *d = opendir(dir);
	if (!d) {
		printf("SKIP: no ONNX conformance cases at %s (set ACCELD_CONFORMANCE_DIR)\n", dir);
		free(owned);
		return 77;
	}
	const char *filter = getenv("ACCELD_CONFORMANCE_FILTER");
	bool verbose = getenv("ACCELD_CONFORMANCE_VERBOSE") && *getenv("ACCELD_CONFORMANCE_VERBOSE") == '1';
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (filter && *filter && !strstr(e->d_name, filter))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			names = xreallocarray(names, cap, sizeof(char *));
		}
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(char *), cmp_names);

	int total = 0, claimed = 0, passed = 0, skipped = 0;
	char **failed = xcalloc(n + 1, sizeof(char *));
	int n_failed = 0;
	uint64_t t0 = acc_now_ns();
	for (size_t i = 0; i < n; i++) {
		char *cdir = xasprintf("%s/%s", dir, names[i]);
		char *mpath = xasprintf("%s/model.onnx", cdir);
		char *buf = NULL, *why = NULL;
		size_t len;
		if (!exists(mpath)) {
			free(cdir);
			free(mpath);
			continue;
		}
		total++;
		if (acc_read_file(mpath, &buf, &len, &why)) {
			printf("FAIL %s: %s\n", names[i], why);
			failed[n_failed++] = names[i];
		} else {
			int sup = eng_model_supported(buf, len, &why);
			if (sup == 0) {
				skipped++;
				if (verbose)
					printf("skip %s: %s\n", names[i], why);
			} else if (sup < 0) {
				/* An official case we call malformed: our parser is wrong. */
				claimed++;
				printf("FAIL %s: rejected as invalid: %s\n", names[i], why);
				failed[n_failed++] = names[i];
			} else {
				claimed++;
				char *msg = run_case(cdir, buf, len);
				if (msg) {
					printf("FAIL %s: %s\n", names[i], msg);
					failed[n_failed++] = names[i];
					free(msg);
				} else {
					passed++;
					if (verbose)
						printf("pass %s\n", names[i]);
				}
			}
		}
		free(why);
		free(buf);
		free(cdir);
		free(mpath);
	}
	double secs = (double)(acc_now_ns() - t0) / 1e9;
	printf("ONNX node conformance: %d cases, %d claimed, %d passed, %d failed, %d skipped (%.2f s)\n", total,
	       claimed, passed, n_failed, skipped, secs);
	if (n_failed) {
		printf("failed cases:");
		for (int i = 0; i < n_failed; i++)
			printf(" %s", failed[i]);
		printf("\n");
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(failed);
	free(owned);
	if (!total) {
		printf("SKIP: no cases matched in %s\n", dir);
		return 77;
	}
	return n_failed ? 1 : 0;
}
