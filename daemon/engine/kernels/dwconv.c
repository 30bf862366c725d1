/* dwconv.c - depthwise convolution: per output row, the interior (all taps inside the input) runs
 * in vectors of 8 or 16 with every tap of a kernel row summed in registers; borders are scalar.
 * Instantiated for AVX-512, AVX2+FMA and the baseline, picked with the GEMM's kernel family. */
#include "config.h"

#include <string.h>

#include "kernels/act.h"
#include "kernels/dwconv.h"
#include "kernels/gemm.h"
#include "threadpool.h"

/* One output plane, templated on vector width. */
#define DW_DEFINE(NAME, ATTR, VL)                                                                     \
	typedef float NAME##_vu __attribute__((vector_size(VL * 4), aligned(4)));                     \
	ATTR static void NAME(const struct kdw_geom *g, const float *x, const float *w, float bias,    \
			      float *y)                                                                \
	{                                                                                              \
		const int64_t IW = g->iw, OW = g->ow, KW = g->kw, sw = g->sw, dw = g->dw, pw = g->pw;  \
		/* Output columns whose taps all fall inside the row: [lo, hi). */                     \
		int64_t lo = (pw + sw - 1) / sw, hi = OW;                                              \
		while (hi > lo && (hi - 1) * sw - pw + (KW - 1) * dw >= IW)                            \
			hi--;                                                                          \
		if (lo > hi)                                                                           \
			lo = hi;                                                                       \
		for (int64_t oh = 0; oh < g->oh; oh++) {                                               \
			float *o = y + oh * OW;                                                        \
			for (int64_t j = 0; j < OW; j++)                                               \
				o[j] = bias;                                                           \
			for (int64_t kh = 0; kh < g->kh; kh++) {                                       \
				int64_t ih = oh * g->sh - g->ph + kh * g->dh;                          \
				if (ih < 0 || ih >= g->ih)                                             \
					continue;                                                      \
				const float *xr = x + ih * IW, *wr = w + kh * KW;                      \
				for (int64_t j = 0; j < lo; j++)                                       \
					for (int64_t k = 0; k < KW; k++) {                             \
						int64_t p = j * sw - pw + k * dw;                      \
						if (p >= 0 && p < IW)                                  \
							o[j] += wr[k] * xr[p];                         \
					}                                                              \
				int64_t j = lo;                                                        \
				if (sw == 1) {                                                         \
					for (; j + VL <= hi; j += VL) {                                \
						NAME##_vu acc = *(NAME##_vu *)(o + j);                 \
						const float *xp = xr + j - pw;                         \
						for (int64_t k = 0; k < KW; k++)                       \
							acc += wr[k] * *(const NAME##_vu *)(xp + k * dw); \
						*(NAME##_vu *)(o + j) = acc;                           \
					}                                                              \
				}                                                                      \
				for (; j < hi; j++) {                                                  \
					const float *xp = xr + j * sw - pw;                            \
					float acc = o[j];                                              \
					for (int64_t k = 0; k < KW; k++)                               \
						acc += wr[k] * xp[k * dw];                             \
					o[j] = acc;                                                    \
				}                                                                      \
				for (j = hi > lo ? hi : lo; j < OW; j++)                               \
					for (int64_t k = 0; k < KW; k++) {                             \
						int64_t p = j * sw - pw + k * dw;                      \
						if (p >= 0 && p < IW)                                  \
							o[j] += wr[k] * xr[p];                         \
					}                                                              \
			}                                                                              \
		}                                                                                      \
	}

DW_DEFINE(dw_plane_generic, , 4)
#if defined(__x86_64__) && defined(__GNUC__)
DW_DEFINE(dw_plane_avx2, __attribute__((target("avx2,fma"))), 8)
DW_DEFINE(dw_plane_avx512, __attribute__((target("avx512f,fma"))), 16)
#endif

typedef void (*dw_plane_fn)(const struct kdw_geom *g, const float *x, const float *w, float bias, float *y);

struct dw_job {
	const struct kdw_geom *g;
	const float *x, *w;
	float *y;
	const struct kepi *epi;
	dw_plane_fn fn;
};

/* Planes [b, e) (plane = image * channels + channel). */
static void dw_part(void *arg, int64_t b, int64_t e)
{
	const struct dw_job *j = arg;
	const struct kdw_geom *g = j->g;
	int64_t isz = g->ih * g->iw, osz = g->oh * g->ow, ksz = g->kh * g->kw;
	for (int64_t p = b; p < e; p++) {
		int64_t c = p % g->c;
		float bias = j->epi && j->epi->bias ? j->epi->bias[c] : 0.0f;
		float *y = j->y + p * osz;
		j->fn(g, j->x + p * isz, j->w + c * ksz, bias, y);
		if (j->epi && j->epi->act)
			kact_apply(j->epi, y, osz);
	}
}

void kdwconv(const struct kdw_geom *g, const float *x, const float *w, float *y, const struct kepi *epi,
	     struct tpool *pool)
{
	struct dw_job j = { g, x, w, y, epi, dw_plane_generic };
#if defined(__x86_64__) && defined(__GNUC__)
	int isa = kgemm_isa();
	if (isa == KGEMM_ISA_AVX512)
		j.fn = dw_plane_avx512;
	else if (isa == KGEMM_ISA_AVX2)
		j.fn = dw_plane_avx2;
#endif
	int64_t planes = g->n * g->c, osz = g->oh * g->ow;
	tpool_for(pool, planes, 1 + 4096 / (osz * g->kh * g->kw + 1), dw_part, &j);
}
