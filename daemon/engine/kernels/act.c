/* act.c - bias + activation epilogues for the GEMM and convolution kernels. */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "graph.h"
#include "kernels/act.h"
#include "ops/ops.h"

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

void kact_apply(const struct kepi *e, float *x, int64_t n)
{
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
	case KACT_SIGMOID:
		for (int64_t i = 0; i < n; i++)
			x[i] = 1.0f / (1.0f + expf(-x[i]));
		break;
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
	case KACT_GELU:
		for (int64_t i = 0; i < n; i++)
			x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
		break;
	case KACT_TANH:
		for (int64_t i = 0; i < n; i++)
			x[i] = tanhf(x[i]);
		break;
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
