/* opt.h - load-time graph rewrites that keep a model's meaning while making it cheaper to run.
 *
 * Run on a prepared, folded graph (eg_graph_prepare then eg_graph_fold), before
 * eg_graph_mark_plan_data. Every rewrite applies only where the result is the same function of
 * the graph inputs (up to float rounding) and no removed value is a graph output or read by
 * another node:
 *  - Conv + BatchNormalization (inference form, constant parameters) -> Conv with rewritten
 *    weights and bias;
 *  - MatMul + Add(constant bias of shape [N], N = the weight's last dim) -> MatMul with a third
 *    input and internal attribute _bias=1;
 *  - the erf-GELU subgraph x*0.5*(1+erf(x/sqrt(2))) -> Gelu (opset 20 semantics);
 *  - the LayerNorm subgraph ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the last axis
 *    -> LayerNormalization (opset 17 semantics);
 *  - Add(Conv output, r) where the Conv (dense, no activation yet) is the Add's only writer
 *    and r is not a constant -> Conv with r as a fourth input and _sum=1 (y = conv + b + r, the
 *    residual connection of ResNets; its Relu then fuses as below);
 *  - Add(x, r) read only by a LayerNormalization -> that LayerNormalization with r as a fourth
 *    input and _skip=1 (normalises x + r, broadcast as Add does);
 *  - Relu/Clip/Sigmoid/HardSwish/LeakyRelu/Gelu/Tanh after Conv/Gemm/MatMul (or any op whose
 *    table entry accepts _act, e.g. a residual Add) -> internal attributes _act (OPT_ACT_*),
 *    _act_min/_act_max (Clip), _act_alpha (LeakyRelu) on the producer.
 * Internal attributes are added only when the op table lists them as accepted for that op.
 * Constants no node reads any more are freed, so rewritten weights are held once.
 */
#ifndef ACC_ENGINE_OPT_H
#define ACC_ENGINE_OPT_H

#include <stdbool.h>

#include "graph.h"

/* Values of the internal _act attribute (the kernels <-> graph contract). */
enum opt_act {
	OPT_ACT_NONE = 0,
	OPT_ACT_RELU = 1,
	OPT_ACT_CLIP = 2, /* _act_min, _act_max */
	OPT_ACT_SIGMOID = 3,
	OPT_ACT_HARDSWISH = 4,
	OPT_ACT_LEAKYRELU = 5, /* _act_alpha */
	OPT_ACT_GELU = 6, /* erf form */
	OPT_ACT_TANH = 7,
};

/* What opt_graph did. */
struct opt_stats {
	int bn_folded, bias_fused, gelu, layernorm, act_fused, sum_fused, skip_ln;
	int nodes_before, nodes_after;
};

/* Whether opt_graph folds activation act (enum opt_act) into its producer: the cheap ones
 * (Relu, Clip, HardSwish, LeakyRelu) always; Sigmoid, Tanh and GELU only with
 * ACCELD_ENGINE_FUSE_ALL_ACTS=1, until the kernels' epilogue computes them vectorised. */
bool opt_act_fusable(int act);
/* Whether ACCELD_ENGINE_NO_OPT is set (non-empty, not "0"): skip opt_graph. */
bool opt_disabled_by_env(void);
/* Rewrite g in place (see above); st, if non-NULL, receives counts. Returns 0, or a -errno with
 * *err set when a rewritten node fails its op's checks (an engine bug, reported, not hidden). */
int opt_graph(struct eg_graph *g, struct opt_stats *st, char **err);

#endif
