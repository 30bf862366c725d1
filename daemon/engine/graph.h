/* graph.h - the engine's intermediate representation: values, nodes, attributes.
 *
 * A graph owns everything it points to: names, attributes, and the data of constant values
 * (initializers, Constant outputs, folded results). Values are referenced by index; -1 marks an
 * absent optional input or output.
 */
#ifndef ACC_ENGINE_GRAPH_H
#define ACC_ENGINE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct eng_op;

/* ONNX AttributeProto.AttributeType values. */
enum eg_attr_type {
	EG_ATTR_UNDEFINED = 0,
	EG_ATTR_FLOAT = 1,
	EG_ATTR_INT = 2,
	EG_ATTR_STRING = 3,
	EG_ATTR_TENSOR = 4,
	EG_ATTR_GRAPH = 5,
	EG_ATTR_FLOATS = 6,
	EG_ATTR_INTS = 7,
	EG_ATTR_STRINGS = 8,
	EG_ATTR_SPARSE_TENSOR = 11,
};

struct eg_attr {
	char *name;
	enum eg_attr_type type;
	float f;
	int64_t i;
	char *s; /* STRING, NUL-terminated */
	size_t n; /* FLOATS / INTS / STRINGS count */
	float *floats;
	int64_t *ints;
	char **strings;
	struct eng_tensor *t; /* TENSOR */
};

struct eg_value {
	char *name;
	enum dtype dtype; /* DT_INVALID until known */
	int ndims; /* -1: rank unknown */
	int64_t dims[TENSOR_MAX_DIMS]; /* < 0: dynamic */
	struct eng_tensor *konst; /* constant data (owned by the graph), or NULL */
	int producer; /* node index; -1 for graph inputs and constants */
	bool is_input, is_output;
	bool plan_data; /* its values are needed to plan (shapes, axes...): see eg_graph_mark_plan_data */
};

struct eg_node {
	char *name, *op_type, *domain;
	int n_in, n_out;
	int *in, *out; /* value indices, -1 when absent */
	int n_attrs;
	struct eg_attr *attrs;
	int64_t opset; /* the opset of the node's domain */
	const struct eng_op *op; /* set by eg_graph_prepare */
	void *params; /* op-private parsed attributes, freed with free() */
	void (*params_free)(void *params); /* when set (by prepare), frees params instead of free() */
	bool dead;
};

struct eg_graph {
	struct eg_value *values;
	int n_values, cap_values;
	struct eg_node *nodes;
	int n_nodes, cap_nodes;
	int *inputs, n_inputs;
	int *outputs, n_outputs;
	int64_t opset; /* default domain */
	char *producer;
};

/* Free a graph and everything it owns (NULL is fine). */
void eg_graph_free(struct eg_graph *g);
/* Append a value named name (copied); returns its index. */
int eg_value_add(struct eg_graph *g, const char *name);
/* Append a zeroed node; returns its index (pointers into g->nodes may move). */
int eg_node_add(struct eg_graph *g);
/* Free a node's contents (names, edges, attributes, params) and zero it. */
void eg_node_clear(struct eg_node *n);

/* Allocate a dense tensor of dtype and dims with zeroed data (aligned to 64 bytes). */
struct eng_tensor *eg_tensor_new(enum dtype dt, int ndims, const int64_t *dims);
/* Free a tensor made by eg_tensor_new (NULL is fine). */
void eg_tensor_free(struct eng_tensor *t);

/* The attribute called name, or NULL. */
const struct eg_attr *eg_attr_find(const struct eg_node *n, const char *name);
/* An INT attribute or def. */
int64_t eg_attr_int(const struct eg_node *n, const char *name, int64_t def);
/* A FLOAT attribute or def. */
float eg_attr_float(const struct eg_node *n, const char *name, float def);
/* A STRING attribute or def. */
const char *eg_attr_str(const struct eg_node *n, const char *name, const char *def);
/* An INTS attribute: its values and count, or NULL with *cnt = 0. */
const int64_t *eg_attr_ints(const struct eg_node *n, const char *name, size_t *cnt);

/* Check ops, attributes and opsets, order nodes topologically, drop nodes no output needs,
 * propagate dtypes and parse each node's attributes. Returns 0, -ENOTSUP (something valid the
 * engine does not support) or -EINVAL (a malformed graph), with *err set. */
int eg_graph_prepare(struct eg_graph *g, char **err);
/* Evaluate nodes whose inputs are all constant, making their outputs constants. */
int eg_graph_fold(struct eg_graph *g, char **err);

/* Mark the values whose contents shape inference needs (inputs in ops' data_in slots, and
 * recursively what they are computed from). A graph input so marked keys the plan by value. */
void eg_graph_mark_plan_data(struct eg_graph *g);

/* "node 'name' (Op, opset N)" for messages; the caller frees it. */
char *eg_node_desc(const struct eg_node *n);

#endif
