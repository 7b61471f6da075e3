/*
 * mount.h: one mounted filesystem inside scoutfsd -- every layer of the mount, created in
 * order from the bottom up and torn down in reverse.
 */
#ifndef SCOUTFS_MOUNT_H
#define SCOUTFS_MOUNT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/super.h"
#include "daemon/options.h"

struct block_cache;
struct server;
struct quorum;
struct client;
struct lock_info;
struct item_cache;
struct trans_info;
struct fs_info;
struct sfuse;
struct control_server;

struct mount {
	struct mount_options mo;
	pthread_mutex_t opts_mutex; /* mo, once mounted (changed through the control socket) */
	char data_path[4096];
	char mountpoint[4096];

	struct super_pair sp;
	u64 fsid;
	u64 fmt_vers;
	u64 rid;

	struct block_cache *bc;
	struct server *srv;
	struct quorum *q;
	struct client *cl;
	struct lock_info *li;
	struct item_cache *ic;
	struct trans_info *ti;
	struct fs_info *fs;
	struct sfuse *sf;
	struct control_server *ctl;
	bool mounted;
	volatile bool ready; /* set up: filesystem commands may run */
	char rid_sock[256];  /* $RUN_DIR/rid-RID.sock: the control socket from the start */
	char mnt_sock[256];  /* $RUN_DIR/mnt-MAJ:MIN.sock: a symlink to it once mounted */
	char pid_file[256];  /* $RUN_DIR/rid-RID.pid: "pid starttime mountpoint" for fencing */
};

/* start the control socket as soon as the rid is known (the fence agent needs it early) */
int mount_control_start(struct mount *m, char *why, size_t why_len);

/* build everything up to a working filesystem (not yet visible to the kernel) */
int mount_setup(struct mount *m, char *why, size_t why_len);
/* make it visible at the mount point and start the control socket */
int mount_attach(struct mount *m, char *why, size_t why_len);
/* serve until unmounted */
int mount_run(struct mount *m);
/* the clean unmount: sync, farewell, resign, free everything */
int mount_teardown(struct mount *m);

/*
 * Change mount options while mounted ("name=value,...", see mount_options_change()) and
 * hand each new value to the layer that uses it.  -EINVAL with why if any is refused.
 */
int mount_change_options(struct mount *m, const char *str, char *why, size_t why_len);
/* the current options, one "name=value" a line; the length snprintf wanted */
int mount_format_options(struct mount *m, char *buf, size_t len);

/* control socket handlers */
extern const struct control_handler *mount_control_handlers;

/* set by a signal: a mount in progress gives up */
extern volatile int mount_interrupted;
/* set by SIGUSR1 (umount -f): shut down without writing or talking to anyone */
extern volatile int mount_forced;

#endif
