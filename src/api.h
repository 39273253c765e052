/* api: the gRPC methods rund serves (rund.JobController and
 * grpc.health.v1.Health/Check). The only module that knows the generated
 * protobuf types, and the one place where errors become gRPC status codes. */
#ifndef RUND_API_H
#define RUND_API_H

#include <stddef.h>

#include "err.h"
#include "job.h"
#include "rpc.h"

/* The service for server_new(): rund's methods, acting on `jobs` (borrowed;
 * it must outlive the server). */
struct rpc_service api_service(struct job_table *jobs);

/* The gRPC status code for an error (exposed for tests). */
int api_status_code(const struct err *err);

#endif
