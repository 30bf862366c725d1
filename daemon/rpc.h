/* rpc.h - the gRPC transport: the Open Inference Protocol v2 service (inference.
 * GRPCInferenceService) and grpc.health.v1.Health on TCP and Unix-socket listeners.
 *
 * rpc.c is the only module that calls gRPC core (grpc_*): its C API changes between releases,
 * so it stays behind this header. Completion-queue threads decode requests and hand them to
 * the repository (repo.h) and the schedulers (infer.h); inference results are encoded and sent
 * from the worker thread that completes them; model loads run on a transport thread of their
 * own. Large messages want malloc tuned by the program (main.c: M_MMAP_THRESHOLD and
 * M_TRIM_THRESHOLD), or glibc maps and unmaps every big tensor buffer.
 */
#ifndef ACC_RPC_H
#define ACC_RPC_H

#include <stddef.h>

struct repo;
struct rpc;

#define RPC_DEFAULT_MAX_MESSAGE_BYTES (64u << 20)

struct rpc_options {
	/* Listen addresses: "host:port" (TCP; port 0 picks a free port) or "unix:/path" (a stale
	 * socket file is removed first; the socket is made mode 0660). */
	const char *const *listen;
	size_t n_listen;
	int threads;              /* completion-queue threads, 1..8 (0 = 1) */
	size_t max_message_bytes; /* largest message received or sent; 0 = 64 MiB */
};

/* Start serving repo on every listen address. The repository must outlive the server.
 * 0, or -EINVAL (bad option) / -EADDRINUSE / -errno with *err (nothing left running). */
int rpc_start(const struct rpc_options *opt, struct repo *repo, struct rpc **out, char **err);
/* The TCP port listen entry i is bound to (useful with port 0); 0 for a Unix socket. */
int rpc_port(const struct rpc *r, size_t i);
/* Graceful stop: refuse new calls, let in-flight calls finish (up to about 5 s), then cancel
 * the rest and wait for them; removes the Unix socket files; frees r. NULL is a no-op. */
void rpc_stop(struct rpc *r);
/* Live calls (accepted and not yet freed); for tests and diagnostics. */
long rpc_live_calls(const struct rpc *r);

/* The gRPC status code for a -errno: -ENOENT NOT_FOUND(5), -EINVAL INVALID_ARGUMENT(3),
 * -EAGAIN UNAVAILABLE(14), -EBUSY/-ENOMEM RESOURCE_EXHAUSTED(8), -ETIMEDOUT
 * DEADLINE_EXCEEDED(4), -ECANCELED CANCELLED(1), -ENOTSUP UNIMPLEMENTED(12), else INTERNAL(13);
 * 0 gives OK(0). */
int rpc_status_from_errno(int err);

#endif
