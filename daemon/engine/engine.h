/* engine.h - the ONNX engine: parse a network once, then run it many times.
 *
 * An eng_model is the immutable, optimised, device-independent form of a network (graph,
 * weights held once, plan). An eng_exec is one execution context of a model (arena, scratch
 * buffers, thread pool): it runs one batch at a time, from whichever thread calls it; use one
 * exec per device instance to run in parallel. Models are shared read-only between execs.
 */
#ifndef ACC_ENGINE_H
#define ACC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

struct eng_model;
struct eng_exec;

/* Description of a graph input or output. dims[i] < 0 means a dynamic dimension; ndims < 0
 * (outputs only) means the model does not declare the rank. */
struct eng_io {
	const char *name;
	enum dtype dtype;
	int ndims;
	int64_t dims[TENSOR_MAX_DIMS];
};

/* Memory order of a tensor's elements. Callers only ever see ENG_LAYOUT_PLAIN; the plan may
 * keep 4-D fp32 values between convolutions in oneDNN's nChw8c order (channels in blocks of 8
 * innermost: [N][C/8][H][W][8], needs C % 8 == 0, same size). */
enum eng_layout { ENG_LAYOUT_PLAIN = 0, ENG_LAYOUT_NCHW8C = 1 };

/* A tensor handed to or returned by eng_exec_run. data is dense, row-major (layout PLAIN). */
struct eng_tensor {
	enum dtype dtype;
	int ndims;
	int64_t dims[TENSOR_MAX_DIMS];
	void *data;
	size_t bytes;
	enum eng_layout layout; /* engine-internal; PLAIN (0) in everything a caller passes or gets */
};

struct eng_options {
	int threads; /* intra-op threads per exec; 0 = one per online CPU */
	size_t arena_limit; /* most bytes one exec's arena may take; 0 = half the physical memory */
	bool no_opt; /* skip the load-time graph rewrites (opt.h); also ACCELD_ENGINE_NO_OPT=1 */
};

/* Parse and optimise an ONNX ModelProto from bytes (the bytes are not retained).
 * Returns 0, or -EINVAL/-ENOTSUP with *err naming the problem (an unsupported op names the
 * op, the node and the opset). */
int eng_model_load(const void *onnx, size_t len, const struct eng_options *opt,
		   struct eng_model **out, char **err);
/* Whether the engine supports everything the model uses (ops at its opset, attributes, dtypes),
 * without loading it: 1 yes, 0 no (*why, if non-NULL, says what is missing), or -EINVAL (*why
 * set) when the bytes are not a valid model. A supported model that fails to load or run is
 * an engine bug. */
int eng_model_supported(const void *onnx, size_t len, char **why);
/* Whether the engine implements op_type (default ONNX domain) at opset. */
bool eng_op_supported(const char *op_type, int64_t opset);
/* Free a model; no exec of it may remain. */
void eng_model_free(struct eng_model *m);
/* Number of graph inputs (initializers excluded). */
size_t eng_model_n_inputs(const struct eng_model *m);
/* Number of graph outputs. */
size_t eng_model_n_outputs(const struct eng_model *m);
/* Input i's description, valid as long as the model. */
const struct eng_io *eng_model_input(const struct eng_model *m, size_t i);
/* Output i's description, valid as long as the model. */
const struct eng_io *eng_model_output(const struct eng_model *m, size_t i);
/* ONNX metadata: producer name and the default-domain opset (for ModelMetadata). */
const char *eng_model_producer(const struct eng_model *m);
int64_t eng_model_opset(const struct eng_model *m);

/* Create an execution context for m. */
int eng_exec_create(const struct eng_model *m, struct eng_exec **out, char **err);
/* Free an execution context. */
void eng_exec_free(struct eng_exec *x);
/* Run once. inputs[i] matches eng_model_input(m, i) (same dtype; dims concrete and
 * compatible). On success outputs[i] (n_outputs entries) is filled with dims, bytes and a
 * data pointer into memory owned by x, valid until the next eng_exec_run or eng_exec_free.
 * Returns 0, or -EINVAL (bad inputs) / -ENOMEM / -EIO with *err set; never aborts. */
int eng_exec_run(struct eng_exec *x, const struct eng_tensor *inputs, struct eng_tensor *outputs,
		 char **err);

#endif
