/* ops.h - the operator table: what each supported ONNX op checks at load time, how it infers
 * output shapes for concrete input shapes, and the kernel that runs it.
 *
 * Tensors handed to infer carry dtype and dims; their data is non-NULL only where the value is
 * known before running (constants and values folded from shapes). Tensors handed to run are
 * complete. Absent optional inputs and outputs are NULL.
 */
#ifndef ACC_ENGINE_OPS_H
#define ACC_ENGINE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "graph.h"

struct tpool;

/* What a kernel may use while running. */
struct eng_ctx {
	struct tpool *pool;
};

#define ENG_OPSET_LATEST 28 /* the newest default-domain opset the table is checked against */

/* Op flags. */
enum {
	ENG_OP_VIEW = 1, /* output 0 holds exactly input 0's bytes (Reshape...): may alias it */
	ENG_OP_INPLACE = 2, /* output 0 may reuse input 0's buffer when sizes match */
	ENG_OP_SHAPE_ONLY = 4, /* reads only its input's shape: foldable once shapes are known */
	ENG_OP_INPLACE_SUM = 8, /* output 0 may reuse input 3's buffer (a fused residual) when sizes match */
};

/* Bit for a dtype in an op's type mask. */
#define DTB(t) (1u << (t))
#define DTM_FLOAT (DTB(DT_FP32))
#define DTM_NUM (DTB(DT_FP32) | DTB(DT_FP64) | DTB(DT_INT32) | DTB(DT_INT64))
#define DTM_ALL (0xffffffffu & ~(DTB(DT_INVALID) | DTB(DT_BYTES)))

struct eng_op {
	const char *name;
	int since, until; /* opsets of the default domain supported, inclusive */
	uint32_t types; /* dtypes accepted for the op's data inputs (DTB bits) */
	const char *attrs; /* accepted attribute names, space separated */
	unsigned flags;
	/* Load time: check attributes, input count and dtypes (g->values[].dtype of inputs are
	 * known), set output dtypes, store parsed attributes in n->params. 0 / -ENOTSUP / -EINVAL. */
	int (*prepare)(struct eg_graph *g, struct eg_node *n, char **err);
	/* Plan time: set out[i]->ndims/dims from the inputs; *scratch = extra bytes run needs. */
	int (*infer)(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     size_t *scratch, char **err);
	/* Run: compute the outputs (their dims are set and buffers allocated). */
	int (*run)(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		   void *scratch, struct eng_ctx *ctx, char **err);
	uint32_t data_in; /* bit i: infer needs input i's values (shape, axes, repeats...) */
};

/* The table entry for op_type at opset, or NULL. */
const struct eng_op *eng_op_find(const char *op_type, int64_t opset);
/* Whether op_type is known at any opset (to tell "no such op" from "not at this opset"). */
bool eng_op_known(const char *op_type, int *since, int *until);

/* Per-family tables, each ended by an entry with a NULL name. */
extern const struct eng_op eng_ops_elementwise[];
extern const struct eng_op eng_ops_gemm[];
extern const struct eng_op eng_ops_conv[];
extern const struct eng_op eng_ops_pool[];
extern const struct eng_op eng_ops_norm[];
extern const struct eng_op eng_ops_shape[];
extern const struct eng_op eng_ops_reduce[];
extern const struct eng_op eng_ops_convtranspose[];
extern const struct eng_op eng_ops_pad[];
extern const struct eng_op eng_ops_resize[];
extern const struct eng_op eng_ops_topk[];

/* Helpers shared by the op files. */

/* The dtype of input i (DT_INVALID when absent). */
enum dtype eng_in_dtype(const struct eg_graph *g, const struct eg_node *n, int i);
/* Set the dtype of output i (if present). */
void eng_set_out_dtype(struct eg_graph *g, struct eg_node *n, int i, enum dtype t);
/* Check that the node has between lo and hi inputs and at most max_out outputs. */
int eng_check_arity(const struct eg_node *n, int lo, int hi, int max_out, char **err);
/* Check that input i is present and has a dtype in mask. */
int eng_check_type(const struct eg_graph *g, const struct eg_node *n, int i, uint32_t mask, char **err);
/* Prepare of an op with a fused epilogue (Conv, Gemm, MatMul): lo..hi inputs, one output,
 * every present input of the op's types, valid `_act*` attributes; sets output 0 to fp32. */
int eng_prepare_fused(struct eg_graph *g, struct eg_node *n, int lo, int hi, char **err);
/* Error for node n: "<desc>: <message>", returning code. */
int eng_node_err(char **err, int code, const struct eg_node *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Normalise an axis against rank; -1 if out of range. */
int eng_axis(int64_t axis, int rank);
/* Bytes of a dense tensor with t's dtype and dims. */
size_t eng_tensor_bytes(const struct eng_tensor *t);
/* Number of elements of t. */
int64_t eng_numel(const struct eng_tensor *t);
/* Read element i of an integer tensor (INT32 or INT64) as int64. */
int64_t eng_get_int(const struct eng_tensor *t, int64_t i);
/* Sliding-window geometry shared by Conv and the pools. */
struct eng_win {
	int k; /* spatial rank */
	int64_t in[TENSOR_MAX_DIMS], kern[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS], dil[TENSOR_MAX_DIMS];
	int64_t pb[TENSOR_MAX_DIMS], pe[TENSOR_MAX_DIMS], out[TENSOR_MAX_DIMS];
};
/* Fill w from the node's auto_pad/pads/strides/dilations for spatial input dims in[k] and kernel
 * dims kern[k]; ceil_mode rounds output sizes up (pools). */
int eng_win_geom(const struct eg_node *n, int k, const int64_t *in, const int64_t *kern, bool ceil_mode,
		 struct eng_win *w, char **err);
/* Load time, after the graph rewrites and eg_graph_mark_plan_data: pack every constant 2-D B of
 * a Gemm/MatMul into its node's params and free the original where only such nodes read it (the
 * value keeps dtype and dims, data becomes NULL). Returns the number of nodes packed. */
int eng_gemm_pack_weights(struct eg_graph *g);
/* Plan time: whether Conv node n (inputs and outputs with their shapes and constant weights)
 * can read its input / write its output in nChw8c order (engine.h) when x_blocked / y_blocked. */
bool eng_conv_layout_ok(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			bool x_blocked, bool y_blocked);
/* Broadcast the shapes of k tensors (numpy rules) into out; -EINVAL if incompatible. */
int eng_broadcast_shape(struct eng_tensor *const *ts, int k, struct eng_tensor *out);

#endif
