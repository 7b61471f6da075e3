/*
 * cmd_mkfs.c: `scoutfs mkfs`, making a new filesystem on a metadata and a data device.
 *
 * mkfs writes the first committed state, the same structures a server would have written:
 *  - fs_root: one leaf with the root directory's inode item and its meta_seq index item;
 *  - the server's first list of free metadata blocks;
 *  - the data allocator: one free extent covering the data device after its head;
 *  - the metadata allocator: one free extent covering every metadata block not used above;
 *  - empty quorum blocks for every slot;
 *  - the super block, first on the data device (without the metadata flag), then on the
 *    metadata device -- the metadata super is written last, after everything else is
 *    durable, so an interrupted mkfs never leaves something that mounts.
 * Metadata blocks are taken in order from the start of the device by a simple counter.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc/alloc.h"
#include "block/block.h"
#include "block/super.h"
#include "btree/btree.h"
#include "cli/cli.h"
#include "dev/dev.h"
#include "format/key.h"
#include "quorum/quorum.h"
#include "util/util.h"

static const char mkfs_usage[] =
	"Usage: scoutfs mkfs -Q NR,ADDR,PORT [-Q ...] [-m SIZE] [-d SIZE] [-f] [-A] [-V VERS]\n"
	"                    [--progress] META_DEVICE DATA_DEVICE\n"
	"\n"
	"Make a new scoutfs filesystem.  META_DEVICE holds the metadata (and the quorum\n"
	"blocks), DATA_DEVICE the file contents.  Either may be a block device or a regular\n"
	"file (a file is the easiest way to try scoutfs: truncate -s 64G meta data).\n"
	"Everything previously on the devices is lost.\n"
	"\n"
	"mkfs writes the super block of both devices (a new random filesystem id, the format\n"
	"version, the device sizes and the quorum slots), the quorum blocks, the free space\n"
	"of both devices and the root directory.  It takes the same time for any device\n"
	"size: free space is recorded as extents, nothing is zeroed.  The metadata super\n"
	"is written last, so an interrupted mkfs leaves nothing that mounts.\n"
	"\n"
	"It refuses, without writing anything:\n"
	"  - a device that already holds a scoutfs filesystem, unless -f is given;\n"
	"  - devices smaller than 64 GiB, unless -A is given (never below 64 MiB of\n"
	"    metadata and 16 MiB of data);\n"
	"  - metadata and data devices that share storage: the same file or block device\n"
	"    through two paths, or a loop device and the file behind it;\n"
	"  - a block device that is mounted or held open exclusively by another program\n"
	"    (also a partition of the other device).\n"
	"\n"
	"Options:\n"
	"  -Q, --quorum-slot NR,ADDR,PORT\n"
	"                   configure quorum slot NR (0 to 14): the member mounted with\n"
	"                   quorum_slot_nr=NR listens at the IPv4 address ADDR and port PORT\n"
	"                   (UDP for elections, TCP when it runs the server).  At least one\n"
	"                   slot is required; a majority of the configured slots must be\n"
	"                   mounted for the filesystem to be usable.  Each slot number and\n"
	"                   each address and port may be given only once.\n"
	"  -m, --max-meta-size SIZE\n"
	"                   use at most SIZE bytes of the metadata device (the whole device\n"
	"                   if it is smaller)\n"
	"  -d, --max-data-size SIZE\n"
	"                   use at most SIZE bytes of the data device (the whole device if\n"
	"                   it is smaller)\n"
	"  -f, --force      overwrite an existing scoutfs filesystem\n"
	"  -A, --allow-small-size\n"
	"                   allow devices smaller than 64 GiB (for testing)\n"
	"  -V, --format-version VERS\n"
	"                   the format version to write (1 or 2, default 2)\n"
	"      --progress   print each step on stderr as it begins (by default a step is\n"
	"                   shown only on a terminal, once it has taken more than a second)\n"
	"      --help       show this help and exit\n"
	"\n"
	"SIZE is a number of bytes with an optional K, M, G, T or P suffix (powers of 1024).\n"
	"\n"
	"Output:\n"
	"  A summary of the new filesystem on stdout: device paths, fsid, format version,\n"
	"  block counts and quorum slots.\n"
	"\n"
	"Environment:\n"
	"  SCOUTFS_PROGRESS_DELAY_MS  how long a step runs before it is shown on a\n"
	"                             terminal (default 1000)\n";

#define OPT_PROGRESS 256

static const struct option mkfs_longopts[] = {
	{ "quorum-slot", required_argument, NULL, 'Q' },
	{ "max-meta-size", required_argument, NULL, 'm' },
	{ "max-data-size", required_argument, NULL, 'd' },
	{ "force", no_argument, NULL, 'f' },
	{ "allow-small-size", no_argument, NULL, 'A' },
	{ "format-version", required_argument, NULL, 'V' },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ NULL, 0, NULL, 0 },
};

/* metadata blocks handed out in order; mkfs never frees one */
struct mkfs_alloc {
	u64 next;
	u64 limit;
	u64 only;    /* if nonzero: the one block this allocator may hand out */
};

static int mk_alloc(void *arg, u64 *blkno)
{
	struct mkfs_alloc *ma = arg;

	if (ma->only) {
		*blkno = ma->only;
		ma->only = 0;
		return 0;
	}
	if (ma->next >= ma->limit)
		return -ENOSPC;
	*blkno = ma->next++;
	return 0;
}

static int mk_free(void *arg, u64 blkno)
{
	return -EINVAL;
}

static int parse_slot(const char *cmd, const char *arg, struct scoutfs_quorum_config *qconf)
{
	char buf[128];
	char *nr_s, *addr_s, *port_s, *save = NULL;
	struct in_addr in;
	u64 nr, port;

	snprintf(buf, sizeof(buf), "%s", arg);
	nr_s = strtok_r(buf, ",", &save);
	addr_s = strtok_r(NULL, ",", &save);
	port_s = strtok_r(NULL, ",", &save);
	if (!nr_s || !addr_s || !port_s || strtok_r(NULL, ",", &save))
		return cli_usage_error(cmd, "quorum slot '%s' must be NR,ADDR,PORT", arg);
	if (parse_u64(nr_s, &nr) < 0 || nr >= SCOUTFS_QUORUM_MAX_SLOTS)
		return cli_usage_error(cmd, "quorum slot number '%s' must be from 0 to %d", nr_s,
				       SCOUTFS_QUORUM_MAX_SLOTS - 1);
	if (inet_pton(AF_INET, addr_s, &in) != 1)
		return cli_usage_error(cmd, "quorum slot address '%s' is not an IPv4 address",
				       addr_s);
	if (in.s_addr == htonl(INADDR_ANY) || in.s_addr == htonl(INADDR_BROADCAST))
		return cli_usage_error(cmd, "quorum slot address '%s' is not a host address",
				       addr_s);
	if (parse_u64(port_s, &port) < 0 || port == 0 || port > 65535)
		return cli_usage_error(cmd, "quorum slot port '%s' must be from 1 to 65535", port_s);
	if (le16_to_cpu(qconf->slots[nr].addr.family) != SCOUTFS_INET_FAMILY_NONE)
		return cli_usage_error(cmd, "quorum slot %llu is given more than once",
				       (unsigned long long)nr);
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (le16_to_cpu(qconf->slots[i].addr.family) == SCOUTFS_INET_FAMILY_V4 &&
		    le32_to_cpu(qconf->slots[i].addr.addr) == ntohl(in.s_addr) &&
		    le16_to_cpu(qconf->slots[i].addr.port) == port)
			return cli_usage_error(cmd, "quorum slots %d and %llu have the same address %s:%llu",
					       i, (unsigned long long)nr, addr_s,
					       (unsigned long long)port);
	}
	qconf->slots[nr].addr.family = cpu_to_le16(SCOUTFS_INET_FAMILY_V4);
	qconf->slots[nr].addr.port = cpu_to_le16((u16)port);
	qconf->slots[nr].addr.addr = cpu_to_le32(ntohl(in.s_addr));
	return 0;
}

/* -m and -d: a size with a suffix, and not 0 (which would mean "no limit" by accident) */
static int parse_max_size(const char *cmd, const char *what, const char *arg, u64 *size)
{
	if (cli_parse_size(cmd, what, arg, size))
		return CLI_EX_USAGE;
	if (*size == 0)
		return cli_usage_error(cmd, "the %s must be greater than zero", what);
	return 0;
}

static int open_device(const char *cmd, const char *what, const char *path, struct dev **dev)
{
	int ret;

	ret = dev_open(path, DEV_RDWR, dev);
	if (ret == -ENODEV)
		return cli_error(cmd, "the %s device %s is neither a block device nor a regular "
				      "file",
				 what, path);
	if (ret < 0)
		return cli_error(cmd, "cannot open %s device %s: %s", what, path, strerror(-ret));
	return 0;
}

/* a block device that is mounted (or a partition of it is) or held by another program */
static int claim_device(const char *cmd, const char *what, struct dev *dev)
{
	int ret = dev_claim(dev);

	if (ret == -EBUSY)
		return cli_error(cmd, "the %s device %s is in use: it (or a partition of it) is "
				      "mounted or held open by another program",
				 what, dev_path(dev));
	if (ret < 0)
		return cli_error(cmd, "cannot claim the %s device %s: %s", what, dev_path(dev),
				 strerror(-ret));
	return 0;
}

static int check_existing(const char *cmd, struct dev *dev, bool force)
{
	struct scoutfs_super_block *super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	char why[256];
	int err;

	if (!super)
		return -ENOMEM;
	err = super_read(dev, 0, super, why, sizeof(why));
	if (err == 0 && !force) {
		fprintf(stderr,
			"scoutfs: mkfs: %s already holds scoutfs filesystem %016llx; use -f to "
			"overwrite it\n",
			dev_path(dev), (unsigned long long)le64_to_cpu(super->hdr.fsid));
		free(super);
		return CLI_EX_FAIL;
	}
	free(super);
	return 0;
}

static void set_now(struct scoutfs_timespec *ts, struct timespec now)
{
	ts->sec = cpu_to_le64((u64)now.tv_sec);
	ts->nsec = cpu_to_le32((u32)now.tv_nsec);
}

/* the root directory and its index item, as the first items of fs_root */
static int write_fs_root(const struct btree_txn *txn, struct scoutfs_super_block *super,
			 unsigned int inode_bytes)
{
	struct timespec now = now_real();
	struct btree_item_list *idx, *ino;
	struct scoutfs_inode *si;
	int err;

	idx = calloc(1, sizeof(*idx));
	ino = calloc(1, sizeof(*ino) + sizeof(struct scoutfs_inode));
	if (!idx || !ino) {
		free(idx);
		free(ino);
		return -ENOMEM;
	}
	idx->key = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, SCOUTFS_INODE_INDEX_META_SEQ_TYPE, 1,
			    SCOUTFS_ROOT_INO, 0);
	idx->seq = 1;
	idx->next = ino;

	ino->key = key_make(SCOUTFS_FS_ZONE, SCOUTFS_ROOT_INO, SCOUTFS_INODE_TYPE, 0, 0, 0);
	ino->seq = 1;
	ino->val_len = inode_bytes;
	si = (struct scoutfs_inode *)ino->val;
	si->mode = cpu_to_le32(S_IFDIR | 0755);
	si->nlink = cpu_to_le32(2);
	si->next_readdir_pos = cpu_to_le64(SCOUTFS_DIRENT_FIRST_POS);
	si->meta_seq = cpu_to_le64(1);
	si->data_seq = cpu_to_le64(1);
	set_now(&si->atime, now);
	set_now(&si->ctime, now);
	set_now(&si->mtime, now);
	set_now(&si->crtime, now);

	err = btree_insert_list(txn, &super->fs_root, idx, NULL);
	free(idx);
	free(ino);
	return err;
}

/* the server's first free metadata list: nr blocks from the counter */
static int write_server_list(struct block_writer *wri, struct mkfs_alloc *ma,
			     struct scoutfs_alloc_list_head *lhead, u64 nr)
{
	struct scoutfs_alloc_list_block *lb;
	struct block *bl;
	u64 blkno;
	int err;

	err = mk_alloc(ma, &blkno);
	if (err < 0)
		return err;
	err = block_dirty_new(wri, blkno, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, &lhead->ref, &bl);
	if (err < 0)
		return err;
	lb = bl->data;
	for (u64 i = 0; i < nr; i++)
		lb->blknos[i] = cpu_to_le64(ma->next++);
	lb->nr = cpu_to_le32((u32)nr);
	lhead->first_nr = cpu_to_le32((u32)nr);
	lhead->total_nr = cpu_to_le64(nr);
	block_put(block_writer_cache(wri), bl);
	return 0;
}

static int write_quorum_blocks(struct dev *meta, u64 fsid)
{
	struct scoutfs_quorum_block *qb = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	int err = 0;

	if (!qb)
		return -ENOMEM;
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS && err == 0; i++) {
		memset(qb, 0, SCOUTFS_BLOCK_SM_SIZE);
		qb->hdr.seq = cpu_to_le64(1);
		err = block_sm_write(meta, SCOUTFS_QUORUM_BLKNO + i, SCOUTFS_BLOCK_MAGIC_QUORUM, fsid,
				     qb, sizeof(*qb));
	}
	free(qb);
	return err;
}

static int write_supers(struct dev *meta, struct dev *data, struct scoutfs_super_block *super)
{
	struct scoutfs_super_block *buf = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	u64 fsid = le64_to_cpu(super->hdr.fsid);
	int err;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, super, sizeof(*super));
	buf->flags = 0;
	err = block_sm_write(data, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER, fsid, buf,
			     sizeof(*buf));
	if (err == 0)
		err = dev_flush(data);
	if (err == 0) {
		memcpy(buf, super, sizeof(*super));
		buf->flags = cpu_to_le64(SCOUTFS_FLAG_IS_META_BDEV);
		err = block_sm_write(meta, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER, fsid, buf,
				     sizeof(*buf));
	}
	if (err == 0)
		err = dev_flush(meta);
	free(buf);
	return err;
}

static int mkfs_main(int argc, char **argv)
{
	const char *cmd = "mkfs";
	struct scoutfs_super_block *super = NULL;
	struct scoutfs_quorum_config qconf;
	struct block_allocator ba = { .alloc_meta = mk_alloc, .free_meta = mk_free };
	struct mkfs_alloc ma = { 0 };
	struct block_writer *wri = NULL;
	struct block_cache *bc = NULL;
	struct dev *meta = NULL, *data = NULL;
	u64 max_meta = 0, max_data = 0, fmt_vers = SCOUTFS_FORMAT_VERSION_DEFAULT;
	u64 meta_bytes, data_bytes, total_meta, total_data, fsid, list_nr, leaf;
	bool force = false, small = false;
	enum cli_progress_mode progress = CLI_PROGRESS_AUTO;
	struct cli_progress *pr = NULL;
	struct btree_txn txn = { 0 };
	char why[256];
	int c, ret;

	memset(&qconf, 0, sizeof(qconf));
	while ((c = cli_getopt(cmd, argc, argv, "Q:m:d:fAV:", mkfs_longopts)) != -1) {
		switch (c) {
		case 'Q':
			ret = parse_slot(cmd, optarg, &qconf);
			if (ret)
				return ret;
			break;
		case 'm':
			if (parse_max_size(cmd, "metadata size", optarg, &max_meta))
				return CLI_EX_USAGE;
			break;
		case 'd':
			if (parse_max_size(cmd, "data size", optarg, &max_data))
				return CLI_EX_USAGE;
			break;
		case OPT_PROGRESS:
			progress = CLI_PROGRESS_ALWAYS;
			break;
		case 'f':
			force = true;
			break;
		case 'A':
			small = true;
			break;
		case 'V':
			if (cli_parse_u64(cmd, "format version", optarg, &fmt_vers))
				return CLI_EX_USAGE;
			if (fmt_vers < SCOUTFS_FORMAT_VERSION_MIN || fmt_vers > SCOUTFS_FORMAT_VERSION_MAX)
				return cli_usage_error(cmd, "format version %llu is not supported (%d to %d)",
						       (unsigned long long)fmt_vers,
						       SCOUTFS_FORMAT_VERSION_MIN,
						       SCOUTFS_FORMAT_VERSION_MAX);
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cmd, "a metadata device and a data device are required");
	if (quorum_nr_slots(&qconf) == 0)
		return cli_usage_error(cmd, "at least one quorum slot (-Q NR,ADDR,PORT) is required");
	qconf.version = cpu_to_le64(1);

	cli_progress_start(cmd, progress, &pr);
	cli_progress_step(pr, "opening and checking the devices");
	ret = open_device(cmd, "metadata", argv[optind], &meta);
	if (ret)
		goto out;
	ret = open_device(cmd, "data", argv[optind + 1], &data);
	if (ret)
		goto out;
	if (dev_overlaps(meta, data, why, sizeof(why))) {
		ret = cli_error(cmd, "the metadata and data devices must be different: %s", why);
		goto out;
	}
	ret = claim_device(cmd, "metadata", meta);
	if (ret == 0)
		ret = claim_device(cmd, "data", data);
	if (ret)
		goto out;

	meta_bytes = dev_size(meta);
	data_bytes = dev_size(data);
	if (max_meta && max_meta < meta_bytes)
		meta_bytes = max_meta;
	if (max_data && max_data < data_bytes)
		data_bytes = max_data;
	if (!small && (meta_bytes < SCOUTFS_META_DEV_MIN_BYTES ||
		       data_bytes < SCOUTFS_DATA_DEV_MIN_BYTES)) {
		ret = cli_error(cmd,
				"the metadata device has %llu MiB and the data device %llu MiB; both "
				"need at least %llu MiB (use -A to allow smaller devices for testing)",
				(unsigned long long)(meta_bytes >> 20),
				(unsigned long long)(data_bytes >> 20),
				(unsigned long long)(SCOUTFS_META_DEV_MIN_BYTES >> 20));
		goto out;
	}
	if (meta_bytes < SCOUTFS_META_DEV_ABS_MIN_BYTES || data_bytes < SCOUTFS_DATA_DEV_ABS_MIN_BYTES) {
		ret = cli_error(cmd, "the devices are too small: scoutfs needs at least %llu MiB of "
				     "metadata and %llu MiB of data",
				(unsigned long long)(SCOUTFS_META_DEV_ABS_MIN_BYTES >> 20),
				(unsigned long long)(SCOUTFS_DATA_DEV_ABS_MIN_BYTES >> 20));
		goto out;
	}
	ret = check_existing(cmd, meta, force);
	if (ret == 0)
		ret = check_existing(cmd, data, force);
	if (ret)
		goto out;

	total_meta = meta_bytes >> SCOUTFS_BLOCK_LG_SHIFT;
	total_data = data_bytes >> SCOUTFS_BLOCK_SM_SHIFT;
	do {
		fsid = random_u64();
	} while (fsid == 0);

	super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!super) {
		ret = -ENOMEM;
		goto out;
	}
	memset(super, 0, SCOUTFS_BLOCK_SM_SIZE);
	super->hdr.fsid = cpu_to_le64(fsid);
	super->hdr.seq = cpu_to_le64(1);
	super->fmt_vers = cpu_to_le64(fmt_vers);
	random_bytes(super->uuid, sizeof(super->uuid));
	super->seq = cpu_to_le64(1);
	super->next_ino = cpu_to_le64(SCOUTFS_FIRST_INO);
	super->inode_count = cpu_to_le64(1);
	super->total_meta_blocks = cpu_to_le64(total_meta);
	super->total_data_blocks = cpu_to_le64(total_data);
	super->qconf = qconf;

	ret = block_cache_create(meta, fsid, 0, &bc);
	if (ret == 0)
		ret = block_writer_create(bc, &wri);
	if (ret < 0)
		goto out;
	ma.next = SCOUTFS_META_DEV_START_BLKNO;
	ma.limit = total_meta;
	ba.arg = &ma;
	txn.wri = wri;
	txn.alloc = &ba;

	cli_progress_step(pr, "writing the root directory and the free space of both devices");
	ret = write_fs_root(&txn, super, fmt_vers >= 2 ? SCOUTFS_INODE_FMT_V2_BYTES :
							 SCOUTFS_INODE_FMT_V1_BYTES);
	if (ret < 0)
		goto fail;
	list_nr = min_t(u64, SCOUTFS_ALLOC_LIST_MAX_BLOCKS, (total_meta - ma.next) / 8);
	ret = write_server_list(wri, &ma, &super->server_meta_avail[0], list_nr);
	if (ret < 0)
		goto fail;
	ret = alloc_ext_insert(&txn, &super->data_alloc, SCOUTFS_DATA_DEV_START_BLKNO,
			       total_data - SCOUTFS_DATA_DEV_START_BLKNO);
	if (ret < 0)
		goto fail;
	/* the metadata free extent starts after the leaf that records it */
	ret = mk_alloc(&ma, &leaf);
	if (ret < 0)
		goto fail;
	ma.only = leaf;
	ret = alloc_ext_insert(&txn, &super->meta_alloc[0], ma.next, total_meta - ma.next);
	if (ret < 0)
		goto fail;

	ret = block_writer_write(wri);
	if (ret < 0)
		goto fail;
	cli_progress_step(pr, "writing the quorum blocks");
	ret = write_quorum_blocks(meta, fsid);
	if (ret < 0)
		goto fail;
	cli_progress_step(pr, "flushing the metadata device");
	ret = dev_flush(meta);
	if (ret < 0)
		goto fail;
	cli_progress_step(pr, "writing and flushing the super blocks");
	ret = write_supers(meta, data, super);
	if (ret < 0)
		goto fail;
	cli_progress_done(pr, true);
	pr = NULL;

	printf("Created scoutfs filesystem:\n"
	       "  meta device path:     %s\n"
	       "  data device path:     %s\n"
	       "  fsid:                 %016llx\n"
	       "  format version:       %llu\n"
	       "  64KB metadata blocks: %llu (%llu MiB)\n"
	       "  4KB data blocks:      %llu (%llu MiB)\n"
	       "  quorum slots:        ",
	       argv[optind], argv[optind + 1], (unsigned long long)fsid,
	       (unsigned long long)fmt_vers, (unsigned long long)total_meta,
	       (unsigned long long)(meta_bytes >> 20), (unsigned long long)total_data,
	       (unsigned long long)(data_bytes >> 20));
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		struct in_addr in;
		char addr[INET_ADDRSTRLEN];

		if (le16_to_cpu(qconf.slots[i].addr.family) != SCOUTFS_INET_FAMILY_V4)
			continue;
		in.s_addr = htonl(le32_to_cpu(qconf.slots[i].addr.addr));
		inet_ntop(AF_INET, &in, addr, sizeof(addr));
		printf(" %d: %s:%u", i, addr, le16_to_cpu(qconf.slots[i].addr.port));
	}
	printf("\n");
	ret = 0;
	goto out;
fail:
	snprintf(why, sizeof(why), "%s", strerror(-ret));
	ret = cli_error(cmd, "writing the new filesystem failed: %s", why);
out:
	cli_progress_done(pr, ret == 0);
	block_writer_destroy(wri);
	block_cache_destroy(bc);
	free(super);
	dev_close(meta);
	dev_close(data);
	return ret;
}

const struct cli_cmd cli_cmd_mkfs = {
	.name = "mkfs",
	.group = CLI_GROUP_CORE,
	.summary = "make a new filesystem on a metadata and a data device",
	.usage = mkfs_usage,
	.fn = mkfs_main,
};
