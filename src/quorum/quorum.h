/*
 * quorum.h: electing the server.
 *
 * Owns: the quorum agent of a mount that holds a quorum slot -- raft-style leader election
 * (without a log) over UDP datagrams between the configured slots, the slot's quorum block
 * on the metadata device (BEGIN, TERM, ELECT, FENCE, STOP, END events), starting the server
 * when this mount wins and stopping it when it loses; and the readers of quorum blocks every
 * mount and tool uses: finding the current server, listing earlier leaders that must be
 * fenced, and deciding whether a volume is in use.
 *
 * The agent never writes another slot's block, persists a term before acting on it, and
 * after a forced shutdown sends nothing and writes nothing.  The server itself is started
 * and stopped through callbacks, so this layer knows nothing of what the server does.
 */
#ifndef SCOUTFS_QUORUM_H
#define SCOUTFS_QUORUM_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/format.h"

struct dev;
struct quorum;

enum quorum_server_status {
	QUORUM_SERVER_DOWN = 0,
	QUORUM_SERVER_STARTING,
	QUORUM_SERVER_UP,
	QUORUM_SERVER_STOPPING,
};

struct quorum_server_ops {
	/*
	 * start the server for term in the background; failures show up as status DOWN.
	 * Once start returns, status must not report DOWN until the server has stopped (set
	 * STARTING before returning): DOWN after a start means the server is gone.
	 */
	void (*start)(void *arg, u64 term);
	/* ask a starting or running server to stop (does not wait) */
	void (*stop)(void *arg);
	enum quorum_server_status (*status)(void *arg);
};

#define QUORUM_HB_TIMEOUT_DEFAULT_MS 10000
#define QUORUM_HB_TIMEOUT_MIN_MS 2000
#define QUORUM_HB_TIMEOUT_MAX_MS 60000

/* number of configured slots and the votes an election needs */
int quorum_nr_slots(const struct scoutfs_quorum_config *qconf);
int quorum_votes_needed(const struct scoutfs_quorum_config *qconf);
bool quorum_slot_present(const struct scoutfs_quorum_config *qconf, int slot);
void quorum_slot_sin(const struct scoutfs_quorum_config *qconf, int slot, struct sockaddr_in *sin);
/*
 * Check a quorum config as a mount does: unicast IPv4, ports 1..65534, no duplicate
 * address:port, at least one slot.  why gets a message for the admin.
 */
int quorum_config_verify(const struct scoutfs_quorum_config *qconf, char *why, size_t why_len);

/*
 * Start the agent for slot_nr.  Binds the slot's UDP address (failure fails the mount),
 * reads every slot's block for the starting term, checks that no other mount is using the
 * slot, writes BEGIN, and runs the election loop in its own thread.
 *
 * hb_timeout_ms (here and in quorum_set_hb_timeout) is used as given: the mount option
 * parser enforces QUORUM_HB_TIMEOUT_MIN_MS..MAX_MS, while tests may go lower to keep
 * failover tests short.  0 means the default; anything below 300 ms (three heartbeat
 * intervals) is raised to 300 ms.
 */
int quorum_start(struct dev *meta_dev, u64 fsid, u64 rid, const struct scoutfs_quorum_config *qconf,
		 int slot_nr, u64 hb_timeout_ms, const struct quorum_server_ops *ops, void *arg,
		 struct quorum **ret);
/* clean shutdown: stop the server and wait, resign, write STOP and END */
void quorum_stop(struct quorum *q);
/* forced shutdown: no more datagrams and no more block writes */
void quorum_shutdown_forced(struct quorum *q);
void quorum_destroy(struct quorum *q);

bool quorum_is_leader(struct quorum *q);
u64 quorum_term(struct quorum *q);
/*
 * The error that made the agent stop participating (a block write failed, the slot's block
 * was claimed by another mount (-EBUSY), the socket broke), or 0 while all is well.
 */
int quorum_error(struct quorum *q);
void quorum_set_hb_timeout(struct quorum *q, u64 ms);
/*
 * The multi-line status text (role, term, votes, last messages per slot): returns its
 * length, or -ENOSPC if it did not fit in len bytes.
 */
int quorum_status(struct quorum *q, char *buf, size_t len);

/* ------------------------------------------------------------------------------------- */
/* readers of quorum blocks, usable without an agent */

/* read and verify one slot's block */
int quorum_read_block(struct dev *meta_dev, u64 fsid, int slot, struct scoutfs_quorum_block *blk);

/*
 * The current server: the slot with the greatest ELECT term whose STOP term is lower.
 * -ENOENT if no server is elected.
 */
int quorum_find_server(struct dev *meta_dev, u64 fsid, const struct scoutfs_quorum_config *qconf,
		       struct sockaddr_in *sin, u64 *term);

/*
 * Leaders that a new leader elected in term must fence before its server writes anything:
 * slots whose ELECT term is above their STOP term, and servers that reached FENCE without a
 * STOP before a later ELECT; skipping terms below the greatest FENCE term (that leader's
 * server fenced everyone before it, but it may itself still be running), terms above our
 * own, and our own rid.  cb is called once per distinct rid (with its greatest term); a
 * non-zero return from cb stops the walk and is returned.
 */
int quorum_for_each_old_leader(struct dev *meta_dev, u64 fsid,
			       const struct scoutfs_quorum_config *qconf, u64 term, u64 our_rid,
			       int (*cb)(void *arg, u64 rid, u64 term, const struct sockaddr_in *sin),
			       void *arg);

/*
 * The rid of slot's previous mount if it did not shut down cleanly (BEGIN written after
 * END), else 0.  Once this mount holds the slot's address, that mount no longer runs.
 */
int quorum_slot_unclean_rid(struct dev *meta_dev, u64 fsid,
			    const struct scoutfs_quorum_config *qconf, int slot, u64 *rid);

/* is any slot's agent running (BEGIN written after END)? */
int quorum_any_agent_running(struct dev *meta_dev, u64 fsid,
			     const struct scoutfs_quorum_config *qconf, bool *running);

#endif
