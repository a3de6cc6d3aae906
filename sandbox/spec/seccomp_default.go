package spec

import (
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Berth's default seccomp profile (RuntimeDefault). It is an allowlist built
// from the Linux syscall tables: every call is refused with EPERM unless
// listed, so that calls added to the kernel later stay refused until judged.
// Listed are all the calls of the x86-64, x86, arm64 and arm tables, but:
//
//   - calls that act on the whole host or reach kernel state no namespace
//     isolates: kexec, module loading, swap, accounting, the kernel keyring
//     (add_key, request_key, keyctl), the old sysctl and sysfs calls,
//     userfaultfd, io_uring (its operations escape this filter), modify_ldt,
//     pciconfig, vm86, nfsservctl, and calls no kernel implements any more;
//   - calls that need a capability and act beyond the container when it is
//     held: listed only when the container has that capability (see
//     capabilityCalls): mounts, namespace changes and the new mount API,
//     bpf, perf_event_open, reboot, chroot, clock setting, raw I/O ports,
//     NUMA policy of other memory, syslog, open_by_handle_at, kcmp,
//     pidfd_getfd, vhangup;
//   - three calls whose arguments decide: personality (only the values
//     programs use: Linux, UNAME26, ADDR_NO_RANDOMIZE and the query),
//     clone (no new namespaces without CAP_SYS_ADMIN), clone3 (its flags
//     live in memory a filter cannot read: ENOSYS without CAP_SYS_ADMIN,
//     so that libc falls back to clone).
//
// Names a kernel or libseccomp does not know are skipped by libcontainer.

// defaultCalls are allowed to every container.
var defaultCalls = []string{
	"_llseek", "_newselect", "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl",
	"arm_fadvise64_64", "bind", "breakpoint", "brk", "cacheflush", "cachestat", "capget", "capset",
	"chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
	"clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
	"close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
	"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2",
	"execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
	"fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
	"fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "file_getattr", "file_setattr", "flistxattr",
	"flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
	"fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait",
	"futex_waitv", "futex_wake", "futimesat", "get_mempolicy", "get_robust_list", "get_thread_area",
	"getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
	"getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
	"getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
	"getrlimit", "getrusage", "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid",
	"getuid32", "getxattr", "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1",
	"inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
	"io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "ipc", "kill", "landlock_add_rule",
	"landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
	"linkat", "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lseek",
	"lsetxattr", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "lstat", "lstat64",
	"madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
	"mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
	"mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
	"mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
	"munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "nice", "oldfstat",
	"oldlstat", "oldolduname", "oldstat", "olduname", "open", "openat", "openat2", "pause", "pidfd_open",
	"pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
	"ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_madvise",
	"process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6", "pselect6_time64", "ptrace",
	"pwrite64", "pwritev", "pwritev2", "read", "readahead", "readdir", "readlink", "readlinkat", "readv",
	"recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
	"removexattrat", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
	"rseq_slice_yield", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
	"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
	"sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
	"sendfile64", "sendmmsg", "sendmsg", "sendto", "set_robust_list", "set_thread_area", "set_tid_address",
	"set_tls", "setdomainname", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
	"setgroups", "setgroups32", "sethostname", "setitimer", "setpgid", "setpriority", "setregid",
	"setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
	"setrlimit", "setsid", "setsockopt", "setuid", "setuid32", "setxattr", "setxattrat", "sgetmask",
	"shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaction", "sigaltstack", "signal", "signalfd",
	"signalfd4", "sigpending", "sigprocmask", "sigreturn", "sigsuspend", "socket", "socketcall",
	"socketpair", "splice", "ssetmask", "stat", "stat64", "statfs", "statfs64", "statmount", "statx",
	"symlink", "symlinkat", "sync", "sync_file_range", "sync_file_range2", "syncfs", "sysinfo", "tee",
	"tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
	"timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
	"timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
	"truncate64", "ugetrlimit", "ulimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
	"utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
}

// capabilityCalls are allowed to containers that hold the capability.
var capabilityCalls = map[string][]string{
	"CAP_SYS_ADMIN": {"mount", "umount", "umount2", "pivot_root", "setns", "unshare", "mount_setattr", "move_mount",
		"open_tree", "open_tree_attr", "fsopen", "fsconfig", "fsmount", "fspick", "fanotify_init", "lookup_dcookie",
		"quotactl", "quotactl_fd", "listns", "bpf", "perf_event_open", "swapon", "swapoff", "clone", "clone3"},
	"CAP_BPF":             {"bpf"},
	"CAP_PERFMON":         {"perf_event_open"},
	"CAP_SYS_BOOT":        {"reboot"},
	"CAP_SYS_CHROOT":      {"chroot"},
	"CAP_SYS_MODULE":      {"init_module", "finit_module", "delete_module"},
	"CAP_SYS_PACCT":       {"acct"},
	"CAP_SYS_PTRACE":      {"kcmp", "pidfd_getfd"},
	"CAP_SYS_RAWIO":       {"iopl", "ioperm"},
	"CAP_SYS_TIME":        {"settimeofday", "stime", "clock_settime", "clock_settime64"},
	"CAP_SYS_TTY_CONFIG":  {"vhangup"},
	"CAP_SYS_NICE":        {"mbind", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages"},
	"CAP_SYSLOG":          {"syslog"},
	"CAP_DAC_READ_SEARCH": {"open_by_handle_at"},
}

// personalities are the personality(2) arguments programs use.
var personalities = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// namespaceFlags are clone's CLONE_NEW* flags (and CLONE_NEWTIME).
const namespaceFlags = 0x7E020080

const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// DefaultSeccomp is Berth's default profile for a container holding caps.
func DefaultSeccomp(caps []string) *specs.LinuxSeccomp {
	eperm, enosys := uint(errnoEPERM), uint(errnoENOSYS)
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm, Architectures: architectures()}
	allowed := slices.Clone(defaultCalls)
	for _, c := range caps {
		allowed = append(allowed, capabilityCalls[c]...)
	}
	slices.Sort(allowed)
	s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: slices.Compact(allowed), Action: specs.ActAllow})
	for _, p := range personalities {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"personality"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: p, Op: specs.OpEqualTo}}})
	}
	if !slices.Contains(caps, "CAP_SYS_ADMIN") {
		s.Syscalls = append(s.Syscalls,
			specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: namespaceFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})
	}
	return s
}

// architectures are the native one and those it runs binaries of.
func architectures() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "386":
		return []specs.Arch{specs.ArchX86}
	case "arm":
		return []specs.Arch{specs.ArchARM}
	}
	return nil
}
