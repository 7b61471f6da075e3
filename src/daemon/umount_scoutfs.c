/*
 * umount_scoutfs.c: /sbin/umount.fuse.scoutfs, what `umount MOUNTPOINT` runs for a scoutfs
 * mount (mount.scoutfs registered the mount in utab so that umount looks for this helper).
 *
 *	umount.fuse.scoutfs MOUNTPOINT [-l] [-f] [-n] [-v] [-r] [-d]
 *
 * The kernel tells a FUSE daemon nothing when it is unmounted, and umount(2) returns before
 * the daemon has written its last transaction.  So this helper asks the mount's daemon for
 * its pid (over the control socket), unmounts, and then waits until the daemon has exited --
 * it exits after its final commit and farewell -- so that the same devices can be mounted
 * again at once.  With -f the daemon is first told to shut down without writing (a forced
 * unmount, as a fence would); with -l it is not waited for.  If the daemon's clean unmount
 * failed (its last commit or its farewell), it says why and this exits 32.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control/control.h"
#include "control/ctl_client.h"

/* umount(8)'s "unmount failure" */
#define EX_UMOUNT_FAIL 32

struct ping_ctx {
	pid_t pid;
	uint64_t rid;
};

static int ping_cb(const void *data, size_t len, void *arg)
{
	const struct control_ping_resp *resp = data;
	struct ping_ctx *ctx = arg;

	if (len >= sizeof(*resp)) {
		ctx->pid = (pid_t)resp->pid;
		ctx->rid = resp->rid;
	}
	return 0;
}

/* the daemon's pid and rid, from mountinfo and the control socket; 0 if it can't be reached */
static pid_t daemon_pid(const char *mountpoint, uint64_t *rid)
{
	struct ping_ctx ctx = { 0 };
	struct ctl_conn *conn = NULL;
	char sock[256];
	char err[256];
	dev_t dev;

	if (control_mount_sock_path(NULL, mountpoint, sock, sizeof(sock), &dev) < 0)
		return 0;
	if (ctl_open_socket(sock, &conn, err, sizeof(err)) < 0)
		return 0;
	/* a hung daemon: unmount anyway (its pending requests fail), without waiting for it */
	ctl_set_timeout(conn, 5000);
	if (ctl_call(conn, CONTROL_CMD_PING, NULL, 0, -1, ping_cb, &ctx) < 0)
		ctx.pid = 0;
	ctl_close(conn);
	*rid = ctx.rid;
	return ctx.pid;
}

/*
 * A daemon whose clean unmount failed (its last commit or its farewell) left the reason in
 * $RUN_DIR/rid-RID.exit: print it and fail, the data may not be where the user expects.
 */
static int unmount_result(const char *mountpoint, uint64_t rid)
{
	const char *dir = getenv(CONTROL_RUN_DIR_ENV);
	char path[512], why[512] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/rid-%016llx.exit", dir && *dir ? dir : CONTROL_RUN_DIR_DEFAULT,
		 (unsigned long long)rid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(why, sizeof(why), f))
		snprintf(why, sizeof(why), "(no reason recorded)\n");
	fclose(f);
	unlink(path);
	fprintf(stderr, "umount.fuse.scoutfs: %s: the clean unmount failed: %s", mountpoint, why);
	return EX_UMOUNT_FAIL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: umount.fuse.scoutfs MOUNTPOINT [-l] [-f] [-n] [-r] [-v]\n"
		"       umount MOUNTPOINT\n"
		"\n"
		"Unmount a scoutfs mount; normally run by umount(8).  It returns once the\n"
		"mount's daemon has committed the last changes, said farewell to the server and\n"
		"exited, so the devices and quorum slot can be mounted again at once.\n"
		"\n"
		"  -f  forced: the daemon stops at once, without committing or saying farewell\n"
		"      (as a crash; the next server recovers the mount)\n"
		"  -l  lazy: detach now and don't wait for the daemon\n"
		"  -n, -r, -v  as for umount(8) (-v also says what it waits for)\n"
		"\n"
		"Exit status:\n"
		"  0   unmounted cleanly\n"
		"  1   invalid arguments\n"
		"  32  the unmount failed, or the daemon's clean unmount failed (the reason is\n"
		"      printed: the last commit or the farewell did not succeed)\n"
		"  other  umount(8)'s status, when it failed\n");
}

static int run_umount(char **args)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		execvp("umount", args);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
	char *args[16];
	char mountpoint[PATH_MAX];
	const char *mnt = NULL;
	bool lazy = false, force = false, verbose = false;
	struct pollfd pfd;
	int nargs = 0;
	int pidfd = -1;
	uint64_t rid = 0;
	pid_t pid;
	int ret;
	int i;

	args[nargs++] = "umount";
	args[nargs++] = "-i"; /* don't come back here */
	for (i = 1; i < argc && nargs < 12; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if ((strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "-N") == 0) &&
			   i + 1 < argc) {
			/* options with an argument, passed on as they came */
			args[nargs++] = argv[i++];
			args[nargs++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '-') {
			if (strchr(argv[i], 'l'))
				lazy = true;
			if (strchr(argv[i], 'f'))
				force = true;
			if (strchr(argv[i], 'v'))
				verbose = true;
			args[nargs++] = argv[i];
		} else if (!mnt && argv[i][0] != '-') {
			mnt = argv[i];
		} else {
			usage(stderr);
			return 1;
		}
	}
	if (!mnt) {
		usage(stderr);
		return 1;
	}
	if (!realpath(mnt, mountpoint))
		snprintf(mountpoint, sizeof(mountpoint), "%s", mnt);
	args[nargs++] = mountpoint;
	args[nargs] = NULL;

	pid = daemon_pid(mountpoint, &rid);
	if (pid > 0)
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pid > 0 && force) {
		/* a forced unmount: the daemon stops writing and talking at once */
		kill(pid, SIGUSR1);
	}

	ret = run_umount(args);
	if (ret != 0 || lazy || pidfd < 0) {
		if (pidfd >= 0)
			close(pidfd);
		return ret;
	}

	if (verbose)
		printf("umount.fuse.scoutfs: waiting for the scoutfs daemon (pid %d) to finish\n",
		       (int)pid);
	pfd.fd = pidfd;
	pfd.events = POLLIN;
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	close(pidfd);
	return unmount_result(mountpoint, rid);
}
