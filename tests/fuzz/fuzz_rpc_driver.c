/* fuzz_rpc_driver.c - runs a LLVMFuzzerTestOneInput target without libFuzzer, for make check:
 * a few valid ModelInferRequest seeds, then (deterministically) byte-level mutations of them
 * (bit flips, byte sets, inserts, deletes, duplicated ranges, truncation, splices), random
 * well-formed requests with hostile shapes, datatypes, contents and parameters, and random
 * buffers.
 *   fuzz_infer_request.test                 built-in run (FUZZ_ITERATIONS, default 20000)
 *   fuzz_infer_request.test FILE...         run the target on each file (a crash reproducer)
 *   fuzz_infer_request.test --write-seeds D write the seeds into directory D (a corpus)
 * An input that aborts or crashes the target is saved as fuzz-crash.bin. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference.pb-c.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct buf {
	uint8_t *p;
	size_t n;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* xorshift64: deterministic across runs and machines. */
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Pack a message into a buffer. */
static struct buf pack(const Inference__ModelInferRequest *m)
{
	struct buf b;
	b.n = inference__model_infer_request__get_packed_size(m);
	b.p = xmalloc(b.n + 1);
	inference__model_infer_request__pack(m, b.p);
	return b;
}

/* Valid requests covering typed, raw, BYTES contents, parameters and outputs. */
static size_t make_seeds(struct buf *out)
{
	size_t n = 0;
	int64_t s14[] = { 1, 4 }, s3[] = { 3 }, s2[] = { 2 };
	float f4[] = { 1, 2, 3, 4 };
	int32_t i3[] = { -1, 0, 1 };
	ProtobufCBinaryData by[] = { { 3, (uint8_t *)"abc" }, { 0, NULL } };
	uint8_t raw16[16] = { 0, 0, 128, 63 };
	ProtobufCBinaryData raw[2] = { { 16, raw16 }, { 4, raw16 } };

	Inference__InferTensorContents cf = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	cf.fp32_contents = f4, cf.n_fp32_contents = 4;
	Inference__InferTensorContents ci = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	ci.int_contents = i3, ci.n_int_contents = 3;
	Inference__InferTensorContents cb = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	cb.bytes_contents = by, cb.n_bytes_contents = 2;

	Inference__ModelInferRequest__InferInputTensor t[3], *tp[3] = { &t[0], &t[1], &t[2] };
	for (int i = 0; i < 3; i++)
		inference__model_infer_request__infer_input_tensor__init(&t[i]);
	t[0].name = (char *)"INPUT0", t[0].datatype = (char *)"FP32", t[0].shape = s14, t[0].n_shape = 2;
	t[1].name = (char *)"I8", t[1].datatype = (char *)"INT8", t[1].shape = s3, t[1].n_shape = 1;
	t[2].name = (char *)"S", t[2].datatype = (char *)"BYTES", t[2].shape = s2, t[2].n_shape = 1;

	Inference__ModelInferRequest__InferRequestedOutputTensor o = INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT, *op = &o;
	o.name = (char *)"OUTPUT1";
	Inference__InferParameter pv = INFERENCE__INFER_PARAMETER__INIT;
	pv.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	pv.int64_param = 1;
	Inference__ModelInferRequest__ParametersEntry pe = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT, *pp = &pe;
	pe.key = (char *)"priority", pe.value = &pv;

	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.model_name = (char *)"echo";
	m.id = (char *)"seed";
	m.inputs = tp;

	/* 1: typed FP32 for the echo model, with a requested output and a priority. */
	t[0].contents = &cf;
	m.n_inputs = 1, m.outputs = &op, m.n_outputs = 1, m.parameters = &pp, m.n_parameters = 1;
	out[n++] = pack(&m);
	/* 2: raw contents for two inputs. */
	t[0].contents = NULL;
	m.n_inputs = 2, m.raw_input_contents = raw, m.n_raw_input_contents = 2;
	t[1].datatype = (char *)"FP32", t[1].shape = s14 + 1, t[1].n_shape = 1;
	out[n++] = pack(&m);
	/* 3: typed INT8 and BYTES for an unknown model. */
	t[1].datatype = (char *)"INT8", t[1].shape = s3, t[1].contents = &ci;
	t[2].contents = &cb;
	m.model_name = (char *)"nosuch", m.inputs = tp + 1, m.n_inputs = 2;
	m.raw_input_contents = NULL, m.n_raw_input_contents = 0, m.n_outputs = 0, m.n_parameters = 0;
	out[n++] = pack(&m);
	/* 4: the big model, raw UINT8. */
	t[0].name = (char *)"INPUT0", t[0].datatype = (char *)"UINT8", t[0].shape = s3 + 0, t[0].n_shape = 1;
	m.model_name = (char *)"big", m.inputs = tp, m.n_inputs = 1;
	m.raw_input_contents = raw, m.n_raw_input_contents = 1;
	out[n++] = pack(&m);
	return n;
}

/* Apply one random mutation to b (which has room to grow by reallocation). */
static void mutate(struct buf *b, const struct buf *seeds, size_t n_seeds)
{
	size_t pos = b->n ? next() % b->n : 0;
	switch (next() % 7) {
	case 0: /* flip a bit */
		if (b->n)
			b->p[pos] ^= (uint8_t)(1u << (next() % 8));
		break;
	case 1: /* set an interesting byte */
		if (b->n) {
			static const uint8_t v[] = { 0x00, 0xff, 0x7f, 0x80, 0x01, 0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x3a };
			b->p[pos] = v[next() % sizeof(v)];
		}
		break;
	case 2: { /* insert random bytes */
		size_t k = 1 + next() % 8;
		b->p = xrealloc(b->p, b->n + k + 1);
		memmove(b->p + pos + k, b->p + pos, b->n - pos);
		for (size_t i = 0; i < k; i++)
			b->p[pos + i] = (uint8_t)next();
		b->n += k;
		break;
	}
	case 3: { /* delete a range */
		size_t k = b->n - pos ? 1 + next() % (b->n - pos) : 0;
		memmove(b->p + pos, b->p + pos + k, b->n - pos - k);
		b->n -= k;
		break;
	}
	case 4: { /* duplicate a range (repeated fields, nested messages) */
		size_t k = b->n - pos ? 1 + next() % (b->n - pos) : 0;
		b->p = xrealloc(b->p, b->n + k + 1);
		memmove(b->p + pos + k, b->p + pos, b->n - pos);
		b->n += k;
		break;
	}
	case 5: /* truncate */
		b->n = pos;
		break;
	case 6: { /* splice the tail of another seed */
		const struct buf *o = &seeds[next() % n_seeds];
		size_t from = o->n ? next() % o->n : 0;
		b->p = xrealloc(b->p, pos + (o->n - from) + 1);
		memcpy(b->p + pos, o->p + from, o->n - from);
		b->n = pos + (o->n - from);
		break;
	}
	}
}

/* One of the array's entries, at random. */
#define PICK(a) ((a)[next() % (sizeof(a) / sizeof((a)[0]))])

/* A structurally valid request with random names, datatypes, shapes, contents, parameters:
 * reaches the checks after protobuf decoding far more often than byte mutations do. */
static struct buf structured(void)
{
	static const char *models[] = { "echo", "big", "slow", "nosuch", "" };
	static const char *names[] = { "INPUT0", "OUTPUT0", "OUTPUT1", "A", "" };
	static const char *types[] = { "FP32", "FP64", "FP16", "BF16", "INT8", "INT16", "INT32", "INT64",
				       "UINT8", "UINT16", "UINT32", "UINT64", "BOOL", "BYTES", "FP33", "" };
	static const int64_t dims[] = { -1, 0, 1, 2, 3, 4, 8, INT64_C(1) << 40, INT64_MAX };
	static const char *keys[] = { "priority", "timeout", "other" };
	float f[16] = { 0 };
	double d[16] = { 0 };
	int32_t i32[16] = { -129, 128, 70000, -1, 0, 255, 256, 65535, 65536, INT32_MIN, INT32_MAX };
	uint32_t u32[16] = { 0, 255, 256, 65535, 65536, UINT32_MAX };
	int64_t i64[16] = { INT64_MIN, -1 };
	uint64_t u64[16] = { UINT64_MAX };
	protobuf_c_boolean bl[16] = { 1, 0, 1 };
	ProtobufCBinaryData by[16] = { { 3, (uint8_t *)"abc" } };
	uint8_t rawdata[64] = { 1 };
	ProtobufCBinaryData raw[4];

	Inference__InferTensorContents c[4];
	Inference__ModelInferRequest__InferInputTensor t[4], *tp[4];
	int64_t shapes[4][10];
	size_t n_in = next() % 4;
	bool use_raw = next() % 2;
	for (size_t i = 0; i < n_in; i++) {
		inference__model_infer_request__infer_input_tensor__init(&t[i]);
		inference__infer_tensor_contents__init(&c[i]);
		tp[i] = &t[i];
		t[i].name = (char *)PICK(names);
		t[i].datatype = (char *)PICK(types);
		t[i].n_shape = next() % 10;
		for (size_t k = 0; k < t[i].n_shape; k++)
			shapes[i][k] = next() % 3 ? (int64_t)(next() % 5) : PICK(dims);
		t[i].shape = shapes[i];
		size_t n = next() % 17;
		switch (next() % 10) {
		case 0: c[i].fp32_contents = f, c[i].n_fp32_contents = n; break;
		case 1: c[i].fp64_contents = d, c[i].n_fp64_contents = n; break;
		case 2: c[i].int_contents = i32, c[i].n_int_contents = n; break;
		case 3: c[i].uint_contents = u32, c[i].n_uint_contents = n; break;
		case 4: c[i].int64_contents = i64, c[i].n_int64_contents = n; break;
		case 5: c[i].uint64_contents = u64, c[i].n_uint64_contents = n; break;
		case 6: c[i].bool_contents = bl, c[i].n_bool_contents = n; break;
		case 7: c[i].bytes_contents = by, c[i].n_bytes_contents = n; break;
		default: break;
		}
		if (!use_raw || next() % 8 == 0)
			t[i].contents = &c[i];
		raw[i] = (ProtobufCBinaryData){ next() % sizeof(rawdata), rawdata };
	}
	Inference__ModelInferRequest__InferRequestedOutputTensor o[2], *op[2] = { &o[0], &o[1] };
	for (int i = 0; i < 2; i++) {
		inference__model_infer_request__infer_requested_output_tensor__init(&o[i]);
		o[i].name = (char *)PICK(names);
	}
	Inference__InferParameter pv[2];
	Inference__ModelInferRequest__ParametersEntry pe[2], *pp[2] = { &pe[0], &pe[1] };
	for (int i = 0; i < 2; i++) {
		inference__infer_parameter__init(&pv[i]);
		inference__model_infer_request__parameters_entry__init(&pe[i]);
		pe[i].key = (char *)PICK(keys);
		pe[i].value = next() % 8 ? &pv[i] : NULL;
		pv[i].parameter_choice_case = (Inference__InferParameter__ParameterChoiceCase)(next() % 6);
		if (pv[i].parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM)
			pv[i].string_param = (char *)"x";
		else
			pv[i].uint64_param = next() % 2 ? next() % 5 : next();
	}
	Inference__ModelInferRequest m = INFERENCE__MODEL_INFER_REQUEST__INIT;
	m.model_name = (char *)PICK(models);
	m.n_inputs = n_in;
	m.inputs = tp;
	if (use_raw) {
		m.raw_input_contents = raw;
		m.n_raw_input_contents = n_in ? n_in - (next() % 8 == 0) : 0;
	}
	m.n_outputs = next() % 3;
	m.outputs = op;
	m.n_parameters = next() % 3;
	m.parameters = pp;
	return pack(&m);
}

/* The input being run, written to fuzz-crash.bin if the target aborts or crashes. */
static const uint8_t *cur;
static size_t cur_len;

/* Save the current input, then die of the same signal. */
static void on_crash(int sig)
{
	int fd = open("fuzz-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		ssize_t w = write(fd, cur, cur_len);
		(void)w;
		close(fd);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Run the target on one input, remembering it for on_crash. */
static void run(const uint8_t *p, size_t n)
{
	cur = p;
	cur_len = n;
	LLVMFuzzerTestOneInput(p, n);
}

/* Run the target over a whole file. */
static int run_file(const char *path)
{
	char *data;
	size_t len;
	char *err = NULL;
	if (acc_read_file(path, &data, &len, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	run((const uint8_t *)data, len);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	struct buf seeds[8];
	size_t n = make_seeds(seeds);
	signal(SIGABRT, on_crash);
	signal(SIGSEGV, on_crash);
	int rc = 0;
	if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
		for (size_t i = 0; i < n; i++) {
			char *path = xasprintf("%s/seed-%zu.bin", argv[2], i);
			FILE *f = fopen(path, "wb");
			if (!f || fwrite(seeds[i].p, 1, seeds[i].n, f) != seeds[i].n || fclose(f) != 0) {
				perror(path);
				rc = 1;
			}
			free(path);
		}
	} else if (argc > 1) {
		for (int i = 1; i < argc; i++)
			rc |= run_file(argv[i]);
	} else {
		long iters = getenv("FUZZ_ITERATIONS") ? atol(getenv("FUZZ_ITERATIONS")) : 20000;
		for (size_t i = 0; i < n; i++)
			run(seeds[i].p, seeds[i].n);
		for (long it = 0; it < iters; it++) {
			struct buf b;
			if (it % 2) { /* a random well-formed request, sometimes mutated a little */
				b = structured();
				if (next() % 4 == 0)
					mutate(&b, seeds, n);
			} else { /* a seed under one to four byte-level mutations */
				const struct buf *s = &seeds[next() % n];
				b.n = s->n;
				b.p = xmalloc(b.n + 1);
				memcpy(b.p, s->p, b.n);
				for (int k = next() % 2 ? 1 : 1 + (int)(next() % 4); k > 0; k--)
					mutate(&b, seeds, n);
			}
			run(b.p, b.n);
			free(b.p);
		}
		for (int it = 0; it < 500; it++) {
			uint8_t r[256];
			size_t len = next() % sizeof(r);
			for (size_t i = 0; i < len; i++)
				r[i] = (uint8_t)next();
			run(r, len);
		}
		printf("fuzz: %zu seeds, %ld mutated and 500 random inputs: no crash\n", n, iters);
	}
	for (size_t i = 0; i < n; i++)
		free(seeds[i].p);
	return rc;
}
