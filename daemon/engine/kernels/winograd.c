/* winograd.c - F(4x4, 3x3) convolutions on nChw8c data (see winograd.h).
 *
 * With d a 6x6 input tile, g a 3x3 kernel and Lavin & Gray's matrices B (6x6), G (6x3) and A
 * (6x4), the 4x4 output tile is A^T [(G g G^T) . (B^T d B)] A. Per group of images:
 *  1. input transform: every (tile, block of 8 channels) becomes 36 vectors of 8 channels,
 *     stored as V[xi][tile][C] (xi = one of the 36 tile positions);
 *  2. 36 GEMMs O[xi] = V[xi] (tiles x C) * U[xi] (C x M), U the transformed weights packed once;
 *  3. output transform: every (tile, block of 8 output channels) gathers its 36 vectors, takes
 *     A^T . A, adds bias (and the residual already in y), applies the activation and stores the
 *     4x4 pixels that fall inside the output.
 * Each step is split over the pool: tile rows for the transforms, the 36 GEMMs (one thread
 * each) for the middle.
 *
 * When (measured on the 2-core AVX2 dev box, one thread, the 36 GEMMs alone against oneDNN's
 * direct jit:avx2 convolution of the same layer at batch 1): 64 channels @56: 1.1 vs 3.3 ms,
 * 128 @28: 1.1 vs 3.0 ms, 256 @14: 2.3 vs 3.5 ms, 512 @7: 4.3 vs 4.3 ms (4 tiles per image leave
 * the GEMMs too short). The rule: at least 12x12 outputs (9 tiles) per image. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/gemm.h"
#include "kernels/winograd.h"
#include "ops/vmath.h"
#include "threadpool.h"
#include "util.h"

#define WINO_SCRATCH_MAX ((size_t)16 << 20) /* transformed tiles kept at once (images grouped below it) */
#define WINO_MIN_OUT 12 /* smallest output height / width the path takes */

typedef float v8 __attribute__((vector_size(32)));

struct kwino {
	struct kwino_desc d;
	struct kgemm_packed *u[36]; /* U[xi]: C x M, packed as the GEMM's B */
	float *bias; /* M floats */
	int act;
	float lo, hi, alpha;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_off;

/* Read ACCELD_ENGINE_WINOGRAD once. */
static void wino_env(void)
{
	const char *e = getenv("ACCELD_ENGINE_WINOGRAD");
	g_off = e && !strcmp(e, "0");
}

/* Output size and tile counts of d on H x W. */
static void wino_tiles(const struct kwino_desc *d, int64_t H, int64_t W, int64_t *OH, int64_t *OW, int64_t *TH,
		       int64_t *TW)
{
	*OH = H + d->pt + d->pb - 2;
	*OW = W + d->pl + d->pr - 2;
	*TH = (*OH + 3) / 4;
	*TW = (*OW + 3) / 4;
}

/* Images transformed at once: as many as fit WINO_SCRATCH_MAX (at least one, at most N). */
static int64_t wino_group(const struct kwino_desc *d, int64_t N, int64_t H, int64_t W, size_t *per_image)
{
	int64_t OH, OW, TH, TW;
	wino_tiles(d, H, W, &OH, &OW, &TH, &TW);
	size_t per = (size_t)36 * (size_t)(TH * TW) * (size_t)(d->C + d->M) * sizeof(float);
	int64_t g = per ? (int64_t)(WINO_SCRATCH_MAX / per) : 1;
	if (g < 1)
		g = 1;
	if (g > N)
		g = N;
	if (per_image)
		*per_image = per;
	return g;
}

bool kwino_wanted(const struct kwino_desc *d, int64_t H, int64_t W, const struct kepi *e)
{
	pthread_once(&g_once, wino_env);
	if (g_off || d->C % 8 || d->M % 8 || d->C < 16 || d->M < 16)
		return false;
	if (d->pt < 0 || d->pt > 2 || d->pl < 0 || d->pl > 2 || d->pb < 0 || d->pb > 2 || d->pr < 0 || d->pr > 2)
		return false;
	if (!(e->act == KACT_NONE || e->act == KACT_RELU || e->act == KACT_LEAKYRELU ||
	      (e->act == KACT_CLIP && !isnan(e->min) && !isnan(e->max))))
		return false;
	int64_t OH, OW, TH, TW;
	wino_tiles(d, H, W, &OH, &OW, &TH, &TW);
	return OH >= WINO_MIN_OUT && OW >= WINO_MIN_OUT;
}

size_t kwino_scratch(const struct kwino_desc *d, int64_t N, int64_t H, int64_t W)
{
	size_t per;
	int64_t g = wino_group(d, N, H, W, &per);
	return (size_t)g * per + 128;
}

struct kwino *kwino_new(const struct kwino_desc *d, const float *w, const float *b, const struct kepi *e)
{
	static const double G[6][3] = { { 1.0 / 4, 0, 0 },
					{ -1.0 / 6, -1.0 / 6, -1.0 / 6 },
					{ -1.0 / 6, 1.0 / 6, -1.0 / 6 },
					{ 1.0 / 24, 1.0 / 12, 1.0 / 6 },
					{ 1.0 / 24, -1.0 / 12, 1.0 / 6 },
					{ 0, 0, 1 } };
	struct kwino *k = xcalloc(1, sizeof(*k));
	int64_t C = d->C, M = d->M;
	k->d = *d;
	k->act = e->act;
	k->lo = e->min;
	k->hi = e->max;
	k->alpha = e->alpha;
	k->bias = xcalloc(M, sizeof(float));
	if (b)
		memcpy(k->bias, b, M * sizeof(float));
	/* U[xi][c][m] = (G g G^T)[xi] for g = w[m][c]. */
	float *U = xmalloc((size_t)36 * C * M * sizeof(float));
	for (int64_t m = 0; m < M; m++)
		for (int64_t c = 0; c < C; c++) {
			const float *g = w + (m * C + c) * 9;
			double t[6][3], u;
			for (int i = 0; i < 6; i++)
				for (int j = 0; j < 3; j++)
					t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
			for (int i = 0; i < 6; i++)
				for (int j = 0; j < 6; j++) {
					u = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
					U[((size_t)(i * 6 + j) * C + c) * M + m] = (float)u;
				}
		}
	for (int xi = 0; xi < 36; xi++)
		k->u[xi] = kgemm_pack_b(false, C, M, U + (size_t)xi * C * M, M);
	free(U);
	return k;
}

void kwino_free(void *p)
{
	struct kwino *k = p;
	if (!k)
		return;
	for (int xi = 0; xi < 36; xi++)
		kgemm_packed_free(k->u[xi]);
	free(k->bias);
	free(k);
}

struct wjob {
	const struct kwino *k;
	int64_t n0, H, W, OH, OW, TH, TW, T, R; /* first image; input, output, tile grid; rows per V[xi] */
	const float *x;
	float *y, *V, *O;
	bool sum;
};

/* v = 8 floats at p (unaligned load; a macro so that no function returns an AVX vector). */
#define LD8(v, p) memcpy(&(v), (p), sizeof(v8))

/* Input transform of tile rows [r0, r1) (row = image in group * TH + tile row). */
VM_VEC static void wino_in(void *arg, int64_t r0, int64_t r1)
{
	const struct wjob *j = arg;
	const struct kwino_desc *d = &j->k->d;
	int64_t CB = d->C / 8;
	const v8 zero = { 0 };
	for (int64_t r = r0; r < r1; r++) {
		int64_t nl = r / j->TH, ty = r % j->TH;
		for (int64_t tx = 0; tx < j->TW; tx++) {
			int64_t row = nl * j->T + ty * j->TW + tx;
			for (int64_t cb = 0; cb < CB; cb++) {
				const float *xb = j->x + ((j->n0 + nl) * CB + cb) * j->H * j->W * 8;
				v8 dd[6][6], t[6][6];
				for (int a = 0; a < 6; a++) {
					int64_t ih = ty * 4 - d->pt + a;
					for (int b = 0; b < 6; b++) {
						int64_t iw = tx * 4 - d->pl + b;
						if (ih >= 0 && ih < j->H && iw >= 0 && iw < j->W)
							LD8(dd[a][b], xb + (ih * j->W + iw) * 8);
						else
							dd[a][b] = zero;
					}
				}
				for (int b = 0; b < 6; b++) { /* t = B^T d */
					t[0][b] = 4 * dd[0][b] - 5 * dd[2][b] + dd[4][b];
					t[1][b] = -4 * (dd[1][b] + dd[2][b]) + dd[3][b] + dd[4][b];
					t[2][b] = 4 * (dd[1][b] - dd[2][b]) - dd[3][b] + dd[4][b];
					t[3][b] = -2 * (dd[1][b] - dd[3][b]) - dd[2][b] + dd[4][b];
					t[4][b] = 2 * (dd[1][b] - dd[3][b]) - dd[2][b] + dd[4][b];
					t[5][b] = 4 * dd[1][b] - 5 * dd[3][b] + dd[5][b];
				}
				float *v = j->V + row * d->C + cb * 8;
				size_t stride = (size_t)j->R * d->C;
				for (int a = 0; a < 6; a++) { /* V = t B */
					v8 o[6];
					o[0] = 4 * t[a][0] - 5 * t[a][2] + t[a][4];
					o[1] = -4 * (t[a][1] + t[a][2]) + t[a][3] + t[a][4];
					o[2] = 4 * (t[a][1] - t[a][2]) - t[a][3] + t[a][4];
					o[3] = -2 * (t[a][1] - t[a][3]) - t[a][2] + t[a][4];
					o[4] = 2 * (t[a][1] - t[a][3]) - t[a][2] + t[a][4];
					o[5] = 4 * t[a][1] - 5 * t[a][3] + t[a][5];
					for (int b = 0; b < 6; b++)
						memcpy(v + (size_t)(a * 6 + b) * stride, &o[b], sizeof(v8));
				}
			}
		}
	}
}

/* GEMMs [x0, x1) of the 36, one thread each. */
static void wino_gemm(void *arg, int64_t x0, int64_t x1)
{
	const struct wjob *j = arg;
	const struct kwino_desc *d = &j->k->d;
	for (int64_t xi = x0; xi < x1; xi++)
		kgemm_ex(false, false, j->R, d->M, d->C, 1.0f, j->V + (size_t)xi * j->R * d->C, d->C, NULL, NULL, d->M,
			 j->k->u[xi], 0.0f, j->O + (size_t)xi * j->R * d->M, d->M, NULL, NULL);
}

typedef int32_t v8i __attribute__((vector_size(32)));

/* k's activation on the 8 lanes at *t, with lane masks (vector ternaries are C++ only; a
 * pointer, as no function here passes AVX vectors by value). */
static inline __attribute__((always_inline)) void wino_act(const struct kwino *k, v8 *t)
{
	const v8 zero = { 0 };
	v8 x = *t;
	v8i m;
	switch (k->act) {
	case KACT_RELU:
		*t = (v8)((v8i)x & (v8i)(x > zero));
		break;
	case KACT_LEAKYRELU:
		m = x >= zero;
		*t = (v8)(((v8i)x & m) | ((v8i)(x * k->alpha) & ~m));
		break;
	case KACT_CLIP: {
		v8 lo = zero + k->lo, hi = zero + k->hi;
		m = x < lo;
		x = (v8)(((v8i)x & ~m) | ((v8i)lo & m));
		m = x > hi;
		*t = (v8)(((v8i)x & ~m) | ((v8i)hi & m));
		break;
	}
	default:
		break;
	}
}

/* Output transform of tile rows [r0, r1). */
VM_VEC static void wino_out(void *arg, int64_t r0, int64_t r1)
{
	const struct wjob *j = arg;
	const struct kwino *k = j->k;
	int64_t MB = k->d.M / 8;
	size_t stride = (size_t)j->R * k->d.M;
	for (int64_t r = r0; r < r1; r++) {
		int64_t nl = r / j->TH, ty = r % j->TH;
		for (int64_t tx = 0; tx < j->TW; tx++) {
			int64_t row = nl * j->T + ty * j->TW + tx;
			for (int64_t mb = 0; mb < MB; mb++) {
				const float *o = j->O + row * k->d.M + mb * 8;
				v8 s[4][6];
				for (int b = 0; b < 6; b++) { /* s = A^T o */
					v8 o0, o1, o2, o3, o4, o5;
					LD8(o0, o + (size_t)(0 * 6 + b) * stride);
					LD8(o1, o + (size_t)(1 * 6 + b) * stride);
					LD8(o2, o + (size_t)(2 * 6 + b) * stride);
					LD8(o3, o + (size_t)(3 * 6 + b) * stride);
					LD8(o4, o + (size_t)(4 * 6 + b) * stride);
					LD8(o5, o + (size_t)(5 * 6 + b) * stride);
					v8 p12 = o1 + o2, m12 = o1 - o2, p34 = o3 + o4, m34 = o3 - o4;
					s[0][b] = o0 + p12 + p34;
					s[1][b] = m12 + 2 * m34;
					s[2][b] = p12 + 4 * p34;
					s[3][b] = m12 + 8 * m34 + o5;
				}
				v8 bias;
				LD8(bias, k->bias + mb * 8);
				float *yb = j->y + ((j->n0 + nl) * MB + mb) * j->OH * j->OW * 8;
				for (int a = 0; a < 4; a++) { /* y = s A */
					int64_t oh = ty * 4 + a;
					if (oh >= j->OH)
						break;
					v8 p12 = s[a][1] + s[a][2], m12 = s[a][1] - s[a][2];
					v8 p34 = s[a][3] + s[a][4], m34 = s[a][3] - s[a][4];
					v8 out[4] = { s[a][0] + p12 + p34 + bias, m12 + 2 * m34 + bias, p12 + 4 * p34 + bias,
						      m12 + 8 * m34 + s[a][5] + bias };
					for (int b = 0; b < 4; b++) {
						int64_t ow = tx * 4 + b;
						if (ow >= j->OW)
							break;
						float *p = yb + (oh * j->OW + ow) * 8;
						v8 t = out[b];
						if (j->sum) {
							v8 res;
							LD8(res, p);
							t += res;
						}
						wino_act(k, &t);
						memcpy(p, &t, sizeof(t));
					}
				}
			}
		}
	}
}

int kwino_run(struct kwino *k, int64_t N, int64_t H, int64_t W, const float *x, float *y, bool sum, void *scratch,
	      struct tpool *pool)
{
	if (!k || !kgemm_packed_ok(k->u[0]))
		return -ENOTSUP;
	struct wjob j = { .k = k, .H = H, .W = W, .x = x, .y = y, .sum = sum };
	wino_tiles(&k->d, H, W, &j.OH, &j.OW, &j.TH, &j.TW);
	j.T = j.TH * j.TW;
	int64_t g = wino_group(&k->d, N, H, W, NULL);
	for (j.n0 = 0; j.n0 < N; j.n0 += g) {
		int64_t gg = N - j.n0 < g ? N - j.n0 : g;
		j.R = gg * j.T;
		j.V = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
		j.O = (float *)(((uintptr_t)(j.V + (size_t)36 * j.R * k->d.C) + 63) & ~(uintptr_t)63);
		tpool_for(pool, gg * j.TH, 1, wino_in, &j);
		tpool_for(pool, 36, 1, wino_gemm, &j);
		tpool_for(pool, gg * j.TH, 1, wino_out, &j);
	}
	return 0;
}
