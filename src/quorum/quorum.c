/*
 * quorum.c: electing the one mount that runs the server.
 *
 * A handful of mounts are configured as quorum members, each with a slot: an IPv4 address
 * and port in the super block's quorum config, and a 4 KiB quorum block on the metadata
 * device.  Exactly one member at a time should run the server, and every mount has to be
 * able to find it.  We get there with the leader election half of raft and nothing else:
 * there is no log to replicate, so a member votes for the first candidate that asks in a
 * term, and a candidate that collects a majority of the configured slots becomes leader.
 *
 * Terms.  Every message carries a term.  Lower terms are ignored; a greater term makes the
 * receiver a follower in that term, whatever it was.  Since a member votes at most once per
 * term and a leader needs a majority, two members can not both win the same term (except in
 * the deliberately degenerate one- and two-slot configs where one vote is a majority).  The
 * term is persisted in our quorum block before we act on it, and an agent starts from the
 * greatest term recorded in any slot's block, so a restarted member never goes back in time.
 *
 * Roles and timeouts.  A follower waits for heartbeats; when none arrives within the
 * heartbeat timeout it becomes a candidate, bumps the term and asks everyone for a vote,
 * giving up after a short random election timeout to try again in the next term.  A leader
 * sends a heartbeat every 100 ms.  A leader that leaves cleanly sends a resignation, which
 * makes followers hold an election after only the short election timeout.  A leader that
 * dies sends nothing, and the others wait out the full heartbeat timeout.  Messages are
 * fixed 32-byte UDP datagrams with a crc; anything malformed is dropped and counted.
 * Nothing is acknowledged: every state keeps resending what it needs on its own timeouts.
 *
 * The quorum block records a mount's history in the slot as events: BEGIN (agent started),
 * TERM (term increased), ELECT (won an election, before starting the server), FENCE (the
 * server came up, which means it fenced every earlier leader), STOP (the server of a term is
 * down) and END (the agent shut down cleanly).  Only the mount in the slot writes its block
 * and it always re-reads it first: if BEGIN names another mount, two mounts are configured
 * with the same slot and we stop participating rather than overwrite each other.
 *
 * Everyone else reads the blocks.  The current server is the slot whose ELECT term is the
 * greatest of those not followed by a STOP.  A new leader fences every earlier leader that
 * may still be running -- elected and never stopped -- unless a later leader already got
 * its server up (FENCE), which means it fenced them.  A volume is in use while any slot has
 * a BEGIN more recent than its END.
 *
 * The server itself is started and stopped through the caller's callbacks.  Starting is
 * asynchronous (fencing can take a while) and the agent keeps heartbeating meanwhile; the
 * agent polls the server's status to record FENCE when it comes up and STOP when it is
 * down, and only a member whose own server is fully down may stand for election, so one
 * mount never runs two servers.
 *
 * The agent is one thread with one socket; it does its block I/O synchronously because the
 * writes are small and must be durable before we act on them.  After a forced shutdown it
 * must look dead to the others: it sends nothing and writes nothing.  A mutex taken around
 * every send and write makes that a hard guarantee once quorum_shutdown_forced() returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block/block.h"
#include "dev/dev.h"
#include "quorum/quorum.h"
#include "util/counters.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(quorum_elected);
COUNTER_DEFINE(quorum_send_request);
COUNTER_DEFINE(quorum_send_vote);
COUNTER_DEFINE(quorum_send_heartbeat);
COUNTER_DEFINE(quorum_send_heartbeat_dropped);
COUNTER_DEFINE(quorum_send_resignation);
COUNTER_DEFINE(quorum_send_error);
COUNTER_DEFINE(quorum_recv_vote);
COUNTER_DEFINE(quorum_recv_heartbeat);
COUNTER_DEFINE(quorum_recv_resignation);
COUNTER_DEFINE(quorum_recv_request);
COUNTER_DEFINE(quorum_recv_invalid);
COUNTER_DEFINE(quorum_recv_error);
COUNTER_DEFINE(quorum_term_follower);
COUNTER_DEFINE(quorum_candidate_server_stopping);
COUNTER_DEFINE(quorum_server_shutdown);

#define QUORUM_ELECT_MIN_MS 250
#define QUORUM_ELECT_VAR_MS 100
#define QUORUM_HB_IVAL_MS   100
/* below this followers would time out between two heartbeats of a healthy leader */
#define QUORUM_HB_TIMEOUT_FLOOR_MS (3 * QUORUM_HB_IVAL_MS)
/* how often the agent looks at its server's status while it has one */
#define QUORUM_SERVER_POLL_MS 100
/* how often a clean shutdown looks at a stopping server */
#define QUORUM_STOP_POLL_MS 10

#define QUORUM_MSG_CRC_LEN offsetof(struct scoutfs_quorum_message, crc)

enum quorum_role {
	QUORUM_FOLLOWER = 0,
	QUORUM_CANDIDATE,
	QUORUM_LEADER,
};

/* the election state; the agent thread owns it and publishes copies for readers */
struct quorum_state {
	enum quorum_role role;
	u64 term;
	int vote_for;
	u32 vote_bits;
	u64 timeout_ns; /* absolute CLOCK_MONOTONIC */
	u64 server_start_term;
	int server_event;
	bool server_stop_requested;
	u64 dup_leader_warned_term;
};

struct quorum_last_msg {
	bool valid;
	u64 term;
	u8 type;
	struct timespec ts;
};

/* a received message reduced to what the state machine looks at */
struct quorum_rx {
	u8 type; /* SCOUTFS_QUORUM_MSG_INVALID: no (valid) message this iteration */
	u8 from;
	u64 term;
};

struct quorum {
	struct dev *dev;
	u64 fsid;
	u64 rid;
	struct scoutfs_quorum_config qconf;
	int slot_nr;
	int votes_needed;
	const struct quorum_server_ops *ops;
	void *arg;

	int sock;
	int wake_fd;
	/* the aligned buffer for our own block; only the agent (or start) uses it */
	void *blk_buf;

	_Atomic u64 hb_timeout_ms;
	atomic_bool stopping;
	atomic_bool forced;

	/* held around every datagram send and block write, and to set forced */
	pthread_mutex_t io_mutex;

	pthread_t thread;
	bool thread_started;
	bool thread_joined;
	pthread_mutex_t join_mutex;

	/* protects the published state, last messages and error for readers */
	pthread_mutex_t mutex;
	struct quorum_state pub;
	bool agent_running;
	int error;
	struct quorum_last_msg last_send[SCOUTFS_QUORUM_MAX_SLOTS];
	struct quorum_last_msg last_recv[SCOUTFS_QUORUM_MAX_SLOTS];
};

static const char *const role_names[] = {
	[QUORUM_FOLLOWER] = "follower",
	[QUORUM_CANDIDATE] = "candidate",
	[QUORUM_LEADER] = "leader",
};

static const char *const msg_names[] = {
	[SCOUTFS_QUORUM_MSG_REQUEST_VOTE] = "request_vote",
	[SCOUTFS_QUORUM_MSG_VOTE] = "vote",
	[SCOUTFS_QUORUM_MSG_HEARTBEAT] = "heartbeat",
	[SCOUTFS_QUORUM_MSG_RESIGNATION] = "resignation",
	[SCOUTFS_QUORUM_MSG_INVALID] = "invalid",
};

static const char *const event_names[] = {
	[SCOUTFS_QUORUM_EVENT_BEGIN] = "BEGIN", [SCOUTFS_QUORUM_EVENT_TERM] = "TERM",
	[SCOUTFS_QUORUM_EVENT_ELECT] = "ELECT", [SCOUTFS_QUORUM_EVENT_FENCE] = "FENCE",
	[SCOUTFS_QUORUM_EVENT_STOP] = "STOP",   [SCOUTFS_QUORUM_EVENT_END] = "END",
};

/* ------------------------------------------------------------------------------------- */
/* the config */

bool quorum_slot_present(const struct scoutfs_quorum_config *qconf, int slot)
{
	return slot >= 0 && slot < SCOUTFS_QUORUM_MAX_SLOTS &&
	       le16_to_cpu(qconf->slots[slot].addr.family) != SCOUTFS_INET_FAMILY_NONE;
}

int quorum_nr_slots(const struct scoutfs_quorum_config *qconf)
{
	int nr = 0;

	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++)
		nr += quorum_slot_present(qconf, i);
	return nr;
}

int quorum_votes_needed(const struct scoutfs_quorum_config *qconf)
{
	int nr = quorum_nr_slots(qconf);

	return nr < 3 ? 1 : nr / 2 + 1;
}

void quorum_slot_sin(const struct scoutfs_quorum_config *qconf, int slot, struct sockaddr_in *sin)
{
	const struct scoutfs_inet_addr *ia = &qconf->slots[slot].addr;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(le16_to_cpu(ia->port));
	sin->sin_addr.s_addr = htonl(le32_to_cpu(ia->addr));
}

static void format_addr(const struct scoutfs_inet_addr *ia, char *buf, size_t len)
{
	u32 a = le32_to_cpu(ia->addr);

	snprintf(buf, len, "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff,
	         le16_to_cpu(ia->port));
}

static const char *bad_ipv4(u32 a)
{
	if (a == 0)
		return "the unspecified address 0.0.0.0";
	if (a == 0xffffffffU)
		return "the limited broadcast address";
	if ((a >> 28) == 0xe)
		return "a multicast address";
	if ((a >> 24) == 0)
		return "in the zero network 0.0.0.0/8";
	return NULL;
}

int quorum_config_verify(const struct scoutfs_quorum_config *qconf, char *why, size_t why_len)
{
	const struct scoutfs_inet_addr *ia;
	const struct scoutfs_inet_addr *ib;
	char addr[32];
	const char *bad;
	int nr = 0;

	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		ia = &qconf->slots[i].addr;
		if (le16_to_cpu(ia->family) == SCOUTFS_INET_FAMILY_NONE)
			continue;
		nr++;
		format_addr(ia, addr, sizeof(addr));
		if (le16_to_cpu(ia->family) != SCOUTFS_INET_FAMILY_V4) {
			snprintf(why, why_len, "quorum slot %d has unsupported address family %u",
			         i, le16_to_cpu(ia->family));
			return -EINVAL;
		}
		bad = bad_ipv4(le32_to_cpu(ia->addr));
		if (bad) {
			snprintf(why, why_len,
			         "quorum slot %d address %s is %s, not a unicast IPv4 address", i,
			         addr, bad);
			return -EINVAL;
		}
		if (le16_to_cpu(ia->port) == 0 || le16_to_cpu(ia->port) == 65535) {
			snprintf(why, why_len, "quorum slot %d address %s: port must be 1..65534",
			         i, addr);
			return -EINVAL;
		}
		for (int j = 0; j < i; j++) {
			ib = &qconf->slots[j].addr;
			if (le16_to_cpu(ib->family) == SCOUTFS_INET_FAMILY_V4 &&
			    ib->addr == ia->addr && ib->port == ia->port) {
				snprintf(why, why_len,
				         "quorum slots %d and %d both use the address %s", j, i,
				         addr);
				return -EINVAL;
			}
		}
	}

	if (nr == 0) {
		snprintf(why, why_len, "no quorum slots are configured");
		return -EINVAL;
	}
	if (why_len)
		why[0] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------------------- */
/* quorum blocks */

static u64 slot_blkno(int slot)
{
	return SCOUTFS_QUORUM_BLKNO + (u64)slot;
}

/* read and verify a slot's block into an aligned SCOUTFS_BLOCK_SM_SIZE buffer */
static int read_block_buf(struct dev *dev, u64 fsid, int slot, void *buf)
{
	int ret;

	ret = block_sm_read(dev, slot_blkno(slot), SCOUTFS_BLOCK_MAGIC_QUORUM, fsid, buf);
	if (ret < 0)
		log_err("error %d reading quorum block of slot %d (blkno %llu)", ret, slot,
		        (unsigned long long)slot_blkno(slot));
	return ret;
}

int quorum_read_block(struct dev *meta_dev, u64 fsid, int slot, struct scoutfs_quorum_block *blk)
{
	void *buf;
	int ret;

	if (slot < 0 || slot >= SCOUTFS_QUORUM_MAX_SLOTS)
		return -EINVAL;
	buf = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!buf)
		return -ENOMEM;
	ret = read_block_buf(meta_dev, fsid, slot, buf);
	if (ret == 0)
		memcpy(blk, buf, sizeof(*blk));
	free(buf);
	return ret;
}

/* read the blocks of every present slot; blks is indexed by slot and unset for absent slots */
static int read_all_blocks(struct dev *dev, u64 fsid, const struct scoutfs_quorum_config *qconf,
                           struct scoutfs_quorum_block *blks)
{
	int ret = 0;

	memset(blks, 0, sizeof(*blks) * SCOUTFS_QUORUM_MAX_SLOTS);
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (!quorum_slot_present(qconf, i))
			continue;
		ret = quorum_read_block(dev, fsid, i, &blks[i]);
		if (ret < 0)
			break;
	}
	return ret;
}

static u64 ev_term(const struct scoutfs_quorum_block *blk, int ev)
{
	return le64_to_cpu(blk->events[ev].term);
}

static u64 ev_rid(const struct scoutfs_quorum_block *blk, int ev)
{
	return le64_to_cpu(blk->events[ev].rid);
}

/*
 * Record an event in our own block: read it back from the device, make sure the slot is
 * still ours (except when claiming it with BEGIN), bump the write counters and make the
 * write durable before the caller acts on it.
 */
static int write_event(struct quorum *q, int event, u64 term)
{
	struct scoutfs_quorum_block *blk = q->blk_buf;
	struct scoutfs_quorum_block_event *ev;
	struct timespec ts;
	u64 blkno = slot_blkno(q->slot_nr);
	u64 begin_rid;
	int ret;

	pthread_mutex_lock(&q->io_mutex);
	if (atomic_load(&q->forced)) {
		ret = -ESHUTDOWN;
		goto out;
	}

	ret = read_block_buf(q->dev, q->fsid, q->slot_nr, blk);
	if (ret < 0)
		goto out;

	begin_rid = ev_rid(blk, SCOUTFS_QUORUM_EVENT_BEGIN);
	if (event != SCOUTFS_QUORUM_EVENT_BEGIN && begin_rid != q->rid) {
		log_err("quorum slot %d block was claimed by rid %016llx while this mount (rid "
		        "%016llx) uses it; are multiple mounts configured with this slot?",
		        q->slot_nr, (unsigned long long)begin_rid, (unsigned long long)q->rid);
		ret = -EBUSY;
		goto out;
	}

	ts = now_real();
	le64_add_cpu(&blk->write_nr, 1);
	ev = &blk->events[event];
	ev->write_nr = blk->write_nr;
	ev->rid = cpu_to_le64(q->rid);
	ev->term = cpu_to_le64(term);
	ev->ts_sec = cpu_to_le64((u64)ts.tv_sec);
	ev->ts_nsec = cpu_to_le32((u32)ts.tv_nsec);
	ev->__pad = 0;

	ret = block_sm_write(q->dev, blkno, SCOUTFS_BLOCK_MAGIC_QUORUM, q->fsid, blk, sizeof(*blk));
	if (ret == 0)
		ret = dev_flush(q->dev);
	if (ret < 0)
		log_err("error %d writing %s event for term %llu to quorum slot %d block", ret,
		        event_names[event], (unsigned long long)term, q->slot_nr);
	else
		log_debug("quorum slot %d wrote %s term %llu", q->slot_nr, event_names[event],
		          (unsigned long long)term);
out:
	pthread_mutex_unlock(&q->io_mutex);
	return ret;
}

/* ------------------------------------------------------------------------------------- */
/* readers of every slot's block */

int quorum_find_server(struct dev *meta_dev, u64 fsid, const struct scoutfs_quorum_config *qconf,
                       struct sockaddr_in *sin, u64 *term)
{
	struct scoutfs_quorum_block *blks;
	u64 best_term = 0;
	int best = -1;
	u64 elect;
	int ret;

	blks = calloc(SCOUTFS_QUORUM_MAX_SLOTS, sizeof(*blks));
	if (!blks)
		return -ENOMEM;
	ret = read_all_blocks(meta_dev, fsid, qconf, blks);
	if (ret < 0)
		goto out;

	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (!quorum_slot_present(qconf, i))
			continue;
		elect = ev_term(&blks[i], SCOUTFS_QUORUM_EVENT_ELECT);
		if (elect > ev_term(&blks[i], SCOUTFS_QUORUM_EVENT_STOP) && elect > best_term) {
			best_term = elect;
			best = i;
		}
	}

	if (best < 0) {
		ret = -ENOENT;
		goto out;
	}
	if (sin)
		quorum_slot_sin(qconf, best, sin);
	if (term)
		*term = best_term;
	ret = 0;
out:
	free(blks);
	return ret;
}

struct old_leader {
	u64 rid;
	u64 term;
	int slot;
};

static void add_old_leader(struct old_leader *ols, int *nr, u64 rid, u64 term, int slot)
{
	for (int i = 0; i < *nr; i++) {
		if (ols[i].rid == rid) {
			if (term > ols[i].term) {
				ols[i].term = term;
				ols[i].slot = slot;
			}
			return;
		}
	}
	ols[*nr] = (struct old_leader){ .rid = rid, .term = term, .slot = slot };
	(*nr)++;
}

int quorum_for_each_old_leader(struct dev *meta_dev, u64 fsid,
                               const struct scoutfs_quorum_config *qconf, u64 term, u64 our_rid,
                               int (*cb)(void *arg, u64 rid, u64 term,
                                         const struct sockaddr_in *sin),
                               void *arg)
{
	struct old_leader cands[SCOUTFS_QUORUM_MAX_SLOTS * 2];
	struct old_leader ols[SCOUTFS_QUORUM_MAX_SLOTS * 2];
	struct scoutfs_quorum_block *blks;
	struct scoutfs_quorum_block *blk;
	struct sockaddr_in sin;
	u64 elect, fence, stop;
	u64 fenced = 0;
	int nr_cands = 0;
	int nr = 0;
	int ret;

	blks = calloc(SCOUTFS_QUORUM_MAX_SLOTS, sizeof(*blks));
	if (!blks)
		return -ENOMEM;
	ret = read_all_blocks(meta_dev, fsid, qconf, blks);
	if (ret < 0)
		goto out;

	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (!quorum_slot_present(qconf, i))
			continue;
		blk = &blks[i];
		elect = ev_term(blk, SCOUTFS_QUORUM_EVENT_ELECT);
		fence = ev_term(blk, SCOUTFS_QUORUM_EVENT_FENCE);
		stop = ev_term(blk, SCOUTFS_QUORUM_EVENT_STOP);

		/* every leader before the greatest FENCE was fenced by that leader's server */
		if (fence > fenced)
			fenced = fence;
		/* an elected leader that never recorded stopping may still be running */
		if (elect > stop)
			cands[nr_cands++] =
			        (struct old_leader){ .rid = ev_rid(blk, SCOUTFS_QUORUM_EVENT_ELECT),
				                     .term = elect,
				                     .slot = i };
		/* an earlier server of the slot got up and was never stopped */
		if (stop < fence && fence < elect)
			cands[nr_cands++] =
			        (struct old_leader){ .rid = ev_rid(blk, SCOUTFS_QUORUM_EVENT_FENCE),
				                     .term = fence,
				                     .slot = i };
	}

	for (int i = 0; i < nr_cands; i++) {
		if (cands[i].term == 0 || cands[i].term < fenced || cands[i].term > term ||
		    cands[i].rid == our_rid)
			continue;
		add_old_leader(ols, &nr, cands[i].rid, cands[i].term, cands[i].slot);
	}

	for (int i = 0; i < nr; i++) {
		quorum_slot_sin(qconf, ols[i].slot, &sin);
		ret = cb(arg, ols[i].rid, ols[i].term, &sin);
		if (ret != 0)
			goto out;
	}
	ret = 0;
out:
	free(blks);
	return ret;
}

/* the rid of the block's mount if it began and did not end cleanly (crashed or running), or 0 */
static u64 unclean_rid(const struct scoutfs_quorum_block *blk)
{
	const struct scoutfs_quorum_block_event *ev = blk->events;

	if (le64_to_cpu(ev[SCOUTFS_QUORUM_EVENT_BEGIN].write_nr) >
	    le64_to_cpu(ev[SCOUTFS_QUORUM_EVENT_END].write_nr))
		return le64_to_cpu(ev[SCOUTFS_QUORUM_EVENT_BEGIN].rid);
	return 0;
}

int quorum_slot_unclean_rid(struct dev *meta_dev, u64 fsid,
			    const struct scoutfs_quorum_config *qconf, int slot, u64 *rid)
{
	struct scoutfs_quorum_block *blks;
	int ret;

	*rid = 0;
	if (slot < 0 || slot >= SCOUTFS_QUORUM_MAX_SLOTS)
		return -EINVAL;
	blks = calloc(SCOUTFS_QUORUM_MAX_SLOTS, sizeof(*blks));
	if (!blks)
		return -ENOMEM;
	ret = read_all_blocks(meta_dev, fsid, qconf, blks);
	if (ret == 0)
		*rid = unclean_rid(&blks[slot]);
	free(blks);
	return ret;
}

int quorum_any_agent_running(struct dev *meta_dev, u64 fsid,
                             const struct scoutfs_quorum_config *qconf, bool *running)
{
	struct scoutfs_quorum_block *blks;
	int ret;

	*running = false;
	blks = calloc(SCOUTFS_QUORUM_MAX_SLOTS, sizeof(*blks));
	if (!blks)
		return -ENOMEM;
	ret = read_all_blocks(meta_dev, fsid, qconf, blks);
	if (ret < 0)
		goto out;

	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (quorum_slot_present(qconf, i) && unclean_rid(&blks[i]))
			*running = true;
	}
out:
	free(blks);
	return ret;
}

/* the term an agent starts from: the greatest term any mount recorded in any slot */
static int read_start_term(struct quorum *q, u64 *term)
{
	struct scoutfs_quorum_block *blks;
	u64 crashed;
	int ret;

	*term = 0;
	blks = calloc(SCOUTFS_QUORUM_MAX_SLOTS, sizeof(*blks));
	if (!blks)
		return -ENOMEM;
	ret = read_all_blocks(q->dev, q->fsid, &q->qconf, blks);
	if (ret < 0)
		goto out;

	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		for (int e = 0; e < SCOUTFS_QUORUM_EVENT_NR; e++) {
			if (ev_rid(&blks[i], e) != 0 && ev_term(&blks[i], e) > *term)
				*term = ev_term(&blks[i], e);
		}
	}

	/* a crash looks the same as a mount elsewhere still using the slot; say which */
	crashed = unclean_rid(&blks[q->slot_nr]);
	if (crashed)
		log_info("quorum slot %d: its previous mount (rid %016llx) did not shut down "
		         "cleanly",
		         q->slot_nr, (unsigned long long)crashed);
out:
	free(blks);
	return ret;
}

/* ------------------------------------------------------------------------------------- */
/* messages */

static void record_last(struct quorum *q, struct quorum_last_msg *last, u64 term, u8 type)
{
	pthread_mutex_lock(&q->mutex);
	last->valid = true;
	last->term = term;
	last->type = type;
	last->ts = now_real();
	pthread_mutex_unlock(&q->mutex);
}

static void count_send(u8 type, bool sent)
{
	if (!sent) {
		counter_inc(quorum_send_error);
		if (type == SCOUTFS_QUORUM_MSG_HEARTBEAT)
			counter_inc(quorum_send_heartbeat_dropped);
		return;
	}
	switch (type) {
	case SCOUTFS_QUORUM_MSG_REQUEST_VOTE:
		counter_inc(quorum_send_request);
		break;
	case SCOUTFS_QUORUM_MSG_VOTE:
		counter_inc(quorum_send_vote);
		break;
	case SCOUTFS_QUORUM_MSG_HEARTBEAT:
		counter_inc(quorum_send_heartbeat);
		break;
	case SCOUTFS_QUORUM_MSG_RESIGNATION:
		counter_inc(quorum_send_resignation);
		break;
	}
}

/* fire and forget: a datagram that can not be sent right now is only counted */
static void send_msg(struct quorum *q, int to, u64 term, u8 type)
{
	struct scoutfs_quorum_message msg = {
		.fsid = cpu_to_le64(q->fsid),
		.version = 0,
		.term = cpu_to_le64(term),
		.type = type,
		.from = (u8)q->slot_nr,
	};
	struct sockaddr_in sin;
	ssize_t ret;

	msg.crc = cpu_to_le32(crc32c(&msg, QUORUM_MSG_CRC_LEN));
	quorum_slot_sin(&q->qconf, to, &sin);

	pthread_mutex_lock(&q->io_mutex);
	if (atomic_load(&q->forced)) {
		pthread_mutex_unlock(&q->io_mutex);
		return;
	}
	ret = sendto(q->sock, &msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
	             (struct sockaddr *)&sin, sizeof(sin));
	pthread_mutex_unlock(&q->io_mutex);

	count_send(type, ret == (ssize_t)sizeof(msg));
	if (ret == (ssize_t)sizeof(msg))
		record_last(q, &q->last_send[to], term, type);
}

static void send_all(struct quorum *q, u64 term, u8 type)
{
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (i != q->slot_nr && quorum_slot_present(&q->qconf, i))
			send_msg(q, i, term, type);
	}
}

/* check a datagram; returns false (and counts it) if it has to be dropped */
static bool parse_msg(struct quorum *q, const void *buf, ssize_t len, struct quorum_rx *rx)
{
	struct scoutfs_quorum_message msg;

	if (len != (ssize_t)sizeof(msg))
		goto invalid;
	memcpy(&msg, buf, sizeof(msg));
	if (le32_to_cpu(msg.crc) != crc32c(&msg, QUORUM_MSG_CRC_LEN) ||
	    le64_to_cpu(msg.fsid) != q->fsid || msg.type >= SCOUTFS_QUORUM_MSG_INVALID ||
	    msg.from >= SCOUTFS_QUORUM_MAX_SLOTS || msg.from == q->slot_nr ||
	    !quorum_slot_present(&q->qconf, msg.from))
		goto invalid;

	rx->type = msg.type;
	rx->from = msg.from;
	rx->term = le64_to_cpu(msg.term);
	return true;

invalid:
	counter_inc(quorum_recv_invalid);
	log_debug("quorum slot %d dropped an invalid datagram of %zd bytes", q->slot_nr, len);
	return false;
}

/* errors a UDP socket can report that say nothing about our own socket's health */
static bool transient_recv_error(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNREFUSED ||
	       err == EHOSTUNREACH || err == ENETUNREACH || err == ENOBUFS || err == ENOMEM;
}

/*
 * Wait for one datagram until the deadline (or a wake-up) and parse it into rx.  rx is
 * INVALID when nothing valid arrived.  Only a broken socket is an error.
 */
static int recv_msg(struct quorum *q, u64 deadline_ns, struct quorum_rx *rx)
{
	struct pollfd pfds[2] = {
		{ .fd = q->sock, .events = POLLIN },
		{ .fd = q->wake_fd, .events = POLLIN },
	};
	u8 buf[64]; /* larger than a message so oversized datagrams are seen as such */
	struct timespec ts = { 0, 0 };
	u64 now = now_mono_ns();
	uint64_t val;
	ssize_t len;
	int ret;

	rx->type = SCOUTFS_QUORUM_MSG_INVALID;
	rx->from = 0;
	rx->term = 0;

	if (deadline_ns > now) {
		ts.tv_sec = (deadline_ns - now) / NSEC_PER_SEC;
		ts.tv_nsec = (deadline_ns - now) % NSEC_PER_SEC;
	}
	ret = ppoll(pfds, 2, &ts, NULL);
	if (ret < 0) {
		if (errno == EINTR)
			return 0;
		ret = -errno;
		log_err("quorum slot %d poll failed: %s", q->slot_nr, strerror(errno));
		return ret;
	}
	if (pfds[1].revents & POLLIN) {
		if (read(q->wake_fd, &val, sizeof(val)) < 0) {
			/* EAGAIN: someone else drained it */
		}
	}
	if (!(pfds[0].revents & (POLLIN | POLLERR)))
		return 0;

	len = recv(q->sock, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (len < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		counter_inc(quorum_recv_error);
		if (transient_recv_error(errno))
			return 0;
		ret = -errno;
		log_err("quorum slot %d receive failed: %s", q->slot_nr, strerror(errno));
		return ret;
	}

	if (!parse_msg(q, buf, len, rx))
		return 0;

	switch (rx->type) {
	case SCOUTFS_QUORUM_MSG_REQUEST_VOTE:
		counter_inc(quorum_recv_request);
		break;
	case SCOUTFS_QUORUM_MSG_VOTE:
		counter_inc(quorum_recv_vote);
		break;
	case SCOUTFS_QUORUM_MSG_HEARTBEAT:
		counter_inc(quorum_recv_heartbeat);
		break;
	case SCOUTFS_QUORUM_MSG_RESIGNATION:
		counter_inc(quorum_recv_resignation);
		break;
	}
	record_last(q, &q->last_recv[rx->from], rx->term, rx->type);
	return 0;
}

static void wake_agent(struct quorum *q)
{
	uint64_t one = 1;

	if (write(q->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is already non-zero: the agent will wake anyway */
	}
}

/* ------------------------------------------------------------------------------------- */
/* the agent */

static u64 hb_timeout_ms(struct quorum *q)
{
	return atomic_load(&q->hb_timeout_ms);
}

static u64 election_deadline(void)
{
	return now_mono_ns() +
	       (QUORUM_ELECT_MIN_MS + random_below(QUORUM_ELECT_VAR_MS)) * NSEC_PER_MSEC;
}

static u64 deadline_ms(u64 ms)
{
	return now_mono_ns() + ms * NSEC_PER_MSEC;
}

static void publish(struct quorum *q, const struct quorum_state *st)
{
	pthread_mutex_lock(&q->mutex);
	q->pub = *st;
	pthread_mutex_unlock(&q->mutex);
}

static bool server_running(enum quorum_server_status status)
{
	return status == QUORUM_SERVER_STARTING || status == QUORUM_SERVER_UP;
}

static void become_follower(struct quorum_state *st)
{
	st->role = QUORUM_FOLLOWER;
	st->vote_for = -1;
	st->vote_bits = 0;
}

/*
 * One iteration of the election state machine with the message (or timeout) that ended the
 * wait.  The steps are numbered as in reference/server.md section 1.4 and their order
 * matters: a term change settles first, then elections, then our server's lifecycle.
 */
static int run_steps(struct quorum *q, struct quorum_state *st, struct quorum_rx *rx)
{
	enum quorum_server_status status;
	u64 hb_ms;
	int ret;

	/* 1: options can change at any time; use the current heartbeat timeout throughout */
	hb_ms = hb_timeout_ms(q);

	/* 2: a message from an earlier term is meaningless now */
	if (rx->type != SCOUTFS_QUORUM_MSG_INVALID && rx->term < st->term)
		rx->type = SCOUTFS_QUORUM_MSG_INVALID;

	/* 3: a greater term makes us a follower in it, whatever we were */
	if (rx->type != SCOUTFS_QUORUM_MSG_INVALID && rx->term > st->term) {
		if (st->role == QUORUM_LEADER)
			log_warn("quorum slot %d stepping down as leader in term %llu: slot %u "
			         "sent a %s in greater term %llu",
			         q->slot_nr, (unsigned long long)st->term, rx->from,
			         msg_names[rx->type], (unsigned long long)rx->term);
		counter_inc(quorum_term_follower);
		become_follower(st);
		st->term = rx->term;
		st->timeout_ns = rx->type == SCOUTFS_QUORUM_MSG_HEARTBEAT ? deadline_ms(hb_ms)
		                                                          : election_deadline();
		publish(q, st);
		ret = write_event(q, SCOUTFS_QUORUM_EVENT_TERM, st->term);
		if (ret < 0)
			return ret;
	}

	/* 4: a leader of our term is alive; a candidate in that term has lost */
	if (rx->type == SCOUTFS_QUORUM_MSG_HEARTBEAT) {
		if (st->role == QUORUM_LEADER) {
			/* only possible when one vote is a majority; the servers fence it out */
			if (st->dup_leader_warned_term != st->term)
				log_warn("quorum slot %d is leader in term %llu but slot %u also "
				         "sent a heartbeat in that term",
				         q->slot_nr, (unsigned long long)st->term, rx->from);
			st->dup_leader_warned_term = st->term;
		} else {
			if (st->role == QUORUM_CANDIDATE) {
				/* we voted for ourselves in this term: don't vote again */
				become_follower(st);
				st->vote_for = q->slot_nr;
			}
			st->timeout_ns = deadline_ms(hb_ms);
		}
	}

	/* 5: the leader of our term left cleanly: elect a new one without waiting */
	if (rx->type == SCOUTFS_QUORUM_MSG_RESIGNATION && rx->term == st->term &&
	    st->role == QUORUM_FOLLOWER)
		st->timeout_ns = election_deadline();

	/* 6: nothing heard in time: stand for election, if our own server is gone */
	if (st->role != QUORUM_LEADER && rx->type == SCOUTFS_QUORUM_MSG_INVALID &&
	    now_mono_ns() >= st->timeout_ns) {
		status = q->ops->status(q->arg);
		if (status != QUORUM_SERVER_DOWN || st->server_start_term != 0) {
			counter_inc(quorum_candidate_server_stopping);
			st->timeout_ns = election_deadline();
		} else {
			st->role = QUORUM_CANDIDATE;
			st->term++;
			st->vote_for = -1;
			st->vote_bits = 1U << q->slot_nr;
			publish(q, st);
			ret = write_event(q, SCOUTFS_QUORUM_EVENT_TERM, st->term);
			if (ret < 0)
				return ret;
			log_debug("quorum slot %d is a candidate in term %llu", q->slot_nr,
			          (unsigned long long)st->term);
			send_all(q, st->term, SCOUTFS_QUORUM_MSG_REQUEST_VOTE);
			st->timeout_ns = election_deadline();
		}
	}

	/* 7: count votes for our candidacy */
	if (st->role == QUORUM_CANDIDATE && rx->type == SCOUTFS_QUORUM_MSG_VOTE) {
		if (st->vote_bits & (1U << rx->from))
			log_warn("quorum slot %d received a second vote from slot %u in term "
			         "%llu; are multiple mounts configured with that slot?",
			         q->slot_nr, rx->from, (unsigned long long)st->term);
		st->vote_bits |= 1U << rx->from;
	}

	/* 8: a majority: lead, record it, then start the server */
	if (st->role == QUORUM_CANDIDATE && __builtin_popcount(st->vote_bits) >= q->votes_needed) {
		st->role = QUORUM_LEADER;
		counter_inc(quorum_elected);
		log_info("quorum slot %d elected leader in term %llu with %d votes", q->slot_nr,
		         (unsigned long long)st->term, __builtin_popcount(st->vote_bits));
		publish(q, st);
		send_all(q, st->term, SCOUTFS_QUORUM_MSG_HEARTBEAT);
		st->timeout_ns = deadline_ms(QUORUM_HB_IVAL_MS);
		ret = write_event(q, SCOUTFS_QUORUM_EVENT_ELECT, st->term);
		if (ret < 0)
			return ret;
		st->server_start_term = st->term;
		st->server_event = SCOUTFS_QUORUM_EVENT_ELECT;
		st->server_stop_requested = false;
		q->ops->start(q->arg, st->term);
	}

	status = q->ops->status(q->arg);

	/* 9: our server is up, so every earlier leader is fenced: tell future leaders */
	if (st->role == QUORUM_LEADER && st->server_start_term == st->term &&
	    st->server_event == SCOUTFS_QUORUM_EVENT_ELECT && status == QUORUM_SERVER_UP) {
		ret = write_event(q, SCOUTFS_QUORUM_EVENT_FENCE, st->term);
		if (ret < 0)
			return ret;
		st->server_event = SCOUTFS_QUORUM_EVENT_FENCE;
		log_info("quorum slot %d server of term %llu is up", q->slot_nr,
		         (unsigned long long)st->term);
	}

	/* 10: a server must only run while we lead the term it was started in */
	if (!(st->role == QUORUM_LEADER && st->term == st->server_start_term) &&
	    server_running(status) && !st->server_stop_requested) {
		log_info("quorum slot %d stopping the server of term %llu, now %s in term %llu",
		         q->slot_nr, (unsigned long long)st->server_start_term,
		         role_names[st->role], (unsigned long long)st->term);
		st->server_stop_requested = true;
		q->ops->stop(q->arg);
		status = q->ops->status(q->arg);
	}

	/* 11: our server is down (asked to, or it failed): resign and record it */
	if (st->server_start_term > 0 && status == QUORUM_SERVER_DOWN) {
		counter_inc(quorum_server_shutdown);
		if (st->role == QUORUM_LEADER) {
			log_info("quorum slot %d resigned as leader in term %llu: its server "
			         "stopped",
			         q->slot_nr, (unsigned long long)st->term);
			become_follower(st);
			st->timeout_ns = election_deadline();
			publish(q, st);
			send_all(q, st->server_start_term, SCOUTFS_QUORUM_MSG_RESIGNATION);
		}
		ret = write_event(q, SCOUTFS_QUORUM_EVENT_STOP, st->server_start_term);
		if (ret < 0)
			return ret;
		st->server_start_term = 0;
		st->server_event = SCOUTFS_QUORUM_EVENT_STOP;
		st->server_stop_requested = false;
	}

	/* 12: keep the followers following */
	if (st->role == QUORUM_LEADER && now_mono_ns() >= st->timeout_ns) {
		send_all(q, st->term, SCOUTFS_QUORUM_MSG_HEARTBEAT);
		st->timeout_ns = deadline_ms(QUORUM_HB_IVAL_MS);
	}

	/* 13: the first candidate to ask in a term gets our vote */
	if (st->role == QUORUM_FOLLOWER && rx->type == SCOUTFS_QUORUM_MSG_REQUEST_VOTE &&
	    st->vote_for < 0) {
		st->vote_for = rx->from;
		log_debug("quorum slot %d votes for slot %u in term %llu", q->slot_nr, rx->from,
		          (unsigned long long)st->term);
		send_msg(q, rx->from, st->term, SCOUTFS_QUORUM_MSG_VOTE);
	}

	return 0;
}

/* when the agent has to stop waiting: the state timeout, or sooner to watch our server */
static u64 wait_deadline(struct quorum *q, const struct quorum_state *st)
{
	u64 deadline = st->timeout_ns;
	u64 poll;

	if (st->server_start_term > 0 || st->server_stop_requested) {
		poll = deadline_ms(QUORUM_SERVER_POLL_MS);
		if (poll < deadline)
			deadline = poll;
	}
	return deadline;
}

/*
 * Wait for our server to be down, still heartbeating if we lead so that followers don't
 * start an election (and fence us) while we leave cleanly.  Gives up on forced shutdown.
 */
static void stop_server_wait(struct quorum *q, struct quorum_state *st)
{
	enum quorum_server_status status = q->ops->status(q->arg);
	u64 next_hb = 0;

	if (server_running(status) && !st->server_stop_requested) {
		st->server_stop_requested = true;
		q->ops->stop(q->arg);
	}

	while (!atomic_load(&q->forced) &&
	       (status = q->ops->status(q->arg)) != QUORUM_SERVER_DOWN) {
		if (st->role == QUORUM_LEADER && now_mono_ns() >= next_hb) {
			send_all(q, st->term, SCOUTFS_QUORUM_MSG_HEARTBEAT);
			next_hb = deadline_ms(QUORUM_HB_IVAL_MS);
		}
		usleep(QUORUM_STOP_POLL_MS * 1000);
	}
}

/*
 * Leave the quorum.  A clean stop stops our server, resigns, and records STOP and END.
 * After an error we still stop the server and resign but write nothing more: the block
 * may not be ours, or the device may be failing.  A forced shutdown only asks the server
 * to stop; the io mutex already keeps every send and write from happening.
 */
static void agent_exit(struct quorum *q, struct quorum_state *st, int err)
{
	bool forced = atomic_load(&q->forced);
	bool was_leader = st->role == QUORUM_LEADER;
	int ret = 0;

	if (forced) {
		if (server_running(q->ops->status(q->arg)))
			q->ops->stop(q->arg);
		become_follower(st);
		return;
	}

	stop_server_wait(q, st);
	if (was_leader) {
		become_follower(st);
		publish(q, st);
		send_all(q, st->term, SCOUTFS_QUORUM_MSG_RESIGNATION);
		log_info("quorum slot %d resigned as leader in term %llu: shutting down",
		         q->slot_nr, (unsigned long long)st->term);
	}
	become_follower(st);
	if (err < 0 || atomic_load(&q->forced))
		return;

	if (st->server_start_term > 0) {
		counter_inc(quorum_server_shutdown);
		ret = write_event(q, SCOUTFS_QUORUM_EVENT_STOP, st->server_start_term);
		if (ret < 0)
			goto out;
		st->server_start_term = 0;
		st->server_event = SCOUTFS_QUORUM_EVENT_STOP;
	}
	ret = write_event(q, SCOUTFS_QUORUM_EVENT_END, st->term);
out:
	if (ret < 0 && ret != -ESHUTDOWN) {
		log_err("quorum slot %d could not record its clean shutdown: error %d", q->slot_nr,
		        ret);
		pthread_mutex_lock(&q->mutex);
		q->error = ret;
		pthread_mutex_unlock(&q->mutex);
	}
}

static void *agent_thread(void *arg)
{
	struct quorum *q = arg;
	struct quorum_state st;
	struct quorum_rx rx;
	int ret = 0;

	thread_set_name("quorum");
	pthread_mutex_lock(&q->mutex);
	st = q->pub;
	pthread_mutex_unlock(&q->mutex);

	while (!atomic_load(&q->stopping) && !atomic_load(&q->forced)) {
		ret = recv_msg(q, wait_deadline(q, &st), &rx);
		if (ret < 0)
			break;
		if (atomic_load(&q->stopping) || atomic_load(&q->forced))
			break;
		ret = run_steps(q, &st, &rx);
		publish(q, &st);
		if (ret < 0)
			break;
	}

	if (ret == -ESHUTDOWN)
		ret = 0;
	if (ret < 0) {
		log_err("quorum agent of slot %d stopped after error %d (%s). This mount is no "
		        "longer participating in quorum. It should be remounted to restore "
		        "service.",
		        q->slot_nr, ret, strerror(-ret));
		pthread_mutex_lock(&q->mutex);
		q->error = ret;
		pthread_mutex_unlock(&q->mutex);
	}

	agent_exit(q, &st, ret);

	pthread_mutex_lock(&q->mutex);
	q->pub = st;
	q->agent_running = false;
	pthread_mutex_unlock(&q->mutex);
	return NULL;
}

/* ------------------------------------------------------------------------------------- */
/* the agent's lifecycle */

static u64 sane_hb_timeout(u64 ms)
{
	if (ms == 0)
		return QUORUM_HB_TIMEOUT_DEFAULT_MS;
	if (ms < QUORUM_HB_TIMEOUT_FLOOR_MS)
		return QUORUM_HB_TIMEOUT_FLOOR_MS;
	return ms;
}

static int bind_slot(struct quorum *q)
{
	struct sockaddr_in sin;
	char addr[32];
	int ret;

	q->sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (q->sock < 0) {
		ret = -errno;
		log_err("quorum slot %d: creating a UDP socket failed: %s", q->slot_nr,
		        strerror(errno));
		return ret;
	}

	/* no SO_REUSEADDR: a second mount binding the same slot must fail */
	quorum_slot_sin(&q->qconf, q->slot_nr, &sin);
	if (bind(q->sock, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		ret = -errno;
		format_addr(&q->qconf.slots[q->slot_nr].addr, addr, sizeof(addr));
		log_err("quorum slot %d: binding UDP address %s failed: %s%s", q->slot_nr, addr,
		        strerror(-ret),
		        ret == -EADDRINUSE ? " (is another mount using this slot?)" : "");
		return ret;
	}
	return 0;
}

int quorum_start(struct dev *meta_dev, u64 fsid, u64 rid, const struct scoutfs_quorum_config *qconf,
                 int slot_nr, u64 hb_timeout_ms, const struct quorum_server_ops *ops, void *arg,
                 struct quorum **ret)
{
	struct quorum *q = NULL;
	struct quorum_state st;
	struct sockaddr_in server_sin;
	struct sockaddr_in our_sin;
	char addr[INET_ADDRSTRLEN];
	char why[160];
	u64 server_term;
	u64 term;
	int err;

	*ret = NULL;
	err = quorum_config_verify(qconf, why, sizeof(why));
	if (err < 0) {
		log_err("invalid quorum config: %s", why);
		return err;
	}
	if (!quorum_slot_present(qconf, slot_nr)) {
		log_err("quorum slot %d is not configured (%d slots are)", slot_nr,
		        quorum_nr_slots(qconf));
		return -EINVAL;
	}
	if (!ops || !ops->start || !ops->stop || !ops->status || rid == 0)
		return -EINVAL;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->dev = meta_dev;
	q->fsid = fsid;
	q->rid = rid;
	q->qconf = *qconf;
	q->slot_nr = slot_nr;
	q->votes_needed = quorum_votes_needed(qconf);
	q->ops = ops;
	q->arg = arg;
	q->sock = -1;
	q->wake_fd = -1;
	atomic_init(&q->hb_timeout_ms, sane_hb_timeout(hb_timeout_ms));
	atomic_init(&q->stopping, false);
	atomic_init(&q->forced, false);
	pthread_mutex_init(&q->io_mutex, NULL);
	pthread_mutex_init(&q->join_mutex, NULL);
	pthread_mutex_init(&q->mutex, NULL);

	q->blk_buf = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!q->blk_buf) {
		err = -ENOMEM;
		goto out;
	}
	q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->wake_fd < 0) {
		err = -errno;
		goto out;
	}

	err = bind_slot(q);
	if (err < 0)
		goto out;

	err = read_start_term(q, &term);
	if (err < 0)
		goto out;

	memset(&st, 0, sizeof(st));
	become_follower(&st);
	st.term = term;
	st.server_event = -1;

	/* give a leader we can find a chance to be heard before we stand ourselves */
	err = quorum_find_server(meta_dev, fsid, qconf, &server_sin, &server_term);
	if (err == 0) {
		quorum_slot_sin(qconf, slot_nr, &our_sin);
		inet_ntop(AF_INET, &server_sin.sin_addr, addr, sizeof(addr));
		log_info("quorum slot %d found a leader elected in term %llu at %s:%u%s", slot_nr,
		         (unsigned long long)server_term, addr, ntohs(server_sin.sin_port),
		         memcmp(&server_sin, &our_sin, sizeof(our_sin)) == 0
		                 ? " (this slot's previous mount)"
		                 : "");
		st.timeout_ns = deadline_ms(atomic_load(&q->hb_timeout_ms));
	} else if (err == -ENOENT) {
		st.timeout_ns = election_deadline();
	} else {
		goto out;
	}

	err = write_event(q, SCOUTFS_QUORUM_EVENT_BEGIN, st.term);
	if (err < 0)
		goto out;

	q->pub = st;
	q->agent_running = true;
	err = -pthread_create(&q->thread, NULL, agent_thread, q);
	if (err < 0) {
		q->agent_running = false;
		goto out;
	}
	q->thread_started = true;
	log_info("quorum slot %d agent started in term %llu (rid %016llx, %d of %d votes "
	         "needed, heartbeat timeout %llu ms)",
	         slot_nr, (unsigned long long)term, (unsigned long long)rid, q->votes_needed,
	         quorum_nr_slots(qconf), (unsigned long long)atomic_load(&q->hb_timeout_ms));
	err = 0;
out:
	if (err < 0) {
		quorum_destroy(q);
		q = NULL;
	}
	*ret = q;
	return err;
}

static void join_agent(struct quorum *q)
{
	pthread_mutex_lock(&q->join_mutex);
	if (q->thread_started && !q->thread_joined) {
		pthread_join(q->thread, NULL);
		q->thread_joined = true;
	}
	pthread_mutex_unlock(&q->join_mutex);
}

void quorum_stop(struct quorum *q)
{
	if (!q)
		return;
	atomic_store(&q->stopping, true);
	wake_agent(q);
	join_agent(q);
}

void quorum_shutdown_forced(struct quorum *q)
{
	if (!q)
		return;
	/* once we hold the io mutex no send or write is in flight, and none can start */
	pthread_mutex_lock(&q->io_mutex);
	atomic_store(&q->forced, true);
	pthread_mutex_unlock(&q->io_mutex);
	wake_agent(q);
	join_agent(q);
}

void quorum_destroy(struct quorum *q)
{
	if (!q)
		return;
	if (q->thread_started && !q->thread_joined)
		quorum_shutdown_forced(q);
	if (q->sock >= 0)
		close(q->sock);
	if (q->wake_fd >= 0)
		close(q->wake_fd);
	pthread_mutex_destroy(&q->io_mutex);
	pthread_mutex_destroy(&q->join_mutex);
	pthread_mutex_destroy(&q->mutex);
	free(q->blk_buf);
	free(q);
}

bool quorum_is_leader(struct quorum *q)
{
	bool leader;

	pthread_mutex_lock(&q->mutex);
	leader = q->agent_running && q->pub.role == QUORUM_LEADER;
	pthread_mutex_unlock(&q->mutex);
	return leader;
}

u64 quorum_term(struct quorum *q)
{
	u64 term;

	pthread_mutex_lock(&q->mutex);
	term = q->pub.term;
	pthread_mutex_unlock(&q->mutex);
	return term;
}

int quorum_error(struct quorum *q)
{
	int err;

	pthread_mutex_lock(&q->mutex);
	err = q->error;
	pthread_mutex_unlock(&q->mutex);
	return err;
}

void quorum_set_hb_timeout(struct quorum *q, u64 ms)
{
	atomic_store(&q->hb_timeout_ms, sane_hb_timeout(ms));
}

/* append to a status buffer, remembering if it overflowed */
static void status_printf(char *buf, size_t len, size_t *off, bool *full, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static void status_printf(char *buf, size_t len, size_t *off, bool *full, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		*full = true;
	else
		*off += n;
}

static void status_last(char *buf, size_t len, size_t *off, bool *full, const char *what, int slot,
                        const struct quorum_last_msg *last)
{
	if (!last->valid)
		return;
	status_printf(buf, len, off, full, "%s %d term %llu type %s ts %llu.%09ld\n", what, slot,
	              (unsigned long long)last->term,
	              last->type < ARRAY_SIZE(msg_names) ? msg_names[last->type] : "unknown",
	              (unsigned long long)last->ts.tv_sec, last->ts.tv_nsec);
}

int quorum_status(struct quorum *q, char *buf, size_t len)
{
	struct quorum_last_msg last_send[SCOUTFS_QUORUM_MAX_SLOTS];
	struct quorum_last_msg last_recv[SCOUTFS_QUORUM_MAX_SLOTS];
	struct quorum_state st;
	bool running;
	bool full = false;
	size_t off = 0;
	u64 now;
	u64 left;
	int err;

	if (len == 0)
		return -ENOSPC;
	pthread_mutex_lock(&q->mutex);
	st = q->pub;
	running = q->agent_running;
	err = q->error;
	memcpy(last_send, q->last_send, sizeof(last_send));
	memcpy(last_recv, q->last_recv, sizeof(last_recv));
	pthread_mutex_unlock(&q->mutex);

	now = now_mono_ns();
	left = st.timeout_ns > now ? st.timeout_ns - now : 0;
	buf[0] = '\0';
	status_printf(buf, len, &off, &full, "quorum_slot_nr %d\n", q->slot_nr);
	status_printf(buf, len, &off, &full, "term %llu\n", (unsigned long long)st.term);
	status_printf(buf, len, &off, &full, "server_start_term %llu\n",
	              (unsigned long long)st.server_start_term);
	status_printf(buf, len, &off, &full, "server_event %d\n", st.server_event);
	status_printf(buf, len, &off, &full, "role %s\n", role_names[st.role]);
	status_printf(buf, len, &off, &full, "vote_for %d\n", st.vote_for);
	status_printf(buf, len, &off, &full, "vote_bits 0x%x (count %d)\n", st.vote_bits,
	              __builtin_popcount(st.vote_bits));
	status_printf(buf, len, &off, &full, "timeout_in_secs %llu.%09llu\n",
	              (unsigned long long)(left / NSEC_PER_SEC),
	              (unsigned long long)(left % NSEC_PER_SEC));
	status_printf(buf, len, &off, &full, "agent %s\n", running ? "running" : "stopped");
	status_printf(buf, len, &off, &full, "agent_error %d\n", err);
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		status_last(buf, len, &off, &full, "last_send_to_slot", i, &last_send[i]);
		status_last(buf, len, &off, &full, "last_recv_from_slot", i, &last_recv[i]);
	}

	return full ? -ENOSPC : (int)off;
}
