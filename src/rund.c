/* rund: the daemon (`rund serve`) and the per-job supervisor
 * (`rund execute -fifo PATH`) in one binary, so the supervisor is a fresh
 * exec of the same code with none of the daemon's memory. */
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "audit.h"
#include "cgroup.h"
#include "config.h"
#include "flags.h"
#include "job.h"
#include "forkserver.h"
#include "proctitle.h"
#include "sandbox.h"
#include "server.h"
#include "supervisor.h"
#include "tls.h"
#include "uidclaim.h"
#include "util.h"
#include "version.h"

#define NS_PER_SEC 1000000000ull

struct serve_opts {
	const char *addr, *ca, *cert, *key, *tls_groups;
	const char *state_dir, *cgroup, *io_devices, *log_format;
	uint64_t max_log_bytes, retention, handshake_timeout, drain, min_free_space;
	uint64_t max_connections, max_handshakes;
	uint64_t idle_timeout, keepalive, request_timeout;
	uint64_t identity_connections, identity_calls, identity_log_streams;
	uint64_t identity_request_bytes, request_bytes;
	const char *job_user, *job_uids, *job_network, *job_namespaces, *rootfs;
	bool allow_example_pki_on_network;
	bool cgroup_daemon_stays;
	enum audit_format audit_format;
	uint64_t job_tmp_size, job_max_procs;
};

struct daemon {
	struct event_base *base;
	struct loop *loop; /* base, as the job layer sees it */
	struct server *server;
	struct event *sigint, *sigterm, *sighup;
	SSL_CTX *ssl_ctx;	    /* reloaded in place on SIGHUP */
	const struct tls_opts *tls; /* the files to reload from */
	bool stopping;
	unsigned drain_ms;
};

static void usage_main(FILE *out)
{
	fprintf(out,
		"usage: rund serve [flags]          run the daemon\n"
		"       rund --version\n"
		"       rund execute -fifo PATH     per-job supervisor (started by the daemon)\n"
		"       rund execute -spares        forks supervisors (started by the daemon)\n"
		"Run \"rund serve -h\" for the daemon's flags.\n");
}

static void drained(void *ctx)
{
	struct daemon *d = ctx;
	event_base_loopbreak(d->base);
}

static void on_signal(evutil_socket_t sig, short what, void *ctx)
{
	struct daemon *d = ctx;
	if (d->stopping) {
		fprintf(stderr, "rund: second signal, exiting now\n");
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	fprintf(stderr, "rund: %s: no new calls; draining for up to %u ms (jobs keep running)\n",
		strsignal((int)sig), d->drain_ms);
	server_shutdown(d->server, d->drain_ms, drained, d);
}

/* SIGHUP: new connections get the CA, certificate and key as they are on
 * disk now. A file that does not load leaves the old ones in place. */
static void on_hup(evutil_socket_t sig, short what, void *ctx)
{
	struct daemon *d = ctx;
	struct err err = {0};
	if (tls_server_ctx_reload(d->ssl_ctx, d->tls, &err) < 0)
		fprintf(stderr, "rund: SIGHUP: keeping the old certificates: %s\n", err.msg);
	else
		fprintf(stderr, "rund: SIGHUP: reloaded %s, %s and %s for new connections\n",
			d->tls->ca, d->tls->cert, d->tls->key);
}

/* "host:port" for the log line the tests and users read. */
static void print_listening(const char *addr, int port)
{
	const char *colon = strrchr(addr, ':');
	size_t hostlen = colon ? (size_t)(colon - addr) : 0;
	if (hostlen == 0)
		fprintf(stderr, "rund: listening on [::]:%d (all interfaces)\n", port);
	else
		fprintf(stderr, "rund: listening on %.*s:%d\n", (int)hostlen, addr, port);
}

static int make_state_dir(const char *path, char **abs, struct err *err)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_sys(err, errno, "create state directory %s", path);
	char *p = realpath(path, NULL);
	if (!p)
		return err_sys(err, errno, "resolve state directory %s", path);
	*abs = p;
	return 0;
}

/* Each running job holds a pidfd and a directory fd; allow as many as the
 * hard limit permits rather than failing at the soft default of 1024. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* 1 when every address host resolves to is a loopback address, 0 when
 * one is not (an empty host means every interface), -EINVAL with err. */
static int addr_is_loopback(const char *addr, struct err *err)
{
	_cleanup_free_ char *host = NULL, *port = NULL;
	int r = addr_split(addr, &host, &port, err);
	if (r < 0)
		return r;
	if (!host[0])
		return 0;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return err_set(err, EINVAL, ERR_INVALID, "address \"%s\": %s", addr,
			       gai_strerror(r));
	int loopback = 1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
			if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
				loopback = 0;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ai->ai_addr;
			const struct in6_addr *a = &sin6->sin6_addr;
			if (!IN6_IS_ADDR_LOOPBACK(a) &&
			    !(IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127))
				loopback = 0;
		} else {
			loopback = 0;
		}
	}
	freeaddrinfo(res);
	return loopback;
}

/* The example CA's key is in the repository: on a network address anyone
 * could sign a client certificate and run commands here as root. 0 to go
 * on, or an exit status. */
static int refuse_example_pki(const struct serve_opts *o)
{
	struct err err = {0};
	int example = tls_ca_is_example(o->ca, &err);
	if (example <= 0)
		return 0; /* unreadable: the TLS set-up reports it */
	int loopback = addr_is_loopback(o->addr, &err);
	if (loopback < 0) {
		fprintf(stderr, "rund: -addr: %s\n", err.msg);
		return 2;
	}
	if (loopback)
		return 0;
	if (o->allow_example_pki_on_network) {
		fprintf(stderr,
			"rund: WARNING: serving %s with the example CA %s, whose private key "
			"is public: anyone who can reach this address can run commands on this "
			"host\n",
			o->addr, o->ca);
		return 0;
	}
	fprintf(stderr,
		"rund: refusing to listen on %s with the example CA %s (subject O=%s).\n"
		"Its private key is published with rund's source, so anyone who can reach this\n"
		"address could sign a client certificate and run commands on this host.\n"
		"Make a private PKI and pass it with -ca, -cert and -key, for example:\n"
		"    rund-pki -d /etc/rund ca\n"
		"    rund-pki -d /etc/rund server server \"$(hostname -f)\" <this host's IPs>\n"
		"    rund-pki -d ~/rund-clients client alice DNS:alice.example.net\n"
		"then move ca-key.pem off this host. Or listen on loopback (-addr "
		"127.0.0.1:8000).\n"
		"To run with the example PKI on a network anyway (tests only): "
		"-allow_example_pki_on_network\n",
		o->addr, o->ca, TLS_EXAMPLE_CA_ORG);
	return 1;
}

static int run(const struct serve_opts *o);

/* Adds the directory holding file `path` to the directories jobs must not
 * see, once. */
static int hide_dir_of(struct sandbox_policy *p, const char *path, struct err *err)
{
	_cleanup_free_ char *abs = realpath(path, NULL);
	if (!abs)
		return err_sys(err, errno, "resolve %s", path);
	char *slash = strrchr(abs, '/');
	if (slash == abs)
		slash[1] = '\0';
	else
		*slash = '\0';
	for (size_t i = 0; i < p->n_hide; i++)
		if (strcmp(p->hide[i], abs) == 0)
			return 0;
	if (p->n_hide == SANDBOX_MAX_HIDE)
		return err_set(err, E2BIG, ERR_INVALID, "too many directories to hide");
	p->hide[p->n_hide++] = steal_pointer(&abs);
	return 0;
}

/* The cgroup2 mount point, which a confined job gets remounted (showing
 * only its own group); NULL when none is found. */
static char *cgroup2_mount_point(void)
{
	_cleanup_free_ char *root = NULL;
	char *mnt = NULL;
	return cgroup_find_mount(&mnt, &root, NULL) == 0 ? mnt : NULL;
}

/* The job policy from the flags (DESIGN §10). 0, or -EINVAL with err
 * naming the flag. */
static int job_policy(const struct serve_opts *o, const char *state_dir, struct sandbox_policy *p,
		      uint32_t range[2], struct err *err)
{
	memset(p, 0, sizeof *p);
	if (strcmp(o->job_user, "root") == 0) {
		p->root = true;
	} else if (strcmp(o->job_user, "dynamic") != 0) {
		return err_set(err, EINVAL, ERR_INVALID,
			       "-job_user \"%s\": want \"dynamic\" or \"root\"", o->job_user);
	}
	int r = uidpool_parse_range(o->job_uids, &range[0], &range[1], err);
	if (r < 0)
		return err_wrap(err, "-job_uids");
	if ((r = sandbox_parse_namespaces(o->job_namespaces, &p->namespaces, err)) < 0)
		return err_wrap(err, "-job_namespaces");
	if (strcmp(o->job_network, "none") == 0)
		p->namespaces |= SANDBOX_NS_NET;
	else if (strcmp(o->job_network, "host") != 0)
		return err_set(err, EINVAL, ERR_INVALID,
			       "-job_network \"%s\": want \"host\" or \"none\"", o->job_network);
	if (p->root && (o->rootfs[0] || strcmp(o->job_network, "host") != 0))
		return err_set(err, EINVAL, ERR_INVALID,
			       "-job_user root runs jobs with no isolation: -rootfs and "
			       "-job_network none need -job_user dynamic");
	if (p->root)
		return 0;
	p->hide[p->n_hide++] = xstrdup(state_dir);
	if ((r = hide_dir_of(p, o->ca, err)) < 0 || (r = hide_dir_of(p, o->cert, err)) < 0 ||
	    (r = hide_dir_of(p, o->key, err)) < 0)
		return r;
	if (o->rootfs[0]) {
		p->rootfs = realpath(o->rootfs, NULL);
		if (!p->rootfs)
			return err_sys(err, errno, "-rootfs %s", o->rootfs);
	}
	p->cgroup_mount = cgroup2_mount_point();
	p->tmp_size = o->job_tmp_size;
	p->max_procs = o->job_max_procs;
	return sandbox_policy_check(p, err);
}

/* Hiding works by path: a key that other users may read can still be
 * read by a job through any other path to the same file (a hard link, a
 * copy of the checkout). sshd refuses such keys; we say it loudly. */
static void warn_if_key_readable(const char *key)
{
	struct stat st;
	if (stat(key, &st) == 0 && (st.st_mode & 077))
		fprintf(stderr,
			"rund: WARNING: -key %s is readable by %s (mode %04o): jobs cannot see "
			"its directory, but could read it through any other path to the same file; "
			"chmod 600 it\n",
			key, st.st_mode & 044 ? "other users" : "its group", st.st_mode & 07777);
}

static void announce_policy(const struct sandbox_policy *p, const uint32_t range[2])
{
	if (p->root) {
		fprintf(stderr,
			"rund: WARNING: -job_user root: every job runs as root with every "
			"capability in the host's namespaces. Any client can read this server's "
			"key, every job's output, and kill this daemon.\n");
		return;
	}
	char ns[96];
	sandbox_format_namespaces(p->namespaces, ns, sizeof ns);
	fprintf(stderr, "rund: jobs run as uids %u-%u, namespaces %s%s%s\n", range[0], range[1], ns,
		p->rootfs ? ", rootfs " : "", p->rootfs ? p->rootfs : "");
	if ((p->namespaces & SANDBOX_NS_DEFAULT) != SANDBOX_NS_DEFAULT)
		fprintf(stderr,
			"rund: WARNING: -job_namespaces %s: jobs may see the host's processes, "
			"the state directory or the server's key\n",
			ns);
}

static int serve(int argc, char **argv)
{
	struct serve_opts o = {
		.addr = ":8000",
		.ca = RUND_DEFAULT_CA,
		.cert = RUND_DEFAULT_SERVER_CERT,
		.key = RUND_DEFAULT_SERVER_KEY,
		.tls_groups = TLS_DEFAULT_GROUPS,
		.state_dir = RUND_DEFAULT_STATE_DIR,
		.cgroup = "",
		.io_devices = "",
		.log_format = "logfmt",
		.max_log_bytes = 1ull << 30,
		.min_free_space = 64ull << 20,
		.retention = 7 * 24 * 3600 * NS_PER_SEC,
		.handshake_timeout = 5 * NS_PER_SEC,
		.drain = 5 * NS_PER_SEC,
		.max_connections = 1024,
		.max_handshakes = 64,
		.idle_timeout = 5 * 60 * NS_PER_SEC,
		.keepalive = 60 * NS_PER_SEC,
		.request_timeout = 30 * NS_PER_SEC,
		.identity_connections = 64,
		.identity_calls = 1024,
		.identity_log_streams = 512,
		.identity_request_bytes = 32ull << 20,
		.request_bytes = 256ull << 20,
		.job_user = "dynamic",
		.job_uids = UIDPOOL_DEFAULT,
		.job_network = "host",
		.job_namespaces = "all",
		.rootfs = "",
		.job_tmp_size = 1ull << 30,
		.job_max_procs = 4096,
	};
	struct flag flags[] = {
		{"addr", FLAG_STRING, &o.addr,
		 "listen address host:port (\":8000\" = all interfaces, IPv4 and IPv6)"},
		{"ca", FLAG_STRING, &o.ca,
		 "CA certificate(s) that client certificates must chain to (PEM)"},
		{"cert", FLAG_STRING, &o.cert, "server certificate (PEM)"},
		{"key", FLAG_STRING, &o.key, "server private key (PEM)"},
		{"tls_groups", FLAG_STRING, &o.tls_groups,
		 "TLS 1.3 key exchange groups, in order of preference"},
		{"state_dir", FLAG_STRING, &o.state_dir,
		 "directory for job specs, output and final status"},
		{"cgroup", FLAG_STRING, &o.cgroup,
		 "cgroup v2 directory to run under (default: the daemon's own cgroup, or <cgroup2 "
		 "mount>/rund when that is the root)"},
		{"cgroup_daemon_stays", FLAG_BOOL, &o.cgroup_daemon_stays,
		 "leave the daemon in its own cgroup: -cgroup is another unit's "
		 "(rund-jobs.service), whose processes move to <cgroup>/daemon with "
		 "the supervisors"},
		{"io_devices", FLAG_STRING, &o.io_devices,
		 "MAJ:MIN,... devices io.max limits apply to (default: every whole disk except "
		 "loop, ram, zram)"},
		{"max_log_bytes", FLAG_BYTES, &o.max_log_bytes,
		 "output kept per job (K/M/G suffixes; 0 = unlimited); later output is discarded "
		 "and readers are told"},
		{"min_free_space", FLAG_BYTES, &o.min_free_space,
		 "Start is refused while the state directory's filesystem has less free space "
		 "(K/M/G suffixes; 0 = no floor)"},
		{"retention", FLAG_DURATION, &o.retention,
		 "how long an ended job, its output and status are kept (0 = forever)"},
		{"handshake_timeout", FLAG_DURATION, &o.handshake_timeout,
		 "drop connections that have not completed the TLS handshake and the HTTP/2 "
		 "preface by then"},
		{"max_handshakes", FLAG_U64, &o.max_handshakes,
		 "connections allowed in their handshake at once; when full, a new one replaces "
		 "the oldest"},
		{"idle_timeout", FLAG_DURATION, &o.idle_timeout,
		 "close a connection with no open call after this long, with GOAWAY (0 = never)"},
		{"keepalive", FLAG_DURATION, &o.keepalive,
		 "PING interval while calls are open; a peer silent for one more interval is "
		 "dropped (0 = off)"},
		{"request_timeout", FLAG_DURATION, &o.request_timeout,
		 "time a client has to send a whole request after its headers (0 = no limit)"},
		{"identity_connections", FLAG_U64, &o.identity_connections,
		 "connections per client identity (its certificate's SAN set; certificates "
		 "without a SAN share one anonymous identity with 1/8 of each per-identity "
		 "limit); 0 = no limit"},
		{"identity_calls", FLAG_U64, &o.identity_calls,
		 "concurrent calls per client identity (0 = no limit)"},
		{"identity_log_streams", FLAG_U64, &o.identity_log_streams,
		 "concurrent Log streams per client identity (0 = no limit)"},
		{"identity_request_bytes", FLAG_BYTES, &o.identity_request_bytes,
		 "bytes of unfinished requests held per client identity (0 = no limit)"},
		{"request_bytes", FLAG_BYTES, &o.request_bytes,
		 "bytes of unfinished requests held for all clients together (0 = no limit)"},
		{"drain", FLAG_DURATION, &o.drain,
		 "on SIGINT/SIGTERM, how long running calls may take to finish"},
		{"max_connections", FLAG_U64, &o.max_connections,
		 "maximum number of simultaneous client connections"},
		{"job_user", FLAG_STRING, &o.job_user,
		 "\"dynamic\": every job runs as a uid of its own from -job_uids, without "
		 "privileges, in namespaces of its own; \"root\": jobs run as root in the host's "
		 "namespaces (no isolation at all)"},
		{"job_uids", FLAG_STRING, &o.job_uids,
		 "FIRST-LAST: the uids (and gids) confined jobs run as, one per live job"},
		{"job_network", FLAG_STRING, &o.job_network,
		 "\"host\": jobs share the host's network; \"none\": each job gets a network "
		 "namespace of its own with only loopback"},
		{"job_namespaces", FLAG_STRING, &o.job_namespaces,
		 "namespaces confined jobs get: \"all\" (pid,mount,ipc,uts,cgroup) or a subset, "
		 "for "
		 "measurement; fewer weakens isolation"},
		{"rootfs", FLAG_STRING, &o.rootfs,
		 "run every job in this directory (pivot_root, read-only, own /proc, minimal /dev, "
		 "private /tmp) instead of the host's file system"},
		{"log_format", FLAG_STRING, &o.log_format,
		 "audit lines on stderr, one per call and per job start and end: logfmt or json"},
		{"allow_example_pki_on_network", FLAG_BOOL, &o.allow_example_pki_on_network,
		 "start even though -ca is the repository's example CA (public key!) and -addr is "
		 "not loopback"},
		{"job_tmp_size", FLAG_BYTES, &o.job_tmp_size,
		 "bytes a confined job's private /tmp, /var/tmp, /dev/shm and /run/lock hold "
		 "together (K/M/G; 0 = tmpfs's default, half of RAM)"},
		{"job_max_procs", FLAG_U64, &o.job_max_procs,
		 "processes and threads a confined job may have (RLIMIT_NPROC of its uid; 0 = "
		 "inherited); max_pids limits it further where the pids controller exists"},
	};
	struct err err = {0};
	int idx = flags_parse(flags, ARRAY_SIZE(flags), argc, argv, &err);
	if (idx == -FLAGS_HELP) {
		printf("usage: rund serve [flags]\n\nFlags:\n");
		flags_usage(stdout, flags, ARRAY_SIZE(flags));
		return 0;
	}
	if (idx < 0 || idx < argc) {
		fprintf(stderr, "rund serve: %s\n",
			idx < 0 ? err.msg : "unexpected argument (serve takes only flags)");
		flags_usage(stderr, flags, ARRAY_SIZE(flags));
		return 2;
	}
	if (audit_parse_format(o.log_format, &o.audit_format) < 0) {
		fprintf(stderr, "rund serve: -log_format \"%s\": want logfmt or json\n",
			o.log_format);
		return 2;
	}
	const struct {
		const char *name;
		uint64_t v;
	} counts[] = {{"max_connections", o.max_connections}, {"max_handshakes", o.max_handshakes}};
	for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
		if (counts[i].v == 0 || counts[i].v > 1000000) {
			fprintf(stderr, "rund serve: -%s %llu is out of range [1, 1000000]\n",
				counts[i].name, (unsigned long long)counts[i].v);
			return 2;
		}
	}
	const uint64_t *ms[] = {&o.idle_timeout, &o.keepalive, &o.request_timeout,
				&o.handshake_timeout};
	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		if (*ms[i] / 1000000 > UINT32_MAX) {
			fprintf(stderr, "rund serve: a duration flag is above %u ms\n", UINT32_MAX);
			return 2;
		}
	}
	int refused = refuse_example_pki(&o);
	if (refused)
		return refused;

	return run(&o);
}

/* Sets everything up, serves until a signal, and tears down in reverse
 * order; every start-up failure leaves through the same path. */
static int run(const struct serve_opts *o)
{
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	struct err err = {0};
	int status = 1;
	struct daemon d = {.drain_ms = (unsigned)(o->drain / 1000000)};
	struct cgroup_root cg = {.dirfd = -1, .jobs_fd = -1};
	struct audit audit = {.out = stderr, .format = o->audit_format};
	struct io_device *devs = NULL;
	size_t ndevs = 0;
	struct job_table *jobs = NULL;
	struct api *api = NULL;
	struct sandbox_policy policy = {0};
	struct uidpool *uids = NULL;
	uint32_t uid_range[2] = {0, 0};
	struct uidclaim uid_claim = {.fd = -1};
	_cleanup_free_ char *state_dir = NULL;
	_cleanup_free_ char *exe = NULL;

	struct tls_opts tls = {
		.ca = o->ca, .cert = o->cert, .key = o->key, .groups = o->tls_groups};
	SSL_CTX *ssl_ctx = tls_server_ctx_new(&tls, &err);
	if (!ssl_ctx) {
		fprintf(stderr, "rund: %s\n", err.msg);
		goto out;
	}
	int r = o->io_devices[0] ? cgroup_parse_io_devices(o->io_devices, &devs, &ndevs, &err)
				 : cgroup_default_io_devices(&devs, &ndevs, &err);
	if (r < 0) {
		fprintf(stderr, "rund: -io_devices: %s\n", err.msg);
		status = 2;
		goto out;
	}
	if (cgroup_root_setup(o->cgroup[0] ? o->cgroup : NULL, o->cgroup_daemon_stays, &cg, &err) <
	    0) {
		fprintf(stderr, "rund: cgroup: %s\n", err.msg);
		goto out;
	}
	exe = realpath("/proc/self/exe", NULL);
	if (!exe) {
		fprintf(stderr, "rund: cannot resolve /proc/self/exe: %s\n", strerror(errno));
		goto out;
	}
	if (make_state_dir(o->state_dir, &state_dir, &err) < 0) {
		fprintf(stderr, "rund: %s\n", err.msg);
		goto out;
	}
	if (job_policy(o, state_dir, &policy, uid_range, &err) < 0) {
		fprintf(stderr, "rund serve: %s\n", err.msg);
		status = 2;
		goto out;
	}
	if (!policy.root)
		uids = uidpool_new(uid_range[0], uid_range[1]);
	announce_policy(&policy, uid_range);
	warn_if_key_readable(o->key);
	d.base = event_base_new();
	if (!d.base) {
		fprintf(stderr, "rund: cannot create the event loop\n");
		goto out;
	}
	d.loop = loop_new(d.base);
	struct job_config jc = {
		.state_dir = state_dir,
		.exe = exe,
		.cgroup = &cg,
		.in_daemon_group = !o->cgroup_daemon_stays,
		.io_devices = devs,
		.n_io_devices = ndevs,
		.max_log_bytes = o->max_log_bytes,
		.retention_ns = o->retention,
		.min_free = o->min_free_space,
		.sandbox = &policy,
		.uids = uids,
		.audit = &audit,
	};
	uint64_t t0 = now_mono_ns();
	if (job_table_open(d.loop, &jc, &jobs, &err) < 0) {
		fprintf(stderr, "rund: %s\n", err.msg);
		goto out;
	}
	/* No other daemon on this host may hand out our uids while we (or
	 * our jobs) run (uidclaim.h). After the state directory's lock: a
	 * second daemon on it is told that first. */
	if (!policy.root && uidclaim_take(UIDCLAIM_DIR, uid_range[0], uid_range[1], state_dir,
					  &uid_claim, &err) < 0) {
		fprintf(stderr, "rund serve: %s\n", err.msg);
		goto out;
	}
	struct server_opts so = {
		.addr = o->addr,
		.ssl_ctx = ssl_ctx,
		.service = api_service(api = api_new(jobs)),
		.max_connections = (size_t)o->max_connections,
		.max_handshakes = (size_t)o->max_handshakes,
		.handshake_timeout_ms = (unsigned)(o->handshake_timeout / 1000000),
		.idle_timeout_ms = (unsigned)(o->idle_timeout / 1000000),
		.keepalive_ms = (unsigned)(o->keepalive / 1000000),
		.request_timeout_ms = (unsigned)(o->request_timeout / 1000000),
		.identity_connections = (size_t)o->identity_connections,
		.identity_calls = (size_t)o->identity_calls,
		.identity_log_streams = (size_t)o->identity_log_streams,
		.identity_request_bytes = (size_t)o->identity_request_bytes,
		.request_bytes = (size_t)o->request_bytes,
		.audit = &audit,
	};
	d.server = server_new(d.base, &so, &err);
	if (!d.server) {
		fprintf(stderr, "rund: %s\n", err.msg);
		goto out;
	}
	d.sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
	d.sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
	d.ssl_ctx = ssl_ctx;
	d.tls = &tls;
	d.sighup = evsignal_new(d.base, SIGHUP, on_hup, &d);
	event_add(d.sigint, NULL);
	event_add(d.sigterm, NULL);
	event_add(d.sighup, NULL);
	fprintf(stderr, "rund: serving %zu job(s) from %s (loaded in %.1f ms); cgroup %s\n",
		job_table_count(jobs), state_dir, (double)(now_mono_ns() - t0) / 1e6, cg.path);
	print_listening(o->addr, server_port(d.server));

	event_base_dispatch(d.base);
	fprintf(stderr, "rund: stopped\n");
	status = 0;
out:
	server_free(d.server);
	api_free(api);
	job_table_free(jobs);
	loop_free(d.loop);
	if (d.sigint)
		event_free(d.sigint);
	if (d.sigterm)
		event_free(d.sigterm);
	if (d.sighup)
		event_free(d.sighup);
	if (d.base)
		event_base_free(d.base);
	SSL_CTX_free(ssl_ctx);
	cgroup_root_close(&cg);
	free(devs);
	sandbox_policy_free(&policy);
	uidpool_free(uids);
	uidclaim_release(&uid_claim);
	return status;
}

/* `rund execute -spares [-cgroup R]`: the fork server, which first joins
 * R's daemon group, where the supervisors it forks belong
 * (-cgroup_daemon_stays leaves the daemon elsewhere). */
static int spares_main(int argc, char **argv, const struct proctitle *title)
{
	if (argc == 3 && strcmp(argv[1], "-cgroup") == 0) {
		struct err err;
		if (cgroup_enter_daemon(argv[2], &err) < 0) {
			fprintf(stderr, "rund execute -spares: %s\n", err.msg);
			return 1;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: rund execute -spares [-cgroup ROOT]\n");
		return 2;
	}
	return forkserver_main(title, supervisor_main);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0)
		return serve(argc - 2, argv + 2);
	if (strcmp(argv[1], "execute") == 0) {
		struct proctitle title = proctitle_init(argc, argv);
		if (argc >= 3 && strcmp(argv[2], "-spares") == 0)
			return spares_main(argc - 2, argv + 2, &title);
		return supervisor_main(argc - 1, argv + 1, &title);
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-version")) {
		printf("rund %s\n", RUND_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "-help") || !strcmp(argv[1], "--help")) {
		usage_main(stdout);
		return 0;
	}
	fprintf(stderr, "rund: unknown command \"%s\"\n", argv[1]);
	usage_main(stderr);
	return 2;
}
