/* accelctl.c - command-line client of acceld: status, models, metadata, load/unload, infer. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "acceld/client.h"
#include "daemon/util.h"
#include "tensorgen.h"

#define EXIT_RPC 1
#define EXIT_USAGE 2
#define DEFAULT_SOCKET "/run/acceld/acceld.sock"
#define DEFAULT_TCP "127.0.0.1:8001"
#define MAX_SHOWN 32 /* values printed per output before "..." */

static const char *prog = "accelctl";

/* Print the usage text to f. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-a ADDR] [-t MS] COMMAND [ARGS]\n"
		"\n"
		"Talk to the acceld inference daemon (Open Inference Protocol v2 over gRPC).\n"
		"\n"
		"options:\n"
		"  -a, --address ADDR  server: host:port or unix:/path (default: $ACCELD_ADDRESS,\n"
		"                      else unix:" DEFAULT_SOCKET " if it exists, else " DEFAULT_TCP ")\n"
		"  -t, --timeout MS    deadline of each call in milliseconds (default 60000)\n"
		"  -h, --help          this text\n"
		"\n"
		"commands:\n"
		"  status                        liveness, readiness and server metadata\n"
		"  models                        every model in the repository, its state and reason\n"
		"  metadata MODEL                a model's versions, platform, inputs and outputs\n"
		"  config MODEL                  a model's effective configuration (JSON)\n"
		"  load MODEL [--config FILE]    load or reload a model (FILE: a JSON config override)\n"
		"  unload MODEL                  unload a model\n"
		"  stats [MODEL]                 inference statistics of one model or of all\n"
		"  infer MODEL [options]         run one inference and print the outputs:\n"
		"      --input NAME=FILE|random|zeros|ones   raw little-endian data, or generated\n"
		"                                            (inputs not named are random)\n"
		"      --shape NAME=D1,D2,...                shape of an input (default: metadata)\n"
		"      --output NAME                         only this output (repeatable)\n"
		"      --batch N                             batch size for a variable first dim (1)\n"
		"      --id ID                               request id\n"
		"      --json                                print the whole result as JSON\n"
		"  health [SERVICE]              grpc.health.v1 check (exit 1 unless SERVING)\n"
		"\n"
		"exit status: 0 success, 1 the server or connection failed, 2 usage error\n",
		prog);
}

/* Print a usage error and exit 2. */
ACC_PRINTF(1, 2) __attribute__((noreturn))
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(try '%s --help')\n", prog);
	exit(EXIT_USAGE);
}

/* Print a failed call's status ("accelctl: NOT_FOUND: ...") and return exit code 1. */
static int rpc_error(struct acc_status *st)
{
	fprintf(stderr, "%s: %s: %s\n", prog, acc_code_name(st->code),
		st->message ? st->message : "(no message)");
	acc_status_clear(st);
	return EXIT_RPC;
}

/* The address to use when -a is not given. */
static const char *default_address(void)
{
	const char *env = getenv("ACCELD_ADDRESS");
	if (env && *env)
		return env;
	if (access(DEFAULT_SOCKET, F_OK) == 0)
		return "unix:" DEFAULT_SOCKET;
	return DEFAULT_TCP;
}

/* Format a shape as "[1, 3]" into a fresh string. */
static char *shape_str(const int64_t *dims, size_t n)
{
	size_t cap = 2 + n * 22, len = 0;
	char *s = xmalloc(cap);
	s[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%" PRId64, i ? ", " : "", dims[i]);
	s[len++] = ']';
	s[len] = '\0';
	return s;
}

/* --- status, models, metadata, config, load, unload, stats, health --------------------------- */

/* status: liveness, readiness, server metadata. */
static int cmd_status(struct acc_client *c, const char *addr)
{
	struct acc_status st = { 0 };
	bool live = false, ready = false;
	struct acc_server_metadata *md;
	if (acc_client_server_live(c, &live, &st) < 0)
		return rpc_error(&st);
	if (acc_client_server_ready(c, &ready, &st) < 0)
		return rpc_error(&st);
	if (acc_client_server_metadata(c, &md, &st) < 0)
		return rpc_error(&st);
	printf("address:    %s\n", addr);
	printf("live:       %s\n", live ? "true" : "false");
	printf("ready:      %s\n", ready ? "true" : "false");
	printf("server:     %s %s\n", md->name, md->version);
	printf("extensions:");
	for (size_t i = 0; i < md->n_extensions; i++)
		printf(" %s", md->extensions[i]);
	printf("\n");
	acc_server_metadata_free(md);
	return 0;
}

/* qsort order of index rows: by name, then version. */
static int cmp_repo_model(const void *a, const void *b)
{
	const struct acc_repo_model *x = a, *y = b;
	int d = strcmp(x->name, y->name);
	return d ? d : strcmp(x->version, y->version);
}

/* models: the repository index as a table, sorted by name. */
static int cmd_models(struct acc_client *c)
{
	struct acc_status st = { 0 };
	struct acc_repo_model *m;
	size_t n;
	if (acc_client_repository_index(c, false, &m, &n, &st) < 0)
		return rpc_error(&st);
	qsort(m, n, sizeof(*m), cmp_repo_model);
	int wn = 5;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(m[i].name) > wn)
			wn = (int)strlen(m[i].name);
	printf("%-*s  %-7s  %-11s  %s\n", wn, "MODEL", "VERSION", "STATE", "REASON");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-7s  %-11s  %s\n", wn, m[i].name, *m[i].version ? m[i].version : "-",
		       m[i].state, m[i].reason);
	acc_repo_index_free(m, n);
	return 0;
}

/* Print a list of tensor descriptions. */
static void print_tensors(const struct acc_tensor_metadata *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *s = shape_str(t[i].shape, t[i].ndims);
		printf("  %-20s %-6s %s\n", t[i].name, t[i].datatype, s);
		free(s);
	}
}

/* metadata MODEL. */
static int cmd_metadata(struct acc_client *c, const char *model)
{
	struct acc_status st = { 0 };
	struct acc_model_metadata *md;
	if (acc_client_model_metadata(c, model, NULL, &md, &st) < 0)
		return rpc_error(&st);
	printf("model:    %s\n", md->name);
	printf("versions:");
	for (size_t i = 0; i < md->n_versions; i++)
		printf(" %s", md->versions[i]);
	printf("\nplatform: %s\ninputs:\n", md->platform);
	print_tensors(md->inputs, md->n_inputs);
	printf("outputs:\n");
	print_tensors(md->outputs, md->n_outputs);
	acc_model_metadata_free(md);
	return 0;
}

/* config MODEL. */
static int cmd_config(struct acc_client *c, const char *model)
{
	struct acc_status st = { 0 };
	char *json;
	if (acc_client_model_config(c, model, NULL, &json, &st) < 0)
		return rpc_error(&st);
	printf("%s\n", json);
	free(json);
	return 0;
}

/* Read and check a JSON configuration override; usage error if unreadable or not an object. */
static char *read_config(const char *path)
{
	char *text, *err = NULL;
	size_t len;
	if (acc_read_file(path, &text, &len, &err) < 0)
		usage_error("%s", err);
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	if (!json_is_object(j))
		usage_error("%s:%d: not a JSON object%s%s", path, je.line, j ? "" : ": ", j ? "" : je.text);
	json_decref(j);
	return text;
}

/* load MODEL [--config FILE] (config_json: the file's text or NULL). */
static int cmd_load(struct acc_client *c, const char *model, const char *config_json)
{
	struct acc_status st = { 0 };
	if (acc_client_load(c, model, config_json, &st) < 0)
		return rpc_error(&st);
	printf("loaded %s\n", model);
	return 0;
}

/* unload MODEL. */
static int cmd_unload(struct acc_client *c, const char *model)
{
	struct acc_status st = { 0 };
	if (acc_client_unload(c, model, &st) < 0)
		return rpc_error(&st);
	printf("unloaded %s\n", model);
	return 0;
}

/* Average of a duration in microseconds. */
static double avg_us(struct acc_duration d)
{
	return d.count ? (double)d.ns / (double)d.count / 1e3 : 0.0;
}

/* qsort order of batch statistics: by batch size. */
static int cmp_batch(const void *a, const void *b)
{
	const struct acc_batch_stats *x = a, *y = b;
	return x->batch_size < y->batch_size ? -1 : x->batch_size > y->batch_size;
}

/* qsort order of model statistics: by name, then version. */
static int cmp_stats(const void *a, const void *b)
{
	const struct acc_model_stats *x = a, *y = b;
	int d = strcmp(x->name, y->name);
	return d ? d : strcmp(x->version, y->version);
}

/* stats [MODEL]. */
static int cmd_stats(struct acc_client *c, const char *model)
{
	struct acc_status st = { 0 };
	struct acc_model_stats *s;
	size_t n;
	if (acc_client_model_statistics(c, model, NULL, &s, &n, &st) < 0)
		return rpc_error(&st);
	qsort(s, n, sizeof(*s), cmp_stats);
	for (size_t i = 0; i < n; i++) {
		printf("%s (version %s)\n", s[i].name, *s[i].version ? s[i].version : "-");
		char when[64] = "never";
		if (s[i].last_inference_ms) {
			time_t t = (time_t)(s[i].last_inference_ms / 1000);
			struct tm tm;
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		}
		printf("  inferences %" PRIu64 "  executions %" PRIu64 "  last %s\n",
		       s[i].inference_count, s[i].execution_count, when);
		printf("  success %" PRIu64 " (avg %.1f us)  fail %" PRIu64 "\n", s[i].success.count,
		       avg_us(s[i].success), s[i].fail.count);
		printf("  avg us: queue %.1f  input %.1f  infer %.1f  output %.1f\n", avg_us(s[i].queue),
		       avg_us(s[i].compute_input), avg_us(s[i].compute_infer),
		       avg_us(s[i].compute_output));
		qsort(s[i].batch, s[i].n_batch, sizeof(*s[i].batch), cmp_batch);
		for (size_t k = 0; k < s[i].n_batch; k++)
			printf("  batch %" PRIu64 ": %" PRIu64 " executions, infer avg %.1f us\n",
			       s[i].batch[k].batch_size, s[i].batch[k].compute_infer.count,
			       avg_us(s[i].batch[k].compute_infer));
	}
	acc_model_stats_free(s, n);
	return 0;
}

/* health [SERVICE]. */
static int cmd_health(struct acc_client *c, const char *service)
{
	static const char *const names[] = { "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" };
	struct acc_status st = { 0 };
	int serving;
	if (acc_client_health_check(c, service ? service : "", &serving, &st) < 0)
		return rpc_error(&st);
	printf("%s\n", serving >= 0 && serving < 4 ? names[serving] : "INVALID");
	return serving == 1 ? 0 : EXIT_RPC;
}

/* --- infer ----------------------------------------------------------------------------------- */

struct input_opt {
	char *name;
	char *source; /* a file, or "random" / "zeros" / "ones" */
};
struct shape_opt {
	char *name;
	size_t ndims;
	int64_t dims[TENSORGEN_MAX_DIMS];
};

struct infer_opts {
	size_t n_inputs, n_shapes, n_outputs;
	struct input_opt *inputs;
	struct shape_opt *shapes;
	const char **outputs;
	int64_t batch;
	const char *id;
	bool json;
};

static uint64_t rng_state;

/* Parse "1,784" into dims; -1 allowed. 0 or -EINVAL. */
static int parse_dims(const char *s, int64_t *dims, size_t max, size_t *n)
{
	*n = 0;
	while (*s) {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (end == s || errno || v < -1 || *n == max)
			return -EINVAL;
		dims[(*n)++] = v;
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		s = end;
	}
	return *n ? 0 : -EINVAL;
}

/* Build one input tensor of model input md from the options; data and shape are malloc'd. */
static void make_input(const struct acc_tensor_metadata *md, const struct infer_opts *o,
		       struct acc_tensor *t)
{
	const char *source = "random";
	for (size_t i = 0; i < o->n_inputs; i++)
		if (!strcmp(o->inputs[i].name, md->name))
			source = o->inputs[i].source;
	int64_t *dims = xcalloc(TENSORGEN_MAX_DIMS, sizeof(int64_t));
	size_t nd = md->ndims;
	if (nd > TENSORGEN_MAX_DIMS)
		usage_error("input %s has %zu dimensions", md->name, nd);
	memcpy(dims, md->shape, nd * sizeof(int64_t));
	for (size_t i = 0; i < o->n_shapes; i++)
		if (!strcmp(o->shapes[i].name, md->name)) {
			nd = o->shapes[i].ndims;
			memcpy(dims, o->shapes[i].dims, nd * sizeof(int64_t));
		}
	size_t esize = acc_datatype_size(md->datatype);
	if (!esize)
		usage_error("input %s: datatype %s cannot be given from here", md->name, md->datatype);
	bool generated = !strcmp(source, "random") || !strcmp(source, "zeros") || !strcmp(source, "ones");

	void *data = NULL;
	size_t bytes = 0;
	if (!generated) {
		char *err = NULL, *buf;
		if (acc_read_file(source, &buf, &bytes, &err) < 0)
			usage_error("input %s: %s", md->name, err);
		data = buf;
		/* One unknown dimension is deduced from the file's size. */
		size_t unknown = 0, at = 0;
		int64_t known = 1;
		for (size_t i = 0; i < nd; i++) {
			if (dims[i] < 0) {
				unknown++;
				at = i;
			} else {
				known *= dims[i];
			}
		}
		if (unknown > 1)
			usage_error("input %s has several variable dimensions: give --shape %s=...",
				    md->name, md->name);
		if (unknown == 1) {
			if (known == 0 || bytes % (esize * (size_t)known))
				usage_error("input %s: %zu bytes do not fit shape with %" PRId64 " %s elements per row",
					    md->name, bytes, known, md->datatype);
			dims[at] = (int64_t)(bytes / (esize * (size_t)known));
		}
		int64_t n = tensorgen_numel(dims, nd);
		if (n < 0 || (size_t)n * esize != bytes) {
			char *s = shape_str(dims, nd);
			usage_error("input %s: file %s has %zu bytes, shape %s of %s needs %" PRId64,
				    md->name, source, bytes, s, md->datatype, n * (int64_t)esize);
		}
	} else {
		/* A --shape override stands in for the metadata's shape. */
		struct acc_tensor_metadata eff = *md;
		eff.ndims = nd;
		eff.shape = dims;
		char *err = NULL;
		size_t nd2;
		if (tensorgen_shape(&eff, o->batch, dims, &nd2, &err) < 0)
			usage_error("%s (--shape %s=...)", err, md->name);
		int64_t n = tensorgen_numel(dims, nd);
		if (n < 0 || (uint64_t)n > SIZE_MAX / esize)
			usage_error("input %s: shape too large", md->name);
		bytes = (size_t)n * esize;
		data = xmalloc(bytes);
		int v = !strcmp(source, "zeros") ? 0 : !strcmp(source, "ones") ? 1 : -1;
		tensorgen_fill(md->datatype, data, (size_t)n, v, &rng_state);
	}
	t->name = md->name;
	t->datatype = md->datatype;
	t->ndims = nd;
	t->shape = dims;
	t->data = data;
	t->bytes = bytes;
}

/* Element i of a tensor as a double (for printing); 0 for datatypes not shown as numbers. */
static double elem(const struct acc_tensor *t, size_t i)
{
	const char *dt = t->datatype;
	const void *p = t->data;
	if (!strcmp(dt, "FP32"))
		return ((const float *)p)[i];
	if (!strcmp(dt, "FP64"))
		return ((const double *)p)[i];
	if (!strcmp(dt, "INT8"))
		return ((const int8_t *)p)[i];
	if (!strcmp(dt, "INT16"))
		return ((const int16_t *)p)[i];
	if (!strcmp(dt, "INT32"))
		return ((const int32_t *)p)[i];
	if (!strcmp(dt, "INT64"))
		return (double)((const int64_t *)p)[i];
	if (!strcmp(dt, "UINT8") || !strcmp(dt, "BOOL"))
		return ((const uint8_t *)p)[i];
	if (!strcmp(dt, "UINT16"))
		return ((const uint16_t *)p)[i];
	if (!strcmp(dt, "UINT32"))
		return ((const uint32_t *)p)[i];
	if (!strcmp(dt, "UINT64"))
		return (double)((const uint64_t *)p)[i];
	if (!strcmp(dt, "FP16")) {
		uint16_t h = ((const uint16_t *)p)[i];
		int e = (h >> 10) & 31, m = h & 1023;
		double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
		return (h & 0x8000) ? -v : v;
	}
	if (!strcmp(dt, "BF16")) {
		uint32_t b = (uint32_t)((const uint16_t *)p)[i] << 16;
		float f;
		memcpy(&f, &b, 4);
		return f;
	}
	return 0;
}

/* Element i as JSON: integers exactly, floats as reals. */
static json_t *elem_json(const struct acc_tensor *t, size_t i)
{
	const char *dt = t->datatype;
	if (!strcmp(dt, "BOOL"))
		return json_boolean(((const uint8_t *)t->data)[i]);
	if (!strcmp(dt, "INT64"))
		return json_integer(((const int64_t *)t->data)[i]);
	if (!strcmp(dt, "UINT64"))
		return json_integer((json_int_t)((const uint64_t *)t->data)[i]);
	if (dt[0] == 'I' || dt[0] == 'U')
		return json_integer((json_int_t)elem(t, i));
	return json_real(elem(t, i));
}

/* Print the result as one JSON object. */
static void print_result_json(const struct acc_infer_result *r)
{
	json_t *outs = json_array();
	for (size_t i = 0; i < r->n_outputs; i++) {
		const struct acc_tensor *t = &r->outputs[i];
		json_t *shape = json_array(), *data = json_array();
		for (size_t k = 0; k < t->ndims; k++)
			json_array_append_new(shape, json_integer(t->shape[k]));
		size_t es = acc_datatype_size(t->datatype);
		for (size_t k = 0; es && k < t->bytes / es; k++)
			json_array_append_new(data, elem_json(t, k));
		json_array_append_new(outs, json_pack("{s:s, s:s, s:o, s:o}", "name", t->name, "datatype",
						      t->datatype, "shape", shape, "data", data));
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:o}", "model_name", r->model_name, "model_version",
			      r->model_version, "id", r->id, "outputs", outs);
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	printf("%s\n", s);
	free(s);
	json_decref(j);
}

/* Print the result for a person: shape, dtype, values (truncated), argmax of 2-D FP32. */
static void print_result(const struct acc_infer_result *r)
{
	printf("model %s version %s", r->model_name, r->model_version);
	if (*r->id)
		printf(" id %s", r->id);
	printf("\n");
	for (size_t i = 0; i < r->n_outputs; i++) {
		const struct acc_tensor *t = &r->outputs[i];
		char *s = shape_str(t->shape, t->ndims);
		size_t es = acc_datatype_size(t->datatype), n = es ? t->bytes / es : 0;
		printf("%s: %s %s (%zu bytes)\n", t->name, t->datatype, s, t->bytes);
		free(s);
		if (!es)
			continue;
		printf("  [");
		for (size_t k = 0; k < n && k < MAX_SHOWN; k++)
			printf("%s%.6g", k ? ", " : "", elem(t, k));
		if (n > MAX_SHOWN)
			printf(", ... (%zu more)", n - MAX_SHOWN);
		printf("]\n");
		if (!strcmp(t->datatype, "FP32") && t->ndims == 2 && t->shape[1] > 0 &&
		    (size_t)(t->shape[0] * t->shape[1]) == n) {
			printf("  argmax:");
			for (int64_t row = 0; row < t->shape[0]; row++) {
				const float *v = (const float *)t->data + row * t->shape[1];
				int64_t best = 0;
				for (int64_t k = 1; k < t->shape[1]; k++)
					if (v[k] > v[best])
						best = k;
				printf(" %" PRId64, best);
			}
			printf("\n");
		}
	}
}

/* Split "NAME=VALUE" into fresh strings; usage error if there is no '='. */
static void split_opt(const char *opt, const char *arg, char **name, char **value)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || !eq[1])
		usage_error("%s wants NAME=VALUE, got '%s'", opt, arg);
	*name = xstrndup(arg, (size_t)(eq - arg));
	*value = xstrdup(eq + 1);
}

/* infer MODEL [options]. */
static int cmd_infer(struct acc_client *c, const char *model, struct infer_opts *o)
{
	struct acc_status st = { 0 };
	struct acc_model_metadata *md;
	if (acc_client_model_metadata(c, model, NULL, &md, &st) < 0)
		return rpc_error(&st);
	for (size_t i = 0; i < o->n_inputs; i++) {
		bool found = false;
		for (size_t k = 0; k < md->n_inputs; k++)
			found |= !strcmp(md->inputs[k].name, o->inputs[i].name);
		if (!found)
			usage_error("model %s has no input %s", model, o->inputs[i].name);
	}
	struct acc_tensor *in = xcalloc(md->n_inputs, sizeof(*in));
	for (size_t i = 0; i < md->n_inputs; i++)
		make_input(&md->inputs[i], o, &in[i]);
	struct acc_infer_request rq = {
		.model = model,
		.id = o->id,
		.n_inputs = md->n_inputs,
		.inputs = in,
		.n_outputs = o->n_outputs,
		.outputs = o->outputs,
	};
	struct acc_infer_result *res;
	int rc = acc_client_infer(c, &rq, &res, &st);
	for (size_t i = 0; i < md->n_inputs; i++) {
		free((void *)in[i].shape);
		free((void *)in[i].data);
	}
	free(in);
	acc_model_metadata_free(md);
	if (rc < 0)
		return rpc_error(&st);
	if (o->json)
		print_result_json(res);
	else
		print_result(res);
	acc_infer_result_free(res);
	return 0;
}

/* Parse infer's options (argv[0] is "infer"); returns the model name. */
static const char *parse_infer(int argc, char **argv, struct infer_opts *o)
{
	static const struct option longopts[] = {
		{ "input", required_argument, NULL, 'i' }, { "shape", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' }, { "batch", required_argument, NULL, 'b' },
		{ "id", required_argument, NULL, 'I' },     { "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	o->batch = 1;
	optind = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			o->inputs = xreallocarray(o->inputs, o->n_inputs + 1, sizeof(*o->inputs));
			split_opt("--input", optarg, &o->inputs[o->n_inputs].name,
				  &o->inputs[o->n_inputs].source);
			o->n_inputs++;
			break;
		case 's': {
			o->shapes = xreallocarray(o->shapes, o->n_shapes + 1, sizeof(*o->shapes));
			struct shape_opt *s = &o->shapes[o->n_shapes++];
			char *dims;
			split_opt("--shape", optarg, &s->name, &dims);
			if (parse_dims(dims, s->dims, TENSORGEN_MAX_DIMS, &s->ndims) < 0)
				usage_error("--shape %s: bad dimensions '%s'", s->name, dims);
			free(dims);
			break;
		}
		case 'o':
			o->outputs = xreallocarray(o->outputs, o->n_outputs + 1, sizeof(*o->outputs));
			o->outputs[o->n_outputs++] = optarg;
			break;
		case 'b': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1 << 20)
				usage_error("--batch wants a positive number, got '%s'", optarg);
			o->batch = v;
			break;
		}
		case 'I':
			o->id = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		default:
			usage_error("bad option for infer");
		}
	}
	if (optind != argc - 1)
		usage_error("infer wants exactly one MODEL");
	return argv[optind];
}

/* Check that a command got between lo and hi arguments. */
static void want_args(const char *cmd, int n, int lo, int hi)
{
	if (n < lo || n > hi)
		usage_error("%s wants %s", cmd,
			    lo == hi ? (lo ? "one MODEL" : "no arguments") : "at most one argument");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL;
	unsigned timeout_ms = 60000;
	int ch;
	while ((ch = getopt_long(argc, argv, "+a:t:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 't': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v > 86400000)
				usage_error("--timeout wants milliseconds, got '%s'", optarg);
			timeout_ms = (unsigned)v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage_error("bad option");
		}
	}
	if (optind >= argc)
		usage_error("no command given");
	const char *cmd = argv[optind];
	int cargc = argc - optind;
	char **cargv = argv + optind;
	if (!addr)
		addr = default_address();
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	rng_state = seed ? seed : 1;

	/* Parse each command's arguments before connecting, so usage errors never touch the network. */
	struct infer_opts io = { 0 };
	const char *model = NULL;
	char *config_json = NULL;
	if (!strcmp(cmd, "status") || !strcmp(cmd, "models")) {
		want_args(cmd, cargc - 1, 0, 0);
	} else if (!strcmp(cmd, "metadata") || !strcmp(cmd, "config") || !strcmp(cmd, "unload")) {
		want_args(cmd, cargc - 1, 1, 1);
		model = cargv[1];
	} else if (!strcmp(cmd, "stats") || !strcmp(cmd, "health")) {
		want_args(cmd, cargc - 1, 0, 1);
		model = cargc > 1 ? cargv[1] : NULL;
	} else if (!strcmp(cmd, "load")) {
		static const struct option lo[] = { { "config", required_argument, NULL, 'c' },
						    { NULL, 0, NULL, 0 } };
		optind = 0;
		while ((ch = getopt_long(cargc, cargv, "", lo, NULL)) != -1) {
			if (ch != 'c')
				usage_error("bad option for load");
			free(config_json);
			config_json = read_config(optarg);
		}
		if (optind != cargc - 1)
			usage_error("load wants exactly one MODEL");
		model = cargv[optind];
	} else if (!strcmp(cmd, "infer")) {
		model = parse_infer(cargc, cargv, &io);
	} else if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	} else {
		usage_error("unknown command '%s'", cmd);
	}

	struct acc_status st = { 0 };
	struct acc_client *c;
	if (acc_client_connect(addr, &c, &st) < 0)
		return rpc_error(&st);
	acc_client_set_timeout(c, timeout_ms);
	int rc;
	if (!strcmp(cmd, "status"))
		rc = cmd_status(c, addr);
	else if (!strcmp(cmd, "models"))
		rc = cmd_models(c);
	else if (!strcmp(cmd, "metadata"))
		rc = cmd_metadata(c, model);
	else if (!strcmp(cmd, "config"))
		rc = cmd_config(c, model);
	else if (!strcmp(cmd, "load"))
		rc = cmd_load(c, model, config_json);
	else if (!strcmp(cmd, "unload"))
		rc = cmd_unload(c, model);
	else if (!strcmp(cmd, "stats"))
		rc = cmd_stats(c, model);
	else if (!strcmp(cmd, "health"))
		rc = cmd_health(c, model);
	else
		rc = cmd_infer(c, model, &io);
	acc_client_close(c);
	for (size_t i = 0; i < io.n_inputs; i++) {
		free(io.inputs[i].name);
		free(io.inputs[i].source);
	}
	for (size_t i = 0; i < io.n_shapes; i++)
		free(io.shapes[i].name);
	free(io.inputs);
	free(io.shapes);
	free(io.outputs);
	free(config_json);
	return rc;
}
