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
#include <pthread.h>
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

/* daemons asked at once, each by a thread of its own */
#define MAX_PARALLEL 64

extern char **environ;

/* daemons that didn't answer, and when to try them again */
static struct backoff {
	char sock[256];
	time_t until;
} backoffs[MAX_BACKOFFS];
static pthread_mutex_t backoff_mutex = PTHREAD_MUTEX_INITIALIZER;

static bool backing_off(const char *sock, time_t now)
{
	bool ret = false;

	pthread_mutex_lock(&backoff_mutex);
	for (int i = 0; i < MAX_BACKOFFS && !ret; i++)
		ret = backoffs[i].until > now && strcmp(backoffs[i].sock, sock) == 0;
	pthread_mutex_unlock(&backoff_mutex);
	return ret;
}

static void back_off(const char *sock, time_t now)
{
	int oldest = 0;

	pthread_mutex_lock(&backoff_mutex);
	for (int i = 1; i < MAX_BACKOFFS; i++) {
		if (backoffs[i].until < backoffs[oldest].until)
			oldest = i;
	}
	snprintf(backoffs[oldest].sock, sizeof(backoffs[oldest].sock), "%s", sock);
	backoffs[oldest].until = now + DAEMON_BACKOFF_SECS;
	pthread_mutex_unlock(&backoff_mutex);
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
	char rid_env[64], ip_env[64], reason_env[80];
	char *argv[] = { "sh", "-c", cmd, NULL };
	char **envp;
	size_t nr_env = 0;
	int status = 0;
	pid_t pid;

	snprintf(rid, sizeof(rid), "%016llx", (unsigned long long)ent->rid);
	snprintf(ip, sizeof(ip), "%u.%u.%u.%u", (ent->ipv4_addr >> 24) & 0xff,
		 (ent->ipv4_addr >> 16) & 0xff, (ent->ipv4_addr >> 8) & 0xff, ent->ipv4_addr & 0xff);
	snprintf(cmd, sizeof(cmd), "%s %s", cfg->run, cfg->run_args);
	logmsg("fencing rid %s at %s for %.*s: running '%s'", rid, ip, (int)sizeof(ent->reason),
	       ent->reason, cmd);
	snprintf(rid_env, sizeof(rid_env), "SCOUTFS_FENCED_REQ_RID=%s", rid);
	snprintf(ip_env, sizeof(ip_env), "SCOUTFS_FENCED_REQ_IP=%s", ip);
	snprintf(reason_env, sizeof(reason_env), "SCOUTFS_FENCED_REQ_REASON=%.*s",
		 (int)sizeof(ent->reason), ent->reason);

	/* the child only execs: its environment is built here, where other threads may run */
	while (environ[nr_env])
		nr_env++;
	envp = calloc(nr_env + 4, sizeof(*envp));
	if (!envp) {
		logmsg("running the fence command failed: out of memory");
		return false;
	}
	nr_env = 0;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "SCOUTFS_FENCED_REQ_", 19) != 0)
			envp[nr_env++] = *e;
	}
	envp[nr_env] = rid_env;
	envp[nr_env + 1] = ip_env;
	envp[nr_env + 2] = reason_env;

	pid = fork();
	if (pid == 0) {
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	free(envp);
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

struct scan_job {
	const struct config *cfg;
	const char *sock;
	pthread_t thread;
	bool started;
};

static void *scan_thread(void *arg)
{
	struct scan_job *job = arg;

	service_socket(job->cfg, job->sock);
	return NULL;
}

/* every daemon at once, so that one that is slow to answer delays none of the others */
static void scan(const struct config *cfg, char **socks, size_t nr)
{
	struct scan_job jobs[MAX_PARALLEL];

	for (size_t base = 0; base < nr && !stopping; base += MAX_PARALLEL) {
		size_t n = nr - base < MAX_PARALLEL ? nr - base : MAX_PARALLEL;

		for (size_t i = 0; i < n; i++) {
			jobs[i].cfg = cfg;
			jobs[i].sock = socks[base + i];
			jobs[i].started = pthread_create(&jobs[i].thread, NULL, scan_thread,
							 &jobs[i]) == 0;
			if (!jobs[i].started)
				service_socket(cfg, jobs[i].sock);
		}
		for (size_t i = 0; i < n; i++) {
			if (jobs[i].started)
				pthread_join(jobs[i].thread, NULL);
		}
	}
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
		"reports the fence as failed.  Daemons are asked at the same time, and one that\n"
		"doesn't answer within three seconds is left alone for thirty, so hung mounts\n"
		"can't hold up the others.\n"
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
			scan(&cfg, g.gl_pathv, g.gl_pathc);
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
