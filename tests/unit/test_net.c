/*
 * test_net.c: the network layer over real loopback TCP on ephemeral ports.
 *
 * Each test starts a net_server and one or more net clients in this process and drives them
 * through the behaviours upper layers rely on: round trips both ways, ordering, exactly-once
 * processing across socket breaks (resent requests dropped by seq, lost responses resent
 * from the unacknowledged list), replay of requests to a new server term, the server's
 * reconnect window (migration, timeout, farewell), malformed and random input from raw
 * sockets, and shutdown with requests pending.  Set NET_TEST_VERBOSE=1 to see the log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first */
#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

/* the commands the tests use, and what their test handlers do */
#define CMD_ECHO      SCOUTFS_NET_CMD_ALLOC_INODES   /* server: pool, echo key + term */
#define CMD_ERROR     SCOUTFS_NET_CMD_GET_ROOTS      /* server: answers -ENOSPC */
#define CMD_ORDER     SCOUTFS_NET_CMD_GET_LAST_SEQ   /* server: inline, checks order */
#define CMD_HOLD      SCOUTFS_NET_CMD_STATFS         /* server: held, or echo when not holding */
#define CMD_NOHANDLER SCOUTFS_NET_CMD_GET_VOLOPT     /* nobody handles it */
#define CMD_FAREWELL  SCOUTFS_NET_CMD_FAREWELL       /* server: marks saw_farewell */
#define CMD_C_LOCK    SCOUTFS_NET_CMD_LOCK           /* client: inline, checks order */
#define CMD_C_SYNC    SCOUTFS_NET_CMD_SYNC_LOG_TREES /* client: pool, echo, counts keys */
#define CMD_C_HOLD    SCOUTFS_NET_CMD_OPEN_INO_MAP   /* client: held, or echo */

#define MAX_KEYS  32768
#define MAX_HELD  4096
#define TEST_FSID 0x5c0f5

#define WAIT_FOR(expr, ms)                                                                         \
	({                                                                                         \
		uint64_t __end = now_mono_ms() + (ms);                                             \
		bool __ok;                                                                         \
		while (!(__ok = (expr)) && now_mono_ms() < __end)                                  \
			usleep(1000);                                                              \
		__ok;                                                                              \
	})

struct payload {
	u64 key;
	u64 marker;
};

static u64 counter_val(const char *name)
{
	uint64_t v = 0;

	assert_int_equal(counter_read(name, &v), 0);
	return v;
}

static struct sockaddr_in loopback(u16 port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/* ---------------------------------------------------------------------------------------- */
/* a test server */

struct held {
	u64 rid;
	u64 id;
	u64 key;
};

struct tserver {
	struct net_server *srv;
	struct sockaddr_in addr;
	u64 term;
	atomic_int nr_up;
	atomic_int nr_down;
	atomic_int nr_timeout;
	_Atomic u64 last_up;
	_Atomic u64 last_down;
	_Atomic u64 last_timeout;
	_Atomic u64 timeout_ms_at; /* when reconnect_timeout was called */
	atomic_int down_before_timeout;
	atomic_int *proc; /* CMD_ECHO/CMD_HOLD processing count by key */
	atomic_int nr_proc;
	atomic_bool hold;
	pthread_mutex_t hold_mutex;
	struct held held[MAX_HELD];
	atomic_int nr_held;
	/* CMD_ORDER */
	_Atomic u64 order_last; /* two clients race here in test_destroy_in_flight */
	atomic_int order_bad;
	pthread_t order_thread;
	atomic_int nr_order;
};

static int srv_greeting(void *arg, struct net_conn *conn, const struct scoutfs_net_greeting *gr,
			struct scoutfs_net_greeting *reply)
{
	if (le64_to_cpu(gr->fsid) != TEST_FSID)
		return -EINVAL;
	*reply = *gr;
	return 0;
}

static void srv_client_up(void *arg, u64 rid)
{
	struct tserver *ts = arg;

	atomic_store(&ts->last_up, rid);
	atomic_fetch_add(&ts->nr_up, 1);
}

static void srv_client_down(void *arg, u64 rid)
{
	struct tserver *ts = arg;

	if (atomic_load(&ts->nr_timeout) == 0)
		atomic_fetch_add(&ts->down_before_timeout, 1);
	atomic_store(&ts->last_down, rid);
	atomic_fetch_add(&ts->nr_down, 1);
}

static void srv_reconnect_timeout(void *arg, u64 rid, const struct sockaddr_in *peer)
{
	struct tserver *ts = arg;

	assert_int_equal(peer->sin_family, AF_INET);
	atomic_store(&ts->timeout_ms_at, now_mono_ms());
	atomic_store(&ts->last_timeout, rid);
	atomic_fetch_add(&ts->nr_timeout, 1);
}

static const struct net_server_ops srv_ops = {
	.greeting = srv_greeting,
	.client_up = srv_client_up,
	.client_down = srv_client_down,
	.reconnect_timeout = srv_reconnect_timeout,
};

static int h_echo(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct tserver *ts = net_conn_arg(conn);
	struct payload p;

	if (len != sizeof(p))
		return net_response(conn, cmd, id, -EINVAL, NULL, 0);
	memcpy(&p, data, sizeof(p));
	if (p.key < MAX_KEYS)
		atomic_fetch_add(&ts->proc[p.key], 1);
	atomic_fetch_add(&ts->nr_proc, 1);
	p.marker = ts->term;
	return net_response(conn, cmd, id, 0, &p, sizeof(p));
}

static int h_error(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	return net_response(conn, cmd, id, -ENOSPC, data, len);
}

static int h_order(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct tserver *ts = net_conn_arg(conn);
	struct payload p;

	memcpy(&p, data, sizeof(p));
	if (atomic_fetch_add(&ts->nr_order, 1) == 0)
		ts->order_thread = pthread_self();
	else if (!pthread_equal(ts->order_thread, pthread_self()))
		atomic_fetch_add(&ts->order_bad, 1);
	if (p.key != ts->order_last + 1)
		atomic_fetch_add(&ts->order_bad, 1);
	ts->order_last = p.key;
	return net_response(conn, cmd, id, 0, &p, sizeof(p));
}

static int h_hold(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct tserver *ts = net_conn_arg(conn);
	struct payload p;
	int nr;

	if (!atomic_load(&ts->hold))
		return h_echo(conn, cmd, id, data, len);
	memcpy(&p, data, sizeof(p));
	if (p.key < MAX_KEYS)
		atomic_fetch_add(&ts->proc[p.key], 1);
	pthread_mutex_lock(&ts->hold_mutex);
	nr = atomic_load(&ts->nr_held);
	if (nr < MAX_HELD) {
		ts->held[nr] = (struct held){ .rid = net_conn_rid(conn), .id = id, .key = p.key };
		atomic_store(&ts->nr_held, nr + 1);
	}
	pthread_mutex_unlock(&ts->hold_mutex);
	return 0;
}

static int h_farewell(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	net_conn_set_saw_farewell(conn);
	return net_response(conn, cmd, id, 0, NULL, 0);
}

static const struct net_handler srv_handlers[SCOUTFS_NET_CMD_UNKNOWN] = {
	[CMD_ECHO] = { .fn = h_echo },
	[CMD_ERROR] = { .fn = h_error },
	[CMD_ORDER] = { .fn = h_order, .inline_recv = true },
	[CMD_HOLD] = { .fn = h_hold },
	[CMD_FAREWELL] = { .fn = h_farewell },
};

static struct tserver *tserver_start(u16 port, u64 term, u64 reconnect_ms)
{
	struct tserver *ts = calloc(1, sizeof(*ts));
	struct sockaddr_in sin = loopback(port);

	assert_non_null(ts);
	ts->proc = calloc(MAX_KEYS, sizeof(*ts->proc));
	assert_non_null(ts->proc);
	ts->term = term;
	pthread_mutex_init(&ts->hold_mutex, NULL);
	assert_int_equal(
		net_server_create(&sin, term, &srv_ops, srv_handlers, ts, reconnect_ms, &ts->srv),
		0);
	net_server_local_addr(ts->srv, &ts->addr);
	assert_int_not_equal(ts->addr.sin_port, 0);
	return ts;
}

static void tserver_destroy_net(struct tserver *ts)
{
	if (ts->srv)
		net_server_destroy(ts->srv);
	ts->srv = NULL;
}

static void tserver_free(struct tserver *ts)
{
	tserver_destroy_net(ts);
	pthread_mutex_destroy(&ts->hold_mutex);
	free(ts->proc);
	free(ts);
}

/* ---------------------------------------------------------------------------------------- */
/* a test client */

struct tclient {
	struct net_conn *conn;
	struct sockaddr_in addr;
	u64 rid;
	u64 fsid;
	_Atomic u64 term;
	atomic_bool farewell;
	atomic_bool block_connect;
	atomic_bool stop;
	atomic_int nr_greetings;
	atomic_int nr_new_server;
	atomic_int nr_disconnected;
	atomic_int *proc; /* CMD_C_SYNC processing count by key */
	atomic_bool hold;
	_Atomic u64 held_ids[16];
	atomic_int nr_reserved;
	atomic_int nr_held;
	/* CMD_C_LOCK */
	u64 lock_last;
	atomic_int lock_bad;
	atomic_int nr_lock;
	pthread_t lock_thread;
};

static int cl_find_server(void *arg, struct sockaddr_in *sin)
{
	struct tclient *tc = arg;

	if (atomic_load(&tc->block_connect))
		return -ENOENT;
	*sin = tc->addr;
	return 0;
}

static void cl_build_greeting(void *arg, struct scoutfs_net_greeting *gr)
{
	struct tclient *tc = arg;

	gr->fsid = cpu_to_le64(tc->fsid);
	gr->fmt_vers = cpu_to_le64(SCOUTFS_FORMAT_VERSION_DEFAULT);
	gr->server_term = cpu_to_le64(atomic_load(&tc->term));
	gr->rid = cpu_to_le64(tc->rid);
	gr->flags =
		cpu_to_le64(atomic_load(&tc->farewell) ? SCOUTFS_NET_GREETING_FLAG_FAREWELL : 0);
}

static int cl_greeting_reply(void *arg, const struct scoutfs_net_greeting *gr, bool new_server)
{
	struct tclient *tc = arg;

	if (le64_to_cpu(gr->fsid) != tc->fsid)
		return -EINVAL;
	atomic_store(&tc->term, le64_to_cpu(gr->server_term));
	atomic_fetch_add(&tc->nr_greetings, 1);
	if (new_server)
		atomic_fetch_add(&tc->nr_new_server, 1);
	return 0;
}

static bool cl_should_stop(void *arg)
{
	struct tclient *tc = arg;

	return atomic_load(&tc->stop);
}

static void cl_disconnected(void *arg)
{
	struct tclient *tc = arg;

	atomic_fetch_add(&tc->nr_disconnected, 1);
}

static const struct net_client_ops cl_ops = {
	.find_server = cl_find_server,
	.build_greeting = cl_build_greeting,
	.greeting_reply = cl_greeting_reply,
	.should_stop_reconnecting = cl_should_stop,
	.disconnected = cl_disconnected,
};

static int hc_lock(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct tclient *tc = net_conn_arg(conn);
	struct payload p;

	memcpy(&p, data, sizeof(p));
	if (atomic_fetch_add(&tc->nr_lock, 1) == 0)
		tc->lock_thread = pthread_self();
	else if (!pthread_equal(tc->lock_thread, pthread_self()))
		atomic_fetch_add(&tc->lock_bad, 1);
	if (p.key != tc->lock_last + 1)
		atomic_fetch_add(&tc->lock_bad, 1);
	tc->lock_last = p.key;
	return net_response(conn, cmd, id, 0, &p, sizeof(p));
}

static int hc_sync(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct tclient *tc = net_conn_arg(conn);
	struct payload p;

	memcpy(&p, data, sizeof(p));
	if (p.key < MAX_KEYS)
		atomic_fetch_add(&tc->proc[p.key], 1);
	p.marker = tc->rid;
	return net_response(conn, cmd, id, 0, &p, sizeof(p));
}

static int hc_hold(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct tclient *tc = net_conn_arg(conn);
	int nr;

	if (!atomic_load(&tc->hold))
		return hc_sync(conn, cmd, id, data, len);
	/* handlers run concurrently: reserve a slot, fill it, then count it */
	nr = atomic_fetch_add(&tc->nr_reserved, 1);
	if (nr < 16) {
		atomic_store(&tc->held_ids[nr], id);
		atomic_fetch_add(&tc->nr_held, 1);
	}
	return 0;
}

static const struct net_handler cl_handlers[SCOUTFS_NET_CMD_UNKNOWN] = {
	[CMD_C_LOCK] = { .fn = hc_lock, .inline_recv = true },
	[CMD_C_SYNC] = { .fn = hc_sync },
	[CMD_C_HOLD] = { .fn = hc_hold },
};

static struct tclient *tclient_create(const struct sockaddr_in *addr, u64 rid)
{
	struct tclient *tc = calloc(1, sizeof(*tc));

	assert_non_null(tc);
	tc->proc = calloc(MAX_KEYS, sizeof(*tc->proc));
	assert_non_null(tc->proc);
	tc->addr = *addr;
	tc->rid = rid;
	tc->fsid = TEST_FSID;
	assert_int_equal(net_client_create(&cl_ops, cl_handlers, tc, &tc->conn), 0);
	return tc;
}

static struct tclient *tclient_start(const struct sockaddr_in *addr, u64 rid)
{
	struct tclient *tc = tclient_create(addr, rid);

	net_client_start(tc->conn);
	assert_true(WAIT_FOR(net_client_connected(tc->conn), 5000));
	return tc;
}

static void tclient_free(struct tclient *tc)
{
	net_client_destroy(tc->conn);
	free(tc->proc);
	free(tc);
}

/* ---------------------------------------------------------------------------------------- */
/* async requests with a slot each */

struct async;

struct slot {
	struct async *a;
	u64 key;
	atomic_int done;
	int error;
	u64 marker;
};

struct async {
	struct slot *slots;
	int nr;
	atomic_int nr_done;
	atomic_int bad;
	/* ordering checks */
	bool check_order;
	u64 last_key;
	pthread_t cb_thread;
	pthread_t test_thread;
	/* key 0's callback blocks until the gate opens */
	atomic_bool gate_closed;
	atomic_bool gate_entered;
};

static void async_cb(struct net_conn *conn, const void *data, unsigned int len, int error,
		     void *arg)
{
	struct slot *s = arg;
	struct async *a = s->a;
	struct payload p;

	if (s->key == 0 && atomic_load(&a->gate_closed)) {
		atomic_store(&a->gate_entered, true);
		while (atomic_load(&a->gate_closed))
			usleep(1000);
	}
	s->error = error;
	if (!error) {
		if (len != sizeof(p)) {
			atomic_fetch_add(&a->bad, 1);
		} else {
			memcpy(&p, data, sizeof(p));
			if (p.key != s->key)
				atomic_fetch_add(&a->bad, 1);
			s->marker = p.marker;
		}
	}
	if (a->check_order) {
		if (pthread_equal(pthread_self(), a->test_thread))
			atomic_fetch_add(&a->bad, 1);
		if (s->key == 1)
			a->cb_thread = pthread_self();
		else if (!pthread_equal(a->cb_thread, pthread_self()))
			atomic_fetch_add(&a->bad, 1);
		if (s->key != a->last_key + 1)
			atomic_fetch_add(&a->bad, 1);
		a->last_key = s->key;
	}
	atomic_fetch_add(&s->done, 1);
	atomic_fetch_add(&a->nr_done, 1);
}

static struct async *async_alloc(int nr)
{
	struct async *a = calloc(1, sizeof(*a));
	int i;

	assert_non_null(a);
	a->slots = calloc(nr, sizeof(*a->slots));
	assert_non_null(a->slots);
	a->nr = nr;
	a->test_thread = pthread_self();
	for (i = 0; i < nr; i++) {
		a->slots[i].a = a;
		a->slots[i].key = i;
	}
	return a;
}

static void async_free(struct async *a)
{
	free(a->slots);
	free(a);
}

static int submit_slot(struct net_conn *conn, u8 cmd, struct slot *s)
{
	struct payload p = { .key = s->key };

	return net_submit_request(conn, cmd, &p, sizeof(p), async_cb, s);
}

/* ---------------------------------------------------------------------------------------- */
/* raw sockets */

static int raw_connect(const struct sockaddr_in *sin)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)sin, sizeof(*sin)), 0);
	return fd;
}

static void put_hdr(u8 *buf, u64 seq, u64 recv_seq, u64 id, u16 len, u8 cmd, u8 flags, u8 error)
{
	struct scoutfs_net_header nh = {
		.seq = cpu_to_le64(seq),
		.recv_seq = cpu_to_le64(recv_seq),
		.id = cpu_to_le64(id),
		.data_len = cpu_to_le16(len),
		.cmd = cmd,
		.flags = flags,
		.error = error,
	};

	memcpy(buf, &nh, sizeof(nh));
}

/* a valid greeting request frame; returns its length */
static size_t put_greeting(u8 *buf, u64 rid)
{
	struct scoutfs_net_greeting gr = {
		.fsid = cpu_to_le64(TEST_FSID),
		.fmt_vers = cpu_to_le64(SCOUTFS_FORMAT_VERSION_DEFAULT),
		.rid = cpu_to_le64(rid),
	};

	put_hdr(buf, 1, 0, 1, sizeof(gr), SCOUTFS_NET_CMD_GREETING, 0, 0);
	memcpy(buf + 32, &gr, sizeof(gr));
	return 32 + sizeof(gr);
}

static void raw_send(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* did the peer close the socket within ms?  whatever it sent first is read and ignored */
static bool raw_closed(int fd, int ms)
{
	uint64_t end = now_mono_ms() + ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	u8 buf[4096];
	ssize_t n;

	while (now_mono_ms() < end) {
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------------------------- */
/* tests */

static void test_error_mapping(void **state)
{
	static const int errs[] = { 0,       -ENOENT,  -ENOMEM, -EIO,   -ENOSPC,
				    -EINVAL, -ENOLINK, -ESTALE, -EEXIST };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(errs); i++) {
		assert_int_equal(net_err_to_wire(errs[i]), i);
		assert_int_equal(net_err_from_wire(i), errs[i]);
	}
	assert_int_equal(net_err_to_wire(-ECONNABORTED), SCOUTFS_NET_ERR_EINVAL);
	assert_int_equal(net_err_to_wire(-EPERM), SCOUTFS_NET_ERR_EINVAL);
	assert_int_equal(net_err_from_wire(SCOUTFS_NET_ERR_UNKNOWN), -EINVAL);
	assert_int_equal(net_err_from_wire(255), -EINVAL);
}

static void test_round_trips(void **state)
{
	struct tserver *ts = tserver_start(0, 7, 5000);
	struct tclient *tc = tclient_start(&ts->addr, 0x1111);
	struct async *a = async_alloc(8);
	struct payload p = { .key = 5 };
	struct payload r;
	u8 big[64];
	unsigned int len;
	char desc[512];
	u64 unknown;
	int i;

	assert_true(WAIT_FOR(atomic_load(&ts->nr_up) == 1, 2000));
	assert_int_equal(atomic_load(&ts->last_up), 0x1111);
	assert_int_equal(net_server_nr_clients(ts->srv), 1);
	assert_int_equal(atomic_load(&tc->term), 7);
	assert_int_equal(atomic_load(&tc->nr_new_server), 1);

	/* client -> server, sync */
	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, sizeof(r)), 0);
	assert_int_equal(r.key, 5);
	assert_int_equal(r.marker, 7);
	assert_int_equal(atomic_load(&ts->proc[5]), 1);

	/* error responses carry the error and no payload */
	assert_int_equal(net_sync_request(tc->conn, CMD_ERROR, &p, sizeof(p), &r, sizeof(r)),
			 -ENOSPC);

	/* a response of the wrong length */
	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, 8), -EMSGSIZE);
	len = sizeof(big);
	assert_int_equal(net_sync_request_var(tc->conn, CMD_ECHO, &p, sizeof(p), big, &len), 0);
	assert_int_equal(len, sizeof(struct payload));
	len = 4;
	assert_int_equal(net_sync_request_var(tc->conn, CMD_ECHO, &p, sizeof(p), big, &len),
			 -EMSGSIZE);

	/* bad arguments */
	assert_int_equal(net_submit_request(tc->conn, CMD_ECHO, big, SCOUTFS_NET_MAX_DATA_LEN + 1,
					    NULL, NULL),
			 -EINVAL);
	assert_int_equal(
		net_submit_request(tc->conn, SCOUTFS_NET_CMD_GREETING, NULL, 0, NULL, NULL),
		-EINVAL);

	/* nobody handles this command: an error comes back, the connection stays */
	unknown = counter_val("net_unknown_request");
	assert_int_equal(net_sync_request(tc->conn, CMD_NOHANDLER, NULL, 0, &r, sizeof(r)),
			 -EINVAL);
	assert_int_equal(counter_val("net_unknown_request"), unknown + 1);

	/* client -> server, async */
	for (i = 0; i < a->nr; i++)
		assert_int_equal(submit_slot(tc->conn, CMD_ECHO, &a->slots[i]), 0);
	assert_true(WAIT_FOR(atomic_load(&a->nr_done) == a->nr, 5000));
	for (i = 0; i < a->nr; i++) {
		assert_int_equal(a->slots[i].error, 0);
		assert_int_equal(a->slots[i].marker, 7);
	}
	assert_int_equal(atomic_load(&a->bad), 0);

	/* server -> client */
	async_free(a);
	a = async_alloc(8);
	for (i = 0; i < a->nr; i++)
		assert_int_equal(net_server_submit_request(
					 ts->srv, 0x1111, CMD_C_SYNC, &(struct payload){ .key = i },
					 sizeof(struct payload), async_cb, &a->slots[i]),
				 0);
	assert_true(WAIT_FOR(atomic_load(&a->nr_done) == a->nr, 5000));
	for (i = 0; i < a->nr; i++) {
		assert_int_equal(a->slots[i].error, 0);
		assert_int_equal(a->slots[i].marker, 0x1111);
		assert_int_equal(atomic_load(&tc->proc[i]), 1);
	}
	assert_int_equal(
		net_server_submit_request(ts->srv, 0x2222, CMD_C_SYNC, &p, sizeof(p), NULL, NULL),
		-ENOTCONN);

	/* broadcast to every client but one */
	net_server_submit_request_all(ts->srv, CMD_C_SYNC, &(struct payload){ .key = 100 },
				      sizeof(struct payload), 0);
	assert_true(WAIT_FOR(atomic_load(&tc->proc[100]) == 1, 2000));
	net_server_submit_request_all(ts->srv, CMD_C_SYNC, &(struct payload){ .key = 101 },
				      sizeof(struct payload), 0x1111);

	/* a handler that answers later, by rid */
	atomic_store(&ts->hold, true);
	assert_int_equal(submit_slot(tc->conn, CMD_HOLD, &a->slots[0]), 0);
	assert_true(WAIT_FOR(atomic_load(&ts->nr_held) == 1, 2000));
	r = (struct payload){ .key = 0, .marker = 99 };
	assert_int_equal(net_server_response(ts->srv, ts->held[0].rid, CMD_HOLD, ts->held[0].id, 0,
					     &r, sizeof(r)),
			 0);
	assert_true(WAIT_FOR(atomic_load(&a->slots[0].done) == 2, 2000));
	assert_int_equal(a->slots[0].marker, 99);
	/* answering twice does nothing */
	assert_int_equal(net_server_response(ts->srv, ts->held[0].rid, CMD_HOLD, ts->held[0].id, 0,
					     &r, sizeof(r)),
			 0);
	assert_int_equal(net_server_response(ts->srv, 0x2222, CMD_HOLD, 1, 0, NULL, 0), -ENOTCONN);

	assert_true(net_describe(tc->conn, desc, sizeof(desc)) > 0);
	assert_non_null(strstr(desc, "greeted"));
	assert_int_equal(atomic_load(&tc->proc[101]), 0);

	async_free(a);
	tclient_free(tc);
	tserver_free(ts);
}

static void test_ordering(void **state)
{
	struct tserver *ts = tserver_start(0, 3, 5000);
	struct tclient *tc = tclient_start(&ts->addr, 0x2222);
	const int nr = 20000;
	struct async *a = async_alloc(nr + 1);
	int i;

	/* client -> server, inline on the server's receive thread, callbacks in order */
	a->check_order = true;
	for (i = 1; i <= nr; i++)
		assert_int_equal(submit_slot(tc->conn, CMD_ORDER, &a->slots[i]), 0);
	assert_true(WAIT_FOR(atomic_load(&a->nr_done) == nr, 20000));
	assert_int_equal(atomic_load(&ts->nr_order), nr);
	assert_int_equal(atomic_load(&ts->order_bad), 0);
	assert_int_equal(atomic_load(&a->bad), 0);
	assert_int_equal(a->last_key, nr);

	/* server -> client, inline on the client's receive thread */
	async_free(a);
	a = async_alloc(2001);
	for (i = 1; i <= 2000; i++)
		assert_int_equal(net_server_submit_request(
					 ts->srv, 0x2222, CMD_C_LOCK, &(struct payload){ .key = i },
					 sizeof(struct payload), async_cb, &a->slots[i]),
				 0);
	assert_true(WAIT_FOR(atomic_load(&a->nr_done) == 2000, 10000));
	assert_int_equal(atomic_load(&tc->nr_lock), 2000);
	assert_int_equal(atomic_load(&tc->lock_bad), 0);
	assert_false(pthread_equal(tc->lock_thread, pthread_self()));

	async_free(a);
	tclient_free(tc);
	tserver_free(ts);
}

/*
 * Break the client's socket while thousands of requests are in flight.  The first
 * response's callback stalls the client's receive thread so that responses pile up unread
 * and are lost with the socket: they can only complete from the server's unacknowledged
 * responses, since the server must not process any request twice.
 */
static void test_break_midstream(void **state)
{
	struct tserver *ts = tserver_start(0, 11, 10000);
	struct tclient *tc = tclient_start(&ts->addr, 0x3333);
	const int nr = 20000;
	struct async *a = async_alloc(nr);
	u64 dups = counter_val("net_recv_dropped_duplicate");
	int i;

	atomic_store(&a->gate_closed, true);
	for (i = 0; i < nr; i++)
		assert_int_equal(submit_slot(tc->conn, CMD_ECHO, &a->slots[i]), 0);
	assert_true(WAIT_FOR(atomic_load(&a->gate_entered), 10000));
	/* let the server answer a pile of requests that nobody reads */
	assert_true(WAIT_FOR(atomic_load(&ts->nr_proc) >= 2000, 20000));
	net_client_break_socket(tc->conn);
	atomic_store(&a->gate_closed, false);

	/* and again while thousands of requests and responses are being resent */
	for (i = 0; i < 3; i++) {
		WAIT_FOR(net_client_connected(tc->conn), 5000);
		usleep(5 * 1000);
		net_client_break_socket(tc->conn);
	}

	assert_true(WAIT_FOR(atomic_load(&a->nr_done) == nr, 30000));
	for (i = 0; i < nr; i++) {
		assert_int_equal(atomic_load(&a->slots[i].done), 1);
		assert_int_equal(a->slots[i].error, 0);
		assert_int_equal(atomic_load(&ts->proc[i]), 1);
	}
	assert_int_equal(atomic_load(&a->bad), 0);
	/* it was the same server all along: one lineage, no new-server resets */
	assert_int_equal(atomic_load(&ts->nr_up), 1);
	assert_int_equal(atomic_load(&ts->nr_down), 0);
	assert_int_equal(atomic_load(&tc->nr_new_server), 1);
	assert_true(atomic_load(&tc->nr_greetings) >= 2);
	assert_true(atomic_load(&tc->nr_disconnected) >= 2);
	assert_true(counter_val("net_recv_dropped_duplicate") > dups);

	async_free(a);
	tclient_free(tc);
	tserver_free(ts);
}

/*
 * The server goes away with requests outstanding and a new one with another term takes
 * its port: the requests are replayed to and answered by the new server, and answers the
 * client gives to the old server's requests are never delivered to the new one.
 */
static void test_new_server_term(void **state)
{
	struct tserver *ts1 = tserver_start(0, 1, 10000);
	struct tclient *tc = tclient_start(&ts1->addr, 0x4444);
	const int nr = 200;
	struct async *a = async_alloc(nr);
	struct async *sa = async_alloc(2);
	struct tserver *ts2;
	struct payload p = { .key = 77 };
	struct payload r;
	u64 dropped;
	u16 port = ntohs(ts1->addr.sin_port);
	int i;

	/* the old server holds every request without answering */
	atomic_store(&ts1->hold, true);
	for (i = 0; i < nr; i++)
		assert_int_equal(submit_slot(tc->conn, CMD_HOLD, &a->slots[i]), 0);
	assert_true(WAIT_FOR(atomic_load(&ts1->nr_held) == nr, 5000));

	/* and the client holds the old server's requests */
	atomic_store(&tc->hold, true);
	for (i = 0; i < 2; i++)
		assert_int_equal(net_server_submit_request(ts1->srv, 0x4444, CMD_C_HOLD,
							   &(struct payload){ .key = 500 + i },
							   sizeof(struct payload), async_cb,
							   &sa->slots[i]),
				 0);
	assert_true(WAIT_FOR(atomic_load(&tc->nr_held) == 2, 5000));

	atomic_store(&tc->block_connect, true);
	tserver_destroy_net(ts1);
	/* the old server's own requests were aborted */
	assert_int_equal(atomic_load(&sa->nr_done), 2);
	assert_int_equal(sa->slots[0].error, -ECONNABORTED);
	assert_int_equal(sa->slots[1].error, -ECONNABORTED);
	assert_true(WAIT_FOR(atomic_load(&tc->nr_disconnected) == 1, 5000));
	assert_int_equal(atomic_load(&a->nr_done), 0);

	/* one answer to the old server while disconnected: queued, then dropped */
	r = (struct payload){ .key = 500, .marker = 1 };
	assert_int_equal(
		net_response(tc->conn, CMD_C_HOLD, atomic_load(&tc->held_ids[0]), 0, &r, sizeof(r)),
		0);

	dropped = counter_val("net_dropped_response");
	ts2 = tserver_start(port, 2, 10000);
	atomic_store(&tc->block_connect, false);

	assert_true(WAIT_FOR(atomic_load(&a->nr_done) == nr, 10000));
	for (i = 0; i < nr; i++) {
		assert_int_equal(atomic_load(&a->slots[i].done), 1);
		assert_int_equal(a->slots[i].error, 0);
		assert_int_equal(a->slots[i].marker, 2);
		assert_int_equal(atomic_load(&ts2->proc[i]), 1);
	}
	assert_int_equal(atomic_load(&a->bad), 0);
	assert_int_equal(atomic_load(&tc->nr_new_server), 2);
	assert_int_equal(atomic_load(&tc->term), 2);
	assert_int_equal(atomic_load(&ts2->nr_up), 1);

	/* the other answer to the old server, after the new one greeted us */
	r.key = 501;
	assert_int_equal(
		net_response(tc->conn, CMD_C_HOLD, atomic_load(&tc->held_ids[1]), 0, &r, sizeof(r)),
		0);

	/* the new server's own request of the same kind is answered properly */
	atomic_store(&tc->hold, false);
	async_free(sa);
	sa = async_alloc(1);
	assert_int_equal(net_server_submit_request(ts2->srv, 0x4444, CMD_C_HOLD,
						   &(struct payload){ .key = 0 },
						   sizeof(struct payload), async_cb, &sa->slots[0]),
			 0);
	assert_true(WAIT_FOR(atomic_load(&sa->nr_done) == 1, 5000));
	assert_int_equal(sa->slots[0].error, 0);
	assert_int_equal(sa->slots[0].marker, 0x4444);
	/* a round trip after everything, then nothing stale reached the new server */
	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, sizeof(r)), 0);
	assert_int_equal(r.marker, 2);
	assert_int_equal(counter_val("net_dropped_response"), dropped);

	async_free(sa);
	async_free(a);
	tclient_free(tc);
	tserver_free(ts1);
	tserver_free(ts2);
}

/*
 * A client that reconnects within the window takes over its parked connection: requests
 * the server sent while it was away are delivered, nothing is processed twice, and the
 * server never hears that the client went down.
 */
static void test_reconnect_migrates(void **state)
{
	struct tserver *ts = tserver_start(0, 5, 10000);
	struct tclient *tc = tclient_start(&ts->addr, 0x5555);
	struct async *sa = async_alloc(10);
	struct async *ca = async_alloc(10);
	struct payload p = { .key = 1000 };
	struct payload r;
	int i;

	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, sizeof(r)), 0);

	atomic_store(&tc->block_connect, true);
	net_client_break_socket(tc->conn);
	assert_true(WAIT_FOR(atomic_load(&tc->nr_disconnected) == 1, 5000));
	usleep(100 * 1000);
	/* parked, but still a client */
	assert_int_equal(net_server_nr_clients(ts->srv), 1);

	for (i = 0; i < 10; i++) {
		assert_int_equal(net_server_submit_request(
					 ts->srv, 0x5555, CMD_C_SYNC, &(struct payload){ .key = i },
					 sizeof(struct payload), async_cb, &sa->slots[i]),
				 0);
		assert_int_equal(submit_slot(tc->conn, CMD_ECHO, &ca->slots[i]), 0);
	}
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&sa->nr_done), 0);
	assert_int_equal(atomic_load(&ca->nr_done), 0);

	atomic_store(&tc->block_connect, false);
	assert_true(WAIT_FOR(atomic_load(&sa->nr_done) == 10, 5000));
	assert_true(WAIT_FOR(atomic_load(&ca->nr_done) == 10, 5000));
	for (i = 0; i < 10; i++) {
		assert_int_equal(sa->slots[i].error, 0);
		assert_int_equal(ca->slots[i].error, 0);
		assert_int_equal(atomic_load(&tc->proc[i]), 1);
		assert_int_equal(atomic_load(&ts->proc[i]), 1);
	}
	assert_int_equal(atomic_load(&ts->proc[1000]), 1);
	assert_int_equal(atomic_load(&ts->nr_up), 1);
	assert_int_equal(atomic_load(&ts->nr_down), 0);
	assert_int_equal(atomic_load(&ts->nr_timeout), 0);
	assert_int_equal(atomic_load(&tc->nr_new_server), 1);
	assert_int_equal(net_server_nr_clients(ts->srv), 1);

	async_free(sa);
	async_free(ca);
	tclient_free(tc);
	/* the client went without a farewell: destroying the server ends its lineage */
	tserver_free(ts);
}

/*
 * A client that does not come back is reported after the window and then taken down; a
 * client that comes back to the same server after that is refused.
 */
static void test_reconnect_timeout(void **state)
{
	const u64 window = 300;
	struct tserver *ts = tserver_start(0, 9, window);
	struct tclient *tc = tclient_start(&ts->addr, 0x6666);
	struct async *sa = async_alloc(1);
	struct payload p = { .key = 1 };
	struct payload r;
	u64 start;

	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, sizeof(r)), 0);
	atomic_store(&tc->stop, true);
	start = now_mono_ms();
	net_client_shutdown(tc->conn);
	usleep(50 * 1000);

	/* still parked: messages for it are queued */
	assert_int_equal(net_server_submit_request(ts->srv, 0x6666, CMD_C_SYNC, &p, sizeof(p),
						   async_cb, &sa->slots[0]),
			 0);
	assert_true(WAIT_FOR(atomic_load(&ts->nr_timeout) == 1, 5000));
	assert_true(atomic_load(&ts->timeout_ms_at) - start >= window - 20);
	assert_int_equal(atomic_load(&ts->last_timeout), 0x6666);
	assert_true(WAIT_FOR(atomic_load(&ts->nr_down) == 1, 2000));
	assert_int_equal(atomic_load(&ts->last_down), 0x6666);
	assert_int_equal(atomic_load(&ts->down_before_timeout), 0);
	assert_true(WAIT_FOR(atomic_load(&sa->nr_done) == 1, 2000));
	assert_int_equal(sa->slots[0].error, -ECONNABORTED);
	assert_int_equal(
		net_server_submit_request(ts->srv, 0x6666, CMD_C_SYNC, &p, sizeof(p), NULL, NULL),
		-ENOTCONN);
	assert_int_equal(net_server_nr_clients(ts->srv), 0);
	tclient_free(tc);

	/* the same rid presenting this server's term: its state is gone, it is refused */
	tc = tclient_create(&ts->addr, 0x6666);
	atomic_store(&tc->term, 9);
	net_client_start(tc->conn);
	assert_true(WAIT_FOR(atomic_load(&tc->nr_disconnected) >= 2, 5000));
	assert_false(net_client_connected(tc->conn));
	assert_int_equal(atomic_load(&tc->nr_greetings), 0);
	assert_int_equal(atomic_load(&ts->nr_up), 1);
	tclient_free(tc);

	/* unless it is saying farewell */
	tc = tclient_create(&ts->addr, 0x6666);
	atomic_store(&tc->term, 9);
	atomic_store(&tc->farewell, true);
	net_client_start(tc->conn);
	assert_true(WAIT_FOR(net_client_connected(tc->conn), 5000));
	/* client_up runs just after the reply is queued, the client may see the reply first */
	assert_true(WAIT_FOR(atomic_load(&ts->nr_up) == 2, 2000));
	tclient_free(tc);

	async_free(sa);
	tserver_free(ts);
}

/* a connection that answered a farewell is gone as soon as its socket closes */
static void test_farewell(void **state)
{
	struct tserver *ts = tserver_start(0, 4, 10000);
	struct tclient *tc = tclient_start(&ts->addr, 0x7777);
	u64 start;

	assert_int_equal(net_sync_request(tc->conn, CMD_FAREWELL, NULL, 0, NULL, 0), 0);
	start = now_mono_ms();
	net_client_shutdown(tc->conn);
	assert_true(WAIT_FOR(atomic_load(&ts->nr_down) == 1, 5000));
	assert_true(now_mono_ms() - start < 5000);
	assert_int_equal(atomic_load(&ts->last_down), 0x7777);
	assert_int_equal(atomic_load(&ts->nr_timeout), 0);
	assert_int_equal(net_server_nr_clients(ts->srv), 0);
	tclient_free(tc);
	tserver_destroy_net(ts);
	assert_int_equal(atomic_load(&ts->nr_down), 1);
	tserver_free(ts);
}

/* frames that must each break the socket they arrive on */
static void test_malformed(void **state)
{
	struct tserver *ts = tserver_start(0, 6, 200);
	struct tclient *tc = tclient_start(&ts->addr, 0x8888);
	struct payload p = { .key = 3 };
	struct payload r;
	u64 invalid;
	u8 buf[8192];
	size_t len;
	int fd;
	int i;

	enum { AFTER_GREETING = 1 };
	struct bad {
		const char *name;
		int flags;
		u64 seq, id;
		u16 len;
		u8 cmd, hflags, error, pad;
		size_t send_len; /* 0: header + len */
	} bads[] = {
		{ "zero seq", 0, 0, 1, 40, SCOUTFS_NET_CMD_GREETING, 0, 0, 0, 0 },
		{ "zero id", 0, 1, 0, 40, SCOUTFS_NET_CMD_GREETING, 0, 0, 0, 0 },
		{ "unknown cmd", 0, 1, 1, 0, SCOUTFS_NET_CMD_UNKNOWN, 0, 0, 0, 0 },
		{ "unknown cmd 255", AFTER_GREETING, 2, 2, 0, 255, 0, 0, 0, 0 },
		{ "unknown flag", 0, 1, 1, 40, SCOUTFS_NET_CMD_GREETING, 0x80, 0, 0, 0 },
		{ "error on request", AFTER_GREETING, 2, 2, 0, CMD_ECHO, 0, 1, 0, 0 },
		{ "unknown error", AFTER_GREETING, 2, 2, 0, CMD_ECHO, SCOUTFS_NET_FLAG_RESPONSE,
		  SCOUTFS_NET_ERR_UNKNOWN, 0, 0 },
		{ "payload on error", AFTER_GREETING, 2, 2, 4, CMD_ECHO, SCOUTFS_NET_FLAG_RESPONSE,
		  1, 0, 0 },
		{ "oversized", 0, 1, 1, 5000, SCOUTFS_NET_CMD_GREETING, 0, 0, 0, 32 },
		{ "oversized later", AFTER_GREETING, 2, 2, SCOUTFS_NET_MAX_DATA_LEN + 1, CMD_ECHO,
		  0, 0, 0, 32 },
		{ "before greeting", 0, 1, 1, 16, CMD_ECHO, 0, 0, 0, 0 },
		{ "greeting response", 0, 1, 1, 40, SCOUTFS_NET_CMD_GREETING,
		  SCOUTFS_NET_FLAG_RESPONSE, 0, 0, 0 },
		{ "short greeting", 0, 1, 1, 8, SCOUTFS_NET_CMD_GREETING, 0, 0, 0, 0 },
		{ "nonzero pad", 0, 1, 1, 40, SCOUTFS_NET_CMD_GREETING, 0, 0, 1, 0 },
		{ "second greeting", AFTER_GREETING, 2, 2, 40, SCOUTFS_NET_CMD_GREETING, 0, 0, 0,
		  0 },
	};

	for (i = 0; i < (int)ARRAY_SIZE(bads); i++) {
		struct bad *b = &bads[i];

		invalid = counter_val("net_recv_invalid_message");
		fd = raw_connect(&ts->addr);
		len = 0;
		if (b->flags & AFTER_GREETING)
			len = put_greeting(buf, 0x10000 + i);
		memset(buf + len, 0, 32 + b->len);
		put_hdr(buf + len, b->seq, 0, b->id, b->len, b->cmd, b->hflags, b->error);
		if (b->pad)
			buf[len + 29] = b->pad;
		len += b->send_len ? b->send_len : (size_t)32 + b->len;
		raw_send(fd, buf, len);
		if (!raw_closed(fd, 3000))
			fail_msg("socket not closed after '%s'", b->name);
		close(fd);
		if (counter_val("net_recv_invalid_message") != invalid + 1)
			fail_msg("'%s' not counted as invalid", b->name);
		/* the real client is unaffected */
		assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, sizeof(r)),
				 0);
	}

	/* a greeting the server refuses is answered with an error, then the socket closes */
	fd = raw_connect(&ts->addr);
	len = put_greeting(buf, 0x20000);
	buf[32] ^= 0xff; /* wrong fsid */
	raw_send(fd, buf, len);
	assert_true(raw_closed(fd, 3000));
	close(fd);

	/* random bytes, and mutated valid frames, never hurt the server */
	for (i = 0; i < 300; i++) {
		size_t off = 0;
		int j;

		fd = raw_connect(&ts->addr);
		if (random_below(2))
			off = put_greeting(buf, 0x30000 + i);
		len = off + random_below(2048);
		if (random_below(2)) {
			random_bytes(buf + off, len - off);
		} else {
			/* a plausible request with a few bytes flipped */
			for (j = 0; off + 48 <= len; j++) {
				put_hdr(buf + off, 2 + j, 0, 2 + j, 16, CMD_ECHO, 0, 0);
				memset(buf + off + 32, 0, 16);
				off += 48;
			}
			for (j = 0; j < 3 && len; j++)
				buf[random_below(len)] ^= (u8)(1 + random_below(255));
		}
		if (send(fd, buf, len, MSG_NOSIGNAL) < 0) {
			/* the server may already have closed it */
		}
		close(fd);
	}

	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), &r, sizeof(r)), 0);
	tclient_free(tc);
	tserver_destroy_net(ts);
	/* every greeted raw socket (and the client) came up and went down again */
	assert_true(atomic_load(&ts->nr_up) > 1);
	assert_int_equal(atomic_load(&ts->nr_up), atomic_load(&ts->nr_down));
	tserver_free(ts);
}

/* a server that misbehaves towards the client */
static void test_client_rejects(void **state)
{
	struct sockaddr_in sin = loopback(0);
	socklen_t slen = sizeof(sin);
	struct tclient *tc;
	u64 invalid;
	u8 buf[256];
	int lfd;
	int fd;
	int one = 1;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);

	invalid = counter_val("net_recv_invalid_message");
	tc = tclient_create(&sin, 0x9999);
	net_client_start(tc->conn);

	/* a greeting request sent to a client */
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	put_greeting(buf, 1);
	raw_send(fd, buf, 72);
	assert_true(raw_closed(fd, 3000));
	close(fd);
	assert_int_equal(counter_val("net_recv_invalid_message"), invalid + 1);

	/* a greeting reply that answers some other id */
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	put_greeting(buf, 1);
	buf[offsetof(struct scoutfs_net_header, flags)] = SCOUTFS_NET_FLAG_RESPONSE;
	buf[offsetof(struct scoutfs_net_header, id)] = 0x7f;
	raw_send(fd, buf, 72);
	assert_true(raw_closed(fd, 3000));
	close(fd);
	assert_int_equal(counter_val("net_recv_invalid_message"), invalid + 2);
	assert_int_equal(atomic_load(&tc->nr_greetings), 0);

	tclient_free(tc);
	close(lfd);
}

struct sync_thread {
	struct net_conn *conn;
	pthread_t thread;
	int ret;
};

static void *sync_thread_fn(void *arg)
{
	struct sync_thread *st = arg;
	struct payload p = { .key = 1 };
	struct payload r;

	st->ret = net_sync_request(st->conn, CMD_HOLD, &p, sizeof(p), &r, sizeof(r));
	return NULL;
}

/* shutdown completes everything that is pending with -ECONNABORTED */
static void test_shutdown_aborts(void **state)
{
	struct tserver *ts = tserver_start(0, 8, 200);
	struct tclient *tc = tclient_start(&ts->addr, 0xaaaa);
	struct sync_thread st[4];
	struct async *a = async_alloc(100);
	struct payload p = { .key = 1 };
	int i;

	atomic_store(&ts->hold, true);
	for (i = 0; i < 4; i++) {
		st[i].conn = tc->conn;
		assert_int_equal(pthread_create(&st[i].thread, NULL, sync_thread_fn, &st[i]), 0);
	}
	for (i = 0; i < a->nr; i++)
		assert_int_equal(submit_slot(tc->conn, CMD_HOLD, &a->slots[i]), 0);
	assert_true(WAIT_FOR(atomic_load(&ts->nr_held) == 104, 5000));

	net_client_shutdown(tc->conn);
	for (i = 0; i < 4; i++) {
		pthread_join(st[i].thread, NULL);
		assert_int_equal(st[i].ret, -ECONNABORTED);
	}
	assert_int_equal(atomic_load(&a->nr_done), a->nr);
	for (i = 0; i < a->nr; i++) {
		assert_int_equal(atomic_load(&a->slots[i].done), 1);
		assert_int_equal(a->slots[i].error, -ECONNABORTED);
	}
	assert_int_equal(net_submit_request(tc->conn, CMD_ECHO, &p, sizeof(p), NULL, NULL),
			 -ECONNABORTED);
	assert_int_equal(net_sync_request(tc->conn, CMD_ECHO, &p, sizeof(p), NULL, 0),
			 -ECONNABORTED);
	assert_false(net_client_connected(tc->conn));
	tclient_free(tc);

	/* should_stop_reconnecting does the same for a client that cannot reach a server */
	tc = tclient_create(&ts->addr, 0xbbbb);
	atomic_store(&tc->block_connect, true);
	net_client_start(tc->conn);
	st[0].conn = tc->conn;
	assert_int_equal(pthread_create(&st[0].thread, NULL, sync_thread_fn, &st[0]), 0);
	usleep(150 * 1000);
	atomic_store(&tc->stop, true);
	pthread_join(st[0].thread, NULL);
	assert_int_equal(st[0].ret, -ECONNABORTED);
	tclient_free(tc);

	async_free(a);
	tserver_free(ts);
}

struct spam {
	struct net_conn *conn;
	struct net_server *srv;
	pthread_t thread;
	atomic_bool stop;
	atomic_int submitted;
	struct async *a;
};

static void *spam_client(void *arg)
{
	struct spam *s = arg;
	int i;

	for (i = 0; i < s->a->nr && !atomic_load(&s->stop); i++) {
		if (submit_slot(s->conn, i % 3 ? CMD_ECHO : CMD_ORDER, &s->a->slots[i]) == 0)
			atomic_fetch_add(&s->submitted, 1);
		if (i % 64 == 0)
			usleep(200);
	}
	return NULL;
}

/* tear everything down with traffic in flight in both directions: clean under ASan */
static void test_destroy_in_flight(void **state)
{
	struct tserver *ts = tserver_start(0, 12, 5000);
	struct tclient *tc[2];
	struct spam sp[2];
	int round;
	int i;

	for (i = 0; i < 2; i++) {
		tc[i] = tclient_start(&ts->addr, 0xc000 + i);
		sp[i] = (struct spam){ .conn = tc[i]->conn, .a = async_alloc(20000) };
		/* the order handler checks one stream only; this test just needs traffic */
		assert_int_equal(pthread_create(&sp[i].thread, NULL, spam_client, &sp[i]), 0);
	}
	for (round = 0; round < 50; round++) {
		net_server_submit_request_all(ts->srv, CMD_C_SYNC, &(struct payload){ .key = 1 },
					      sizeof(struct payload), 0);
		usleep(2000);
	}
	net_client_break_socket(tc[0]->conn);
	usleep(20 * 1000);

	tserver_destroy_net(ts);
	for (i = 0; i < 2; i++) {
		atomic_store(&sp[i].stop, true);
		pthread_join(sp[i].thread, NULL);
		tclient_free(tc[i]);
		/* every submitted request completed exactly once, one way or another */
		assert_int_equal(atomic_load(&sp[i].a->nr_done), atomic_load(&sp[i].submitted));
		async_free(sp[i].a);
	}
	tserver_free(ts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_mapping),     cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_ordering),          cmocka_unit_test(test_break_midstream),
		cmocka_unit_test(test_new_server_term),   cmocka_unit_test(test_reconnect_migrates),
		cmocka_unit_test(test_reconnect_timeout), cmocka_unit_test(test_farewell),
		cmocka_unit_test(test_malformed),         cmocka_unit_test(test_client_rejects),
		cmocka_unit_test(test_shutdown_aborts),   cmocka_unit_test(test_destroy_in_flight),
	};
	const char *verbose = getenv("NET_TEST_VERBOSE");

	if (!verbose || !*verbose || *verbose == '0')
		log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
