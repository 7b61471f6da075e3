/*
 * cli_progress.c: telling the person at the terminal what a long offline command is doing.
 *
 * Offline commands run a few steps that are instant on a file and may take a while on a
 * slow device (a flush of a large array cache, a device behind a slow fabric).  A silent
 * command that hangs for a minute looks broken, while a command that chatters on every
 * run spoils scripts and logs.  So a step is announced on stderr:
 *
 *  - at once, when the user asked for progress (--progress);
 *  - on a terminal, once the step has been running for longer than a moment (one second,
 *    or $SCOUTFS_PROGRESS_DELAY_MS), by a watcher thread -- the step itself is blocked in
 *    the device;
 *  - never otherwise: output to a pipe or file stays exactly the command's report.
 *
 * Once anything was announced, the end of the last step is announced too, so the
 * terminal does not end on a dangling "...".
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/util.h"

#define PROGRESS_DELAY_MS_DEFAULT 1000
#define PROGRESS_POLL_MS	  100

struct cli_progress {
	const char *cmd;
	enum cli_progress_mode mode;
	uint64_t delay_ms;
	pthread_t watcher;
	bool have_watcher;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool stopping;
	char step[200];
	uint64_t step_start_ms;
	bool step_shown;
	bool any_shown;
};

/* with the mutex held */
static void show_step(struct cli_progress *pr)
{
	fprintf(stderr, "scoutfs %s: %s...\n", pr->cmd, pr->step);
	fflush(stderr);
	pr->step_shown = true;
	pr->any_shown = true;
}

static void *watcher_thread(void *arg)
{
	struct cli_progress *pr = arg;
	struct timespec ts;

	pthread_mutex_lock(&pr->mutex);
	while (!pr->stopping) {
		if (pr->step[0] && !pr->step_shown &&
		    now_mono_ms() - pr->step_start_ms >= pr->delay_ms)
			show_step(pr);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += PROGRESS_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pr->cond, &pr->mutex, &ts);
	}
	pthread_mutex_unlock(&pr->mutex);
	return NULL;
}

static uint64_t progress_delay_ms(void)
{
	const char *env = getenv("SCOUTFS_PROGRESS_DELAY_MS");
	uint64_t ms;

	if (env && *env && parse_u64(env, &ms) == 0)
		return ms;
	return PROGRESS_DELAY_MS_DEFAULT;
}

int cli_progress_start(const char *cmd, enum cli_progress_mode mode, struct cli_progress **ret)
{
	struct cli_progress *pr;

	*ret = NULL;
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	pr->cmd = cmd;
	pr->mode = mode;
	pr->delay_ms = progress_delay_ms();
	pthread_mutex_init(&pr->mutex, NULL);
	pthread_cond_init(&pr->cond, NULL);
	if (mode == CLI_PROGRESS_AUTO && !isatty(STDERR_FILENO))
		pr->mode = CLI_PROGRESS_NEVER;
	if (pr->mode == CLI_PROGRESS_AUTO) {
		/* without a watcher the command still works, it just stays quiet */
		pr->have_watcher = pthread_create(&pr->watcher, NULL, watcher_thread, pr) == 0;
	}
	*ret = pr;
	return 0;
}

void cli_progress_step(struct cli_progress *pr, const char *fmt, ...)
{
	va_list ap;

	if (!pr || pr->mode == CLI_PROGRESS_NEVER)
		return;
	pthread_mutex_lock(&pr->mutex);
	va_start(ap, fmt);
	vsnprintf(pr->step, sizeof(pr->step), fmt, ap);
	va_end(ap);
	pr->step_start_ms = now_mono_ms();
	pr->step_shown = false;
	if (pr->mode == CLI_PROGRESS_ALWAYS)
		show_step(pr);
	pthread_mutex_unlock(&pr->mutex);
}

void cli_progress_done(struct cli_progress *pr, bool ok)
{
	if (!pr)
		return;
	if (pr->have_watcher) {
		pthread_mutex_lock(&pr->mutex);
		pr->stopping = true;
		pthread_cond_signal(&pr->cond);
		pthread_mutex_unlock(&pr->mutex);
		pthread_join(pr->watcher, NULL);
	}
	if (pr->any_shown) {
		fprintf(stderr, "scoutfs %s: %s\n", pr->cmd, ok ? "done" : "failed");
		fflush(stderr);
	}
	pthread_cond_destroy(&pr->cond);
	pthread_mutex_destroy(&pr->mutex);
	free(pr);
}
