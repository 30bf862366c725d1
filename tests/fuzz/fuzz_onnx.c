/* fuzz_onnx.c - fuzz target over the engine: ModelProto bytes -> eng_model_load, then (when it
 * loads) one run on small zero-filled inputs. Any crash, sanitizer report or leak is a bug;
 * every input must end in a clean error or a clean run.
 *
 * Built with -DACC_LIBFUZZER (and clang -fsanitize=fuzzer) it is a libFuzzer target. Otherwise
 * main() is a deterministic driver for make check:
 *   fuzz_onnx.test            seeds (built-in models, plus up to 40 conformance models when
 *                             the cases are present), then byte-level mutations of them
 *                             (FUZZ_ITERATIONS, default 3000)
 *   fuzz_onnx.test FILE...    run the target on each file (a crash reproducer)
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long n_loaded, n_ran; /* for the driver's summary */

/* Load, and run once with dynamic dims set to 2 and all data zero. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_options opt = { .threads = 1, .arena_limit = 64u << 20 };
	struct eng_model *m = NULL;
	char *err = NULL;
	if (eng_model_load(data, size, &opt, &m, &err)) {
		free(err);
		return 0;
	}
	n_loaded++;
	size_t ni = eng_model_n_inputs(m), no = eng_model_n_outputs(m);
	struct eng_tensor *in = xcalloc(ni + 1, sizeof(*in)), *out = xcalloc(no + 1, sizeof(*out));
	void **bufs = xcalloc(ni + 1, sizeof(void *));
	bool ok = true;
	for (size_t i = 0; i < ni && ok; i++) {
		const struct eng_io *io = eng_model_input(m, i);
		in[i].dtype = io->dtype;
		in[i].ndims = io->ndims;
		for (int d = 0; d < io->ndims; d++)
			in[i].dims[d] = io->dims[d] < 0 ? 2 : io->dims[d];
		int64_t n = shape_numel(in[i].dims, in[i].ndims);
		if (n < 0 || n > (1 << 20)) {
			ok = false;
			break;
		}
		in[i].bytes = (size_t)n * dtype_size(io->dtype);
		bufs[i] = xcalloc(1, in[i].bytes + 1);
		in[i].data = bufs[i];
	}
	struct eng_exec *x = NULL;
	if (ok && !eng_exec_create(m, &x, &err)) {
		if (eng_exec_run(x, in, out, &err) == 0) {
			n_ran++;
			/* Touch every output byte: they must be valid memory of the stated size. */
			volatile uint8_t sink = 0;
			for (size_t i = 0; i < no; i++)
				for (size_t b = 0; b < out[i].bytes; b++)
					sink ^= ((const uint8_t *)out[i].data)[b];
			(void)sink;
		}
		eng_exec_free(x);
	}
	free(err);
	for (size_t i = 0; i < ni; i++)
		free(bufs[i]);
	free(bufs);
	free(in);
	free(out);
	eng_model_free(m);
	return 0;
}

#ifndef ACC_LIBFUZZER

struct buf {
	uint8_t *p;
	size_t n;
};

static uint64_t rng = 0x2545f4914f6cdd1dull;

/* xorshift64: the same sequence on every machine. */
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Hand-encoded protobuf helpers for the built-in seeds. */
static void put(struct buf *b, const void *p, size_t n)
{
	b->p = xrealloc(b->p, b->n + n + 1);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
	do {
		uint8_t c = (v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		put(b, &c, 1);
		v >>= 7;
	} while (v);
}

/* A length-delimited field. */
static void field(struct buf *b, int num, const struct buf *sub)
{
	varint(b, (uint64_t)num << 3 | 2);
	varint(b, sub->n);
	put(b, sub->p, sub->n);
}

static void str_field(struct buf *b, int num, const char *s)
{
	struct buf t = { (uint8_t *)(uintptr_t)s, strlen(s) };
	field(b, num, &t);
}

static void int_field(struct buf *b, int num, uint64_t v)
{
	varint(b, (uint64_t)num << 3);
	varint(b, v);
}

/* ValueInfoProto: name, float tensor of shape [N, 4]. */
static struct buf value_info(const char *name)
{
	struct buf vi = { 0 }, tp = { 0 }, tt = { 0 }, sh = { 0 }, d0 = { 0 }, d1 = { 0 };
	str_field(&d0, 2, "N");
	int_field(&d1, 1, 4);
	field(&sh, 1, &d0);
	field(&sh, 1, &d1);
	int_field(&tt, 1, 1);
	field(&tt, 2, &sh);
	field(&tp, 1, &tt);
	str_field(&vi, 1, name);
	field(&vi, 2, &tp);
	free(d0.p);
	free(d1.p);
	free(sh.p);
	free(tt.p);
	free(tp.p);
	return vi;
}

/* A model: X -> op -> (op2 ->) Y, with optional int attribute. */
static struct buf seed_model(const char *op, const char *op2, const char *attr, int64_t av)
{
	struct buf m = { 0 }, g = { 0 }, n = { 0 }, n2 = { 0 }, os = { 0 }, a = { 0 };
	str_field(&n, 1, "X");
	str_field(&n, 2, op2 ? "H" : "Y");
	str_field(&n, 4, op);
	if (attr) {
		str_field(&a, 1, attr);
		int_field(&a, 3, (uint64_t)av);
		int_field(&a, 20, 2);
		field(&n, 5, &a);
	}
	field(&g, 1, &n);
	if (op2) {
		str_field(&n2, 1, "H");
		str_field(&n2, 2, "Y");
		str_field(&n2, 4, op2);
		field(&g, 1, &n2);
	}
	str_field(&g, 2, "g");
	struct buf vx = value_info("X"), vy = value_info("Y");
	field(&g, 11, &vx);
	field(&g, 12, &vy);
	int_field(&m, 1, 8);
	int_field(&os, 2, 13);
	field(&m, 8, &os);
	field(&m, 7, &g);
	free(vx.p);
	free(vy.p);
	free(n.p);
	free(n2.p);
	free(a.p);
	free(g.p);
	free(os.p);
	return m;
}

/* Flip, set, insert, delete or truncate. */
static void mutate(struct buf *b)
{
	if (!b->n)
		return;
	size_t at = next() % b->n;
	switch (next() % 6) {
	case 0: b->p[at] ^= (uint8_t)(1u << (next() % 8)); break;
	case 1: b->p[at] = (uint8_t)next(); break;
	case 2: b->p[at] = (uint8_t[]){ 0, 1, 0x7f, 0x80, 0xff }[next() % 5]; break;
	case 3: memmove(b->p + at, b->p + at + 1, b->n - at - 1); b->n--; break;
	case 4: b->n = at; break;
	default: {
		uint8_t c = (uint8_t)next();
		b->p = xrealloc(b->p, b->n + 2);
		memmove(b->p + at + 1, b->p + at, b->n - at);
		b->p[at] = c;
		b->n++;
	}
	}
}

/* Run the target on one file. */
static int run_file(const char *path)
{
	char *data, *err = NULL;
	size_t len;
	if (acc_read_file(path, &data, &len, &err)) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		int rc = 0;
		for (int i = 1; i < argc; i++)
			rc |= run_file(argv[i]);
		return rc;
	}
	struct buf seeds[64];
	size_t n = 0;
	seeds[n++] = seed_model("Relu", NULL, NULL, 0);
	seeds[n++] = seed_model("Softmax", "Sigmoid", "axis", 1);
	seeds[n++] = seed_model("Flatten", "Identity", "axis", 1);
	seeds[n++] = seed_model("Transpose", "Abs", NULL, 0);
	/* Conformance models, when present, make richer seeds (every 40th case). */
	const char *top = getenv("top_srcdir");
	char *dir = xasprintf("%s/../shared/onnx-conformance/node", top && *top ? top : ".");
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		int k = 0;
		while ((e = readdir(d)) && n < ACC_ARRAY_LEN(seeds)) {
			if (e->d_name[0] == '.' || k++ % 40)
				continue;
			char *p = xasprintf("%s/%s/model.onnx", dir, e->d_name), *data, *err = NULL;
			size_t len;
			if (!acc_read_file(p, &data, &len, &err) && len < 65536) {
				seeds[n].p = (uint8_t *)data;
				seeds[n++].n = len;
			} else {
				if (!err)
					free(data);
				free(err);
			}
			free(p);
		}
		closedir(d);
	}
	free(dir);
	long iters = getenv("FUZZ_ITERATIONS") ? atol(getenv("FUZZ_ITERATIONS")) : 3000;
	for (size_t i = 0; i < n; i++)
		LLVMFuzzerTestOneInput(seeds[i].p, seeds[i].n);
	for (long it = 0; it < iters; it++) {
		const struct buf *s = &seeds[next() % n];
		struct buf b = { xmalloc(s->n + 1), s->n };
		memcpy(b.p, s->p, s->n);
		int k = 1 + (int)(next() % 4);
		for (int j = 0; j < k; j++)
			mutate(&b);
		LLVMFuzzerTestOneInput(b.p, b.n);
		free(b.p);
	}
	for (int it = 0; it < 300; it++) {
		size_t len = next() % 512;
		uint8_t *r = xmalloc(len + 1);
		for (size_t i = 0; i < len; i++)
			r[i] = (uint8_t)next();
		LLVMFuzzerTestOneInput(r, len);
		free(r);
	}
	printf("fuzz_onnx: %zu seeds, %ld mutated and 300 random inputs (%ld loaded, %ld ran): no crash\n", n,
	       iters, n_loaded, n_ran);
	for (size_t i = 0; i < n; i++)
		free(seeds[i].p);
	return 0;
}

#endif
