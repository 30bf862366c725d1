/* acceld/client.h - C client of the acceld inference daemon (Open Inference Protocol v2, gRPC).
 *
 * One struct acc_client is one gRPC channel to one server ("host:port" or "unix:/path").
 * Every function may be called from several threads at once on the same client; each call
 * is one RPC with its own deadline (acc_client_set_timeout). Connecting is lazy: an
 * unreachable server shows up as UNAVAILABLE on the first call, not in acc_client_connect.
 *
 * Errors: every function returns 0 or a negative errno (derived from the gRPC status:
 * NOT_FOUND -ENOENT, INVALID_ARGUMENT -EINVAL, UNAVAILABLE -ECONNREFUSED, DEADLINE_EXCEEDED
 * -ETIMEDOUT, ...). If st is non-NULL it is filled either way: code 0 and message NULL on
 * success, else the gRPC status code and the server's message (or a local one: a bad argument
 * gives INVALID_ARGUMENT, an undecodable reply INTERNAL). A status passed in must be
 * zero-initialised or hold a message from an earlier call (which is freed); release the last
 * one with acc_status_clear.
 *
 * Ownership: arguments are borrowed for the duration of the call. Everything returned
 * through an out-pointer belongs to the caller and is released with the matching *_free.
 */
#ifndef ACCELD_CLIENT_H
#define ACCELD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct acc_client;

/* gRPC status codes used in struct acc_status (same numbers as grpc_status_code). */
enum acc_code {
	ACC_OK = 0,
	ACC_CANCELLED = 1,
	ACC_UNKNOWN = 2,
	ACC_INVALID_ARGUMENT = 3,
	ACC_DEADLINE_EXCEEDED = 4,
	ACC_NOT_FOUND = 5,
	ACC_ALREADY_EXISTS = 6,
	ACC_PERMISSION_DENIED = 7,
	ACC_RESOURCE_EXHAUSTED = 8,
	ACC_FAILED_PRECONDITION = 9,
	ACC_ABORTED = 10,
	ACC_OUT_OF_RANGE = 11,
	ACC_UNIMPLEMENTED = 12,
	ACC_INTERNAL = 13,
	ACC_UNAVAILABLE = 14,
	ACC_DATA_LOSS = 15,
	ACC_UNAUTHENTICATED = 16,
};

/* The outcome of one call: a gRPC status code and a message (NULL when code is 0). */
struct acc_status {
	int code;
	char *message; /* malloc'd; owned by the status */
};

/* Free the message of a status and reset it to OK (NULL is fine). */
void acc_status_clear(struct acc_status *st);
/* Name of a gRPC status code ("NOT_FOUND"); "UNKNOWN_CODE" for numbers outside 0..16. */
const char *acc_code_name(int code);

/* --- Connection ------------------------------------------------------------------------ */

/* Create a client for target ("127.0.0.1:8001", "localhost:8001", "unix:/run/acceld/acceld.sock"). */
int acc_client_connect(const char *target, struct acc_client **out, struct acc_status *st);
/* Close the client (no call may be running on it); NULL is fine. */
void acc_client_close(struct acc_client *c);
/* Set the deadline of every later call, in milliseconds (default 60000; 0 = no deadline). */
void acc_client_set_timeout(struct acc_client *c, unsigned timeout_ms);

/* --- Health and metadata ----------------------------------------------------------------- */

/* ServerLive. */
int acc_client_server_live(struct acc_client *c, bool *live, struct acc_status *st);
/* ServerReady. */
int acc_client_server_ready(struct acc_client *c, bool *ready, struct acc_status *st);

struct acc_server_metadata {
	char *name;
	char *version;
	size_t n_extensions;
	char **extensions;
};
/* ServerMetadata; free *out with acc_server_metadata_free. */
int acc_client_server_metadata(struct acc_client *c, struct acc_server_metadata **out,
			       struct acc_status *st);
/* Free server metadata (NULL is fine). */
void acc_server_metadata_free(struct acc_server_metadata *m);

/* ModelReady; version NULL or "" means the server's choice (the latest). */
int acc_client_model_ready(struct acc_client *c, const char *model, const char *version,
			   bool *ready, struct acc_status *st);

/* A tensor's description: datatype is a v2 name ("FP32"), -1 in shape is a variable dim. */
struct acc_tensor_metadata {
	char *name;
	char *datatype;
	size_t ndims;
	int64_t *shape;
};
struct acc_model_metadata {
	char *name;
	size_t n_versions;
	char **versions;
	char *platform;
	size_t n_inputs;
	struct acc_tensor_metadata *inputs;
	size_t n_outputs;
	struct acc_tensor_metadata *outputs;
};
/* ModelMetadata; free *out with acc_model_metadata_free. */
int acc_client_model_metadata(struct acc_client *c, const char *model, const char *version,
			      struct acc_model_metadata **out, struct acc_status *st);
/* Free model metadata (NULL is fine). */
void acc_model_metadata_free(struct acc_model_metadata *m);

/* ModelConfig, returned as JSON text in Triton's model-configuration form (snake_case
 * fields, enums by name); free *json with free(). */
int acc_client_model_config(struct acc_client *c, const char *model, const char *version,
			    char **json, struct acc_status *st);

/* --- Repository ---------------------------------------------------------------------------- */

/* One RepositoryIndex row; state is "READY", "UNAVAILABLE", "LOADING", ...; reason may be "". */
struct acc_repo_model {
	char *name;
	char *version;
	char *state;
	char *reason;
};
/* RepositoryIndex (ready_only: only ready models); free *out with acc_repo_index_free. */
int acc_client_repository_index(struct acc_client *c, bool ready_only,
				struct acc_repo_model **out, size_t *n, struct acc_status *st);
/* Free an index listing (NULL is fine). */
void acc_repo_index_free(struct acc_repo_model *models, size_t n);

/* RepositoryModelLoad: (re)load model; config_json, if non-NULL, replaces its config.json
 * for this load (sent as parameters["config"].string_param, as Triton does). */
int acc_client_load(struct acc_client *c, const char *model, const char *config_json,
		    struct acc_status *st);
/* RepositoryModelUnload. */
int acc_client_unload(struct acc_client *c, const char *model, struct acc_status *st);

/* --- Statistics ------------------------------------------------------------------------------ */

/* A count and the nanoseconds summed over it. */
struct acc_duration {
	uint64_t count;
	uint64_t ns;
};
struct acc_batch_stats {
	uint64_t batch_size;
	struct acc_duration compute_input, compute_infer, compute_output;
};
struct acc_model_stats {
	char *name;
	char *version;
	uint64_t last_inference_ms; /* ms since the epoch; 0 = never */
	uint64_t inference_count;   /* samples */
	uint64_t execution_count;   /* batches */
	struct acc_duration success, fail, queue, compute_input, compute_infer, compute_output;
	size_t n_batch;
	struct acc_batch_stats *batch;
};
/* ModelStatistics of one model (model NULL or "" = every model); free with acc_model_stats_free. */
int acc_client_model_statistics(struct acc_client *c, const char *model, const char *version,
				struct acc_model_stats **out, size_t *n, struct acc_status *st);
/* Free statistics (NULL is fine). */
void acc_model_stats_free(struct acc_model_stats *s, size_t n);

/* --- Inference ------------------------------------------------------------------------------- */

/* A tensor with its data as raw little-endian bytes (row-major). In a request every pointer
 * is borrowed from the caller; in a result everything is owned by the result. */
struct acc_tensor {
	const char *name;
	const char *datatype; /* "FP32", "INT64", "BOOL", ... */
	size_t ndims;
	const int64_t *shape;
	const void *data;
	size_t bytes;
};

struct acc_infer_request {
	const char *model;
	const char *version;          /* NULL or "" = latest */
	const char *id;               /* NULL = none; echoed in the result */
	size_t n_inputs;
	const struct acc_tensor *inputs;
	size_t n_outputs;             /* 0 = every output */
	const char *const *outputs;   /* names of the outputs wanted */
	int priority;                 /* 0 = default; sent as parameters["priority"] if non-zero */
	uint64_t timeout_us;          /* 0 = none; sent as parameters["timeout"] if non-zero */
};

struct acc_infer_result {
	char *model_name;
	char *model_version;
	char *id;
	size_t n_outputs;
	struct acc_tensor *outputs;
};

/* ModelInfer: send the inputs as raw_input_contents; outputs come back as raw bytes whether
 * the server used raw_output_contents or typed contents. Free *out with acc_infer_result_free. */
int acc_client_infer(struct acc_client *c, const struct acc_infer_request *req,
		     struct acc_infer_result **out, struct acc_status *st);
/* Free an inference result (NULL is fine). */
void acc_infer_result_free(struct acc_infer_result *r);
/* The output named name in r, or NULL. */
const struct acc_tensor *acc_infer_result_output(const struct acc_infer_result *r, const char *name);

/* --- grpc.health.v1 and low-level access ------------------------------------------------------ */

/* grpc.health.v1.Health/Check of service ("" = the whole server); *serving gets the
 * ServingStatus (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN). */
int acc_client_health_check(struct acc_client *c, const char *service, int *serving,
			    struct acc_status *st);

/* One unary call with a pre-encoded request: method is the full path
 * ("/inference.GRPCInferenceService/ModelInfer"); on success *resp (malloc'd, free()) holds
 * the encoded reply. For tests and tools that build their own messages. */
int acc_client_call_raw(struct acc_client *c, const char *method, const void *req, size_t req_len,
			void **resp, size_t *resp_len, struct acc_status *st);

/* Element size of a v2 datatype name ("FP32" 4, "BOOL" 1, ...); 0 for "BYTES" or unknown. */
size_t acc_datatype_size(const char *datatype);

#ifdef __cplusplus
}
#endif

#endif
