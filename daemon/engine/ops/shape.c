/* shape.c - data movement and shape ops: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout,
 * Transpose, Concat, Split, Slice, Gather, Expand, Tile, Shape, Size, Constant, ConstantOfShape,
 * Range. Most work on any fixed-size dtype by moving bytes. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vmath.h"
#include "threadpool.h"
#include "util.h"

void eng_broadcast_copy(const struct eng_tensor *src, struct eng_tensor *dst, struct tpool *pool);

/* Any-dtype op with one data input: output has the input's dtype. */
static int data_prepare(struct eg_graph *g, struct eg_node *n, int lo, int hi, int max_out, char **err)
{
	int rc = eng_check_arity(n, lo, hi, max_out, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (rc)
		return rc;
	for (int i = 0; i < n->n_out; i++)
		eng_set_out_dtype(g, n, i, eng_in_dtype(g, n, 0));
	return 0;
}

/* Check that input i is an integer tensor (shape, axes, indices...). */
static int int_input(const struct eg_graph *g, const struct eg_node *n, int i, char **err)
{
	if (i >= n->n_in || n->in[i] < 0)
		return 0;
	return eng_check_type(g, n, i, DTB(DT_INT64) | DTB(DT_INT32), err);
}

/* Error unless input i's values are known when the plan is made. */
static int need_data(const struct eg_node *n, struct eng_tensor *const *in, int i, char **err)
{
	if (in[i] && !in[i]->data)
		return eng_node_err(err, -ENOTSUP, n, "input %d must be known before running (a constant or "
				    "computed from shapes): data-dependent shapes are not supported", i);
	return 0;
}

/* Output 0 is input 0's bytes: copy unless the plan made them share storage. */
static int view_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	if (out[0]->data != in[0]->data && out[0]->bytes)
		memcpy(out[0]->data, in[0]->data, out[0]->bytes);
	return 0;
}

/* ---- Reshape ---- */

static int reshape_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 2, 2, 1, err);
	return rc ? rc : eng_check_type(g, n, 1, DTB(DT_INT64), err);
}

static int reshape_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			 size_t *scratch, char **err)
{
	int rc = need_data(n, in, 1, err);
	if (rc)
		return rc;
	int64_t k = eng_numel(in[1]);
	if (in[1]->ndims != 1 || k > TENSOR_MAX_DIMS)
		return eng_node_err(err, -EINVAL, n, "shape must be 1-D with at most %d entries", TENSOR_MAX_DIMS);
	bool allowzero = eg_attr_int(n, "allowzero", 0) != 0;
	int64_t total = eng_numel(in[0]), known = 1;
	int neg = -1;
	out[0]->ndims = (int)k;
	for (int i = 0; i < k; i++) {
		int64_t d = ((const int64_t *)in[1]->data)[i];
		if (d == 0 && !allowzero) {
			if (i >= in[0]->ndims)
				return eng_node_err(err, -EINVAL, n, "shape[%d] = 0 copies a dim the input lacks", i);
			d = in[0]->dims[i];
		}
		if (d == -1) {
			if (neg >= 0)
				return eng_node_err(err, -EINVAL, n, "shape has more than one -1");
			neg = i;
			d = 1;
		} else if (d < 0) {
			return eng_node_err(err, -EINVAL, n, "shape[%d] = %lld", i, (long long)d);
		}
		out[0]->dims[i] = d;
		known *= d;
	}
	if (neg >= 0) {
		if (known == 0 || total % known)
			return eng_node_err(err, -EINVAL, n, "cannot infer the -1 dim (%lld elements)", (long long)total);
		out[0]->dims[neg] = total / known;
		known *= out[0]->dims[neg];
	}
	if (known != total)
		return eng_node_err(err, -EINVAL, n, "cannot reshape %lld elements into %lld", (long long)total,
				    (long long)known);
	return 0;
}

/* ---- Flatten ---- */

static int flatten_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	return data_prepare(g, n, 1, 1, 1, err);
}

static int flatten_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			 size_t *scratch, char **err)
{
	int r = in[0]->ndims;
	int64_t axis = eg_attr_int(n, "axis", 1);
	if (axis < -r || axis > r)
		return eng_node_err(err, -EINVAL, n, "axis %lld out of range for rank %d", (long long)axis, r);
	if (axis < 0)
		axis += r;
	int64_t a = 1, b = 1;
	for (int i = 0; i < r; i++)
		*(i < axis ? &a : &b) *= in[0]->dims[i];
	out[0]->ndims = 2;
	out[0]->dims[0] = a;
	out[0]->dims[1] = b;
	return 0;
}

/* ---- Squeeze / Unsqueeze ---- */

/* Axes from the attribute (old opsets) or input 1; *given false when there are none. */
static int get_axes(const struct eg_node *n, struct eng_tensor *const *in, int64_t *axes, int *k, char **err)
{
	size_t cnt;
	const int64_t *a = eg_attr_ints(n, "axes", &cnt);
	*k = 0;
	if (a) {
		if (cnt > TENSOR_MAX_DIMS)
			return eng_node_err(err, -EINVAL, n, "too many axes");
		memcpy(axes, a, cnt * sizeof(int64_t));
		*k = (int)cnt;
		return 0;
	}
	if (n->n_in > 1 && in[1]) {
		int rc = need_data(n, in, 1, err);
		if (rc)
			return rc;
		int64_t c = eng_numel(in[1]);
		if (c > TENSOR_MAX_DIMS)
			return eng_node_err(err, -EINVAL, n, "too many axes");
		for (int64_t i = 0; i < c; i++)
			axes[i] = eng_get_int(in[1], i);
		*k = (int)c;
	}
	return 0;
}

static int squeeze_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 1, 2, 1, err);
	return rc ? rc : int_input(g, n, 1, err);
}

static int squeeze_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			 size_t *scratch, char **err)
{
	int64_t axes[TENSOR_MAX_DIMS];
	int k, r = in[0]->ndims;
	int rc = get_axes(n, in, axes, &k, err);
	if (rc)
		return rc;
	bool drop[TENSOR_MAX_DIMS] = { false };
	for (int i = 0; i < k; i++) {
		int a = eng_axis(axes[i], r);
		if (a < 0 || in[0]->dims[a] != 1)
			return eng_node_err(err, -EINVAL, n, "cannot squeeze axis %lld", (long long)axes[i]);
		drop[a] = true;
	}
	out[0]->ndims = 0;
	for (int i = 0; i < r; i++)
		if (!(k ? drop[i] : in[0]->dims[i] == 1))
			out[0]->dims[out[0]->ndims++] = in[0]->dims[i];
	return 0;
}

static int unsqueeze_infer(const struct eg_node *n, struct eng_tensor *const *in,
			   struct eng_tensor *const *out, size_t *scratch, char **err)
{
	int64_t axes[TENSOR_MAX_DIMS];
	int k;
	int rc = get_axes(n, in, axes, &k, err);
	if (rc)
		return rc;
	int r = in[0]->ndims + k;
	if (!k || r > TENSOR_MAX_DIMS)
		return eng_node_err(err, -EINVAL, n, "needs 1 to %d axes", TENSOR_MAX_DIMS - in[0]->ndims);
	bool ins[TENSOR_MAX_DIMS] = { false };
	for (int i = 0; i < k; i++) {
		int a = eng_axis(axes[i], r);
		if (a < 0 || ins[a])
			return eng_node_err(err, -EINVAL, n, "bad or repeated axis %lld", (long long)axes[i]);
		ins[a] = true;
	}
	out[0]->ndims = r;
	for (int i = 0, j = 0; i < r; i++)
		out[0]->dims[i] = ins[i] ? 1 : in[0]->dims[j++];
	return 0;
}

/* ---- Identity / Dropout ---- */

static int identity_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	return data_prepare(g, n, 1, 1, 1, err);
}

static int dropout_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 1, 3, 2, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (rc)
		return rc;
	if (n->n_in > 2 && n->in[2] >= 0) {
		const struct eng_tensor *tm = g->values[n->in[2]].konst;
		if (!tm)
			return eng_node_err(err, -ENOTSUP, n, "training_mode must be a constant false: training-mode "
					    "Dropout is not supported");
		if (tm->bytes && ((const uint8_t *)tm->data)[0])
			return eng_node_err(err, -ENOTSUP, n, "training-mode Dropout is not supported");
	}
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 0));
	eng_set_out_dtype(g, n, 1, DT_BOOL);
	return 0;
}

static int dropout_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			 size_t *scratch, char **err)
{
	for (int i = 0; i < n->n_out; i++)
		if (out[i]) {
			out[i]->ndims = in[0]->ndims;
			memcpy(out[i]->dims, in[0]->dims, sizeof(in[0]->dims));
		}
	return 0;
}

static int dropout_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       void *scratch, struct eng_ctx *ctx, char **err)
{
	if (n->n_out > 1 && out[1])
		memset(out[1]->data, 1, out[1]->bytes);
	return view_run(n, in, out, scratch, ctx, err);
}

/* ---- Transpose ---- */

struct perm_params {
	int k;
	int64_t perm[TENSOR_MAX_DIMS];
};

static int transpose_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	return data_prepare(g, n, 1, 1, 1, err);
}

/* The permutation for rank r (default: reversed). */
static int get_perm(const struct eg_node *n, int r, int *perm, char **err)
{
	size_t cnt;
	const int64_t *p = eg_attr_ints(n, "perm", &cnt);
	bool seen[TENSOR_MAX_DIMS] = { false };
	if (p && (int)cnt != r)
		return eng_node_err(err, -EINVAL, n, "perm has %zu entries for rank %d", cnt, r);
	for (int i = 0; i < r; i++) {
		int a = p ? eng_axis(p[i], r) : r - 1 - i;
		if (a < 0 || seen[a])
			return eng_node_err(err, -EINVAL, n, "perm is not a permutation");
		seen[a] = true;
		perm[i] = a;
	}
	return 0;
}

static int transpose_infer(const struct eg_node *n, struct eng_tensor *const *in,
			   struct eng_tensor *const *out, size_t *scratch, char **err)
{
	int perm[TENSOR_MAX_DIMS], r = in[0]->ndims;
	int rc = get_perm(n, r, perm, err);
	if (rc)
		return rc;
	out[0]->ndims = r;
	for (int i = 0; i < r; i++)
		out[0]->dims[i] = in[0]->dims[perm[i]];
	return 0;
}

/* Strided copy: dst is dense with dims; src element at index i has offset sum(i_d * sst[d]). */
struct strided_job {
	int nd;
	int64_t dims[TENSOR_MAX_DIMS], sst[TENSOR_MAX_DIMS];
	size_t esz;
	const uint8_t *src;
	uint8_t *dst;
};

/* Copy outer rows [r0, r1) (a row is the last dim). */
static void strided_part(void *arg, int64_t r0, int64_t r1)
{
	const struct strided_job *j = arg;
	int nd = j->nd;
	int64_t idx[TENSOR_MAX_DIMS] = { 0 }, r = r0, inner = j->dims[nd - 1], st = j->sst[nd - 1];
	for (int d = nd - 2; d >= 0; d--) {
		idx[d] = r % j->dims[d];
		r /= j->dims[d];
	}
	for (int64_t row = r0; row < r1; row++) {
		int64_t off = 0;
		for (int d = 0; d < nd - 1; d++)
			off += idx[d] * j->sst[d];
		uint8_t *o = j->dst + row * inner * j->esz;
		switch (st == 1 ? 0 : j->esz) {
		case 0:
			memcpy(o, j->src + off * j->esz, inner * j->esz);
			break;
		case 4: {
			const uint32_t *s = (const uint32_t *)j->src + off;
			for (int64_t i = 0; i < inner; i++)
				((uint32_t *)o)[i] = s[i * st];
			break;
		}
		case 8: {
			const uint64_t *s = (const uint64_t *)j->src + off;
			for (int64_t i = 0; i < inner; i++)
				((uint64_t *)o)[i] = s[i * st];
			break;
		}
		case 1: {
			const uint8_t *s = j->src + off;
			for (int64_t i = 0; i < inner; i++)
				o[i] = s[i * st];
			break;
		}
		default:
			if (st == 1) {
				memcpy(o, j->src + off * j->esz, inner * j->esz);
			} else {
				for (int64_t i = 0; i < inner; i++)
					memcpy(o + i * j->esz, j->src + (off + i * st) * j->esz, j->esz);
			}
		}
		for (int d = nd - 2; d >= 0; d--) {
			if (++idx[d] < j->dims[d])
				break;
			idx[d] = 0;
		}
	}
}

/* 4-byte transpose of the last two dims: per outer position p (dims before the last two, source
 * offsets in outer_st), dst[p][a][b] = src[p-offset + a + b * lds], a < A, b < B. */
struct tr2_job {
	int64_t A, B, lds, nblk_a;
	int no; /* outer dims */
	int64_t odims[TENSOR_MAX_DIMS], ost[TENSOR_MAX_DIMS];
	const uint32_t *src;
	uint32_t *dst;
};

#define TR_TILE 16

/* Tiles [t0, t1): tile t is outer position t / nblk_a, rows [TR_TILE * (t % nblk_a), +TR_TILE). */
VM_VEC static void tr2_part(void *arg, int64_t t0, int64_t t1)
{
	const struct tr2_job *j = arg;
	for (int64_t t = t0; t < t1; t++) {
		int64_t p = t / j->nblk_a, a0 = (t % j->nblk_a) * TR_TILE, rem = p, off = 0;
		for (int d = j->no - 1; d >= 0; d--) {
			off += (rem % j->odims[d]) * j->ost[d];
			rem /= j->odims[d];
		}
		const uint32_t *restrict s = j->src + off;
		uint32_t *restrict o = j->dst + p * j->A * j->B;
		int64_t a1 = a0 + TR_TILE < j->A ? a0 + TR_TILE : j->A;
		for (int64_t b0 = 0; b0 < j->B; b0 += TR_TILE) {
			int64_t b1 = b0 + TR_TILE < j->B ? b0 + TR_TILE : j->B;
			for (int64_t a = a0; a < a1; a++)
				for (int64_t b = b0; b < b1; b++)
					o[a * j->B + b] = s[a + b * j->lds];
		}
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_TR_AVX2 1

/* tr2_part with 8 x 8 blocks transposed in AVX2 registers: 8 source rows (b) of 8 contiguous
 * values (a) loaded, stored as 8 destination rows of 8; a strided source is read a whole cache
 * line at a time instead of one value per line (which thrashes L1 when lds is a power of two). */
__attribute__((target("avx2"))) static void tr2_part_avx2(void *arg, int64_t t0, int64_t t1)
{
	const struct tr2_job *j = arg;
	const int64_t B = j->B, lds = j->lds;
	for (int64_t t = t0; t < t1; t++) {
		int64_t p = t / j->nblk_a, a0 = (t % j->nblk_a) * TR_TILE, rem = p, off = 0;
		for (int d = j->no - 1; d >= 0; d--) {
			off += (rem % j->odims[d]) * j->ost[d];
			rem /= j->odims[d];
		}
		const float *s = (const float *)(j->src + off);
		float *o = (float *)(j->dst + p * j->A * B);
		int64_t a1 = a0 + TR_TILE < j->A ? a0 + TR_TILE : j->A, b8 = B & ~(int64_t)7;
		int64_t a = a0;
		for (; a + 8 <= a1; a += 8) {
			for (int64_t b = 0; b < b8; b += 8) {
				const float *r = s + a + b * lds;
				__m256 x0 = _mm256_loadu_ps(r), x1 = _mm256_loadu_ps(r + lds);
				__m256 x2 = _mm256_loadu_ps(r + 2 * lds), x3 = _mm256_loadu_ps(r + 3 * lds);
				__m256 x4 = _mm256_loadu_ps(r + 4 * lds), x5 = _mm256_loadu_ps(r + 5 * lds);
				__m256 x6 = _mm256_loadu_ps(r + 6 * lds), x7 = _mm256_loadu_ps(r + 7 * lds);
				__m256 u0 = _mm256_unpacklo_ps(x0, x1), u1 = _mm256_unpackhi_ps(x0, x1);
				__m256 u2 = _mm256_unpacklo_ps(x2, x3), u3 = _mm256_unpackhi_ps(x2, x3);
				__m256 u4 = _mm256_unpacklo_ps(x4, x5), u5 = _mm256_unpackhi_ps(x4, x5);
				__m256 u6 = _mm256_unpacklo_ps(x6, x7), u7 = _mm256_unpackhi_ps(x6, x7);
				__m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee);
				__m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee);
				__m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee);
				__m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
				float *d = o + a * B + b;
				_mm256_storeu_ps(d, _mm256_permute2f128_ps(v0, v4, 0x20));
				_mm256_storeu_ps(d + B, _mm256_permute2f128_ps(v1, v5, 0x20));
				_mm256_storeu_ps(d + 2 * B, _mm256_permute2f128_ps(v2, v6, 0x20));
				_mm256_storeu_ps(d + 3 * B, _mm256_permute2f128_ps(v3, v7, 0x20));
				_mm256_storeu_ps(d + 4 * B, _mm256_permute2f128_ps(v0, v4, 0x31));
				_mm256_storeu_ps(d + 5 * B, _mm256_permute2f128_ps(v1, v5, 0x31));
				_mm256_storeu_ps(d + 6 * B, _mm256_permute2f128_ps(v2, v6, 0x31));
				_mm256_storeu_ps(d + 7 * B, _mm256_permute2f128_ps(v3, v7, 0x31));
			}
			for (int64_t aa = a; aa < a + 8; aa++)
				for (int64_t b = b8; b < B; b++)
					o[aa * B + b] = s[aa + b * lds];
		}
		for (; a < a1; a++)
			for (int64_t b = 0; b < B; b++)
				o[a * B + b] = s[a + b * lds];
	}
}
#endif

/* Gather a strided view of src into dense dst (dims, strides in elements, offset base). */
static void strided_copy(const void *src, int64_t base, void *dst, size_t esz, int nd, const int64_t *dims,
			 const int64_t *st, struct tpool *pool)
{
	struct strided_job j = { .esz = esz, .src = (const uint8_t *)src + base * esz, .dst = dst };
	int64_t total = 1;
	for (int d = 0; d < nd; d++)
		total *= dims[d];
	if (!total)
		return;
	/* Drop size-1 dims and merge dims that are contiguous in the source. */
	int m = 0;
	for (int d = 0; d < nd; d++) {
		if (dims[d] == 1)
			continue;
		if (m && j.sst[m - 1] == st[d] * dims[d]) {
			j.dims[m - 1] *= dims[d];
			j.sst[m - 1] = st[d];
			continue;
		}
		j.dims[m] = dims[d];
		j.sst[m++] = st[d];
	}
	if (!m) {
		j.dims[0] = 1;
		j.sst[0] = 1;
		m = 1;
	}
	j.nd = m;
	if (m == 1 && j.sst[0] == 1) {
		memcpy(dst, j.src, total * esz);
		return;
	}
	if (esz == 4 && m >= 2 && j.sst[m - 2] == 1 && j.dims[m - 1] >= 4 && j.dims[m - 2] >= 4) {
		/* The source's contiguous dim is the destination's second-to-last: tile the transpose. */
		struct tr2_job t = { .A = j.dims[m - 2], .B = j.dims[m - 1], .lds = j.sst[m - 1], .no = m - 2,
				     .src = (const uint32_t *)j.src, .dst = dst };
		int64_t outer = 1;
		for (int d = 0; d < m - 2; d++) {
			t.odims[d] = j.dims[d];
			t.ost[d] = j.sst[d];
			outer *= j.dims[d];
		}
		t.nblk_a = (t.A + TR_TILE - 1) / TR_TILE;
		tpool_fn fn = tr2_part;
#ifdef HAVE_TR_AVX2
		if (__builtin_cpu_supports("avx2"))
			fn = tr2_part_avx2;
#endif
		tpool_for(pool, outer * t.nblk_a, 1 + 65536 / (TR_TILE * t.B), fn, &t);
		return;
	}
	int64_t rows = total / j.dims[m - 1];
	tpool_for(pool, rows, 1 + 65536 / j.dims[m - 1], strided_part, &j);
}

static int transpose_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			 void *scratch, struct eng_ctx *ctx, char **err)
{
	int perm[TENSOR_MAX_DIMS], r = in[0]->ndims;
	int rc = get_perm(n, r, perm, err);
	if (rc)
		return rc;
	int64_t st[TENSOR_MAX_DIMS], src_st[TENSOR_MAX_DIMS], s = 1;
	for (int d = r - 1; d >= 0; d--) {
		src_st[d] = s;
		s *= in[0]->dims[d];
	}
	for (int i = 0; i < r; i++)
		st[i] = src_st[perm[i]];
	strided_copy(in[0]->data, 0, out[0]->data, dtype_size(in[0]->dtype), r, out[0]->dims, st, ctx->pool);
	return 0;
}

/* ---- Concat ---- */

static int concat_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 1, 1 << 20, 1, err);
	if (rc)
		return rc;
	if (!eg_attr_find(n, "axis"))
		return eng_node_err(err, -EINVAL, n, "attribute 'axis' is required");
	for (int i = 1; i < n->n_in; i++)
		if (n->in[i] < 0 || eng_in_dtype(g, n, i) != eng_in_dtype(g, n, 0))
			return eng_node_err(err, -EINVAL, n, "inputs must all be present with one type");
	return 0;
}

static int concat_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			size_t *scratch, char **err)
{
	int r = in[0]->ndims, a = eng_axis(eg_attr_int(n, "axis", 0), r);
	if (a < 0 || r == 0)
		return eng_node_err(err, -EINVAL, n, "axis out of range for rank %d", r);
	*out[0] = (struct eng_tensor){ .dtype = out[0]->dtype, .ndims = r };
	memcpy(out[0]->dims, in[0]->dims, sizeof(in[0]->dims));
	out[0]->dims[a] = 0;
	for (int i = 0; i < n->n_in; i++) {
		if (in[i]->ndims != r)
			return eng_node_err(err, -EINVAL, n, "inputs have different ranks");
		for (int d = 0; d < r; d++)
			if (d != a && in[i]->dims[d] != in[0]->dims[d])
				return eng_node_err(err, -EINVAL, n, "input %d's dim %d differs", i, d);
		out[0]->dims[a] += in[i]->dims[a];
	}
	return 0;
}

static int concat_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      void *scratch, struct eng_ctx *ctx, char **err)
{
	int r = out[0]->ndims, a = eng_axis(eg_attr_int(n, "axis", 0), r);
	size_t esz = dtype_size(out[0]->dtype);
	int64_t outer = 1, inner = 1;
	for (int d = 0; d < a; d++)
		outer *= out[0]->dims[d];
	for (int d = a + 1; d < r; d++)
		inner *= out[0]->dims[d];
	size_t orow = out[0]->dims[a] * inner * esz;
	size_t pos = 0;
	for (int i = 0; i < n->n_in; i++) {
		size_t row = in[i]->dims[a] * inner * esz;
		for (int64_t o = 0; o < outer && row; o++)
			memcpy((uint8_t *)out[0]->data + o * orow + pos, (const uint8_t *)in[i]->data + o * row, row);
		pos += row;
	}
	return 0;
}

/* ---- Split ---- */

static int split_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 1, 2, 1 << 20, err);
	return rc ? rc : int_input(g, n, 1, err);
}

/* Sizes of each output along the axis. */
static int split_sizes(const struct eg_node *n, struct eng_tensor *const *in, int a, int64_t *sizes, char **err)
{
	int64_t dim = in[0]->dims[a], sum = 0;
	size_t cnt;
	const int64_t *s = eg_attr_ints(n, "split", &cnt);
	if (!s && n->n_in > 1 && in[1]) {
		int rc = need_data(n, in, 1, err);
		if (rc)
			return rc;
		cnt = (size_t)eng_numel(in[1]);
		if ((int)cnt != n->n_out)
			return eng_node_err(err, -EINVAL, n, "split has %zu entries for %d outputs", cnt, n->n_out);
		for (size_t i = 0; i < cnt; i++)
			sizes[i] = eng_get_int(in[1], i);
	} else if (s) {
		if ((int)cnt != n->n_out)
			return eng_node_err(err, -EINVAL, n, "split has %zu entries for %d outputs", cnt, n->n_out);
		memcpy(sizes, s, cnt * sizeof(int64_t));
	} else {
		int64_t k = eg_attr_int(n, "num_outputs", n->n_out);
		if (k != n->n_out || k <= 0)
			return eng_node_err(err, -EINVAL, n, "num_outputs %lld for %d outputs", (long long)k, n->n_out);
		int64_t chunk = (dim + k - 1) / k;
		for (int i = 0; i < n->n_out; i++) {
			int64_t left = dim - i * chunk;
			sizes[i] = left < 0 ? 0 : left < chunk ? left : chunk;
		}
		if (!eg_attr_find(n, "num_outputs") && dim % k)
			return eng_node_err(err, -EINVAL, n, "dim %lld does not split evenly in %lld", (long long)dim,
					    (long long)k);
	}
	for (int i = 0; i < n->n_out; i++) {
		if (sizes[i] < 0)
			return eng_node_err(err, -EINVAL, n, "negative split");
		sum += sizes[i];
	}
	if (sum != dim)
		return eng_node_err(err, -EINVAL, n, "splits add up to %lld, the dim is %lld", (long long)sum,
				    (long long)dim);
	return 0;
}

static int split_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       size_t *scratch, char **err)
{
	int a = eng_axis(eg_attr_int(n, "axis", 0), in[0]->ndims);
	if (a < 0)
		return eng_node_err(err, -EINVAL, n, "axis out of range");
	int64_t *sizes = xcalloc(n->n_out + 1, sizeof(int64_t));
	int rc = split_sizes(n, in, a, sizes, err);
	for (int i = 0; !rc && i < n->n_out; i++) {
		if (!out[i])
			continue;
		out[i]->ndims = in[0]->ndims;
		memcpy(out[i]->dims, in[0]->dims, sizeof(in[0]->dims));
		out[i]->dims[a] = sizes[i];
	}
	free(sizes);
	return rc;
}

static int split_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	int r = in[0]->ndims, a = eng_axis(eg_attr_int(n, "axis", 0), r);
	size_t esz = dtype_size(in[0]->dtype);
	int64_t outer = 1, inner = 1;
	for (int d = 0; d < a; d++)
		outer *= in[0]->dims[d];
	for (int d = a + 1; d < r; d++)
		inner *= in[0]->dims[d];
	size_t irow = in[0]->dims[a] * inner * esz, pos = 0;
	int64_t *sizes = xcalloc(n->n_out + 1, sizeof(int64_t));
	int rc = split_sizes(n, in, a, sizes, err);
	for (int i = 0; !rc && i < n->n_out; i++) {
		size_t row = sizes[i] * inner * esz;
		for (int64_t o = 0; out[i] && o < outer && row; o++)
			memcpy((uint8_t *)out[i]->data + o * row, (const uint8_t *)in[0]->data + o * irow + pos, row);
		pos += row;
	}
	free(sizes);
	return rc;
}

/* ---- Slice ---- */

static int slice_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = n->opset < 10 ? data_prepare(g, n, 1, 1, 1, err) : data_prepare(g, n, 3, 5, 1, err);
	for (int i = 1; !rc && i < n->n_in; i++)
		rc = int_input(g, n, i, err);
	return rc;
}

/* Per-dim start and step of the slice, and the output dims. */
static int slice_geom(const struct eg_node *n, struct eng_tensor *const *in, int64_t *start, int64_t *step,
		      int64_t *odims, char **err)
{
	int r = in[0]->ndims, k;
	int64_t st[TENSOR_MAX_DIMS], en[TENSOR_MAX_DIMS], ax[TENSOR_MAX_DIMS], sp[TENSOR_MAX_DIMS];
	if (n->opset < 10) {
		size_t cs, ce, ca;
		const int64_t *s = eg_attr_ints(n, "starts", &cs), *e = eg_attr_ints(n, "ends", &ce);
		const int64_t *a = eg_attr_ints(n, "axes", &ca);
		if (!s || !e || cs != ce || cs > TENSOR_MAX_DIMS || (a && ca != cs))
			return eng_node_err(err, -EINVAL, n, "bad starts/ends/axes");
		k = (int)cs;
		for (int i = 0; i < k; i++) {
			st[i] = s[i];
			en[i] = e[i];
			ax[i] = a ? a[i] : i;
			sp[i] = 1;
		}
	} else {
		for (int i = 1; i < n->n_in; i++) {
			int rc = need_data(n, in, i, err);
			if (rc)
				return rc;
		}
		k = (int)eng_numel(in[1]);
		if (k > TENSOR_MAX_DIMS || eng_numel(in[2]) != k || (n->n_in > 3 && in[3] && eng_numel(in[3]) != k) ||
		    (n->n_in > 4 && in[4] && eng_numel(in[4]) != k))
			return eng_node_err(err, -EINVAL, n, "starts/ends/axes/steps lengths differ");
		for (int i = 0; i < k; i++) {
			st[i] = eng_get_int(in[1], i);
			en[i] = eng_get_int(in[2], i);
			ax[i] = n->n_in > 3 && in[3] ? eng_get_int(in[3], i) : i;
			sp[i] = n->n_in > 4 && in[4] ? eng_get_int(in[4], i) : 1;
		}
	}
	bool seen[TENSOR_MAX_DIMS] = { false };
	for (int d = 0; d < r; d++) {
		start[d] = 0;
		step[d] = 1;
		odims[d] = in[0]->dims[d];
	}
	for (int i = 0; i < k; i++) {
		int a = eng_axis(ax[i], r);
		if (a < 0 || seen[a])
			return eng_node_err(err, -EINVAL, n, "bad or repeated axis %lld", (long long)ax[i]);
		seen[a] = true;
		int64_t dim = in[0]->dims[a], s = st[i], e = en[i], p = sp[i];
		if (p == 0)
			return eng_node_err(err, -EINVAL, n, "step 0");
		if (s < 0)
			s = s < -dim ? 0 : s + dim;
		if (e < 0)
			e = e < -dim ? -1 : e + dim;
		if (p > 0) {
			s = s > dim ? dim : s;
			e = e < 0 ? 0 : e > dim ? dim : e;
		} else {
			s = s > dim - 1 ? dim - 1 : s;
			e = e > dim - 1 ? dim - 1 : e;
		}
		int64_t len = p > 0 ? (e - s + p - 1) / p : (s - e + (-p) - 1) / (-p);
		start[a] = s;
		step[a] = p;
		odims[a] = len < 0 ? 0 : len;
	}
	return 0;
}

static int slice_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       size_t *scratch, char **err)
{
	int64_t start[TENSOR_MAX_DIMS], step[TENSOR_MAX_DIMS];
	out[0]->ndims = in[0]->ndims;
	return slice_geom(n, in, start, step, out[0]->dims, err);
}

static int slice_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	int64_t start[TENSOR_MAX_DIMS], step[TENSOR_MAX_DIMS], od[TENSOR_MAX_DIMS], st[TENSOR_MAX_DIMS];
	int r = in[0]->ndims;
	int rc = slice_geom(n, in, start, step, od, err);
	if (rc)
		return rc;
	int64_t s = 1, base = 0;
	for (int d = r - 1; d >= 0; d--) {
		st[d] = s * step[d];
		base += start[d] * s;
		s *= in[0]->dims[d];
	}
	if (r == 0) {
		memcpy(out[0]->data, in[0]->data, out[0]->bytes);
		return 0;
	}
	strided_copy(in[0]->data, base, out[0]->data, dtype_size(in[0]->dtype), r, od, st, ctx->pool);
	return 0;
}

/* ---- Gather ---- */

static int gather_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 2, 2, 1, err);
	return rc ? rc : eng_check_type(g, n, 1, DTB(DT_INT64) | DTB(DT_INT32), err);
}

static int gather_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			size_t *scratch, char **err)
{
	int r = in[0]->ndims, q = in[1]->ndims, a = eng_axis(eg_attr_int(n, "axis", 0), r);
	if (a < 0 || r == 0)
		return eng_node_err(err, -EINVAL, n, "axis out of range");
	if (r - 1 + q > TENSOR_MAX_DIMS)
		return eng_node_err(err, -ENOTSUP, n, "output rank above %d", TENSOR_MAX_DIMS);
	int k = 0;
	for (int d = 0; d < a; d++)
		out[0]->dims[k++] = in[0]->dims[d];
	for (int d = 0; d < q; d++)
		out[0]->dims[k++] = in[1]->dims[d];
	for (int d = a + 1; d < r; d++)
		out[0]->dims[k++] = in[0]->dims[d];
	out[0]->ndims = k;
	return 0;
}

static int gather_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      void *scratch, struct eng_ctx *ctx, char **err)
{
	int r = in[0]->ndims, a = eng_axis(eg_attr_int(n, "axis", 0), r);
	size_t esz = dtype_size(in[0]->dtype);
	int64_t outer = 1, inner = 1, dim = in[0]->dims[a], ni = eng_numel(in[1]);
	for (int d = 0; d < a; d++)
		outer *= in[0]->dims[d];
	for (int d = a + 1; d < r; d++)
		inner *= in[0]->dims[d];
	size_t row = inner * esz;
	for (int64_t i = 0; i < ni; i++) {
		int64_t idx = eng_get_int(in[1], i);
		if (idx < -dim || idx >= dim)
			return eng_node_err(err, -EINVAL, n, "index %lld out of range [%lld, %lld)", (long long)idx,
					    (long long)-dim, (long long)dim);
	}
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < ni; i++) {
			int64_t idx = eng_get_int(in[1], i);
			if (idx < 0)
				idx += dim;
			memcpy((uint8_t *)out[0]->data + (o * ni + i) * row,
			       (const uint8_t *)in[0]->data + (o * dim + idx) * row, row);
		}
	return 0;
}

/* ---- Expand / Tile ---- */

static int expand_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 2, 2, 1, err);
	return rc ? rc : eng_check_type(g, n, 1, DTB(DT_INT64), err);
}

static int expand_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			size_t *scratch, char **err)
{
	int rc = need_data(n, in, 1, err);
	if (rc)
		return rc;
	int64_t k = eng_numel(in[1]);
	if (in[1]->ndims != 1 || k > TENSOR_MAX_DIMS)
		return eng_node_err(err, -EINVAL, n, "shape must be 1-D with at most %d entries", TENSOR_MAX_DIMS);
	struct eng_tensor sh = { .ndims = (int)k };
	for (int i = 0; i < k; i++) {
		sh.dims[i] = ((const int64_t *)in[1]->data)[i];
		if (sh.dims[i] < 0)
			return eng_node_err(err, -EINVAL, n, "negative dim in shape");
	}
	struct eng_tensor *ts[2] = { in[0], &sh };
	if (eng_broadcast_shape(ts, 2, out[0]))
		return eng_node_err(err, -EINVAL, n, "shape does not broadcast with the input");
	return 0;
}

static int expand_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      void *scratch, struct eng_ctx *ctx, char **err)
{
	eng_broadcast_copy(in[0], out[0], ctx->pool);
	return 0;
}

static int tile_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	int rc = need_data(n, in, 1, err);
	if (rc)
		return rc;
	if (eng_numel(in[1]) != in[0]->ndims)
		return eng_node_err(err, -EINVAL, n, "repeats must have one entry per dim");
	out[0]->ndims = in[0]->ndims;
	for (int d = 0; d < in[0]->ndims; d++) {
		int64_t rep = eng_get_int(in[1], d);
		if (rep < 0)
			return eng_node_err(err, -EINVAL, n, "negative repeat");
		out[0]->dims[d] = in[0]->dims[d] * rep;
	}
	return 0;
}

static int tile_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	/* View the output as [rep0, d0, rep1, d1, ...] and copy with stride 0 on the rep dims. */
	int r = in[0]->ndims;
	int64_t dims[2 * TENSOR_MAX_DIMS], st[2 * TENSOR_MAX_DIMS], s = 1;
	if (r == 0 || !out[0]->bytes) {
		memcpy(out[0]->data, in[0]->data, out[0]->bytes);
		return 0;
	}
	if (2 * r > TENSOR_MAX_DIMS) {
		/* Fall back: element by element. */
		size_t esz = dtype_size(in[0]->dtype);
		int64_t total = eng_numel(out[0]);
		for (int64_t i = 0; i < total; i++) {
			int64_t rem = i, src = 0, m = 1;
			for (int d = r - 1; d >= 0; d--) {
				int64_t od = rem % out[0]->dims[d];
				rem /= out[0]->dims[d];
				src += (od % in[0]->dims[d]) * m;
				m *= in[0]->dims[d];
			}
			memcpy((uint8_t *)out[0]->data + i * esz, (const uint8_t *)in[0]->data + src * esz, esz);
		}
		return 0;
	}
	for (int d = r - 1; d >= 0; d--) {
		dims[2 * d] = in[0]->dims[d] ? out[0]->dims[d] / in[0]->dims[d] : 0;
		st[2 * d] = 0;
		dims[2 * d + 1] = in[0]->dims[d];
		st[2 * d + 1] = s;
		s *= in[0]->dims[d];
	}
	strided_copy(in[0]->data, 0, out[0]->data, dtype_size(in[0]->dtype), 2 * r, dims, st, ctx->pool);
	return 0;
}

/* ---- Shape / Size ---- */

static int shape_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 1, 1, 1, err);
	if (rc)
		return rc;
	eng_set_out_dtype(g, n, 0, DT_INT64);
	return 0;
}

/* Shape's [start, end) range of dims. */
static void shape_range(const struct eg_node *n, int r, int64_t *s, int64_t *e)
{
	*s = eg_attr_int(n, "start", 0);
	*e = eg_attr_int(n, "end", r);
	if (*s < 0)
		*s += r;
	if (*e < 0)
		*e += r;
	*s = *s < 0 ? 0 : *s > r ? r : *s;
	*e = *e < 0 ? 0 : *e > r ? r : *e;
	if (*e < *s)
		*e = *s;
}

static int shape_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       size_t *scratch, char **err)
{
	int64_t s, e;
	shape_range(n, in[0]->ndims, &s, &e);
	out[0]->ndims = 1;
	out[0]->dims[0] = e - s;
	return 0;
}

static int shape_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	int64_t s, e;
	shape_range(n, in[0]->ndims, &s, &e);
	for (int64_t i = s; i < e; i++)
		((int64_t *)out[0]->data)[i - s] = in[0]->dims[i];
	return 0;
}

static int size_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	out[0]->ndims = 0;
	return 0;
}

static int size_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	*(int64_t *)out[0]->data = eng_numel(in[0]);
	return 0;
}

/* ---- Constant / ConstantOfShape ---- */

/* The tensor a Constant node holds, built into *t (caller frees with eg_tensor_free). */
static int constant_value(const struct eg_node *n, struct eng_tensor **t, char **err)
{
	if (n->n_attrs != 1)
		return eng_node_err(err, -EINVAL, n, "needs exactly one value attribute");
	const struct eg_attr *a = &n->attrs[0];
	if (!strcmp(a->name, "value") && a->type == EG_ATTR_TENSOR) {
		*t = eg_tensor_new(a->t->dtype, a->t->ndims, a->t->dims);
		memcpy((*t)->data, a->t->data, a->t->bytes);
	} else if (!strcmp(a->name, "value_float") && a->type == EG_ATTR_FLOAT) {
		*t = eg_tensor_new(DT_FP32, 0, NULL);
		*(float *)(*t)->data = a->f;
	} else if (!strcmp(a->name, "value_int") && a->type == EG_ATTR_INT) {
		*t = eg_tensor_new(DT_INT64, 0, NULL);
		*(int64_t *)(*t)->data = a->i;
	} else if (!strcmp(a->name, "value_floats") && a->type == EG_ATTR_FLOATS) {
		int64_t d = (int64_t)a->n;
		*t = eg_tensor_new(DT_FP32, 1, &d);
		memcpy((*t)->data, a->floats, a->n * sizeof(float));
	} else if (!strcmp(a->name, "value_ints") && a->type == EG_ATTR_INTS) {
		int64_t d = (int64_t)a->n;
		*t = eg_tensor_new(DT_INT64, 1, &d);
		memcpy((*t)->data, a->ints, a->n * sizeof(int64_t));
	} else {
		return eng_node_err(err, -EINVAL, n, "attribute '%s' has the wrong type", a->name);
	}
	return 0;
}

static int constant_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	if (n->n_in || n->n_out != 1 || n->out[0] < 0)
		return eng_node_err(err, -EINVAL, n, "takes no inputs and has one output");
	struct eng_tensor *t;
	int rc = constant_value(n, &t, err);
	if (rc)
		return rc;
	eng_set_out_dtype(g, n, 0, t->dtype);
	eg_tensor_free(t);
	return 0;
}

static int constant_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			  size_t *scratch, char **err)
{
	struct eng_tensor *t;
	int rc = constant_value(n, &t, err);
	if (rc)
		return rc;
	out[0]->ndims = t->ndims;
	memcpy(out[0]->dims, t->dims, sizeof(t->dims));
	eg_tensor_free(t);
	return 0;
}

static int constant_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			void *scratch, struct eng_ctx *ctx, char **err)
{
	struct eng_tensor *t;
	int rc = constant_value(n, &t, err);
	if (rc)
		return rc;
	memcpy(out[0]->data, t->data, out[0]->bytes);
	eg_tensor_free(t);
	return 0;
}

static int cos_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 1, 1, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, DTB(DT_INT64), err);
	if (rc)
		return rc;
	const struct eg_attr *a = eg_attr_find(n, "value");
	enum dtype t = DT_FP32;
	if (a) {
		if (a->type != EG_ATTR_TENSOR || eng_numel(a->t) != 1)
			return eng_node_err(err, -EINVAL, n, "value must be a one-element tensor");
		t = a->t->dtype;
	}
	eng_set_out_dtype(g, n, 0, t);
	return 0;
}

static int cos_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     size_t *scratch, char **err)
{
	int rc = need_data(n, in, 0, err);
	if (rc)
		return rc;
	int64_t k = eng_numel(in[0]);
	if (k > TENSOR_MAX_DIMS)
		return eng_node_err(err, -EINVAL, n, "shape has too many entries");
	out[0]->ndims = (int)k;
	for (int i = 0; i < k; i++) {
		out[0]->dims[i] = ((const int64_t *)in[0]->data)[i];
		if (out[0]->dims[i] < 0)
			return eng_node_err(err, -EINVAL, n, "negative dim");
	}
	return 0;
}

static int cos_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		   void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct eg_attr *a = eg_attr_find(n, "value");
	size_t esz = dtype_size(out[0]->dtype);
	int64_t total = eng_numel(out[0]);
	if (!a)
		return 0; /* float zeros: the buffer is cleared below */
	for (int64_t i = 0; i < total; i++)
		memcpy((uint8_t *)out[0]->data + i * esz, a->t->data, esz);
	return 0;
}

static int cos_run_zero(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			void *scratch, struct eng_ctx *ctx, char **err)
{
	if (!eg_attr_find(n, "value"))
		memset(out[0]->data, 0, out[0]->bytes);
	return cos_run(n, in, out, scratch, ctx, err);
}

/* ---- Range ---- */

static int range_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 3, 3, 1, err);
	for (int i = 0; !rc && i < 3; i++)
		rc = eng_check_type(g, n, i, n->op->types, err);
	if (rc)
		return rc;
	if (eng_in_dtype(g, n, 1) != eng_in_dtype(g, n, 0) || eng_in_dtype(g, n, 2) != eng_in_dtype(g, n, 0))
		return eng_node_err(err, -EINVAL, n, "inputs have different types");
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 0));
	return 0;
}

/* Element 0 of a numeric scalar as double. */
static double scalar_f64(const struct eng_tensor *t)
{
	switch (t->dtype) {
	case DT_FP32: return *(const float *)t->data;
	case DT_FP64: return *(const double *)t->data;
	case DT_INT32: return *(const int32_t *)t->data;
	case DT_INT64: return (double)*(const int64_t *)t->data;
	default: return 0;
	}
}

static int range_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		       size_t *scratch, char **err)
{
	for (int i = 0; i < 3; i++) {
		int rc = need_data(n, in, i, err);
		if (rc)
			return rc;
		if (eng_numel(in[i]) != 1)
			return eng_node_err(err, -EINVAL, n, "inputs must be scalars");
	}
	double s = scalar_f64(in[0]), l = scalar_f64(in[1]), d = scalar_f64(in[2]);
	if (d == 0)
		return eng_node_err(err, -EINVAL, n, "delta is 0");
	double c = ceil((l - s) / d);
	if (!(c < 1e12))
		return eng_node_err(err, -EINVAL, n, "range too long");
	out[0]->ndims = 1;
	out[0]->dims[0] = c > 0 ? (int64_t)c : 0;
	return 0;
}

static int range_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	int64_t len = out[0]->dims[0];
	for (int64_t i = 0; i < len; i++) {
		switch (out[0]->dtype) {
		case DT_FP32: ((float *)out[0]->data)[i] = *(const float *)in[0]->data + i * *(const float *)in[2]->data; break;
		case DT_FP64: ((double *)out[0]->data)[i] = *(const double *)in[0]->data + i * *(const double *)in[2]->data; break;
		case DT_INT32: ((int32_t *)out[0]->data)[i] = (int32_t)(*(const int32_t *)in[0]->data + i * *(const int32_t *)in[2]->data); break;
		case DT_INT64: ((int64_t *)out[0]->data)[i] = *(const int64_t *)in[0]->data + i * *(const int64_t *)in[2]->data; break;
		default: break;
		}
	}
	return 0;
}

static int unary_data_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 1, 2, 1, err);
	return rc ? rc : int_input(g, n, 1, err);
}

static int tile_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = data_prepare(g, n, 2, 2, 1, err);
	return rc ? rc : int_input(g, n, 1, err);
}

#define L ENG_OPSET_LATEST
#define ANY DTM_ALL
#define INTS (DTB(DT_INT32) | DTB(DT_INT64))

const struct eng_op eng_ops_shape[] = {
	{ "Reshape", 5, L, ANY, "allowzero", ENG_OP_VIEW, reshape_prepare, reshape_infer, view_run, 1u << 1 },
	{ "Flatten", 1, L, ANY, "axis", ENG_OP_VIEW, flatten_prepare, flatten_infer, view_run, 0 },
	{ "Squeeze", 1, L, ANY, "axes", ENG_OP_VIEW, squeeze_prepare, squeeze_infer, view_run, 1u << 1 },
	{ "Unsqueeze", 1, L, ANY, "axes", ENG_OP_VIEW, unary_data_prepare, unsqueeze_infer, view_run, 1u << 1 },
	{ "Identity", 1, L, ANY, "", ENG_OP_VIEW, identity_prepare, dropout_infer, view_run, 0 },
	{ "Dropout", 7, L, DTM_FLOAT | DTB(DT_FP64), "ratio seed", ENG_OP_VIEW, dropout_prepare, dropout_infer, dropout_run, 0 },
	{ "Transpose", 1, L, ANY, "perm", 0, transpose_prepare, transpose_infer, transpose_run, 0 },
	{ "Concat", 4, L, ANY, "axis", 0, concat_prepare, concat_infer, concat_run, 0 },
	{ "Split", 2, L, ANY, "axis split num_outputs", 0, split_prepare, split_infer, split_run, 1u << 1 },
	{ "Slice", 1, L, ANY, "starts ends axes", 0, slice_prepare, slice_infer, slice_run, 0x1eu },
	{ "Gather", 1, L, ANY, "axis", 0, gather_prepare, gather_infer, gather_run, 0 },
	{ "Expand", 8, L, ANY, "", 0, expand_prepare, expand_infer, expand_run, 1u << 1 },
	{ "Tile", 6, L, ANY, "", 0, tile_prepare, tile_infer, tile_run, 1u << 1 },
	{ "Shape", 1, L, ANY, "start end", ENG_OP_SHAPE_ONLY, shape_prepare, shape_infer, shape_run, 0 },
	{ "Size", 1, L, ANY, "", ENG_OP_SHAPE_ONLY, shape_prepare, size_infer, size_run, 0 },
	{ "Constant", 1, L, ANY, "value value_float value_floats value_int value_ints", 0, constant_prepare,
	  constant_infer, constant_run, 0 },
	{ "ConstantOfShape", 9, L, DTB(DT_INT64), "value", 0, cos_prepare, cos_infer, cos_run_zero, 1u },
	{ "Range", 11, L, DTM_NUM, "", 0, range_prepare, range_infer, range_run, 7u },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
