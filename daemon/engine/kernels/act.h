/* act.h - fused epilogues of Conv / Gemm / MatMul: bias and activation applied to a block of
 * the output while it is still in cache (the optimiser marks nodes with `_act`, `_act_min`,
 * `_act_max`, `_act_alpha` and, for MatMul, `_bias=1` with a third input). */
#ifndef ACC_ENGINE_KACT_H
#define ACC_ENGINE_KACT_H

#include <stdint.h>

struct eg_node;

/* Values of the internal `_act` attribute. */
enum kact_kind {
	KACT_NONE = 0,
	KACT_RELU = 1,
	KACT_CLIP = 2, /* min / max */
	KACT_SIGMOID = 3,
	KACT_HARDSWISH = 4,
	KACT_LEAKYRELU = 5, /* alpha */
	KACT_GELU = 6, /* erf form */
	KACT_TANH = 7,
	KACT_MAX_ = 7,
};

/* What to do to each output element after the product: y = act(y + bias). */
struct kepi {
	const float *bias; /* NULL: none */
	int bias_per_row; /* 1: bias[i] for row i (Conv: per output channel); 0: bias[j] per column */
	int act; /* enum kact_kind */
	float min, max, alpha;
};

/* Internal attribute names Conv / Gemm / MatMul accept (for the op table). */
#define KACT_ATTRS "_act _act_min _act_max _act_alpha"

/* Read the `_act*` attributes of n into e (bias left NULL). -EINVAL with *err for a bad kind. */
int kepi_from_node(const struct eg_node *n, struct kepi *e, char **err);
/* Whether the epilogue does anything. */
static inline int kepi_active(const struct kepi *e)
{
	return e && (e->bias || e->act != KACT_NONE);
}
/* Apply the epilogue to rows [i0, i0+rows) x columns [j0, j0+cols) of C (row stride ldc);
 * i0 / j0 index the bias. */
void kepi_apply(const struct kepi *e, float *C, int64_t ldc, int64_t i0, int64_t rows, int64_t j0,
		int64_t cols);
/* Apply only the activation of e to n contiguous values. */
void kact_apply(const struct kepi *e, float *x, int64_t n);

#endif
