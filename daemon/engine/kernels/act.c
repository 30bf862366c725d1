/* act.c - bias + activation epilogues for the GEMM and convolution kernels. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>

#include "graph.h"
#include "kernels/act.h"
#include "kernels/transcend.h"
#include "ops/ops.h"
#include "ops/vmath.h"

int kepi_from_node(const struct eg_node *n, struct kepi *e, char **err)
{
	e->bias = NULL;
	e->bias_per_row = 0;
	int64_t k = eg_attr_int(n, "_act", KACT_NONE);
	if (k < 0 || k > KACT_MAX_)
		return eng_node_err(err, -EINVAL, n, "internal activation %lld is unknown", (long long)k);
	e->act = (int)k;
	e->min = eg_attr_float(n, "_act_min", -INFINITY);
	e->max = eg_attr_float(n, "_act_max", INFINITY);
	e->alpha = eg_attr_float(n, "_act_alpha", 0.01f);
	return 0;
}

/* tanh(x): an odd Taylor polynomial below |x| = 0.3, (1 - e^-2|x|) / (1 + e^-2|x|) above. */
VM_INLINE float vm_tanh(float x)
{
	float ax = x < 0 ? -x : x, s = x * x;
	float p = 62.0f / 2835;
	p = p * s - 17.0f / 315;
	p = p * s + 2.0f / 15;
	p = p * s - 1.0f / 3;
	p = p * s + 1.0f;
	float e = vm_exp(-2.0f * ax), big = (1.0f - e) / (1.0f + e);
	big = x < 0 ? -big : big;
	return ax < 0.3f ? x * p : big;
}

/* The transcendental activations over n values, vectorised (vmath.h); false for other kinds. */
VM_VEC static bool act_vec(int act, float *restrict x, int64_t n)
{
	switch (act) {
	case KACT_SIGMOID:
		for (int64_t i = 0; i < n; i++)
			x[i] = 1.0f / (1.0f + vm_exp(-x[i]));
		return true;
	case KACT_GELU:
		ktrans_gelu(x, x, n);
		return true;
	case KACT_TANH:
		for (int64_t i = 0; i < n; i++)
			x[i] = vm_tanh(x[i]);
		return true;
	default:
		return false;
	}
}

void kact_apply(const struct kepi *e, float *x, int64_t n)
{
	if (act_vec(e->act, x, n))
		return;
	switch (e->act) {
	case KACT_RELU:
		for (int64_t i = 0; i < n; i++)
			x[i] = x[i] > 0 ? x[i] : 0;
		break;
	case KACT_CLIP: {
		float lo = e->min, hi = e->max;
		for (int64_t i = 0; i < n; i++) {
			float v = x[i] < lo ? lo : x[i];
			x[i] = v > hi ? hi : v;
		}
		break;
	}
	case KACT_HARDSWISH:
		for (int64_t i = 0; i < n; i++) {
			float t = x[i] * (1.0f / 6.0f) + 0.5f;
			t = t < 0 ? 0 : t;
			t = t > 1 ? 1 : t;
			x[i] *= t;
		}
		break;
	case KACT_LEAKYRELU: {
		float a = e->alpha;
		for (int64_t i = 0; i < n; i++)
			x[i] = x[i] < 0 ? x[i] * a : x[i];
		break;
	}
	default:
		break;
	}
}

void kepi_apply(const struct kepi *e, float *C, int64_t ldc, int64_t i0, int64_t rows, int64_t j0, int64_t cols)
{
	if (!kepi_active(e))
		return;
	for (int64_t r = 0; r < rows; r++) {
		float *c = C + r * ldc;
		if (e->bias && e->bias_per_row) {
			float b = e->bias[i0 + r];
			for (int64_t j = 0; j < cols; j++)
				c[j] += b;
		} else if (e->bias) {
			const float *b = e->bias + j0;
			for (int64_t j = 0; j < cols; j++)
				c[j] += b[j];
		}
		kact_apply(e, c, cols);
	}
}
