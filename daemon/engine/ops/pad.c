/* pad.c - Pad: constant, reflect, edge and wrap modes, any element type; pads from the attribute
 * (opsets 2-10) or input 1 (11+), constant_value input 2, axes input 3 (18+). Negative pads crop. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "ops/ops.h"
#include "threadpool.h"
#include "util.h"

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

struct pad_params {
	enum pad_mode mode;
};

static int pad_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool old = n->opset < 11;
	int rc = eng_check_arity(n, old ? 1 : 2, old ? 1 : (n->opset >= 18 ? 4 : 3), 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (!rc && !old)
		rc = eng_check_type(g, n, 1, DTB(DT_INT64), err);
	if (!rc && n->n_in > 2 && n->in[2] >= 0 && eng_in_dtype(g, n, 2) != eng_in_dtype(g, n, 0))
		rc = eng_node_err(err, -EINVAL, n, "constant_value type differs from the data's");
	if (!rc && n->n_in > 3 && n->in[3] >= 0)
		rc = eng_check_type(g, n, 3, DTB(DT_INT64) | DTB(DT_INT32), err);
	if (rc)
		return rc;
	if (old && !eg_attr_find(n, "pads"))
		return eng_node_err(err, -EINVAL, n, "attribute 'pads' is required");
	struct pad_params *p = xcalloc(1, sizeof(*p));
	n->params = p;
	const char *m = eg_attr_str(n, "mode", "constant");
	if (!strcmp(m, "constant"))
		p->mode = PAD_CONSTANT;
	else if (!strcmp(m, "reflect"))
		p->mode = PAD_REFLECT;
	else if (!strcmp(m, "edge"))
		p->mode = PAD_EDGE;
	else if (!strcmp(m, "wrap") && n->opset >= 19)
		p->mode = PAD_WRAP;
	else
		return eng_node_err(err, -EINVAL, n, "mode '%s' is unknown", m);
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 0));
	return 0;
}

/* Begin and end pads per dim of x (pb[d], pe[d]), from the attribute or inputs 1 and 3. */
static int pad_amounts(const struct eg_node *n, struct eng_tensor *const *in, int64_t *pb, int64_t *pe, char **err)
{
	int r = in[0]->ndims;
	memset(pb, 0, sizeof(int64_t) * TENSOR_MAX_DIMS);
	memset(pe, 0, sizeof(int64_t) * TENSOR_MAX_DIMS);
	if (n->opset < 11) {
		size_t cnt;
		const int64_t *pd = eg_attr_ints(n, "pads", &cnt);
		if ((int)cnt != 2 * r)
			return eng_node_err(err, -EINVAL, n, "pads has %zu entries for rank %d", cnt, r);
		for (int d = 0; d < r; d++) {
			pb[d] = pd[d];
			pe[d] = pd[d + r];
		}
		return 0;
	}
	if (!in[1]->data)
		return eng_node_err(err, -ENOTSUP, n, "pads must be known before running");
	int axes[TENSOR_MAX_DIMS], na = r;
	for (int d = 0; d < r; d++)
		axes[d] = d;
	if (n->n_in > 3 && in[3]) {
		if (!in[3]->data)
			return eng_node_err(err, -ENOTSUP, n, "axes must be known before running");
		int64_t c = eng_numel(in[3]);
		if (c > r)
			return eng_node_err(err, -EINVAL, n, "too many axes");
		na = (int)c;
		for (int i = 0; i < na; i++) {
			axes[i] = eng_axis(eng_get_int(in[3], i), r);
			if (axes[i] < 0)
				return eng_node_err(err, -EINVAL, n, "axis out of range");
			for (int j = 0; j < i; j++)
				if (axes[j] == axes[i])
					return eng_node_err(err, -EINVAL, n, "repeated axis");
		}
	}
	if (eng_numel(in[1]) != 2 * na)
		return eng_node_err(err, -EINVAL, n, "pads has %lld entries for %d axes", (long long)eng_numel(in[1]), na);
	for (int i = 0; i < na; i++) {
		pb[axes[i]] = eng_get_int(in[1], i);
		pe[axes[i]] = eng_get_int(in[1], i + na);
	}
	return 0;
}

static int pad_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     size_t *scratch, char **err)
{
	int64_t pb[TENSOR_MAX_DIMS], pe[TENSOR_MAX_DIMS];
	int rc = pad_amounts(n, in, pb, pe, err);
	if (rc)
		return rc;
	const struct pad_params *p = n->params;
	out[0]->ndims = in[0]->ndims;
	for (int d = 0; d < in[0]->ndims; d++) {
		int64_t o = in[0]->dims[d] + pb[d] + pe[d];
		if (o < 0)
			return eng_node_err(err, -EINVAL, n, "pads make dim %d negative", d);
		if (p->mode != PAD_CONSTANT && o > 0 && in[0]->dims[d] == 0)
			return eng_node_err(err, -EINVAL, n, "cannot pad an empty dim in mode %d", (int)p->mode);
		out[0]->dims[d] = o;
	}
	return 0;
}

/* The input index for output index o of a dim of length len padded by pb before, or -1 for the
 * constant value. */
static int64_t pad_src(enum pad_mode m, int64_t o, int64_t pb, int64_t len)
{
	int64_t i = o - pb;
	if (i >= 0 && i < len)
		return i;
	switch (m) {
	case PAD_EDGE:
		return i < 0 ? 0 : len - 1;
	case PAD_WRAP:
		i %= len;
		return i < 0 ? i + len : i;
	case PAD_REFLECT: {
		if (len == 1)
			return 0;
		int64_t per = 2 * (len - 1);
		i %= per;
		if (i < 0)
			i += per;
		return i < len ? i : per - i;
	}
	default:
		return -1;
	}
}

struct pad_job {
	enum pad_mode mode;
	int r;
	size_t esz;
	const int64_t *idims, *odims, *pb;
	const uint8_t *x, *cval; /* cval: one element */
	uint8_t *y;
	int64_t ilast, olast; /* the last dim's lengths */
};

/* Fill n elements of esz bytes at dst with the element at v. */
static void fill(uint8_t *dst, const uint8_t *v, int64_t n, size_t esz)
{
	if (esz == 1) {
		memset(dst, v[0], n);
		return;
	}
	for (int64_t i = 0; i < n; i++)
		memcpy(dst + i * esz, v, esz);
}

/* Output rows [r0, r1) (a row is one position of all dims but the last). */
static void pad_part(void *arg, int64_t r0, int64_t r1)
{
	const struct pad_job *j = arg;
	int r = j->r;
	size_t esz = j->esz;
	int64_t pb = j->pb[r - 1], il = j->ilast, ol = j->olast;
	for (int64_t row = r0; row < r1; row++) {
		uint8_t *dst = j->y + row * ol * esz;
		int64_t rem = row, src = 0, mul = 1;
		bool konst = false;
		for (int d = r - 2; d >= 0; d--) {
			int64_t o = rem % j->odims[d];
			rem /= j->odims[d];
			int64_t i = pad_src(j->mode, o, j->pb[d], j->idims[d]);
			if (i < 0)
				konst = true;
			src += i * mul;
			mul *= j->idims[d];
		}
		if (konst) {
			fill(dst, j->cval, ol, esz);
			continue;
		}
		const uint8_t *s = j->x + src * il * esz;
		/* The part of the row that copies the input straight. */
		int64_t a = pb < 0 ? 0 : pb, b = pb + il < ol ? pb + il : ol;
		if (a < b)
			memcpy(dst + a * esz, s + (a - pb) * esz, (b - a) * esz);
		else
			a = b = (a < ol ? a : ol);
		for (int64_t o = 0; o < a; o++) {
			int64_t i = pad_src(j->mode, o, pb, il);
			if (i < 0)
				memcpy(dst + o * esz, j->cval, esz);
			else
				memcpy(dst + o * esz, s + i * esz, esz);
		}
		for (int64_t o = b; o < ol; o++) {
			int64_t i = pad_src(j->mode, o, pb, il);
			if (i < 0)
				memcpy(dst + o * esz, j->cval, esz);
			else
				memcpy(dst + o * esz, s + i * esz, esz);
		}
	}
}

static int pad_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		   void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct pad_params *p = n->params;
	int64_t pb[TENSOR_MAX_DIMS], pe[TENSOR_MAX_DIMS];
	int rc = pad_amounts(n, in, pb, pe, err);
	if (rc)
		return rc;
	size_t esz = dtype_size(in[0]->dtype);
	uint8_t cval[16] = { 0 };
	if (n->opset < 11) {
		float v = eg_attr_float(n, "value", 0.0f);
		if (in[0]->dtype == DT_FP32)
			memcpy(cval, &v, sizeof(v));
		else if (in[0]->dtype == DT_FP64) {
			double dv = v;
			memcpy(cval, &dv, sizeof(dv));
		}
	} else if (n->n_in > 2 && in[2] && eng_numel(in[2]) >= 1 && esz <= sizeof(cval)) {
		memcpy(cval, in[2]->data, esz);
	}
	int r = in[0]->ndims;
	if (!out[0]->bytes)
		return 0;
	if (r == 0) {
		memcpy(out[0]->data, in[0]->data, esz);
		return 0;
	}
	struct pad_job j = { p->mode, r, esz, in[0]->dims, out[0]->dims, pb, in[0]->data, cval, out[0]->data,
			     in[0]->dims[r - 1], out[0]->dims[r - 1] };
	int64_t rows = eng_numel(out[0]) / j.olast;
	tpool_for(ctx->pool, rows, 1 + 16384 / (j.olast + 1), pad_part, &j);
	return 0;
}

const struct eng_op eng_ops_pad[] = {
	{ "Pad", 2, 10, DTM_ALL, "mode pads value", 0, pad_prepare, pad_infer, pad_run, 0 },
	{ "Pad", 11, ENG_OPSET_LATEST, DTM_ALL, "mode", 0, pad_prepare, pad_infer, pad_run, (1u << 1) | (1u << 3) },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
