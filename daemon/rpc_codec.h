/* rpc_codec.h - protocol messages <-> daemon structures, without any gRPC call.
 *
 * The transport (rpc.c) decodes bytes with protobuf-c and hands the messages here; everything
 * in this module is pure data conversion, so the unit tests and the fuzz target exercise it
 * without a server. Messages this module builds are allocated with malloc throughout and are
 * freed with protobuf_c_message_free_unpacked(msg, NULL).
 */
#ifndef ACC_RPC_CODEC_H
#define ACC_RPC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "inference.pb-c.h"

struct infer_request;
struct model_stats;

/* Decode a ModelInferRequest without copying its raw_input_contents: they point into data,
 * which must outlive the message. NULL if the bytes are not a valid message. */
Inference__ModelInferRequest *rpc_codec_unpack_infer_request(const uint8_t *data, size_t len);
/* Free a message from rpc_codec_unpack_infer_request (not the bytes it points into). */
void rpc_codec_free_infer_request(Inference__ModelInferRequest *msg);

/* Fill req (from infer_request_new) from a message of rpc_codec_unpack_infer_request: inputs
 * (raw contents used in place, typed contents copied into owned buffers), requested outputs,
 * id, "priority" and "timeout" parameters. msg and keep (what backs msg's bytes, released
 * with keep_free, which may be NULL) are handed over in every case: they become req->owner
 * and are freed with the request. 0, or -EINVAL with a message naming the tensor. */
int rpc_codec_infer_request(Inference__ModelInferRequest *msg, void *keep, void (*keep_free)(void *),
			    struct infer_request *req, char **err);

/* One span of a serialized message: owned bytes (inside rpc_wire.own) or borrowed bytes. */
struct rpc_wire_part {
	const uint8_t *data;
	size_t len;
	bool borrowed; /* points into the request's results */
};

/* A serialized message as a list of spans to be sent back to back (no copy of big tensors). */
struct rpc_wire {
	size_t n;
	struct rpc_wire_part *parts;
	uint8_t *own;  /* backing store of the owned parts */
	size_t total;  /* sum of the part lengths */
};

/* Serialize the ModelInferResponse of a finished request (req->status == 0): names, datatypes,
 * shapes of req->results, then raw_output_contents borrowed from the results, which must stay
 * alive until the wire has been sent. 0, or -EINVAL for a result this protocol cannot carry. */
int rpc_codec_infer_response(const struct infer_request *req, struct rpc_wire *out, char **err);
/* Free what rpc_codec_infer_response allocated (not the borrowed bytes). */
void rpc_codec_wire_free(struct rpc_wire *w);

/* Fill a fresh message of type desc from a JSON object using the proto field names (Triton's
 * JSON form of its messages): 64-bit integers may be JSON numbers or strings, enums names or
 * numbers, maps JSON objects. Unknown keys are skipped. 0 or -EINVAL naming the JSON path. */
int rpc_codec_from_json(const json_t *obj, const ProtobufCMessageDescriptor *desc,
			ProtobufCMessage **out, char **err);
/* The ModelConfig message of a model's JSON configuration (see rpc_codec_from_json). */
int rpc_codec_model_config(const json_t *config, Inference__ModelConfig **out, char **err);

/* A ModelStatisticsResponse with one entry per element of s. */
Inference__ModelStatisticsResponse *rpc_codec_stats(const struct model_stats *s, size_t n);

#endif
