/* supervisor: `rund execute -fifo PATH [-placed]`, one process per job.
 *
 * Protocol with the daemon (the bytes are handoff.h's, the paths
 * jobdir.h's). The daemon creates the FIFO <state_dir>/run/<n>, opens it
 * read-write (so neither side ever blocks in open, and written data
 * survives until it is read), and starts `rund execute -fifo PATH` with
 * stdout a pipe to itself (suppool.h; forked by the fork server,
 * forkserver.h). The supervisor starts a new session and waits for its
 * request: the state directory and the encoded jobspec. A confined daemon
 * first writes a warm-up in the same framing (its body "rund-warm 1", the
 * cgroup root and the policy, jobspec.h): the supervisor then joins the
 * cgroup root's daemon group and prepares the job's sandbox while it waits
 * (sandbox.h), and at the request checks that it still fits.
 * `-placed` says it was born in that daemon group already (the daemon's
 * or the fork server's), so it does not join it: a move into a group write-locks every
 * thread group's membership, which can wait for an RCU grace period
 * while holding the lock every cgroup mkdir and rmdir needs.
 * The daemon writes it when a Start arrives, after writing
 * <state_dir>/jobs/<id>/spec; until then the supervisor is a "spare" the
 * daemon keeps ready so that Start does not wait for a new process. If the
 * daemon dies first, its end closes and the supervisor sees EOF and exits.
 *
 * With the request read (the daemon reuses the FIFO afterwards), it opens
 * <state_dir>/jobs/<id> (<jobdir>) from the state directory the request
 * names, takes the flock on <jobdir>/lock, creates the cgroup, starts the
 * job in it from a prepared exec plan (jobspawn.h), then writes
 * <jobdir>/started and reports one line on stdout, "ok" or "err ..."
 * (nothing is left behind on an error but the job directory, which the
 * daemon removes), and closes stdout. It then copies the job's stdout and
 * stderr into <jobdir>/log, waits for the job, kills what the job left in
 * its cgroup, drains the pipes, writes <jobdir>/status atomically,
 * removes the cgroup and exits 0.
 *
 * Graceful stops: the daemon writes a jobstop (jobspec.h) into
 * <jobdir>/stop atomically and sends the supervisor SUPERVISOR_STOP_SIGNAL
 * through its pidfd; the supervisor then reads the file, signals the job
 * and kills the group once the grace period is over. A signal whose default
 * action is to ignore it, so a supervisor from before graceful stops is
 * not killed by it (the daemon's own kill after the grace period covers
 * such a one). No inotify: 10,000 supervisors must not use up the
 * per-user inotify instances. */
#ifndef RUND_SUPERVISOR_H
#define RUND_SUPERVISOR_H

#include <signal.h>

#define SUPERVISOR_STOP_SIGNAL SIGURG

struct proctitle;
/* title: where ps reads this process's command line (proctitle.h). */
int supervisor_main(int argc, char **argv, const struct proctitle *title);

#endif
