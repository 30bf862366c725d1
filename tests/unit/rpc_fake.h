/* rpc_fake.h - a small in-memory repository and scheduler implementing repo.h and infer.h,
 * so the transport tests run without ONNX models.
 *
 * Models (version "1" unless said otherwise):
 *   "echo"  max_batch_size 8, INPUT0 FP32 [-1,4] -> OUTPUT0 = INPUT0, OUTPUT1 = -INPUT0
 *   "slow"  as echo, completing after fake_slow_ms
 *   "big"   no batching, INPUT0 UINT8 [-1] -> OUTPUT0 = INPUT0 (any size)
 *   "fail"  as echo, every request completes with -ETIMEDOUT "queue timeout"
 *   "loading" (not ready: repo_get gives -EAGAIN), "broken" (UNAVAILABLE, "bad config")
 * repo_load: "echo" succeeds (records the config override), "missing" gives -ENOENT, anything
 * else -EINVAL. Requests complete on threads of their own. */
#ifndef ACC_TEST_RPC_FAKE_H
#define ACC_TEST_RPC_FAKE_H

#include <stdbool.h>

struct repo;

/* The fake repository (a static object). */
struct repo *fake_repo(void);
/* Make repo_ready() answer ready. */
void fake_set_ready(bool ready);
/* Delay of the "slow" model, in milliseconds (default 300). */
extern int fake_slow_ms;
/* The config text of the last successful repo_load ("" if none), and how many loads ran. */
const char *fake_last_config(void);
int fake_load_count(void);
/* Wait until no fake request is in flight (they complete on their own threads). */
void fake_drain(void);
/* timeout_us of the last request submitted. */
unsigned long long fake_last_timeout_us(void);
/* Requests submitted and freed so far (to check the transport frees every request). */
long fake_requests_alive(void);

#endif
