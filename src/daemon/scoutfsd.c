/*
 * scoutfsd.c: the daemon of one scoutfs mount.
 *
 *	scoutfsd [-f] [--ready-fd N] [--debug] -o OPTIONS DATA_DEVICE MOUNTPOINT
 *
 * It always runs in the foreground with its log on stderr (-f is accepted, as FUSE daemons
 * take it, and changes nothing); mount.scoutfs starts it in the
 * background with stderr going to a log file, and learns through the --ready-fd pipe whether
 * the mount came up or why it did not.  The daemon stays until the filesystem is unmounted
 * (or it gets SIGTERM/SIGINT), then unmounts cleanly and exits 0; a failed clean unmount
 * exits 1.  A killed daemon is a crash: the next server recovers and fences it.
 */
#include <errno.h>
#include <execinfo.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/mount.h"
#include "fuse/fuse_ops.h"
#include "net/net.h"
#include "util/log.h"
#include "util/util.h"

static struct mount the_mount;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: scoutfsd [-f] [-d] [--ready-fd N] -o OPTIONS DATA_DEVICE MOUNTPOINT\n"
		"\n"
		"Serve one scoutfs mount: mount the filesystem on DATA_DEVICE (with the metadata\n"
		"device named by the metadev_path= option) at MOUNTPOINT through FUSE, and serve\n"
		"it until it is unmounted.  Normally started by `mount -t scoutfs', whose helper\n"
		"mount.scoutfs runs the daemon in the background with its log in\n"
		"/var/log/scoutfs; run by hand, it stays in the foreground and logs on stderr.\n"
		"\n"
		"OPTIONS are the mount options, comma separated (mount.scoutfs --help lists them\n"
		"with their defaults and ranges); metadev_path= is required.\n"
		"\n"
		"Unmounting (umount MOUNTPOINT), SIGTERM, SIGINT or SIGHUP unmount cleanly: the\n"
		"last transaction is committed, the server is told farewell and, if this mount\n"
		"was the elected server, it stops.  SIGUSR1 (umount -f) is a forced unmount: the\n"
		"daemon stops all I/O and messages at once, as if it had crashed, and another\n"
		"server will recover it; it also ends a clean unmount that is stuck waiting for a\n"
		"server to answer its farewell.  SIGKILL is a crash.\n"
		"\n"
		"Options:\n"
		"  -o OPTIONS       the mount options\n"
		"  -f, --foreground run in the foreground (always the case; accepted for\n"
		"                   compatibility with other FUSE daemons)\n"
		"  -d, --debug      log debugging messages too\n"
		"      --ready-fd N write \"OK\" or \"ERR ERRNO MESSAGE\" to descriptor N once the\n"
		"                   mount is up or has failed (used by mount.scoutfs)\n"
		"  -h, --help       show this help and exit\n"
		"\n"
		"Exit status:\n"
		"  0   mounted, then unmounted cleanly\n"
		"  1   the mount failed (the reason is logged), or the clean unmount failed\n"
		"      (the last commit or the farewell did not succeed; the next server\n"
		"      recovers the mount); the reason is also left in\n"
		"      $SCOUTFS_RUN_DIR/rid-RID.exit for umount to report\n"
		"  64  invalid arguments\n"
		"\n"
		"Environment:\n"
		"  SCOUTFS_RUN_DIR  where the control socket and pid file go (default\n"
		"                   /run/scoutfs)\n");
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		mount_forced = 1;
	mount_interrupted = 1;
	if (the_mount.sf)
		sfuse_exit(the_mount.sf);
}

/*
 * A daemon that crashes says so in its log, with where, before dying of the signal (a core
 * dump, if enabled, still follows): otherwise its log just stops and the only trace is a
 * line in the kernel log.  Only async-signal-safe calls here; backtrace() is called once at
 * start so that it doesn't load its library inside the handler.  With AddressSanitizer its
 * own report says all this and more.
 */
#if !defined(__SANITIZE_ADDRESS__)
static const char *fatal_signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV:
		return "SIGSEGV";
	case SIGBUS:
		return "SIGBUS";
	case SIGILL:
		return "SIGILL";
	case SIGFPE:
		return "SIGFPE";
	default:
		return "SIGABRT";
	}
}

static void on_fatal_signal(int sig)
{
	static const char head[] = "scoutfsd: fatal signal ";
	const char *sig_name = fatal_signal_name(sig);
	char name[32] = "?";
	void *frames[64];

	prctl(PR_GET_NAME, name, 0, 0, 0);
	name[sizeof(name) - 1] = '\0';
	if (write(STDERR_FILENO, head, sizeof(head) - 1) < 0 ||
	    write(STDERR_FILENO, sig_name, strlen(sig_name)) < 0 ||
	    write(STDERR_FILENO, " in thread ", 11) < 0 ||
	    write(STDERR_FILENO, name, strlen(name)) < 0 ||
	    write(STDERR_FILENO, ", backtrace:\n", 13) < 0)
		goto out;
	backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
out:
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_crash_report(void)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	void *frame;

	backtrace(&frame, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	for (size_t i = 0; i < ARRAY_SIZE(fatal); i++)
		sigaction(fatal[i], &sa, NULL);
}
#else
static void install_crash_report(void)
{
}
#endif

static void report(int fd, int err, const char *why)
{
	char line[1200];
	int n;

	if (fd < 0)
		return;
	if (err == 0)
		n = snprintf(line, sizeof(line), "OK\n");
	else
		n = snprintf(line, sizeof(line), "ERR %d %s\n", -err, why);
	if (write(fd, line, (size_t)n) < 0) {
		/* the helper went away; it will learn from our exit status */
	}
	close(fd);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "debug", no_argument, NULL, 'd' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mount *m = &the_mount;
	struct sigaction sa;
	const char *opts = NULL;
	char why[1024] = "";
	int ready_fd = -1;
	struct stat st;
	int c, err;

	while ((c = getopt_long(argc, argv, "o:fdh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			opts = optarg;
			break;
		case 'r':
			ready_fd = atoi(optarg);
			break;
		case 'd':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'f':
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 64;
	}

	pthread_mutex_init(&m->opts_mutex, NULL);
	mount_options_defaults(&m->mo);
	err = mount_options_parse(&m->mo, opts, why, sizeof(why));
	if (err == 0)
		err = mount_options_check(&m->mo, why, sizeof(why));
	if (err < 0)
		goto fail;
	snprintf(m->data_path, sizeof(m->data_path), "%s", argv[optind]);
	if (!realpath(argv[optind + 1], m->mountpoint) || stat(m->mountpoint, &st) < 0 ||
	    !S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof(why), "mount point %s is not a directory", argv[optind + 1]);
		err = -ENOTDIR;
		goto fail;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	install_crash_report();

	err = mount_setup(m, why, sizeof(why));
	if (err == 0 && !mount_interrupted)
		err = mount_attach(m, why, sizeof(why));
	if (err == 0 && mount_interrupted) {
		snprintf(why, sizeof(why), "interrupted");
		err = -EINTR;
	}
	if (err < 0) {
		log_err("mount failed: %s", why);
		/* report only once everything is undone: the same mount may be tried at once */
		mount_teardown(m);
		report(ready_fd, err, why);
		return 1;
	}
	report(ready_fd, 0, NULL);

	err = mount_run(m);
	if (err < 0)
		log_err("serving FUSE requests failed: %s", strerror(-err));
	err = mount_teardown(m);
	return err < 0 ? 1 : 0;
fail:
	fprintf(stderr, "scoutfsd: %s\n", why);
	report(ready_fd, err, why);
	return 1;
}
