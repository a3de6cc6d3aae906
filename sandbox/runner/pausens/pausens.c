// See pausens.go.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// The shim's end of the lifeline is never written: when the shim is gone,
// however it went, the pause reads EOF on its end.
#define LIFELINE_FD 3

// report is where the pause tells the shim how its setup went (the write end
// of a pipe, or -1): "ok", or the step that failed.
static int report = -1;

// fail reports the step that failed, with errno, and exits.
static void fail(const char *step) {
	if (report >= 0)
		dprintf(report, "%s: %s", step, strerror(errno));
	_exit(1);
}

// env_label is a label the shim passes in the environment, or NULL.
static const char *env_label(const char *name) {
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

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
		fail("join the pod's user namespace");
	close(userns);
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		fail("become the user namespace's root");
	if (unshare(CLONE_NEWPID) < 0)
		fail("unshare the PID namespace");
	pid_t pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid > 0) {
		dprintf(pidfd, "%d", (int)pid);
		_exit(0);
	}
	close(pidfd);
}

// new_root gives the pause a mount namespace of its own that holds nothing
// but an empty read-only tmpfs, mounted on the dir root and made its root
// (pivot_root; the host's mounts detached), so that it keeps no host mount
// alive and the pod's processes see only that in /proc/1/mountinfo. On an
// SELinux host the tmpfs carries the pod's mount label (context=).
static void new_root(int root, const char *mount_label) {
	// The working dir moves into the new namespace with it; root does not.
	if (fchdir(root) < 0 || unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make a mount namespace");
	close(root);
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		fail("open a tmpfs");
	if (fsconfig(fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "2", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0555", 0) < 0)
		fail("configure the tmpfs");
	if (mount_label != NULL && fsconfig(fs, FSCONFIG_SET_STRING, "context", mount_label, 0) < 0)
		fail("give the tmpfs the pod's mount label");
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		fail("create the tmpfs");
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (mnt < 0)
		fail("mount the tmpfs");
	close(fs);
	if (move_mount(mnt, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		fail("attach the tmpfs");
	if (fchdir(mnt) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		fail("make the tmpfs the root");
	close(mnt);
}

// drop_privileges takes every capability from the pause, the bounding set
// included.
static void drop_privileges(void) {
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			fail("drop the bounding set");
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("drop the capabilities");
}

// set_label moves the pause into the pod's SELinux domain through attr, its
// /proc/self/attr/current opened before it lost sight of /proc. A policy
// that refuses the dynamic transition leaves it in the shim's domain, which
// is said on stderr (the shim's log): it is confined all the same.
static void set_label(int attr, const char *label) {
	if (attr < 0)
		return;
	if (write(attr, label, strlen(label)) < 0)
		dprintf(2, "berth-runtime pause: SELinux label %s refused (%s): the pause keeps the shim's\n", label, strerror(errno));
	close(attr);
}

// confine shuts the pause in an empty root of its own (new_root) and takes
// every privilege from it: no capability, the pod's SELinux label if it has
// one, no new privileges, not dumpable (so that the pod's processes cannot
// trace it).
static void confine(int root, const char *label, const char *mount_label) {
	int attr = -1;
	if (label != NULL && (attr = open("/proc/thread-self/attr/current", O_WRONLY | O_CLOEXEC)) < 0)
		fail("open the SELinux attribute");
	new_root(root, mount_label);
	drop_privileges();
	set_label(attr, label); // before no_new_privs, which would bound it
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("set no_new_privs");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("make it not dumpable");
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
		fail("block its signals");
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sigfd < 0)
		fail("open a signalfd");
	if (report >= 0) {
		dprintf(report, "ok");
		close(report);
		report = -1;
	}
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
	const char *label = env_label("_BERTH_PAUSE_LABEL");
	const char *mount_label = env_label("_BERTH_PAUSE_MOUNT_LABEL");
	report = env_fd("_BERTH_PAUSE_REPORT");
	if (userns >= 0)
		join_userns(userns, pidfd);
	confine(root, label, mount_label);
	run_pause();
}
