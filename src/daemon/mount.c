/*
 * mount.c: building a mount out of the layers, and taking it apart.
 *
 * Mounting is the original's fill_super in userspace: verify the device pair, pick a new
 * random rid, start the quorum agent if this mount holds a quorum slot (it may win the
 * election and start the server right away), connect the client to whichever server is
 * elected, open the first transaction, check that the root directory reads, then attach
 * the FUSE session and the control socket.
 *
 * The clean unmount runs the other way: stop serving, commit the last transaction, stop
 * taking locks, say farewell to the server (which reclaims the mount's resources), stop
 * the quorum agent (which stops a running server and records it), and free everything.
 * After that nothing of this mount is left for another server to recover or fence, and
 * the same devices and slot can be mounted again at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "client/client.h"
#include "control/control.h"
#include "daemon/mount.h"
#include "dev/dev.h"
#include "fs/fs.h"
#include "fuse/fuse_ops.h"
#include "item/item.h"
#include "lock/lock.h"
#include "net/net.h"
#include "quorum/quorum.h"
#include "server/server.h"
#include "trans/trans.h"
#include "util/log.h"
#include "util/util.h"

/*
 * The mount's readahead: several of the largest FUSE requests (1 MiB), so that a stream's
 * reads arrive as 1 MiB requests, a few at a time, which the daemon's threads read from the
 * device in parallel (4 MiB read a 1 GiB file 15-20% faster than 1 MiB here; 8 MiB and more
 * no faster).
 */
#define MOUNT_READ_AHEAD_KB 4096

volatile int mount_interrupted;
volatile int mount_forced;

/* ---- glue between the layers ---- */

static int lk_send_request(void *arg, const struct scoutfs_net_lock *nl)
{
	struct mount *m = arg;

	return client_lock_request(m->cl, nl);
}

static int lk_send_invalidate_response(void *arg, u64 net_id, const struct scoutfs_net_lock *nl)
{
	struct mount *m = arg;

	return client_lock_invalidate_response(m->cl, net_id, nl);
}

static int lk_send_recover_response(void *arg, u64 net_id, const struct scoutfs_net_lock_recover *nlr,
				    unsigned int len)
{
	struct mount *m = arg;

	return client_lock_recover_response(m->cl, net_id, nlr, len);
}

static int lk_invalidate(void *arg, struct lock *lock, enum scoutfs_lock_mode old_mode,
			 enum scoutfs_lock_mode new_mode)
{
	struct mount *m = arg;

	return fs_lock_invalidate(m->fs, lock, old_mode, new_mode);
}

static u64 lk_trans_seq(void *arg)
{
	struct mount *m = arg;

	return m->ti ? trans_seq(m->ti) : 0;
}

static const struct lock_ops mount_lock_ops = {
	.send_request = lk_send_request,
	.send_invalidate_response = lk_send_invalidate_response,
	.send_recover_response = lk_send_recover_response,
	.invalidate = lk_invalidate,
	.trans_seq = lk_trans_seq,
};

static int ic_get_roots(void *arg, struct scoutfs_net_roots *roots)
{
	struct mount *m = arg;

	return client_get_roots(m->cl, roots);
}

static const struct item_cache_ops mount_item_ops = {
	.get_roots = ic_get_roots,
};

static void cl_sync_log_trees(void *arg)
{
	struct mount *m = arg;

	if (m->ti)
		trans_sync_async(m->ti);
}

static void cl_new_server(void *arg)
{
	struct mount *m = arg;

	if (m->ic)
		item_roots_changed(m->ic);
}

static void cl_open_ino_map(void *arg, u64 group_nr, le64 *bits)
{
	struct mount *m = arg;

	if (m->fs)
		fs_open_ino_map(m->fs, group_nr, bits);
	else
		memset(bits, 0, SCOUTFS_OPEN_INO_MAP_LE64S * sizeof(le64)); /* nothing open yet */
}

static const struct client_ops mount_client_ops = {
	.sync_log_trees = cl_sync_log_trees,
	.new_server = cl_new_server,
	.open_ino_map = cl_open_ino_map,
};

static const struct fs_upcalls mount_fs_upcalls = {
	.flush_inodes = sfuse_flush_inodes,
	.invalidate_inodes = sfuse_invalidate_inodes,
	.inode_in_use = sfuse_inode_in_use,
	.inodes_in_use = sfuse_inodes_in_use,
};

static bool mount_was_interrupted(void *arg)
{
	return mount_interrupted != 0;
}

/* a clean unmount gives up waiting (for a farewell nobody answers) once it is forced */
static bool mount_was_forced(void *arg)
{
	return mount_forced != 0;
}

/* the mount options the fs layer uses, at mount and when they change */
static void fs_options_of(const struct mount_options *mo, struct fs_options *fo)
{
	memset(fo, 0, sizeof(*fo));
	fo->data_prealloc_blocks = mo->data_prealloc_blocks;
	fo->data_prealloc_contig_only = mo->data_prealloc_contig_only;
	fo->ino_alloc_per_lock = mo->ino_alloc_per_lock;
	fo->acl = mo->acl;
}

/* ---- setting up ---- */

static int setup_quorum(struct mount *m, char *why, size_t why_len)
{
	const struct scoutfs_quorum_config *qconf = &m->sp.meta_super->qconf;
	struct server_config scfg;
	char qwhy[256];
	int slot = m->mo.quorum_slot_nr;
	int err;

	if (slot < 0)
		return 0;
	err = quorum_config_verify(qconf, qwhy, sizeof(qwhy));
	if (err < 0) {
		snprintf(why, why_len, "the quorum configuration is invalid: %s", qwhy);
		return err;
	}
	if (!quorum_slot_present(qconf, slot)) {
		char slots[128] = "";
		size_t n = 0;

		for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
			if (quorum_slot_present(qconf, i))
				n += snprintf(slots + n, sizeof(slots) - n, "%s%d", n ? "," : "", i);
		}
		snprintf(why, why_len,
			 "quorum_slot_nr=%d is not a configured quorum slot (configured: %s)", slot,
			 slots);
		return -EINVAL;
	}

	memset(&scfg, 0, sizeof(scfg));
	scfg.meta_dev = m->sp.meta;
	scfg.data_dev = m->sp.data;
	scfg.fsid = m->fsid;
	scfg.rid = m->rid;
	scfg.slot_nr = slot;
	scfg.qconf = *qconf;
	scfg.log_merge_wait_timeout_ms = m->mo.log_merge_wait_timeout_ms;
	scfg.keepalive_timeout_ms = (unsigned int)m->mo.tcp_keepalive_timeout_ms;
	scfg.reconnect_timeout_ms = 20000;
	scfg.recovery_timeout_ms = 30000;
	scfg.fence_timeout_ms = 30000;
	scfg.leader_fence_timeout_ms = 15000;
	err = quorum_slot_unclean_rid(m->sp.meta, m->fsid, qconf, slot, &scfg.slot_crashed_rid);
	if (err < 0) {
		snprintf(why, why_len, "reading the quorum blocks failed: %s", strerror(-err));
		return err;
	}
	err = server_create(&scfg, &m->srv);
	if (err < 0) {
		snprintf(why, why_len, "creating the server failed: %s", strerror(-err));
		return err;
	}
	err = quorum_start(m->sp.meta, m->fsid, m->rid, qconf, slot,
			   m->mo.quorum_heartbeat_timeout_ms, &server_quorum_ops, m->srv, &m->q);
	if (err < 0)
		snprintf(why, why_len, "starting the quorum agent for slot %d failed: %s "
				       "(is another mount using this slot?)",
			 slot, strerror(-err));
	return err;
}

static u64 new_rid(void)
{
	u64 rid;

	do {
		rid = random_u64();
	} while (rid == 0 || rid == ~0ULL);
	return rid;
}

int mount_setup(struct mount *m, char *why, size_t why_len)
{
	struct lock_waiter waiter = { .interrupted = mount_was_interrupted };
	struct lock *root_lock;
	struct client_config ccfg;
	struct fs_config fcfg;
	struct fs_attr attr;
	char ident[64];
	int err;

	err = super_open_pair(m->mo.metadev_path, m->data_path, false, &m->sp, why, why_len);
	if (err < 0)
		return err;
	m->fsid = le64_to_cpu(m->sp.meta_super->hdr.fsid);
	m->fmt_vers = le64_to_cpu(m->sp.meta_super->fmt_vers);
	m->rid = new_rid();
	snprintf(ident, sizeof(ident), "scoutfsd f.%06llx.r.%06llx", (unsigned long long)(m->fsid >> 40),
		 (unsigned long long)(m->rid >> 40));
	log_set_ident(ident);
	log_info("mounting %s (metadata %s) at %s, fsid %016llx rid %016llx", m->data_path,
		 m->mo.metadev_path, m->mountpoint, (unsigned long long)m->fsid,
		 (unsigned long long)m->rid);

	err = mount_control_start(m, why, why_len);
	if (err < 0)
		return err;
	err = block_cache_create(m->sp.meta, m->fsid, 0, &m->bc);
	if (err < 0)
		goto nomem;
	err = setup_quorum(m, why, why_len);
	if (err < 0)
		return err;

	memset(&ccfg, 0, sizeof(ccfg));
	ccfg.meta_dev = m->sp.meta;
	ccfg.bc = m->bc;
	ccfg.fsid = m->fsid;
	ccfg.fmt_vers = m->fmt_vers;
	ccfg.rid = m->rid;
	ccfg.quorum_member = m->mo.quorum_slot_nr >= 0;
	ccfg.qconf = m->sp.meta_super->qconf;
	ccfg.keepalive_timeout_ms = (unsigned int)m->mo.tcp_keepalive_timeout_ms;
	err = client_create(&ccfg, &mount_client_ops, m, &m->cl);
	if (err < 0)
		goto nomem;
	err = lock_info_create(&mount_lock_ops, m, m->mo.lock_idle_count, &m->li);
	if (err < 0)
		goto nomem;
	client_set_lock_info(m->cl, m->li);
	err = item_cache_create(m->bc, &mount_item_ops, m, &m->ic);
	if (err < 0)
		goto nomem;
	err = trans_create(m->cl, m->ic, m->bc, m->sp.data, &m->ti);
	if (err < 0)
		goto nomem;

	memset(&fcfg, 0, sizeof(fcfg));
	fcfg.ic = m->ic;
	fcfg.li = m->li;
	fcfg.ti = m->ti;
	fcfg.cl = m->cl;
	fcfg.bc = m->bc;
	fcfg.data_dev = m->sp.data;
	fcfg.fsid = m->fsid;
	fcfg.rid = m->rid;
	fcfg.fmt_vers = m->fmt_vers;
	fcfg.total_data_blocks = le64_to_cpu(m->sp.meta_super->total_data_blocks);
	fs_options_of(&m->mo, &fcfg.opts);
	err = fs_create(&fcfg, &m->fs);
	if (err < 0)
		goto nomem;
	fs_set_orphan_scan_delay(m->fs, m->mo.orphan_scan_delay_ms);

	/* the mount can only go on once some server is up and has recovered its clients */
	client_start(m->cl);
	log_info("waiting for a server");
	err = client_wait_connected(m->cl, &waiter);
	if (err < 0) {
		snprintf(why, why_len, "%s while waiting for a server",
			 err == -EINTR ? "interrupted" : strerror(-err));
		return err;
	}
	err = trans_start(m->ti);
	if (err < 0) {
		snprintf(why, why_len, "opening the first transaction failed: %s", strerror(-err));
		return err;
	}
	/*
	 * The first lock is granted only once the server has recovered every mount it knew:
	 * wait for it here, where a signal can interrupt the mount, before reading the root.
	 */
	log_info("waiting for the server to grant the first lock");
	err = lock_inode(m->li, SCOUTFS_ROOT_INO, SCOUTFS_LOCK_READ, 0, &waiter, &root_lock);
	if (err < 0) {
		snprintf(why, why_len, "%s while waiting for the first cluster lock",
			 err == -EINTR ? "interrupted" : strerror(-err));
		return err;
	}
	err = fs_getattr(m->fs, NULL, SCOUTFS_ROOT_INO, &attr);
	lock_unlock(m->li, root_lock, SCOUTFS_LOCK_READ);
	if (err == 0 && !S_ISDIR(attr.mode))
		err = -ENOTDIR;
	if (err < 0) {
		snprintf(why, why_len, "reading the root directory failed: %s", strerror(-err));
		return err;
	}
	err = fs_start(m->fs);
	if (err < 0)
		goto nomem;
	m->ready = true;
	log_info("mounted");
	return 0;
nomem:
	snprintf(why, why_len, "setting up the mount failed: %s", strerror(-err));
	return err;
}

int mount_attach(struct mount *m, char *why, size_t why_len)
{
	struct sfuse_config scfg = {
		.fs = m->fs,
		.mountpoint = m->mountpoint,
		.fsname = m->data_path,
		.allow_other = true,
		.max_threads = 32,
		.acl = m->mo.acl,
		.nosuid = m->mo.nosuid,
		.nodev = m->mo.nodev,
		.noexec = m->mo.noexec,
	};
	char sock[256];
	dev_t dev;
	int err;

	err = sfuse_create(&scfg, &m->sf);
	if (err < 0) {
		snprintf(why, why_len, "setting up FUSE failed: %s", strerror(-err));
		return err;
	}
	fs_set_upcalls(m->fs, &mount_fs_upcalls, m->sf);
	err = sfuse_mount(m->sf);
	if (err < 0) {
		snprintf(why, why_len, "the FUSE mount at %s failed (is /dev/fuse available?)",
			 m->mountpoint);
		return err;
	}
	m->mounted = true;

	/* the CLI finds the daemon of a path by the mount's device number */
	err = control_mount_sock_path(NULL, m->mountpoint, sock, sizeof(sock), &dev);
	if (err == 0) {
		unlink(sock);
		if (symlink(m->rid_sock, sock) < 0)
			err = -errno;
	}
	if (err < 0) {
		snprintf(why, why_len, "publishing the control socket failed: %s", strerror(-err));
		return err;
	}
	snprintf(m->mnt_sock, sizeof(m->mnt_sock), "%s", sock);
	control_server_set_mount_dev(m->ctl, dev);
	/* buffered reads as large requests: readahead as large as the largest request */
	sfuse_set_readahead(m->sf, dev, MOUNT_READ_AHEAD_KB);
	return 0;
}

static const char *run_dir(void)
{
	const char *dir = getenv(CONTROL_RUN_DIR_ENV);

	return dir && *dir ? dir : CONTROL_RUN_DIR_DEFAULT;
}

/* the process start time (clock ticks since boot) tells a pid's reuse apart; 0 if none */
static unsigned long long stat_start_time(const char *stat_path)
{
	char buf[1024];
	unsigned long long start = 0;
	char *p;
	FILE *f;
	int field;

	f = fopen(stat_path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		p = strrchr(buf, ')');
		for (field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			start = strtoull(p + 1, NULL, 10);
	}
	fclose(f);
	return start;
}

/* the start time of process pid, 0 if there is no such process */
static unsigned long long pid_start_time(int pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	return stat_start_time(path);
}

/* is the daemon that wrote this pid file gone (the pid is free or reused)? */
static bool pid_file_stale(const char *path)
{
	unsigned long long start;
	bool stale = false;
	int pid;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return false;
	if (fscanf(f, "%d %llu", &pid, &start) == 2 && pid > 0)
		stale = pid_start_time(pid) != start;
	fclose(f);
	return stale;
}

/*
 * A daemon that was killed leaves its pid file and control socket behind: the fence agent
 * would keep trying that socket and the directory would only grow.  Each mount clears what
 * daemons that no longer run left (their pid files say who they were); a failed unmount's
 * reason (rid-RID.exit) is kept for a day for the umount helper that reports it.
 */
static void sweep_stale_run_files(void)
{
	char pattern[PATH_MAX];
	char sock[PATH_MAX];
	struct stat st;
	size_t len;
	glob_t g;

	snprintf(pattern, sizeof(pattern), "%s/rid-*.pid", run_dir());
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			if (!pid_file_stale(g.gl_pathv[i]))
				continue;
			log_info("removing %s and its control socket: that daemon no longer runs",
				 g.gl_pathv[i]);
			len = strlen(g.gl_pathv[i]) - strlen(".pid");
			snprintf(sock, sizeof(sock), "%.*s.sock", (int)len, g.gl_pathv[i]);
			unlink(sock);
			unlink(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	snprintf(pattern, sizeof(pattern), "%s/rid-*.exit", run_dir());
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			if (stat(g.gl_pathv[i], &st) == 0 && st.st_mtime + 86400 < time(NULL))
				unlink(g.gl_pathv[i]);
		}
		globfree(&g);
	}
}

int mount_control_start(struct mount *m, char *why, size_t why_len)
{
	char tmp[300];
	FILE *f;
	int err;

	sweep_stale_run_files();

	snprintf(m->rid_sock, sizeof(m->rid_sock), "%s/rid-%016llx.sock", run_dir(),
		 (unsigned long long)m->rid);
	snprintf(m->pid_file, sizeof(m->pid_file), "%s/rid-%016llx.pid", run_dir(),
		 (unsigned long long)m->rid);
	err = control_server_start(m->rid_sock, mount_control_handlers, m, &m->ctl);
	if (err < 0) {
		snprintf(why, why_len, "starting the control socket %s failed: %s", m->rid_sock,
			 strerror(-err));
		m->rid_sock[0] = '\0';
		return err;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", m->pid_file);
	f = fopen(tmp, "w");
	if (f) {
		fprintf(f, "%d %llu %s\n", (int)getpid(), stat_start_time("/proc/self/stat"),
			m->mountpoint);
		if (fclose(f) == 0 && rename(tmp, m->pid_file) == 0)
			return 0;
	}
	snprintf(why, why_len, "writing %s failed: %s", m->pid_file, strerror(errno));
	m->pid_file[0] = '\0';
	return -EIO;
}

int mount_change_options(struct mount *m, const char *str, char *why, size_t why_len)
{
	struct mount_options mo;
	struct fs_options fo;
	int err;

	pthread_mutex_lock(&m->opts_mutex);
	mo = m->mo;
	err = mount_options_change(&mo, str, why, why_len);
	if (err == 0 && m->ready) {
		if (m->q)
			quorum_set_hb_timeout(m->q, mo.quorum_heartbeat_timeout_ms);
		if (m->srv)
			server_set_log_merge_wait_timeout(m->srv, mo.log_merge_wait_timeout_ms);
		lock_set_idle_count(m->li, mo.lock_idle_count);
		fs_set_orphan_scan_delay(m->fs, mo.orphan_scan_delay_ms);
		fs_options_of(&mo, &fo);
		fs_set_options(m->fs, &fo);
		m->mo = mo;
		log_info("mount options changed: %s", str);
	} else if (err == 0) {
		snprintf(why, why_len, "the mount is not ready");
		err = -EAGAIN;
	}
	pthread_mutex_unlock(&m->opts_mutex);
	return err;
}

int mount_format_options(struct mount *m, char *buf, size_t len)
{
	int n;

	pthread_mutex_lock(&m->opts_mutex);
	n = mount_options_format(&m->mo, '\n', buf, len);
	pthread_mutex_unlock(&m->opts_mutex);
	return n;
}

int mount_run(struct mount *m)
{
	return sfuse_loop(m->sf);
}

/*
 * A forced unmount: from now on nothing is written and nothing is said.  The server (here or
 * elsewhere) will time this mount out and fence it, which finds nothing left to stop.
 */
static void shut_down_forced(struct mount *m)
{
	log_warn("forced unmount: stopping all I/O and messages without a final commit");
	if (m->sp.meta)
		dev_shutdown(m->sp.meta);
	if (m->sp.data)
		dev_shutdown(m->sp.data);
	if (m->q)
		quorum_shutdown_forced(m->q);
	if (m->ti)
		trans_shutdown_forced(m->ti);
	if (m->cl)
		client_shutdown(m->cl);
	if (m->srv)
		server_stop_wait(m->srv);
	if (m->li)
		lock_shutdown(m->li);
}

/*
 * A clean unmount that failed leaves $RUN_DIR/rid-RID.exit saying why, for the umount
 * helper that waits for this daemon to exit: umount must not report success when the last
 * changes were not committed.
 */
static void record_unmount_failure(struct mount *m, const char *why)
{
	char path[300], tmp[310];
	FILE *f;

	snprintf(path, sizeof(path), "%s/rid-%016llx.exit", run_dir(), (unsigned long long)m->rid);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%s\n", why);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

int mount_teardown(struct mount *m)
{
	struct lock_waiter forced = { .interrupted = mount_was_forced };
	bool was_mounted = m->mounted;
	char why[256] = "";
	int err = 0;
	int ret;

	log_info("unmounting");
	m->ready = false;
	if (mount_forced)
		shut_down_forced(m);
	if (m->mnt_sock[0]) {
		unlink(m->mnt_sock);
		m->mnt_sock[0] = '\0';
	}
	if (m->ctl) {
		control_server_stop(m->ctl);
		m->ctl = NULL;
	}
	if (m->sf) {
		/* lock invalidations may be calling into it: wait for them before freeing it */
		if (m->fs)
			fs_set_upcalls(m->fs, NULL, NULL);
		sfuse_destroy(m->sf);
		m->sf = NULL;
	}
	if (m->fs)
		fs_stop(m->fs);
	/* the last commit: after it nothing of this mount is dirty */
	if (m->ti && !mount_forced) {
		ret = trans_shutdown(m->ti);
		if (ret < 0 && !err) {
			err = ret;
			snprintf(why, sizeof(why), "the last commit failed (%s): changes since the "
				 "previous commit are lost", strerror(-ret));
		}
	}
	if (m->li)
		lock_shutdown(m->li);
	if (m->cl && !mount_forced) {
		ret = client_farewell(m->cl, &forced);
		if (ret == -EINTR) {
			log_warn("forced unmount: no longer waiting for the server to answer the "
				 "farewell");
		} else if (ret < 0) {
			log_err("farewell to the server failed: %s", strerror(-ret));
			if (!err) {
				err = ret;
				snprintf(why, sizeof(why), "the farewell to the server failed (%s): "
					 "the next server will recover this mount", strerror(-ret));
			}
		}
		client_shutdown(m->cl);
	}
	if (m->q) {
		if (!mount_forced)
			quorum_stop(m->q);
		quorum_destroy(m->q);
		m->q = NULL;
	}
	fs_destroy(m->fs);
	trans_destroy(m->ti);
	item_cache_destroy(m->ic);
	client_destroy(m->cl);
	lock_info_destroy(m->li);
	server_destroy(m->srv);
	block_cache_destroy(m->bc);
	super_close_pair(&m->sp);
	m->fs = NULL;
	m->ti = NULL;
	m->ic = NULL;
	m->cl = NULL;
	m->li = NULL;
	m->srv = NULL;
	m->bc = NULL;
	if (m->pid_file[0]) {
		unlink(m->pid_file);
		m->pid_file[0] = '\0';
	}
	if (err == 0 && !mount_forced)
		log_info("unmounted cleanly");
	if (err < 0 && was_mounted)
		record_unmount_failure(m, why);
	return err;
}
