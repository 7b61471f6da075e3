/*
 * net.c: reliable, ordered request/response messaging between mounts and the server.
 *
 * A connection (struct net_conn) is a protocol state that outlives the TCP sockets under it.
 * The client side has one connection per mount for its whole life, across reconnects and
 * server failovers.  The server side has one accepted connection per client socket, but a
 * reconnecting client's new connection takes over the old connection's protocol state, so
 * from the protocol's point of view the lineage of a client's accepted connections is one
 * connection too.
 *
 * Every message a connection queues is numbered with the next send seq, and every request
 * also gets the next request id.  Messages wait on the send queue, a single sender thread per
 * socket writes them in order (copying a batch of frames into one buffer per write), and
 * moves them to the resend queue.  When the socket is not usable, or its greeting has not
 * been accepted yet, new messages go straight to the resend queue.  The resend queue is kept
 * sorted by seq, and after the next accepted greeting it is spliced back onto the send queue,
 * behind the greeting reply, so the peer sees the messages again in their original order.
 *
 * What frees a message differs for the two kinds:
 *
 *  - A request stays queued until its response arrives (matched by id and cmd in a red-black
 *    tree, which stays fast with tens of thousands of requests in flight).  Its callback
 *    then runs exactly once.
 *
 *  - A response stays queued until the peer acknowledges it.  Every frame carries the
 *    sender's recv_seq, stamped when the frame is written: the seq of the last message it
 *    received.  That is a cumulative acknowledgement; the receiver frees every response with
 *    a seq at or below it.  Unacknowledged responses are kept on their own list in seq order
 *    so acknowledging is a walk from its head.
 *
 * A receiver drops every (non-greeting) frame whose seq is not above its recv_seq: it is a
 * resent copy of a message it has already processed.  So across any number of socket breaks
 * between the same two peers every message is processed exactly once and in order.
 *
 * A new server is a different story.  When the client's greeting reply carries a server_term
 * other than the one it last accepted, the old server's memory is gone: the client resets
 * its recv_seq (the new server numbers its messages from scratch), drops its queued responses
 * (they answer requests of a server that no longer exists) and resends every request that has
 * no response yet.  Requests are replayed because the caller is still waiting for an answer
 * and only a server can give one; responses are not because nobody on the new server is
 * waiting for them.  Server request handlers must therefore be idempotent.  A response to an
 * old server's request that a handler produces later is dropped as well: each connection
 * remembers which received requests still await an answer, and forgets them on a new server.
 * The server numbers the requests it sends from a base taken from its term, so a stale answer
 * could not match one of a newer server's requests either.
 *
 * The greeting is out of band.  It is always the first frame in each direction on a socket,
 * it never moves recv_seq and it is never resent.  Its reply goes first on the send queue
 * of an accepted socket, ahead of everything spliced from the resend queue.  On the server
 * the greeting runs the connection rules: a reconnecting client whose older connection still
 * exists (live, which is broken first, or parked in its reconnect window) takes over that
 * connection's seqs, ids, queues, pending requests and unacknowledged responses, and the old
 * connection disappears without client_down.  A client that reconnects to the same server
 * whose state is gone (it timed out and is being fenced) is refused.
 *
 * An accepted socket that breaks leaves its connection parked for the reconnect window
 * (unless the server is stopping, the client said farewell, or it never greeted).  Messages
 * for a parked rid are queued on it.  When the window passes, the server is told to fence
 * the rid and the connection is destroyed.
 *
 * Threads: each socket has a receive thread and a send thread.  Response callbacks and
 * inline request handlers run on the receive thread in arrival order; other handlers run on
 * a worker pool (one per client connection, one per server) that grows on demand up to a
 * limit, so blocking handlers do not starve each other.  A handler answers with
 * net_response() whenever it likes.  An accepted connection waits for its handlers to return
 * before it parks, so a parked connection has nothing running against it and can be migrated
 * or destroyed at once.  Later answers to a server connection go through
 * net_server_response(), which finds the rid's current connection.
 *
 * Locking: the server mutex protects its connection list and each connection's rid and park
 * state; each connection's mutex protects its protocol and socket state.  The server mutex
 * is taken before connection mutexes, the pool mutex is innermost, and no callback into the
 * upper layers is made with any of them held.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/sys/tree.h>

#include "net/net.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(net_send_messages);
COUNTER_DEFINE(net_send_bytes);
COUNTER_DEFINE(net_recv_messages);
COUNTER_DEFINE(net_recv_bytes);
COUNTER_DEFINE(net_recv_dropped_duplicate);
COUNTER_DEFINE(net_recv_invalid_message);
COUNTER_DEFINE(net_dropped_response);
COUNTER_DEFINE(net_unknown_request);
COUNTER_DEFINE(net_send_error);
COUNTER_DEFINE(net_recv_error);

#define NET_CONNECT_DELAY_MS     100
#define NET_CONNECT_TIMEOUT_MS   1000
#define NET_KEEPALIVE_DEFAULT_MS 24000
#define NET_KEEPALIVE_MIN_MS     3001
#define NET_KEEPCNT              3
#define NET_LISTEN_BACKLOG       255
#define NET_SEND_BATCH           16
#define NET_HDR_LEN              ((unsigned int)sizeof(struct scoutfs_net_header))
#define NET_FRAME_MAX            (NET_HDR_LEN + SCOUTFS_NET_MAX_DATA_LEN)
#define NET_RECV_BUF             (64 * 1024)
#define NET_CLIENT_POOL_THREADS  16
#define NET_SERVER_POOL_THREADS  64
#define NET_ADDR_STR             24

/* ---------------------------------------------------------------------------------------- */
/* messages */

struct net_msg;
TAILQ_HEAD(msg_list, net_msg);

struct net_msg {
	TAILQ_ENTRY(net_msg) qent; /* on send_q or resend_q, see q */
	struct msg_list *q;
	TAILQ_ENTRY(net_msg) rent; /* responses: on unacked, in seq order */
	RB_ENTRY(net_msg) node;    /* requests: in requests by (id, cmd) */
	net_response_fn resp_fn;
	void *resp_arg;
	bool greeting;    /* out of band: never resent, freed once written */
	bool break_after; /* break the socket once this is written */
	u64 seq;
	u64 id;
	u8 cmd;
	u8 flags;
	u8 error;
	u16 data_len;
	u8 data[] __attribute__((aligned(8)));
};

/* a received request that still has to be answered */
struct net_awaiting {
	RB_ENTRY(net_awaiting) node;
	u64 id;
	u8 cmd;
};

static int id_cmd_cmp(u64 a_id, u8 a_cmd, u64 b_id, u8 b_cmd)
{
	if (a_id != b_id)
		return a_id < b_id ? -1 : 1;
	return (int)a_cmd - (int)b_cmd;
}

static int msg_cmp(struct net_msg *a, struct net_msg *b)
{
	return id_cmd_cmp(a->id, a->cmd, b->id, b->cmd);
}

static int awaiting_cmp(struct net_awaiting *a, struct net_awaiting *b)
{
	return id_cmd_cmp(a->id, a->cmd, b->id, b->cmd);
}

/* libbsd leaves __unused undefined (glibc has struct members of that name) */
#define __unused __attribute__((__unused__))
RB_HEAD(req_tree, net_msg);
RB_GENERATE_STATIC(req_tree, net_msg, node, msg_cmp)
RB_HEAD(await_tree, net_awaiting);
RB_GENERATE_STATIC(await_tree, net_awaiting, node, awaiting_cmp)
#undef __unused

static bool msg_is_response(struct net_msg *msg)
{
	return msg->flags & SCOUTFS_NET_FLAG_RESPONSE;
}

static struct net_msg *msg_alloc(u8 cmd, u8 flags, const void *data, unsigned int data_len)
{
	struct net_msg *msg;

	msg = calloc(1, sizeof(*msg) + data_len);
	if (!msg)
		return NULL;
	msg->cmd = cmd;
	msg->flags = flags;
	msg->data_len = data_len;
	if (data_len)
		memcpy(msg->data, data, data_len);
	return msg;
}

/* ---------------------------------------------------------------------------------------- */
/* the request handler pool */

struct net_work;
TAILQ_HEAD(work_list, net_work);

struct net_work {
	TAILQ_ENTRY(net_work) entry;
	struct net_conn *conn;
	u64 sock_gen;
	u64 id;
	u8 cmd;
	u16 data_len;
	/* handlers read payloads as little-endian structs: keep them 8-byte aligned */
	u8 data[] __attribute__((aligned(8)));
};

struct net_pool {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	struct work_list works;
	int nr_queued;
	int nr_idle;
	int nr_threads;
	int max_threads;
	bool stopping;
	char name[16];
	pthread_t threads[];
};

/* ---------------------------------------------------------------------------------------- */
/* connections and the server */

enum conn_role {
	ROLE_CLIENT,
	ROLE_ACCEPTED,
};

struct net_conn {
	enum conn_role role;
	struct net_server *srv; /* accepted */
	const struct net_client_ops *cops;
	void *arg;
	struct net_handler handlers[SCOUTFS_NET_CMD_UNKNOWN];
	struct net_pool *pool;

	pthread_mutex_t mutex;
	pthread_cond_t cond;      /* socket state, greeting, handler counts */
	pthread_cond_t send_cond; /* the sender's wakeups */

	/* protocol state: survives sockets and migrates between accepted conns */
	u64 next_send_seq;
	u64 next_send_id;
	u64 recv_seq;
	struct msg_list send_q;
	struct msg_list resend_q;
	struct msg_list unacked;
	struct req_tree requests;
	struct await_tree awaiting;
	unsigned int nr_send;
	unsigned int nr_resend;
	unsigned int nr_unacked;
	unsigned int nr_requests;
	unsigned int nr_awaiting;
	bool saw_farewell;
	int nr_handlers;

	/* the current socket */
	int fd;
	u64 sock_gen;
	bool established;
	bool broken;
	bool valid_greeting;
	bool saw_greeting; /* receive thread only */
	u64 greeting_id;   /* client: id of the greeting request on this socket */
	pthread_t send_thread;
	pthread_t recv_thread;
	struct sockaddr_in local;
	struct sockaddr_in peer;
	unsigned int keepalive_ms;

	/* client */
	pthread_t connect_thread;
	bool connect_started;
	bool connect_joined;
	bool stopping; /* shutdown asked for: no more reconnecting */
	bool stopped;  /* pending requests were aborted; new ones fail */
	bool have_term;
	u64 server_term;
	u64 reconn_delay_ms;

	/* accepted, under srv->mutex */
	TAILQ_ENTRY(net_conn) srv_entry;
	bool unlinked; /* off the server's list: being migrated or destroyed */
	bool parked;   /* in the reconnect window */
	u64 park_deadline_ms;
	u64 rid; /* nonzero once greeted (also read under conn->mutex) */
	u64 peer_greeting_id;
};

TAILQ_HEAD(conn_list, net_conn);

struct net_server {
	const struct net_server_ops *ops;
	void *arg;
	struct net_handler handlers[SCOUTFS_NET_CMD_UNKNOWN];
	u64 term;
	u64 reconnect_timeout_ms;
	unsigned int keepalive_ms;
	struct net_pool *pool;

	int listen_fd;
	int wake_pipe[2];
	struct sockaddr_in addr;
	pthread_t listen_thread;
	pthread_t reaper_thread;
	bool listen_started;
	bool reaper_started;

	pthread_mutex_t mutex;
	pthread_cond_t cond; /* conns parked or gone, threads exited, reaper wakeups */
	struct conn_list conns;
	int nr_conn_threads;
	bool shutting_down;
	bool reaper_stop;
};

static void addr_str(const struct sockaddr_in *sin, char *buf)
{
	char ip[INET_ADDRSTRLEN];

	if (!inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, NET_ADDR_STR, "%s:%u", ip, ntohs(sin->sin_port));
}

static void cond_init_mono(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

/* ---------------------------------------------------------------------------------------- */
/* wire errors */

static const int wire_errnos[SCOUTFS_NET_ERR_UNKNOWN] = {
	[SCOUTFS_NET_ERR_NONE] = 0,          [SCOUTFS_NET_ERR_ENOENT] = ENOENT,
	[SCOUTFS_NET_ERR_ENOMEM] = ENOMEM,   [SCOUTFS_NET_ERR_EIO] = EIO,
	[SCOUTFS_NET_ERR_ENOSPC] = ENOSPC,   [SCOUTFS_NET_ERR_EINVAL] = EINVAL,
	[SCOUTFS_NET_ERR_ENOLINK] = ENOLINK, [SCOUTFS_NET_ERR_ESTALE] = ESTALE,
	[SCOUTFS_NET_ERR_EEXIST] = EEXIST,
};

u8 net_err_to_wire(int error)
{
	static atomic_bool warned;
	int err = error < 0 ? -error : error;
	u8 i;

	for (i = 0; i < SCOUTFS_NET_ERR_UNKNOWN; i++) {
		if (wire_errnos[i] == err)
			return i;
	}
	if (!atomic_exchange(&warned, true))
		log_warn("net: error %d has no wire code, sending EINVAL", error);
	return SCOUTFS_NET_ERR_EINVAL;
}

int net_err_from_wire(u8 wire)
{
	if (wire >= SCOUTFS_NET_ERR_UNKNOWN)
		return -EINVAL;
	return -wire_errnos[wire];
}

/* ---------------------------------------------------------------------------------------- */
/* queues, all under conn->mutex */

static void q_del(struct net_conn *conn, struct net_msg *msg)
{
	if (!msg->q)
		return;
	TAILQ_REMOVE(msg->q, msg, qent);
	if (msg->q == &conn->send_q)
		conn->nr_send--;
	else
		conn->nr_resend--;
	msg->q = NULL;
}

static void send_q_add(struct net_conn *conn, struct net_msg *msg)
{
	TAILQ_INSERT_TAIL(&conn->send_q, msg, qent);
	msg->q = &conn->send_q;
	conn->nr_send++;
}

/* messages nearly always arrive in seq order, so look for the spot from the tail */
static void resend_q_add(struct net_conn *conn, struct net_msg *msg)
{
	struct net_msg *pos;

	TAILQ_FOREACH_REVERSE(pos, &conn->resend_q, msg_list, qent)
	{
		if (pos->seq < msg->seq)
			break;
	}
	if (pos)
		TAILQ_INSERT_AFTER(&conn->resend_q, pos, msg, qent);
	else
		TAILQ_INSERT_HEAD(&conn->resend_q, msg, qent);
	msg->q = &conn->resend_q;
	conn->nr_resend++;
}

/* forget a message entirely: off its queue and out of the tree or unacked list */
static void msg_unlink(struct net_conn *conn, struct net_msg *msg)
{
	q_del(conn, msg);
	if (msg->greeting)
		return;
	if (msg_is_response(msg)) {
		TAILQ_REMOVE(&conn->unacked, msg, rent);
		conn->nr_unacked--;
	} else {
		req_tree_RB_REMOVE(&conn->requests, msg);
		conn->nr_requests--;
	}
}

static bool can_send(struct net_conn *conn, struct net_msg *msg)
{
	return conn->established && !conn->broken && (conn->valid_greeting || msg->greeting);
}

/* number a new message and put it on the right queue */
static void queue_msg(struct net_conn *conn, struct net_msg *msg)
{
	msg->seq = conn->next_send_seq++;
	if (!msg_is_response(msg)) {
		msg->id = conn->next_send_id++;
		if (!msg->greeting) {
			req_tree_RB_INSERT(&conn->requests, msg);
			conn->nr_requests++;
		}
	} else if (!msg->greeting) {
		TAILQ_INSERT_TAIL(&conn->unacked, msg, rent);
		conn->nr_unacked++;
	}

	if (can_send(conn, msg)) {
		send_q_add(conn, msg);
		pthread_cond_signal(&conn->send_cond);
	} else if (!msg->greeting) {
		resend_q_add(conn, msg);
	} else {
		free(msg);
	}
}

/* the socket went away: everything unsent waits to be resent, greetings are dropped */
static void requeue_unsent(struct net_conn *conn)
{
	struct net_msg *msg;

	while ((msg = TAILQ_FIRST(&conn->send_q))) {
		q_del(conn, msg);
		if (msg->greeting)
			free(msg);
		else
			resend_q_add(conn, msg);
	}
}

/* a greeting was accepted: send everything waiting, in seq order, after the greeting */
static void splice_resend(struct net_conn *conn)
{
	struct net_msg *msg;

	while ((msg = TAILQ_FIRST(&conn->resend_q))) {
		q_del(conn, msg);
		send_q_add(conn, msg);
	}
	pthread_cond_signal(&conn->send_cond);
}

/* the peer has received everything up to ack: its responses can go */
static void free_acked(struct net_conn *conn, u64 ack)
{
	struct net_msg *msg;

	while ((msg = TAILQ_FIRST(&conn->unacked)) && msg->seq <= ack) {
		msg_unlink(conn, msg);
		free(msg);
	}
}

static void free_responses(struct net_conn *conn)
{
	struct net_msg *msg;

	while ((msg = TAILQ_FIRST(&conn->unacked))) {
		msg_unlink(conn, msg);
		free(msg);
	}
}

static void free_awaiting(struct net_conn *conn)
{
	struct net_awaiting *aw;

	while ((aw = RB_MIN(await_tree, &conn->awaiting))) {
		await_tree_RB_REMOVE(&conn->awaiting, aw);
		free(aw);
	}
	conn->nr_awaiting = 0;
}

static void sock_break_locked(struct net_conn *conn)
{
	if (!conn->broken) {
		conn->broken = true;
		if (conn->fd >= 0)
			shutdown(conn->fd, SHUT_RDWR);
	}
	pthread_cond_broadcast(&conn->send_cond);
	pthread_cond_broadcast(&conn->cond);
}

static void sock_break(struct net_conn *conn)
{
	pthread_mutex_lock(&conn->mutex);
	sock_break_locked(conn);
	pthread_mutex_unlock(&conn->mutex);
}

/*
 * Take every pending request off the connection and complete them with -ECONNABORTED.
 * Queued responses and awaited answers are simply forgotten.
 */
static void abort_all(struct net_conn *conn)
{
	struct msg_list aborted = TAILQ_HEAD_INITIALIZER(aborted);
	struct net_msg *msg;

	pthread_mutex_lock(&conn->mutex);
	conn->stopped = true;
	while ((msg = RB_MIN(req_tree, &conn->requests))) {
		msg_unlink(conn, msg);
		TAILQ_INSERT_TAIL(&aborted, msg, qent);
	}
	free_responses(conn);
	requeue_unsent(conn);
	while ((msg = TAILQ_FIRST(&conn->resend_q))) {
		q_del(conn, msg);
		free(msg);
	}
	free_awaiting(conn);
	pthread_cond_broadcast(&conn->cond);
	pthread_mutex_unlock(&conn->mutex);

	while ((msg = TAILQ_FIRST(&aborted))) {
		TAILQ_REMOVE(&aborted, msg, qent);
		if (msg->resp_fn)
			msg->resp_fn(conn, NULL, 0, -ECONNABORTED, msg->resp_arg);
		free(msg);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* the pool */

static void run_work(struct net_work *w);

static void *pool_thread(void *arg)
{
	struct net_pool *pool = arg;
	struct net_work *w;

	thread_set_name(pool->name);
	pthread_mutex_lock(&pool->mutex);
	for (;;) {
		w = TAILQ_FIRST(&pool->works);
		if (!w) {
			if (pool->stopping)
				break;
			pool->nr_idle++;
			pthread_cond_wait(&pool->cond, &pool->mutex);
			pool->nr_idle--;
			continue;
		}
		TAILQ_REMOVE(&pool->works, w, entry);
		pool->nr_queued--;
		pthread_mutex_unlock(&pool->mutex);
		run_work(w);
		pthread_mutex_lock(&pool->mutex);
	}
	pthread_mutex_unlock(&pool->mutex);
	return NULL;
}

static struct net_pool *pool_create(const char *name, int max_threads)
{
	struct net_pool *pool;

	pool = calloc(1, sizeof(*pool) + max_threads * sizeof(pthread_t));
	if (!pool)
		return NULL;
	pthread_mutex_init(&pool->mutex, NULL);
	pthread_cond_init(&pool->cond, NULL);
	TAILQ_INIT(&pool->works);
	pool->max_threads = max_threads;
	snprintf(pool->name, sizeof(pool->name), "%s", name);
	/* one thread up front so that queued work always has someone to run it */
	if (pthread_create(&pool->threads[0], NULL, pool_thread, pool) != 0) {
		pthread_cond_destroy(&pool->cond);
		pthread_mutex_destroy(&pool->mutex);
		free(pool);
		return NULL;
	}
	pool->nr_threads = 1;
	return pool;
}

/* queue work, adding a thread when every existing one is busy */
static void pool_queue(struct net_pool *pool, struct net_work *w)
{
	pthread_mutex_lock(&pool->mutex);
	TAILQ_INSERT_TAIL(&pool->works, w, entry);
	pool->nr_queued++;
	if (pool->nr_queued > pool->nr_idle && pool->nr_threads < pool->max_threads &&
	    pthread_create(&pool->threads[pool->nr_threads], NULL, pool_thread, pool) == 0)
		pool->nr_threads++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->mutex);
}

/* run everything queued, then stop the threads */
static void pool_destroy(struct net_pool *pool)
{
	int i;

	if (!pool)
		return;
	pthread_mutex_lock(&pool->mutex);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->mutex);
	for (i = 0; i < pool->nr_threads; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->mutex);
	free(pool);
}

static void run_work(struct net_work *w)
{
	struct net_conn *conn = w->conn;
	int ret;

	ret = conn->handlers[w->cmd].fn(conn, w->cmd, w->id, w->data, w->data_len);

	pthread_mutex_lock(&conn->mutex);
	if (ret < 0 && conn->sock_gen == w->sock_gen && !conn->broken) {
		log_warn("net: request handler for cmd %u id %llu returned %d, breaking socket",
			 w->cmd, (unsigned long long)w->id, ret);
		sock_break_locked(conn);
	}
	free(w);
	/* the last touch of conn: teardown may free it as soon as this is seen */
	if (--conn->nr_handlers == 0)
		pthread_cond_broadcast(&conn->cond);
	pthread_mutex_unlock(&conn->mutex);
}

/* ---------------------------------------------------------------------------------------- */
/* sockets */

static int set_sock_opts(int fd, unsigned int keepalive_ms)
{
	struct timeval tv = { 0 };
	int idle = (int)(keepalive_ms / 1000) - 3;
	int cnt = NET_KEEPCNT;
	int intvl = 1;
	int one = 1;
	unsigned int user = keepalive_ms;

	if (idle < 1)
		idle = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static int write_all(int fd, const u8 *buf, size_t len)
{
	ssize_t ret;

	while (len > 0) {
		ret = send(fd, buf, len, MSG_NOSIGNAL);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += ret;
		len -= ret;
	}
	return 0;
}

static void encode_frame(u8 *buf, struct net_msg *msg, u64 recv_seq)
{
	struct scoutfs_net_header nh = {
		.seq = cpu_to_le64(msg->seq),
		.recv_seq = cpu_to_le64(recv_seq),
		.id = cpu_to_le64(msg->id),
		.data_len = cpu_to_le16(msg->data_len),
		.cmd = msg->cmd,
		.flags = msg->flags,
		.error = msg->error,
	};

	memcpy(buf, &nh, sizeof(nh));
	memcpy(buf + sizeof(nh), msg->data, msg->data_len);
}

/*
 * The one sender of a socket.  A batch of frames is copied out under the lock (stamping
 * recv_seq as they go) and the messages move to the resend queue right away, so nothing the
 * sender writes can be freed under it and a break never loses a message.
 */
static void *send_thread(void *arg)
{
	struct net_conn *conn = arg;
	struct net_msg *msg;
	bool brk;
	size_t len;
	int nr;
	int ret;
	u8 *buf;

	thread_set_name("net-send");
	buf = malloc(NET_SEND_BATCH * NET_FRAME_MAX);

	pthread_mutex_lock(&conn->mutex);
	if (!buf) {
		sock_break_locked(conn);
		goto out;
	}
	for (;;) {
		while (!conn->broken && TAILQ_EMPTY(&conn->send_q))
			pthread_cond_wait(&conn->send_cond, &conn->mutex);
		if (conn->broken)
			break;

		len = 0;
		nr = 0;
		brk = false;
		while (nr < NET_SEND_BATCH && (msg = TAILQ_FIRST(&conn->send_q))) {
			encode_frame(buf + len, msg, conn->recv_seq);
			len += NET_HDR_LEN + msg->data_len;
			nr++;
			q_del(conn, msg);
			if (msg->greeting) {
				brk |= msg->break_after;
				free(msg);
			} else {
				resend_q_add(conn, msg);
			}
		}
		pthread_mutex_unlock(&conn->mutex);

		ret = write_all(conn->fd, buf, len);

		pthread_mutex_lock(&conn->mutex);
		if (ret < 0) {
			if (!conn->broken) {
				counter_inc(net_send_error);
				log_debug("net: send error %d", ret);
			}
			sock_break_locked(conn);
			break;
		}
		counter_add(net_send_messages, nr);
		counter_add(net_send_bytes, len);
		if (brk)
			sock_break_locked(conn);
	}
out:
	pthread_mutex_unlock(&conn->mutex);
	free(buf);
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* receiving */

struct frame {
	u64 seq;
	u64 recv_seq;
	u64 id;
	u16 data_len;
	u8 cmd;
	u8 flags;
	u8 error;
	bool pad_zero;
};

static void decode_frame(const u8 *buf, struct frame *f)
{
	struct scoutfs_net_header nh;

	memcpy(&nh, buf, sizeof(nh));
	f->seq = le64_to_cpu(nh.seq);
	f->recv_seq = le64_to_cpu(nh.recv_seq);
	f->id = le64_to_cpu(nh.id);
	f->data_len = le16_to_cpu(nh.data_len);
	f->cmd = nh.cmd;
	f->flags = nh.flags;
	f->error = nh.error;
	f->pad_zero = !nh.__pad[0] && !nh.__pad[1] && !nh.__pad[2];
}

/* NULL if the header is acceptable on this socket, else why not */
static const char *invalid_frame(struct net_conn *conn, const struct frame *f)
{
	bool resp = f->flags & SCOUTFS_NET_FLAG_RESPONSE;

	if (f->seq == 0 || f->id == 0)
		return "zero seq or id";
	if (f->cmd >= SCOUTFS_NET_CMD_UNKNOWN)
		return "unknown command";
	if (f->flags & SCOUTFS_NET_FLAGS_UNKNOWN)
		return "unknown flags";
	if (f->error >= SCOUTFS_NET_ERR_UNKNOWN)
		return "unknown error";
	if (f->data_len > SCOUTFS_NET_MAX_DATA_LEN)
		return "oversized payload";
	if (!f->pad_zero)
		return "nonzero padding";
	if (!resp && f->error)
		return "error on a request";
	if (resp && f->error && f->data_len)
		return "payload on an error response";

	if (f->cmd == SCOUTFS_NET_CMD_GREETING) {
		if (conn->saw_greeting)
			return "second greeting";
		if (conn->role == ROLE_ACCEPTED && resp)
			return "greeting response on an accepted socket";
		if (conn->role == ROLE_CLIENT && !resp)
			return "greeting request on a client socket";
		if (!f->error && f->data_len != sizeof(struct scoutfs_net_greeting))
			return "greeting of the wrong size";
	} else if (!conn->saw_greeting) {
		return "message before the greeting";
	}
	return NULL;
}

static int client_greeting_reply(struct net_conn *conn, const struct frame *f, const u8 *data);
static int server_greeting(struct net_conn *conn, const struct frame *f, const u8 *data);

static int recv_request(struct net_conn *conn, const struct frame *f, const u8 *data)
{
	const struct net_handler *h = &conn->handlers[f->cmd];
	struct net_awaiting *aw;
	struct net_work *w = NULL;
	int ret;

	aw = calloc(1, sizeof(*aw));
	if (h->fn && !h->inline_recv)
		w = malloc(sizeof(*w) + f->data_len);
	if (!aw || (h->fn && !h->inline_recv && !w)) {
		pthread_mutex_unlock(&conn->mutex);
		free(aw);
		free(w);
		return -ENOMEM;
	}
	aw->id = f->id;
	aw->cmd = f->cmd;
	if (await_tree_RB_INSERT(&conn->awaiting, aw)) {
		pthread_mutex_unlock(&conn->mutex);
		free(aw);
		free(w);
		counter_inc(net_recv_invalid_message);
		log_warn("net: request cmd %u id %llu is already being processed", f->cmd,
			 (unsigned long long)f->id);
		return -EINVAL;
	}
	conn->nr_awaiting++;

	if (!h->fn) {
		pthread_mutex_unlock(&conn->mutex);
		counter_inc(net_unknown_request);
		log_warn("net: no handler for request cmd %u", f->cmd);
		return net_response(conn, f->cmd, f->id, -EINVAL, NULL, 0);
	}

	if (h->inline_recv) {
		pthread_mutex_unlock(&conn->mutex);
		ret = h->fn(conn, f->cmd, f->id, data, f->data_len);
		if (ret < 0)
			log_warn("net: inline handler for cmd %u returned %d", f->cmd, ret);
		return ret < 0 ? ret : 0;
	}

	w->conn = conn;
	w->sock_gen = conn->sock_gen;
	w->id = f->id;
	w->cmd = f->cmd;
	w->data_len = f->data_len;
	memcpy(w->data, data, f->data_len);
	conn->nr_handlers++;
	pthread_mutex_unlock(&conn->mutex);
	pool_queue(conn->pool, w);
	return 0;
}

/* one complete, valid frame */
static int recv_frame(struct net_conn *conn, const struct frame *f, const u8 *data)
{
	struct net_msg *req;

	counter_inc(net_recv_messages);

	if (f->cmd == SCOUTFS_NET_CMD_GREETING) {
		if (conn->role == ROLE_CLIENT)
			return client_greeting_reply(conn, f, data);
		return server_greeting(conn, f, data);
	}

	pthread_mutex_lock(&conn->mutex);
	if (conn->broken) {
		pthread_mutex_unlock(&conn->mutex);
		return -ECONNRESET;
	}
	/* an accepted socket whose greeting failed only waits for its error reply to go out */
	if (!conn->valid_greeting) {
		pthread_mutex_unlock(&conn->mutex);
		return 0;
	}

	free_acked(conn, f->recv_seq);

	if (f->seq <= conn->recv_seq) {
		pthread_mutex_unlock(&conn->mutex);
		counter_inc(net_recv_dropped_duplicate);
		return 0;
	}
	conn->recv_seq = f->seq;

	if (!(f->flags & SCOUTFS_NET_FLAG_RESPONSE))
		return recv_request(conn, f, data); /* unlocks */

	req = req_tree_RB_FIND(&conn->requests, &(struct net_msg){ .id = f->id, .cmd = f->cmd });
	if (!req) {
		pthread_mutex_unlock(&conn->mutex);
		counter_inc(net_dropped_response);
		return 0;
	}
	msg_unlink(conn, req);
	pthread_mutex_unlock(&conn->mutex);

	if (req->resp_fn)
		req->resp_fn(conn, f->error ? NULL : data, f->error ? 0 : f->data_len,
			     net_err_from_wire(f->error), req->resp_arg);
	free(req);
	return 0;
}

/*
 * The receive loop: read as much as the socket has, process every complete frame, keep the
 * partial tail.  A header is checked as soon as it is complete, so a bad length never makes
 * us wait for (or buffer) a payload.
 */
static void recv_loop(struct net_conn *conn)
{
	u64 aligned[(SCOUTFS_NET_MAX_DATA_LEN + 7) / 8];
	char peer[NET_ADDR_STR];
	const char *why;
	struct frame f;
	size_t have = 0;
	size_t off;
	ssize_t n;
	u8 *data;
	u8 *buf;
	int ret;

	buf = malloc(NET_RECV_BUF);
	if (!buf)
		return;

	for (;;) {
		n = recv(conn->fd, buf + have, NET_RECV_BUF - have, 0);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			pthread_mutex_lock(&conn->mutex);
			if (!conn->broken) {
				counter_inc(net_recv_error);
				log_debug("net: recv error %d", -errno);
			}
			pthread_mutex_unlock(&conn->mutex);
			break;
		}
		counter_add(net_recv_bytes, n);
		have += n;

		for (off = 0; have - off >= NET_HDR_LEN; off += NET_HDR_LEN + f.data_len) {
			decode_frame(buf + off, &f);
			why = invalid_frame(conn, &f);
			if (why) {
				counter_inc(net_recv_invalid_message);
				addr_str(&conn->peer, peer);
				log_warn("net: invalid message from %s: %s", peer, why);
				goto out;
			}
			if (have - off < NET_HDR_LEN + f.data_len)
				break;
			if (f.cmd == SCOUTFS_NET_CMD_GREETING)
				conn->saw_greeting = true;
			/* payloads are read as little-endian structs: give them 8-byte alignment */
			data = buf + off + NET_HDR_LEN;
			if (((uintptr_t)data & 7) && f.data_len) {
				memcpy(aligned, data, f.data_len);
				data = (u8 *)aligned;
			}
			ret = recv_frame(conn, &f, data);
			if (ret < 0)
				goto out;
		}
		if (off) {
			memmove(buf, buf + off, have - off);
			have -= off;
		}
	}
out:
	free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* both sides */

int net_submit_request(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
		       net_response_fn resp_fn, void *resp_arg)
{
	struct net_msg *msg;
	int ret = 0;

	if (cmd == SCOUTFS_NET_CMD_GREETING || cmd >= SCOUTFS_NET_CMD_UNKNOWN ||
	    data_len > SCOUTFS_NET_MAX_DATA_LEN)
		return -EINVAL;
	msg = msg_alloc(cmd, 0, data, data_len);
	if (!msg)
		return -ENOMEM;
	msg->resp_fn = resp_fn;
	msg->resp_arg = resp_arg;

	pthread_mutex_lock(&conn->mutex);
	if (conn->stopped) {
		ret = conn->role == ROLE_CLIENT ? -ECONNABORTED : -ENOTCONN;
		free(msg);
	} else {
		queue_msg(conn, msg);
	}
	pthread_mutex_unlock(&conn->mutex);
	return ret;
}

struct sync_ctx {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool done;
	int error;
	void *resp;
	unsigned int resp_len;
	bool var;
};

static void sync_response(struct net_conn *conn, const void *data, unsigned int data_len, int error,
			  void *arg)
{
	struct sync_ctx *ctx = arg;

	if (!error) {
		if (ctx->var ? data_len > ctx->resp_len : data_len != ctx->resp_len) {
			error = -EMSGSIZE;
		} else {
			if (data_len)
				memcpy(ctx->resp, data, data_len);
			ctx->resp_len = data_len;
		}
	}
	pthread_mutex_lock(&ctx->mutex);
	ctx->error = error;
	ctx->done = true;
	pthread_cond_signal(&ctx->cond);
	pthread_mutex_unlock(&ctx->mutex);
}

static int sync_request(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
			void *resp, unsigned int *resp_len, bool var)
{
	struct sync_ctx ctx = {
		.resp = resp,
		.resp_len = *resp_len,
		.var = var,
	};
	int ret;

	pthread_mutex_init(&ctx.mutex, NULL);
	pthread_cond_init(&ctx.cond, NULL);

	ret = net_submit_request(conn, cmd, data, data_len, sync_response, &ctx);
	if (ret == 0) {
		pthread_mutex_lock(&ctx.mutex);
		while (!ctx.done)
			pthread_cond_wait(&ctx.cond, &ctx.mutex);
		pthread_mutex_unlock(&ctx.mutex);
		ret = ctx.error;
		if (ret == 0)
			*resp_len = ctx.resp_len;
	}

	pthread_cond_destroy(&ctx.cond);
	pthread_mutex_destroy(&ctx.mutex);
	return ret;
}

int net_sync_request(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
		     void *resp, unsigned int resp_len)
{
	return sync_request(conn, cmd, data, data_len, resp, &resp_len, false);
}

int net_sync_request_var(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
			 void *resp, unsigned int *resp_len)
{
	return sync_request(conn, cmd, data, data_len, resp, resp_len, true);
}

int net_response(struct net_conn *conn, u8 cmd, u64 id, int error, const void *data,
		 unsigned int data_len)
{
	struct net_awaiting *aw;
	struct net_msg *msg;

	if (error)
		data_len = 0;
	if (cmd >= SCOUTFS_NET_CMD_UNKNOWN || data_len > SCOUTFS_NET_MAX_DATA_LEN)
		return -EINVAL;
	msg = msg_alloc(cmd, SCOUTFS_NET_FLAG_RESPONSE, data, data_len);
	if (!msg)
		return -ENOMEM;
	msg->id = id;
	msg->error = net_err_to_wire(error);

	pthread_mutex_lock(&conn->mutex);
	aw = await_tree_RB_FIND(&conn->awaiting, &(struct net_awaiting){ .id = id, .cmd = cmd });
	if (!aw || conn->stopped) {
		/* answered already, or asked by a server that is gone: nobody wants this */
		pthread_mutex_unlock(&conn->mutex);
		log_debug("net: dropping response cmd %u id %llu nobody awaits", cmd,
			  (unsigned long long)id);
		free(msg);
		return 0;
	}
	await_tree_RB_REMOVE(&conn->awaiting, aw);
	conn->nr_awaiting--;
	free(aw);
	queue_msg(conn, msg);
	pthread_mutex_unlock(&conn->mutex);
	return 0;
}

u64 net_conn_rid(struct net_conn *conn)
{
	u64 rid;

	pthread_mutex_lock(&conn->mutex);
	rid = conn->rid;
	pthread_mutex_unlock(&conn->mutex);
	return rid;
}

void net_conn_peer(struct net_conn *conn, struct sockaddr_in *sin)
{
	pthread_mutex_lock(&conn->mutex);
	*sin = conn->peer;
	pthread_mutex_unlock(&conn->mutex);
}

void *net_conn_arg(struct net_conn *conn)
{
	return conn->arg;
}

void net_conn_set_saw_farewell(struct net_conn *conn)
{
	pthread_mutex_lock(&conn->mutex);
	conn->saw_farewell = true;
	pthread_mutex_unlock(&conn->mutex);
}

int net_describe(struct net_conn *conn, char *buf, unsigned int len)
{
	char peer[NET_ADDR_STR];
	int ret;

	pthread_mutex_lock(&conn->mutex);
	addr_str(&conn->peer, peer);
	ret = snprintf(buf, len,
		       "%s rid %016llx peer %s%s%s%s%s seq %llu id %llu recv_seq %llu send %u "
		       "resend %u requests %u unacked %u awaiting %u handlers %d",
		       conn->role == ROLE_CLIENT ? "client" : "accepted",
		       (unsigned long long)conn->rid, peer,
		       conn->established && !conn->broken ? " established" : "",
		       conn->valid_greeting ? " greeted" : "", conn->parked ? " parked" : "",
		       conn->stopped ? " stopped" : "", (unsigned long long)conn->next_send_seq,
		       (unsigned long long)conn->next_send_id, (unsigned long long)conn->recv_seq,
		       conn->nr_send, conn->nr_resend, conn->nr_requests, conn->nr_unacked,
		       conn->nr_awaiting, conn->nr_handlers);
	pthread_mutex_unlock(&conn->mutex);
	return ret;
}

static struct net_conn *conn_alloc(enum conn_role role, const struct net_handler *handlers,
				   void *arg)
{
	struct net_conn *conn;

	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return NULL;
	conn->role = role;
	conn->arg = arg;
	if (handlers)
		memcpy(conn->handlers, handlers, sizeof(conn->handlers));
	pthread_mutex_init(&conn->mutex, NULL);
	cond_init_mono(&conn->cond);
	pthread_cond_init(&conn->send_cond, NULL);
	conn->next_send_seq = 1;
	conn->next_send_id = 1;
	TAILQ_INIT(&conn->send_q);
	TAILQ_INIT(&conn->resend_q);
	TAILQ_INIT(&conn->unacked);
	RB_INIT(&conn->requests);
	RB_INIT(&conn->awaiting);
	conn->fd = -1;
	conn->keepalive_ms = NET_KEEPALIVE_DEFAULT_MS;
	conn->reconn_delay_ms = NET_CONNECT_DELAY_MS;
	return conn;
}

static void conn_free(struct net_conn *conn)
{
	pthread_cond_destroy(&conn->send_cond);
	pthread_cond_destroy(&conn->cond);
	pthread_mutex_destroy(&conn->mutex);
	free(conn);
}

/* a new socket: fd is connected and options are set; start its threads */
static int sock_start(struct net_conn *conn, int fd, bool detach_recv, void *(*recv_fn)(void *))
{
	pthread_attr_t attr;
	int ret;

	pthread_mutex_lock(&conn->mutex);
	conn->fd = fd;
	conn->sock_gen++;
	conn->established = true;
	conn->broken = false;
	conn->valid_greeting = false;
	conn->saw_greeting = false;
	conn->greeting_id = 0;
	pthread_mutex_unlock(&conn->mutex);

	ret = pthread_create(&conn->send_thread, NULL, send_thread, conn);
	if (ret)
		return -ret;

	pthread_attr_init(&attr);
	if (detach_recv)
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&conn->recv_thread, &attr, recv_fn, conn);
	pthread_attr_destroy(&attr);
	if (ret) {
		sock_break(conn);
		pthread_join(conn->send_thread, NULL);
		return -ret;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* the client */

static int client_greeting_reply(struct net_conn *conn, const struct frame *f, const u8 *data)
{
	struct scoutfs_net_greeting gr;
	bool new_server;
	u64 greeting_id;
	u64 term;
	int ret;

	pthread_mutex_lock(&conn->mutex);
	greeting_id = conn->greeting_id;
	new_server = !conn->have_term;
	term = conn->server_term;
	pthread_mutex_unlock(&conn->mutex);

	if (f->id != greeting_id) {
		counter_inc(net_recv_invalid_message);
		log_warn("net: greeting reply id %llu does not match request id %llu",
			 (unsigned long long)f->id, (unsigned long long)greeting_id);
		return -EINVAL;
	}
	if (f->error) {
		ret = net_err_from_wire(f->error);
		log_warn("net: server refused our greeting: %d", ret);
		return ret;
	}

	memcpy(&gr, data, sizeof(gr));
	new_server |= le64_to_cpu(gr.server_term) != term;
	ret = conn->cops->greeting_reply ? conn->cops->greeting_reply(conn->arg, &gr, new_server)
					 : 0;
	if (ret) {
		log_warn("net: rejected the greeting reply of server term %llu: %d",
			 (unsigned long long)le64_to_cpu(gr.server_term), ret);
		return ret < 0 ? ret : -EINVAL;
	}

	pthread_mutex_lock(&conn->mutex);
	if (conn->broken || conn->stopped) {
		pthread_mutex_unlock(&conn->mutex);
		return -ECONNRESET;
	}
	if (new_server) {
		conn->recv_seq = 0;
		free_responses(conn);
		free_awaiting(conn);
	}
	conn->server_term = le64_to_cpu(gr.server_term);
	conn->have_term = true;
	conn->valid_greeting = true;
	conn->reconn_delay_ms = 0;
	splice_resend(conn);
	pthread_cond_broadcast(&conn->cond);
	pthread_mutex_unlock(&conn->mutex);

	log_info("net: greeted by server term %llu%s", (unsigned long long)conn->server_term,
		 new_server ? " (new server)" : "");
	return 0;
}

static void *client_recv_thread(void *arg)
{
	struct net_conn *conn = arg;

	thread_set_name("net-recv");
	recv_loop(conn);
	sock_break(conn);
	return NULL;
}

static int connect_socket(const struct sockaddr_in *sin, unsigned int keepalive_ms,
			  struct sockaddr_in *local)
{
	struct timeval tv = { .tv_sec = NET_CONNECT_TIMEOUT_MS / 1000,
			      .tv_usec = (NET_CONNECT_TIMEOUT_MS % 1000) * 1000 };
	socklen_t len = sizeof(*local);
	int ret;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* the send timeout bounds a blocking connect */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		ret = -errno;
		goto out;
	}
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0) {
		ret = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		goto out;
	}
	ret = set_sock_opts(fd, keepalive_ms);
	if (ret < 0)
		goto out;
	if (getsockname(fd, (struct sockaddr *)local, &len) < 0) {
		ret = -errno;
		goto out;
	}
	ret = fd;
out:
	if (ret < 0)
		close(fd);
	return ret;
}

/* one socket's life: connect, greet, wait for it to break, tear it down */
static void client_one_socket(struct net_conn *conn)
{
	const struct net_client_ops *ops = conn->cops;
	struct scoutfs_net_greeting gr;
	char local[NET_ADDR_STR];
	char peer[NET_ADDR_STR];
	struct sockaddr_in sin;
	struct sockaddr_in lsin;
	unsigned int keepalive_ms;
	struct net_msg *msg;
	int ret;
	int fd;

	memset(&sin, 0, sizeof(sin));
	ret = ops->find_server(conn->arg, &sin);
	if (ret)
		return;

	pthread_mutex_lock(&conn->mutex);
	keepalive_ms = conn->keepalive_ms;
	pthread_mutex_unlock(&conn->mutex);
	fd = connect_socket(&sin, keepalive_ms, &lsin);
	if (fd < 0) {
		addr_str(&sin, peer);
		log_debug("net: connecting to %s failed: %d", peer, fd);
		return;
	}

	pthread_mutex_lock(&conn->mutex);
	conn->peer = sin;
	conn->local = lsin;
	pthread_mutex_unlock(&conn->mutex);
	addr_str(&lsin, local);
	addr_str(&sin, peer);

	ret = sock_start(conn, fd, false, client_recv_thread);
	if (ret < 0) {
		pthread_mutex_lock(&conn->mutex);
		conn->established = false;
		conn->fd = -1;
		pthread_mutex_unlock(&conn->mutex);
		close(fd);
		return;
	}
	log_info("net: client connected %s -> %s (tcp keepalive timeout %u ms)", local, peer,
		 keepalive_ms);

	memset(&gr, 0, sizeof(gr));
	ops->build_greeting(conn->arg, &gr);
	msg = msg_alloc(SCOUTFS_NET_CMD_GREETING, 0, &gr, sizeof(gr));

	pthread_mutex_lock(&conn->mutex);
	if (msg) {
		msg->greeting = true;
		/* the id queue_msg gives it; a greeting for a dead socket is freed at once */
		conn->greeting_id = conn->next_send_id;
		queue_msg(conn, msg);
	} else {
		sock_break_locked(conn);
	}
	while (!conn->broken && !conn->stopping)
		pthread_cond_wait(&conn->cond, &conn->mutex);
	sock_break_locked(conn);
	pthread_mutex_unlock(&conn->mutex);

	pthread_join(conn->recv_thread, NULL);
	pthread_join(conn->send_thread, NULL);

	pthread_mutex_lock(&conn->mutex);
	requeue_unsent(conn);
	conn->established = false;
	conn->valid_greeting = false;
	conn->fd = -1;
	pthread_mutex_unlock(&conn->mutex);
	close(fd);

	log_info("net: client disconnected %s -> %s", local, peer);
	if (ops->disconnected)
		ops->disconnected(conn->arg);
}

static void *connect_thread(void *arg)
{
	struct net_conn *conn = arg;
	const struct net_client_ops *ops = conn->cops;
	struct timespec ts;
	u64 delay;

	thread_set_name("net-connect");
	pthread_mutex_lock(&conn->mutex);
	while (!conn->stopping) {
		pthread_mutex_unlock(&conn->mutex);

		if (ops->should_stop_reconnecting && ops->should_stop_reconnecting(conn->arg)) {
			log_info("net: client stops reconnecting");
			pthread_mutex_lock(&conn->mutex);
			conn->stopping = true;
			pthread_mutex_unlock(&conn->mutex);
			abort_all(conn);
			pthread_mutex_lock(&conn->mutex);
			break;
		}

		client_one_socket(conn);

		pthread_mutex_lock(&conn->mutex);
		delay = conn->reconn_delay_ms;
		conn->reconn_delay_ms = NET_CONNECT_DELAY_MS;
		if (delay) {
			ts = mono_deadline_ms(delay);
			while (!conn->stopping &&
			       pthread_cond_timedwait(&conn->cond, &conn->mutex, &ts) == 0)
				;
		}
	}
	pthread_mutex_unlock(&conn->mutex);
	return NULL;
}

int net_client_create(const struct net_client_ops *ops, const struct net_handler *handlers,
		      void *arg, struct net_conn **ret)
{
	struct net_conn *conn;

	*ret = NULL;
	if (!ops || !ops->find_server || !ops->build_greeting)
		return -EINVAL;
	conn = conn_alloc(ROLE_CLIENT, handlers, arg);
	if (!conn)
		return -ENOMEM;
	conn->cops = ops;
	conn->pool = pool_create("net-client-w", NET_CLIENT_POOL_THREADS);
	if (!conn->pool) {
		conn_free(conn);
		return -ENOMEM;
	}
	*ret = conn;
	return 0;
}

int net_client_set_keepalive_timeout_ms(struct net_conn *conn, unsigned int ms)
{
	if (ms < NET_KEEPALIVE_MIN_MS)
		return -EINVAL;
	pthread_mutex_lock(&conn->mutex);
	conn->keepalive_ms = ms;
	pthread_mutex_unlock(&conn->mutex);
	return 0;
}

void net_client_start(struct net_conn *conn)
{
	pthread_mutex_lock(&conn->mutex);
	if (!conn->connect_started && !conn->stopping) {
		if (pthread_create(&conn->connect_thread, NULL, connect_thread, conn) == 0)
			conn->connect_started = true;
		else
			log_err("net: could not start the connect thread");
	}
	pthread_mutex_unlock(&conn->mutex);
}

void net_client_shutdown(struct net_conn *conn)
{
	bool join;

	pthread_mutex_lock(&conn->mutex);
	conn->stopping = true;
	if (conn->established)
		sock_break_locked(conn);
	pthread_cond_broadcast(&conn->cond);
	join = conn->connect_started && !conn->connect_joined;
	conn->connect_joined = true;
	pthread_mutex_unlock(&conn->mutex);

	if (join)
		pthread_join(conn->connect_thread, NULL);
	abort_all(conn);
}

void net_client_destroy(struct net_conn *conn)
{
	if (!conn)
		return;
	net_client_shutdown(conn);
	/* runs whatever handlers are still queued; their answers are dropped */
	pool_destroy(conn->pool);
	abort_all(conn);
	conn_free(conn);
}

bool net_client_connected(struct net_conn *conn)
{
	bool connected;

	pthread_mutex_lock(&conn->mutex);
	connected = conn->established && !conn->broken && conn->valid_greeting;
	pthread_mutex_unlock(&conn->mutex);
	return connected;
}

void net_client_break_socket(struct net_conn *conn)
{
	pthread_mutex_lock(&conn->mutex);
	if (conn->established)
		sock_break_locked(conn);
	pthread_mutex_unlock(&conn->mutex);
}

/* ---------------------------------------------------------------------------------------- */
/* the server */

/* the rid's current connection (live or parked), under srv->mutex */
static struct net_conn *find_rid(struct net_server *srv, u64 rid)
{
	struct net_conn *conn;

	if (rid == 0)
		return NULL;
	TAILQ_FOREACH(conn, &srv->conns, srv_entry)
	{
		if (conn->rid == rid)
			return conn;
	}
	return NULL;
}

static void srv_unlink(struct net_server *srv, struct net_conn *conn)
{
	TAILQ_REMOVE(&srv->conns, conn, srv_entry);
	conn->unlinked = true;
	pthread_cond_broadcast(&srv->cond);
}

/*
 * Free an accepted connection that is off the server's list and has no threads or
 * handlers.  Requests it had sent complete with -ECONNABORTED; client_down is called when
 * the rid's lineage ends here (not when its state was migrated to a newer connection).
 */
static void accepted_destroy(struct net_conn *conn, bool client_down)
{
	struct net_server *srv = conn->srv;
	u64 rid = conn->rid;

	abort_all(conn);
	conn_free(conn);
	if (client_down && rid && srv->ops->client_down)
		srv->ops->client_down(srv->arg, rid);
}

/*
 * Move the protocol state of an old (parked) connection of a reconnecting rid into the new
 * one.  The new connection has only its greeting reply queued.  Under srv->mutex.
 */
static void migrate(struct net_conn *old, struct net_conn *conn)
{
	struct net_awaiting *aw;
	struct net_msg *msg;

	pthread_mutex_lock(&old->mutex);
	pthread_mutex_lock(&conn->mutex);

	conn->next_send_seq = old->next_send_seq;
	conn->next_send_id = old->next_send_id;
	conn->recv_seq = old->recv_seq;
	conn->saw_farewell |= old->saw_farewell;

	requeue_unsent(old);
	while ((msg = TAILQ_FIRST(&old->resend_q))) {
		q_del(old, msg);
		resend_q_add(conn, msg);
	}
	while ((msg = RB_MIN(req_tree, &old->requests))) {
		req_tree_RB_REMOVE(&old->requests, msg);
		req_tree_RB_INSERT(&conn->requests, msg);
		conn->nr_requests++;
	}
	old->nr_requests = 0;
	while ((msg = TAILQ_FIRST(&old->unacked))) {
		TAILQ_REMOVE(&old->unacked, msg, rent);
		TAILQ_INSERT_TAIL(&conn->unacked, msg, rent);
		conn->nr_unacked++;
	}
	old->nr_unacked = 0;
	while ((aw = RB_MIN(await_tree, &old->awaiting))) {
		await_tree_RB_REMOVE(&old->awaiting, aw);
		if (await_tree_RB_INSERT(&conn->awaiting, aw))
			free(aw);
		else
			conn->nr_awaiting++;
	}
	old->nr_awaiting = 0;

	pthread_mutex_unlock(&conn->mutex);
	pthread_mutex_unlock(&old->mutex);
}

static int queue_greeting_reply(struct net_conn *conn, u64 id, int error,
				const struct scoutfs_net_greeting *reply)
{
	struct net_msg *msg;

	msg = msg_alloc(SCOUTFS_NET_CMD_GREETING, SCOUTFS_NET_FLAG_RESPONSE, error ? NULL : reply,
			error ? 0 : sizeof(*reply));
	if (!msg)
		return -ENOMEM;
	msg->greeting = true;
	msg->id = id;
	msg->error = net_err_to_wire(error);
	msg->break_after = error != 0;

	pthread_mutex_lock(&conn->mutex);
	queue_msg(conn, msg);
	pthread_mutex_unlock(&conn->mutex);
	return 0;
}

/*
 * A greeting request on an accepted socket, on its receive thread.  The server validates it,
 * then the connection rules decide whether this socket continues an existing lineage
 * (migrate), starts a new one (client_up) or is refused:
 *
 *  - An older connection of the same rid exists: it is broken if it is still live, and once
 *    parked its state moves into this one.  This is also done for a greeting with
 *    server_term 0: that client lost our first greeting reply, so it has sent us nothing but
 *    greetings, and taking over keeps client_up/client_down paired and spares a live client
 *    the reconnect timeout of its orphaned connection.
 *  - A newer connection of the rid exists (a greeting with a higher request id): this socket
 *    is a stale one and is dropped.
 *  - The client names this server's term but its state is gone (timed out, being fenced) and
 *    it is not saying farewell: dropped without a reply, it keeps retrying.
 *  - Otherwise this is the rid's first connection to this server: client_up.
 */
static int server_greeting(struct net_conn *conn, const struct frame *f, const u8 *data)
{
	struct net_server *srv = conn->srv;
	struct scoutfs_net_greeting reply;
	struct scoutfs_net_greeting gr;
	struct net_conn *old = NULL;
	struct net_conn *pos;
	char peer[NET_ADDR_STR];
	bool reconnecting;
	bool first_contact;
	bool farewell;
	u64 rid;
	int ret;

	addr_str(&conn->peer, peer);
	memcpy(&gr, data, sizeof(gr));
	rid = le64_to_cpu(gr.rid);
	reconnecting = le64_to_cpu(gr.server_term) != 0;
	first_contact = le64_to_cpu(gr.server_term) != srv->term;
	farewell = le64_to_cpu(gr.flags) & SCOUTFS_NET_GREETING_FLAG_FAREWELL;

	reply = gr;
	ret = srv->ops->greeting ? srv->ops->greeting(srv->arg, conn, &gr, &reply) : 0;
	if (ret == 0 && rid == 0)
		ret = -EINVAL;
	if (ret) {
		ret = ret < 0 ? ret : -ret;
		log_warn("net: greeting from %s refused: %d", peer, ret);
		/* answer with the error, the sender breaks the socket once it is written */
		return queue_greeting_reply(conn, f->id, ret, NULL);
	}
	reply.server_term = cpu_to_le64(srv->term);

	pthread_mutex_lock(&srv->mutex);
	for (;;) {
		if (srv->shutting_down) {
			ret = -ESHUTDOWN;
			goto unlock;
		}
		old = NULL;
		TAILQ_FOREACH(pos, &srv->conns, srv_entry)
		{
			if (pos != conn && pos->rid == rid) {
				old = pos;
				break;
			}
		}
		if (!old)
			break;
		if (old->peer_greeting_id > f->id) {
			log_warn("net: stale greeting from rid %016llx at %s, a newer one exists",
				 (unsigned long long)rid, peer);
			ret = -ESTALE;
			goto unlock;
		}
		if (old->parked)
			break;
		/* the old socket's break has not been noticed yet: break it, wait for it to park */
		sock_break(old);
		pthread_cond_wait(&srv->cond, &srv->mutex);
	}

	if (!old && reconnecting && !first_contact && !farewell) {
		log_warn("net: rid %016llx at %s reconnected but its connection state is gone, "
			 "refusing it",
			 (unsigned long long)rid, peer);
		ret = -ENOTCONN;
		goto unlock;
	}

	/* the reply goes first, ahead of everything the old connection had queued */
	ret = queue_greeting_reply(conn, f->id, 0, &reply);
	if (ret)
		goto unlock;

	if (old) {
		srv_unlink(srv, old);
		migrate(old, conn);
	}

	pthread_mutex_lock(&conn->mutex);
	conn->rid = rid;
	conn->peer_greeting_id = f->id;
	conn->valid_greeting = true;
	splice_resend(conn);
	pthread_mutex_unlock(&conn->mutex);
	ret = 0;
unlock:
	pthread_mutex_unlock(&srv->mutex);

	if (ret == 0) {
		log_info("net: rid %016llx at %s greeted%s", (unsigned long long)rid, peer,
			 old ? ", took over its previous connection" : "");
		if (old)
			accepted_destroy(old, false);
		else if (srv->ops->client_up)
			srv->ops->client_up(srv->arg, rid);
	}
	return ret;
}

/*
 * An accepted socket is done.  Runs at the end of its (detached) receive thread: stop the
 * sender, wait for the handlers, then park the connection for its reconnect window or
 * destroy it.
 */
static void accepted_teardown(struct net_conn *conn)
{
	struct net_server *srv = conn->srv;
	char local[NET_ADDR_STR];
	char peer[NET_ADDR_STR];
	bool farewell;
	bool destroy;
	u64 rid;
	int fd;

	sock_break(conn);
	pthread_join(conn->send_thread, NULL);

	pthread_mutex_lock(&conn->mutex);
	while (conn->nr_handlers > 0)
		pthread_cond_wait(&conn->cond, &conn->mutex);
	requeue_unsent(conn);
	conn->established = false;
	conn->valid_greeting = false;
	fd = conn->fd;
	conn->fd = -1;
	farewell = conn->saw_farewell;
	addr_str(&conn->local, local);
	addr_str(&conn->peer, peer);
	pthread_mutex_unlock(&conn->mutex);
	close(fd);

	pthread_mutex_lock(&srv->mutex);
	rid = conn->rid;
	destroy = srv->shutting_down || farewell || rid == 0;
	if (destroy) {
		srv_unlink(srv, conn);
	} else {
		conn->parked = true;
		conn->park_deadline_ms = now_mono_ms() + srv->reconnect_timeout_ms;
		pthread_cond_broadcast(&srv->cond);
	}
	pthread_mutex_unlock(&srv->mutex);

	/* once parked, a reconnecting client may take the connection over and free it */
	if (destroy) {
		log_info("net: server closing %s -> %s rid %016llx", peer, local,
			 (unsigned long long)rid);
		accepted_destroy(conn, true);
	} else {
		log_info("net: server lost %s -> %s rid %016llx, waiting %llu ms for it to "
			 "reconnect",
			 peer, local, (unsigned long long)rid,
			 (unsigned long long)srv->reconnect_timeout_ms);
	}
}

static void *accepted_recv_thread(void *arg)
{
	struct net_conn *conn = arg;
	struct net_server *srv = conn->srv;

	thread_set_name("net-srv-recv");
	recv_loop(conn);
	accepted_teardown(conn);

	pthread_mutex_lock(&srv->mutex);
	srv->nr_conn_threads--;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->mutex);
	return NULL;
}

static void accept_one(struct net_server *srv, int fd, const struct sockaddr_in *peer)
{
	char local[NET_ADDR_STR];
	char pstr[NET_ADDR_STR];
	struct sockaddr_in lsin;
	socklen_t len = sizeof(lsin);
	struct net_conn *conn;
	unsigned int keepalive_ms;
	int ret;

	addr_str(peer, pstr);
	conn = conn_alloc(ROLE_ACCEPTED, srv->handlers, srv->arg);
	if (!conn) {
		close(fd);
		return;
	}
	conn->srv = srv;
	conn->pool = srv->pool;
	conn->peer = *peer;
	/* requests this server sends are numbered from its term: see the top of the file */
	conn->next_send_id = ((srv->term & 0xffffffffULL) << 32) + 1;

	pthread_mutex_lock(&srv->mutex);
	keepalive_ms = srv->keepalive_ms;
	pthread_mutex_unlock(&srv->mutex);
	ret = set_sock_opts(fd, keepalive_ms);
	if (ret == 0 && getsockname(fd, (struct sockaddr *)&lsin, &len) < 0)
		ret = -errno;
	if (ret < 0) {
		log_warn("net: setting up accepted socket from %s failed: %d", pstr, ret);
		close(fd);
		conn_free(conn);
		return;
	}
	conn->local = lsin;

	pthread_mutex_lock(&srv->mutex);
	TAILQ_INSERT_TAIL(&srv->conns, conn, srv_entry);
	srv->nr_conn_threads++;
	pthread_mutex_unlock(&srv->mutex);

	addr_str(&lsin, local);
	log_info("net: server accepted %s -> %s (tcp keepalive timeout %u ms)", pstr, local,
		 keepalive_ms);

	ret = sock_start(conn, fd, true, accepted_recv_thread);
	if (ret < 0) {
		log_warn("net: starting threads for %s failed: %d", pstr, ret);
		pthread_mutex_lock(&srv->mutex);
		srv_unlink(srv, conn);
		srv->nr_conn_threads--;
		pthread_mutex_unlock(&srv->mutex);
		close(fd);
		conn_free(conn);
	}
}

static void *listen_thread(void *arg)
{
	struct net_server *srv = arg;
	struct sockaddr_in peer;
	struct pollfd pfd[2];
	socklen_t len;
	int err;
	int fd;

	thread_set_name("net-listen");
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = srv->listen_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = srv->wake_pipe[0], .events = POLLIN };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto error;
		}
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;

		len = sizeof(peer);
		fd = accept4(srv->listen_fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EINTR:
			case EAGAIN:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:
			case ENETDOWN:
			case ENOPROTOOPT:
			case EHOSTDOWN:
			case ENONET:
			case EHOSTUNREACH:
			case EOPNOTSUPP:
			case ENETUNREACH:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				log_warn("net: accept failed: %d, retrying", -errno);
				usleep(100 * 1000);
				continue;
			default:
				err = -errno;
				goto error;
			}
		}
		accept_one(srv, fd, &peer);
	}
	return NULL;

error:
	log_err("net: listening socket failed: %d", err);
	if (srv->ops->listener_error)
		srv->ops->listener_error(srv->arg, err);
	return NULL;
}

/* destroys parked connections whose reconnect window has passed */
static void *reaper_thread(void *arg)
{
	struct net_server *srv = arg;
	struct net_conn *expired;
	struct net_conn *conn;
	char peer[NET_ADDR_STR];
	struct sockaddr_in sin;
	struct timespec ts;
	u64 earliest;
	u64 now;

	thread_set_name("net-reaper");
	pthread_mutex_lock(&srv->mutex);
	while (!srv->reaper_stop) {
		now = now_mono_ms();
		expired = NULL;
		earliest = UINT64_MAX;
		TAILQ_FOREACH(conn, &srv->conns, srv_entry)
		{
			if (!conn->parked)
				continue;
			if (conn->park_deadline_ms <= now) {
				expired = conn;
				break;
			}
			if (conn->park_deadline_ms < earliest)
				earliest = conn->park_deadline_ms;
		}

		if (!expired) {
			if (earliest == UINT64_MAX) {
				pthread_cond_wait(&srv->cond, &srv->mutex);
			} else {
				ts = mono_deadline_ms(earliest - now);
				pthread_cond_timedwait(&srv->cond, &srv->mutex, &ts);
			}
			continue;
		}

		srv_unlink(srv, expired);
		pthread_mutex_unlock(&srv->mutex);

		sin = expired->peer;
		addr_str(&sin, peer);
		log_warn("net: client rid %016llx at %s reconnect timed out",
			 (unsigned long long)expired->rid, peer);
		if (expired->rid && srv->ops->reconnect_timeout)
			srv->ops->reconnect_timeout(srv->arg, expired->rid, &sin);
		accepted_destroy(expired, true);

		pthread_mutex_lock(&srv->mutex);
	}
	pthread_mutex_unlock(&srv->mutex);
	return NULL;
}

int net_server_create(const struct sockaddr_in *sin, u64 server_term,
		      const struct net_server_ops *ops, const struct net_handler *handlers,
		      void *arg, u64 reconnect_timeout_ms, struct net_server **ret)
{
	struct net_server *srv;
	socklen_t len;
	int one = 1;
	int err;

	*ret = NULL;
	if (!ops)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->ops = ops;
	srv->arg = arg;
	if (handlers)
		memcpy(srv->handlers, handlers, sizeof(srv->handlers));
	srv->term = server_term;
	srv->reconnect_timeout_ms = reconnect_timeout_ms;
	srv->keepalive_ms = NET_KEEPALIVE_DEFAULT_MS;
	srv->listen_fd = -1;
	srv->wake_pipe[0] = -1;
	srv->wake_pipe[1] = -1;
	pthread_mutex_init(&srv->mutex, NULL);
	cond_init_mono(&srv->cond);
	TAILQ_INIT(&srv->conns);

	srv->pool = pool_create("net-srv-w", NET_SERVER_POOL_THREADS);
	if (!srv->pool) {
		err = -ENOMEM;
		goto out;
	}
	if (pipe2(srv->wake_pipe, O_CLOEXEC) < 0) {
		err = -errno;
		goto out;
	}

	srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0) {
		err = -errno;
		goto out;
	}
	len = sizeof(srv->addr);
	if (setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(srv->listen_fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0 ||
	    listen(srv->listen_fd, NET_LISTEN_BACKLOG) < 0 ||
	    getsockname(srv->listen_fd, (struct sockaddr *)&srv->addr, &len) < 0) {
		err = -errno;
		goto out;
	}

	err = -pthread_create(&srv->reaper_thread, NULL, reaper_thread, srv);
	if (err)
		goto out;
	srv->reaper_started = true;
	err = -pthread_create(&srv->listen_thread, NULL, listen_thread, srv);
	if (err)
		goto out;
	srv->listen_started = true;
	err = 0;
out:
	if (err) {
		net_server_destroy(srv);
		return err;
	}
	*ret = srv;
	return 0;
}

void net_server_local_addr(struct net_server *srv, struct sockaddr_in *sin)
{
	*sin = srv->addr;
}

int net_server_set_keepalive_timeout_ms(struct net_server *srv, unsigned int ms)
{
	if (ms < NET_KEEPALIVE_MIN_MS)
		return -EINVAL;
	pthread_mutex_lock(&srv->mutex);
	srv->keepalive_ms = ms;
	pthread_mutex_unlock(&srv->mutex);
	return 0;
}

void net_server_destroy(struct net_server *srv)
{
	struct net_conn *conn;
	char c = 0;

	if (!srv)
		return;

	pthread_mutex_lock(&srv->mutex);
	srv->shutting_down = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->mutex);

	if (srv->listen_started) {
		if (write(srv->wake_pipe[1], &c, 1) < 0)
			log_err("net: could not wake the listener: %d", -errno);
		pthread_join(srv->listen_thread, NULL);
	}
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);

	/* break every live socket; their teardown destroys the connections */
	pthread_mutex_lock(&srv->mutex);
	TAILQ_FOREACH(conn, &srv->conns, srv_entry)
	{
		if (!conn->parked)
			sock_break(conn);
	}
	while (srv->nr_conn_threads > 0)
		pthread_cond_wait(&srv->cond, &srv->mutex);
	srv->reaper_stop = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->mutex);

	if (srv->reaper_started)
		pthread_join(srv->reaper_thread, NULL);

	/* the parked are all that is left */
	while ((conn = TAILQ_FIRST(&srv->conns))) {
		srv_unlink(srv, conn);
		accepted_destroy(conn, true);
	}

	pool_destroy(srv->pool);
	if (srv->wake_pipe[0] >= 0)
		close(srv->wake_pipe[0]);
	if (srv->wake_pipe[1] >= 0)
		close(srv->wake_pipe[1]);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->mutex);
	free(srv);
}

int net_server_submit_request(struct net_server *srv, u64 rid, u8 cmd, const void *data,
			      unsigned int data_len, net_response_fn resp_fn, void *resp_arg)
{
	struct net_conn *conn;
	int ret;

	pthread_mutex_lock(&srv->mutex);
	conn = find_rid(srv, rid);
	if (conn)
		ret = net_submit_request(conn, cmd, data, data_len, resp_fn, resp_arg);
	else
		ret = -ENOTCONN;
	pthread_mutex_unlock(&srv->mutex);
	return ret;
}

void net_server_submit_request_all(struct net_server *srv, u8 cmd, const void *data,
				   unsigned int data_len, u64 except_rid)
{
	struct net_conn *conn;

	pthread_mutex_lock(&srv->mutex);
	TAILQ_FOREACH(conn, &srv->conns, srv_entry)
	{
		if (conn->rid && conn->rid != except_rid)
			net_submit_request(conn, cmd, data, data_len, NULL, NULL);
	}
	pthread_mutex_unlock(&srv->mutex);
}

int net_server_response(struct net_server *srv, u64 rid, u8 cmd, u64 id, int error,
			const void *data, unsigned int data_len)
{
	struct net_conn *conn;
	int ret;

	pthread_mutex_lock(&srv->mutex);
	conn = find_rid(srv, rid);
	if (conn)
		ret = net_response(conn, cmd, id, error, data, data_len);
	else
		ret = -ENOTCONN;
	pthread_mutex_unlock(&srv->mutex);
	return ret;
}

int net_server_set_saw_farewell(struct net_server *srv, u64 rid)
{
	struct net_conn *conn;
	int ret = -ENOTCONN;

	pthread_mutex_lock(&srv->mutex);
	conn = find_rid(srv, rid);
	if (conn) {
		net_conn_set_saw_farewell(conn);
		ret = 0;
	}
	pthread_mutex_unlock(&srv->mutex);
	return ret;
}

int net_server_nr_clients(struct net_server *srv)
{
	struct net_conn *conn;
	int nr = 0;

	pthread_mutex_lock(&srv->mutex);
	TAILQ_FOREACH(conn, &srv->conns, srv_entry)
	{
		if (conn->rid)
			nr++;
	}
	pthread_mutex_unlock(&srv->mutex);
	return nr;
}
