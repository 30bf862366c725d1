/* convtranspose.c - ConvTranspose (1-D to N-D, groups, dilations, output_padding, output_shape,
 * auto_pad) as one sgemm per image and group (W^T x X into a column buffer) followed by col2im. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/ops.h"
#include "threadpool.h"

/* Geometry of one ConvTranspose for concrete shapes. */
struct ct_geom {
	int k; /* spatial rank */
	int64_t G, C, Cg, Mg; /* groups, input channels, per group in and out */
	int64_t in[TENSOR_MAX_DIMS], kern[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS], dil[TENSOR_MAX_DIMS];
	int64_t pb[TENSOR_MAX_DIMS], out[TENSOR_MAX_DIMS];
	int64_t isz, osz, ksz;
};

static int ct_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 2, 3, 1, err);
	for (int i = 0; !rc && i < n->n_in; i++)
		if (n->in[i] >= 0)
			rc = eng_check_type(g, n, i, n->op->types, err);
	if (rc)
		return rc;
	const char *ap = eg_attr_str(n, "auto_pad", "NOTSET");
	if (strcmp(ap, "NOTSET") && strcmp(ap, "VALID") && strcmp(ap, "SAME_UPPER") && strcmp(ap, "SAME_LOWER"))
		return eng_node_err(err, -EINVAL, n, "auto_pad '%s' is unknown", ap);
	if (eg_attr_int(n, "group", 1) < 1)
		return eng_node_err(err, -EINVAL, n, "group must be >= 1");
	eng_set_out_dtype(g, n, 0, DT_FP32);
	return 0;
}

/* Floor division (Python's //), for the SAME_* split of a possibly negative total padding. */
static int64_t floordiv2(int64_t a)
{
	return a >= 0 ? a / 2 : -((-a + 1) / 2);
}

/* Fill *c from X's and W's shapes and the attributes. */
static int ct_geometry(const struct eg_node *n, struct eng_tensor *const *in, struct ct_geom *c, char **err)
{
	const struct eng_tensor *X = in[0], *W = in[1];
	int k = X->ndims - 2;
	if (k < 1 || W->ndims != X->ndims)
		return eng_node_err(err, -EINVAL, n, "X and W must have the same rank >= 3");
	c->k = k;
	c->G = eg_attr_int(n, "group", 1);
	c->C = X->dims[1];
	if (c->G < 1 || c->C % c->G || W->dims[0] != c->C)
		return eng_node_err(err, -EINVAL, n, "W has %lld input channels, X %lld (group %lld)",
				    (long long)W->dims[0], (long long)c->C, (long long)c->G);
	c->Cg = c->C / c->G;
	c->Mg = W->dims[1];
	size_t cnt[6];
	const int64_t *ks = eg_attr_ints(n, "kernel_shape", &cnt[0]), *st = eg_attr_ints(n, "strides", &cnt[1]);
	const int64_t *dl = eg_attr_ints(n, "dilations", &cnt[2]), *pd = eg_attr_ints(n, "pads", &cnt[3]);
	const int64_t *op = eg_attr_ints(n, "output_padding", &cnt[4]), *os = eg_attr_ints(n, "output_shape", &cnt[5]);
	if ((ks && (int)cnt[0] != k) || (st && (int)cnt[1] != k) || (dl && (int)cnt[2] != k) ||
	    (pd && (int)cnt[3] != 2 * k) || (op && (int)cnt[4] != k) || (os && (int)cnt[5] != k && (int)cnt[5] != k + 2))
		return eng_node_err(err, -EINVAL, n, "kernel_shape/strides/dilations/pads/output_padding/"
				    "output_shape do not match %d spatial dims", k);
	if (os && (int)cnt[5] == k + 2)
		os += 2; /* full shape given: keep the spatial part */
	const char *ap = eg_attr_str(n, "auto_pad", "NOTSET");
	bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
	c->isz = c->osz = c->ksz = 1;
	for (int i = 0; i < k; i++) {
		c->in[i] = X->dims[2 + i];
		c->kern[i] = W->dims[2 + i];
		if (ks && ks[i] != c->kern[i])
			return eng_node_err(err, -EINVAL, n, "kernel_shape differs from W");
		c->stride[i] = st ? st[i] : 1;
		c->dil[i] = dl ? dl[i] : 1;
		int64_t opad = op ? op[i] : 0;
		if (c->stride[i] < 1 || c->dil[i] < 1 || opad < 0 || c->kern[i] < 1)
			return eng_node_err(err, -EINVAL, n, "bad stride, dilation, kernel or output_padding");
		int64_t ek = (c->kern[i] - 1) * c->dil[i] + 1;
		int64_t full = c->stride[i] * (c->in[i] - 1) + opad + ek;
		if (same && !pd) {
			int64_t o = os ? os[i] : c->in[i] * c->stride[i];
			int64_t tot = full - o;
			c->pb[i] = !strcmp(ap, "SAME_UPPER") ? floordiv2(tot) : tot - floordiv2(tot);
			c->out[i] = o;
		} else {
			int64_t pb = pd && strcmp(ap, "VALID") ? pd[i] : 0, pe = pd && strcmp(ap, "VALID") ? pd[i + k] : 0;
			if (pb < 0 || pe < 0)
				return eng_node_err(err, -EINVAL, n, "negative pads");
			c->pb[i] = pb;
			c->out[i] = os ? os[i] : full - pb - pe;
		}
		if (c->out[i] < 0)
			return eng_node_err(err, -EINVAL, n, "output size %lld is negative", (long long)c->out[i]);
		c->isz *= c->in[i];
		c->osz *= c->out[i];
		c->ksz *= c->kern[i];
	}
	if (n->n_in > 2 && in[2] && (in[2]->ndims != 1 || in[2]->dims[0] != c->Mg * c->G))
		return eng_node_err(err, -EINVAL, n, "B must have %lld entries", (long long)(c->Mg * c->G));
	return 0;
}

static int ct_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    size_t *scratch, char **err)
{
	struct ct_geom c;
	int rc = ct_geometry(n, in, &c, err);
	if (rc)
		return rc;
	out[0]->ndims = in[0]->ndims;
	out[0]->dims[0] = in[0]->dims[0];
	out[0]->dims[1] = c.Mg * c.G;
	for (int i = 0; i < c.k; i++)
		out[0]->dims[2 + i] = c.out[i];
	*scratch = (size_t)(c.Mg * c.ksz * c.isz) * sizeof(float);
	return 0;
}

struct col2im_job {
	const struct ct_geom *c;
	const float *col; /* (Mg * ksz) x isz */
	float *y; /* Mg x osz */
	const float *bias; /* Mg entries or NULL */
};

/* Output channels [m0, m1): start from the bias, add every (kernel offset, input position). */
static void col2im_part(void *arg, int64_t m0, int64_t m1)
{
	const struct col2im_job *j = arg;
	const struct ct_geom *c = j->c;
	int k = c->k;
	int64_t inl = c->in[k - 1], outl = c->out[k - 1], sl = c->stride[k - 1];
	for (int64_t m = m0; m < m1; m++) {
		float *y = j->y + m * c->osz;
		float b = j->bias ? j->bias[m] : 0.0f;
		for (int64_t i = 0; i < c->osz; i++)
			y[i] = b;
		for (int64_t kk = 0; kk < c->ksz; kk++) {
			int64_t koff[TENSOR_MAX_DIMS], rem = kk;
			for (int d = k - 1; d >= 0; d--) {
				koff[d] = (rem % c->kern[d]) * c->dil[d] - c->pb[d];
				rem /= c->kern[d];
			}
			const float *col = j->col + (m * c->ksz + kk) * c->isz;
			/* The input positions of the last dim whose output lands inside [0, outl). */
			int64_t q0 = 0, q1 = inl, ol = koff[k - 1];
			while (q0 < inl && q0 * sl + ol < 0)
				q0++;
			while (q1 > q0 && (q1 - 1) * sl + ol >= outl)
				q1--;
			if (q0 >= q1)
				continue;
			int64_t idx[TENSOR_MAX_DIMS] = { 0 }, outer = c->isz / inl;
			for (int64_t o = 0; o < outer; o++) {
				bool ok = true;
				int64_t base = 0;
				for (int d = 0; d < k - 1; d++) {
					int64_t p = idx[d] * c->stride[d] + koff[d];
					if (p < 0 || p >= c->out[d])
						ok = false;
					base = base * c->out[d] + p;
				}
				if (ok) {
					const float *src = col + o * inl;
					float *dst = y + base * outl + ol;
					if (sl == 1)
						for (int64_t q = q0; q < q1; q++)
							dst[q] += src[q];
					else
						for (int64_t q = q0; q < q1; q++)
							dst[q * sl] += src[q];
				}
				for (int d = k - 2; d >= 0; d--) {
					if (++idx[d] < c->in[d])
						break;
					idx[d] = 0;
				}
			}
		}
	}
}

static int ct_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		  void *scratch, struct eng_ctx *ctx, char **err)
{
	struct ct_geom c;
	int rc = ct_geometry(n, in, &c, err);
	if (rc)
		return rc;
	const float *x = in[0]->data, *w = in[1]->data;
	const float *B = n->n_in > 2 && in[2] ? in[2]->data : NULL;
	float *y = out[0]->data, *col = scratch;
	int64_t N = in[0]->dims[0], M = c.Mg * c.G, rows = c.Mg * c.ksz;
	for (int64_t b = 0; b < N; b++)
		for (int64_t g = 0; g < c.G; g++) {
			const float *xg = x + (b * c.C + g * c.Cg) * c.isz;
			float *yg = y + (b * M + g * c.Mg) * c.osz;
			if (c.isz && rows)
				kgemm(true, false, rows, c.isz, c.Cg, 1.0f, w + g * c.Cg * rows, rows, xg, c.isz, 0.0f,
				      col, c.isz, ctx->pool);
			struct col2im_job j = { &c, col, yg, B ? B + g * c.Mg : NULL };
			tpool_for(ctx->pool, c.Mg, 1 + 65536 / (c.osz + c.ksz * c.isz + 1), col2im_part, &j);
		}
	return 0;
}

const struct eng_op eng_ops_convtranspose[] = {
	{ "ConvTranspose", 1, ENG_OPSET_LATEST, DTM_FLOAT,
	  "auto_pad dilations group kernel_shape output_padding output_shape pads strides", 0, ct_prepare, ct_infer,
	  ct_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
