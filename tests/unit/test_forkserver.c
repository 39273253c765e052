/* forkserver: a real server process answering real requests. The
 * supervisor it forks is a stand-in (run_stub) that reports what it was
 * given on the stdout it was handed; the test checks that it is the
 * test's own child (CLONE_PARENT), with the scheduling policy asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkserver.h"
#include "proctitle.h"
#include "util.h"

/* The supervisor's stand-in: one line on its stdout, exit 7. */
static int run_stub(int argc, char **argv, const struct proctitle *pt)
{
	(void)pt;
	char line[512];
	int n = snprintf(line, sizeof line, "%d %s %s %s%s%s ppid=%d idle=%d\n", argc, argv[0],
			 argv[1], argv[2], argc > 3 ? " " : "", argc > 3 ? argv[3] : "",
			 (int)getppid(), sched_getscheduler(0) == SCHED_IDLE);
	assert_null(argv[argc]);
	write_all(STDOUT_FILENO, line, (size_t)n);
	return 7;
}

struct server {
	pid_t pid;
	int sock; /* our end */
};

static struct server start_server(void)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* As the daemon's exec would: only the server's end stays. */
		close(sv[0]);
		dup2(sv[1], STDIN_FILENO);
		static const struct proctitle none = {NULL, 0};
		_exit(forkserver_main(&none, run_stub));
	}
	close(sv[1]);
	return (struct server){pid, sv[0]};
}

static int stop_server(struct server *s)
{
	close(s->sock);
	int ws;
	assert_int_equal(waitpid(s->pid, &ws, 0), s->pid);
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (n + 1 < cap && (n == 0 || buf[n - 1] != '\n')) {
		assert_int_equal(poll(&p, 1, 10000), 1);
		ssize_t k = read(fd, buf + n, cap - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
}

static void test_forks_our_child(void **state)
{
	(void)state;
	struct server s = start_server();
	static const uint32_t flags[] = {0, FORKSERVER_IDLE, FORKSERVER_PLACED};
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		int p[2];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		pid_t pid = 0;
		struct err err;
		err_clear(&err);
		assert_int_equal(forkserver_request(s.sock, "/state/run/3", p[1], flags[i], 10000,
						    &pid, &err),
				 0);
		close(p[1]);
		char line[512], want[512];
		read_line(p[0], line, sizeof line);
		close(p[0]);
		bool placed = flags[i] & FORKSERVER_PLACED;
		snprintf(want, sizeof want, "%d execute -fifo /state/run/3%s ppid=%d idle=%d\n",
			 placed ? 4 : 3, placed ? " -placed" : "", (int)getpid(),
			 (flags[i] & FORKSERVER_IDLE) != 0);
		assert_string_equal(line, want);
		/* Ours to reap, with its exit code. */
		int ws;
		assert_int_equal(waitpid(pid, &ws, 0), pid);
		assert_true(WIFEXITED(ws));
		assert_int_equal(WEXITSTATUS(ws), 7);
	}
	/* EOF: the server ends, 0. */
	assert_int_equal(stop_server(&s), 0);
}

static void test_bad_requests(void **state)
{
	(void)state;
	struct server s = start_server();
	/* No descriptor with it: refused, and the server still serves. */
	struct forkserver_req req;
	memset(&req, 0, sizeof req);
	strcpy(req.fifo, "/x");
	assert_int_equal(send(s.sock, &req, sizeof req, 0), (ssize_t)sizeof req);
	int32_t reply = 0;
	assert_int_equal(recv(s.sock, &reply, sizeof reply, 0), (ssize_t)sizeof reply);
	assert_int_equal(reply, -EPROTO);
	/* A flag the server does not know: refused, and it still serves. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = 0;
	struct err err;
	err_clear(&err);
	assert_true(forkserver_request(s.sock, "/x", p[1], 1u << 7, 1000, &pid, &err) < 0);
	close(p[0]);
	close(p[1]);
	/* A short message. */
	assert_int_equal(send(s.sock, "x", 1, 0), 1);
	assert_int_equal(recv(s.sock, &reply, sizeof reply, 0), (ssize_t)sizeof reply);
	assert_int_equal(reply, -EPROTO);
	/* A path too long for a request never leaves. */
	char *longp = xcalloc(1, sizeof req.fifo + 10);
	memset(longp, 'a', sizeof req.fifo + 5);
	err_clear(&err);
	assert_int_equal(forkserver_request(s.sock, longp, 1, 0, 1000, &pid, &err), -ENAMETOOLONG);
	free(longp);
	assert_int_equal(stop_server(&s), 0);
}

static void test_silent_server_times_out(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid;
	struct err err;
	err_clear(&err);
	assert_int_equal(forkserver_request(sv[0], "/x", STDOUT_FILENO, 0, 100, &pid, &err),
			 -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "100 ms"));
	/* A server that is gone. */
	close(sv[1]);
	err_clear(&err);
	assert_true(forkserver_request(sv[0], "/x", STDOUT_FILENO, 0, 100, &pid, &err) < 0);
	close(sv[0]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forks_our_child),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_silent_server_times_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
