/*
 * format.h: every structure scoutfs stores on its devices or sends over the network.
 *
 * This is the one header that defines bytes.  Everything here is little-endian, naturally
 * aligned with explicit padding (pad bytes are always written as zero), and checked with
 * static size assertions at the bottom of the file, so the whole format can be reviewed in
 * one place.  Host code reads fields through the le*_to_cpu helpers.
 *
 * The concepts and sizes follow the original kernel implementation (64 KiB copy-on-write
 * metadata blocks, 4 KiB data blocks, one generic key, per-mount log btrees merged into
 * fs_root); the byte layout is our own and is not compatible with volumes made by the kernel
 * module.
 */
#ifndef SCOUTFS_FORMAT_H
#define SCOUTFS_FORMAT_H

#include <assert.h>
#include <endian.h>
#include <stdint.h>
#include <sys/stat.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;

/* little-endian storage types: plain integers by a name that says they are stored LE */
typedef uint16_t le16;
typedef uint32_t le32;
typedef uint64_t le64;

#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)
#define cpu_to_le16(x) htole16(x)
#define cpu_to_le32(x) htole32(x)
#define cpu_to_le64(x) htole64(x)

static inline void le64_add_cpu(le64 *v, s64 d)
{
	*v = cpu_to_le64(le64_to_cpu(*v) + (u64)d);
}

/* ---------------------------------------------------------------------------------------- */
/* versions, block sizes and fixed locations */

#define SCOUTFS_FORMAT_VERSION_MIN 1
#define SCOUTFS_FORMAT_VERSION_MAX 2
#define SCOUTFS_FORMAT_VERSION_DEFAULT 2

#define SCOUTFS_BLOCK_LG_SHIFT 16
#define SCOUTFS_BLOCK_LG_SIZE (1U << SCOUTFS_BLOCK_LG_SHIFT)
#define SCOUTFS_BLOCK_SM_SHIFT 12
#define SCOUTFS_BLOCK_SM_SIZE (1U << SCOUTFS_BLOCK_SM_SHIFT)
#define SCOUTFS_BLOCK_SM_PER_LG (SCOUTFS_BLOCK_LG_SIZE / SCOUTFS_BLOCK_SM_SIZE)

/* the super block sits at byte 64 KiB of both devices, addressed in small blocks */
#define SCOUTFS_SUPER_BLKNO 16
/* one small quorum block per slot follows the super on the metadata device */
#define SCOUTFS_QUORUM_BLKNO 17
#define SCOUTFS_QUORUM_MAX_SLOTS 15
/* the first allocatable large metadata block (byte 128 KiB) */
#define SCOUTFS_META_DEV_START_BLKNO 2
/* the first allocatable small data block (byte 256 KiB) */
#define SCOUTFS_DATA_DEV_START_BLKNO 64

/* mkfs refuses devices smaller than these unless forced with -A */
#define SCOUTFS_META_DEV_MIN_BYTES (64ULL << 30)
#define SCOUTFS_DATA_DEV_MIN_BYTES (64ULL << 30)
/* ... and nothing can work below these even when forced */
#define SCOUTFS_META_DEV_ABS_MIN_BYTES (64ULL << 20)
#define SCOUTFS_DATA_DEV_ABS_MIN_BYTES (16ULL << 20)

#define SCOUTFS_ROOT_INO 1ULL
#define SCOUTFS_FIRST_INO 1024ULL

/* ---------------------------------------------------------------------------------------- */
/* block headers and references */

/*
 * Magic numbers of each block type: random values, so a block of one type can never be
 * mistaken for another.
 */
#define SCOUTFS_BLOCK_MAGIC_SUPER 0x5c0f5e71
#define SCOUTFS_BLOCK_MAGIC_BTREE 0x6b7a19d3
#define SCOUTFS_BLOCK_MAGIC_BLOOM 0x2e48c0a5
#define SCOUTFS_BLOCK_MAGIC_SRCH_BLOCK 0x91d3f6e2
#define SCOUTFS_BLOCK_MAGIC_SRCH_PARENT 0x47b0ac19
#define SCOUTFS_BLOCK_MAGIC_ALLOC_LIST 0xd06e2b84
#define SCOUTFS_BLOCK_MAGIC_QUORUM 0x3a95e17c

/*
 * Every block starts with this header.  The crc32c covers the rest of the whole block
 * (from the magic to the last byte of the 4 KiB or 64 KiB block).  seq is a random value
 * chosen each time a metadata block is written to a new location, so a reused block number
 * looks different from its previous life; the super uses it as a write counter.
 */
struct scoutfs_block_header {
	le32 crc;
	le32 magic;
	le64 fsid;
	le64 seq;
	le64 blkno;
};

/* a reference to a large metadata block: both must match the referenced block's header */
struct scoutfs_block_ref {
	le64 blkno;
	le64 seq;
};

/* ---------------------------------------------------------------------------------------- */
/* keys */

/*
 * The one key used by every btree.  Keys compare by zone, first, type, second, third,
 * fourth -- type sits between first and second so all the items of an inode (first = ino)
 * sort together, grouped by type.  The pad must be zero: keys are hashed as raw bytes.
 */
struct scoutfs_key {
	le64 _sk_first;
	le64 _sk_second;
	le64 _sk_third;
	u8 _sk_fourth;
	u8 sk_zone;
	u8 sk_type;
	u8 __pad[5];
};

/* zones, spaced so later additions fit between */
#define SCOUTFS_INODE_INDEX_ZONE 4
#define SCOUTFS_ORPHAN_ZONE 8
#define SCOUTFS_QUOTA_ZONE 10
#define SCOUTFS_XATTR_TOTL_ZONE 12
#define SCOUTFS_XATTR_INDX_ZONE 14
#define SCOUTFS_FS_ZONE 16
#define SCOUTFS_LOCK_ZONE 20
/* zones below only appear in server btrees */
#define SCOUTFS_LOG_TREES_ZONE 24
#define SCOUTFS_MOUNTED_CLIENT_ZONE 28
#define SCOUTFS_SRCH_ZONE 32
#define SCOUTFS_FREE_EXTENT_BLKNO_ZONE 36
#define SCOUTFS_FREE_EXTENT_ORDER_ZONE 40
#define SCOUTFS_LOG_MERGE_STATUS_ZONE 44
#define SCOUTFS_LOG_MERGE_FREEING_ZONE 60

/* inode index zone: first = 0, second = seq, third = ino */
#define SCOUTFS_INODE_INDEX_META_SEQ_TYPE 4
#define SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE 8
#define SCOUTFS_INODE_INDEX_NR 2

/* orphan zone: first = 0, second = ino */
#define SCOUTFS_ORPHAN_TYPE 4

/* quota zone: second = rule hash, third = collision nr */
#define SCOUTFS_QUOTA_RULE_TYPE 4

/* fs zone: first = ino */
#define SCOUTFS_INODE_TYPE 4	   /* (ino) */
#define SCOUTFS_XATTR_TYPE 8	   /* (ino, name hash, xattr id, part) */
#define SCOUTFS_DIRENT_TYPE 12	   /* (dir ino, name hash, readdir pos) */
#define SCOUTFS_READDIR_TYPE 16	   /* (dir ino, readdir pos) */
#define SCOUTFS_LINK_BACKREF_TYPE 20 /* (target ino, dir ino, readdir pos) */
#define SCOUTFS_SYMLINK_TYPE 24	   /* (ino, chunk nr) */
#define SCOUTFS_DATA_EXTENT_TYPE 28  /* (ino, last logical block, length) */

/* lock zone: names of locks that protect no items */
#define SCOUTFS_RENAME_TYPE 4

/* srch zone types (srch_root) */
#define SCOUTFS_SRCH_LOG_TYPE 4
#define SCOUTFS_SRCH_BLOCKS_TYPE 8
#define SCOUTFS_SRCH_PENDING_TYPE 12
#define SCOUTFS_SRCH_BUSY_TYPE 16

/* ---------------------------------------------------------------------------------------- */
/* btrees */

#define SCOUTFS_BTREE_MAX_HEIGHT 20
#define SCOUTFS_BTREE_MAX_VAL_LEN 896

/* height 0 is an empty tree; height 1 is a single leaf */
struct scoutfs_btree_root {
	struct scoutfs_block_ref ref;
	u8 height;
	u8 __pad[7];
};

#define SCOUTFS_ITEM_FLAG_DELETION (1 << 0)
#define SCOUTFS_ITEM_FLAG_DELTA (1 << 1)

/*
 * An item header in a btree block.  Headers form a dense array sorted by key right after
 * the block header; values are packed down from the end of the block, 8-byte aligned.
 * seq and flags are only meaningful in log btrees and fs_root; server btrees store zero.
 */
struct scoutfs_btree_item {
	struct scoutfs_key key;
	le64 seq;
	le16 val_off;
	le16 val_len;
	u8 flags;
	u8 __pad[3];
};

/*
 * A btree block.  Leaves are level 0.  A parent holds one item per child whose key is the
 * greatest key that can live in that child and whose value is a block ref; the rightmost
 * parent key of every level is the all-ones key.  val_start is the lowest offset used by
 * values; val_bytes counts the live (aligned) value bytes, so the space lost to holes left
 * by deleted values is (block size - val_start - val_bytes).
 */
struct scoutfs_btree_block {
	struct scoutfs_block_header hdr;
	le16 nr_items;
	le16 val_start;
	le32 val_bytes;
	u8 level;
	u8 __pad[7];
	struct scoutfs_btree_item items[];
};

#define SCOUTFS_BTREE_BLOCK_HDR_SIZE ((u32)sizeof(struct scoutfs_btree_block))
#define SCOUTFS_BTREE_ITEM_SIZE ((u32)sizeof(struct scoutfs_btree_item))

/* ---------------------------------------------------------------------------------------- */
/* allocators */

#define SCOUTFS_ALLOC_FLAG_LOW (1 << 0)

/*
 * A free-extent btree.  Every free extent is stored as two value-less items: one in the
 * BLKNO zone (first = last block, second = len) to find neighbours, one in the ORDER zone
 * (first = ~order(len), second = last block, third = len) to find the largest extents first.
 */
struct scoutfs_alloc_root {
	le64 total_len;
	le32 flags;
	le32 __pad;
	struct scoutfs_btree_root root;
};

/*
 * A singly linked list of blocks of block numbers.  Transactions allocate metadata blocks
 * from avail lists and record frees in freed lists, so copy-on-write never has to modify an
 * extent btree (which would recurse).  first_nr is the number of entries in the first block,
 * total_nr the number in the whole list.
 */
struct scoutfs_alloc_list_head {
	struct scoutfs_block_ref ref;
	le64 total_nr;
	le32 first_nr;
	le32 flags;
};

struct scoutfs_alloc_list_block {
	struct scoutfs_block_header hdr;
	struct scoutfs_block_ref next;
	le32 start;
	le32 nr;
	le64 blknos[];
};

#define SCOUTFS_ALLOC_LIST_MAX_BLOCKS                                                         \
	((SCOUTFS_BLOCK_LG_SIZE - sizeof(struct scoutfs_alloc_list_block)) / sizeof(le64))

/* ---------------------------------------------------------------------------------------- */
/* quorum */

#define SCOUTFS_INET_FAMILY_NONE 0
#define SCOUTFS_INET_FAMILY_V4 1

/* an IPv4 address and port, both stored in host order as little-endian integers */
struct scoutfs_inet_addr {
	le16 family;
	le16 port;
	le32 addr;
	u8 __pad[24];
};

struct scoutfs_quorum_slot {
	struct scoutfs_inet_addr addr;
};

struct scoutfs_quorum_config {
	le64 version;
	struct scoutfs_quorum_slot slots[SCOUTFS_QUORUM_MAX_SLOTS];
};

enum scoutfs_quorum_event {
	SCOUTFS_QUORUM_EVENT_BEGIN = 0, /* the agent started on this mount */
	SCOUTFS_QUORUM_EVENT_TERM,	/* the term increased */
	SCOUTFS_QUORUM_EVENT_ELECT,	/* won an election, before starting the server */
	SCOUTFS_QUORUM_EVENT_FENCE,	/* the server is up: every earlier leader is fenced */
	SCOUTFS_QUORUM_EVENT_STOP,	/* the server started in a term has stopped */
	SCOUTFS_QUORUM_EVENT_END,	/* the agent shut down cleanly */
	SCOUTFS_QUORUM_EVENT_NR,
};

struct scoutfs_quorum_block_event {
	le64 write_nr;
	le64 rid;
	le64 term;
	le64 ts_sec;
	le32 ts_nsec;
	le32 __pad;
};

/* one small block per slot, only ever written by the mount that holds the slot */
struct scoutfs_quorum_block {
	struct scoutfs_block_header hdr;
	le64 write_nr;
	struct scoutfs_quorum_block_event events[SCOUTFS_QUORUM_EVENT_NR];
};

/* the fixed-size UDP datagram of the election protocol */
struct scoutfs_quorum_message {
	le64 fsid;
	le64 version;
	le64 term;
	u8 type;
	u8 from;
	u8 __pad[2];
	le32 crc; /* crc32c of the preceding 28 bytes */
};

enum scoutfs_quorum_msg_type {
	SCOUTFS_QUORUM_MSG_REQUEST_VOTE = 0,
	SCOUTFS_QUORUM_MSG_VOTE,
	SCOUTFS_QUORUM_MSG_HEARTBEAT,
	SCOUTFS_QUORUM_MSG_RESIGNATION,
	SCOUTFS_QUORUM_MSG_INVALID,
};

/* ---------------------------------------------------------------------------------------- */
/* srch: the index of .srch. xattr names (files of entries; implemented by a later issue) */

struct scoutfs_srch_entry {
	le64 hash;
	le64 ino;
	le64 id;
};

struct scoutfs_srch_file {
	struct scoutfs_srch_entry first;
	struct scoutfs_srch_entry last;
	struct scoutfs_block_ref ref;
	le64 blocks;
	le64 entries;
	u8 height;
	u8 __pad[7];
};

/* ---------------------------------------------------------------------------------------- */
/* log trees: one item per (mount, nr) in logs_root */

#define SCOUTFS_LOG_TREES_FINALIZED (1ULL << 0)

#define SCOUTFS_DATA_ALLOC_MAX_ZONES 1024
#define SCOUTFS_DATA_ALLOC_ZONE_LE64S (SCOUTFS_DATA_ALLOC_MAX_ZONES / 64)

/*
 * Everything a mount's transaction wrote is reachable only from this struct: replacing the
 * one logs_root item and writing the super publishes the whole transaction atomically.
 * A transaction is open while get_trans_seq > commit_trans_seq.
 */
struct scoutfs_log_trees {
	struct scoutfs_alloc_list_head meta_avail;
	struct scoutfs_alloc_list_head meta_freed;
	struct scoutfs_btree_root item_root;
	struct scoutfs_block_ref bloom_ref;
	struct scoutfs_alloc_root data_avail;
	struct scoutfs_alloc_root data_freed;
	struct scoutfs_srch_file srch_file;
	le64 data_alloc_zone_blocks;
	le64 data_alloc_zones[SCOUTFS_DATA_ALLOC_ZONE_LE64S];
	le64 inode_count_delta;
	le64 get_trans_seq;
	le64 commit_trans_seq;
	le64 max_item_seq;
	le64 finalize_seq;
	le64 rid;
	le64 nr;
	le64 flags;
};

/* a bloom filter of the lock start keys that have items in a log btree */
#define SCOUTFS_BLOOM_NRS 3
#define SCOUTFS_BLOOM_BIT_WIDTH 19

struct scoutfs_bloom_block {
	struct scoutfs_block_header hdr;
	le64 total_set;
	le64 bits[];
};

#define SCOUTFS_BLOOM_BITS                                                                    \
	(((SCOUTFS_BLOCK_LG_SIZE - sizeof(struct scoutfs_bloom_block)) / sizeof(le64)) * 64)

/* ---------------------------------------------------------------------------------------- */
/* log merging, done by the server in the background */

/*
 * A merge is in progress while this item exists.  Every finalized log tree with a
 * finalize_seq below seq is an input.  next_key is how far the merge has progressed.
 */
struct scoutfs_log_merge_status {
	struct scoutfs_key next_key;
	le64 seq;
	le64 nr_inputs;
};

/* a merged input btree whose blocks are being freed: key first = seq */
struct scoutfs_log_merge_freeing {
	struct scoutfs_btree_root root;
	struct scoutfs_key key;
	le64 seq;
};

/* ---------------------------------------------------------------------------------------- */
/* mounted clients: one item per mounted rid in mounted_clients */

#define SCOUTFS_MOUNTED_CLIENT_QUORUM (1 << 0)

struct scoutfs_mounted_client_btree_val {
	struct scoutfs_inet_addr addr;
	u8 flags;
	u8 __pad[7];
};

/* ---------------------------------------------------------------------------------------- */
/* volume options */

#define SCOUTFS_VOLOPT_DATA_ALLOC_ZONE_BLOCKS_NR 0
#define SCOUTFS_VOLOPT_DATA_ALLOC_ZONE_BLOCKS_BIT (1ULL << 0)
#define SCOUTFS_VOLOPT_EXPANSION_BITS (~SCOUTFS_VOLOPT_DATA_ALLOC_ZONE_BLOCKS_BIT)

struct scoutfs_volume_options {
	le64 set_bits;
	le64 data_alloc_zone_blocks;
	le64 __future_expansion[63];
};

/* ---------------------------------------------------------------------------------------- */
/* the super block */

#define SCOUTFS_FLAG_IS_META_BDEV (1ULL << 0)

#define SCOUTFS_UUID_BYTES 16

/*
 * The one atomic commit point: only the elected server writes the super, and it does so
 * after every block the new super references is durable.  The data device holds a copy
 * (without IS_META_BDEV) that only identifies the device pair.
 */
struct scoutfs_super_block {
	struct scoutfs_block_header hdr;
	le64 fmt_vers;
	le64 flags;
	u8 uuid[SCOUTFS_UUID_BYTES];
	le64 seq;
	le64 next_ino;
	le64 inode_count;
	le64 total_meta_blocks;
	le64 total_data_blocks;
	struct scoutfs_quorum_config qconf;
	struct scoutfs_alloc_root meta_alloc[2];
	struct scoutfs_alloc_root data_alloc;
	struct scoutfs_alloc_list_head server_meta_avail[2];
	struct scoutfs_alloc_list_head server_meta_freed[2];
	struct scoutfs_btree_root fs_root;
	struct scoutfs_btree_root logs_root;
	struct scoutfs_btree_root log_merge;
	struct scoutfs_btree_root mounted_clients;
	struct scoutfs_btree_root srch_root;
	struct scoutfs_volume_options volopt;
};

/* ---------------------------------------------------------------------------------------- */
/* filesystem items */

struct scoutfs_timespec {
	le64 sec;
	le32 nsec;
	u8 __pad[4];
};

#define SCOUTFS_INO_FLAG_TRUNCATE (1 << 0)
#define SCOUTFS_INO_FLAG_RETENTION (1 << 1)

/* the value of an inode item; v1 volumes store it without proj */
struct scoutfs_inode {
	le64 size;
	le64 meta_seq;
	le64 data_seq;
	le64 data_version;
	le64 online_blocks;
	le64 offline_blocks;
	le64 next_readdir_pos;
	le64 next_xattr_id;
	le64 version;
	le32 nlink;
	le32 uid;
	le32 gid;
	le32 mode;
	le32 rdev;
	le32 flags;
	struct scoutfs_timespec atime;
	struct scoutfs_timespec ctime;
	struct scoutfs_timespec mtime;
	struct scoutfs_timespec crtime;
	le64 proj;
};

#define SCOUTFS_INODE_FMT_V1_BYTES 160
#define SCOUTFS_INODE_FMT_V2_BYTES 168

#define SCOUTFS_NAME_LEN 255
#define SCOUTFS_LINK_MAX 0x7fffffffU
#define SCOUTFS_DIRENT_FIRST_POS 2
#define SCOUTFS_DIRENT_LAST_POS (~0ULL - 1)

/* directory entry types */
enum scoutfs_dentry_type {
	SCOUTFS_DT_FIFO = 0,
	SCOUTFS_DT_CHR,
	SCOUTFS_DT_DIR,
	SCOUTFS_DT_BLK,
	SCOUTFS_DT_REG,
	SCOUTFS_DT_LNK,
	SCOUTFS_DT_SOCK,
	SCOUTFS_DT_WHT,
};

/* the dentry type stored for an inode of this mode (its S_IFMT bits) */
static inline u32 scoutfs_mode_dtype(u32 mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return SCOUTFS_DT_FIFO;
	case S_IFCHR:
		return SCOUTFS_DT_CHR;
	case S_IFDIR:
		return SCOUTFS_DT_DIR;
	case S_IFBLK:
		return SCOUTFS_DT_BLK;
	case S_IFLNK:
		return SCOUTFS_DT_LNK;
	case S_IFSOCK:
		return SCOUTFS_DT_SOCK;
	default:
		return SCOUTFS_DT_REG;
	}
}

/* the value of the dirent, readdir and link backref items of one entry */
struct scoutfs_dirent {
	le64 ino;
	le64 hash;
	le64 pos;
	u8 type;
	u8 __pad[7];
	u8 name[];
};

/* symlink targets are stored in chunks including the terminating NUL */
#define SCOUTFS_SYMLINK_MAX_SIZE 4096
#define SCOUTFS_SYMLINK_CHUNK_BYTES SCOUTFS_BTREE_MAX_VAL_LEN

#define SCOUTFS_EXTENT_FLAG_OFFLINE (1 << 0)
#define SCOUTFS_EXTENT_FLAG_UNWRITTEN (1 << 1)

/* the value of a data extent item; blkno 0 means unmapped */
struct scoutfs_data_extent_val {
	le64 blkno;
	u8 flags;
	u8 __pad[7];
};

/* xattrs: part 0 starts with this header, then the name, then the first value bytes */
#define SCOUTFS_XATTR_MAX_NAME_LEN 255
#define SCOUTFS_XATTR_MAX_VAL_LEN 65535
#define SCOUTFS_XATTR_PART_SIZE SCOUTFS_BTREE_MAX_VAL_LEN

struct scoutfs_xattr {
	le16 val_len;
	u8 name_len;
	u8 __pad[5];
	u8 name[];
};

#define SCOUTFS_XATTR_MAX_PARTS                                                               \
	((sizeof(struct scoutfs_xattr) + SCOUTFS_XATTR_MAX_NAME_LEN + SCOUTFS_XATTR_MAX_VAL_LEN + \
	  SCOUTFS_XATTR_PART_SIZE - 1) /                                                      \
	 SCOUTFS_XATTR_PART_SIZE)

/* .totl. delta values, added rather than replaced whenever two versions meet */
struct scoutfs_xattr_totl_val {
	le64 total;
	le64 count;
};

/* ---------------------------------------------------------------------------------------- */
/* the network protocol */

#define SCOUTFS_NET_MAX_DATA_LEN 1100

#define SCOUTFS_NET_FLAG_RESPONSE (1 << 0)
#define SCOUTFS_NET_FLAGS_UNKNOWN ((u8)~SCOUTFS_NET_FLAG_RESPONSE)

/*
 * Every message: this header and data_len payload bytes.  seq numbers every message a
 * connection queues; recv_seq is the sender's last received seq, stamped when the message is
 * written, and acknowledges every response up to it; id matches a response to its request.
 */
struct scoutfs_net_header {
	le64 seq;
	le64 recv_seq;
	le64 id;
	le16 data_len;
	u8 cmd;
	u8 flags;
	u8 error;
	u8 __pad[3];
};

enum scoutfs_net_cmd {
	SCOUTFS_NET_CMD_GREETING = 0,
	SCOUTFS_NET_CMD_ALLOC_INODES,
	SCOUTFS_NET_CMD_GET_LOG_TREES,
	SCOUTFS_NET_CMD_COMMIT_LOG_TREES,
	SCOUTFS_NET_CMD_SYNC_LOG_TREES,
	SCOUTFS_NET_CMD_GET_ROOTS,
	SCOUTFS_NET_CMD_GET_LAST_SEQ,
	SCOUTFS_NET_CMD_LOCK,
	SCOUTFS_NET_CMD_LOCK_RECOVER,
	SCOUTFS_NET_CMD_SRCH_GET_COMPACT,
	SCOUTFS_NET_CMD_SRCH_COMMIT_COMPACT,
	SCOUTFS_NET_CMD_GET_LOG_MERGE,
	SCOUTFS_NET_CMD_COMMIT_LOG_MERGE,
	SCOUTFS_NET_CMD_OPEN_INO_MAP,
	SCOUTFS_NET_CMD_GET_VOLOPT,
	SCOUTFS_NET_CMD_SET_VOLOPT,
	SCOUTFS_NET_CMD_CLEAR_VOLOPT,
	SCOUTFS_NET_CMD_RESIZE_DEVICES,
	SCOUTFS_NET_CMD_STATFS,
	SCOUTFS_NET_CMD_FAREWELL,
	SCOUTFS_NET_CMD_UNKNOWN,
};

/* errors travel as small wire codes; anything unlisted is sent as EINVAL */
enum scoutfs_net_errors {
	SCOUTFS_NET_ERR_NONE = 0,
	SCOUTFS_NET_ERR_ENOENT,
	SCOUTFS_NET_ERR_ENOMEM,
	SCOUTFS_NET_ERR_EIO,
	SCOUTFS_NET_ERR_ENOSPC,
	SCOUTFS_NET_ERR_EINVAL,
	SCOUTFS_NET_ERR_ENOLINK,
	SCOUTFS_NET_ERR_ESTALE,
	SCOUTFS_NET_ERR_EEXIST,
	SCOUTFS_NET_ERR_UNKNOWN,
};

#define SCOUTFS_NET_GREETING_FLAG_FAREWELL (1ULL << 0)
#define SCOUTFS_NET_GREETING_FLAG_QUORUM (1ULL << 1)
#define SCOUTFS_NET_GREETING_FLAG_INVALID (~3ULL)

struct scoutfs_net_greeting {
	le64 fsid;
	le64 fmt_vers;
	le64 server_term;
	le64 rid;
	le64 flags;
};

struct scoutfs_net_inode_alloc {
	le64 ino;
	le64 nr;
};

struct scoutfs_net_roots {
	struct scoutfs_btree_root fs_root;
	struct scoutfs_btree_root logs_root;
	struct scoutfs_btree_root srch_root;
};

enum scoutfs_lock_mode {
	SCOUTFS_LOCK_NULL = 0,
	SCOUTFS_LOCK_READ,
	SCOUTFS_LOCK_WRITE,
	SCOUTFS_LOCK_WRITE_ONLY,
	SCOUTFS_LOCK_INVALID,
};

struct scoutfs_net_lock {
	struct scoutfs_key key;
	le64 write_seq;
	u8 old_mode;
	u8 new_mode;
	u8 __pad[6];
};

#define SCOUTFS_NET_LOCK_MAX_RECOVER_NR                                                       \
	((SCOUTFS_NET_MAX_DATA_LEN - 8) / sizeof(struct scoutfs_net_lock))

struct scoutfs_net_lock_recover {
	le16 nr;
	u8 __pad[6];
	struct scoutfs_net_lock locks[];
};

struct scoutfs_net_statfs {
	u8 uuid[SCOUTFS_UUID_BYTES];
	le64 free_meta_blocks;
	le64 total_meta_blocks;
	le64 free_data_blocks;
	le64 total_data_blocks;
	le64 inode_count;
};

struct scoutfs_net_resize_devices {
	le64 new_total_meta_blocks;
	le64 new_total_data_blocks;
};

/* open inode map: which inodes of a 1024-inode group any mount still has in use */
#define SCOUTFS_OPEN_INO_MAP_SHIFT 10
#define SCOUTFS_OPEN_INO_MAP_BITS (1 << SCOUTFS_OPEN_INO_MAP_SHIFT)
#define SCOUTFS_OPEN_INO_MAP_MASK (SCOUTFS_OPEN_INO_MAP_BITS - 1)
#define SCOUTFS_OPEN_INO_MAP_LE64S (SCOUTFS_OPEN_INO_MAP_BITS / 64)

struct scoutfs_open_ino_map_args {
	le64 group_nr;
	le64 req_id;
};

struct scoutfs_open_ino_map {
	struct scoutfs_open_ino_map_args args;
	le64 bits[SCOUTFS_OPEN_INO_MAP_LE64S];
};

/* ---------------------------------------------------------------------------------------- */
/* lock ranges: fixed partitions every mount computes identically */

#define SCOUTFS_LOCK_INODE_GROUP_NR 1024
#define SCOUTFS_LOCK_INODE_GROUP_MASK (SCOUTFS_LOCK_INODE_GROUP_NR - 1)
#define SCOUTFS_LOCK_SEQ_GROUP_MASK ((1ULL << 10) - 1)

/* ---------------------------------------------------------------------------------------- */
/* size checks: a change to any of these is a format change */

static_assert(sizeof(struct scoutfs_block_header) == 32, "block header");
static_assert(sizeof(struct scoutfs_block_ref) == 16, "block ref");
static_assert(sizeof(struct scoutfs_key) == 32, "key");
static_assert(sizeof(struct scoutfs_btree_root) == 24, "btree root");
static_assert(sizeof(struct scoutfs_btree_item) == 48, "btree item");
static_assert(sizeof(struct scoutfs_btree_block) == 48, "btree block header");
static_assert(sizeof(struct scoutfs_alloc_root) == 40, "alloc root");
static_assert(sizeof(struct scoutfs_alloc_list_head) == 32, "alloc list head");
static_assert(sizeof(struct scoutfs_alloc_list_block) == 56, "alloc list block");
static_assert(SCOUTFS_ALLOC_LIST_MAX_BLOCKS == 8185, "alloc list capacity");
static_assert(sizeof(struct scoutfs_inet_addr) == 32, "inet addr");
static_assert(sizeof(struct scoutfs_quorum_config) == 488, "quorum config");
static_assert(sizeof(struct scoutfs_quorum_block_event) == 40, "quorum event");
static_assert(sizeof(struct scoutfs_quorum_block) == 280, "quorum block");
static_assert(sizeof(struct scoutfs_quorum_message) == 32, "quorum message");
static_assert(sizeof(struct scoutfs_srch_entry) == 24, "srch entry");
static_assert(sizeof(struct scoutfs_srch_file) == 88, "srch file");
static_assert(sizeof(struct scoutfs_log_trees) == 472, "log trees");
static_assert(sizeof(struct scoutfs_bloom_block) == 40, "bloom block");
static_assert(sizeof(struct scoutfs_log_merge_status) == 48, "log merge status");
static_assert(sizeof(struct scoutfs_mounted_client_btree_val) == 40, "mounted client");
static_assert(sizeof(struct scoutfs_volume_options) == 520, "volume options");
static_assert(sizeof(struct scoutfs_super_block) <= SCOUTFS_BLOCK_SM_SIZE, "super fits");
static_assert(sizeof(struct scoutfs_inode) == SCOUTFS_INODE_FMT_V2_BYTES, "inode");
static_assert(sizeof(struct scoutfs_dirent) == 32, "dirent");
static_assert(sizeof(struct scoutfs_data_extent_val) == 16, "extent val");
static_assert(sizeof(struct scoutfs_xattr) == 8, "xattr header");
static_assert(SCOUTFS_XATTR_MAX_PARTS == 74, "xattr parts");
static_assert(sizeof(struct scoutfs_net_header) == 32, "net header");
static_assert(sizeof(struct scoutfs_net_greeting) == 40, "greeting");
static_assert(sizeof(struct scoutfs_net_roots) == 72, "net roots");
static_assert(sizeof(struct scoutfs_net_lock) == 48, "net lock");
static_assert(SCOUTFS_NET_LOCK_MAX_RECOVER_NR == 22, "lock recover nr");
static_assert(sizeof(struct scoutfs_net_statfs) == 56, "net statfs");
static_assert(sizeof(struct scoutfs_open_ino_map) == 144, "open ino map");
static_assert(sizeof(struct scoutfs_log_trees) <= SCOUTFS_NET_MAX_DATA_LEN, "lt fits a msg");
static_assert(SCOUTFS_BTREE_MAX_VAL_LEN >= sizeof(struct scoutfs_dirent) + SCOUTFS_NAME_LEN,
	      "dirent fits an item");

#endif
