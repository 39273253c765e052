/* sys: the raw system calls glibc 2.36 does not wrap. Only this header
 * issues syscall(2) directly. */
#ifndef RUND_SYS_H
#define RUND_SYS_H

#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* Returns the child's pid in the parent, 0 in the child, -1/errno on error. */
static inline pid_t sys_clone3(struct clone_args *args)
{
	return (pid_t)syscall(SYS_clone3, args, sizeof *args);
}

/* clone3 for a child that shares our memory (args->flags has CLONE_VM,
 * usually with CLONE_VFORK) and runs fn(arg) on args' stack, exiting
 * with its return value: the child cannot return into our frames, so it
 * starts in fn, as glibc's clone() does. Returns the child's pid in the
 * parent, -1/errno on error; -1/ENOSYS where no such entry is written
 * (callers then clone3 without CLONE_VM). */
#if defined(__x86_64__)
#define SYS_HAVE_CLONE3_RUN 1
static inline pid_t sys_clone3_run(struct clone_args *args, int (*fn)(void *), void *arg)
{
	long ret;
	/* Callee-saved registers reach the child unchanged. */
	register void *fn_reg __asm__("r12") = (void *)fn;
	register void *arg_reg __asm__("r13") = arg;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 /* The child, on its own (16-byte aligned) stack. */
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r13, %%rdi\n\t"
			 "call *%%r12\n\t"
			 "mov %%eax, %%edi\n\t"
			 "mov $60, %%eax\n\t" /* exit */
			 "syscall\n\t"
			 "hlt\n\t"
			 "1:\n\t"
			 : "=a"(ret)
			 : "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(fn_reg),
			   "r"(arg_reg)
			 : "rcx", "r11", "memory");
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return (pid_t)ret;
}
#else
#define SYS_HAVE_CLONE3_RUN 0
static inline pid_t sys_clone3_run(struct clone_args *args, int (*fn)(void *), void *arg)
{
	(void)args;
	(void)fn;
	(void)arg;
	errno = ENOSYS;
	return -1;
}
#endif

/* A system call that leaves errno alone: -errno on failure. For a process
 * that shares our memory but is not our thread (CLONE_VM without
 * CLONE_THREAD), where glibc's errno is our thread's, written by both. */
#if defined(__x86_64__)
static inline long sys_raw(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}
#else
/* Elsewhere only a process of its own runs such code (SYS_HAVE_CLONE3_RUN
 * is 0), and its errno is its own. */
static inline long sys_raw(long nr, long a, long b, long c, long d)
{
	long r = syscall(nr, a, b, c, d);
	return r < 0 ? -errno : r;
}
#endif

static inline int sys_pidfd_open(pid_t pid, unsigned int flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static inline int sys_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags);
}

/* Identity and capabilities, raw: the sandbox calls these in a clone3
 * child, where glibc's wrappers (which broadcast set*id to other threads)
 * have no business. */
static inline int sys_setgroups_none(void)
{
	return (int)syscall(SYS_setgroups, 0, NULL);
}

static inline int sys_setresgid(gid_t gid)
{
	return (int)syscall(SYS_setresgid, gid, gid, gid);
}

static inline int sys_setresuid(uid_t uid)
{
	return (int)syscall(SYS_setresuid, uid, uid, uid);
}

/* Clears the effective, permitted and inheritable capability sets. */
static inline int sys_capset_none(void)
{
	struct {
		uint32_t version;
		int pid;
	} hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
	struct {
		uint32_t effective, permitted, inheritable;
	} data[2] = {{0, 0, 0}, {0, 0, 0}};
	return (int)syscall(SYS_capset, &hdr, data);
}

/* mount_setattr(2) over a whole mount tree (AT_RECURSIVE): sets
 * MOUNT_ATTR_* bits, and the propagation (MS_PRIVATE...; 0 leaves it).
 * Declared here: <linux/mount.h> and glibc 2.36's <sys/mount.h> cannot be
 * included together. */
#define SYS_MOUNT_ATTR_RDONLY 0x1u
#define SYS_MOUNT_ATTR_NOSUID 0x2u
#define SYS_MOUNT_ATTR_NODEV 0x4u
static inline int sys_mount_setattr_tree(const char *path, uint64_t set, uint64_t propagation)
{
	struct {
		uint64_t attr_set, attr_clr, propagation, userns_fd;
	} attr = {set, 0, propagation, 0};
	return (int)syscall(SYS_mount_setattr, -100 /* AT_FDCWD */, path, 0x8000 /* AT_RECURSIVE */,
			    &attr, sizeof attr);
}

/* Gives the caller a new, empty, anonymous session keyring, so it no longer
 * possesses the one it inherited. */
static inline int sys_new_session_keyring(void)
{
	return (int)syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL);
}

static inline int sys_pivot_root(const char *new_root, const char *put_old)
{
	return (int)syscall(SYS_pivot_root, new_root, put_old);
}

/* Sets sig's disposition to SIG_DFL through the kernel directly: glibc's
 * sigaction() refuses its two internal real-time signals (32 and 33), which
 * posix_spawn leaves ignored in the processes it starts. */
static inline int sys_signal_default(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ksa = {0, 0, 0, 0}; /* SIG_DFL is 0 */
	return (int)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof ksa.mask);
}

#endif
