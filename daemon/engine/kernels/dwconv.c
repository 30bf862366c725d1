/* dwconv.c - depthwise convolution: per output row, whole vectors of 8 or 16 outputs with every
 * tap of a kernel row summed in registers, reading zero-padded copies of the input rows (NCHW
 * planes are small in MobileNet-like nets: 7x7 to 112x112; borders must not fall back to scalar).
 * Instantiated for AVX-512, AVX2+FMA and the baseline, picked with the GEMM's kernel family. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/dwconv.h"
#include "kernels/gemm.h"
#include "threadpool.h"

/* One output plane, templated on vector width. Each output row accumulates in a buffer padded
 * to whole vectors; each input row it reads is first copied into a zero-padded buffer (split
 * into even and odd columns for stride 2), so every tap is one unit-stride vector load. Other
 * strides take the scalar path. */
#define DW_MAXW 4096 /* widest padded row the vector path takes */
#define DW_DEFINE(NAME, ATTR, VL)                                                                     \
	typedef float NAME##_vu __attribute__((vector_size(VL * 4), aligned(4)));                     \
	typedef float NAME##_v __attribute__((vector_size(VL * 4)));                                  \
	typedef int32_t NAME##_vi __attribute__((vector_size(VL * 4)));                               \
	ATTR static void NAME(const struct kdw_geom *g, const float *x, const float *w, float bias,    \
			      float *y, const struct kepi *epi)                                        \
	{                                                                                              \
		const int64_t IW = g->iw, OW = g->ow, KW = g->kw, sw = g->sw, dw = g->dw, pw = g->pw;  \
		int64_t owp = (OW + VL - 1) / VL * VL;                                                 \
		int64_t span = (owp - 1) * sw + (KW - 1) * dw + 1; /* padded input columns read */    \
		if ((sw != 1 && sw != 2) || span + 2 * VL > DW_MAXW) {                                 \
			dw_plane_scalar(g, x, w, bias, y);                                             \
			if (epi && epi->act)                                                           \
				kact_apply(epi, y, g->oh * OW);                                        \
			return;                                                                        \
		}                                                                                      \
		float ob[DW_MAXW + VL] __attribute__((aligned(64)));                               \
		float xb[DW_MAXW + 4 * VL] __attribute__((aligned(64)));                               \
		int64_t half = (span + 1) / 2 + VL;                                                    \
		const NAME##_v zero = { 0 };                                                           \
		int act = epi ? epi->act : 0;                                                          \
		NAME##_v lo = zero + (act == KACT_CLIP ? epi->min : 0.0f);                             \
		NAME##_v hi = zero + (act == KACT_CLIP ? epi->max : 0.0f);                             \
		for (int64_t oh = 0; oh < g->oh; oh++) {                                               \
			for (int64_t j = 0; j < owp; j++)                                              \
				ob[j] = bias;                                                          \
			for (int64_t kh = 0; kh < g->kh; kh++) {                                       \
				int64_t ih = oh * g->sh - g->ph + kh * g->dh;                          \
				if (ih < 0 || ih >= g->ih)                                             \
					continue;                                                      \
				const float *xr = x + ih * IW, *wr = w + kh * KW;                      \
				/* xb[t] = input column t - pw (zero outside the row). */             \
				float *even = xb, *odd = xb + half;                                    \
				int64_t c0 = pw < span ? pw : span; /* first t inside the row */      \
				int64_t c1 = IW + pw < span ? IW + pw : span; /* end of the row */    \
				if (c1 < c0)                                                           \
					c1 = c0;                                                       \
				if (sw == 1) {                                                         \
					memset(xb, 0, c0 * sizeof(float));                            \
					memcpy(xb + c0, xr + c0 - pw, (c1 - c0) * sizeof(float));     \
					memset(xb + c1, 0, (span - c1) * sizeof(float));              \
				} else {                                                               \
					memset(xb, 0, 2 * half * sizeof(float));                      \
					for (int64_t t = c0; t < c1; t++)                              \
						(t & 1 ? odd : even)[t >> 1] = xr[t - pw];             \
				}                                                                      \
				for (int64_t j = 0; j < owp; j += VL) {                                \
					NAME##_v acc = *(NAME##_v *)(ob + j);                          \
					for (int64_t k = 0; k < KW; k++) {                             \
						int64_t t = k * dw;                                    \
						const float *src = sw == 1 ? xb + j + t                \
								   : (t & 1 ? odd : even) + j + (t >> 1); \
						acc += wr[k] * *(const NAME##_vu *)src;                \
					}                                                              \
					*(NAME##_v *)(ob + j) = acc;                                   \
				}                                                                      \
			}                                                                              \
			if (act == KACT_RELU || act == KACT_CLIP) {                                    \
				for (int64_t j = 0; j < owp; j += VL) {                                \
					NAME##_v r = *(NAME##_v *)(ob + j);                            \
					NAME##_vi m = act == KACT_RELU ? r < zero : r < lo;            \
					NAME##_v l = act == KACT_RELU ? zero : lo;                     \
					r = (NAME##_v)(((NAME##_vi)r & ~m) | ((NAME##_vi)l & m));      \
					if (act == KACT_CLIP) {                                        \
						m = r > hi;                                            \
						r = (NAME##_v)(((NAME##_vi)r & ~m) | ((NAME##_vi)hi & m)); \
					}                                                              \
					*(NAME##_v *)(ob + j) = r;                                     \
				}                                                                      \
			} else if (act) {                                                              \
				kact_apply(epi, ob, OW);                                               \
			}                                                                              \
			memcpy(y + oh * OW, ob, OW * sizeof(float));                                   \
		}                                                                                      \
	}

/* One output plane, any stride, scalar (no activation). */
static void dw_plane_scalar(const struct kdw_geom *g, const float *x, const float *w, float bias, float *y)
{
	for (int64_t oh = 0; oh < g->oh; oh++)
		for (int64_t ow = 0; ow < g->ow; ow++) {
			float s = bias;
			for (int64_t kh = 0; kh < g->kh; kh++) {
				int64_t ih = oh * g->sh - g->ph + kh * g->dh;
				if (ih < 0 || ih >= g->ih)
					continue;
				for (int64_t kw = 0; kw < g->kw; kw++) {
					int64_t iw = ow * g->sw - g->pw + kw * g->dw;
					if (iw >= 0 && iw < g->iw)
						s += x[ih * g->iw + iw] * w[kh * g->kw + kw];
				}
			}
			y[oh * g->ow + ow] = s;
		}
}

DW_DEFINE(dw_plane_generic, , 4)
#if defined(__x86_64__) && defined(__GNUC__)
DW_DEFINE(dw_plane_avx2, __attribute__((target("avx2,fma"))), 8)
DW_DEFINE(dw_plane_avx512, __attribute__((target("avx512f,fma"))), 16)
#endif

typedef void (*dw_plane_fn)(const struct kdw_geom *g, const float *x, const float *w, float bias, float *y,
			    const struct kepi *epi);

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
		j->fn(g, j->x + p * isz, j->w + c * ksz, bias, y, j->epi);
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
