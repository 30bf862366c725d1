/* pbjson.c - protobuf-c messages as JSON through their descriptors. */
#include "config.h"
#include "pbjson.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p);

/* Standard base64 of a byte string, as proto3's JSON mapping writes bytes. */
static json_t *base64_json(const ProtobufCBinaryData *b)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = b->len, out_len = 4 * ((n + 2) / 3);
	char *s = malloc(out_len + 1);
	if (!s)
		return json_null();
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b->data[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)b->data[i + 1] << 8;
		if (i + 2 < n)
			v |= b->data[i + 2];
		s[o++] = tab[(v >> 18) & 63];
		s[o++] = tab[(v >> 12) & 63];
		s[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		s[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	s[o] = '\0';
	json_t *j = json_string(s);
	free(s);
	return j ? j : json_null();
}

/* Size in memory of one element of a field of type t. */
static size_t field_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default: /* 32-bit integers and enums */
		return 4;
	}
}

/* A map entry message (protoc-c gives maps as repeated "*Entry" messages with key and value). */
static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
	size_t len = strlen(d->name);
	return len > 5 && strcmp(d->name + len - 5, "Entry") == 0 && d->n_fields == 2 &&
	       strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

/* The JSON key of a map entry's key field: strings as they are, integers in decimal. */
static char *map_key(const ProtobufCMessage *entry)
{
	const ProtobufCFieldDescriptor *kf = &entry->descriptor->fields[0];
	const void *p = (const char *)entry + kf->offset;
	json_t *k = value_json(kf, p);
	char *s = NULL;
	if (json_is_string(k))
		s = strdup(json_string_value(k));
	else
		s = json_dumps(k, JSON_ENCODE_ANY);
	json_decref(k);
	return s;
}

/* One value of a field, p pointing at its storage. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_integer((json_int_t)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		return ev ? json_string(ev->name) : json_integer(v);
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		json_t *j = json_string(s ? s : "");
		return j ? j : json_string("");
	}
	case PROTOBUF_C_TYPE_BYTES:
		return base64_json(p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		return m ? pbjson_from_message(m) : json_null();
	}
	}
	return json_null();
}

/* A new JSON object for msg. */
json_t *pbjson_from_message(const ProtobufCMessage *msg)
{
	json_t *obj = json_object();
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)msg;
		const void *p = base + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char *const *)p;
			size_t sz = field_elem_size(f->type);
			bool map = f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor);
			json_t *j = map ? json_object() : json_array();
			for (size_t k = 0; k < n; k++) {
				const void *ep = arr + k * sz;
				if (map) {
					const ProtobufCMessage *e = *(ProtobufCMessage *const *)ep;
					const ProtobufCFieldDescriptor *vf = &e->descriptor->fields[1];
					char *key = map_key(e);
					if (key)
						json_object_set_new(j, key, value_json(vf, (const char *)e + vf->offset));
					free(key);
				} else {
					json_array_append_new(j, value_json(f, ep));
				}
			}
			json_object_set_new(obj, f->name, j);
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
			if (which != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
			   f->type != PROTOBUF_C_TYPE_STRING && f->quantifier_offset) {
			/* proto2-style / proto3 "optional" scalar: printed only when present. */
			if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
				continue;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(ProtobufCMessage *const *)p)
			continue;
		json_object_set_new(obj, f->name, value_json(f, p));
	}
	return obj;
}
