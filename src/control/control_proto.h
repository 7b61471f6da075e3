/*
 * control_proto.h: the messages between the `scoutfs` command and a mount's daemon.
 *
 * The original scoutfs reached a mount through ioctls on its files.  FUSE cannot carry
 * ioctls whose arguments point at more user memory, so each daemon instead listens on a Unix
 * stream socket of its own (DESIGN.md section 6), and the online CLI commands speak this
 * protocol over it.  Both ends always run on the same host, so fields are host-endian; they
 * still have fixed sizes, natural alignment and explicit zeroed padding, with size
 * assertions at the bottom, so the layout can be reviewed here in one place.
 *
 * Finding the socket.  Every path inside a mount has the mount's device number as st_dev (an
 * anonymous device, major 0, for FUSE).  /proc/self/mountinfo lists the same number as
 * "MAJ:MIN" in field 3, with the filesystem type "fuse.scoutfs" after the " - " separator
 * (the daemon mounts with subtype "scoutfs").  The daemon of that mount listens on
 *
 *	$SCOUTFS_RUN_DIR/mnt-MAJ:MIN.sock	(SCOUTFS_RUN_DIR defaults to /run/scoutfs)
 *
 * with MAJ and MIN in decimal.  Device numbers are unique among live mounts, so the name can
 * never belong to two running daemons; a daemon replaces a stale file left by a crashed one.
 *
 * Conversation.  A connection carries any number of calls, one at a time.  A call is one
 * request message from the CLI followed by zero or more reply messages with CONTROL_F_MORE
 * set and exactly one final reply without it.  Every message is a struct control_hdr
 * followed by hdr.len payload bytes (at most CONTROL_MAX_PAYLOAD).  A request may carry one
 * open file descriptor as SCM_RIGHTS ancillary data: the file the command acts on, opened by
 * the CLI, so its open mode proves the caller's access (a writable descriptor for commands
 * that change a file).  The final reply's status is 0 or a negative errno; the daemon
 * answers unknown commands with -EOPNOTSUPP and privileged commands from unprivileged callers
 * with -EPERM.  A message the daemon cannot parse (bad magic, oversized, truncated) ends that
 * connection without a reply.  magic and version keep their offsets in every version of
 * the protocol: a daemon answers a request of another version with -EPROTONOSUPPORT and
 * hangs up, so an old CLI against a new daemon says so instead of misreading replies.
 */
#ifndef SCOUTFS_CONTROL_PROTO_H
#define SCOUTFS_CONTROL_PROTO_H

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CONTROL_MAGIC   0x5c0c7a1bU
#define CONTROL_VERSION 1

/* the largest payload of one message; longer replies are streamed in MORE chunks */
#define CONTROL_MAX_PAYLOAD (1U << 20)

#define CONTROL_RUN_DIR_ENV     "SCOUTFS_RUN_DIR"
#define CONTROL_RUN_DIR_DEFAULT "/run/scoutfs"
#define CONTROL_FSTYPE          "fuse.scoutfs"

/* hdr.flags: more replies of this call follow this one */
#define CONTROL_F_MORE (1U << 0)
#define CONTROL_F_ALL  (CONTROL_F_MORE)

struct control_hdr {
	uint32_t magic;   /* CONTROL_MAGIC */
	uint16_t version; /* CONTROL_VERSION */
	uint16_t cmd;     /* enum control_cmd; replies echo the request's */
	uint32_t flags;   /* CONTROL_F_*; requests send 0 */
	uint32_t len;     /* payload bytes that follow */
	int32_t status;   /* replies: 0 or -errno; requests send 0 */
	uint32_t _pad;
};

/*
 * Command numbers.  Numbers are never reused or renumbered: add new commands at the end of
 * their range.  The ranges only keep related commands together:
 *
 *	  1 -  31  the mount as a whole: identity, statistics, options, debugging
 *	 32 -  63  reading inodes and indexes
 *	 64 -  95  archive operations on file data (release, stage, data waiters, ...)
 *	 96 - 127  administration (quotas, resize, fencing, ...)
 */
enum control_cmd {
	CONTROL_CMD_NONE = 0,

	CONTROL_CMD_PING = 1,
	CONTROL_CMD_STATFS = 2,
	CONTROL_CMD_COUNTERS = 3,
	CONTROL_CMD_SYNC = 4,
	CONTROL_CMD_CLIENT_LOCKS = 5,
	CONTROL_CMD_SERVER_LOCKS = 6,
	CONTROL_CMD_QUORUM_STATUS = 7,
	CONTROL_CMD_FORCE_MERGE = 8,
	CONTROL_CMD_FAULT = 9,
	CONTROL_CMD_MOUNT_OPTIONS = 10,
	CONTROL_CMD_SET_MOUNT_OPTIONS = 11,

	CONTROL_CMD_STAT = 32,
	CONTROL_CMD_WALK_INODES = 33,
	CONTROL_CMD_GET_FIEMAP = 34,

	CONTROL_CMD_FENCE_LIST = 96,
	CONTROL_CMD_FENCE_ACK = 97,

	CONTROL_CMD_NR = 128, /* one past the largest command number */
};

/*
 * PING: who are you?  No request payload, no fd.  The reply identifies the mount;
 * mountpoint_len bytes of the mount point (no NUL) follow the struct.
 */
struct control_ping_resp {
	uint64_t fsid;
	uint64_t rid;
	uint32_t pid;            /* the daemon's pid */
	uint32_t format_version; /* of the mounted volume */
	uint32_t mountpoint_len;
	uint32_t _pad;
	char mountpoint[];
};

/*
 * STATFS: the volume's identity and sizes.  No request payload.  committed_seq is the
 * server's last stable seq: every inode meta_seq and data_seq at or below it is durable and
 * visible to walk-inodes.
 */
struct control_statfs_resp {
	uint64_t fsid;
	uint64_t rid;
	uint64_t committed_seq;
	uint64_t total_meta_blocks; /* 64 KiB blocks */
	uint64_t total_data_blocks; /* 4 KiB blocks */
	uint64_t reserved_meta_blocks;
};

/*
 * COUNTERS: no request payload.  The reply payload is text, "name value\n" per counter of
 * the daemon sorted by name, possibly split over MORE chunks at line boundaries.
 */

/*
 * STAT: scoutfs fields of the file passed as the request's fd (required: -EBADF without one).
 * No request payload.
 */
struct control_stat_resp {
	uint64_t meta_seq;
	uint64_t data_seq;
	uint64_t data_version;
	uint64_t online_blocks;
	uint64_t offline_blocks;
	uint64_t crtime_sec;
	uint32_t crtime_nsec;
	uint32_t _pad;
};

/*
 * WALK_INODES: entries of an inode index in [first, last], ascending.  The daemon returns at
 * most nr_entries (after clamping it to CONTROL_WALK_INODES_MAX_ENTRIES) and may return fewer,
 * because it only reveals seqs up to the last stable seq and because it may stop early; the
 * reply payload is an array of struct control_walk_inodes_entry, possibly over MORE chunks
 * of whole entries.  Zero entries means the walk is done.  To continue, the caller sets first
 * to the last entry returned plus one (ino + 1, carrying into minor, then major).  An index
 * other than META_SEQ or DATA_SEQ gets -EINVAL; first > last gets zero entries.
 */
enum control_walk_index {
	CONTROL_WALK_META_SEQ = 0,
	CONTROL_WALK_DATA_SEQ = 1,
};

struct control_walk_inodes_entry {
	uint64_t major; /* the seq */
	uint32_t minor; /* 0 for the seq indexes */
	uint32_t _pad;
	uint64_t ino;
};

struct control_walk_inodes_req {
	struct control_walk_inodes_entry first;
	struct control_walk_inodes_entry last;
	uint32_t index; /* enum control_walk_index */
	uint32_t nr_entries;
};

/*
 * GET_FIEMAP: the data extents of the file passed as the request's fd (required), in file
 * order, starting with the extent that contains or follows start_block.  FIEMAP ioctls never
 * reach a FUSE daemon, so this is how `scoutfs get-fiemap' sees a file's layout.  The reply
 * is an array of at most nr_entries (clamped to CONTROL_FIEMAP_MAX_ENTRIES) entries, in 4 KiB
 * blocks; fewer than asked, or one with CONTROL_FIEMAP_LAST, means the list is complete.
 * Extents are the file's extent items, merged wherever they could be (so a file written in
 * order is one extent), including preallocated ones past its end.  -EISDIR for directories,
 * -EINVAL for other non-regular files.
 */
#define CONTROL_FIEMAP_OFFLINE   (1U << 0) /* in an archive: no physical blocks */
#define CONTROL_FIEMAP_UNWRITTEN (1U << 1) /* allocated, reads as zeros */
#define CONTROL_FIEMAP_LAST      (1U << 2) /* the file's last extent */

struct control_fiemap_req {
	uint64_t start_block;
	uint32_t nr_entries;
	uint32_t _pad;
};

struct control_fiemap_entry {
	uint64_t logical;  /* first file block */
	uint64_t physical; /* first data device block, 0 if unmapped */
	uint64_t length;   /* blocks */
	uint32_t flags;    /* CONTROL_FIEMAP_* */
	uint32_t _pad;
};

#define CONTROL_FIEMAP_MAX_ENTRIES 4096

/*
 * SYNC: commit everything this mount changed and wait until it is durable.  No payload.
 *
 * CLIENT_LOCKS, SERVER_LOCKS, QUORUM_STATUS: text describing this mount's cluster locks, the
 * server's lock table (if this mount runs the server; -ENOTCONN otherwise), and the quorum
 * agent's state (-ENOENT if this mount has no quorum slot).  Privileged.
 *
 * FORCE_MERGE: ask this mount's server to merge every log tree now.  Privileged.
 */

/*
 * MOUNT_OPTIONS: the mount's options, as text: "name=value\n" per option, in the order the
 * original showed them in /proc/mounts.  No request payload.
 *
 * SET_MOUNT_OPTIONS: change the options that may change while mounted.  The request payload
 * is "name=value[,name=value...]" (no NUL).  Either every change is made and the reply is
 * the new options as for MOUNT_OPTIONS, or none is and the final reply has status -EINVAL
 * and a one-line explanation as its payload.  Privileged.
 */

/* FAULT: fail or tear writes or flushes of a device (tests).  Privileged. */
enum control_fault_dev {
	CONTROL_FAULT_META = 0,
	CONTROL_FAULT_DATA = 1,
};

enum control_fault_op {
	CONTROL_FAULT_WRITE = 0,
	CONTROL_FAULT_FLUSH = 1,
};

enum control_fault_action {
	CONTROL_FAULT_CLEAR = 0, /* remove the rule */
	CONTROL_FAULT_FAIL = 1,	 /* the I/O fails with EIO and writes nothing */
	CONTROL_FAULT_TEAR = 2,	 /* a write stores only part of its data, then fails */
};

struct control_fault_req {
	uint32_t dev;	 /* enum control_fault_dev */
	uint32_t op;	 /* enum control_fault_op */
	uint32_t action; /* enum control_fault_action */
	uint32_t _pad;
	uint64_t skip;	/* let this many matching operations through first */
	uint64_t count; /* then fault this many (0: every one) */
	uint64_t min_len; /* only writes of at least this many bytes match */
};

/*
 * FENCE_LIST: the fence requests of this mount's server (-ENOTCONN if it is not running the
 * server).  No payload; the reply is an array of entries.  Privileged.
 * FENCE_ACK: the fence agent's verdict on one request.  Privileged.
 */
struct control_fence_entry {
	uint64_t rid;
	uint32_t ipv4_addr; /* host order */
	uint16_t port;
	uint8_t fenced;
	uint8_t error;
	uint64_t elapsed_secs;
	char reason[32];
};

struct control_fence_ack_req {
	uint64_t rid;
	uint32_t fenced; /* 1: fenced, 0: the fence failed */
	uint32_t _pad;
};

#define CONTROL_WALK_INODES_MAX_ENTRIES                                                            \
	(CONTROL_MAX_PAYLOAD / sizeof(struct control_walk_inodes_entry))

static_assert(sizeof(struct control_hdr) == 24, "control_hdr size");
static_assert(sizeof(struct control_ping_resp) == 32, "control_ping_resp size");
static_assert(sizeof(struct control_statfs_resp) == 48, "control_statfs_resp size");
static_assert(sizeof(struct control_stat_resp) == 56, "control_stat_resp size");
static_assert(sizeof(struct control_walk_inodes_entry) == 24, "walk_inodes_entry size");
static_assert(sizeof(struct control_walk_inodes_req) == 56, "walk_inodes_req size");
static_assert(sizeof(struct control_fault_req) == 40, "control_fault_req size");
static_assert(sizeof(struct control_fiemap_req) == 16, "control_fiemap_req size");
static_assert(sizeof(struct control_fiemap_entry) == 32, "control_fiemap_entry size");
static_assert(sizeof(struct control_fence_entry) == 56, "control_fence_entry size");
static_assert(sizeof(struct control_fence_ack_req) == 16, "control_fence_ack_req size");

/*
 * The socket path of the daemon of the mount with device number maj:min.  Returns the length
 * snprintf wanted; the caller checks it against len (and against sun_path's size).
 */
static inline int control_sock_path(char *buf, size_t len, unsigned int maj, unsigned int min)
{
	const char *dir = getenv(CONTROL_RUN_DIR_ENV);

	if (!dir || !*dir)
		dir = CONTROL_RUN_DIR_DEFAULT;
	return snprintf(buf, len, "%s/mnt-%u:%u.sock", dir, maj, min);
}

#endif
