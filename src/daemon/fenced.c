/*
 * fenced.c: scoutfs-fenced, the fence agent.
 *
 *	scoutfs-fenced [-c CONFIG] [-d SECONDS] [-r COMMAND] [-a ARGS] [--once]
 *
 * Only the elected server fences, and only after the mount it fences can no longer write:
 * the server records a request {rid, address, reason}, and this agent carries it out.  Every
 * DELAY seconds it asks each scoutfs daemon on this host (through the control sockets
 * $SCOUTFS_RUN_DIR/rid-*.sock) for its server's pending fence requests, runs the configured
 * command for each with SCOUTFS_FENCED_REQ_RID, SCOUTFS_FENCED_REQ_IP and
 * SCOUTFS_FENCED_REQ_REASON in its environment, and reports the outcome: exit status 0 means
 * fenced, anything else failed (the server then stops so another member can try).
 *
 * The configuration file (default /etc/scoutfs/scoutfs-fenced.conf) holds shell-style
 * SCOUTFS_FENCED_DELAY=, SCOUTFS_FENCED_RUN= and SCOUTFS_FENCED_RUN_ARGS= lines; options
 * override it.  scoutfs-fence-local, shipped alongside, fences mounts of this host by killing
 * their daemons; other sites power-fence hosts or revoke their storage access.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control/control_proto.h"
#include "control/ctl_client.h"

/* how long one daemon may take to answer */
#define CTL_TIMEOUT_MS 3000
/* and how long it is then left alone, so that hung daemons don't slow every scan */
#define DAEMON_BACKOFF_SECS 30
#define MAX_BACKOFFS	    64

/* daemons that didn't answer, and when to try them again */
static struct backoff {
	char sock[256];
	time_t until;
} backoffs[MAX_BACKOFFS];

static bool backing_off(const char *sock, time_t now)
{
	for (int i = 0; i < MAX_BACKOFFS; i++) {
		if (backoffs[i].until > now && strcmp(backoffs[i].sock, sock) == 0)
			return true;
	}
	return false;
}

static void back_off(const char *sock, time_t now)
{
	int oldest = 0;

	for (int i = 1; i < MAX_BACKOFFS; i++) {
		if (backoffs[i].until < backoffs[oldest].until)
			oldest = i;
	}
	snprintf(backoffs[oldest].sock, sizeof(backoffs[oldest].sock), "%s", sock);
	backoffs[oldest].until = now + DAEMON_BACKOFF_SECS;
}

static volatile sig_atomic_t stopping;

struct config {
	unsigned int delay;
	char run[1024];
	char run_args[1024];
};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logmsg(const char *fmt, ...)
{
	char ts[64];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s scoutfs-fenced: ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void unquote(char *val)
{
	size_t len = strlen(val);

	while (len && (val[len - 1] == '\n' || val[len - 1] == ' '))
		val[--len] = '\0';
	if (len >= 2 && (val[0] == '"' || val[0] == '\'') && val[len - 1] == val[0]) {
		memmove(val, val + 1, len - 2);
		val[len - 2] = '\0';
	}
}

static int read_config(const char *path, struct config *cfg, bool required)
{
	char line[2048];
	char *eq, *key, *val;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		if (required) {
			logmsg("cannot read %s: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		key = line + strspn(line, " \t");
		if (*key == '#' || *key == '\n' || !*key)
			continue;
		eq = strchr(key, '=');
		if (!eq)
			continue;
		*eq = '\0';
		val = eq + 1;
		unquote(val);
		if (strcmp(key, "SCOUTFS_FENCED_DELAY") == 0)
			cfg->delay = (unsigned int)atoi(val);
		else if (strcmp(key, "SCOUTFS_FENCED_RUN") == 0)
			snprintf(cfg->run, sizeof(cfg->run), "%s", val);
		else if (strcmp(key, "SCOUTFS_FENCED_RUN_ARGS") == 0)
			snprintf(cfg->run_args, sizeof(cfg->run_args), "%s", val);
	}
	fclose(f);
	return 0;
}

struct list_ctx {
	struct control_fence_entry ents[256];
	size_t nr;
};

static int list_cb(const void *data, size_t len, void *arg)
{
	struct list_ctx *lc = arg;
	const struct control_fence_entry *ent = data;

	for (size_t i = 0; i < len / sizeof(*ent) && lc->nr < 256; i++)
		lc->ents[lc->nr++] = ent[i];
	return 0;
}

/* run the fence command for one request; true if it succeeded */
static bool run_fence(const struct config *cfg, const struct control_fence_entry *ent)
{
	char rid[32], ip[32], cmd[2100];
	int status = 0;
	pid_t pid;

	snprintf(rid, sizeof(rid), "%016llx", (unsigned long long)ent->rid);
	snprintf(ip, sizeof(ip), "%u.%u.%u.%u", (ent->ipv4_addr >> 24) & 0xff,
		 (ent->ipv4_addr >> 16) & 0xff, (ent->ipv4_addr >> 8) & 0xff, ent->ipv4_addr & 0xff);
	snprintf(cmd, sizeof(cmd), "%s %s", cfg->run, cfg->run_args);
	logmsg("fencing rid %s at %s for %s: running '%s'", rid, ip, ent->reason, cmd);

	pid = fork();
	if (pid == 0) {
		setenv("SCOUTFS_FENCED_REQ_RID", rid, 1);
		setenv("SCOUTFS_FENCED_REQ_IP", ip, 1);
		setenv("SCOUTFS_FENCED_REQ_REASON", ent->reason, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		logmsg("running the fence command failed: %s", strerror(errno));
		return false;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		logmsg("rid %s fenced", rid);
		return true;
	}
	logmsg("fence command for rid %s failed (status %d)", rid,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return false;
}

static void service_socket(const struct config *cfg, const char *sock)
{
	struct control_fence_ack_req ack;
	struct ctl_conn *conn = NULL;
	struct list_ctx lc = { .nr = 0 };
	char err[256];
	int ret;

	if (backing_off(sock, time(NULL)))
		return;
	if (ctl_open_socket(sock, &conn, err, sizeof(err)) < 0)
		return; /* a dead daemon's leftover socket */
	/* a stuck daemon must not keep us from the servers that need us */
	ctl_set_timeout(conn, CTL_TIMEOUT_MS);
	ret = ctl_call(conn, CONTROL_CMD_FENCE_LIST, NULL, 0, -1, list_cb, &lc);
	if (ret < 0) {
		/* -ENOTCONN: that mount is not running the server */
		if (ret == -ETIMEDOUT) {
			logmsg("%s did not answer within %u ms; leaving it for %u seconds", sock,
			       CTL_TIMEOUT_MS, DAEMON_BACKOFF_SECS);
			back_off(sock, time(NULL));
		}
		ctl_close(conn);
		return;
	}
	for (size_t i = 0; i < lc.nr && !stopping; i++) {
		if (lc.ents[i].fenced || lc.ents[i].error)
			continue;
		memset(&ack, 0, sizeof(ack));
		ack.rid = lc.ents[i].rid;
		ack.fenced = run_fence(cfg, &lc.ents[i]) ? 1 : 0;
		ret = ctl_call(conn, CONTROL_CMD_FENCE_ACK, &ack, sizeof(ack), -1, NULL, NULL);
		if (ret < 0 && ret != -ENOENT)
			logmsg("reporting the fence of rid %016llx to %s failed: %s",
			       (unsigned long long)ack.rid, sock, strerror(-ret));
	}
	ctl_close(conn);
}

static void on_signal(int sig)
{
	stopping = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: scoutfs-fenced [-c CONFIG] [-d SECONDS] [-r COMMAND] [-a ARGS] [--once]\n"
		"\n"
		"Carry out the fence requests of the scoutfs servers running on this host.\n"
		"\n"
		"  -c, --config FILE   configuration (default /etc/scoutfs/scoutfs-fenced.conf)\n"
		"  -d, --delay SECS    seconds between scans (SCOUTFS_FENCED_DELAY, default 2)\n"
		"  -r, --run COMMAND   the fence command (SCOUTFS_FENCED_RUN); it gets\n"
		"                      SCOUTFS_FENCED_REQ_RID, _REQ_IP and _REQ_REASON\n"
		"  -a, --args ARGS     arguments for the command (SCOUTFS_FENCED_RUN_ARGS)\n"
		"      --once          scan once and exit\n"
		"\n"
		"The command must make the mount unable to write to the devices (kill its daemon,\n"
		"power off its host, revoke its storage access) and exit 0; any other status\n"
		"reports the fence as failed.  A daemon that doesn't answer within two seconds\n"
		"is left alone for thirty, so hung mounts can't hold up the others.\n"
		"\n"
		"Exit status:\n"
		"  0   stopped by SIGTERM or SIGINT (or --once is done)\n"
		"  1   no fence command, or the configuration can't be read\n"
		"  64  invalid arguments\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' }, { "delay", required_argument, NULL, 'd' },
		{ "run", required_argument, NULL, 'r' },    { "args", required_argument, NULL, 'a' },
		{ "once", no_argument, NULL, 'o' },	    { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg = { .delay = 2 };
	const char *config = "/etc/scoutfs/scoutfs-fenced.conf";
	const char *run = NULL, *args = NULL, *delay = NULL;
	const char *dir = getenv(CONTROL_RUN_DIR_ENV);
	bool config_given = false, once = false;
	char pattern[512];
	struct sigaction sa;
	glob_t g;
	int c;

	while ((c = getopt_long(argc, argv, "c:d:r:a:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 'd':
			delay = optarg;
			break;
		case 'r':
			run = optarg;
			break;
		case 'a':
			args = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (read_config(config, &cfg, config_given) < 0)
		return 1;
	if (delay)
		cfg.delay = (unsigned int)atoi(delay);
	if (run)
		snprintf(cfg.run, sizeof(cfg.run), "%s", run);
	if (args)
		snprintf(cfg.run_args, sizeof(cfg.run_args), "%s", args);
	if (!cfg.run[0]) {
		logmsg("no fence command: set SCOUTFS_FENCED_RUN in %s or use --run", config);
		return 1;
	}
	if (cfg.delay == 0)
		cfg.delay = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	logmsg("started: SCOUTFS_FENCED_DELAY=%u SCOUTFS_FENCED_RUN='%s' SCOUTFS_FENCED_RUN_ARGS='%s'",
	       cfg.delay, cfg.run, cfg.run_args);

	snprintf(pattern, sizeof(pattern), "%s/rid-*.sock", dir && *dir ? dir : CONTROL_RUN_DIR_DEFAULT);
	while (!stopping) {
		if (glob(pattern, 0, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc && !stopping; i++)
				service_socket(&cfg, g.gl_pathv[i]);
			globfree(&g);
		}
		if (once)
			break;
		for (unsigned int s = 0; s < cfg.delay * 10 && !stopping; s++)
			usleep(100 * 1000);
	}
	logmsg("stopped");
	return 0;
}
