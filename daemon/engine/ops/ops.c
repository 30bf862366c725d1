/* ops.c - the operator table and helpers shared by the op families. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "ops/ops.h"
#include "util.h"

static const struct eng_op *const families[] = {
	eng_ops_elementwise, eng_ops_gemm, eng_ops_conv, eng_ops_pool,
	eng_ops_norm, eng_ops_shape, eng_ops_reduce,
	eng_ops_convtranspose, eng_ops_pad, eng_ops_resize, eng_ops_topk,
};

const struct eng_op *eng_op_find(const char *op_type, int64_t opset)
{
	for (size_t f = 0; f < ACC_ARRAY_LEN(families); f++)
		for (const struct eng_op *o = families[f]; o->name; o++)
			if (!strcmp(o->name, op_type) && opset >= o->since && opset <= o->until)
				return o;
	return NULL;
}

bool eng_op_known(const char *op_type, int *since, int *until)
{
	bool found = false;
	for (size_t f = 0; f < ACC_ARRAY_LEN(families); f++)
		for (const struct eng_op *o = families[f]; o->name; o++)
			if (!strcmp(o->name, op_type)) {
				if (!found || o->since < *since)
					*since = o->since;
				if (!found || o->until > *until)
					*until = o->until;
				found = true;
			}
	return found;
}

enum dtype eng_in_dtype(const struct eg_graph *g, const struct eg_node *n, int i)
{
	return i < n->n_in && n->in[i] >= 0 ? g->values[n->in[i]].dtype : DT_INVALID;
}

void eng_set_out_dtype(struct eg_graph *g, struct eg_node *n, int i, enum dtype t)
{
	if (i < n->n_out && n->out[i] >= 0)
		g->values[n->out[i]].dtype = t;
}

int eng_node_err(char **err, int code, const struct eg_node *n, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	char *d = eg_node_desc(n);
	*err = xasprintf("%s: %s", d, msg);
	free(d);
	free(msg);
	return code;
}

int eng_check_arity(const struct eg_node *n, int lo, int hi, int max_out, char **err)
{
	int have = n->n_in;
	while (have > 0 && n->in[have - 1] < 0)
		have--;
	if (have < lo || n->n_in > hi)
		return eng_node_err(err, -EINVAL, n, "takes %d to %d inputs, has %d", lo, hi, n->n_in);
	for (int i = 0; i < lo; i++)
		if (n->in[i] < 0)
			return eng_node_err(err, -EINVAL, n, "input %d is required", i);
	if (n->n_out < 1 || n->out[0] < 0)
		return eng_node_err(err, -EINVAL, n, "output 0 is required");
	if (n->n_out > max_out)
		return eng_node_err(err, -EINVAL, n, "has %d outputs, at most %d", n->n_out, max_out);
	return 0;
}

int eng_check_type(const struct eg_graph *g, const struct eg_node *n, int i, uint32_t mask, char **err)
{
	enum dtype t = eng_in_dtype(g, n, i);
	if (t == DT_INVALID)
		return eng_node_err(err, -EINVAL, n, "input %d is missing", i);
	if (!(mask & DTB(t)))
		return eng_node_err(err, -ENOTSUP, n, "input %d has type %s, which is not supported", i,
				    dtype_name(t));
	return 0;
}

int eng_prepare_fused(struct eg_graph *g, struct eg_node *n, int lo, int hi, char **err)
{
	int rc = eng_check_arity(n, lo, hi, 1, err);
	for (int i = 0; !rc && i < n->n_in; i++)
		if (n->in[i] >= 0)
			rc = eng_check_type(g, n, i, n->op->types, err);
	struct kepi e;
	if (!rc)
		rc = kepi_from_node(n, &e, err);
	if (!rc)
		eng_set_out_dtype(g, n, 0, DT_FP32);
	return rc;
}

int eng_axis(int64_t axis, int rank)
{
	if (axis < -rank || axis >= (rank ? rank : 1))
		return -1;
	return (int)(axis < 0 ? axis + rank : axis);
}

int64_t eng_numel(const struct eng_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->ndims; i++)
		n *= t->dims[i];
	return n;
}

size_t eng_tensor_bytes(const struct eng_tensor *t)
{
	return (size_t)eng_numel(t) * dtype_size(t->dtype);
}

int64_t eng_get_int(const struct eng_tensor *t, int64_t i)
{
	switch (t->dtype) {
	case DT_INT32:
		return ((const int32_t *)t->data)[i];
	case DT_INT64:
		return ((const int64_t *)t->data)[i];
	case DT_UINT8:
	case DT_BOOL:
		return ((const uint8_t *)t->data)[i];
	default:
		return 0;
	}
}

int eng_broadcast_shape(struct eng_tensor *const *ts, int k, struct eng_tensor *out)
{
	int nd = 0;
	for (int i = 0; i < k; i++)
		if (ts[i] && ts[i]->ndims > nd)
			nd = ts[i]->ndims;
	out->ndims = nd;
	for (int d = 0; d < nd; d++) {
		int64_t dim = 1;
		for (int i = 0; i < k; i++) {
			if (!ts[i])
				continue;
			int id = d - (nd - ts[i]->ndims);
			if (id < 0)
				continue;
			int64_t x = ts[i]->dims[id];
			if (x == dim || x == 1)
				continue;
			if (dim != 1)
				return -EINVAL;
			dim = x;
		}
		out->dims[d] = dim;
	}
	return 0;
}
