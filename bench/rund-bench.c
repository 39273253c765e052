/* rund-bench: the load generator behind bench/run.
 *
 *   rund-bench <command> [flags]
 *
 * Every command prints its results as "key value" lines on stdout (bench/run
 * collects them into one table) and diagnostics on stderr. Exit status is 0
 * when the measurement ran, 1 when it could not (no daemon, bad flags);
 * errors counted during a run are results ("errors N"), not failures.
 *
 * Commands:
 *   spawn      floor: posix_spawn + waitpid of /bin/true, -n times
 *   pipe       floor: -bytes through a pipe between two processes
 *   start      -n Starts of /bin/true over -conns connections (one thread
 *              and one client each): latency p50/p99 and aggregate rate
 *   status     -n Status calls on one running job over one connection
 *   handshake  -n times: new connection + Status; then -runc_n whole
 *              `runc status` processes (when -runc is given)
 *   log        one job writing -bytes of zeros; read while it runs (one
 *              reader), then after it ended by 1 and by -readers readers
 *   mem        daemon RSS (-pid) idle and with -n running jobs, and the
 *              private memory of its supervisors
 *   scale      -n concurrently running jobs: start all, Status all, stop
 *              all over -conns connections; time of each phase
 *
 * The client library is blocking with one call at a time per connection,
 * so concurrency is one thread per connection. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "client.h"
#include "flags.h"
#include "grpc.h"
#include "joblog.h"
#include "rund.pb-c.h"
#include "util.h"

#define PATH_START "/rund.JobController/Start"
#define PATH_STOP "/rund.JobController/Stop"
#define PATH_STATUS "/rund.JobController/Status"
#define PATH_LIST "/rund.JobController/List"
#define PATH_LOG "/rund.JobController/Log"

#define ID_MAX 64
/* Errors beyond this many are counted but not printed. */
#define MAX_PRINTED_ERRORS 5

extern char **environ;

struct options {
	const char *addr, *ca, *cert, *key;
	uint64_t n, conns, bytes, readers, pid, runc_n;
	const char *runc;
	const char *state_dir;
	uint64_t timeout_ms;
};

static struct options opt = {
	.addr = "127.0.0.1:8000",
	.ca = "tls/ca.pem",
	.cert = "tls/client.pem",
	.key = "tls/client-key.pem",
	.n = 100,
	.conns = 1,
	.bytes = 64ull << 20,
	.readers = 8,
	.runc_n = 20,
	.runc = "",
	.state_dir = "",
	.timeout_ms = 120000,
};

static atomic_uint printed_errors;

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rund-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void __attribute__((format(printf, 1, 2))) report_error(const char *fmt, ...)
{
	if (atomic_fetch_add(&printed_errors, 1) >= MAX_PRINTED_ERRORS)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("rund-bench: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void result(const char *key, double v)
{
	printf("%s %.6g\n", key, v);
	fflush(stdout);
}

/* ---- statistics ---------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n samples; sorts them. */
static uint64_t percentile(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* ---- calls --------------------------------------------------------------- */

static struct client *bench_connect(struct err *err)
{
	struct client_opts co = {
		.addr = opt.addr,
		.ca = opt.ca,
		.cert = opt.cert,
		.key = opt.key,
		.timeout_ms = opt.timeout_ms,
	};
	return client_connect(&co, err);
}

static struct client *bench_connect_or_die(void)
{
	struct err err = {0};
	struct client *c = bench_connect(&err);
	if (!c)
		die("%s", err.msg);
	return c;
}

/* A packed JobStartRequest; every Start of a run sends the same bytes, so
 * they are encoded once, outside the timed loop. */
struct packed {
	uint8_t *data;
	size_t len;
};

static void pack_start(struct packed *p, char **argv, size_t argc)
{
	Rund__JobStartRequest req = RUND__JOB_START_REQUEST__INIT;
	req.name = argv[0];
	req.n_args = argc - 1;
	req.args = argv + 1;
	p->len = rund__job_start_request__get_packed_size(&req);
	p->data = xmalloc(p->len ? p->len : 1);
	rund__job_start_request__pack(&req, p->data);
}

/* Runs one unary call; 0 on GRPC_OK with *resp set, else -1 with a message
 * in err (transport failure or the server's status). */
static int unary(struct client *c, const char *path, const uint8_t *req, size_t len, uint8_t **resp,
		 size_t *resp_len, struct err *err)
{
	struct client_status st = {0};
	int r = client_unary(c, path, req, len, resp, resp_len, &st, err);
	if (r < 0)
		return -1;
	if (st.code != GRPC_OK) {
		err_set(err, EIO, ERR_INTERNAL, "%s: %s: %s", path, grpc_code_name(st.code),
			st.message);
		return -1;
	}
	return 0;
}

static int call_start(struct client *c, const struct packed *req, char id[ID_MAX], struct err *err)
{
	_cleanup_free_ uint8_t *resp = NULL;
	size_t resp_len = 0;
	if (unary(c, PATH_START, req->data, req->len, &resp, &resp_len, err) < 0)
		return -1;
	Rund__JobIdentifier *ji = rund__job_identifier__unpack(NULL, resp_len, resp);
	if (!ji || !ji->ulid || strlen(ji->ulid) >= ID_MAX) {
		rund__job_identifier__free_unpacked(ji, NULL);
		return err_set(err, EPROTO, ERR_INTERNAL, "Start: undecodable JobIdentifier");
	}
	strcpy(id, ji->ulid);
	rund__job_identifier__free_unpacked(ji, NULL);
	return 0;
}

/* Status or Stop of job `id`; *state receives JobStatus.state. */
static int call_id(struct client *c, const char *path, const char *id, int *state, struct err *err)
{
	Rund__JobIdentifier ji = RUND__JOB_IDENTIFIER__INIT;
	ji.ulid = (char *)id;
	uint8_t req[ID_MAX + 8];
	size_t len = rund__job_identifier__pack(&ji, req);
	_cleanup_free_ uint8_t *resp = NULL;
	size_t resp_len = 0;
	if (unary(c, path, req, len, &resp, &resp_len, err) < 0)
		return -1;
	Rund__JobStatus *js = rund__job_status__unpack(NULL, resp_len, resp);
	if (!js)
		return err_set(err, EPROTO, ERR_INTERNAL, "%s: undecodable JobStatus", path);
	if (state)
		*state = (int)js->state;
	rund__job_status__free_unpacked(js, NULL);
	return 0;
}

/* Polls Status until the job is no longer running. */
static int wait_ended(struct client *c, const char *id, struct err *err)
{
	for (;;) {
		int state = 0;
		if (call_id(c, PATH_STATUS, id, &state, err) < 0)
			return -1;
		if (state != RUND__JOB_STATUS__STATE__RUNNING)
			return 0;
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	}
}

/* ---- parallel runner -------------------------------------------------------
 *
 * `conns` threads, each with its own connection (made before the clock
 * starts), take item indexes from a shared counter until `n` are done. */

struct work;
typedef int (*item_fn)(struct work *w, struct client *c, size_t i, struct err *err);

struct work {
	size_t n, conns;
	item_fn item;
	void *ctx;
	uint64_t *lat_ns; /* per item, or NULL */
	atomic_size_t next;
	atomic_size_t errors;
	atomic_size_t connect_errors;
	pthread_barrier_t barrier;
	uint64_t t0, t1;
};

static void *worker(void *arg)
{
	struct work *w = arg;
	struct err err = {0};
	struct client *c = bench_connect(&err);
	if (!c) {
		atomic_fetch_add(&w->connect_errors, 1);
		report_error("connect: %s", err.msg);
	}
	pthread_barrier_wait(&w->barrier);
	if (!c)
		return NULL;
	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);
		if (i >= w->n)
			break;
		err_clear(&err);
		uint64_t t = now_mono_ns();
		int r = w->item(w, c, i, &err);
		if (w->lat_ns)
			w->lat_ns[i] = now_mono_ns() - t;
		if (r < 0) {
			atomic_fetch_add(&w->errors, 1);
			report_error("item %zu: %s", i, err.msg);
		}
	}
	client_free(c);
	return NULL;
}

/* Returns the wall time in seconds from the moment every connection was up
 * until the last item finished. */
static double run_parallel(struct work *w)
{
	pthread_t *th = xcalloc(w->conns, sizeof(*th));
	atomic_init(&w->next, 0);
	atomic_init(&w->errors, 0);
	atomic_init(&w->connect_errors, 0);
	pthread_barrier_init(&w->barrier, NULL, (unsigned)w->conns + 1);
	for (size_t t = 0; t < w->conns; t++) {
		int r = pthread_create(&th[t], NULL, worker, w);
		if (r != 0)
			die("pthread_create: %s", strerror(r));
	}
	pthread_barrier_wait(&w->barrier);
	w->t0 = now_mono_ns();
	for (size_t t = 0; t < w->conns; t++)
		pthread_join(th[t], NULL);
	w->t1 = now_mono_ns();
	pthread_barrier_destroy(&w->barrier);
	free(th);
	/* Items a failed connection never took are errors too. */
	size_t done = atomic_load(&w->next);
	if (done < w->n)
		atomic_fetch_add(&w->errors, w->n - done);
	return (double)(w->t1 - w->t0) / 1e9;
}

/* ---- floors ---------------------------------------------------------------- */

static int cmd_spawn(void)
{
	char *argv[] = {(char *)"/bin/true", NULL};
	uint64_t t0 = now_mono_ns();
	for (uint64_t i = 0; i < opt.n; i++) {
		pid_t pid;
		int r = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
		if (r != 0)
			die("posix_spawn %s: %s", argv[0], strerror(r));
		int ws;
		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
			;
	}
	double s = (double)(now_mono_ns() - t0) / 1e9;
	result("rate", (double)opt.n / s);
	return 0;
}

#define PIPE_CHUNK (1024 * 1024)

static int cmd_pipe(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	/* A 1 MiB pipe buffer, like a tuned producer would use; the kernel
	 * caps it at fs.pipe-max-size, and the default 64 KiB still works. */
	(void)fcntl(p[1], F_SETPIPE_SZ, PIPE_CHUNK);
	uint64_t t0 = now_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		uint8_t *buf = xcalloc(1, PIPE_CHUNK);
		for (uint64_t left = opt.bytes; left > 0;) {
			size_t n = left < PIPE_CHUNK ? (size_t)left : PIPE_CHUNK;
			if (write_all(p[1], buf, n) < 0)
				_exit(1);
			left -= n;
		}
		_exit(0);
	}
	close(p[1]);
	uint8_t *buf = xmalloc(PIPE_CHUNK);
	uint64_t got = 0;
	for (;;) {
		ssize_t n = read_retry(p[0], buf, PIPE_CHUNK);
		if (n < 0)
			die("read pipe: %s", strerror((int)-n));
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	double s = (double)(now_mono_ns() - t0) / 1e9;
	int ws;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	free(buf);
	close(p[0]);
	if (got != opt.bytes)
		die("pipe: read %" PRIu64 " of %" PRIu64 " bytes", got, opt.bytes);
	result("mibs", (double)got / (1024.0 * 1024.0) / s);
	return 0;
}

/* ---- start ------------------------------------------------------------------ */

struct start_ctx {
	struct packed req;
	char (*ids)[ID_MAX]; /* per item, or NULL */
};

static int item_start(struct work *w, struct client *c, size_t i, struct err *err)
{
	struct start_ctx *sc = w->ctx;
	char id[ID_MAX];
	if (call_start(c, &sc->req, id, err) < 0) {
		if (sc->ids)
			sc->ids[i][0] = '\0';
		return -1;
	}
	if (sc->ids)
		memcpy(sc->ids[i], id, ID_MAX);
	return 0;
}

static void report_latency(struct work *w, double secs)
{
	size_t n = w->n;
	size_t errors = atomic_load(&w->errors);
	result("n", (double)n);
	result("p50_us", (double)percentile(w->lat_ns, n, 50) / 1e3);
	result("p99_us", (double)percentile(w->lat_ns, n, 99) / 1e3);
	result("rate", (double)(n - errors) / secs);
	result("errors", (double)errors);
}

static int cmd_start(void)
{
	char *argv[] = {(char *)"/bin/true"};
	struct start_ctx sc = {0};
	pack_start(&sc.req, argv, ARRAY_SIZE(argv));
	struct work w = {
		.n = opt.n,
		.conns = opt.conns,
		.item = item_start,
		.ctx = &sc,
		.lat_ns = xcalloc(opt.n, sizeof(uint64_t)),
	};
	double secs = run_parallel(&w);
	report_latency(&w, secs);
	free(w.lat_ns);
	free(sc.req.data);
	return 0;
}

/* ---- status ----------------------------------------------------------------- */

static void start_sleeper(struct client *c, char id[ID_MAX])
{
	char *argv[] = {(char *)"sleep", (char *)"100000"};
	struct packed req;
	struct err err = {0};
	pack_start(&req, argv, ARRAY_SIZE(argv));
	if (call_start(c, &req, id, &err) < 0)
		die("%s", err.msg);
	free(req.data);
}

static void stop_job(struct client *c, const char *id)
{
	struct err err = {0};
	if (call_id(c, PATH_STOP, id, NULL, &err) < 0)
		report_error("stop %s: %s", id, err.msg);
}

struct id_ctx {
	const char *path;
	char (*ids)[ID_MAX];
	int want_state; /* 0: any */
};

static int item_id_call(struct work *w, struct client *c, size_t i, struct err *err)
{
	struct id_ctx *ic = w->ctx;
	const char *id = ic->ids[i];
	/* Its Start failed and was counted there; nothing to ask about. */
	if (!id[0])
		return 0;
	int state = 0;
	if (call_id(c, ic->path, id, &state, err) < 0)
		return -1;
	if (ic->want_state && state != ic->want_state)
		return err_set(err, EIO, ERR_INTERNAL, "%s %s: state %d, expected %d", ic->path, id,
			       state, ic->want_state);
	return 0;
}

static int cmd_status(void)
{
	struct client *c = bench_connect_or_die();
	char id[ID_MAX];
	start_sleeper(c, id);
	struct err err = {0};
	/* Warm-up: the first calls pay for page faults and allocator growth. */
	for (int i = 0; i < 100; i++)
		if (call_id(c, PATH_STATUS, id, NULL, &err) < 0)
			die("%s", err.msg);
	uint64_t *lat = xcalloc(opt.n, sizeof(*lat));
	size_t errors = 0;
	uint64_t t0 = now_mono_ns();
	for (size_t i = 0; i < opt.n; i++) {
		uint64_t t = now_mono_ns();
		if (call_id(c, PATH_STATUS, id, NULL, &err) < 0) {
			errors++;
			report_error("%s", err.msg);
		}
		lat[i] = now_mono_ns() - t;
	}
	double secs = (double)(now_mono_ns() - t0) / 1e9;
	struct work w = {.n = opt.n, .lat_ns = lat};
	atomic_init(&w.errors, errors);
	report_latency(&w, secs);
	stop_job(c, id);
	client_free(c);
	free(lat);
	return 0;
}

/* Health/Check over one established connection: the transport's own
 * round trip, with no job work behind it. */
static int cmd_check(void)
{
	struct client *c = bench_connect_or_die();
	struct err err = {0};
	uint64_t *lat = xcalloc(opt.n, sizeof(*lat));
	size_t errors = 0;
	uint64_t t0 = 0;
	for (size_t i = 0; i < opt.n + 100; i++) {
		if (i == 100)
			t0 = now_mono_ns();
		_cleanup_free_ uint8_t *resp = NULL;
		size_t resp_len = 0;
		uint64_t t = now_mono_ns();
		int r = unary(c, "/grpc.health.v1.Health/Check", (const uint8_t *)"", 0, &resp,
			      &resp_len, &err);
		uint64_t d = now_mono_ns() - t;
		if (i < 100)
			continue; /* warm-up */
		if (r < 0) {
			errors++;
			report_error("%s", err.msg);
		}
		lat[i - 100] = d;
	}
	struct work w = {.n = opt.n, .lat_ns = lat};
	atomic_init(&w.errors, errors);
	report_latency(&w, (double)(now_mono_ns() - t0) / 1e9);
	client_free(c);
	free(lat);
	return 0;
}

/* ---- handshake -------------------------------------------------------------- */

static int run_runc_status(const char *id)
{
	char *argv[] = {(char *)opt.runc, (char *)"-addr",  (char *)opt.addr, (char *)"-ca",
			(char *)opt.ca,	  (char *)"-cert",  (char *)opt.cert, (char *)"-key",
			(char *)opt.key,  (char *)"status", (char *)id,	      NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		die("posix_spawn %s: %s", argv[0], strerror(r));
	int ws;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : -1;
}

static int cmd_handshake(void)
{
	struct client *c = bench_connect_or_die();
	char id[ID_MAX];
	start_sleeper(c, id);
	uint64_t *lat = xcalloc(opt.n, sizeof(*lat));
	size_t errors = 0;
	uint64_t t0 = now_mono_ns();
	for (size_t i = 0; i < opt.n; i++) {
		struct err err = {0};
		uint64_t t = now_mono_ns();
		struct client *hc = bench_connect(&err);
		if (!hc || call_id(hc, PATH_STATUS, id, NULL, &err) < 0) {
			errors++;
			report_error("%s", err.msg);
		}
		client_free(hc);
		lat[i] = now_mono_ns() - t;
	}
	double secs = (double)(now_mono_ns() - t0) / 1e9;
	struct work w = {.n = opt.n, .lat_ns = lat};
	atomic_init(&w.errors, errors);
	report_latency(&w, secs);
	free(lat);

	if (opt.runc[0] && opt.runc_n > 0) {
		uint64_t *rl = xcalloc(opt.runc_n, sizeof(*rl));
		size_t rerr = 0;
		for (size_t i = 0; i < opt.runc_n; i++) {
			uint64_t t = now_mono_ns();
			if (run_runc_status(id) < 0) {
				rerr++;
				report_error("%s status %s failed", opt.runc, id);
			}
			rl[i] = now_mono_ns() - t;
		}
		result("runc_p50_us", (double)percentile(rl, opt.runc_n, 50) / 1e3);
		result("runc_errors", (double)rerr);
		free(rl);
	}
	stop_job(c, id);
	client_free(c);
	return 0;
}

/* ---- log -------------------------------------------------------------------- */

/* Counts the stdout and stderr bytes of one JobLog: only lengths are
 * decoded, no payload is copied. */
static int count_joblog(void *ctx, const uint8_t *msg, size_t len)
{
	uint64_t *bytes = ctx;
	struct joblog_view v;
	if (joblog_parse(msg, len, &v) < 0)
		return -1;
	*bytes += v.out_len + v.err_len;
	return 0;
}

static int read_log(struct client *c, const char *id, uint64_t *bytes, struct err *err)
{
	Rund__JobIdentifier ji = RUND__JOB_IDENTIFIER__INIT;
	ji.ulid = (char *)id;
	uint8_t req[ID_MAX + 8];
	size_t len = rund__job_identifier__pack(&ji, req);
	struct client_status st = {0};
	*bytes = 0;
	if (client_stream(c, PATH_LOG, req, len, count_joblog, bytes, &st, err) < 0)
		return -1;
	if (st.code != GRPC_OK)
		return err_set(err, EIO, ERR_INTERNAL, "Log %s: %s: %s", id,
			       grpc_code_name(st.code), st.message);
	if (*bytes != opt.bytes)
		return err_set(err, EIO, ERR_INTERNAL,
			       "Log %s: got %" PRIu64 " of %" PRIu64 " bytes", id, *bytes,
			       opt.bytes);
	return 0;
}

struct log_ctx {
	const char *id;
	uint64_t *bytes;
};

static int item_log(struct work *w, struct client *c, size_t i, struct err *err)
{
	struct log_ctx *lc = w->ctx;
	return read_log(c, lc->id, &lc->bytes[i], err);
}

static void log_readers(const char *key, const char *id, size_t readers)
{
	struct log_ctx lc = {.id = id, .bytes = xcalloc(readers, sizeof(uint64_t))};
	struct work w = {.n = readers, .conns = readers, .item = item_log, .ctx = &lc};
	double secs = run_parallel(&w);
	uint64_t total = 0;
	for (size_t i = 0; i < readers; i++)
		total += lc.bytes[i];
	char k[64];
	snprintf(k, sizeof(k), "%s_mibs", key);
	result(k, (double)total / (1024.0 * 1024.0) / secs);
	snprintf(k, sizeof(k), "%s_errors", key);
	result(k, (double)atomic_load(&w.errors));
	free(lc.bytes);
}

static int cmd_log(void)
{
	struct client *c = bench_connect_or_die();
	char count[32];
	snprintf(count, sizeof(count), "%" PRIu64, opt.bytes);
	char *argv[] = {(char *)"head", (char *)"-c", count, (char *)"/dev/zero"};
	struct packed req;
	pack_start(&req, argv, ARRAY_SIZE(argv));
	struct err err = {0};
	char id[ID_MAX];

	/* Live: Start, then follow the output as it is written, until the
	 * job ended and every byte arrived. Bounded by the producer. */
	uint64_t t0 = now_mono_ns();
	if (call_start(c, &req, id, &err) < 0)
		die("%s", err.msg);
	uint64_t bytes = 0;
	int r = read_log(c, id, &bytes, &err);
	double secs = (double)(now_mono_ns() - t0) / 1e9;
	if (r < 0)
		report_error("%s", err.msg);
	result("live_mibs", (double)bytes / (1024.0 * 1024.0) / secs);
	result("live_errors", r < 0);
	if (wait_ended(c, id, &err) < 0)
		die("%s", err.msg);

	/* Finished: the whole file is there; the daemon is the bottleneck. */
	log_readers("done1", id, 1);
	log_readers("doneN", id, opt.readers);
	free(req.data);
	client_free(c);
	return 0;
}

/* ---- mem ---------------------------------------------------------------------- */

/* Sums the given "Key:   N kB" fields of a /proc file; -1 if unreadable. */
static long proc_kib(pid_t pid, const char *file, const char *const *keys, size_t nkeys)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char line[256];
	long sum = 0;
	size_t found = 0;
	while (fgets(line, sizeof(line), f)) {
		for (size_t k = 0; k < nkeys; k++) {
			size_t kl = strlen(keys[k]);
			if (strncmp(line, keys[k], kl) == 0 && line[kl] == ':') {
				sum += strtol(line + kl + 1, NULL, 10);
				found++;
			}
		}
	}
	return found == nkeys ? sum : -1;
}

static long rss_kib(pid_t pid)
{
	static const char *const keys[] = {"VmRSS"};
	return proc_kib(pid, "status", keys, 1);
}

/* True when pid is a supervisor of this daemon: "<rund> execute -fifo
 * <state_dir>/...". */
static pid_t ppid_of(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	if (read_file_at(AT_FDCWD, path, 4096, &buf, &len) < 0)
		return -1;
	const char *p = strrchr(buf, ')'); /* after comm, which may hold anything */
	int ppid;
	return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

/* A supervisor of the daemon -pid that runs a job: it rewrote its command
 * line to "rund execute <ULID>" (a spare still shows "-fifo PATH", the
 * fork server "-spares"). */
static bool is_job_supervisor(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	return ppid_of(pid) == (pid_t)opt.pid &&
	       read_file_at(AT_FDCWD, path, 4096, &buf, &len) == 0 &&
	       strncmp(buf, "rund execute ", 13) == 0 && len > 13 && buf[13] != '-';
}

/* A job's init (sandbox.c names it), child of one of those supervisors. */
static bool is_job_init(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	return read_file_at(AT_FDCWD, path, 64, &buf, &len) == 0 &&
	       strncmp(buf, "rund-init\n", 10) == 0 && is_job_supervisor(ppid_of(pid));
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

/* True when pid's address space is its parent's (an init cloned with
 * CLONE_VM): its pages are counted with the parent's, not again. */
static bool shares_parent_memory(pid_t pid)
{
	return syscall(SYS_kcmp, pid, ppid_of(pid), 1 /* KCMP_VM */, 0, 0) == 0;
}

/* Median private memory (Private_Clean + Private_Dirty) and RSS of up to
 * `max` supervisors, or of their jobs' inits (init = true; *shared counts
 * those that share their supervisor's memory, whose private memory and
 * Pss are then 0). */
static void supervisor_memory(size_t max, bool init, long *priv_kib, long *rss, long *pss,
			      size_t *found, size_t *shared)
{
	static const char *const keys[] = {"Private_Clean", "Private_Dirty"};
	static const char *const pss_key[] = {"Pss"};
	long *pv = xcalloc(max, sizeof(long)), *rv = xcalloc(max, sizeof(long));
	long *sv = xcalloc(max, sizeof(long));
	size_t n = 0;
	*shared = 0;
	DIR *d = opendir("/proc");
	if (!d)
		die("opendir /proc: %s", strerror(errno));
	struct dirent *de;
	while (n < max && (de = readdir(d))) {
		char *endp;
		long pid = strtol(de->d_name, &endp, 10);
		if (*endp || pid <= 0 ||
		    !(init ? is_job_init((pid_t)pid) : is_job_supervisor((pid_t)pid)))
			continue;
		long p = proc_kib((pid_t)pid, "smaps_rollup", keys, ARRAY_SIZE(keys));
		long r = rss_kib((pid_t)pid);
		long ps = proc_kib((pid_t)pid, "smaps_rollup", pss_key, 1);
		if (p < 0 || r < 0 || ps < 0)
			continue;
		if (init && shares_parent_memory((pid_t)pid)) {
			p = ps = 0;
			(*shared)++;
		}
		pv[n] = p;
		rv[n] = r;
		sv[n] = ps;
		n++;
	}
	closedir(d);
	qsort(pv, n, sizeof(long), cmp_long);
	qsort(rv, n, sizeof(long), cmp_long);
	qsort(sv, n, sizeof(long), cmp_long);
	*priv_kib = n ? pv[n / 2] : -1;
	*rss = n ? rv[n / 2] : -1;
	*pss = n ? sv[n / 2] : -1;
	*found = n;
	free(pv);
	free(rv);
	free(sv);
}

static int cmd_mem(void)
{
	if (!opt.pid)
		die("mem: -pid of the daemon is required");
	pid_t dpid = (pid_t)opt.pid;
	struct client *c = bench_connect_or_die();
	struct err err = {0};

	/* Warm-up: a few Starts, Statuses and a Stop, so the idle figure
	 * includes what the first calls allocate for good. */
	char id[ID_MAX];
	for (int i = 0; i < 5; i++) {
		start_sleeper(c, id);
		for (int k = 0; k < 10; k++)
			if (call_id(c, PATH_STATUS, id, NULL, &err) < 0)
				die("%s", err.msg);
		stop_job(c, id);
	}
	nanosleep(&(struct timespec){.tv_nsec = 300 * 1000 * 1000}, NULL);
	long idle = rss_kib(dpid);
	if (idle < 0)
		die("cannot read /proc/%d/status", (int)dpid);
	result("rss_idle_kib", (double)idle);
	static const char *const anon[] = {"RssAnon"};
	result("rss_idle_anon_kib", (double)proc_kib(dpid, "status", anon, 1));

	char *argv[] = {(char *)"sleep", (char *)"1000"};
	struct start_ctx sc = {.ids = xcalloc(opt.n, ID_MAX)};
	pack_start(&sc.req, argv, ARRAY_SIZE(argv));
	struct work w = {.n = opt.n, .conns = opt.conns, .item = item_start, .ctx = &sc};
	run_parallel(&w);
	size_t errors = atomic_load(&w.errors);
	nanosleep(&(struct timespec){.tv_nsec = 500 * 1000 * 1000}, NULL);
	long loaded = rss_kib(dpid);
	result("jobs", (double)(opt.n - errors));
	result("rss_loaded_kib", (double)loaded);
	if (opt.n > errors)
		result("per_job_bytes",
		       (double)(loaded - idle) * 1024.0 / (double)(opt.n - errors));

	long priv, srss, pss;
	size_t found, shared;
	supervisor_memory(9, false, &priv, &srss, &pss, &found, &shared);
	result("supervisors_sampled", (double)found);
	result("sup_private_kib", (double)priv);
	result("sup_rss_kib", (double)srss);
	result("sup_pss_kib", (double)pss);
	supervisor_memory(9, true, &priv, &srss, &pss, &found, &shared);
	result("inits_sampled", (double)found);
	result("inits_sharing_memory", (double)shared);
	result("init_private_kib", (double)priv);
	result("init_rss_kib", (double)srss);
	result("init_pss_kib", (double)pss);

	struct id_ctx ic = {.path = PATH_STOP, .ids = sc.ids};
	struct work ws = {.n = opt.n, .conns = opt.conns, .item = item_id_call, .ctx = &ic};
	run_parallel(&ws);
	result("errors", (double)(errors + atomic_load(&ws.errors)));
	free(sc.ids);
	free(sc.req.data);
	client_free(c);
	return 0;
}

/* ---- scale -------------------------------------------------------------------- */

struct list_count {
	size_t entries, bad;
};

static int count_entry(void *ctx, const uint8_t *msg, size_t len)
{
	struct list_count *lc = ctx;
	Rund__JobListEntry *e = rund__job_list_entry__unpack(NULL, len, msg);
	if (e && e->status)
		lc->entries++;
	else
		lc->bad++;
	if (e)
		rund__job_list_entry__free_unpacked(e, NULL);
	return 0;
}

/* One List call of every job, each entry decoded as runc does: reports
 * "<key>_s" and "<key>_jobs" (how many arrived). */
static void list_all(const char *key)
{
	struct client *c = bench_connect_or_die();
	Rund__JobListRequest req = RUND__JOB_LIST_REQUEST__INIT;
	uint8_t buf[16];
	size_t len = rund__job_list_request__pack(&req, buf);
	struct list_count lc = {0};
	struct client_status st;
	struct err err = {0};
	uint64_t t0 = now_mono_ns();
	int r = client_stream(c, PATH_LIST, buf, len, count_entry, &lc, &st, &err);
	double secs = (double)(now_mono_ns() - t0) / 1e9;
	client_free(c);
	if (r < 0 || st.code != GRPC_OK || lc.bad)
		report_error("list: %s", r < 0 ? err.msg : st.message);
	char k[64];
	snprintf(k, sizeof k, "%s_s", key);
	result(k, secs);
	snprintf(k, sizeof k, "%s_jobs", key);
	result(k, (double)lc.entries);
}

static int cmd_scale(void)
{
	char *argv[] = {(char *)"sleep", (char *)"100000"};
	struct start_ctx sc = {.ids = xcalloc(opt.n, ID_MAX)};
	pack_start(&sc.req, argv, ARRAY_SIZE(argv));

	struct work ws = {.n = opt.n, .conns = opt.conns, .item = item_start, .ctx = &sc};
	double t_start = run_parallel(&ws);
	size_t e_start = atomic_load(&ws.errors);
	result("jobs", (double)opt.n);
	result("start_s", t_start);
	result("start_errors", (double)e_start);

	struct id_ctx ic = {
		.path = PATH_STATUS, .ids = sc.ids, .want_state = RUND__JOB_STATUS__STATE__RUNNING};
	struct work wt = {.n = opt.n, .conns = opt.conns, .item = item_id_call, .ctx = &ic};
	double t_status = run_parallel(&wt);
	result("status_s", t_status);
	result("status_errors", (double)atomic_load(&wt.errors));
	list_all("list_running");

	ic.path = PATH_STOP;
	ic.want_state = 0;
	struct work wp = {.n = opt.n, .conns = opt.conns, .item = item_id_call, .ctx = &ic};
	double t_stop = run_parallel(&wp);
	result("stop_s", t_stop);
	result("stop_errors", (double)atomic_load(&wp.errors));
	list_all("list_exited");
	result("errors", (double)(e_start + atomic_load(&wt.errors) + atomic_load(&wp.errors)));
	free(sc.ids);
	free(sc.req.data);
	return 0;
}

/* ---- main ---------------------------------------------------------------------- */

struct command {
	const char *name;
	int (*run)(void);
};

static const struct command commands[] = {
	{"spawn", cmd_spawn},	{"pipe", cmd_pipe},   {"start", cmd_start},
	{"status", cmd_status}, {"check", cmd_check}, {"handshake", cmd_handshake},
	{"log", cmd_log},	{"mem", cmd_mem},     {"scale", cmd_scale},
};

int main(int argc, char **argv)
{
	struct flag flags[] = {
		{"addr", FLAG_STRING, &opt.addr, "daemon address host:port"},
		{"ca", FLAG_STRING, &opt.ca, "CA certificate (PEM)"},
		{"cert", FLAG_STRING, &opt.cert, "client certificate (PEM)"},
		{"key", FLAG_STRING, &opt.key, "client private key (PEM)"},
		{"n", FLAG_U64, &opt.n, "number of operations (jobs, calls, spawns)"},
		{"conns", FLAG_U64, &opt.conns, "concurrent connections, one thread each"},
		{"bytes", FLAG_BYTES, &opt.bytes, "bytes for pipe and log (K/M/G suffixes)"},
		{"readers", FLAG_U64, &opt.readers, "concurrent Log readers of a finished job"},
		{"pid", FLAG_U64, &opt.pid, "daemon pid (mem)"},
		{"state_dir", FLAG_STRING, &opt.state_dir,
		 "the daemon's state directory (mem: finds its supervisors)"},
		{"runc", FLAG_STRING, &opt.runc,
		 "runc binary to time whole `runc status` processes (handshake)"},
		{"runc_n", FLAG_U64, &opt.runc_n, "how many runc processes"},
		{"timeout_ms", FLAG_U64, &opt.timeout_ms, "per call deadline in ms"},
	};
	if (argc < 2) {
		fprintf(stderr,
			"usage: rund-bench "
			"<spawn|pipe|start|status|check|handshake|log|mem|scale> [flags]\n");
		flags_usage(stderr, flags, ARRAY_SIZE(flags));
		return 1;
	}
	struct err err = {0};
	int idx = flags_parse(flags, ARRAY_SIZE(flags), argc - 2, argv + 2, &err);
	if (idx == -FLAGS_HELP) {
		flags_usage(stdout, flags, ARRAY_SIZE(flags));
		return 0;
	}
	if (idx < 0 || idx != argc - 2)
		die("%s", idx < 0 ? err.msg : "unexpected argument");
	if (opt.conns < 1 || opt.conns > 1024 || opt.readers < 1 || opt.readers > 1024)
		die("-conns and -readers must be in [1, 1024]");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run();
	die("unknown command \"%s\"", argv[1]);
}
