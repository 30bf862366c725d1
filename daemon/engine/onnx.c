/* onnx.c - ModelProto and TensorProto bytes to the engine's graph and tensors (protobuf-c). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "onnx.pb-c.h"
#include "util.h"

/* A name -> value index map (open addressing) used while building a graph. */
struct name_map {
	int *slots; /* value index + 1; 0 = empty */
	size_t cap;
	struct eg_graph *g;
};

/* FNV-1a. */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* Insert value index v (its name is g->values[v].name). */
static void map_put(struct name_map *m, int v);

/* Double the table. */
static void map_grow(struct name_map *m)
{
	int *old = m->slots;
	size_t oldcap = m->cap;
	m->cap = m->cap ? m->cap * 2 : 64;
	m->slots = xcalloc(m->cap, sizeof(int));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			map_put(m, old[i] - 1);
	free(old);
}

static void map_put(struct name_map *m, int v)
{
	if ((size_t)(m->g->n_values + 1) * 2 > m->cap)
		map_grow(m);
	size_t i = hash_str(m->g->values[v].name) & (m->cap - 1);
	while (m->slots[i])
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = v + 1;
}

/* The index of the value called name, or -1. */
static int map_get(const struct name_map *m, const char *name)
{
	if (!m->cap)
		return -1;
	size_t i = hash_str(name) & (m->cap - 1);
	while (m->slots[i]) {
		int v = m->slots[i] - 1;
		if (!strcmp(m->g->values[v].name, name))
			return v;
		i = (i + 1) & (m->cap - 1);
	}
	return -1;
}

/* The value called name, created if new. */
static int map_value(struct name_map *m, const char *name)
{
	int v = map_get(m, name);
	if (v < 0) {
		v = eg_value_add(m->g, name);
		map_put(m, v);
	}
	return v;
}

/* Convert a TensorProto into a fresh tensor; steals raw_data's buffer to keep weights once. */
static int tensor_from_proto(Onnx__TensorProto *tp, struct eng_tensor **out, char **err)
{
	const char *nm = tp->name ? tp->name : "";
	if (tp->segment)
		return acc_err(err, -ENOTSUP, "tensor '%s': segmented tensors are not supported", nm);
	if ((tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
	    tp->n_external_data)
		return acc_err(err, -ENOTSUP,
			       "tensor '%s' keeps its data in an external file: external data is not supported "
			       "(save the model with its weights inside the .onnx file)", nm);
	enum dtype dt = dtype_from_onnx(tp->data_type);
	if (dt == DT_INVALID || dt == DT_BYTES)
		return acc_err(err, -ENOTSUP, "tensor '%s': ONNX data type %d is not supported", nm,
			       (int)tp->data_type);
	if (tp->n_dims > TENSOR_MAX_DIMS)
		return acc_err(err, -ENOTSUP, "tensor '%s' has %zu dims (at most %d)", nm, tp->n_dims,
			       TENSOR_MAX_DIMS);
	for (size_t i = 0; i < tp->n_dims; i++)
		if (tp->dims[i] < 0)
			return acc_err(err, -EINVAL, "tensor '%s' has a negative dim", nm);
	int64_t numel = shape_numel(tp->dims, (int)tp->n_dims);
	size_t esz = dtype_size(dt);
	if (numel < 0 || (uint64_t)numel > SIZE_MAX / 2 / esz)
		return acc_err(err, -EINVAL, "tensor '%s' is too large", nm);
	size_t bytes = (size_t)numel * esz;

	struct eng_tensor *t = xcalloc(1, sizeof(*t));
	t->dtype = dt;
	t->ndims = (int)tp->n_dims;
	for (size_t i = 0; i < tp->n_dims; i++)
		t->dims[i] = tp->dims[i];
	t->bytes = bytes;
	if (tp->has_raw_data) {
		if (tp->raw_data.len != bytes) {
			free(t);
			return acc_err(err, -EINVAL, "tensor '%s' has %zu bytes of data, its shape needs %zu", nm,
				       tp->raw_data.len, bytes);
		}
		if (bytes && ((uintptr_t)tp->raw_data.data & 15) == 0) {
			/* protobuf-c allocates each bytes field with malloc: take it over. */
			t->data = tp->raw_data.data;
			tp->raw_data.data = NULL;
			tp->raw_data.len = 0;
			tp->has_raw_data = 0;
		} else {
			t->data = xaligned_alloc(64, bytes ? (bytes + 63) & ~(size_t)63 : 64);
			if (bytes)
				memcpy(t->data, tp->raw_data.data, bytes);
		}
		*out = t;
		return 0;
	}
	t->data = xaligned_alloc(64, bytes ? (bytes + 63) & ~(size_t)63 : 64);
	size_t have;
	switch (dt) {
	case DT_FP32:
		have = tp->n_float_data;
		break;
	case DT_FP64:
		have = tp->n_double_data;
		break;
	case DT_INT64:
		have = tp->n_int64_data;
		break;
	case DT_UINT32:
	case DT_UINT64:
		have = tp->n_uint64_data;
		break;
	default:
		have = tp->n_int32_data;
		break;
	}
	if (have != (size_t)numel) {
		eg_tensor_free(t);
		return acc_err(err, -EINVAL, "tensor '%s' has %zu elements, its shape needs %lld", nm, have,
			       (long long)numel);
	}
	for (int64_t i = 0; i < numel; i++) {
		switch (dt) {
		case DT_FP32:
			((float *)t->data)[i] = tp->float_data[i];
			break;
		case DT_FP64:
			((double *)t->data)[i] = tp->double_data[i];
			break;
		case DT_INT64:
			((int64_t *)t->data)[i] = tp->int64_data[i];
			break;
		case DT_UINT32:
			((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i];
			break;
		case DT_UINT64:
			((uint64_t *)t->data)[i] = tp->uint64_data[i];
			break;
		case DT_INT32:
			((int32_t *)t->data)[i] = tp->int32_data[i];
			break;
		case DT_INT16:
		case DT_UINT16:
		case DT_FP16:
		case DT_BF16:
			((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
			break;
		case DT_BOOL:
			((uint8_t *)t->data)[i] = tp->int32_data[i] != 0;
			break;
		default: /* INT8, UINT8 */
			((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i];
			break;
		}
	}
	*out = t;
	return 0;
}

int onnx_parse_tensor(const void *buf, size_t len, struct eng_tensor **out, char **name, char **err)
{
	Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
	if (!tp)
		return acc_err(err, -EINVAL, "not a valid ONNX TensorProto (%zu bytes)", len);
	int rc = tensor_from_proto(tp, out, err);
	if (!rc && name)
		*name = xstrdup(tp->name ? tp->name : "");
	onnx__tensor_proto__free_unpacked(tp, NULL);
	return rc;
}

/* Copy a node's attribute into the IR. */
static int attr_from_proto(Onnx__AttributeProto *ap, struct eg_attr *a, char **err)
{
	a->name = xstrdup(ap->name ? ap->name : "");
	if (a->name[0] == '_') /* reserved for the engine's own rewrites (fused activations...) */
		return acc_err(err, -ENOTSUP, "attribute '%s': names starting with '_' are internal", a->name);
	int type = ap->has_type ? (int)ap->type : 0;
	if (!type) { /* very old models leave the type out: infer it from the field set */
		if (ap->has_f)
			type = EG_ATTR_FLOAT;
		else if (ap->has_i)
			type = EG_ATTR_INT;
		else if (ap->has_s)
			type = EG_ATTR_STRING;
		else if (ap->t)
			type = EG_ATTR_TENSOR;
		else if (ap->n_floats)
			type = EG_ATTR_FLOATS;
		else if (ap->n_ints)
			type = EG_ATTR_INTS;
		else if (ap->n_strings)
			type = EG_ATTR_STRINGS;
	}
	a->type = type;
	switch (type) {
	case EG_ATTR_FLOAT:
		a->f = ap->f;
		return 0;
	case EG_ATTR_INT:
		a->i = ap->i;
		return 0;
	case EG_ATTR_STRING:
		a->s = xstrndup(ap->s.data ? (const char *)ap->s.data : "", ap->s.len);
		return 0;
	case EG_ATTR_TENSOR:
		if (!ap->t)
			return acc_err(err, -EINVAL, "attribute '%s' has no tensor", a->name);
		return tensor_from_proto(ap->t, &a->t, err);
	case EG_ATTR_FLOATS:
		a->n = ap->n_floats;
		a->floats = xmalloc((a->n + 1) * sizeof(float));
		if (a->n)
			memcpy(a->floats, ap->floats, a->n * sizeof(float));
		return 0;
	case EG_ATTR_INTS:
		a->n = ap->n_ints;
		a->ints = xmalloc((a->n + 1) * sizeof(int64_t));
		if (a->n)
			memcpy(a->ints, ap->ints, a->n * sizeof(int64_t));
		return 0;
	case EG_ATTR_STRINGS:
		a->n = ap->n_strings;
		a->strings = xcalloc(a->n + 1, sizeof(char *));
		for (size_t i = 0; i < a->n; i++)
			a->strings[i] = xstrndup(ap->strings[i].data ? (const char *)ap->strings[i].data : "",
						 ap->strings[i].len);
		return 0;
	default:
		return acc_err(err, -ENOTSUP, "attribute '%s' has type %d (graphs, sparse tensors and "
			       "type protos are not supported)", a->name, type);
	}
}

/* Read a ValueInfo's tensor type and shape into value v. */
static int value_info(struct eg_graph *g, int v, const Onnx__ValueInfoProto *vi, char **err)
{
	struct eg_value *val = &g->values[v];
	const Onnx__TypeProto *tp = vi->type;
	if (!tp)
		return 0;
	if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
		return acc_err(err, -ENOTSUP, "'%s' is not a tensor (sequences, maps, optionals and sparse "
			       "tensors are not supported)", val->name);
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	if (tt->has_elem_type) {
		val->dtype = dtype_from_onnx(tt->elem_type);
		if (val->dtype == DT_INVALID || val->dtype == DT_BYTES)
			return acc_err(err, -ENOTSUP, "'%s' has ONNX data type %d, which is not supported",
				       val->name, (int)tt->elem_type);
	}
	if (tt->shape) {
		if (tt->shape->n_dim > TENSOR_MAX_DIMS)
			return acc_err(err, -ENOTSUP, "'%s' has %zu dims (at most %d)", val->name,
				       tt->shape->n_dim, TENSOR_MAX_DIMS);
		val->ndims = (int)tt->shape->n_dim;
		for (size_t i = 0; i < tt->shape->n_dim; i++) {
			const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
			val->dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
						       d->dim_value >= 0 ?
					       d->dim_value :
					       -1;
		}
	}
	return 0;
}

/* Build the graph from an unpacked model. */
static int build(Onnx__ModelProto *mp, struct eg_graph *g, char **err)
{
	Onnx__GraphProto *gp = mp->graph;
	if (!gp)
		return acc_err(err, -EINVAL, "the model has no graph");
	g->producer = xstrdup(mp->producer_name ? mp->producer_name : "");
	g->opset = 0;
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
		if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx"))
			g->opset = o->version;
	}
	if (!mp->n_opset_import)
		g->opset = 1;
	if (gp->n_sparse_initializer)
		return acc_err(err, -ENOTSUP, "sparse initializers are not supported");

	struct name_map map = { .g = g };
	int rc = 0;
	for (size_t i = 0; i < gp->n_initializer && !rc; i++) {
		Onnx__TensorProto *tp = gp->initializer[i];
		int v = map_value(&map, tp->name ? tp->name : "");
		if (g->values[v].konst) {
			rc = acc_err(err, -EINVAL, "initializer '%s' given twice", g->values[v].name);
			break;
		}
		rc = tensor_from_proto(tp, &g->values[v].konst, err);
		if (!rc) {
			struct eg_value *val = &g->values[v];
			val->dtype = val->konst->dtype;
			val->ndims = val->konst->ndims;
			memcpy(val->dims, val->konst->dims, sizeof(val->dims));
		}
	}
	g->inputs = xcalloc(gp->n_input + 1, sizeof(int));
	for (size_t i = 0; i < gp->n_input && !rc; i++) {
		const char *name = gp->input[i]->name ? gp->input[i]->name : "";
		int v = map_value(&map, name);
		if (g->values[v].konst)
			continue; /* an initializer listed as an input (IR < 4): a constant here */
		if (g->values[v].is_input) {
			rc = acc_err(err, -EINVAL, "graph input '%s' given twice", name);
			break;
		}
		g->values[v].is_input = true;
		g->inputs[g->n_inputs++] = v;
		rc = value_info(g, v, gp->input[i], err);
		if (!rc && g->values[v].dtype == DT_INVALID)
			rc = acc_err(err, -EINVAL, "graph input '%s' has no tensor type", name);
		if (!rc && g->values[v].ndims < 0)
			rc = acc_err(err, -EINVAL, "graph input '%s' has no shape", name);
	}
	g->outputs = xcalloc(gp->n_output + 1, sizeof(int));
	for (size_t i = 0; i < gp->n_output && !rc; i++) {
		int v = map_value(&map, gp->output[i]->name ? gp->output[i]->name : "");
		g->values[v].is_output = true;
		g->outputs[g->n_outputs++] = v;
		if (!g->values[v].konst && !g->values[v].is_input)
			rc = value_info(g, v, gp->output[i], err);
	}
	for (size_t i = 0; i < gp->n_node && !rc; i++) {
		const Onnx__NodeProto *np = gp->node[i];
		int k = eg_node_add(g);
		struct eg_node *n = &g->nodes[k];
		n->name = xstrdup(np->name ? np->name : "");
		n->op_type = xstrdup(np->op_type ? np->op_type : "");
		n->domain = xstrdup(np->domain ? np->domain : "");
		n->opset = g->opset;
		if (*n->domain && strcmp(n->domain, "ai.onnx")) {
			n->opset = 0;
			for (size_t j = 0; j < mp->n_opset_import; j++)
				if (mp->opset_import[j]->domain && !strcmp(mp->opset_import[j]->domain, n->domain))
					n->opset = mp->opset_import[j]->version;
		}
		n->n_in = (int)np->n_input;
		n->n_out = (int)np->n_output;
		n->in = xcalloc(n->n_in + 1, sizeof(int));
		n->out = xcalloc(n->n_out + 1, sizeof(int));
		for (int j = 0; j < n->n_in; j++)
			n->in[j] = np->input[j] && *np->input[j] ? map_value(&map, np->input[j]) : -1;
		for (int j = 0; j < n->n_out; j++)
			n->out[j] = np->output[j] && *np->output[j] ? map_value(&map, np->output[j]) : -1;
		n = &g->nodes[k];
		n->attrs = xcalloc(np->n_attribute + 1, sizeof(*n->attrs));
		for (size_t j = 0; j < np->n_attribute && !rc; j++) {
			n->n_attrs++;
			rc = attr_from_proto(np->attribute[j], &n->attrs[j], err);
		}
		if (rc) {
			char *d = eg_node_desc(n), *inner = err ? *err : NULL;
			if (err)
				*err = xasprintf("%s: %s", d, inner ? inner : "bad attribute");
			free(inner);
			free(d);
		}
	}
	free(map.slots);
	if (!rc && !g->n_outputs)
		rc = acc_err(err, -EINVAL, "the graph has no outputs");
	return rc;
}

int onnx_parse_model(const void *buf, size_t len, struct eg_graph **out, char **err)
{
	if (!buf && len)
		return acc_err(err, -EINVAL, "no model bytes");
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp)
		return acc_err(err, -EINVAL, "not a valid ONNX model: the protobuf could not be parsed (%zu bytes)",
			       len);
	struct eg_graph *g = xcalloc(1, sizeof(*g));
	int rc = build(mp, g, err);
	onnx__model_proto__free_unpacked(mp, NULL);
	if (rc) {
		eg_graph_free(g);
		return rc;
	}
	*out = g;
	return 0;
}
