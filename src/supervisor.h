/* supervisor: `rund execute -fifo PATH`, one process per job.
 *
 * Protocol with the daemon: the daemon creates <jobdir>/spec and the FIFO
 * <jobdir>/fifo, spawns `rund execute -fifo <jobdir>/fifo` with stdout a
 * pipe to itself. Before spawning, it opened the FIFO read-write (so
 * neither side ever blocks in open) and wrote the request into it: a
 * decimal byte count and a newline, then the encoded jobspec; it keeps
 * that end open until the report below arrives. The supervisor reads the
 * request, removes the FIFO, starts a new session,
 * takes the flock on <jobdir>/lock, creates the cgroup, clone3()s the job
 * into it and execs it, then writes <jobdir>/started and reports one line
 * on stdout:
 *   "ok\n"
 *   "err <errno> <err_kind> <message>\n"   (nothing is left behind but the
 *                                          job directory, which the daemon
 *                                          removes)
 * and closes stdout. It then copies the job's stdout and stderr into
 * <jobdir>/log, waits for the job, kills what the job left in its cgroup,
 * drains the pipes, writes <jobdir>/status atomically, removes the cgroup
 * and exits 0. */
#ifndef RUND_SUPERVISOR_H
#define RUND_SUPERVISOR_H

int supervisor_main(int argc, char **argv);

#endif
