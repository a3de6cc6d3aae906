// See pausens.go.
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// The shim's end of the lifeline is never written: when the shim is gone,
// however it went, the pause reads EOF on its end.
#define LIFELINE_FD 3

static int env_fd(const char *name) {
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	if (*end != '\0' || fd < 3 || fd > 1024)
		return -1;
	return (int)fd;
}

// join_userns joins the user namespace userns as its root, unshares the PID
// namespace and forks: it returns in the child (PID 1 of the new namespace);
// the parent writes the child's pid to pidfd and exits.
static void join_userns(int userns, int pidfd) {
	if (pidfd < 0 || setns(userns, CLONE_NEWUSER) < 0)
		_exit(1);
	close(userns);
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		_exit(1);
	if (unshare(CLONE_NEWPID) < 0)
		_exit(1);
	pid_t pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0) {
		dprintf(pidfd, "%d", (int)pid);
		_exit(0);
	}
	close(pidfd);
}

// confine shuts the pause in the empty dir root and takes every privilege
// from it: no capability (bounding set included), no new privileges, not
// dumpable (so that the pod's processes cannot trace it or reach its root).
static void confine(int root) {
	if (fchdir(root) < 0 || chroot(".") < 0)
		_exit(1);
	close(root);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(1);
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			_exit(1);
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
	if (syscall(SYS_capset, &hdr, data) < 0)
		_exit(1);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		_exit(1);
}

// run_pause is the pause itself; it never returns, so Go never starts in it.
// As PID 1 of the pod's PID namespace it reaps whatever is reparented to it;
// it exits on SIGTERM or SIGINT, or when the lifeline ends.
static void run_pause(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		_exit(1);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sigfd < 0)
		_exit(1);
	struct pollfd fds[2] = {{.fd = sigfd, .events = POLLIN}, {.fd = LIFELINE_FD, .events = POLLIN}};
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (fds[1].revents != 0)
			_exit(0);
		struct signalfd_siginfo si;
		if (read(sigfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD)
			_exit(0);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

__attribute__((constructor)) static void berth_pause_init(void) {
	int root = env_fd("_BERTH_PAUSE_ROOT");
	if (root < 0)
		return;
	int userns = env_fd("_BERTH_PAUSE_USERNS");
	int pidfd = env_fd("_BERTH_PAUSE_PIDFD");
	unsetenv("_BERTH_PAUSE_ROOT");
	unsetenv("_BERTH_PAUSE_USERNS");
	unsetenv("_BERTH_PAUSE_PIDFD");
	if (userns >= 0)
		join_userns(userns, pidfd);
	confine(root);
	run_pause();
}
