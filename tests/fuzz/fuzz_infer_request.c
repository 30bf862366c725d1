/* fuzz_infer_request.c - fuzz target over the ModelInferRequest decode path: the zero-copy
 * unpack (checked against protobuf-c's), rpc_codec_infer_request (typed/raw contents, shapes, parameters), validation against
 * a fake model, and the response encoder on the decoded inputs. Any crash, sanitizer report or
 * leak is a bug; every input must end in a clean error or a clean request. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "inference.pb-c.h"
#include "repo.h"
#include "rpc_codec.h"
#include "rpc_fake.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input: decode, convert, validate, echo the inputs back through the encoder. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Differential check: the zero-copy decoder accepts exactly what protobuf-c accepts,
	 * and both decode to the same message (protobuf-c packs in field order). */
	Inference__ModelInferRequest *ref = inference__model_infer_request__unpack(NULL, size, data);
	Inference__ModelInferRequest *msg = rpc_codec_unpack_infer_request(data, size);
	if (!ref != !msg)
		abort();
	if (!msg)
		return 0;
	size_t n1 = inference__model_infer_request__get_packed_size(ref);
	size_t n2 = inference__model_infer_request__get_packed_size(msg);
	if (n1 != n2)
		abort();
	uint8_t *b1 = xmalloc(n1 + 1), *b2 = xmalloc(n2 + 1);
	inference__model_infer_request__pack(ref, b1);
	inference__model_infer_request__pack(msg, b2);
	if (memcmp(b1, b2, n1) != 0)
		abort();
	free(b1);
	free(b2);
	inference__model_infer_request__free_unpacked(ref, NULL);

	struct model *m = NULL;
	repo_get(fake_repo(), msg->model_name, msg->model_version, &m, NULL);
	struct infer_request *req = infer_request_new(m);
	if (m)
		model_put(m);
	char *err = NULL;
	int rc = rpc_codec_infer_request(msg, NULL, NULL, req, &err);
	if (rc == 0 && m) {
		free(err);
		err = NULL;
		infer_validate(req, &err);
	}
	if (rc == 0) { /* the inputs as results: exercises the encoder on arbitrary shapes */
		req->results = xcalloc(req->n_inputs ? req->n_inputs : 1, sizeof(*req->results));
		for (size_t i = 0; i < req->n_inputs; i++) {
			struct infer_tensor *t = &req->results[i];
			*t = req->inputs[i];
			t->name = xstrdup(t->name);
			t->data = xmalloc(t->bytes + 1);
			if (t->bytes)
				memcpy(t->data, req->inputs[i].data, t->bytes);
			req->n_results = i + 1;
		}
		struct rpc_wire w;
		char *e2 = NULL;
		if (rpc_codec_infer_response(req, &w, &e2) == 0) {
			size_t sum = 0;
			for (size_t i = 0; i < w.n; i++)
				sum += w.parts[i].len;
			if (sum != w.total)
				abort();
			rpc_codec_wire_free(&w);
		}
		free(e2);
	}
	free(err);
	infer_request_free(req);
	return 0;
}
