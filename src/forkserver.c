/* forkserver: supervisors forked by a process that has already started.
 * See forkserver.h. */
#include "forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proctitle.h"
#include "sys.h"
#include "util.h"

/* ---- the daemon's side ---- */

int forkserver_request(int sock, const char *fifo, int report_w, uint32_t flags, int timeout_ms,
		       pid_t *pid, struct err *err)
{
	struct forkserver_req req;
	memset(&req, 0, sizeof req);
	req.flags = flags;
	size_t len = strlen(fifo);
	if (len >= sizeof req.fifo)
		return err_set(err, ENAMETOOLONG, ERR_INTERNAL, "fifo path too long: %s", fifo);
	memcpy(req.fifo, fifo, len);

	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {&req, sizeof req};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &report_w, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof req)
		return err_sys(err, n < 0 ? errno : EPROTO, "ask the fork server");

	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	int pr;
	do
		pr = poll(&pfd, 1, timeout_ms);
	while (pr < 0 && errno == EINTR);
	if (pr == 0)
		return err_set(err, ETIMEDOUT, ERR_INTERNAL,
			       "the fork server did not answer in %d ms", timeout_ms);
	int32_t reply;
	do
		n = recv(sock, &reply, sizeof reply, 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof reply)
		return err_sys(err, n < 0 ? errno : EPROTO, "read the fork server's answer");
	if (reply <= 0)
		return err_sys(err, reply < 0 ? -reply : EPROTO, "fork a supervisor");
	*pid = (pid_t)reply;
	return 0;
}

/* ---- the server ---- */

/* Receives one request and the fd that comes with it (-1 if none). The
 * length read, 0 at EOF, or -errno. */
static ssize_t recv_request(int sock, struct forkserver_req *req, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {req, sizeof *req};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf};
	*fd = -1;
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	/* A cut message or a cut fd list: refuse it whole. */
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EPROTO;
	return n;
}

/* The new supervisor, in the child: its stdin /dev/null, its stdout the
 * report pipe; supervisor_main closes everything else. */
static _Noreturn void run_child(const struct forkserver_req *req, int report_w, int devnull,
				const struct proctitle *pt, forkserver_run_fn *run)
{
	if (dup2(devnull, STDIN_FILENO) < 0 || dup2(report_w, STDOUT_FILENO) < 0)
		_exit(127);
	if (req->flags & FORKSERVER_IDLE)
		sched_setscheduler(0, SCHED_IDLE, &(struct sched_param){0});
	char title[sizeof req->fifo + 32];
	snprintf(title, sizeof title, "rund execute -fifo %s", req->fifo);
	proctitle_set(pt, title);
	char *argv[5] = {(char *)"execute", (char *)"-fifo", (char *)req->fifo, NULL, NULL};
	int argc = 3;
	if (req->flags & FORKSERVER_PLACED)
		argv[argc++] = (char *)"-placed";
	exit(run(argc, argv, pt));
}

int forkserver_main(const struct proctitle *pt, forkserver_run_fn *run)
{
	const int sock = STDIN_FILENO;
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		fprintf(stderr, "rund execute -spares: open /dev/null: %s\n", strerror(errno));
		return 1;
	}
	for (;;) {
		struct forkserver_req req;
		int fd;
		ssize_t n = recv_request(sock, &req, &fd);
		if (n == 0)
			return 0; /* the daemon is gone */
		int32_t reply;
		if (n < 0)
			reply = (int32_t)n;
		else if (n != (ssize_t)sizeof req || fd < 0 ||
			 !memchr(req.fifo, '\0', sizeof req.fifo) ||
			 (req.flags & ~(FORKSERVER_IDLE | FORKSERVER_PLACED)))
			reply = -EPROTO;
		else {
			/* CLONE_PARENT: the daemon's child, not ours. clone3
			 * wants no exit signal with it: the child gets ours,
			 * SIGCHLD. */
			struct clone_args ca;
			memset(&ca, 0, sizeof ca);
			ca.flags = CLONE_PARENT;
			pid_t pid = sys_clone3(&ca);
			if (pid == 0)
				run_child(&req, fd, devnull, pt, run);
			reply = pid > 0 ? (int32_t)pid : -errno;
		}
		if (fd >= 0)
			close(fd);
		if (send(sock, &reply, sizeof reply, MSG_NOSIGNAL) != (ssize_t)sizeof reply)
			return 1;
	}
}
