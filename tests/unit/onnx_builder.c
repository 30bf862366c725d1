/* onnx_builder.c - a small ModelProto builder for the engine's tests. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "onnx_builder.h"

/* A model with one default-domain opset and an empty graph. */
Onnx__ModelProto *mb_new(int64_t opset, const char *producer)
{
	Onnx__ModelProto *m = xmalloc(sizeof(*m));
	onnx__model_proto__init(m);
	m->has_ir_version = 1;
	m->ir_version = 8;
	if (producer)
		m->producer_name = xstrdup(producer);
	Onnx__OperatorSetIdProto *o = xmalloc(sizeof(*o));
	onnx__operator_set_id_proto__init(o);
	o->domain = xstrdup("");
	o->has_version = 1;
	o->version = opset;
	MB_PUSH(m->n_opset_import, m->opset_import, o);
	m->graph = xmalloc(sizeof(*m->graph));
	onnx__graph_proto__init(m->graph);
	m->graph->name = xstrdup("g");
	return m;
}

/* A tensor ValueInfo; negative dims are the symbol "N". */
Onnx__ValueInfoProto *mb_vi(const char *name, int elem, int ndims, const int64_t *dims)
{
	Onnx__ValueInfoProto *v = xmalloc(sizeof(*v));
	onnx__value_info_proto__init(v);
	v->name = xstrdup(name);
	v->type = xmalloc(sizeof(*v->type));
	onnx__type_proto__init(v->type);
	v->type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	v->type->tensor_type = xmalloc(sizeof(*v->type->tensor_type));
	onnx__type_proto__tensor__init(v->type->tensor_type);
	v->type->tensor_type->has_elem_type = 1;
	v->type->tensor_type->elem_type = elem;
	if (ndims >= 0) {
		Onnx__TensorShapeProto *s = xmalloc(sizeof(*s));
		onnx__tensor_shape_proto__init(s);
		for (int i = 0; i < ndims; i++) {
			Onnx__TensorShapeProto__Dimension *d = xmalloc(sizeof(*d));
			onnx__tensor_shape_proto__dimension__init(d);
			if (dims[i] >= 0) {
				d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
				d->dim_value = dims[i];
			} else {
				d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
				d->dim_param = xstrdup("N");
			}
			MB_PUSH(s->n_dim, s->dim, d);
		}
		v->type->tensor_type->shape = s;
	}
	return v;
}

/* Append a graph input. */
void mb_input(Onnx__ModelProto *m, const char *name, int elem, int ndims, const int64_t *dims)
{
	MB_PUSH(m->graph->n_input, m->graph->input, mb_vi(name, elem, ndims, dims));
}

/* Append a shapeless graph output. */
void mb_output(Onnx__ModelProto *m, const char *name, int elem)
{
	MB_PUSH(m->graph->n_output, m->graph->output, mb_vi(name, elem, -1, NULL));
}

/* An initializer with dims and room for its raw data (one spare byte, so that 0 elements
 * still allocate), appended to m; *n gets the element count. */
static Onnx__TensorProto *mb_tensor(Onnx__ModelProto *m, const char *name, int elem, int ndims,
				    const int64_t *dims, size_t elem_size, int64_t *n)
{
	Onnx__TensorProto *t = xmalloc(sizeof(*t));
	onnx__tensor_proto__init(t);
	t->name = xstrdup(name);
	t->has_data_type = 1;
	t->data_type = elem;
	*n = 1;
	for (int i = 0; i < ndims; i++) {
		MB_PUSH(t->n_dims, t->dims, dims[i]);
		*n *= dims[i];
	}
	t->has_raw_data = 1;
	t->raw_data.len = *n * elem_size;
	t->raw_data.data = xmalloc(t->raw_data.len + 1);
	MB_PUSH(m->graph->n_initializer, m->graph->initializer, t);
	return t;
}

/* Append an initializer copied from data. */
Onnx__TensorProto *mb_init(Onnx__ModelProto *m, const char *name, int elem, int ndims, const int64_t *dims,
			   const void *data)
{
	int64_t n;
	Onnx__TensorProto *t = mb_tensor(m, name, elem, ndims, dims, elem == MB_INT64 ? 8 : 4, &n);
	memcpy(t->raw_data.data, data, t->raw_data.len);
	return t;
}

/* Append a random fp32 initializer. */
Onnx__TensorProto *mb_init_rand(Onnx__ModelProto *m, const char *name, int ndims, const int64_t *dims,
				unsigned *seed)
{
	int64_t n;
	Onnx__TensorProto *t = mb_tensor(m, name, MB_FLOAT, ndims, dims, sizeof(float), &n);
	float *f = (float *)t->raw_data.data;
	for (int64_t i = 0; i < n; i++)
		f[i] = (float)(rand_r(seed) % 2001 - 1000) / 4000.0f;
	return t;
}

/* Append a scalar fp32 initializer. */
void mb_scalar(Onnx__ModelProto *m, const char *name, float v)
{
	mb_init(m, name, MB_FLOAT, 0, NULL, &v);
}

/* Append a node with the given (possibly NULL) name. */
Onnx__NodeProto *mb_node(Onnx__ModelProto *m, const char *op, const char *name, const char *const *ins,
			 const char *const *outs)
{
	Onnx__NodeProto *n = xmalloc(sizeof(*n));
	onnx__node_proto__init(n);
	n->op_type = xstrdup(op);
	if (name)
		n->name = xstrdup(name);
	for (; *ins; ins++)
		MB_PUSH(n->n_input, n->input, xstrdup(*ins));
	for (; *outs; outs++)
		MB_PUSH(n->n_output, n->output, xstrdup(*outs));
	MB_PUSH(m->graph->n_node, m->graph->node, n);
	return n;
}

/* Append a node named after its op and position. */
Onnx__NodeProto *mb_node_auto(Onnx__ModelProto *m, const char *op, const char *const *ins, const char *const *outs)
{
	char *name = xasprintf("%s_%zu", op, m->graph->n_node);
	Onnx__NodeProto *n = mb_node(m, op, name, ins, outs);
	free(name);
	return n;
}

/* Append an attribute without a value. */
Onnx__AttributeProto *mb_attr(Onnx__NodeProto *n, const char *name, int type)
{
	Onnx__AttributeProto *a = xmalloc(sizeof(*a));
	onnx__attribute_proto__init(a);
	a->name = xstrdup(name);
	a->has_type = 1;
	a->type = type;
	MB_PUSH(n->n_attribute, n->attribute, a);
	return a;
}

/* Append an INT attribute. */
void mb_attr_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = v;
}

/* Append an INTS attribute. */
void mb_attr_ints(Onnx__NodeProto *n, const char *name, int k, const int64_t *v)
{
	Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	for (int i = 0; i < k; i++)
		MB_PUSH(a->n_ints, a->ints, v[i]);
}

/* Append a FLOAT attribute. */
void mb_attr_float(Onnx__NodeProto *n, const char *name, float v)
{
	Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = v;
}

/* Append a STRING attribute. */
void mb_attr_string(Onnx__NodeProto *n, const char *name, const char *s)
{
	Onnx__AttributeProto *a = mb_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	a->has_s = 1;
	a->s.len = strlen(s);
	a->s.data = (uint8_t *)xstrdup(s);
}

/* Serialise and free m. */
uint8_t *mb_pack(Onnx__ModelProto *m, size_t *len)
{
	*len = onnx__model_proto__get_packed_size(m);
	uint8_t *buf = xmalloc(*len + 1);
	onnx__model_proto__pack(m, buf);
	mb_free(m);
	return buf;
}

/* Free m. */
void mb_free(Onnx__ModelProto *m)
{
	onnx__model_proto__free_unpacked(m, NULL);
}
