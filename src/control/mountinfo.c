/*
 * mountinfo.c: reading /proc/self/mountinfo.
 *
 * A line looks like
 *
 *	36 35 0:41 / /mnt/scoutfs rw,nosuid,nodev - fuse.scoutfs /dev/data rw,user_id=0
 *
 * mount id, parent id, MAJ:MIN, root within the filesystem, mount point, mount options, any
 * number of optional fields, a lone "-", the filesystem type, the source and the superblock
 * options.  Fields are separated by single spaces; spaces, tabs, newlines and backslashes
 * inside the text fields are written as three-digit octal escapes.  We parse each line into a
 * struct mountinfo_ent and let the caller's match decide.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/mountinfo.h"

/* copy src to dst (of size len) undoing mountinfo's octal escapes; false if it did not fit */
static bool unescape(char *dst, size_t len, const char *src)
{
	size_t n = 0;

	while (*src) {
		char c = *src;

		if (c == '\\' && src[1] >= '0' && src[1] <= '3' && src[2] >= '0' && src[2] <= '7' &&
		    src[3] >= '0' && src[3] <= '7') {
			c = (char)(((src[1] - '0') << 6) | ((src[2] - '0') << 3) | (src[3] - '0'));
			src += 4;
		} else {
			src++;
		}
		if (n + 1 >= len)
			return false;
		dst[n++] = c;
	}
	dst[n] = '\0';
	return true;
}

/* split one line into ent; false for lines we cannot read (they are skipped) */
static bool parse_line(char *line, struct mountinfo_ent *ent)
{
	char *fields[6];
	char *save = NULL;
	char *tok;
	char *fstype;
	char *source;
	int nr = 0;

	line[strcspn(line, "\n")] = '\0';

	while (nr < 6 && (tok = strtok_r(nr ? NULL : line, " ", &save)))
		fields[nr++] = tok;
	if (nr < 6)
		return false;

	/* optional fields until the separator */
	for (tok = strtok_r(NULL, " ", &save); tok && strcmp(tok, "-") != 0;
	     tok = strtok_r(NULL, " ", &save))
		;
	if (!tok)
		return false;
	fstype = strtok_r(NULL, " ", &save);
	source = strtok_r(NULL, " ", &save);
	if (!fstype)
		return false;

	if (sscanf(fields[2], "%u:%u", &ent->maj, &ent->min) != 2)
		return false;
	if (!unescape(ent->mountpoint, sizeof(ent->mountpoint), fields[4]) ||
	    !unescape(ent->fstype, sizeof(ent->fstype), fstype) ||
	    !unescape(ent->source, sizeof(ent->source), source ? source : ""))
		return false;
	return true;
}

enum match_result {
	MATCH_NO = 0,
	MATCH_MAYBE, /* remember it, keep looking for a better one */
	MATCH_YES,   /* remember it; stop unless last_wins */
};

struct match_args {
	unsigned int maj;
	unsigned int min;
	const char *mountpoint;
	const char *fstype;
};

/*
 * Walk the file calling match on every line.  A MATCH_YES line is the answer (the first one,
 * or the last one if last_wins); failing that, the first MATCH_MAYBE line.
 */
static int scan(const char *path, enum match_result (*match)(struct mountinfo_ent *, void *),
                void *arg, bool last_wins, struct mountinfo_ent *ent)
{
	struct mountinfo_ent *cur = NULL;
	bool have_yes = false;
	bool have_maybe = false;
	char *line = NULL;
	size_t cap = 0;
	FILE *f = NULL;
	int ret;

	cur = malloc(sizeof(*cur));
	if (!cur) {
		ret = -ENOMEM;
		goto out;
	}

	f = fopen(path ? path : MOUNTINFO_DEFAULT_PATH, "re");
	if (!f) {
		ret = -errno;
		goto out;
	}

	while (getline(&line, &cap, f) >= 0) {
		enum match_result m;

		if (!parse_line(line, cur))
			continue;
		m = match(cur, arg);
		if (m == MATCH_YES) {
			*ent = *cur;
			have_yes = true;
			if (!last_wins)
				break;
		} else if (m == MATCH_MAYBE && !have_yes && !have_maybe) {
			*ent = *cur;
			have_maybe = true;
		}
	}
	if (ferror(f)) {
		ret = -EIO;
		goto out;
	}

	ret = (have_yes || have_maybe) ? 0 : -ENOENT;
out:
	if (f)
		fclose(f);
	free(line);
	free(cur);
	return ret;
}

static enum match_result match_dev(struct mountinfo_ent *ent, void *arg)
{
	struct match_args *args = arg;

	if (ent->maj != args->maj || ent->min != args->min)
		return MATCH_NO;
	if (args->fstype && strcmp(ent->fstype, args->fstype) != 0)
		return MATCH_MAYBE;
	return MATCH_YES;
}

static enum match_result match_mountpoint(struct mountinfo_ent *ent, void *arg)
{
	struct match_args *args = arg;

	if (strcmp(ent->mountpoint, args->mountpoint) != 0)
		return MATCH_NO;
	if (args->fstype && strcmp(ent->fstype, args->fstype) != 0)
		return MATCH_NO;
	return MATCH_YES;
}

int mountinfo_find_dev(const char *path, unsigned int maj, unsigned int min, const char *fstype,
                       struct mountinfo_ent *ent)
{
	struct match_args args = { .maj = maj, .min = min, .fstype = fstype };

	return scan(path, match_dev, &args, false, ent);
}

int mountinfo_find_mountpoint(const char *path, const char *mountpoint, const char *fstype,
                              struct mountinfo_ent *ent)
{
	struct match_args args = { .mountpoint = mountpoint, .fstype = fstype };

	return scan(path, match_mountpoint, &args, true, ent);
}
