/* api: the gRPC methods rund serves (rund.JobController and
 * grpc.health.v1.Health/Check). The only module that knows the generated
 * protobuf types, and the one place where errors become gRPC status codes. */
#ifndef RUND_API_H
#define RUND_API_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "job.h"
#include "rpc.h"

struct api;

/* The handlers' state (open Wait and Health/Watch calls) acting on `jobs`
 * (borrowed; it must outlive the api). Free it after the server. */
struct api *api_new(struct job_table *jobs);
void api_free(struct api *a);

/* The service for server_new(): rund's methods. When the server drains,
 * Health/Watch streams get NOT_SERVING and end, and Wait calls answer
 * UNAVAILABLE (the client calls again, after the restart). */
struct rpc_service api_service(struct api *a);

/* The gRPC status code for an error (exposed for tests). */
int api_status_code(const struct err *err);

#endif
