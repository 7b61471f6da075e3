/*
 * mount_scoutfs.c: /sbin/mount.scoutfs, what `mount -t scoutfs ...` runs.
 *
 *	mount.scoutfs DATA_DEVICE MOUNTPOINT [-o OPTIONS] [-n] [-s] [-v]
 *
 * It checks the options, starts scoutfsd in the background (its log goes to
 * $SCOUTFS_LOG_DIR, by default /var/log/scoutfs), and waits for the daemon to report through
 * a pipe that the mount is up -- or why it failed, which is then printed here.  Exit status
 * 0 when mounted, 32 (mount's "mount failure") otherwise.
 *
 * Once mounted it records the mount in libmount's utab (with `mount --fake`), which is what
 * makes a plain `umount MOUNTPOINT` run /sbin/umount.fuse.scoutfs, so that umount returns only
 * after the daemon has synced, said farewell and exited.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/options.h"

#define EX_MOUNT_USAGE 1
#define EX_MOUNT_FAIL 32

/* the daemon, while we wait for it: interrupting the mount interrupts the daemon */
static volatile pid_t daemon_pid;
static volatile sig_atomic_t interrupted;

static void forward_signal(int sig)
{
	/* the first interrupt asks the daemon to give up; another one kills it */
	if (daemon_pid > 0)
		kill(daemon_pid, interrupted ? SIGKILL : SIGTERM);
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mount.scoutfs DATA_DEVICE MOUNTPOINT -o metadev_path=META_DEVICE[,...]\n"
		"       mount -t scoutfs -o metadev_path=META_DEVICE[,...] DATA_DEVICE MOUNTPOINT\n"
		"\n"
		"Mount a scoutfs filesystem; normally run by mount(8).  The options are checked,\n"
		"the scoutfs daemon (scoutfsd) is started in the background with its log in\n"
		"$SCOUTFS_LOG_DIR (default /var/log/scoutfs), and this returns once the mount is\n"
		"usable, or has failed and says why.  A mount without quorum_slot_nr waits until a\n"
		"quorum member has been elected server (interrupt it to give up).\n"
		"\n"
		"`umount MOUNTPOINT' returns once the daemon has committed the last changes, said\n"
		"farewell to the server and exited, so the devices can be mounted again at once.\n"
		"\n"
		"Mount options:\n");
	mount_options_help(f);
	fprintf(f, "\n"
		   "Unknown or malformed options, and values out of range, fail the mount.  The\n"
		   "-n, -s, -v, -f and -N flags of mount(8) are accepted and ignored.\n"
		   "\n"
		   "Exit status:\n"
		   "  0   mounted\n"
		   "  1   invalid arguments\n"
		   "  32  the mount failed (the reason is printed)\n");
}

/* the daemon next to this program, unless $SCOUTFS_DAEMON names another */
static void daemon_path(char *buf, size_t len)
{
	const char *env = getenv("SCOUTFS_DAEMON");
	char self[PATH_MAX - 16];
	ssize_t n;
	char *slash;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/scoutfsd", self);
			if (access(buf, X_OK) == 0)
				return;
		}
	}
	/* mount(8) runs us from /sbin while meson installs the daemon in sbindir */
	snprintf(buf, len, "%s", SCOUTFSD_INSTALL_PATH);
	if (access(buf, X_OK) == 0)
		return;
	snprintf(buf, len, "scoutfsd");
}

static int open_log(const char *mountpoint, char *path, size_t len)
{
	const char *dir = getenv("SCOUTFS_LOG_DIR");
	char name[PATH_MAX / 2];
	size_t i;
	int fd;

	if (!dir || !*dir)
		dir = "/var/log/scoutfs";
	mkdir(dir, 0755);
	/* one log per mount point: /mnt/a/b -> mnt-a-b.log */
	snprintf(name, sizeof(name), "%.1024s", mountpoint[0] == '/' ? mountpoint + 1 : mountpoint);
	for (i = 0; name[i]; i++) {
		if (name[i] == '/')
			name[i] = '-';
	}
	if (snprintf(path, len, "%.1024s/scoutfsd-%s.log", dir, name[0] ? name : "root") >= (int)len)
		snprintf(path, len, "/dev/null");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	return fd;
}

/* record the mount in utab so that umount uses umount.fuse.scoutfs */
static void register_utab(const char *data, const char *mountpoint)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execlp("mount", "mount", "--fake", "--internal-only", "-t", "fuse.scoutfs", "-o",
		       "x-scoutfs", data, mountpoint, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
}

int main(int argc, char **argv)
{
	struct mount_options mo;
	char daemon[PATH_MAX];
	char mountpoint[PATH_MAX];
	char logpath[PATH_MAX];
	char fdarg[32];
	char line[1300];
	const char *data = NULL;
	const char *mnt = NULL;
	const char *opts = "";
	char why[1024];
	struct sigaction sa;
	struct stat st;
	int pipefd[2];
	size_t have = 0;
	ssize_t n;
	pid_t pid;
	int logfd;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			opts = argv[++i];
		} else if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2]) {
			opts = argv[i] + 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			/* -n (no mtab), -s (sloppy), -v (verbose), -f, -N: nothing to do */
		} else if (!data) {
			data = argv[i];
		} else if (!mnt) {
			mnt = argv[i];
		} else {
			usage(stderr);
			return EX_MOUNT_USAGE;
		}
	}
	if (!data || !mnt) {
		usage(stderr);
		return EX_MOUNT_USAGE;
	}

	mount_options_defaults(&mo);
	if (mount_options_parse(&mo, opts, why, sizeof(why)) < 0 ||
	    mount_options_check(&mo, why, sizeof(why)) < 0) {
		fprintf(stderr, "mount.scoutfs: %s\n", why);
		return EX_MOUNT_FAIL;
	}
	if (!realpath(mnt, mountpoint) || stat(mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mount.scoutfs: mount point %s does not exist or is not a directory\n",
			mnt);
		return EX_MOUNT_FAIL;
	}

	daemon_path(daemon, sizeof(daemon));
	logfd = open_log(mountpoint, logpath, sizeof(logpath));
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		perror("mount.scoutfs: pipe");
		return EX_MOUNT_FAIL;
	}

	/*
	 * The daemon runs in its own session, so ^C at the terminal reaches only us: pass it
	 * on, and keep waiting for the daemon to report that the mount was interrupted (it
	 * undoes what it set up) rather than leave it mounting in the background.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	pid = fork();
	if (pid < 0) {
		perror("mount.scoutfs: fork");
		return EX_MOUNT_FAIL;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		setsid();
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		/* the ready pipe's write end survives exec; the read end doesn't */
		fcntl(pipefd[1], F_SETFD, 0);
		snprintf(fdarg, sizeof(fdarg), "--ready-fd=%d", pipefd[1]);
		execlp(daemon, "scoutfsd", fdarg, "-o", opts, data, mountpoint, (char *)NULL);
		fprintf(stderr, "mount.scoutfs: cannot run %s: %s\n", daemon, strerror(errno));
		_exit(127);
	}
	daemon_pid = pid;
	if (interrupted)
		kill(pid, SIGTERM);
	close(pipefd[1]);
	close(logfd);

	/* the daemon answers "OK" or "ERR errno message", or dies without a word */
	while (have < sizeof(line) - 1) {
		n = read(pipefd[0], line + have, sizeof(line) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += n;
		if (memchr(line, '\n', have))
			break;
	}
	line[have] = '\0';
	close(pipefd[0]);

	if (strncmp(line, "OK", 2) == 0) {
		register_utab(data, mountpoint);
		return 0;
	}
	if (strncmp(line, "ERR ", 4) == 0) {
		char *msg = strchr(line + 4, ' ');
		char *nl = strchr(line, '\n');
		int status;

		if (nl)
			*nl = '\0';
		/* it reported after undoing everything; once it has exited, the slot is free */
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		fprintf(stderr, "mount.scoutfs: mounting %s at %s failed: %s\n", data, mountpoint,
			msg ? msg + 1 : line + 4);
	} else {
		int status = 0;

		waitpid(pid, &status, 0);
		fprintf(stderr,
			"mount.scoutfs: the scoutfs daemon exited before the mount was ready "
			"(status %d); see %s\n",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, logpath);
	}
	return EX_MOUNT_FAIL;
}
