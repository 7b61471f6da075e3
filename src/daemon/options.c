/*
 * options.c: parsing and checking mount options.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/options.h"
#include "util/util.h"

void mount_options_defaults(struct mount_options *mo)
{
	memset(mo, 0, sizeof(*mo));
	mo->quorum_slot_nr = -1;
	mo->quorum_heartbeat_timeout_ms = 10000;
	mo->tcp_keepalive_timeout_ms = 24000;
	mo->orphan_scan_delay_ms = 10000;
	mo->log_merge_wait_timeout_ms = 500;
	mo->lock_idle_count = 10000;
	mo->ino_alloc_per_lock = 1024;
	mo->data_prealloc_blocks = 2048;
	mo->data_prealloc_contig_only = true;
	mo->acl = true;
}

struct num_opt {
	const char *name;
	const char *help;
	uint64_t min;
	uint64_t max;
	size_t off;
	int size;
	bool once;    /* may be given only once, as in the original */
	bool runtime; /* may be changed while mounted */
};

#define NUM_OPT(nm, hlp, mn, mx, on, rt)                                                   \
	{ #nm, hlp, mn, mx, offsetof(struct mount_options, nm),                            \
	  (int)sizeof(((struct mount_options *)0)->nm), on, rt }
#define NUM(nm, hlp, mn, mx) NUM_OPT(nm, hlp, mn, mx, false, true)

static const struct num_opt num_opts[] = {
	NUM(quorum_heartbeat_timeout_ms,
	    "how long quorum members wait for the leader's heartbeat before electing\n"
	    "a new one",
	    2000, 60000),
	NUM_OPT(tcp_keepalive_timeout_ms,
		"how long a silent connection to the server (or, on the server, to a\n"
		"client) lasts before it is declared broken (can't be changed while\n"
		"mounted)",
		3001, 600000000, false, false),
	NUM_OPT(orphan_scan_delay_ms,
		"how often the mount looks for unlinked inodes that no mount still uses\n"
		"(given at most once)",
		100, 60000, true, true),
	NUM(log_merge_wait_timeout_ms,
	    "how long the server waits for mounts to finish their transactions\n"
	    "before it merges their log btrees",
	    100, 60000),
	NUM(lock_idle_count, "how many unused cluster locks a mount keeps cached", 32, 100000),
	NUM(ino_alloc_per_lock,
	    "how many inode numbers of each lock group (of 1024) new inodes take\n"
	    "before the mount moves on to the next group",
	    1, 1024),
	NUM(data_prealloc_blocks,
	    "how many 4 KiB data blocks a write may allocate ahead of the data it\n"
	    "writes",
	    1, (1ULL << 52) - 1),
	NUM(data_prealloc_contig_only,
	    "1: allocate ahead only for writes that append to a fully allocated\n"
	    "file; 0: also around writes elsewhere",
	    0, 1),
};

/* options seen so far in one option string */
struct parse_state {
	bool slot_seen;
	bool num_seen[ARRAY_SIZE(num_opts)];
};

/* options the VFS or mount(8) may pass that don't change anything here */
static const char *const ignored_opts[] = {
	"rw", "defaults", "auto", "noauto", "_netdev", "nofail", "relatime", "noatime",
	"strictatime", "nodiratime", "diratime", "lazytime", "nolazytime", "async", "user",
	"nouser", "users", "owner", "group", "suid", "dev", "exec",
};

static int set_num(struct mount_options *mo, const struct num_opt *no, const char *val, char *why,
		   size_t why_len)
{
	uint64_t v;
	char *p = (char *)mo + no->off;

	if (parse_u64(val, &v) < 0 || v < no->min || v > no->max) {
		snprintf(why, why_len, "%s=%s: must be a number from %llu to %llu", no->name, val,
			 (unsigned long long)no->min, (unsigned long long)no->max);
		return -EINVAL;
	}
	if (no->size == 8)
		memcpy(p, &v, 8);
	else if (no->size == 4)
		*(uint32_t *)p = (uint32_t)v;
	else if (no->size == 1)
		*(bool *)p = v != 0;
	return 0;
}

static int parse_one(struct mount_options *mo, char *opt, struct parse_state *ps, char *why,
		     size_t why_len)
{
	char *val = strchr(opt, '=');
	uint64_t v;

	if (val)
		*val++ = '\0';

	for (size_t i = 0; i < ARRAY_SIZE(num_opts); i++) {
		if (strcmp(opt, num_opts[i].name) == 0) {
			if (!val)
				goto malformed;
			if (num_opts[i].once && ps->num_seen[i]) {
				snprintf(why, why_len, "%s may only be given once", opt);
				return -EINVAL;
			}
			ps->num_seen[i] = true;
			return set_num(mo, &num_opts[i], val, why, why_len);
		}
	}
	if (strcmp(opt, "metadev_path") == 0) {
		if (!val || !*val)
			goto malformed;
		if (strlen(val) >= sizeof(mo->metadev_path)) {
			snprintf(why, why_len, "metadev_path is too long");
			return -EINVAL;
		}
		strcpy(mo->metadev_path, val);
		return 0;
	}
	if (strcmp(opt, "quorum_slot_nr") == 0) {
		if (!val)
			goto malformed;
		if (ps->slot_seen) {
			snprintf(why, why_len, "quorum_slot_nr may only be given once");
			return -EINVAL;
		}
		if (parse_u64(val, &v) < 0 || v >= 15) {
			snprintf(why, why_len, "quorum_slot_nr=%s: must be a slot number from 0 to 14",
				 val);
			return -EINVAL;
		}
		ps->slot_seen = true;
		mo->quorum_slot_nr = (int)v;
		return 0;
	}
	if (!val) {
		if (strcmp(opt, "acl") == 0) {
			mo->acl = true;
			return 0;
		}
		if (strcmp(opt, "noacl") == 0) {
			mo->acl = false;
			return 0;
		}
		if (strcmp(opt, "ro") == 0) {
			snprintf(why, why_len, "ro: read-only mounts are not supported yet");
			return -EOPNOTSUPP;
		}
		if (strcmp(opt, "nosuid") == 0)
			return mo->nosuid = true, 0;
		if (strcmp(opt, "nodev") == 0)
			return mo->nodev = true, 0;
		if (strcmp(opt, "noexec") == 0)
			return mo->noexec = true, 0;
		for (size_t i = 0; i < ARRAY_SIZE(ignored_opts); i++) {
			if (strcmp(opt, ignored_opts[i]) == 0)
				return 0;
		}
	}
	if (strncmp(opt, "x-", 2) == 0)
		return 0; /* userspace options for other tools */
malformed:
	snprintf(why, why_len, "Unknown or malformed option: '%s%s%s'", opt, val ? "=" : "",
		 val ? val : "");
	return -EINVAL;
}

int mount_options_parse(struct mount_options *mo, const char *str, char *why, size_t why_len)
{
	struct parse_state ps = { 0 };
	char *copy, *opt, *save = NULL;
	int err = 0;

	if (!str)
		return 0;
	copy = strdup(str);
	if (!copy)
		return -ENOMEM;
	for (opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		err = parse_one(mo, opt, &ps, why, why_len);
		if (err < 0)
			break;
	}
	free(copy);
	return err;
}

int mount_options_check(const struct mount_options *mo, char *why, size_t why_len)
{
	if (!mo->metadev_path[0]) {
		snprintf(why, why_len, "the metadev_path= option naming the metadata device is "
				       "required");
		return -EINVAL;
	}
	return 0;
}

/* each line of help after the first is indented under the option's name */
static void print_indented(FILE *f, const char *text)
{
	for (const char *p = text; *p; p++) {
		fputc(*p, f);
		if (*p == '\n')
			fputs("      ", f);
	}
	fputc('\n', f);
}

void mount_options_help(FILE *f)
{
	struct mount_options def;

	mount_options_defaults(&def);
	fprintf(f, "  metadev_path=PATH\n"
		   "      the metadata device (a block device or a file); required\n"
		   "  quorum_slot_nr=N\n"
		   "      this mount is the quorum member of slot N (0 to 14, a slot given\n"
		   "      to mkfs -Q); without it the mount is a client only\n");
	for (size_t i = 0; i < ARRAY_SIZE(num_opts); i++) {
		const struct num_opt *no = &num_opts[i];
		const char *p = (const char *)&def + no->off;
		uint64_t v = 0;

		if (no->size == 8)
			memcpy(&v, p, 8);
		else if (no->size == 4)
			v = *(const uint32_t *)p;
		else
			v = *(const bool *)p;
		fprintf(f, "  %s=N (%" PRIu64 " to %" PRIu64 ", default %" PRIu64 ")\n      ",
			no->name, no->min, no->max, v);
		print_indented(f, no->help);
	}
	fprintf(f, "  acl, noacl\n"
		   "      POSIX ACLs enforced and inherited (acl, the default) or not (noacl)\n"
		   "  nosuid, nodev, noexec\n"
		   "      as for any filesystem\n"
		   "  rw, defaults, auto, noauto, _netdev, nofail, x-*, and the atime options\n"
		   "      are accepted and change nothing\n");
}

int mount_options_change(struct mount_options *mo, const char *str, char *why, size_t why_len)
{
	struct mount_options n = *mo;
	char *copy, *opt, *val, *save = NULL;
	int err = 0;

	copy = strdup(str);
	if (!copy)
		return -ENOMEM;
	for (opt = strtok_r(copy, ",", &save); opt && err == 0;
	     opt = strtok_r(NULL, ",", &save)) {
		const struct num_opt *no = NULL;

		val = strchr(opt, '=');
		if (val)
			*val++ = '\0';
		for (size_t i = 0; i < ARRAY_SIZE(num_opts); i++) {
			if (strcmp(opt, num_opts[i].name) == 0)
				no = &num_opts[i];
		}
		if (no && val && no->runtime) {
			err = set_num(&n, no, val, why, why_len);
		} else if (no || strcmp(opt, "metadev_path") == 0 ||
			   strcmp(opt, "quorum_slot_nr") == 0 || strcmp(opt, "acl") == 0 ||
			   strcmp(opt, "noacl") == 0) {
			snprintf(why, why_len, "%s can't be changed while mounted%s", opt,
				 no && !val ? " (and needs a value)" : "");
			err = -EINVAL;
		} else {
			snprintf(why, why_len, "Unknown or malformed option: '%s%s%s'", opt,
				 val ? "=" : "", val ? val : "");
			err = -EINVAL;
		}
	}
	free(copy);
	if (err == 0)
		*mo = n;
	return err;
}

int mount_options_format(const struct mount_options *mo, char sep, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len,
		     "%s%cdata_prealloc_blocks=%llu%cdata_prealloc_contig_only=%d%c"
		     "ino_alloc_per_lock=%u%clock_idle_count=%u%clog_merge_wait_timeout_ms=%llu%c"
		     "metadev_path=%s%corphan_scan_delay_ms=%llu%cquorum_heartbeat_timeout_ms=%llu",
		     mo->acl ? "acl" : "noacl", sep, (unsigned long long)mo->data_prealloc_blocks,
		     sep, mo->data_prealloc_contig_only, sep, mo->ino_alloc_per_lock, sep,
		     mo->lock_idle_count, sep, (unsigned long long)mo->log_merge_wait_timeout_ms,
		     sep, mo->metadev_path, sep, (unsigned long long)mo->orphan_scan_delay_ms, sep,
		     (unsigned long long)mo->quorum_heartbeat_timeout_ms);
	if (mo->quorum_slot_nr >= 0 && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - n, "%cquorum_slot_nr=%d", sep, mo->quorum_slot_nr);
	if (n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - n, "%ctcp_keepalive_timeout_ms=%llu", sep,
			      (unsigned long long)mo->tcp_keepalive_timeout_ms);
	return n;
}
