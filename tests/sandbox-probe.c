/* sandbox-probe: small checks run inside a sandbox by the system tests (test_run.py).
 *
 * Linked statically so that it runs in any root filesystem (a busybox tree, a Debian
 * tree). Each subcommand prints its finding on stdout and exits 0 when it could make the
 * check; the finding itself (EPERM, zombie, ...) is for the test to judge. Exit 2 means
 * the probe could not do its work (bad arguments, fork failed, ...).
 *
 *   sandbox-probe syscall NAME        "ok" or the errno name of one harmless call of NAME
 *   sandbox-probe syscalls            "NAME RESULT" for every NAME above
 *   sandbox-probe tiocsti [TTY]       ioctl(TIOCSTI) on TTY, or on a new pseudo-terminal
 *                                     that is the caller's controlling one: ok or errno
 *   sandbox-probe zombie              "reaped" or "zombie", then "parent N" of the orphan
 *   sandbox-probe alloc MIB           allocates and touches MIB MiB, then "survived"
 *   sandbox-probe caps                CapInh..CapAmb, NoNewPrivs, Seccomp from /proc/self/status
 *   sandbox-probe ids                 uid= gid= euid= egid= groups=
 *   sandbox-probe pids                pid= ppid= and pid 1's comm
 *   sandbox-probe write-everywhere [DIR...]   creates, changes and removes entries in each
 *                                     DIR (default / /etc /usr /bin): "ok ACTION PATH" or
 *                                     "ERRNO ACTION PATH" per attempt
 *   sandbox-probe masked [PATH...]    per path: bytes readable, whether it opens for
 *                                     writing, and what it is (kind=reg, dir, chr:MAJ:MIN,
 *                                     ...; default: the /proc paths a runtime masks)
 *   sandbox-probe netdev              the network interfaces, one per line (/proc/net/dev)
 *   sandbox-probe gateway             the IPv4 default gateway (/proc/net/route)
 *   sandbox-probe connect ADDR PORT   TCP connect to ADDR (or "gateway"), send "ping\n",
 *                                     print the first line received
 *   sandbox-probe exit N              exits with status N
 *   sandbox-probe signal N            kills itself with signal N
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char *errno_name(int e)
{
	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case EMLINK: return "EMLINK";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ELOOP: return "ELOOP";
	case ENOKEY: return "ENOKEY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case ENETDOWN: return "ENETDOWN";
	case ENETUNREACH: return "ENETUNREACH";
	case ECONNRESET: return "ECONNRESET";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EINPROGRESS: return "EINPROGRESS"; /* connect(2) past SO_SNDTIMEO */
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case EKEYREJECTED: return "EKEYREJECTED";
	default: {
		static char buf[32];
		snprintf(buf, sizeof buf, "errno%d", e);
		return buf;
	}
	}
}

/* The result of a call that returns -1 and sets errno on failure. */
static const char *outcome(long rc)
{
	return errno_name(rc == -1 ? errno : 0);
}

static int usage(void)
{
	fprintf(stderr, "usage: sandbox-probe SUBCOMMAND [ARGS] (see the comment in sandbox-probe.c)\n");
	return 2;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* --- syscall: one call per name, with arguments chosen so that nothing happens when the
 * call is allowed, and so that, where the kernel allows it, the errno without a filter
 * differs from EPERM (bad pointers, invalid commands, bad descriptors). Calls that check a
 * capability of the initial user namespace first (init_module, kexec_load, swapon...)
 * give EPERM in any user namespace, filtered or not. */

static const char *try_syscall(const char *name)
{
	errno = 0;
	if (strcmp(name, "keyctl") == 0)
		return outcome(syscall(SYS_keyctl, 0x7fff, 0, 0, 0, 0)); /* unknown command */
	if (strcmp(name, "add_key") == 0)
		return outcome(syscall(SYS_add_key, "", "kp-probe", "x", 1, -2)); /* empty type */
	if (strcmp(name, "request_key") == 0)
		return outcome(syscall(SYS_request_key, "", "kp-probe", NULL, 0));
	if (strcmp(name, "init_module") == 0)
		return outcome(syscall(SYS_init_module, NULL, 0, ""));
	if (strcmp(name, "finit_module") == 0)
		return outcome(syscall(SYS_finit_module, -1, "", 0));
	if (strcmp(name, "kexec_load") == 0)
		return outcome(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL)); /* bad flags */
	if (strcmp(name, "reboot") == 0)
		return outcome(syscall(SYS_reboot, 0, 0, 0, NULL)); /* bad magic: never reboots */
	if (strcmp(name, "swapon") == 0)
		return outcome(syscall(SYS_swapon, "/nonexistent-kp-probe", 0));
	if (strcmp(name, "open_by_handle_at") == 0)
		return outcome(syscall(SYS_open_by_handle_at, -1, NULL, O_RDONLY));
	if (strcmp(name, "bpf") == 0)
		return outcome(syscall(SYS_bpf, 0x7fff, NULL, 0)); /* unknown command */
	if (strcmp(name, "perf_event_open") == 0)
		return outcome(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)); /* NULL attr */
	if (strcmp(name, "unshare-user") == 0)
		return outcome(unshare(CLONE_NEWUSER));
	if (strcmp(name, "unshare-net") == 0)
		/* With a new user namespace, as any unprivileged process may ask. */
		return outcome(unshare(CLONE_NEWUSER | CLONE_NEWNET));
	if (strcmp(name, "mount") == 0)
		/* The target is looked up before privileges are checked: ENOENT unfiltered. */
		return outcome(mount("none", "/nonexistent-kp-probe", "tmpfs", 0, NULL));
	if (strcmp(name, "setns") == 0)
		return outcome(setns(-1, 0)); /* EBADF unfiltered */
	return NULL;
}

static const char *const syscall_names[] = {
	"keyctl", "add_key", "request_key", "init_module", "finit_module", "kexec_load",
	"reboot", "swapon", "open_by_handle_at", "bpf", "perf_event_open", "unshare-user",
	"unshare-net", "mount", "setns",
};

/* Each call in its own child, so that a successful unshare cannot affect the next one. */
static const char *syscall_in_child(const char *name)
{
	static char result[64];
	int fds[2];
	if (pipe(fds) == -1)
		return NULL;
	pid_t pid = fork();
	if (pid == -1)
		return NULL;
	if (pid == 0) {
		close(fds[0]);
		const char *r = try_syscall(name);
		if (r && write(fds[1], r, strlen(r)) < 0)
			_exit(2);
		_exit(r ? 0 : 1);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], result, sizeof result - 1);
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return NULL;
	result[n] = '\0';
	return result;
}

static int cmd_syscall(int argc, char **argv)
{
	if (argc != 1)
		return usage();
	const char *r = syscall_in_child(argv[0]);
	if (!r) {
		fprintf(stderr, "sandbox-probe: unknown system call probe '%s'\n", argv[0]);
		return 2;
	}
	printf("%s\n", r);
	return 0;
}

static int cmd_syscalls(void)
{
	for (size_t i = 0; i < sizeof syscall_names / sizeof syscall_names[0]; i++) {
		const char *r = syscall_in_child(syscall_names[i]);
		printf("%s %s\n", syscall_names[i], r ? r : "probe-failed");
	}
	return 0;
}

/* --- tiocsti: push one character (a space, harmless wherever it lands) into a terminal's
 * input queue. With a TTY argument, into that terminal. Without, into a new pseudo-terminal
 * that a child opens as its controlling terminal: the kernel lets a process do that to its
 * own controlling terminal without privileges, so anything but "ok" comes from a filter
 * (or from the dev.tty.legacy_tiocsti sysctl, which answers EIO). */

static const char *tiocsti_on(int fd)
{
	char c = ' ';
	return outcome(ioctl(fd, TIOCSTI, &c));
}

static int cmd_tiocsti(int argc, char **argv)
{
	if (argc > 0) {
		int fd = open(argv[0], O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd == -1) {
			printf("open-%s\n", errno_name(errno));
			return 0;
		}
		printf("%s\n", tiocsti_on(fd));
		close(fd);
		return 0;
	}
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master == -1 || grantpt(master) == -1 || unlockpt(master) == -1) {
		printf("ptmx-%s\n", errno_name(errno));
		return 0;
	}
	const char *slave = ptsname(master);
	int fds[2];
	if (!slave || pipe(fds) == -1)
		return 2;
	pid_t pid = fork();
	if (pid == -1)
		return 2;
	if (pid == 0) {
		char result[64];
		/* A new session without a terminal: the first one it opens becomes its own. */
		if (setsid() == -1) {
			snprintf(result, sizeof result, "setsid-%s", errno_name(errno));
		} else {
			int fd = open(slave, O_RDWR);
			if (fd == -1)
				snprintf(result, sizeof result, "open-%s", errno_name(errno));
			else
				snprintf(result, sizeof result, "%s", tiocsti_on(fd));
		}
		if (write(fds[1], result, strlen(result)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	char result[64];
	ssize_t n = read(fds[0], result, sizeof result - 1);
	waitpid(pid, NULL, 0);
	if (n <= 0)
		return 2;
	result[n] = '\0';
	printf("%s\n", result);
	return 0;
}

/* --- zombie: an orphan exits after being reparented; does its new parent reap it? */

static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold anything */
	return p && p[1] == ' ' ? p[2] : '?';
}

static int cmd_zombie(void)
{
	int fds[2];
	if (pipe(fds) == -1)
		return 2;
	pid_t child = fork();
	if (child == -1)
		return 2;
	if (child == 0) {
		pid_t self = getpid();
		pid_t grandchild = fork();
		if (grandchild == -1)
			_exit(1);
		if (grandchild == 0) {
			/* Wait to be orphaned, report our pid and the new parent, then exit. */
			for (int i = 0; i < 500 && getppid() == self; i++)
				sleep_ms(10);
			int msg[2] = { (int)getpid(), (int)getppid() };
			if (write(fds[1], msg, sizeof msg) != sizeof msg)
				_exit(1);
			_exit(0);
		}
		_exit(0);
	}
	close(fds[1]);
	int status;
	waitpid(child, &status, 0);
	int msg[2];
	if (read(fds[0], msg, sizeof msg) != sizeof msg) {
		fprintf(stderr, "sandbox-probe: the grandchild did not report\n");
		return 2;
	}
	/* Up to 3 s for the new parent to reap the orphan. */
	char state = 'Z';
	for (int i = 0; i < 300 && state; i++) {
		sleep_ms(10);
		state = proc_state(msg[0]);
	}
	printf("%s\nparent %d\n", !state ? "reaped" : state == 'Z' ? "zombie" : "running", msg[1]);
	return 0;
}

/* --- alloc */
static int cmd_alloc(int argc, char **argv)
{
	if (argc != 1)
		return usage();
	char *end;
	unsigned long mib = strtoul(argv[0], &end, 10);
	if (*end || mib == 0)
		return usage();
	long page = sysconf(_SC_PAGESIZE);
	for (unsigned long i = 0; i < mib; i++) {
		char *p = malloc(1 << 20); /* never freed: the point is to hold it */
		if (!p) {
			printf("ENOMEM after %lu MiB\n", i);
			return 0;
		}
		for (long off = 0; off < (1 << 20); off += page)
			p[off] = (char)off | 1;
	}
	printf("survived\n");
	return 0;
}

/* --- caps */
static int cmd_caps(void)
{
	static const char *const keys[] = { "CapInh:", "CapPrm:", "CapEff:", "CapBnd:",
					    "CapAmb:", "NoNewPrivs:", "Seccomp:" };
	FILE *f = fopen("/proc/self/status", "re");
	if (!f) {
		fprintf(stderr, "sandbox-probe: /proc/self/status: %s\n", strerror(errno));
		return 2;
	}
	char line[512];
	while (fgets(line, sizeof line, f))
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			if (strncmp(line, keys[i], strlen(keys[i])) == 0)
				fputs(line, stdout);
	fclose(f);
	return 0;
}

/* --- ids */
static int cmd_ids(void)
{
	gid_t groups[256];
	int n = getgroups(256, groups);
	printf("uid=%u gid=%u euid=%u egid=%u groups=", (unsigned)getuid(), (unsigned)getgid(),
	       (unsigned)geteuid(), (unsigned)getegid());
	for (int i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", (unsigned)groups[i]);
	printf("\n");
	return 0;
}

/* --- pids */
static int cmd_pids(void)
{
	char comm[64] = "";
	FILE *f = fopen("/proc/1/comm", "re");
	if (f) {
		if (!fgets(comm, sizeof comm, f))
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
	}
	printf("pid=%d ppid=%d pid1=%s\n", (int)getpid(), (int)getppid(), comm);
	return 0;
}

/* --- write-everywhere */

static void report(int ok, const char *action, const char *path)
{
	printf("%s %s %s\n", ok ? "ok" : errno_name(errno), action, path);
}

static int skip_entry(const char *name)
{
	return name[0] == '.' || strncmp(name, "kp-probe", 8) == 0 ||
	       strcmp(name, "sandbox-probe") == 0;
}

/* In byte order, the first regular file of DIR and the last entry that is not a directory. */
static void pick_files(const char *dir, char *first, char *last, size_t size)
{
	first[0] = last[0] = '\0';
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (skip_entry(e->d_name) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    S_ISDIR(st.st_mode))
			continue;
		if (S_ISREG(st.st_mode) && (!first[0] || strcmp(e->d_name, first) < 0))
			snprintf(first, size, "%s", e->d_name);
		if (!last[0] || strcmp(e->d_name, last) > 0)
			snprintf(last, size, "%s", e->d_name);
	}
	closedir(d);
}

static int cmd_write_everywhere(int argc, char **argv)
{
	static char *defaults[] = { "/", "/etc", "/usr", "/bin" };
	if (argc == 0) {
		argc = 4;
		argv = defaults;
	}
	for (int i = 0; i < argc; i++) {
		const char *dir = argv[i];
		const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
		char path[4096], other[4096], first[256], last[256];
		pick_files(dir, first, last, sizeof first);

		snprintf(path, sizeof path, "%s%skp-probe-file", dir, sep);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		report(fd >= 0 && write(fd, "written\n", 8) == 8, "create", path);
		if (fd >= 0)
			close(fd);
		report(chmod(path, 04755) == 0, "chmod", path);
		snprintf(other, sizeof other, "%s%skp-probe-renamed", dir, sep);
		report(rename(path, other) == 0, "rename", other);
		snprintf(path, sizeof path, "%s%skp-probe-dir", dir, sep);
		report(mkdir(path, 0700) == 0, "mkdir", path);
		snprintf(path, sizeof path, "%s%skp-probe-link", dir, sep);
		report(symlink("/nonexistent", path) == 0, "symlink", path);
		report(chmod(dir, 0777) == 0, "chmod", dir);
		if (first[0]) {
			snprintf(path, sizeof path, "%s%s%s", dir, sep, first);
			report(chmod(path, 0666) == 0, "chmod", path);
			report(truncate(path, 0) == 0, "truncate", path);
		}
		if (last[0] && strcmp(first, last) != 0) {
			snprintf(path, sizeof path, "%s%s%s", dir, sep, last);
			report(unlink(path) == 0, "unlink", path);
		}
	}
	return 0;
}

/* --- masked */
static int cmd_masked(int argc, char **argv)
{
	static char *defaults[] = { "/proc/kcore", "/proc/keys", "/proc/timer_list",
				    "/proc/sysrq-trigger" };
	if (argc == 0) {
		argc = 4;
		argv = defaults;
	}
	for (int i = 0; i < argc; i++) {
		const char *read_result;
		char buf[4096];
		long total = 0;
		int fd = open(argv[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd == -1) {
			read_result = errno_name(errno);
		} else {
			ssize_t n;
			while ((n = read(fd, buf, sizeof buf)) > 0 && total < (1L << 20))
				total += n;
			read_result = n < 0 ? errno_name(errno) : NULL;
			close(fd);
		}
		fd = open(argv[i], O_WRONLY | O_CLOEXEC | O_NONBLOCK);
		const char *write_result = errno_name(fd == -1 ? errno : 0);
		if (fd >= 0)
			close(fd);
		char kind[64] = "none";
		struct stat st;
		if (stat(argv[i], &st) == 0) {
			if (S_ISCHR(st.st_mode))
				snprintf(kind, sizeof kind, "chr:%u:%u", major(st.st_rdev), minor(st.st_rdev));
			else
				snprintf(kind, sizeof kind, "%s", S_ISREG(st.st_mode) ? "reg" :
					 S_ISDIR(st.st_mode) ? "dir" : "other");
		}
		if (read_result)
			printf("%s read=%s write=%s kind=%s\n", argv[i], read_result, write_result, kind);
		else
			printf("%s read=%ld write=%s kind=%s\n", argv[i], total, write_result, kind);
	}
	return 0;
}

/* --- netdev */
static int cmd_netdev(void)
{
	FILE *f = fopen("/proc/net/dev", "re");
	if (!f) {
		fprintf(stderr, "sandbox-probe: /proc/net/dev: %s\n", strerror(errno));
		return 2;
	}
	char line[512];
	while (fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue; /* the two header lines */
		*colon = '\0';
		char *name = line + strspn(line, " ");
		printf("%s\n", name);
	}
	fclose(f);
	return 0;
}

/* --- gateway: the default route of /proc/net/route (gateway in network byte order, hex). */
static int default_gateway(struct in_addr *gw)
{
	FILE *f = fopen("/proc/net/route", "re");
	if (!f)
		return -1;
	char line[512];
	int found = -1;
	while (fgets(line, sizeof line, f)) {
		char iface[64];
		unsigned long dest, gateway;
		if (sscanf(line, "%63s %lx %lx", iface, &dest, &gateway) == 3 && dest == 0 && gateway) {
			gw->s_addr = (in_addr_t)gateway;
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static int cmd_gateway(void)
{
	struct in_addr gw;
	if (default_gateway(&gw) == -1) {
		printf("none\n");
		return 0;
	}
	printf("%s\n", inet_ntoa(gw));
	return 0;
}

/* --- connect */
static int cmd_connect(int argc, char **argv)
{
	if (argc != 2)
		return usage();
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
	if (strcmp(argv[0], "gateway") == 0) {
		if (default_gateway(&sa.sin_addr) == -1) {
			printf("no-gateway\n");
			return 0;
		}
	} else if (inet_pton(AF_INET, argv[0], &sa.sin_addr) != 1) {
		return usage();
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		printf("socket-%s\n", errno_name(errno));
		return 0;
	}
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
		printf("connect-%s\n", errno_name(errno));
		close(fd);
		return 0;
	}
	if (write(fd, "ping\n", 5) != 5) {
		printf("write-%s\n", errno_name(errno));
		close(fd);
		return 0;
	}
	char buf[256];
	size_t len = 0;
	while (len < sizeof buf - 1) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
	}
	close(fd);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	printf("%s\n", len ? buf : "no-reply");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	int n = argc - 2;
	char **args = argv + 2;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "syscall") == 0)
		rc = cmd_syscall(n, args);
	else if (strcmp(cmd, "syscalls") == 0)
		rc = cmd_syscalls();
	else if (strcmp(cmd, "tiocsti") == 0)
		rc = cmd_tiocsti(n, args);
	else if (strcmp(cmd, "zombie") == 0)
		rc = cmd_zombie();
	else if (strcmp(cmd, "alloc") == 0)
		rc = cmd_alloc(n, args);
	else if (strcmp(cmd, "caps") == 0)
		rc = cmd_caps();
	else if (strcmp(cmd, "ids") == 0)
		rc = cmd_ids();
	else if (strcmp(cmd, "pids") == 0)
		rc = cmd_pids();
	else if (strcmp(cmd, "write-everywhere") == 0)
		rc = cmd_write_everywhere(n, args);
	else if (strcmp(cmd, "masked") == 0)
		rc = cmd_masked(n, args);
	else if (strcmp(cmd, "netdev") == 0)
		rc = cmd_netdev();
	else if (strcmp(cmd, "gateway") == 0)
		rc = cmd_gateway();
	else if (strcmp(cmd, "connect") == 0)
		rc = cmd_connect(n, args);
	else if (strcmp(cmd, "exit") == 0 && n == 1)
		rc = atoi(args[0]);
	else if (strcmp(cmd, "signal") == 0 && n == 1) {
		int sig = atoi(args[0]);
		signal(sig, SIG_DFL);
		raise(sig);
		rc = 2;
	} else
		rc = usage();
	fflush(stdout);
	return rc;
}
