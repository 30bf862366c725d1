/* rpc_codec.c - protocol messages <-> daemon structures (no gRPC here). */
#include "config.h"
#include "rpc_codec.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "infer.h"
#include "repo.h"
#include "util.h"

/* ---------------------------------------------------------------- ModelInferRequest -- */

/* The framing below follows protobuf-c's own scanner exactly (tags of at most 5 bytes,
 * varints of at most 10, length prefixes of at most 5 bytes and INT_MAX), so both accept
 * the same inputs: the fuzz target checks that they agree. */

/* Read a field's tag at *pos: its number and wire type. */
static bool get_tag(const uint8_t *p, size_t len, size_t *pos, uint32_t *field, int *wt)
{
	const uint8_t *d = p + *pos;
	size_t max = len - *pos > 5 ? 5 : len - *pos;
	if ((d[0] & 0xf8) == 0) /* field number 0 */
		return false;
	*wt = d[0] & 7;
	uint32_t tag = (uint32_t)(d[0] & 0x7f) >> 3;
	unsigned shift = 4;
	for (size_t i = 0; i < max; i++) {
		if (i > 0) {
			tag |= (uint32_t)(d[i] & 0x7f) << shift;
			shift += 7;
		}
		if (!(d[i] & 0x80)) {
			*field = tag;
			*pos += i + 1;
			return true;
		}
	}
	return false;
}

/* Step over one field at *pos: its number, wire type and where its payload lies. */
static bool next_field(const uint8_t *p, size_t len, size_t *pos, uint32_t *field, int *wt,
		       size_t *payload, size_t *payload_len)
{
	if (!get_tag(p, len, pos, field, wt))
		return false;
	size_t rem = len - *pos, n = 0;
	switch (*wt) {
	case 0: { /* varint: at most 10 bytes */
		size_t i, max = rem > 10 ? 10 : rem;
		for (i = 0; i < max && (p[*pos + i] & 0x80); i++)
			;
		if (i == max)
			return false;
		n = i + 1;
		break;
	}
	case 1: n = 8; break;
	case 5: n = 4; break;
	case 2: { /* length prefix: at most 5 bytes, at most INT_MAX */
		size_t i, max = rem > 5 ? 5 : rem;
		uint64_t v = 0;
		for (i = 0; i < max; i++) {
			v |= (uint64_t)(p[*pos + i] & 0x7f) << (7 * i);
			if (!(p[*pos + i] & 0x80))
				break;
		}
		if (i == max || v > INT_MAX || v > rem - (i + 1))
			return false;
		*pos += i + 1;
		rem -= i + 1;
		n = (size_t)v;
		break;
	}
	default: /* groups are not supported */
		return false;
	}
	if (n > rem)
		return false;
	*payload = *pos;
	*payload_len = n;
	*pos += n;
	return true;
}

enum { RAW_INPUT_CONTENTS = 7 }; /* ModelInferRequest.raw_input_contents */

/* Decode with protobuf-c everything but raw_input_contents, which is pointed at in place. */
Inference__ModelInferRequest *rpc_codec_unpack_infer_request(const uint8_t *data, size_t len)
{
	size_t pos = 0, rest_len = 0, n_raw = 0;
	while (pos < len) { /* pass 1: check the framing, count and size */
		size_t start = pos, off, n;
		uint32_t field;
		int wt;
		if (!next_field(data, len, &pos, &field, &wt, &off, &n))
			return NULL;
		if (field == RAW_INPUT_CONTENTS && wt == 2)
			n_raw++;
		else
			rest_len += pos - start;
	}
	uint8_t *rest = xmalloc(rest_len + 1);
	ProtobufCBinaryData *raw = n_raw ? xcalloc(n_raw, sizeof(*raw)) : NULL;
	size_t r = 0, k = 0;
	for (pos = 0; pos < len;) { /* pass 2: split */
		size_t start = pos, off, n;
		uint32_t field;
		int wt;
		next_field(data, len, &pos, &field, &wt, &off, &n);
		if (field == RAW_INPUT_CONTENTS && wt == 2) {
			raw[k].data = (uint8_t *)data + off;
			raw[k++].len = n;
		} else {
			memcpy(rest + r, data + start, pos - start);
			r += pos - start;
		}
	}
	Inference__ModelInferRequest *m = inference__model_infer_request__unpack(NULL, rest_len, rest);
	free(rest);
	if (!m || m->n_raw_input_contents) { /* field 7 with a wrong wire type: not valid */
		if (m)
			inference__model_infer_request__free_unpacked(m, NULL);
		free(raw);
		return NULL;
	}
	m->raw_input_contents = raw;
	m->n_raw_input_contents = n_raw;
	return m;
}

/* Free a message whose raw contents are borrowed. */
void rpc_codec_free_infer_request(Inference__ModelInferRequest *msg)
{
	if (!msg)
		return;
	free(msg->raw_input_contents);
	msg->raw_input_contents = NULL;
	msg->n_raw_input_contents = 0;
	inference__model_infer_request__free_unpacked(msg, NULL);
}

/* Memory behind a request's inputs: the message, the bytes it borrows from, typed buffers. */
struct codec_owner {
	Inference__ModelInferRequest *msg;
	void *keep;
	void (*keep_free)(void *);
	size_t n_bufs;
	void **bufs;
};

/* Free an owner (the request's owner_free). */
static void owner_free(void *p)
{
	struct codec_owner *o = p;
	if (!o)
		return;
	for (size_t i = 0; i < o->n_bufs; i++)
		free(o->bufs[i]);
	free(o->bufs);
	rpc_codec_free_infer_request(o->msg);
	if (o->keep_free)
		o->keep_free(o->keep);
	free(o);
}

/* Format a shape as "[2,3]" into buf. */
static const char *fmt_shape(char *buf, size_t len, const int64_t *dims, size_t n)
{
	size_t o = (size_t)snprintf(buf, len, "[");
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? "," : "", dims[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
	return buf;
}

/* Narrow 32-bit typed contents into elements of esz bytes, rejecting values out of range. */
static int narrow_ints(const char *name, const char *tname, const void *src, bool is_signed,
		       size_t n, size_t esz, uint8_t *dst, char **err)
{
	for (size_t i = 0; i < n; i++) {
		int64_t v = is_signed ? ((const int32_t *)src)[i] : (int64_t)((const uint32_t *)src)[i];
		int64_t lo = is_signed ? -(INT64_C(1) << (esz * 8 - 1)) : 0;
		int64_t hi = is_signed ? (INT64_C(1) << (esz * 8 - 1)) - 1 : (INT64_C(1) << (esz * 8)) - 1;
		if (v < lo || v > hi)
			return acc_err(err, -EINVAL, "input '%s': element %zu = %" PRId64 " is out of range for %s",
				       name, i, v, tname);
		if (esz == 1) {
			uint8_t b = (uint8_t)v;
			dst[i] = b;
		} else if (esz == 2) {
			uint16_t h = (uint16_t)v;
			memcpy(dst + 2 * i, &h, 2);
		} else {
			uint32_t w = (uint32_t)v;
			memcpy(dst + 4 * i, &w, 4);
		}
	}
	return 0;
}

/* The typed-contents field carrying datatype dt and its element count; NULL if dt has none. */
static const char *typed_field(const Inference__InferTensorContents *c, enum dtype dt, size_t *n)
{
	switch (dt) {
	case DT_BOOL: *n = c->n_bool_contents; return "bool_contents";
	case DT_INT8:
	case DT_INT16:
	case DT_INT32: *n = c->n_int_contents; return "int_contents";
	case DT_UINT8:
	case DT_UINT16:
	case DT_UINT32: *n = c->n_uint_contents; return "uint_contents";
	case DT_INT64: *n = c->n_int64_contents; return "int64_contents";
	case DT_UINT64: *n = c->n_uint64_contents; return "uint64_contents";
	case DT_FP32: *n = c->n_fp32_contents; return "fp32_contents";
	case DT_FP64: *n = c->n_fp64_contents; return "fp64_contents";
	case DT_BYTES: *n = c->n_bytes_contents; return "bytes_contents";
	default: *n = 0; return NULL;
	}
}

/* Serialize BYTES elements as a 4-byte little-endian length followed by the bytes. */
static int pack_bytes(const char *name, const ProtobufCBinaryData *el, size_t n, void **buf,
		      size_t *bytes, char **err)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (el[i].len > UINT32_MAX)
			return acc_err(err, -EINVAL, "input '%s': element %zu is longer than 4 GiB", name, i);
		total += 4 + el[i].len;
	}
	uint8_t *out = xmalloc(total + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = (uint32_t)el[i].len;
		uint8_t le[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24 };
		memcpy(out + o, le, 4);
		if (len)
			memcpy(out + o + 4, el[i].data, len);
		o += 4 + len;
	}
	*buf = out;
	*bytes = total;
	return 0;
}

/* Copy the typed contents of one input into a fresh buffer in the tensor's element layout. */
static int typed_input(const char *name, enum dtype dt, const Inference__InferTensorContents *c,
		       int64_t numel, void **buf, size_t *bytes, char **err)
{
	size_t have, n = (size_t)numel, esz = dtype_size(dt);
	const char *field = typed_field(c, dt, &have);
	*buf = NULL;
	*bytes = 0;
	if (!field)
		return acc_err(err, -EINVAL,
			       "input '%s': datatype %s has no typed contents; send it in raw_input_contents",
			       name, dtype_name(dt));
	if ((uint64_t)numel != have)
		return acc_err(err, -EINVAL, "input '%s': shape needs %" PRId64 " elements, %s has %zu",
			       name, numel, field, have);
	if (dt == DT_BYTES)
		return pack_bytes(name, c->bytes_contents, n, buf, bytes, err);

	uint8_t *out = xmalloc(n * esz + 1); /* have == n bounds n * esz by the message size */
	int rc = 0;
	switch (n ? dt : DT_INVALID) { /* an empty tensor has nothing to copy */
	case DT_BOOL:
		for (size_t i = 0; i < n; i++)
			out[i] = c->bool_contents[i] ? 1 : 0;
		break;
	case DT_INT8:
	case DT_INT16:
	case DT_INT32:
		rc = narrow_ints(name, dtype_name(dt), c->int_contents, true, n, esz, out, err);
		break;
	case DT_UINT8:
	case DT_UINT16:
	case DT_UINT32:
		rc = narrow_ints(name, dtype_name(dt), c->uint_contents, false, n, esz, out, err);
		break;
	case DT_INT64: memcpy(out, c->int64_contents, n * esz); break;
	case DT_UINT64: memcpy(out, c->uint64_contents, n * esz); break;
	case DT_FP32: memcpy(out, c->fp32_contents, n * esz); break;
	case DT_FP64: memcpy(out, c->fp64_contents, n * esz); break;
	default: break;
	}
	if (rc < 0) {
		free(out);
		return rc;
	}
	*buf = out;
	*bytes = n * esz;
	return 0;
}

/* Read a non-negative integer request parameter no larger than max. */
static int param_uint(const Inference__InferParameter *p, const char *key, uint64_t max,
		      uint64_t *out, char **err)
{
	if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM &&
	    p->int64_param >= 0 && (uint64_t)p->int64_param <= max) {
		*out = (uint64_t)p->int64_param;
		return 0;
	}
	if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM &&
	    p->uint64_param <= max) {
		*out = p->uint64_param;
		return 0;
	}
	return acc_err(err, -EINVAL, "parameter '%s' must be an integer in 0..%" PRIu64, key, max);
}

/* Apply the request-level parameters acceld understands; others are ignored, like Triton. */
static int request_params(const Inference__ModelInferRequest *msg, struct infer_request *req, char **err)
{
	for (size_t i = 0; i < msg->n_parameters; i++) {
		const Inference__ModelInferRequest__ParametersEntry *e = msg->parameters[i];
		if (!e || !e->key)
			continue;
		uint64_t v;
		int rc;
		if (strcmp(e->key, "priority") == 0) {
			if ((rc = param_uint(e->value, "priority", INT_MAX, &v, err)) < 0)
				return rc;
			req->priority = (int)v;
		} else if (strcmp(e->key, "timeout") == 0) {
			if ((rc = param_uint(e->value, "timeout", INT64_MAX, &v, err)) < 0)
				return rc;
			req->timeout_us = v;
		}
	}
	return 0;
}

/* Fill one input tensor from its message (and its raw contents when raw is non-NULL). */
static int fill_input(const Inference__ModelInferRequest__InferInputTensor *in, size_t idx,
		      const ProtobufCBinaryData *raw, struct codec_owner *o, struct infer_tensor *t,
		      char **err)
{
	char sh[160];
	if (!in || !in->name || !in->name[0])
		return acc_err(err, -EINVAL, "input %zu has no name", idx);
	t->name = xstrdup(in->name);
	t->dtype = dtype_from_name(in->datatype);
	if (t->dtype == DT_INVALID)
		return acc_err(err, -EINVAL, "input '%s': unknown datatype '%s'", in->name,
			       in->datatype ? in->datatype : "");
	if (in->n_shape > TENSOR_MAX_DIMS)
		return acc_err(err, -EINVAL, "input '%s': %zu dimensions, at most %d are supported",
			       in->name, in->n_shape, TENSOR_MAX_DIMS);
	t->ndims = (int)in->n_shape;
	for (size_t d = 0; d < in->n_shape; d++)
		t->dims[d] = in->shape[d];
	int64_t numel = shape_numel(t->dims, t->ndims);
	if (numel < 0)
		return acc_err(err, -EINVAL, "input '%s': invalid shape %s", in->name,
			       fmt_shape(sh, sizeof(sh), in->shape, in->n_shape));
	if (raw) {
		if (in->contents)
			return acc_err(err, -EINVAL,
				       "input '%s': contents must not be given when raw_input_contents is used",
				       in->name);
		t->data = raw->data;
		t->bytes = raw->len;
		return 0;
	}
	if (!in->contents) {
		if (numel == 0)
			return 0;
		return acc_err(err, -EINVAL,
			       "input '%s': no data (set contents or raw_input_contents) for shape %s",
			       in->name, fmt_shape(sh, sizeof(sh), in->shape, in->n_shape));
	}
	void *buf;
	int rc = typed_input(in->name, t->dtype, in->contents, numel, &buf, &t->bytes, err);
	if (rc < 0)
		return rc;
	o->bufs[o->n_bufs++] = buf;
	t->data = buf;
	return 0;
}

/* Decode a ModelInferRequest into an infer_request. */
int rpc_codec_infer_request(Inference__ModelInferRequest *msg, void *keep, void (*keep_free)(void *),
			    struct infer_request *req, char **err)
{
	struct codec_owner *o = xcalloc(1, sizeof(*o));
	o->msg = msg;
	o->keep = keep;
	o->keep_free = keep_free;
	o->bufs = xcalloc(msg->n_inputs ? msg->n_inputs : 1, sizeof(void *));
	req->owner = o;
	req->owner_free = owner_free;

	bool raw = msg->n_raw_input_contents > 0;
	if (raw && msg->n_raw_input_contents != msg->n_inputs)
		return acc_err(err, -EINVAL,
			       "expected %zu raw_input_contents entries, one per input, got %zu",
			       msg->n_inputs, msg->n_raw_input_contents);
	req->inputs = xcalloc(msg->n_inputs ? msg->n_inputs : 1, sizeof(*req->inputs));
	for (size_t i = 0; i < msg->n_inputs; i++) {
		req->n_inputs = i + 1; /* names filled so far are freed with the request */
		int rc = fill_input(msg->inputs[i], i, raw ? &msg->raw_input_contents[i] : NULL, o,
				    &req->inputs[i], err);
		if (rc < 0)
			return rc;
	}

	req->requested = xcalloc(msg->n_outputs ? msg->n_outputs : 1, sizeof(char *));
	for (size_t i = 0; i < msg->n_outputs; i++) {
		const char *name = msg->outputs[i] ? msg->outputs[i]->name : NULL;
		if (!name || !name[0])
			return acc_err(err, -EINVAL, "requested output %zu has no name", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->requested[j], name) == 0)
				return acc_err(err, -EINVAL, "output '%s' requested twice", name);
		req->requested[i] = xstrdup(name);
		req->n_requested = i + 1;
	}
	if (msg->id && msg->id[0])
		req->id = xstrdup(msg->id);
	return request_params(msg, req, err);
}

/* --------------------------------------------------------------- ModelInferResponse -- */

/* Append a protobuf varint to p; returns the bytes written. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Encode a ModelInferResponse: packed head, then one raw_output_contents field per result. */
int rpc_codec_infer_response(const struct infer_request *req, struct rpc_wire *out, char **err)
{
	memset(out, 0, sizeof(*out));
	size_t n = req->n_results;
	Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
	Inference__ModelInferResponse__InferOutputTensor *ts = xcalloc(n ? n : 1, sizeof(*ts));
	Inference__ModelInferResponse__InferOutputTensor **tp = xcalloc(n ? n : 1, sizeof(*tp));
	int rc = 0;

	resp.model_name = (char *)(req->model ? model_name(req->model) : "");
	resp.model_version = (char *)(req->model ? model_version(req->model) : "");
	resp.id = req->id ? req->id : (char *)"";
	for (size_t i = 0; i < n; i++) {
		const struct infer_tensor *t = &req->results[i];
		if (t->ndims < 0 || t->ndims > TENSOR_MAX_DIMS || t->dtype == DT_INVALID ||
		    (t->bytes && !t->data)) {
			rc = acc_err(err, -EINVAL, "output %zu ('%s') is malformed", i, t->name ? t->name : "");
			goto out;
		}
		inference__model_infer_response__infer_output_tensor__init(&ts[i]);
		ts[i].name = t->name ? t->name : (char *)"";
		ts[i].datatype = (char *)dtype_name(t->dtype);
		ts[i].n_shape = (size_t)t->ndims;
		ts[i].shape = (int64_t *)t->dims;
		tp[i] = &ts[i];
	}
	resp.n_outputs = n;
	resp.outputs = tp;

	size_t head = inference__model_infer_response__get_packed_size(&resp);
	out->own = xmalloc(head + n * 11 + 1);
	out->parts = xcalloc(1 + 2 * n, sizeof(*out->parts));
	size_t packed = inference__model_infer_response__pack(&resp, out->own);
	out->parts[out->n++] = (struct rpc_wire_part){ out->own, packed, false };
	out->total = packed;
	uint8_t *p = out->own + packed;
	for (size_t i = 0; i < n; i++) {
		const struct infer_tensor *t = &req->results[i];
		size_t k = 0;
		p[k++] = (6 << 3) | 2; /* raw_output_contents = 6, length-delimited */
		k += put_varint(p + k, t->bytes);
		out->parts[out->n++] = (struct rpc_wire_part){ p, k, false };
		out->total += k;
		p += k;
		if (t->bytes) {
			out->parts[out->n++] = (struct rpc_wire_part){ t->data, t->bytes, true };
			out->total += t->bytes;
		}
	}
out:
	free(ts);
	free(tp);
	if (rc < 0)
		rpc_codec_wire_free(out);
	return rc;
}

/* Free a wire's own memory. */
void rpc_codec_wire_free(struct rpc_wire *w)
{
	free(w->parts);
	free(w->own);
	memset(w, 0, sizeof(*w));
}

/* ------------------------------------------------------------------- JSON -> message -- */

/* Bytes of one element of a repeated field of this type. */
static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* An integer from a JSON number or a decimal string (protobuf's JSON form of 64-bit ints). */
static int json_int(const json_t *v, bool is_unsigned, int64_t *s, uint64_t *u)
{
	if (json_is_integer(v)) {
		long long x = json_integer_value(v);
		if (is_unsigned && x < 0)
			return -1;
		*s = x;
		*u = (uint64_t)x;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != floor(d) || d < (is_unsigned ? 0.0 : -9223372036854775808.0) ||
		    d >= (is_unsigned ? 18446744073709551616.0 : 9223372036854775808.0))
			return -1;
		*s = is_unsigned ? 0 : (int64_t)d;
		*u = is_unsigned ? (uint64_t)d : 0;
		return 0;
	}
	if (json_is_string(v)) {
		const char *str = json_string_value(v);
		char *end;
		errno = 0;
		if (!*str || (is_unsigned && strchr(str, '-')))
			return -1;
		if (is_unsigned)
			*u = strtoull(str, &end, 10);
		else
			*s = strtoll(str, &end, 10);
		if (errno || *end)
			return -1;
		if (is_unsigned)
			*s = 0;
		else
			*u = 0;
		return 0;
	}
	return -1;
}

static int json_message(const json_t *obj, const ProtobufCMessageDescriptor *desc,
			ProtobufCMessage **out, const char *path, char **err);

/* Format a JSON path for error messages into a fixed buffer (long paths are cut). */
static void ACC_PRINTF(3, 4) json_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Store one JSON value as an element of type f->type at dst. */
static int json_scalar(const ProtobufCFieldDescriptor *f, const json_t *v, void *dst,
		       const char *path, char **err)
{
	int64_t s = 0;
	uint64_t u = 0;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (json_int(v, false, &s, &u) < 0 || s < INT32_MIN || s > INT32_MAX)
			break;
		*(int32_t *)dst = (int32_t)s;
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (json_int(v, true, &s, &u) < 0 || u > UINT32_MAX)
			break;
		*(uint32_t *)dst = (uint32_t)u;
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (json_int(v, false, &s, &u) < 0)
			break;
		*(int64_t *)dst = s;
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (json_int(v, true, &s, &u) < 0)
			break;
		*(uint64_t *)dst = u;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		if (!json_is_number(v))
			break;
		*(float *)dst = (float)json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v))
			break;
		*(double *)dst = json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			break;
		*(protobuf_c_boolean *)dst = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		if (json_is_string(v)) {
			const ProtobufCEnumValue *ev =
				protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
			if (!ev)
				return acc_err(err, -EINVAL, "%s: '%s' is not a %s", path,
					       json_string_value(v), ed->name);
			*(int *)dst = ev->value;
			return 0;
		}
		if (json_int(v, false, &s, &u) < 0 || s < INT_MIN || s > INT_MAX ||
		    !protobuf_c_enum_descriptor_get_value(ed, (int)s))
			break;
		*(int *)dst = (int)s;
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING:
		if (!json_is_string(v))
			break;
		*(char **)dst = xstrndup(json_string_value(v), json_string_length(v));
		return 0;
	case PROTOBUF_C_TYPE_BYTES:
		return acc_err(err, -EINVAL, "%s: bytes fields are not read from JSON", path);
	case PROTOBUF_C_TYPE_MESSAGE:
		return json_message(v, f->descriptor, (ProtobufCMessage **)dst, path, err);
	}
	return acc_err(err, -EINVAL, "%s: wrong type of value for field '%s'", path, f->name);
}

/* True when desc is a map entry (fields key = 1 and value = 2, named so). */
static bool is_map_entry(const ProtobufCMessageDescriptor *desc)
{
	return desc->n_fields == 2 && desc->fields[0].id == 1 && desc->fields[1].id == 2 &&
	       strcmp(desc->fields[0].name, "key") == 0 && strcmp(desc->fields[1].name, "value") == 0;
}

/* Store a JSON object as the entries of a map field (a repeated entry message). */
static int json_map(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const json_t *v,
		    const char *path, char **err)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	size_t n = json_object_size(v);
	ProtobufCMessage **arr = xcalloc(n ? n : 1, sizeof(*arr));
	*(void **)((char *)msg + f->offset) = arr;
	*(size_t *)((char *)msg + f->quantifier_offset) = n;
	size_t i = 0;
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)v, key, val) {
		char sub[256];
		json_path(sub, sizeof(sub), "%s.%s", path, key);
		ProtobufCMessage *e = xcalloc(1, ed->sizeof_message);
		protobuf_c_message_init(ed, e);
		arr[i++] = e;
		json_t *k = json_string(key);
		int rc = json_scalar(&ed->fields[0], k, (char *)e + ed->fields[0].offset, sub, err);
		json_decref(k);
		if (rc < 0)
			return rc;
		if ((rc = json_scalar(&ed->fields[1], val, (char *)e + ed->fields[1].offset, sub, err)) < 0)
			return rc;
	}
	return 0;
}

/* Store a JSON value into field f of msg. */
static int json_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const json_t *v,
		      const char *path, char **err)
{
	char *base = (char *)msg;
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && json_is_object(v) && is_map_entry(f->descriptor))
			return json_map(msg, f, v, path, err);
		if (!json_is_array(v))
			return acc_err(err, -EINVAL, "%s: expected an array", path);
		size_t n = json_array_size(v), esz = elem_size(f->type);
		char *arr = xcalloc(n ? n : 1, esz);
		*(void **)(base + f->offset) = arr;
		*(size_t *)(base + f->quantifier_offset) = n;
		for (size_t i = 0; i < n; i++) {
			char sub[256];
			json_path(sub, sizeof(sub), "%s[%zu]", path, i);
			int rc = json_scalar(f, json_array_get(v, i), arr + i * esz, sub, err);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
		if (*which && *which != f->id)
			return acc_err(err, -EINVAL, "%s: only one of a set of alternatives may be given", path);
		int rc = json_scalar(f, v, base + f->offset, path, err);
		if (rc == 0 || f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
			*which = f->id; /* so that a partly built member is freed too */
		return rc;
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	    f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) {
		int rc = json_scalar(f, v, base + f->offset, path, err);
		if (rc == 0)
			*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
		return rc;
	}
	return json_scalar(f, v, base + f->offset, path, err);
}

/* Build a message of type desc from a JSON object. */
static int json_message(const json_t *obj, const ProtobufCMessageDescriptor *desc,
			ProtobufCMessage **out, const char *path, char **err)
{
	*out = NULL;
	if (!json_is_object(obj))
		return acc_err(err, -EINVAL, "%s: expected an object", path);
	ProtobufCMessage *m = xcalloc(1, desc->sizeof_message);
	protobuf_c_message_init(desc, m);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
		if (!f || json_is_null(v))
			continue;
		char sub[256];
		json_path(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", key);
		int rc = json_field(m, f, v, sub, err);
		if (rc < 0) {
			protobuf_c_message_free_unpacked(m, NULL);
			return rc;
		}
	}
	*out = m;
	return 0;
}

/* Public entry of the JSON converter. */
int rpc_codec_from_json(const json_t *obj, const ProtobufCMessageDescriptor *desc,
			ProtobufCMessage **out, char **err)
{
	return json_message(obj, desc, out, "", err);
}

/* A model configuration message from its JSON. */
int rpc_codec_model_config(const json_t *config, Inference__ModelConfig **out, char **err)
{
	ProtobufCMessage *m;
	int rc = json_message(config, &inference__model_config__descriptor, &m, "", err);
	*out = (Inference__ModelConfig *)m;
	return rc;
}

/* ------------------------------------------------------------------------ statistics -- */

/* A heap StatisticDuration. */
static Inference__StatisticDuration *duration(const struct model_stat_duration *d)
{
	Inference__StatisticDuration *s = xmalloc(sizeof(*s));
	inference__statistic_duration__init(s);
	s->count = d->count;
	s->ns = d->ns;
	return s;
}

/* Statistics of several models into a response message. */
Inference__ModelStatisticsResponse *rpc_codec_stats(const struct model_stats *s, size_t n)
{
	Inference__ModelStatisticsResponse *r = xmalloc(sizeof(*r));
	inference__model_statistics_response__init(r);
	r->model_stats = xcalloc(n ? n : 1, sizeof(*r->model_stats));
	r->n_model_stats = n;
	for (size_t i = 0; i < n; i++) {
		Inference__ModelStatistics *m = xmalloc(sizeof(*m));
		inference__model_statistics__init(m);
		r->model_stats[i] = m;
		m->name = xstrdup(s[i].name ? s[i].name : "");
		m->version = xstrdup(s[i].version ? s[i].version : "");
		m->last_inference = s[i].last_inference_ms;
		m->inference_count = s[i].inference_count;
		m->execution_count = s[i].execution_count;
		Inference__InferStatistics *is = xmalloc(sizeof(*is));
		inference__infer_statistics__init(is);
		is->success = duration(&s[i].success);
		is->fail = duration(&s[i].fail);
		is->queue = duration(&s[i].queue);
		is->compute_input = duration(&s[i].compute_input);
		is->compute_infer = duration(&s[i].compute_infer);
		is->compute_output = duration(&s[i].compute_output);
		is->cache_hit = duration(&(struct model_stat_duration){ 0, 0 });
		is->cache_miss = duration(&(struct model_stat_duration){ 0, 0 });
		m->inference_stats = is;
		m->batch_stats = xcalloc(s[i].n_batch ? s[i].n_batch : 1, sizeof(*m->batch_stats));
		m->n_batch_stats = s[i].n_batch;
		for (size_t b = 0; b < s[i].n_batch; b++) {
			Inference__InferBatchStatistics *bs = xmalloc(sizeof(*bs));
			inference__infer_batch_statistics__init(bs);
			bs->batch_size = s[i].batch[b].batch_size;
			bs->compute_input = duration(&s[i].batch[b].compute_input);
			bs->compute_infer = duration(&s[i].batch[b].compute_infer);
			bs->compute_output = duration(&s[i].batch[b].compute_output);
			m->batch_stats[b] = bs;
		}
	}
	return r;
}
