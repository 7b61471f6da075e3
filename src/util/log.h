/*
 * log.h: the daemon's and tools' log lines.
 *
 * Lines say what happened and why, prefixed with the time, the level and the mount's
 * identity (set once the mount knows its fsid and rid).  Lines go to stderr, which the
 * daemon points at its log file when it runs in the background.
 */
#ifndef SCOUTFS_LOG_H
#define SCOUTFS_LOG_H

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

void log_set_ident(const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                     \
	do {                                                                               \
		if (log_get_level() >= LOG_LVL_DEBUG)                                      \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                \
	} while (0)

#endif
