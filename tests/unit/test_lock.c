/*
 * test_lock.c: cluster locking with an in-process cluster.
 *
 * One lock_server and several lock_info clients are connected by a fake transport that keeps
 * the orderings the real net layer gives: each client's server->client messages (grants,
 * invalidations, recovery requests) are delivered in order by one thread, the way the
 * mount's receive path calls the lock entry points; client->server messages are delivered by
 * two threads per client, so the server sees one client's messages concurrently and in either
 * order, as its concurrent request handlers do.  A server failover drops everything in
 * flight, resends the clients' outstanding lock requests after their greeting and ignores
 * answers to the old server, as the net layer does across a new server.
 *
 * Every client has a fake item cache: a shared table records, per lock and client, the
 * active users by mode, whether the client cached items (it read under a readable mode) and
 * whether it has dirty items (it wrote).  Taking a lock checks the cluster invariants against
 * the table (no two clients WRITE, no READ while another writes, WRITE_ONLY only shared with
 * WRITE_ONLY, nobody reads while another client has dirty items, nobody writes while another
 * client caches the range, write_seq grows with every new writer); the invalidate callback
 * "commits" dirty items and drops the cache, and checks that no user it must wait for is
 * still active.  Violations are counted from any thread and checked by the tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above */
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/key.h"
#include "lock/lock.h"
#include "server/lock_server.h"
#include "util/counters.h"
#include "util/util.h"

#define MAX_CLIENTS 6
#define C2S_THREADS 2
#define NR_MODES    SCOUTFS_LOCK_INVALID
#define MAX_KEYS    512
#define DESC_LEN    (1024 * 1024)
/* server->client request ids carry the server epoch in their top bits */
#define EPOCH_SHIFT 40
#define RAW_EPOCH   0xffffULL

/* ---------------------------------------------------------------------------------------- */
/* violations, reported from any thread, checked by the test thread */

static atomic_int violations;

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "VIOLATION: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	atomic_fetch_add(&violations, 1);
}

static u64 counter_val(const char *name)
{
	u64 v = 0;

	counter_read(name, &v);
	return v;
}

#define WAIT_FOR(cond, ms)                                                                         \
	({                                                                                         \
		u64 _end = now_mono_ms() + (ms);                                                   \
		bool _ok;                                                                          \
		while (!(_ok = (cond)) && now_mono_ms() < _end)                                    \
			usleep(1000);                                                              \
		_ok;                                                                               \
	})

static void sleep_ms(unsigned int ms)
{
	usleep(ms * 1000);
}

/* ---------------------------------------------------------------------------------------- */
/* messages and queues */

enum msg_type {
	MSG_GRANT,      /* server -> client */
	MSG_INVALIDATE, /* server -> client */
	MSG_RECOVER,    /* server -> client */
	MSG_REQUEST,    /* client -> server */
	MSG_INV_RESP,   /* client -> server */
	MSG_RECOV_RESP, /* client -> server */
	MSG_GREETING,   /* client -> server */
};

struct tmsg {
	struct tmsg *next;
	enum msg_type type;
	u64 net_id;
	int error;
	bool recovering;
	struct scoutfs_net_lock nl;
	struct scoutfs_key key;
	unsigned int len;
	_Alignas(8) unsigned char buf[SCOUTFS_NET_MAX_DATA_LEN];
};

struct tqueue {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	struct tmsg *head;
	struct tmsg *tail;
	bool stop;
};

static void tq_init(struct tqueue *q)
{
	pthread_mutex_init(&q->mutex, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->head = q->tail = NULL;
	q->stop = false;
}

/* with q->mutex held */
static void tq_push_locked(struct tqueue *q, struct tmsg *m)
{
	if (q->stop) {
		free(m);
		return;
	}
	m->next = NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	pthread_cond_signal(&q->cond);
}

static void tq_push(struct tqueue *q, struct tmsg *m)
{
	pthread_mutex_lock(&q->mutex);
	tq_push_locked(q, m);
	pthread_mutex_unlock(&q->mutex);
}

static struct tmsg *tq_pop_locked(struct tqueue *q)
{
	struct tmsg *m = q->head;

	if (m) {
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
	}
	return m;
}

static void tq_clear_locked(struct tqueue *q)
{
	struct tmsg *m;

	while ((m = tq_pop_locked(q)))
		free(m);
}

static struct tmsg *msg_new(enum msg_type type)
{
	struct tmsg *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->type = type;
	return m;
}

/* ---------------------------------------------------------------------------------------- */
/* the cluster */

struct tclient {
	int idx;
	bool present;
	u64 rid;
	struct lock_info *li;
	struct tqueue s2c;
	struct tqueue c2s;
	pthread_t s2c_thread;
	pthread_t c2s_threads[C2S_THREADS];
	/* gone for good: server sends fail with ENOTCONN, the client's messages are dropped */
	atomic_bool dead;
	/* between a failover and the greeting: messages wait (requests) or are dropped */
	bool connected;           /* under c2s.mutex */
	struct tmsg *outstanding; /* lock requests without a grant, under c2s.mutex */
	atomic_ullong next_id;
	atomic_ullong trans_seq;
	/* invalidate callback instrumentation */
	atomic_int inv_calls;
	atomic_int inv_w_to_r;
	atomic_int inv_to_null;
	atomic_int inv_delay_ms;
	atomic_int resp_delay_ms;
	atomic_int raw_responses;
	atomic_int fail_next_request; /* answer the next request with this error grant */
	/* the invalidate callback flushes "kernel pages" of this inode (see flush_pages) */
	atomic_ullong flush_ino;
	atomic_int flush_admitted; /* page holders that got the lock during a flush */
	atomic_int flush_others;   /* ordinary waiters that got it during a flush (must be 0) */
	atomic_int inv_fail;          /* fail this many invalidate callbacks (a failed commit) */
	pthread_mutex_t gate_mutex;
	pthread_cond_t gate_cond;
	bool gate_closed;
	atomic_int gate_waiting;
};

struct keystate {
	struct scoutfs_key key;
	int users[MAX_CLIENTS][NR_MODES];
	bool cached[MAX_CLIENTS];
	bool dirty[MAX_CLIENTS];
	u64 max_write_seq[MAX_CLIENTS]; /* greatest write_seq a client wrote under */
	u64 last_grant_seq;             /* server: the last WRITE/WRITE_ONLY grant seq */
};

struct cluster {
	int nr;
	struct tclient clients[MAX_CLIENTS];
	pthread_rwlock_t deliver_lock; /* shared while delivering, exclusive for a failover */
	struct lock_server *ls;
	u64 epoch; /* changes under deliver_lock exclusive */
	/* the server's seq counter (outside the lock server) */
	pthread_mutex_t seq_mutex;
	u64 seq;
	u64 max_raised;
	u64 nr_raised;
	/* recovery tracking (outside the lock server) */
	pthread_mutex_t recov_mutex;
	u64 pending[MAX_CLIENTS];
	int nr_pending;
	atomic_bool recovery_done_due;
	atomic_int recovery_done_calls;
	/* the fake item caches */
	pthread_mutex_t table_mutex;
	struct keystate keys[MAX_KEYS];
	int nr_keys;
};

static struct cluster *cl;

static struct tclient *client_by_rid(u64 rid)
{
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (cl->clients[i].present && cl->clients[i].rid == rid)
			return &cl->clients[i];
	}
	return NULL;
}

/* with table_mutex held */
static struct keystate *keystate(const struct scoutfs_key *key)
{
	for (int i = 0; i < cl->nr_keys; i++) {
		if (key_compare(&cl->keys[i].key, key) == 0)
			return &cl->keys[i];
	}
	if (cl->nr_keys == MAX_KEYS) {
		violation("test key table full");
		return &cl->keys[0];
	}
	memset(&cl->keys[cl->nr_keys], 0, sizeof(cl->keys[0]));
	cl->keys[cl->nr_keys].key = *key;
	return &cl->keys[cl->nr_keys++];
}

static bool mode_writes(int mode)
{
	return mode == SCOUTFS_LOCK_WRITE || mode == SCOUTFS_LOCK_WRITE_ONLY;
}

/* ---- server ops ---- */

static u64 server_id(void)
{
	static atomic_ullong ids;

	return (cl->epoch << EPOCH_SHIFT) | (atomic_fetch_add(&ids, 1) + 1);
}

static int srv_send_grant(void *arg, u64 rid, u64 net_id, const struct scoutfs_net_lock *nl)
{
	struct tclient *c = client_by_rid(rid);
	struct keystate *ks;
	struct tmsg *m;
	char kb[KEY_STR_LEN];

	if (!c || atomic_load(&c->dead))
		return -ENOTCONN;

	if (mode_writes(nl->new_mode)) {
		/* grants of one lock are serialized by the lock server: seqs must grow */
		pthread_mutex_lock(&cl->table_mutex);
		ks = keystate(&nl->key);
		if (le64_to_cpu(nl->write_seq) <= ks->last_grant_seq)
			violation("grant of %s with write_seq %llu after %llu",
			          key_str(&nl->key, kb),
			          (unsigned long long)le64_to_cpu(nl->write_seq),
			          (unsigned long long)ks->last_grant_seq);
		ks->last_grant_seq = le64_to_cpu(nl->write_seq);
		pthread_mutex_unlock(&cl->table_mutex);
	}

	m = msg_new(MSG_GRANT);
	m->net_id = net_id;
	m->nl = *nl;
	tq_push(&c->s2c, m);
	return 0;
}

static int srv_send_invalidate(void *arg, u64 rid, const struct scoutfs_net_lock *nl)
{
	struct tclient *c = client_by_rid(rid);
	struct tmsg *m;

	if (!c || atomic_load(&c->dead))
		return -ENOTCONN;
	m = msg_new(MSG_INVALIDATE);
	m->net_id = server_id();
	m->nl = *nl;
	tq_push(&c->s2c, m);
	return 0;
}

static int srv_send_recover(void *arg, u64 rid, const struct scoutfs_key *key)
{
	struct tclient *c = client_by_rid(rid);
	struct tmsg *m;

	if (!c || atomic_load(&c->dead))
		return -ENOTCONN;
	m = msg_new(MSG_RECOVER);
	m->net_id = server_id();
	m->key = *key;
	tq_push(&c->s2c, m);
	return 0;
}

static u64 srv_next_seq(void *arg)
{
	u64 seq;

	pthread_mutex_lock(&cl->seq_mutex);
	seq = ++cl->seq;
	pthread_mutex_unlock(&cl->seq_mutex);
	return seq;
}

static void srv_raise_seq(void *arg, u64 seq)
{
	pthread_mutex_lock(&cl->seq_mutex);
	if (seq > cl->seq)
		cl->seq = seq;
	if (seq > cl->max_raised)
		cl->max_raised = seq;
	cl->nr_raised++;
	pthread_mutex_unlock(&cl->seq_mutex);
}

static bool srv_recovery_pending(void *arg)
{
	bool pending;

	pthread_mutex_lock(&cl->recov_mutex);
	pending = cl->nr_pending > 0;
	pthread_mutex_unlock(&cl->recov_mutex);
	return pending;
}

static void srv_recovery_finished(void *arg, u64 rid)
{
	pthread_mutex_lock(&cl->recov_mutex);
	for (int i = 0; i < cl->nr_pending; i++) {
		if (cl->pending[i] == rid) {
			cl->pending[i] = cl->pending[--cl->nr_pending];
			/* the last one: the recovery-finished hook runs after this reply */
			if (cl->nr_pending == 0)
				atomic_store(&cl->recovery_done_due, true);
			break;
		}
	}
	pthread_mutex_unlock(&cl->recov_mutex);
}

static const struct lock_server_ops server_ops = {
	.send_grant = srv_send_grant,
	.send_invalidate = srv_send_invalidate,
	.send_recover = srv_send_recover,
	.next_seq = srv_next_seq,
	.raise_seq = srv_raise_seq,
	.recovery_pending = srv_recovery_pending,
	.recovery_finished = srv_recovery_finished,
};

/* ---- client ops ---- */

static int cli_send_request(void *arg, const struct scoutfs_net_lock *nl)
{
	struct tclient *c = arg;
	struct tmsg *copy;
	struct tmsg *m;
	int err;

	if (atomic_load(&c->dead))
		return 0; /* the net layer would queue it for a reconnect that never comes */

	err = atomic_exchange(&c->fail_next_request, 0);
	if (err) {
		/* the server answers with an error */
		m = msg_new(MSG_GRANT);
		m->nl = *nl;
		m->error = err;
		tq_push(&c->s2c, m);
		return 0;
	}

	m = msg_new(MSG_REQUEST);
	m->net_id = atomic_fetch_add(&c->next_id, 1) + 1;
	m->nl = *nl;
	copy = msg_new(MSG_REQUEST);
	*copy = *m;

	pthread_mutex_lock(&c->c2s.mutex);
	copy->next = c->outstanding;
	c->outstanding = copy;
	if (c->connected)
		tq_push_locked(&c->c2s, m);
	else
		free(m); /* resent after the greeting */
	pthread_mutex_unlock(&c->c2s.mutex);
	return 0;
}

static int cli_send_invalidate_response(void *arg, u64 net_id, const struct scoutfs_net_lock *nl)
{
	struct tclient *c = arg;
	struct tmsg *m;
	int delay;

	if ((net_id >> EPOCH_SHIFT) == RAW_EPOCH) {
		/* an answer to a request the test injected */
		atomic_fetch_add(&c->raw_responses, 1);
		return 0;
	}
	if (atomic_load(&c->dead))
		return -ENOTCONN;

	m = msg_new(MSG_INV_RESP);
	m->net_id = net_id;
	m->nl = *nl;
	pthread_mutex_lock(&c->c2s.mutex);
	if (c->connected)
		tq_push_locked(&c->c2s, m);
	else
		free(m); /* an answer to the old server */
	pthread_mutex_unlock(&c->c2s.mutex);

	/* widen the window between "answer sent" and "worker done" (R1) */
	delay = atomic_load(&c->resp_delay_ms);
	if (delay)
		sleep_ms(delay);
	return 0;
}

static int cli_send_recover_response(void *arg, u64 net_id,
                                     const struct scoutfs_net_lock_recover *nlr, unsigned int len)
{
	struct tclient *c = arg;
	struct tmsg *m;

	if (atomic_load(&c->dead))
		return -ENOTCONN;
	if (len > sizeof(m->buf)) {
		violation("recover response of %u bytes", len);
		return -EINVAL;
	}
	m = msg_new(MSG_RECOV_RESP);
	m->net_id = net_id;
	m->len = len;
	memcpy(m->buf, nlr, len);
	pthread_mutex_lock(&c->c2s.mutex);
	if (c->connected)
		tq_push_locked(&c->c2s, m);
	else
		free(m);
	pthread_mutex_unlock(&c->c2s.mutex);
	return 0;
}

static void flush_pages(struct tclient *c, struct lock *lock, u64 ino);

static int cli_invalidate(void *arg, struct lock *lock, enum scoutfs_lock_mode old_mode,
                          enum scoutfs_lock_mode new_mode)
{
	struct tclient *c = arg;
	struct keystate *ks;
	char kb[KEY_STR_LEN];
	int delay;

	atomic_fetch_add(&c->inv_calls, 1);
	if (atomic_load(&c->inv_fail) > 0) {
		atomic_fetch_sub(&c->inv_fail, 1);
		return -EIO;
	}
	if (old_mode == SCOUTFS_LOCK_WRITE && new_mode == SCOUTFS_LOCK_READ)
		atomic_fetch_add(&c->inv_w_to_r, 1);
	if (new_mode == SCOUTFS_LOCK_NULL)
		atomic_fetch_add(&c->inv_to_null, 1);

	if (lock->invalidating_mode != old_mode || lock->mode != new_mode)
		violation("c%d invalidate %s %d->%d but lock shows %d->%d", c->idx,
		          key_str(&lock->start, kb), old_mode, new_mode, lock->invalidating_mode,
		          lock->mode);

	pthread_mutex_lock(&cl->table_mutex);
	ks = keystate(&lock->start);
	for (int m = SCOUTFS_LOCK_READ; m < NR_MODES; m++) {
		if (ks->users[c->idx][m] &&
		    !(m == (int)new_mode ||
		      (new_mode == SCOUTFS_LOCK_WRITE && m == SCOUTFS_LOCK_READ)))
			violation("c%d invalidates %s to %d with %d users of mode %d", c->idx,
			          key_str(&lock->start, kb), new_mode, ks->users[c->idx][m], m);
	}
	pthread_mutex_unlock(&cl->table_mutex);
	if (old_mode == SCOUTFS_LOCK_WRITE && atomic_load(&c->flush_ino) &&
	    key_compare(&lock->start, &(struct scoutfs_key){ 0 }) != 0) {
		u64 ino = atomic_exchange(&c->flush_ino, 0);

		if (ino)
			flush_pages(c, lock, ino);
	}
	pthread_mutex_lock(&cl->table_mutex);
	/* "commit" dirty items and drop what the new mode can't keep */
	if (lock_can_write(old_mode) && ks->dirty[c->idx]) {
		ks->dirty[c->idx] = false;
		atomic_fetch_add(&c->trans_seq, 1);
	}
	if (!lock_can_read(new_mode))
		ks->cached[c->idx] = false;
	pthread_mutex_unlock(&cl->table_mutex);

	pthread_mutex_lock(&c->gate_mutex);
	if (c->gate_closed) {
		atomic_fetch_add(&c->gate_waiting, 1);
		while (c->gate_closed)
			pthread_cond_wait(&c->gate_cond, &c->gate_mutex);
		atomic_fetch_sub(&c->gate_waiting, 1);
	}
	pthread_mutex_unlock(&c->gate_mutex);

	delay = atomic_load(&c->inv_delay_ms);
	if (delay)
		sleep_ms(delay);
	return 0;
}

static u64 cli_trans_seq(void *arg)
{
	struct tclient *c = arg;

	return atomic_load(&c->trans_seq);
}

static const struct lock_ops client_ops = {
	.send_request = cli_send_request,
	.send_invalidate_response = cli_send_invalidate_response,
	.send_recover_response = cli_send_recover_response,
	.invalidate = cli_invalidate,
	.trans_seq = cli_trans_seq,
};

/* ---- delivery ---- */

static void remove_outstanding(struct tclient *c, u64 net_id)
{
	struct tmsg **pos;
	struct tmsg *m;

	pthread_mutex_lock(&c->c2s.mutex);
	for (pos = &c->outstanding; (m = *pos); pos = &m->next) {
		if (m->net_id == net_id) {
			*pos = m->next;
			free(m);
			break;
		}
	}
	pthread_mutex_unlock(&c->c2s.mutex);
}

static void deliver_to_client(struct tclient *c, struct tmsg *m)
{
	int ret;

	switch (m->type) {
	case MSG_GRANT:
		if (m->net_id)
			remove_outstanding(c, m->net_id);
		lock_grant_response(c->li, &m->nl, m->error);
		break;
	case MSG_INVALIDATE:
		ret = lock_invalidate_request(c->li, m->net_id, &m->nl);
		if (ret < 0)
			violation("c%d lock_invalidate_request: %d", c->idx, ret);
		break;
	case MSG_RECOVER:
		ret = lock_recover_request(c->li, m->net_id, &m->key);
		if (ret < 0)
			violation("c%d lock_recover_request: %d", c->idx, ret);
		break;
	default:
		violation("c%d got message type %d", c->idx, m->type);
	}
}

static void deliver_to_server(struct tclient *c, struct tmsg *m)
{
	int ret = 0;

	switch (m->type) {
	case MSG_REQUEST:
		ret = lock_server_request(cl->ls, c->rid, m->net_id, &m->nl);
		break;
	case MSG_INV_RESP:
		if ((m->net_id >> EPOCH_SHIFT) != cl->epoch)
			break; /* an answer to a server that is gone */
		ret = lock_server_invalidate_response(cl->ls, c->rid, &m->nl);
		break;
	case MSG_RECOV_RESP:
		if ((m->net_id >> EPOCH_SHIFT) != cl->epoch)
			break;
		ret = lock_server_recover_response(
		        cl->ls, c->rid, (struct scoutfs_net_lock_recover *)m->buf, m->len);
		if (ret == 0 && atomic_exchange(&cl->recovery_done_due, false)) {
			atomic_fetch_add(&cl->recovery_done_calls, 1);
			ret = lock_server_recovery_done(cl->ls);
		}
		break;
	case MSG_GREETING:
		ret = lock_server_greeting(cl->ls, c->rid, m->recovering);
		break;
	default:
		violation("server got message type %d", m->type);
	}
	if (ret < 0)
		violation("c%d message %d to server: %d", c->idx, m->type, ret);
}

static void deliver_loop(struct tclient *c, struct tqueue *q, bool to_server)
{
	struct tmsg *m;

	for (;;) {
		pthread_mutex_lock(&q->mutex);
		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cond, &q->mutex);
		if (q->stop) {
			pthread_mutex_unlock(&q->mutex);
			break;
		}
		pthread_mutex_unlock(&q->mutex);

		/* pop under the delivery lock so a failover can't race the delivery */
		pthread_rwlock_rdlock(&cl->deliver_lock);
		pthread_mutex_lock(&q->mutex);
		m = tq_pop_locked(q);
		pthread_mutex_unlock(&q->mutex);
		if (m && !atomic_load(&c->dead)) {
			if (to_server)
				deliver_to_server(c, m);
			else
				deliver_to_client(c, m);
		}
		pthread_rwlock_unlock(&cl->deliver_lock);
		free(m);
	}
}

static void *s2c_thread(void *arg)
{
	struct tclient *c = arg;

	deliver_loop(c, &c->s2c, false);
	return NULL;
}

static void *c2s_thread(void *arg)
{
	struct tclient *c = arg;

	deliver_loop(c, &c->c2s, true);
	return NULL;
}

/* ---- cluster life ---- */

/* the client greets the server; outstanding lock requests follow it (resend) */
static void greet(struct tclient *c, bool recovering)
{
	struct tmsg *m;
	struct tmsg *o;

	pthread_mutex_lock(&c->c2s.mutex);
	m = msg_new(MSG_GREETING);
	m->recovering = recovering;
	tq_push_locked(&c->c2s, m);
	for (o = c->outstanding; o; o = o->next) {
		m = msg_new(MSG_REQUEST);
		*m = *o;
		tq_push_locked(&c->c2s, m);
	}
	c->connected = true;
	pthread_mutex_unlock(&c->c2s.mutex);
}

static struct tclient *add_client(u32 idle_count)
{
	struct tclient *c = NULL;
	int i;

	for (i = 0; i < MAX_CLIENTS; i++) {
		if (!cl->clients[i].present) {
			c = &cl->clients[i];
			break;
		}
	}
	assert_non_null(c);
	memset(c, 0, sizeof(*c));
	c->idx = i;
	c->rid = 0x1000 + (random_u64() & 0xffffff00) + i;
	tq_init(&c->s2c);
	tq_init(&c->c2s);
	pthread_mutex_init(&c->gate_mutex, NULL);
	pthread_cond_init(&c->gate_cond, NULL);
	c->trans_seq = 1;
	assert_int_equal(lock_info_create(&client_ops, c, idle_count, &c->li), 0);
	c->present = true;
	assert_int_equal(pthread_create(&c->s2c_thread, NULL, s2c_thread, c), 0);
	for (int t = 0; t < C2S_THREADS; t++)
		assert_int_equal(pthread_create(&c->c2s_threads[t], NULL, c2s_thread, c), 0);
	if (i >= cl->nr)
		cl->nr = i + 1;
	greet(c, false);
	return c;
}

static void stop_client(struct tclient *c)
{
	struct tmsg *m;

	if (!c->present || !c->li)
		return;
	lock_shutdown(c->li);
	/* release a blocked invalidate callback */
	pthread_mutex_lock(&c->gate_mutex);
	c->gate_closed = false;
	pthread_cond_broadcast(&c->gate_cond);
	pthread_mutex_unlock(&c->gate_mutex);

	pthread_mutex_lock(&c->s2c.mutex);
	c->s2c.stop = true;
	tq_clear_locked(&c->s2c);
	pthread_cond_broadcast(&c->s2c.cond);
	pthread_mutex_unlock(&c->s2c.mutex);
	pthread_mutex_lock(&c->c2s.mutex);
	c->c2s.stop = true;
	tq_clear_locked(&c->c2s);
	pthread_cond_broadcast(&c->c2s.cond);
	pthread_mutex_unlock(&c->c2s.mutex);
	pthread_join(c->s2c_thread, NULL);
	for (int t = 0; t < C2S_THREADS; t++)
		pthread_join(c->c2s_threads[t], NULL);

	lock_info_destroy(c->li);
	c->li = NULL;
	while ((m = c->outstanding)) {
		c->outstanding = m->next;
		free(m);
	}
}

static void cluster_create(int nr, u32 idle_count)
{
	cl = calloc(1, sizeof(*cl));
	assert_non_null(cl);
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&cl->deliver_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&cl->seq_mutex, NULL);
	pthread_mutex_init(&cl->recov_mutex, NULL);
	pthread_mutex_init(&cl->table_mutex, NULL);
	cl->epoch = 1;
	cl->seq = 100;
	assert_int_equal(lock_server_create(&server_ops, NULL, &cl->ls), 0);
	atomic_store(&violations, 0);
	for (int i = 0; i < nr; i++)
		add_client(idle_count);
}

static void cluster_destroy(void)
{
	if (!cl)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++)
		stop_client(&cl->clients[i]);
	lock_server_destroy(cl->ls);
	free(cl);
	cl = NULL;
}

/*
 * The server dies and a new one starts: everything in flight is lost, every live client
 * must recover, and the clients in greet_mask greet right away (the others later, with
 * greet()).  reset_seq starts the new server's seq counter low, so only raise_seq of the
 * recovered write_seqs keeps new grants above them.
 */
static void failover(unsigned int greet_mask, bool reset_seq)
{
	struct tclient *c;

	pthread_rwlock_wrlock(&cl->deliver_lock);
	lock_server_destroy(cl->ls);
	cl->epoch++;
	assert_int_equal(lock_server_create(&server_ops, NULL, &cl->ls), 0);

	pthread_mutex_lock(&cl->seq_mutex);
	if (reset_seq)
		cl->seq = 1;
	cl->max_raised = 0;
	cl->nr_raised = 0;
	pthread_mutex_unlock(&cl->seq_mutex);
	if (reset_seq) {
		pthread_mutex_lock(&cl->table_mutex);
		for (int k = 0; k < cl->nr_keys; k++)
			cl->keys[k].last_grant_seq = 0;
		pthread_mutex_unlock(&cl->table_mutex);
	}

	pthread_mutex_lock(&cl->recov_mutex);
	cl->nr_pending = 0;
	atomic_store(&cl->recovery_done_due, false);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		c = &cl->clients[i];
		if (!c->present || atomic_load(&c->dead))
			continue;
		cl->pending[cl->nr_pending++] = c->rid;
	}
	pthread_mutex_unlock(&cl->recov_mutex);

	for (int i = 0; i < MAX_CLIENTS; i++) {
		c = &cl->clients[i];
		if (!c->present)
			continue;
		pthread_mutex_lock(&c->s2c.mutex);
		tq_clear_locked(&c->s2c);
		pthread_mutex_unlock(&c->s2c.mutex);
		pthread_mutex_lock(&c->c2s.mutex);
		tq_clear_locked(&c->c2s);
		c->connected = false;
		pthread_mutex_unlock(&c->c2s.mutex);
		lock_new_server(c->li);
	}
	pthread_rwlock_unlock(&cl->deliver_lock);

	for (int i = 0; i < MAX_CLIENTS; i++) {
		c = &cl->clients[i];
		if (c->present && !atomic_load(&c->dead) && (greet_mask & (1U << i)))
			greet(c, true);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* the fake item cache: take and drop locks while checking the cluster invariants */

static void user_begin(struct tclient *c, struct lock *lock, int mode)
{
	struct keystate *ks;
	char kb[KEY_STR_LEN];
	/* stable only for write modes: an upgrade grant may change it under readers */
	u64 ws = mode_writes(mode) ? lock->write_seq : 0;

	if (!mode_writes(mode) && !lock_mode_allows_read(lock))
		violation("c%d reads %s in mode %d", c->idx, key_str(&lock->start, kb), lock->mode);
	if (mode_writes(mode) && !lock_mode_allows_write(lock))
		violation("c%d writes %s in mode %d", c->idx, key_str(&lock->start, kb),
		          lock->mode);

	pthread_mutex_lock(&cl->table_mutex);
	ks = keystate(&lock->start);
	for (int d = 0; d < MAX_CLIENTS; d++) {
		int *u = ks->users[d];

		if (d == c->idx)
			continue;
		if ((mode == SCOUTFS_LOCK_WRITE && (u[1] || u[2] || u[3])) ||
		    (mode == SCOUTFS_LOCK_READ && (u[2] || u[3])) ||
		    (mode == SCOUTFS_LOCK_WRITE_ONLY && (u[1] || u[2])))
			violation("c%d takes %s mode %d while c%d has users r%d w%d wo%d", c->idx,
			          key_str(&lock->start, kb), mode, d, u[1], u[2], u[3]);
		if (lock_can_read(mode) && ks->dirty[d])
			violation("c%d reads %s while c%d has dirty items", c->idx,
			          key_str(&lock->start, kb), d);
		if (mode_writes(mode) && ks->cached[d])
			violation("c%d writes %s while c%d caches it", c->idx,
			          key_str(&lock->start, kb), d);
		if (mode == SCOUTFS_LOCK_WRITE && ws <= ks->max_write_seq[d])
			violation("c%d writes %s with write_seq %llu, c%d wrote with %llu", c->idx,
			          key_str(&lock->start, kb), (unsigned long long)ws, d,
			          (unsigned long long)ks->max_write_seq[d]);
	}
	ks->users[c->idx][mode]++;
	if (lock_can_read(mode))
		ks->cached[c->idx] = true;
	if (mode_writes(mode)) {
		ks->dirty[c->idx] = true;
		if (ws > ks->max_write_seq[c->idx])
			ks->max_write_seq[c->idx] = ws;
	}
	pthread_mutex_unlock(&cl->table_mutex);
}

static void user_end(struct tclient *c, struct lock *lock, int mode)
{
	struct keystate *ks;

	pthread_mutex_lock(&cl->table_mutex);
	ks = keystate(&lock->start);
	ks->users[c->idx][mode]--;
	pthread_mutex_unlock(&cl->table_mutex);
}

/* the client's caches and users are gone without an invalidation (shutdown, farewell) */
static void table_forget_client(struct tclient *c)
{
	pthread_mutex_lock(&cl->table_mutex);
	for (int k = 0; k < cl->nr_keys; k++) {
		cl->keys[k].cached[c->idx] = false;
		cl->keys[k].dirty[c->idx] = false;
		memset(cl->keys[k].users[c->idx], 0, sizeof(cl->keys[k].users[c->idx]));
	}
	pthread_mutex_unlock(&cl->table_mutex);
}

static int take(struct tclient *c, const struct scoutfs_key *start, const struct scoutfs_key *end,
                int mode, int flags, const struct lock_waiter *waiter, struct lock **lk)
{
	int ret = lock_key_range(c->li, mode, flags, start, end, waiter, lk);

	if (ret == 0)
		user_begin(c, *lk, mode);
	return ret;
}

static int take_ino(struct tclient *c, u64 ino, int mode, int flags, struct lock **lk)
{
	struct scoutfs_key start;
	struct scoutfs_key end;

	lock_inode_range(ino, &start, &end);
	return take(c, &start, &end, mode, flags, NULL, lk);
}

static void drop(struct tclient *c, struct lock *lk, int mode)
{
	user_end(c, lk, mode);
	lock_unlock(c->li, lk, mode);
}

static struct scoutfs_key ino_key(u64 ino)
{
	struct scoutfs_key start;
	struct scoutfs_key end;

	lock_inode_range(ino, &start, &end);
	return start;
}

/* take and drop at once: leaves the lock granted and idle */
static void touch(struct tclient *c, u64 ino, int mode)
{
	struct lock *lk;

	assert_int_equal(take_ino(c, ino, mode, 0, &lk), 0);
	drop(c, lk, mode);
}

/* ---------------------------------------------------------------------------------------- */
/* taking a lock in the background */

static atomic_int acquire_stamp;

struct bg {
	pthread_t thread;
	struct tclient *c;
	u64 ino;
	int mode;
	int hold_ms; /* < 0: until bg_release */
	atomic_bool release;
	int flags;
	atomic_int state; /* 0 waiting, 1 acquired, 2 finished */
	int ret;
	int stamp;
	u64 write_seq;
	struct lock *lock;
};

static void *bg_thread(void *arg)
{
	struct bg *b = arg;
	struct scoutfs_key start;
	struct scoutfs_key end;

	lock_inode_range(b->ino, &start, &end);
	b->ret = take(b->c, &start, &end, b->mode, b->flags, NULL, &b->lock);
	if (b->ret == 0) {
		b->stamp = atomic_fetch_add(&acquire_stamp, 1) + 1;
		b->write_seq = b->lock->write_seq;
		atomic_store(&b->state, 1);
		if (b->hold_ms >= 0)
			sleep_ms(b->hold_ms);
		else
			while (!atomic_load(&b->release))
				usleep(1000);
		drop(b->c, b->lock, b->mode);
	}
	atomic_store(&b->state, 2);
	return NULL;
}

static void bg_start_flags(struct bg *b, struct tclient *c, u64 ino, int mode, int flags,
			   int hold_ms)
{
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->ino = ino;
	b->mode = mode;
	b->flags = flags;
	b->hold_ms = hold_ms;
	assert_int_equal(pthread_create(&b->thread, NULL, bg_thread, b), 0);
}

static void bg_start(struct bg *b, struct tclient *c, u64 ino, int mode, int hold_ms)
{
	bg_start_flags(b, c, ino, mode, 0, hold_ms);
}

static int bg_join(struct bg *b)
{
	atomic_store(&b->release, true);
	pthread_join(b->thread, NULL);
	return b->ret;
}

/*
 * What the mount's callback does for pages dirtied through mappings: a "page holder" (a
 * writeback request) that is already waiting for the lock the invalidation lowered must get
 * it during the flush -- the flush waits for it -- while an ordinary waiter must not.
 */
/* the ordinary waiter of the last flush, joined by the test */
static struct bg flush_other;

static void flush_pages(struct tclient *c, struct lock *lock, u64 ino)
{
	struct bg *other = &flush_other;
	struct bg holder;

	bg_start(other, c, ino, SCOUTFS_LOCK_READ, 0);
	bg_start_flags(&holder, c, ino, SCOUTFS_LOCK_WRITE, LOCK_KERNEL_PAGES, 10);
	sleep_ms(20); /* both are waiting for the lowered lock */
	if (atomic_load(&holder.state) != 0 || atomic_load(&other->state) != 0)
		violation("c%d: a waiter got the lowered lock before the flush", c->idx);
	lock_flush_begin(c->li, lock);
	/* the flush waits for the page holder: it must get the lock, or this deadlocks */
	for (int i = 0; i < 2000 && atomic_load(&holder.state) != 2; i++)
		sleep_ms(1);
	if (atomic_load(&holder.state) == 2 && holder.ret == 0)
		atomic_fetch_add(&c->flush_admitted, 1);
	if (atomic_load(&other->state) != 0)
		atomic_fetch_add(&c->flush_others, 1);
	lock_flush_end(c->li, lock);
	bg_join(&holder);
	/* the ordinary waiter gets the lock once another grant comes: the test joins it */
}

/* ---------------------------------------------------------------------------------------- */
/* reading the describe output */

struct cinfo {
	char mode[16];
	char inv_mode[16];
	unsigned int users[NR_MODES];
	unsigned int waiters[NR_MODES];
	int request;
	unsigned int invalidate;
	unsigned long long refresh_gen;
	unsigned long long write_seq;
};

static bool parse_client_line(const char *line, char *kbuf, struct cinfo *ci)
{
	memset(ci, 0, sizeof(*ci));
	return sscanf(line,
	              "%95s mode %15s inv_mode %15s users %u %u %u waiters %u %u %u request %d "
	              "invalidate %u refresh_gen %llu write_seq %llu",
	              kbuf, ci->mode, ci->inv_mode, &ci->users[1], &ci->users[2], &ci->users[3],
	              &ci->waiters[1], &ci->waiters[2], &ci->waiters[3], &ci->request,
	              &ci->invalidate, &ci->refresh_gen, &ci->write_seq) == 13;
}

/* calls fn for each lock line of a client; returns the number of locks */
static int client_locks(struct tclient *c, bool (*fn)(const char *key, struct cinfo *ci, void *arg),
                        void *arg)
{
	char *buf = malloc(DESC_LEN);
	char kbuf[KEY_STR_LEN];
	struct cinfo ci;
	char *line;
	char *save = NULL;
	int nr = 0;

	assert_non_null(buf);
	lock_describe(c->li, buf, DESC_LEN);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!parse_client_line(line, kbuf, &ci)) {
			violation("bad describe line: %s", line);
			continue;
		}
		nr++;
		if (fn && !fn(kbuf, &ci, arg))
			break;
	}
	free(buf);
	return nr;
}

struct find_arg {
	const char *key;
	struct cinfo *ci;
	bool found;
};

static bool find_fn(const char *key, struct cinfo *ci, void *arg)
{
	struct find_arg *fa = arg;

	if (strcmp(key, fa->key) == 0) {
		*fa->ci = *ci;
		fa->found = true;
		return false;
	}
	return true;
}

static bool client_lock(struct tclient *c, u64 ino, struct cinfo *ci)
{
	struct scoutfs_key key = ino_key(ino);
	char kbuf[KEY_STR_LEN];
	struct find_arg fa = { .key = key_str(&key, kbuf), .ci = ci };

	client_locks(c, find_fn, &fa);
	return fa.found;
}

static bool busy_fn(const char *key, struct cinfo *ci, void *arg)
{
	int *busy = arg;

	for (int m = 0; m < NR_MODES; m++) {
		if (ci->users[m] || ci->waiters[m]) {
			fprintf(stderr, "busy lock %s mode %s users %u %u %u waiters %u %u %u\n",
			        key, ci->mode, ci->users[1], ci->users[2], ci->users[3],
			        ci->waiters[1], ci->waiters[2], ci->waiters[3]);
			(*busy)++;
			break;
		}
	}
	return true;
}

/* no lock of the client has users or waiters */
static int client_busy_locks(struct tclient *c)
{
	int busy = 0;

	client_locks(c, busy_fn, &busy);
	return busy;
}

static int client_nr_locks(struct tclient *c)
{
	return client_locks(c, NULL, NULL);
}

/* server entries matching key (NULL: any), list (NULL: any), rid (0: any); mode out */
static int server_entries(const struct scoutfs_key *key, const char *list, u64 rid, char *mode_out)
{
	char *buf = malloc(DESC_LEN);
	char kwant[KEY_STR_LEN];
	char kbuf[KEY_STR_LEN];
	char mode[16];
	char lname[16];
	char ridword[8];
	unsigned long long r;
	unsigned long long net_id;
	char *line;
	char *save = NULL;
	int nr = 0;

	assert_non_null(buf);
	if (key)
		key_str(key, kwant);
	pthread_rwlock_rdlock(&cl->deliver_lock);
	lock_server_describe(cl->ls, buf, DESC_LEN);
	pthread_rwlock_unlock(&cl->deliver_lock);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%95s %15s %15s %7s %llx %llu", kbuf, mode, lname, ridword, &r,
		           &net_id) != 6 ||
		    strcmp(ridword, "rid") != 0) {
			violation("bad server describe line: %s", line);
			continue;
		}
		if ((key && strcmp(kbuf, kwant)) || (list && strcmp(lname, list)) ||
		    (rid && rid != r))
			continue;
		if (mode_out)
			strcpy(mode_out, mode);
		nr++;
	}
	free(buf);
	return nr;
}

static int ino_entries(u64 ino, const char *list, u64 rid, char *mode_out)
{
	struct scoutfs_key key = ino_key(ino);

	return server_entries(&key, list, rid, mode_out);
}

/* the 5th whitespace separated field of each server describe line is the rid in hex */
static bool server_has_rid_field(u64 rid)
{
	char *buf = malloc(DESC_LEN);
	char *line;
	char *save = NULL;
	bool found = false;

	assert_non_null(buf);
	pthread_rwlock_rdlock(&cl->deliver_lock);
	lock_server_describe(cl->ls, buf, DESC_LEN);
	pthread_rwlock_unlock(&cl->deliver_lock);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *fsave = NULL;
		char *f = strtok_r(line, " \t", &fsave);

		for (int i = 1; f && i < 5; i++)
			f = strtok_r(NULL, " \t", &fsave);
		if (f && strtoull(f, NULL, 16) == rid)
			found = true;
	}
	free(buf);
	return found;
}

static int server_rid_entries(u64 rid)
{
	int nr;

	pthread_rwlock_rdlock(&cl->deliver_lock);
	nr = lock_server_rid_entries(cl->ls, rid);
	pthread_rwlock_unlock(&cl->deliver_lock);
	return nr;
}

/* ---------------------------------------------------------------------------------------- */
/* a watchdog: a hang dumps the lock tables and aborts instead of stalling the run */

static atomic_ullong wd_deadline;
static const char *wd_name;

static void dump_state(void)
{
	char *buf = malloc(DESC_LEN);

	if (!buf || !cl)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (!cl->clients[i].present || !cl->clients[i].li)
			continue;
		lock_describe(cl->clients[i].li, buf, 64 * 1024);
		fprintf(stderr, "---- client %d rid %016llx\n%s", i,
		        (unsigned long long)cl->clients[i].rid, buf);
	}
	lock_server_describe(cl->ls, buf, 64 * 1024);
	fprintf(stderr, "---- server\n%s", buf);
	free(buf);
}

static void *watchdog_thread(void *arg)
{
	u64 deadline;

	for (;;) {
		sleep_ms(100);
		deadline = atomic_load(&wd_deadline);
		if (deadline && now_mono_ms() > deadline) {
			fprintf(stderr, "WATCHDOG: test %s hung\n", wd_name);
			dump_state();
			abort();
		}
	}
	return NULL;
}

static void watchdog_arm(const char *name, unsigned int secs)
{
	wd_name = name;
	atomic_store(&wd_deadline, now_mono_ms() + secs * 1000ULL);
}

static void watchdog_disarm(void)
{
	atomic_store(&wd_deadline, 0);
}

static int setup(void **state)
{
	return 0;
}

static int teardown(void **state)
{
	watchdog_disarm();
	cluster_destroy();
	return 0;
}

/* every client quiet, no violation */
static void check_quiet(void)
{
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (cl->clients[i].present && cl->clients[i].li)
			assert_int_equal(client_busy_locks(&cl->clients[i]), 0);
	}
	assert_int_equal(atomic_load(&violations), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* tests */

static void test_ranges(void **state)
{
	struct scoutfs_key start;
	struct scoutfs_key end;
	struct scoutfs_key k;

	lock_inode_range(5000, &start, &end);
	k = key_make(SCOUTFS_FS_ZONE, 4096, 0, 0, 0, 0);
	assert_int_equal(key_compare(&start, &k), 0);
	k = key_make(SCOUTFS_FS_ZONE, 5119, 0xff, ~0ULL, ~0ULL, 0xff);
	assert_int_equal(key_compare(&end, &k), 0);
	/* every item of every inode of the group, none of the next */
	for (u64 ino = 4096; ino < 5120; ino += 511) {
		k = key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_INODE_TYPE, 0, 0, 0);
		assert_true(key_in_range(&k, &start, &end));
		k = key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_DATA_EXTENT_TYPE, ~0ULL, ~0ULL, 0xff);
		assert_true(key_in_range(&k, &start, &end));
	}
	k = key_make(SCOUTFS_FS_ZONE, 5120, 0, 0, 0, 0);
	assert_false(key_in_range(&k, &start, &end));
	/* the same group, whichever inode names it */
	lock_inode_range(4096, &k, &end);
	assert_int_equal(key_compare(&start, &k), 0);

	lock_index_range(SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, 3000, &start, &end);
	k = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, 2048, 0, 0);
	assert_int_equal(key_compare(&start, &k), 0);
	k = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, 3071, ~0ULL,
	             0xff);
	assert_int_equal(key_compare(&end, &k), 0);

	lock_orphan_range(&start, &end);
	assert_int_equal(start.sk_zone, SCOUTFS_ORPHAN_ZONE);
	assert_int_equal(start.sk_type, SCOUTFS_ORPHAN_TYPE);
	k = key_make(SCOUTFS_ORPHAN_ZONE, 0, SCOUTFS_ORPHAN_TYPE, 12345, 0, 0);
	assert_true(key_in_range(&k, &start, &end));
	assert_int_equal(end.sk_zone, SCOUTFS_ORPHAN_ZONE);
	assert_true(key_first(&end) == ~0ULL && key_third(&end) == ~0ULL);

	lock_rename_range(&start, &end);
	assert_int_equal(key_compare(&start, &end), 0);
	assert_int_equal(start.sk_zone, SCOUTFS_LOCK_ZONE);
	assert_int_equal(start.sk_type, SCOUTFS_RENAME_TYPE);

	lock_zone_range(SCOUTFS_XATTR_TOTL_ZONE, &start, &end);
	k = key_make(SCOUTFS_XATTR_TOTL_ZONE, 0, 0, 0, 0, 0);
	assert_int_equal(key_compare(&start, &k), 0);
	k = key_make(SCOUTFS_XATTR_TOTL_ZONE, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
	assert_int_equal(key_compare(&end, &k), 0);

	assert_true(lock_can_read(SCOUTFS_LOCK_READ) && lock_can_read(SCOUTFS_LOCK_WRITE));
	assert_false(lock_can_read(SCOUTFS_LOCK_WRITE_ONLY) || lock_can_read(SCOUTFS_LOCK_NULL));
	assert_true(lock_can_write(SCOUTFS_LOCK_WRITE_ONLY) && lock_can_write(SCOUTFS_LOCK_WRITE));
	assert_false(lock_can_write(SCOUTFS_LOCK_READ) || lock_can_write(SCOUTFS_LOCK_NULL));
}

/* scenario 1: a writer is downgraded to READ for readers and keeps its cache */
static void test_write_read_downgrade(void **state)
{
	struct tclient *c0;
	struct tclient *c1;
	struct tclient *c2;
	struct cinfo ci;
	struct lock *lk;
	u64 gen;

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c0 = &cl->clients[0];
	c1 = &cl->clients[1];
	c2 = &cl->clients[2];

	touch(c1, 1, SCOUTFS_LOCK_WRITE);
	assert_true(client_lock(c1, 1, &ci));
	gen = ci.refresh_gen;
	touch(c0, 1, SCOUTFS_LOCK_READ);
	touch(c2, 1, SCOUTFS_LOCK_READ);

	assert_int_equal(atomic_load(&c1->inv_w_to_r), 1);
	assert_int_equal(atomic_load(&c1->inv_to_null), 0);
	assert_true(client_lock(c1, 1, &ci));
	assert_string_equal(ci.mode, "read");
	assert_int_equal(ci.refresh_gen, gen);
	/* the downgraded lock still serves readers without asking the server */
	assert_int_equal(take_ino(c1, 1, SCOUTFS_LOCK_READ, LOCK_NONBLOCK, &lk), 0);
	drop(c1, lk, SCOUTFS_LOCK_READ);
	assert_int_equal(ino_entries(1, "granted", 0, NULL), 3);
	check_quiet();
}

/*
 * A mount giving up WRITE flushes the kernel's dirty pages first: the writeback requests
 * (LOCK_KERNEL_PAGES) use the lock during the flush even though its mode was already lowered,
 * ordinary waiters don't, and what the page holders dirtied is committed before the answer.
 */
static void test_flush_window(void **state)
{
	struct tclient *c0;
	struct tclient *c1;
	struct bg b;

	watchdog_arm(__func__, 30);
	cluster_create(2, 100);
	c0 = &cl->clients[0];
	c1 = &cl->clients[1];

	touch(c0, 1, SCOUTFS_LOCK_WRITE);
	atomic_store(&c0->flush_ino, 1);
	bg_start(&b, c1, 1, SCOUTFS_LOCK_WRITE, 0);
	assert_int_equal(bg_join(&b), 0);
	assert_int_equal(atomic_load(&c0->flush_admitted), 1);
	assert_int_equal(atomic_load(&c0->flush_others), 0);
	/* the ordinary waiter gets its READ after c1 */
	assert_int_equal(bg_join(&flush_other), 0);
	assert_true(flush_other.stamp > b.stamp);
	check_quiet();
}

/* scenario 2: READ -> WRITE with no other holders upgrades in place */
static void test_upgrade_in_place(void **state)
{
	struct tclient *c1;
	struct cinfo ci;
	u64 gen;
	char mode[16];

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c1 = &cl->clients[1];

	touch(c1, 1, SCOUTFS_LOCK_READ);
	assert_true(client_lock(c1, 1, &ci));
	gen = ci.refresh_gen;
	touch(c1, 1, SCOUTFS_LOCK_WRITE);

	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&cl->clients[i].inv_calls), 0);
	assert_true(client_lock(c1, 1, &ci));
	assert_string_equal(ci.mode, "write");
	assert_int_equal(ci.refresh_gen, gen); /* the cache was kept */
	assert_int_equal(ino_entries(1, "granted", c1->rid, mode), 1);
	assert_string_equal(mode, "write");
	assert_int_equal(ino_entries(1, NULL, 0, NULL), 1);
	check_quiet();
}

/* scenario 3: requests are granted in arrival order, even a compatible reader waits */
static void test_fifo_fairness(void **state)
{
	struct bg b1;
	struct bg b2;
	struct bg b3;
	struct lock *held;

	watchdog_arm(__func__, 30);
	cluster_create(5, 100);

	assert_int_equal(take_ino(&cl->clients[4], 1, SCOUTFS_LOCK_READ, 0, &held), 0);

	bg_start(&b1, &cl->clients[1], 1, SCOUTFS_LOCK_WRITE, 50);
	assert_true(WAIT_FOR(ino_entries(1, "requested", 0, NULL) == 1, 5000));
	bg_start(&b2, &cl->clients[2], 1, SCOUTFS_LOCK_READ, 50);
	assert_true(WAIT_FOR(ino_entries(1, "requested", 0, NULL) == 2, 5000));
	bg_start(&b3, &cl->clients[3], 1, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(ino_entries(1, "requested", 0, NULL) == 3, 5000));

	/* the reader is compatible with the READ holder but queued behind a writer */
	sleep_ms(100);
	assert_int_equal(atomic_load(&b2.state), 0);
	assert_int_equal(atomic_load(&b1.state), 0);

	drop(&cl->clients[4], held, SCOUTFS_LOCK_READ);
	assert_int_equal(bg_join(&b1), 0);
	assert_int_equal(bg_join(&b2), 0);
	assert_int_equal(bg_join(&b3), 0);
	assert_true(b1.stamp < b2.stamp);
	assert_true(b2.stamp < b3.stamp);
	assert_true(b1.write_seq < b3.write_seq);
	check_quiet();
}

/* scenarios 5-7: WRITE_ONLY shares with itself only; WRITE -> WRITE_ONLY drops to NULL first */
static void test_write_only(void **state)
{
	struct tclient *c0;
	struct tclient *c1;
	struct lock *l0;
	struct lock *l1;
	struct bg rd;

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c0 = &cl->clients[0];
	c1 = &cl->clients[1];

	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_WRITE_ONLY, 0, &l0), 0);
	assert_int_equal(take_ino(c1, 1, SCOUTFS_LOCK_WRITE_ONLY, 0, &l1), 0);
	assert_int_equal(ino_entries(1, "granted", 0, NULL), 2);
	assert_true(l0->write_seq != l1->write_seq);

	/* a reader conflicts with both */
	bg_start(&rd, &cl->clients[2], 1, SCOUTFS_LOCK_READ, 0);
	sleep_ms(100);
	assert_int_equal(atomic_load(&rd.state), 0);
	drop(c0, l0, SCOUTFS_LOCK_WRITE_ONLY);
	sleep_ms(50);
	assert_int_equal(atomic_load(&rd.state), 0);
	drop(c1, l1, SCOUTFS_LOCK_WRITE_ONLY);
	assert_int_equal(bg_join(&rd), 0);
	assert_int_equal(atomic_load(&c0->inv_to_null), 1);
	assert_int_equal(atomic_load(&c1->inv_to_null), 1);

	/* WRITE does not satisfy WRITE_ONLY: the server takes our own WRITE to NULL first */
	touch(c0, 2048, SCOUTFS_LOCK_WRITE);
	assert_int_equal(atomic_load(&c0->inv_calls), 1);
	touch(c0, 2048, SCOUTFS_LOCK_WRITE_ONLY);
	assert_int_equal(atomic_load(&c0->inv_calls), 2);
	assert_int_equal(atomic_load(&c0->inv_to_null), 2);
	assert_int_equal(atomic_load(&c0->inv_w_to_r), 0);
	check_quiet();
}

/*
 * R1: c0 holds WRITE; c1 asks READ and c2 WRITE at once.  c0 answers W->R, and the server
 * sends R->NULL while c0's worker still sleeps after the first answer.
 */
static void test_back_to_back_invalidations(void **state)
{
	struct tclient *c0;
	struct bg b1;
	struct bg b2;
	u64 chained;
	struct cinfo ci;
	char mode[16];

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c0 = &cl->clients[0];

	touch(c0, 1, SCOUTFS_LOCK_WRITE);
	atomic_store(&c0->resp_delay_ms, 300);
	chained = counter_val("lock_invalidate_chained");

	bg_start(&b1, &cl->clients[1], 1, SCOUTFS_LOCK_READ, 100);
	/* c0 has answered W->R and sleeps in the window before its worker is done */
	assert_true(WAIT_FOR(atomic_load(&c0->inv_w_to_r) == 1, 5000));
	bg_start(&b2, &cl->clients[2], 1, SCOUTFS_LOCK_WRITE, -1);

	assert_int_equal(bg_join(&b1), 0);
	assert_true(WAIT_FOR(atomic_load(&b2.state) == 1, 5000));
	assert_true(counter_val("lock_invalidate_chained") > chained);
	assert_int_equal(atomic_load(&c0->inv_w_to_r), 1);
	assert_int_equal(atomic_load(&c0->inv_to_null), 1);
	assert_int_equal(atomic_load(&cl->clients[1].inv_to_null), 1);
	assert_true(b1.stamp < b2.stamp);

	/* c2 alone holds WRITE; c0 and c1 gave everything up */
	assert_int_equal(ino_entries(1, NULL, 0, NULL), 1);
	assert_int_equal(ino_entries(1, "granted", cl->clients[2].rid, mode), 1);
	assert_string_equal(mode, "write");
	atomic_store(&c0->resp_delay_ms, 0);
	assert_true(WAIT_FOR(!client_lock(c0, 1, &ci), 5000));
	assert_int_equal(bg_join(&b2), 0);
	check_quiet();
}

static void inject(struct tclient *c, u64 ino, int old_mode, int new_mode)
{
	static atomic_ullong raw_ids;
	struct scoutfs_net_lock nl;

	memset(&nl, 0, sizeof(nl));
	nl.key = ino_key(ino);
	nl.old_mode = old_mode;
	nl.new_mode = new_mode;
	assert_int_equal(lock_invalidate_request(c->li,
	                                         (RAW_EPOCH << EPOCH_SHIFT) |
	                                                 (atomic_fetch_add(&raw_ids, 1) + 1),
	                                         &nl),
	                 0);
}

/* scenarios 11 and 20: unknown locks are answered at once, duplicates without side effects */
static void test_unknown_and_duplicate_invalidation(void **state)
{
	struct tclient *c0;
	struct tclient *c3;
	struct cinfo ci;
	struct lock *lk;
	u64 unknown;
	u64 noop;
	struct scoutfs_net_lock bad;

	watchdog_arm(__func__, 30);
	cluster_create(4, 100);
	c0 = &cl->clients[0];
	c3 = &cl->clients[3];

	unknown = counter_val("lock_invalidate_unknown");
	inject(c3, 77777, SCOUTFS_LOCK_WRITE, SCOUTFS_LOCK_NULL);
	/* answered before lock_invalidate_request returned */
	assert_int_equal(atomic_load(&c3->raw_responses), 1);
	assert_int_equal(counter_val("lock_invalidate_unknown"), unknown + 1);
	assert_int_equal(atomic_load(&c3->inv_calls), 0);

	memset(&bad, 0, sizeof(bad));
	bad.new_mode = SCOUTFS_LOCK_INVALID;
	assert_int_equal(lock_invalidate_request(c3->li, 1, &bad), -EINVAL);

	/* two copies of W->R behind an active writer: both wait, one invalidation, two answers */
	noop = counter_val("lock_invalidate_noop");
	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_WRITE, 0, &lk), 0);
	inject(c0, 1, SCOUTFS_LOCK_WRITE, SCOUTFS_LOCK_READ);
	inject(c0, 1, SCOUTFS_LOCK_WRITE, SCOUTFS_LOCK_READ);
	sleep_ms(50);
	assert_int_equal(atomic_load(&c0->raw_responses), 0);
	assert_true(client_lock(c0, 1, &ci));
	assert_int_equal(ci.invalidate, 2);
	assert_string_equal(ci.mode, "write");
	drop(c0, lk, SCOUTFS_LOCK_WRITE);
	assert_true(WAIT_FOR(atomic_load(&c0->raw_responses) == 2, 5000));
	assert_int_equal(atomic_load(&c0->inv_calls), 1);
	assert_int_equal(atomic_load(&c0->inv_w_to_r), 1);
	assert_int_equal(counter_val("lock_invalidate_noop"), noop + 1);
	assert_true(client_lock(c0, 1, &ci));
	assert_string_equal(ci.mode, "read");
	assert_int_equal(ci.invalidate, 0);

	/* a duplicate can't raise a mode: W->R while we hold nothing readable leaves NULL */
	touch(c3, 2048, SCOUTFS_LOCK_WRITE_ONLY);
	inject(c3, 2048, SCOUTFS_LOCK_WRITE, SCOUTFS_LOCK_READ);
	assert_true(WAIT_FOR(atomic_load(&c3->raw_responses) == 2, 5000));
	assert_true(WAIT_FOR(!client_lock(c3, 2048, &ci), 5000));

	/* the server still thinks c0 writes: its next invalidation is a harmless duplicate */
	touch(&cl->clients[1], 1, SCOUTFS_LOCK_READ);
	assert_int_equal(atomic_load(&c0->inv_calls), 1);
	touch(&cl->clients[2], 1, SCOUTFS_LOCK_WRITE);
	assert_int_equal(atomic_load(&c0->inv_to_null), 1);
	check_quiet();
}

/* a failed invalidate callback (commit) is not answered but retried; shutdown answers it */
static void test_invalidate_errors(void **state)
{
	struct tclient *c0;
	struct tclient *c2;
	struct cinfo ci;
	struct bg b1;
	u64 retries;

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c0 = &cl->clients[0];
	c2 = &cl->clients[2];

	touch(c0, 1, SCOUTFS_LOCK_WRITE);
	atomic_store(&c0->inv_fail, 3);
	retries = counter_val("lock_invalidate_retry");
	bg_start(&b1, &cl->clients[1], 1, SCOUTFS_LOCK_READ, 0);
	assert_true(WAIT_FOR(atomic_load(&c0->inv_calls) >= 2, 5000));
	assert_int_equal(atomic_load(&b1.state), 0);
	assert_true(client_lock(c0, 1, &ci));
	assert_string_equal(ci.inv_mode, "write"); /* still invalidating */
	assert_int_equal(bg_join(&b1), 0);
	assert_int_equal(atomic_load(&c0->inv_calls), 4);
	assert_int_equal(atomic_load(&c0->inv_w_to_r), 1);
	assert_true(counter_val("lock_invalidate_retry") >= retries + 3);

	/* a mount whose commits keep failing shuts down: it answers without the callback */
	touch(c2, 2048, SCOUTFS_LOCK_WRITE);
	atomic_store(&c2->inv_fail, 1000000);
	bg_start(&b1, &cl->clients[1], 2048, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(atomic_load(&c2->inv_calls) >= 2, 5000));
	assert_int_equal(atomic_load(&b1.state), 0);
	lock_shutdown(c2->li);
	table_forget_client(c2);
	assert_int_equal(bg_join(&b1), 0);
	check_quiet();
}

/* a lock request the server answers with an error fails the waiters and leaves nothing */
static void test_request_errors(void **state)
{
	struct tclient *c0;
	struct lock *lk;
	u64 req;

	watchdog_arm(__func__, 30);
	cluster_create(2, 100);
	c0 = &cl->clients[0];

	atomic_store(&c0->fail_next_request, -EIO);
	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_READ, 0, &lk), -EIO);
	assert_null(lk);
	assert_int_equal(client_nr_locks(c0), 0);
	/* and the next attempt works */
	touch(c0, 1, SCOUTFS_LOCK_READ);

	/* NONBLOCK never sends */
	req = counter_val("lock_request");
	assert_int_equal(take_ino(c0, 5000, SCOUTFS_LOCK_READ, LOCK_NONBLOCK, &lk), -EAGAIN);
	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_WRITE, LOCK_NONBLOCK, &lk), -EAGAIN);
	assert_int_equal(counter_val("lock_request"), req);
	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_READ, LOCK_NONBLOCK, &lk), 0);
	drop(c0, lk, SCOUTFS_LOCK_READ);
	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_WRITE_ONLY, LOCK_NONBLOCK, &lk), -EAGAIN);

	assert_int_equal(lock_inode(c0->li, 1, SCOUTFS_LOCK_NULL, 0, NULL, &lk), -EINVAL);
	assert_int_equal(lock_inode(c0->li, 1, SCOUTFS_LOCK_READ, 0x100, NULL, &lk), -EINVAL);
	check_quiet();
}

static atomic_bool intr_flag;

static bool intr_fn(void *arg)
{
	return atomic_load(&intr_flag);
}

/* lock_inodes: sorted, deduplicated, nothing held on error */
static void test_lock_inodes(void **state)
{
	static const struct lock_waiter waiter = { .interrupted = intr_fn };
	u64 inos[4] = { 5000, 3, 1030, 2047 };
	struct lock *locks[4];
	struct tclient *c0;
	struct lock *held;
	struct cinfo ci;
	u64 t0;
	int ret;

	watchdog_arm(__func__, 30);
	cluster_create(2, 100);
	c0 = &cl->clients[0];

	assert_int_equal(lock_inodes(c0->li, inos, 4, SCOUTFS_LOCK_WRITE, NULL, locks), 0);
	assert_true(locks[2] == locks[3]);
	assert_true(locks[0] != locks[1] && locks[1] != locks[2]);
	assert_true(lock_covers(locks[0], &(struct scoutfs_key){ 0 }) == false);
	assert_int_equal(key_first(&locks[0]->start), 4096);
	assert_int_equal(key_first(&locks[1]->start), 0);
	assert_int_equal(key_first(&locks[2]->start), 1024);
	assert_true(client_lock(c0, 1030, &ci));
	assert_int_equal(ci.users[SCOUTFS_LOCK_WRITE], 1);
	lock_unlock_inodes(c0->li, locks, 4, SCOUTFS_LOCK_WRITE);
	assert_null(locks[0]);
	check_quiet();

	/* zeros are skipped */
	inos[1] = 0;
	assert_int_equal(lock_inodes(c0->li, inos, 2, SCOUTFS_LOCK_READ, NULL, locks), 0);
	assert_null(locks[1]);
	lock_unlock_inodes(c0->li, locks, 2, SCOUTFS_LOCK_READ);

	/* the middle group is held elsewhere and the wait is interrupted: nothing stays held */
	assert_int_equal(take_ino(&cl->clients[1], 1024, SCOUTFS_LOCK_WRITE, 0, &held), 0);
	inos[0] = 5000;
	inos[1] = 3;
	inos[2] = 1030;
	atomic_store(&intr_flag, false);
	t0 = now_mono_ms();
	atomic_store(&intr_flag, true);
	ret = lock_inodes(c0->li, inos, 3, SCOUTFS_LOCK_WRITE, &waiter, locks);
	assert_int_equal(ret, -EINTR);
	assert_true(now_mono_ms() - t0 < 2000);
	for (int i = 0; i < 3; i++)
		assert_null(locks[i]);
	assert_int_equal(client_busy_locks(c0), 0);
	atomic_store(&intr_flag, false);
	drop(&cl->clients[1], held, SCOUTFS_LOCK_WRITE);
	check_quiet();
}

/* scenario 12/13: the idle limit keeps the lock count bounded; relocking after shrink works */
static void test_idle_shrink(void **state)
{
	struct tclient *c0;
	struct tclient *c1;
	struct lock *lk;
	int max_locks = 0;
	struct cinfo ci;
	u64 gen;
	int calls;
	int nr;
	u64 shrinks;

	watchdog_arm(__func__, 60);
	cluster_create(2, 8);
	c0 = &cl->clients[0];
	c1 = &cl->clients[1];

	shrinks = counter_val("lock_shrink_request");
	for (u64 i = 0; i < 200; i++) {
		touch(c0, (i + 1) * 1024, SCOUTFS_LOCK_READ);
		usleep(100);
		nr = client_nr_locks(c0);
		if (nr > max_locks)
			max_locks = nr;
	}
	fprintf(stderr, "idle shrink: at most %d locks with an idle limit of 8\n", max_locks);
	/*
	 * The limit is soft: a new lock takes one round trip, giving one back takes two and the
	 * invalidation worker, so a scheduling hiccup lets locks pile up for a moment (in
	 * process a round trip takes microseconds).  Bounded, and back under the limit soon.
	 */
	assert_true(max_locks <= 100);
	assert_true(counter_val("lock_shrink_request") >= shrinks + 150);
	assert_true(WAIT_FOR(client_nr_locks(c0) <= 9, 5000));
	assert_true(WAIT_FOR(server_rid_entries(c0->rid) <= 9, 5000));

	/* shrunk locks come back, and give up a writer's cache consistently */
	touch(c1, 1024, SCOUTFS_LOCK_WRITE);
	touch(c0, 1024, SCOUTFS_LOCK_READ);
	assert_int_equal(take_ino(c0, 2048, SCOUTFS_LOCK_WRITE, 0, &lk), 0);
	drop(c0, lk, SCOUTFS_LOCK_WRITE);
	assert_true(client_lock(c0, 1024, &ci));
	gen = ci.refresh_gen;

	/* purge gives back every idle lock, without disturbing other mounts' grants */
	calls = atomic_load(&c1->inv_calls);
	lock_purge_idle(c0->li);
	assert_true(WAIT_FOR(client_nr_locks(c0) == 0, 5000));
	assert_int_equal(atomic_load(&c1->inv_calls), calls);
	assert_true(client_lock(c1, 1024, &ci));
	assert_string_equal(ci.mode, "read");
	/* a lock that comes back readable has a newer refresh_gen: cached inodes are stale */
	touch(c0, 1024, SCOUTFS_LOCK_READ);
	assert_true(client_lock(c0, 1024, &ci));
	assert_true(ci.refresh_gen > gen);
	lock_purge_idle(c0->li);
	lock_purge_idle(c1->li);
	assert_true(WAIT_FOR(client_nr_locks(c0) == 0 && client_nr_locks(c1) == 0, 5000));
	assert_true(WAIT_FOR(server_entries(NULL, NULL, 0, NULL) == 0, 5000));
	touch(c0, 1024, SCOUTFS_LOCK_READ);
	check_quiet();
}

struct hammer_arg {
	struct tclient *c;
	int nr_groups;
	u64 end_ms;
	bool shrink_only_readers;
	int seed;
	u64 ops;
};

static void *hammer_thread(void *arg)
{
	struct hammer_arg *ha = arg;
	struct tclient *c = ha->c;
	unsigned int seed = ha->seed;
	struct lock *locks[4];
	struct lock *lk;
	struct lock *lk2;
	u64 inos[4];
	int mode;
	int r;
	int ret;

	while (now_mono_ms() < ha->end_ms) {
		r = rand_r(&seed) % 100;
		mode = r < 50   ? SCOUTFS_LOCK_READ
		       : r < 80 ? SCOUTFS_LOCK_WRITE
		                : SCOUTFS_LOCK_WRITE_ONLY;
		if (ha->shrink_only_readers)
			mode = SCOUTFS_LOCK_READ;
		r = rand_r(&seed) % 100;

		if (r < 15) {
			/* several inodes, sorted and deduplicated by lock_inodes */
			int nr = 2 + rand_r(&seed) % 3;

			if (mode == SCOUTFS_LOCK_WRITE_ONLY)
				mode = SCOUTFS_LOCK_WRITE;
			for (int i = 0; i < nr; i++)
				inos[i] = 1 + (rand_r(&seed) % ha->nr_groups) * 1024 +
				          rand_r(&seed) % 1000;
			ret = lock_inodes(c->li, inos, nr, mode, NULL, locks);
			if (ret) {
				violation("c%d lock_inodes: %d", c->idx, ret);
				break;
			}
			for (int i = 0; i < nr; i++) {
				bool first = true;

				for (int j = 0; j < i; j++)
					first &= locks[j] != locks[i];
				if (first)
					user_begin(c, locks[i], mode);
			}
			usleep(rand_r(&seed) % 200);
			for (int i = 0; i < nr; i++) {
				bool first = true;

				for (int j = 0; j < i; j++)
					first &= locks[j] != locks[i];
				if (first)
					user_end(c, locks[i], mode);
			}
			lock_unlock_inodes(c->li, locks, nr, mode);
		} else {
			u64 ino = (rand_r(&seed) % ha->nr_groups) * 1024 + 5;
			int flags = r < 20 ? LOCK_NONBLOCK : 0;

			ret = take_ino(c, ino, mode, flags, &lk);
			if (ret == -EAGAIN && flags)
				continue;
			if (ret) {
				violation("c%d lock: %d", c->idx, ret);
				break;
			}
			if (r < 25) {
				/* the same lock twice in one thread (two index items of one group)
				 */
				ret = take_ino(c, ino, mode, 0, &lk2);
				if (ret) {
					violation("c%d nested lock: %d", c->idx, ret);
				} else {
					usleep(rand_r(&seed) % 100);
					drop(c, lk2, mode);
				}
			}
			usleep(rand_r(&seed) % 300);
			drop(c, lk, mode);
		}
		if (r == 99)
			lock_purge_idle(c->li);
		ha->ops++;
	}
	return NULL;
}

static u64 run_hammer(int nr_threads, int nr_groups, unsigned int secs, bool readers)
{
	struct hammer_arg *args;
	pthread_t *threads;
	int nr = 0;
	u64 ops = 0;
	u64 end = now_mono_ms() + secs * 1000ULL;

	args = calloc(MAX_CLIENTS * nr_threads, sizeof(*args));
	threads = calloc(MAX_CLIENTS * nr_threads, sizeof(*threads));
	assert_non_null(args);
	assert_non_null(threads);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (!cl->clients[i].present)
			continue;
		for (int t = 0; t < nr_threads; t++) {
			args[nr] = (struct hammer_arg){ .c = &cl->clients[i],
				                        .nr_groups = nr_groups,
				                        .end_ms = end,
				                        .shrink_only_readers = readers && i > 0,
				                        .seed = (int)random_u64() };
			assert_int_equal(
			        pthread_create(&threads[nr], NULL, hammer_thread, &args[nr]), 0);
			nr++;
		}
	}
	for (int i = 0; i < nr; i++) {
		pthread_join(threads[i], NULL);
		ops += args[i].ops;
	}
	free(args);
	free(threads);
	return ops;
}

/* scenario 4/14: many threads on every client, random modes on a few locks */
static void test_hammer(void **state)
{
	u64 ops;

	watchdog_arm(__func__, 90);
	cluster_create(4, 2);
	ops = run_hammer(3, 4, 5, false);
	fprintf(stderr, "hammer: %llu lock operations, %llu grants, %llu invalidations\n",
	        (unsigned long long)ops, (unsigned long long)counter_val("lock_grant"),
	        (unsigned long long)counter_val("lock_invalidate"));
	assert_true(ops > 100);
	check_quiet();
	/* everything can still be given back */
	for (int i = 0; i < cl->nr; i++)
		lock_purge_idle(cl->clients[i].li);
	assert_true(WAIT_FOR(server_entries(NULL, NULL, 0, NULL) == 0, 10000));
	for (int i = 0; i < cl->nr; i++)
		assert_int_equal(client_nr_locks(&cl->clients[i]), 0);
}

struct sampler_arg {
	u64 end;
	int max;
};

static void *sampler_thread(void *arg)
{
	struct sampler_arg *sa = arg;
	int nr;

	while (now_mono_ms() < sa->end) {
		for (int i = 0; i < cl->nr; i++) {
			nr = client_nr_locks(&cl->clients[i]);
			if (nr > sa->max)
				sa->max = nr;
		}
		sleep_ms(5);
	}
	return NULL;
}

/* scenario 12: readers everywhere with a tiny idle limit, one client also writing */
static void test_shrink_vs_use(void **state)
{
	struct sampler_arg sa;
	pthread_t t;
	u64 shrinks;

	watchdog_arm(__func__, 60);
	cluster_create(3, 4);
	shrinks = counter_val("lock_shrink_request");
	sa.end = now_mono_ms() + 3000;
	sa.max = 0;
	assert_int_equal(pthread_create(&t, NULL, sampler_thread, &sa), 0);
	run_hammer(3, 12, 3, true);
	pthread_join(t, NULL);
	fprintf(stderr, "shrink vs use: at most %d locks per client\n", sa.max);
	/* sanity: nothing leaks locks beyond the 12 groups in use */
	assert_true(sa.max <= 12);
	assert_true(counter_val("lock_shrink_request") > shrinks + 100);
	check_quiet();
}

/* scenario 24/25: every new writer's write_seq is above every earlier writer's */
static void test_write_seq(void **state)
{
	u64 last = 0;
	struct lock *lk;
	struct lock *lk2;

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	for (int i = 0; i < 30; i++) {
		struct tclient *c = &cl->clients[i % 3];

		assert_int_equal(take_ino(c, 1, SCOUTFS_LOCK_WRITE, 0, &lk), 0);
		assert_true(lk->write_seq > last);
		last = lk->write_seq;
		drop(c, lk, SCOUTFS_LOCK_WRITE);
	}
	assert_int_equal(take_ino(&cl->clients[0], 1, SCOUTFS_LOCK_WRITE_ONLY, 0, &lk), 0);
	assert_int_equal(take_ino(&cl->clients[1], 1, SCOUTFS_LOCK_WRITE_ONLY, 0, &lk2), 0);
	assert_true(lk->write_seq > last && lk2->write_seq > last);
	assert_true(lk->write_seq != lk2->write_seq);
	drop(&cl->clients[0], lk, SCOUTFS_LOCK_WRITE_ONLY);
	drop(&cl->clients[1], lk2, SCOUTFS_LOCK_WRITE_ONLY);
	/* a READ grant carries no write seq */
	touch(&cl->clients[2], 1, SCOUTFS_LOCK_READ);
	check_quiet();
}

/* scenarios 18, 21, 25: recovery reinstalls grants, blocks new grants, raises the seq */
static void test_recovery(void **state)
{
	struct tclient *c[4];
	struct tclient *c4;
	struct lock *wo;
	struct bg nb;
	u64 max_ws = 0;
	u64 recov;
	struct cinfo ci;
	char mode[16];
	int inv1;
	int inv2;

	watchdog_arm(__func__, 60);
	cluster_create(4, 1000);
	for (int i = 0; i < 4; i++)
		c[i] = &cl->clients[i];

	/* c0: 30 READ locks (two recovery rounds) and a WRITE; c1, c2 share READ; c3 holds WO */
	for (u64 i = 0; i < 30; i++)
		touch(c[0], (100 + i) * 1024, SCOUTFS_LOCK_READ);
	touch(c[0], 1, SCOUTFS_LOCK_WRITE);
	touch(c[1], 1024, SCOUTFS_LOCK_READ);
	touch(c[2], 1024, SCOUTFS_LOCK_READ);
	assert_int_equal(take_ino(c[3], 2048, SCOUTFS_LOCK_WRITE_ONLY, 0, &wo), 0);
	assert_true(client_lock(c[0], 1, &ci));
	max_ws = ci.write_seq > wo->write_seq ? ci.write_seq : wo->write_seq;

	recov = counter_val("lock_server_recover_entry");
	failover(0x7, true); /* c3 greets later */

	assert_true(WAIT_FOR(server_rid_entries(c[0]->rid) == 31, 5000));
	assert_true(WAIT_FOR(server_rid_entries(c[1]->rid) == 1, 5000));
	assert_true(WAIT_FOR(server_rid_entries(c[2]->rid) == 1, 5000));
	assert_int_equal(ino_entries(1, "granted", c[0]->rid, mode), 1);
	assert_string_equal(mode, "write");
	assert_true(server_has_rid_field(c[0]->rid));
	assert_int_equal(atomic_load(&cl->recovery_done_calls), 0);

	/* a brand-new mount's conflicting request waits for every old mount to recover */
	c4 = add_client(1000);
	inv1 = atomic_load(&c[1]->inv_calls);
	inv2 = atomic_load(&c[2]->inv_calls);
	bg_start(&nb, c4, 1024, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(ino_entries(1024, "requested", c4->rid, NULL) == 1, 5000));
	sleep_ms(200);
	assert_int_equal(atomic_load(&nb.state), 0);
	assert_int_equal(atomic_load(&c[1]->inv_calls), inv1);
	assert_int_equal(atomic_load(&c[2]->inv_calls), inv2);

	greet(c[3], true);
	assert_int_equal(bg_join(&nb), 0);
	assert_int_equal(atomic_load(&cl->recovery_done_calls), 1);
	assert_int_equal(atomic_load(&c[1]->inv_calls), inv1 + 1);
	assert_int_equal(atomic_load(&c[2]->inv_calls), inv2 + 1);

	/* raise_seq saw every write_seq, and the new grant is above them all */
	assert_true(counter_val("lock_server_recover_entry") >= recov + 33);
	pthread_mutex_lock(&cl->seq_mutex);
	assert_true(cl->max_raised >= max_ws);
	pthread_mutex_unlock(&cl->seq_mutex);
	assert_true(nb.write_seq > max_ws);
	assert_int_equal(server_rid_entries(c[3]->rid), 1);

	drop(c[3], wo, SCOUTFS_LOCK_WRITE_ONLY);
	/* the recovered WRITE is a real grant: a reader takes it back */
	touch(c[1], 1, SCOUTFS_LOCK_READ);
	assert_int_equal(atomic_load(&c[0]->inv_w_to_r), 1);
	check_quiet();
}

/* R3: recovery while an invalidation runs reports the old mode; nothing conflicting is granted */
static void test_recovery_mid_invalidation(void **state)
{
	struct tclient *c0;
	struct tclient *c1;
	struct cinfo ci;
	struct bg rd;
	char mode[16];
	u64 noop;

	watchdog_arm(__func__, 60);
	cluster_create(3, 100);
	c0 = &cl->clients[0];
	c1 = &cl->clients[1];

	touch(c0, 1, SCOUTFS_LOCK_WRITE);
	pthread_mutex_lock(&c0->gate_mutex);
	c0->gate_closed = true;
	pthread_mutex_unlock(&c0->gate_mutex);

	bg_start(&rd, c1, 1, SCOUTFS_LOCK_READ, 0);
	assert_true(WAIT_FOR(atomic_load(&c0->gate_waiting) == 1, 5000));
	assert_true(client_lock(c0, 1, &ci));
	assert_string_equal(ci.mode, "read");
	assert_string_equal(ci.inv_mode, "write");

	noop = counter_val("lock_invalidate_noop");
	failover(0x7, false);
	assert_true(WAIT_FOR(atomic_load(&cl->recovery_done_calls) == 1, 5000));
	assert_int_equal(ino_entries(1, NULL, c0->rid, mode), 1);
	assert_string_equal(mode, "write");

	/* the new server re-invalidates c0 and waits for it */
	assert_true(WAIT_FOR(client_lock(c0, 1, &ci) && ci.invalidate == 2, 5000));
	sleep_ms(200);
	assert_int_equal(atomic_load(&rd.state), 0);

	pthread_mutex_lock(&c0->gate_mutex);
	c0->gate_closed = false;
	pthread_cond_broadcast(&c0->gate_cond);
	pthread_mutex_unlock(&c0->gate_mutex);

	assert_int_equal(bg_join(&rd), 0);
	assert_int_equal(atomic_load(&c0->inv_calls), 1);
	assert_true(WAIT_FOR(counter_val("lock_invalidate_noop") == noop + 1, 5000));
	assert_int_equal(ino_entries(1, "granted", c0->rid, mode), 1);
	assert_string_equal(mode, "read");
	check_quiet();
}

/*
 * A grant must not be used while an invalidation still drops the range.  c0 is invalidating
 * READ->NULL (callback blocked) with its own WRITE request queued when the server dies; the
 * new server recovers c0's READ and grants the upgrade in place.  c0 defers it until the
 * callback is done, and a second new server hears about the deferred WRITE.
 */
static void test_grant_during_invalidation(void **state)
{
	struct tclient *c0;
	struct tclient *c1;
	struct cinfo ci;
	struct bg w0;
	struct bg w1;
	char mode[16];
	u64 deferred;

	watchdog_arm(__func__, 60);
	cluster_create(3, 100);
	c0 = &cl->clients[0];
	c1 = &cl->clients[1];

	touch(c0, 1, SCOUTFS_LOCK_READ);
	pthread_mutex_lock(&c0->gate_mutex);
	c0->gate_closed = true;
	pthread_mutex_unlock(&c0->gate_mutex);
	bg_start(&w1, c1, 1, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(atomic_load(&c0->gate_waiting) == 1, 5000));
	bg_start(&w0, c0, 1, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(ino_entries(1, "requested", c0->rid, NULL) == 1, 5000));

	deferred = counter_val("lock_grant_deferred");
	failover(0x5, false); /* c1 greets after c0's request is queued */
	assert_true(WAIT_FOR(ino_entries(1, "requested", c0->rid, NULL) == 1 &&
	                             ino_entries(1, "granted", c0->rid, mode) == 1,
	                     5000));
	assert_string_equal(mode, "read");
	greet(c1, true);
	assert_true(WAIT_FOR(counter_val("lock_grant_deferred") == deferred + 1, 5000));
	sleep_ms(100);
	assert_int_equal(atomic_load(&w0.state), 0);
	assert_true(client_lock(c0, 1, &ci));
	assert_string_equal(ci.mode, "null");
	assert_string_equal(ci.inv_mode, "read");

	failover(0x7, false);
	assert_true(WAIT_FOR(atomic_load(&cl->recovery_done_calls) == 2, 5000));
	/* recovered as WRITE, and already being invalidated again for c1 */
	assert_int_equal(ino_entries(1, NULL, c0->rid, mode), 1);
	assert_string_equal(mode, "write");

	pthread_mutex_lock(&c0->gate_mutex);
	c0->gate_closed = false;
	pthread_cond_broadcast(&c0->gate_cond);
	pthread_mutex_unlock(&c0->gate_mutex);
	assert_int_equal(bg_join(&w0), 0);
	assert_int_equal(bg_join(&w1), 0);
	assert_true(w0.stamp < w1.stamp);
	check_quiet();
}

/* a failover under load: no hang, no violation */
static void *failover_thread(void *arg)
{
	u64 end = *(u64 *)arg;

	while (now_mono_ms() < end) {
		sleep_ms(300);
		failover(0xff, false);
	}
	return NULL;
}

static void test_failover_under_load(void **state)
{
	pthread_t t;
	u64 end;
	u64 ops;

	watchdog_arm(__func__, 90);
	cluster_create(3, 4);
	end = now_mono_ms() + 3000;
	assert_int_equal(pthread_create(&t, NULL, failover_thread, &end), 0);
	ops = run_hammer(2, 4, 4, false);
	pthread_join(t, NULL);
	fprintf(stderr, "failover under load: %llu lock operations, %d recoveries\n",
	        (unsigned long long)ops, atomic_load(&cl->recovery_done_calls));
	assert_true(atomic_load(&cl->recovery_done_calls) >= 3);
	check_quiet();
}

/* scenarios 31/32: a departed client's entries go away and unblock everyone waiting */
static void test_farewell(void **state)
{
	struct tclient *c0;
	struct lock *held;
	struct bg b1;
	struct bg b2;
	u64 enotconn;
	int ret;

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c0 = &cl->clients[0];

	touch(c0, 2048, SCOUTFS_LOCK_READ);
	assert_int_equal(take_ino(c0, 1, SCOUTFS_LOCK_WRITE, 0, &held), 0);
	bg_start(&b1, &cl->clients[1], 1, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(ino_entries(1, "invalidated", c0->rid, NULL) == 1, 5000));

	/* c0 goes away; sending to it is not an error for the server */
	atomic_store(&c0->dead, true);
	table_forget_client(c0);
	enotconn = counter_val("lock_server_enotconn");
	bg_start(&b2, &cl->clients[2], 2048, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(counter_val("lock_server_enotconn") > enotconn, 5000));
	assert_true(WAIT_FOR(ino_entries(2048, "invalidated", c0->rid, NULL) == 1, 5000));
	sleep_ms(50);
	assert_int_equal(atomic_load(&b1.state), 0);
	assert_int_equal(atomic_load(&b2.state), 0);

	pthread_rwlock_rdlock(&cl->deliver_lock);
	ret = lock_server_farewell(cl->ls, c0->rid);
	pthread_rwlock_unlock(&cl->deliver_lock);
	assert_int_equal(ret, 0);
	assert_int_equal(bg_join(&b1), 0);
	assert_int_equal(bg_join(&b2), 0);
	assert_int_equal(server_rid_entries(c0->rid), 0);
	assert_false(server_has_rid_field(c0->rid));
	assert_true(server_has_rid_field(cl->clients[1].rid));

	lock_unlock(c0->li, held, SCOUTFS_LOCK_WRITE);
	stop_client(c0);
	c0->present = false;
	check_quiet();
}

static void *intr_waiter_thread(void *arg)
{
	static const struct lock_waiter waiter = { .interrupted = intr_fn };
	struct tclient *c = arg;
	struct scoutfs_key start;
	struct scoutfs_key end;
	struct lock *lk;

	lock_inode_range(1, &start, &end);
	return (void *)(intptr_t)lock_key_range(c->li, SCOUTFS_LOCK_WRITE, 0, &start, &end, &waiter,
	                                        &lk);
}

/* an interrupted wait returns -EINTR and leaves only the request, which completes */
static void test_interrupted_wait(void **state)
{
	struct tclient *c1;
	struct lock *held;
	struct lock *lk;
	struct cinfo ci;
	pthread_t t;
	void *ret;
	u64 t0;

	watchdog_arm(__func__, 30);
	cluster_create(2, 100);
	c1 = &cl->clients[1];

	assert_int_equal(take_ino(&cl->clients[0], 1, SCOUTFS_LOCK_WRITE, 0, &held), 0);
	atomic_store(&intr_flag, false);
	assert_int_equal(pthread_create(&t, NULL, intr_waiter_thread, c1), 0);
	assert_true(WAIT_FOR(client_lock(c1, 1, &ci) && ci.request == 1, 5000));
	sleep_ms(100);
	t0 = now_mono_ms();
	atomic_store(&intr_flag, true);
	pthread_join(t, &ret);
	assert_int_equal((int)(intptr_t)ret, -EINTR);
	assert_true(now_mono_ms() - t0 < 1000);
	atomic_store(&intr_flag, false);

	assert_true(client_lock(c1, 1, &ci));
	assert_int_equal(ci.waiters[SCOUTFS_LOCK_WRITE] + ci.users[SCOUTFS_LOCK_WRITE], 0);

	/* the request still completes once the holder lets go, and the lock idles */
	drop(&cl->clients[0], held, SCOUTFS_LOCK_WRITE);
	assert_true(WAIT_FOR(client_lock(c1, 1, &ci) && ci.request == 0, 5000));
	assert_string_equal(ci.mode, "write");
	assert_int_equal(take_ino(c1, 1, SCOUTFS_LOCK_WRITE, LOCK_NONBLOCK, &lk), 0);
	drop(c1, lk, SCOUTFS_LOCK_WRITE);
	check_quiet();
}

/* R9: shutdown fails waiters and new calls but keeps answering invalidations */
static void test_shutdown(void **state)
{
	struct tclient *c1;
	struct lock *held;
	struct lock *lk;
	struct bg w;
	int calls;

	watchdog_arm(__func__, 30);
	cluster_create(3, 100);
	c1 = &cl->clients[1];

	assert_int_equal(take_ino(&cl->clients[0], 1, SCOUTFS_LOCK_WRITE, 0, &held), 0);
	touch(c1, 2048, SCOUTFS_LOCK_READ);
	bg_start(&w, c1, 1, SCOUTFS_LOCK_WRITE, 0);
	assert_true(WAIT_FOR(ino_entries(1, "requested", c1->rid, NULL) == 1, 5000));

	lock_shutdown(c1->li);
	assert_int_equal(bg_join(&w), -ESHUTDOWN);
	assert_int_equal(take_ino(c1, 2048, SCOUTFS_LOCK_READ, 0, &lk), -ESHUTDOWN);
	table_forget_client(c1);

	/* another mount needs c1's READ: answered without the invalidate callback */
	calls = atomic_load(&c1->inv_calls);
	touch(&cl->clients[2], 2048, SCOUTFS_LOCK_WRITE);
	assert_int_equal(atomic_load(&c1->inv_calls), calls);

	drop(&cl->clients[0], held, SCOUTFS_LOCK_WRITE);
	/* c1's request is granted and taken back again for c2 */
	touch(&cl->clients[2], 1, SCOUTFS_LOCK_WRITE);
	assert_int_equal(atomic_load(&c1->inv_calls), calls);
	check_quiet();
}

/* a lock server alone, recording what it sends */
struct recorder {
	int grants;
	int invalidates;
	u64 grant_rid;
	struct scoutfs_net_lock grant;
	u64 inv_rid;
	struct scoutfs_net_lock inv;
	u64 seq;
};

static int rec_send_grant(void *arg, u64 rid, u64 net_id, const struct scoutfs_net_lock *nl)
{
	struct recorder *r = arg;

	r->grants++;
	r->grant_rid = rid;
	r->grant = *nl;
	return 0;
}

static int rec_send_invalidate(void *arg, u64 rid, const struct scoutfs_net_lock *nl)
{
	struct recorder *r = arg;

	r->invalidates++;
	r->inv_rid = rid;
	r->inv = *nl;
	return 0;
}

static int rec_send_recover(void *arg, u64 rid, const struct scoutfs_key *key)
{
	return 0;
}

static u64 rec_next_seq(void *arg)
{
	struct recorder *r = arg;

	return ++r->seq;
}

static void rec_raise_seq(void *arg, u64 seq)
{
}

static bool rec_recovery_pending(void *arg)
{
	return false;
}

static void rec_recovery_finished(void *arg, u64 rid)
{
}

static const struct lock_server_ops rec_ops = {
	.send_grant = rec_send_grant,
	.send_invalidate = rec_send_invalidate,
	.send_recover = rec_send_recover,
	.next_seq = rec_next_seq,
	.raise_seq = rec_raise_seq,
	.recovery_pending = rec_recovery_pending,
	.recovery_finished = rec_recovery_finished,
};

static int server_request(struct lock_server *ls, u64 rid, int mode)
{
	struct scoutfs_net_lock nl;

	memset(&nl, 0, sizeof(nl));
	nl.key = ino_key(1);
	nl.new_mode = mode;
	return lock_server_request(ls, rid, 7, &nl);
}

/* locking.md 1.3: every granted mode against every requested mode, other and same client */
static void test_server_matrix(void **state)
{
	enum { N = SCOUTFS_LOCK_NULL, R = SCOUTFS_LOCK_READ, W = SCOUTFS_LOCK_WRITE };
	enum { WO = SCOUTFS_LOCK_WRITE_ONLY };
	/* compatible[granted][requested] for different clients, then for the same client */
	static const bool other[NR_MODES][NR_MODES] = {
		[R] = { [N] = true, [R] = true },
		[W] = { [N] = true },
		[WO] = { [N] = true, [WO] = true },
	};
	static const bool same[NR_MODES][NR_MODES] = {
		[R] = { [R] = true, [W] = true },
		[WO] = { [WO] = true },
	};
	struct recorder rec;
	struct lock_server *ls;
	bool compat;
	u64 rid;

	for (int g = R; g <= WO; g++) {
		for (int r = N; r <= WO; r++) {
			for (int s = 0; s < 2; s++) {
				memset(&rec, 0, sizeof(rec));
				assert_int_equal(lock_server_create(&rec_ops, &rec, &ls), 0);
				assert_int_equal(server_request(ls, 1, g), 0);
				assert_int_equal(rec.grants, 1);
				assert_int_equal(rec.grant.new_mode, g);
				assert_int_equal(le64_to_cpu(rec.grant.write_seq) != 0,
				                 g == W || g == WO);

				rid = s ? 1 : 2;
				compat = s ? same[g][r] : other[g][r];
				assert_int_equal(server_request(ls, rid, r), 0);
				if (compat) {
					assert_int_equal(rec.invalidates, 0);
					assert_int_equal(rec.grants, 2);
					assert_int_equal(rec.grant_rid, rid);
					assert_int_equal(rec.grant.new_mode, r);
					/* the old mode comes from the server's own table */
					assert_int_equal(rec.grant.old_mode, s ? g : N);
				} else {
					assert_int_equal(rec.grants, 1);
					assert_int_equal(rec.invalidates, 1);
					assert_int_equal(rec.inv_rid, 1);
					assert_int_equal(rec.inv.old_mode, g);
					assert_int_equal(rec.inv.new_mode,
					                 g == W && r == R ? R : N);
					/* the answer lets the request through */
					assert_int_equal(
					        lock_server_invalidate_response(ls, 1, &rec.inv),
					        0);
					assert_int_equal(rec.grants, 2);
					assert_int_equal(rec.grant_rid, rid);
					assert_int_equal(rec.grant.new_mode, r);
					assert_int_equal(rec.grant.old_mode,
					                 s ? rec.inv.new_mode : N);
				}
				/* NULL grants are not tracked; a downgraded holder keeps READ */
				assert_int_equal(lock_server_rid_entries(ls, rid), r != N ? 1 : 0);
				if (!s)
					assert_int_equal(lock_server_rid_entries(ls, 1),
					                 compat || (g == W && r == R) ? 1 : 0);
				lock_server_destroy(ls);
			}
		}
	}
}

/* malformed messages to the server are refused */
static void test_server_validation(void **state)
{
	struct scoutfs_net_lock nl;
	struct {
		struct scoutfs_net_lock_recover nlr;
		struct scoutfs_net_lock locks[2];
	} rec;
	u64 rid;

	watchdog_arm(__func__, 30);
	cluster_create(1, 100);
	rid = cl->clients[0].rid;

	pthread_rwlock_rdlock(&cl->deliver_lock);
	memset(&nl, 0, sizeof(nl));
	nl.new_mode = SCOUTFS_LOCK_INVALID;
	assert_int_equal(lock_server_request(cl->ls, rid, 1, &nl), -EINVAL);
	nl.new_mode = SCOUTFS_LOCK_READ;
	nl.old_mode = 9;
	assert_int_equal(lock_server_request(cl->ls, rid, 1, &nl), -EINVAL);
	nl.old_mode = SCOUTFS_LOCK_READ;
	nl.new_mode = 200;
	assert_int_equal(lock_server_invalidate_response(cl->ls, rid, &nl), -EINVAL);

	memset(&rec, 0, sizeof(rec));
	rec.nlr.nr = cpu_to_le16(2);
	assert_int_equal(
	        lock_server_recover_response(cl->ls, rid, &rec.nlr, sizeof(rec.nlr) + sizeof(nl)),
	        -EINVAL);
	rec.nlr.nr = cpu_to_le16(1);
	rec.locks[0].new_mode = SCOUTFS_LOCK_INVALID;
	assert_int_equal(lock_server_recover_response(cl->ls, rid, &rec.nlr, sizeof(rec)), -EINVAL);
	assert_int_equal(lock_server_recover_response(cl->ls, rid, &rec.nlr, 4), -EINVAL);

	/* a duplicate recovered grant */
	rec.locks[0].key = ino_key(1);
	rec.locks[0].old_mode = rec.locks[0].new_mode = SCOUTFS_LOCK_READ;
	assert_int_equal(lock_server_recover_response(cl->ls, rid, &rec.nlr, sizeof(rec)), 0);
	assert_int_equal(lock_server_recover_response(cl->ls, rid, &rec.nlr, sizeof(rec)), -EEXIST);
	assert_int_equal(lock_server_rid_entries(cl->ls, rid), 1);
	pthread_rwlock_unlock(&cl->deliver_lock);

	/* the client was not actually holding it: the server's invalidation is answered */
	touch(&cl->clients[0], 1, SCOUTFS_LOCK_WRITE);
	check_quiet();
}

/* an optional argument selects tests by name pattern, e.g. test_lock 'test_recovery*' */
int main(int argc, char **argv)
{
	pthread_t wd;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranges),
		cmocka_unit_test_setup_teardown(test_write_read_downgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_fairness, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_back_to_back_invalidations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_duplicate_invalidation, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_invalidate_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_inodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_shrink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery_mid_invalidation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_during_invalidation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_farewell, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_validation, setup, teardown),
		cmocka_unit_test(test_server_matrix),
		cmocka_unit_test_setup_teardown(test_hammer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shrink_vs_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_under_load, setup, teardown),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	pthread_create(&wd, NULL, watchdog_thread, NULL);
	pthread_detach(wd);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
