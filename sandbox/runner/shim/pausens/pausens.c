// See pausens.go.
#define _GNU_SOURCE
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

__attribute__((constructor)) static void berth_pause_userns(void) {
	int userns = env_fd("_BERTH_PAUSE_USERNS");
	if (userns < 0)
		return;
	int pidfd = env_fd("_BERTH_PAUSE_PIDFD");
	unsetenv("_BERTH_PAUSE_USERNS");
	unsetenv("_BERTH_PAUSE_PIDFD");
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
