/*
 * test_quorum.c: quorum elections between agents in one process.
 *
 * Each test gets a sparse file as the metadata device with the 15 quorum blocks written as
 * valid empty blocks, and runs agents on 127.0.0.1 with free ports.  Every agent has its
 * own device handle and a fake server: start makes it STARTING, a thread looks for old
 * leaders to fence (as a real server does before it writes anything) and then reports UP;
 * stop makes it STOPPING and DOWN a few ms later.
 *
 * The tests use heartbeat timeouts of 1-2 s (quorum_start takes the value as given; only
 * the mount option parser enforces the 2 s minimum) so failover after a crash stays short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block/block.h"
#include "dev/dev.h"
#include "format/format.h"
#include "quorum/quorum.h"
#include "util/counters.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/util.h"

#define TEST_FSID  0x5c0f5f5100c0ffeeULL
#define DEV_BYTES  (8ULL << 20)
#define MAX_AGENTS 3
#define MAX_OLD    8

#define wait_for(cond, ms)                                                                         \
	({                                                                                         \
		u64 __end = now_mono_ms() + (ms);                                                  \
		bool __ok;                                                                         \
		while (!(__ok = (cond)) && now_mono_ms() < __end)                                  \
			usleep(5000);                                                              \
		__ok;                                                                              \
	})

/* ------------------------------------------------------------------------------------- */
/* a fake server */

struct fake_server {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	enum quorum_server_status status;
	u64 term;
	bool stop_req;
	int nr_starts;
	pthread_t thread;
	bool thread_live; /* only touched by the agent thread (start) and cleanup */

	/* the old leaders the last start found */
	bool old_done;
	int old_ret;
	int nr_old;
	u64 old_rids[MAX_OLD];
	u64 old_terms[MAX_OLD];

	/* what the server needs to look for old leaders */
	const char *dev_path;
	const struct scoutfs_quorum_config *qconf;
	u64 rid;
};

struct old_list {
	int nr;
	u64 rids[MAX_OLD];
	u64 terms[MAX_OLD];
	struct sockaddr_in sins[MAX_OLD];
};

static int record_old(void *arg, u64 rid, u64 term, const struct sockaddr_in *sin)
{
	struct old_list *ol = arg;

	if (ol->nr < MAX_OLD) {
		ol->rids[ol->nr] = rid;
		ol->terms[ol->nr] = term;
		ol->sins[ol->nr] = *sin;
		ol->nr++;
	}
	return 0;
}

static void *fake_thread(void *arg)
{
	struct fake_server *srv = arg;
	struct old_list ol = { 0 };
	struct dev *dev = NULL;
	u64 term;
	int ret;

	usleep(20000);
	pthread_mutex_lock(&srv->mutex);
	term = srv->term;
	pthread_mutex_unlock(&srv->mutex);

	ret = dev_open(srv->dev_path, DEV_RDONLY, &dev);
	if (ret == 0)
		ret = quorum_for_each_old_leader(dev, TEST_FSID, srv->qconf, term, srv->rid,
		                                 record_old, &ol);
	dev_close(dev);

	pthread_mutex_lock(&srv->mutex);
	srv->old_ret = ret;
	srv->nr_old = ol.nr;
	memcpy(srv->old_rids, ol.rids, sizeof(ol.rids));
	memcpy(srv->old_terms, ol.terms, sizeof(ol.terms));
	srv->old_done = true;
	if (!srv->stop_req)
		srv->status = QUORUM_SERVER_UP;
	while (!srv->stop_req)
		pthread_cond_wait(&srv->cond, &srv->mutex);
	pthread_mutex_unlock(&srv->mutex);

	usleep(10000);
	pthread_mutex_lock(&srv->mutex);
	srv->status = QUORUM_SERVER_DOWN;
	pthread_mutex_unlock(&srv->mutex);
	return NULL;
}

static void fake_start(void *arg, u64 term)
{
	struct fake_server *srv = arg;

	if (srv->thread_live) {
		pthread_join(srv->thread, NULL);
		srv->thread_live = false;
	}
	pthread_mutex_lock(&srv->mutex);
	srv->status = QUORUM_SERVER_STARTING;
	srv->term = term;
	srv->stop_req = false;
	srv->old_done = false;
	srv->nr_starts++;
	pthread_mutex_unlock(&srv->mutex);
	assert_int_equal(pthread_create(&srv->thread, NULL, fake_thread, srv), 0);
	srv->thread_live = true;
}

/* also how a test makes the server fail on its own */
static void fake_stop(void *arg)
{
	struct fake_server *srv = arg;

	pthread_mutex_lock(&srv->mutex);
	srv->stop_req = true;
	if (srv->status == QUORUM_SERVER_STARTING || srv->status == QUORUM_SERVER_UP)
		srv->status = QUORUM_SERVER_STOPPING;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->mutex);
}

static enum quorum_server_status fake_status(void *arg)
{
	struct fake_server *srv = arg;
	enum quorum_server_status status;

	pthread_mutex_lock(&srv->mutex);
	status = srv->status;
	pthread_mutex_unlock(&srv->mutex);
	return status;
}

static const struct quorum_server_ops fake_ops = {
	.start = fake_start,
	.stop = fake_stop,
	.status = fake_status,
};

/* ------------------------------------------------------------------------------------- */
/* the environment of one test */

struct agent {
	struct dev *dev;
	struct fake_server srv;
	struct quorum *q;
	u64 rid;
	int slot;
};

struct env {
	char path[64];
	struct dev *dev; /* the test's own view of the device */
	struct scoutfs_quorum_config qconf;
	u16 ports[SCOUTFS_QUORUM_MAX_SLOTS];
	struct agent agents[MAX_AGENTS];
};

static void pick_ports(u16 *ports, int nr)
{
	struct sockaddr_in sin;
	socklen_t len;
	int fds[SCOUTFS_QUORUM_MAX_SLOTS];

	for (int i = 0; i < nr; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		assert_true(fds[i] >= 0);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
		len = sizeof(sin);
		assert_int_equal(getsockname(fds[i], (struct sockaddr *)&sin, &len), 0);
		ports[i] = ntohs(sin.sin_port);
	}
	for (int i = 0; i < nr; i++)
		close(fds[i]);
}

static void set_slot(struct scoutfs_quorum_config *qconf, int slot, u32 addr, u16 port)
{
	qconf->slots[slot].addr.family = cpu_to_le16(SCOUTFS_INET_FAMILY_V4);
	qconf->slots[slot].addr.addr = cpu_to_le32(addr);
	qconf->slots[slot].addr.port = cpu_to_le16(port);
}

static int env_setup(void **state)
{
	const char *tmpdir = getenv("TMPDIR");
	struct env *env;
	void *buf;
	int fd;

	env = calloc(1, sizeof(*env));
	assert_non_null(env);
	snprintf(env->path, sizeof(env->path), "%s/test_quorum.XXXXXX", tmpdir ? tmpdir : "/tmp");
	fd = mkstemp(env->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DEV_BYTES), 0);
	close(fd);
	assert_int_equal(dev_open(env->path, DEV_RDWR, &env->dev), 0);

	/* the 15 quorum blocks as mkfs writes them: valid and empty */
	buf = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	assert_non_null(buf);
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		memset(buf, 0, SCOUTFS_BLOCK_SM_SIZE);
		((struct scoutfs_block_header *)buf)->seq = cpu_to_le64(1);
		assert_int_equal(block_sm_write(env->dev, SCOUTFS_QUORUM_BLKNO + i,
		                                SCOUTFS_BLOCK_MAGIC_QUORUM, TEST_FSID, buf,
		                                sizeof(struct scoutfs_block_header)),
		                 0);
	}
	assert_int_equal(dev_flush(env->dev), 0);
	free(buf);

	pick_ports(env->ports, 5);
	*state = env;
	return 0;
}

static void agent_cleanup(struct agent *a)
{
	quorum_destroy(a->q);
	a->q = NULL;
	if (a->srv.thread_live) {
		fake_stop(&a->srv);
		pthread_join(a->srv.thread, NULL);
		a->srv.thread_live = false;
	}
	if (a->dev) {
		dev_close(a->dev);
		a->dev = NULL;
		pthread_mutex_destroy(&a->srv.mutex);
		pthread_cond_destroy(&a->srv.cond);
	}
}

static int env_teardown(void **state)
{
	struct env *env = *state;

	for (int i = 0; i < MAX_AGENTS; i++)
		agent_cleanup(&env->agents[i]);
	dev_close(env->dev);
	unlink(env->path);
	free(env);
	return 0;
}

/* configure slots 0..nr-1 on the loopback address */
static void env_qconf(struct env *env, int nr)
{
	memset(&env->qconf, 0, sizeof(env->qconf));
	for (int i = 0; i < nr; i++)
		set_slot(&env->qconf, i, INADDR_LOOPBACK, env->ports[i]);
}

/* start (or restart, with a new rid) the agent of a slot */
static int agent_start(struct env *env, int idx, int slot, u64 rid, u64 hb_ms)
{
	struct agent *a = &env->agents[idx];

	agent_cleanup(a);
	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->srv.mutex, NULL);
	pthread_cond_init(&a->srv.cond, NULL);
	a->srv.dev_path = env->path;
	a->srv.qconf = &env->qconf;
	a->srv.rid = rid;
	a->rid = rid;
	a->slot = slot;
	assert_int_equal(dev_open(env->path, DEV_RDWR, &a->dev), 0);
	return quorum_start(a->dev, TEST_FSID, rid, &env->qconf, slot, hb_ms, &fake_ops, &a->srv,
	                    &a->q);
}

static bool agent_leads(struct agent *a)
{
	return a->q && quorum_is_leader(a->q);
}

static int count_leaders(struct env *env, int *which)
{
	int nr = 0;

	for (int i = 0; i < MAX_AGENTS; i++) {
		if (agent_leads(&env->agents[i])) {
			nr++;
			if (which)
				*which = i;
		}
	}
	return nr;
}

static int count_servers_running(struct env *env)
{
	enum quorum_server_status status;
	int nr = 0;

	for (int i = 0; i < MAX_AGENTS; i++) {
		if (!env->agents[i].dev)
			continue;
		status = fake_status(&env->agents[i].srv);
		nr += status == QUORUM_SERVER_STARTING || status == QUORUM_SERVER_UP;
	}
	return nr;
}

static struct scoutfs_quorum_block read_blk(struct env *env, int slot)
{
	struct scoutfs_quorum_block blk;

	assert_int_equal(quorum_read_block(env->dev, TEST_FSID, slot, &blk), 0);
	return blk;
}

static u64 blk_term(struct env *env, int slot, int ev)
{
	struct scoutfs_quorum_block blk = read_blk(env, slot);

	return le64_to_cpu(blk.events[ev].term);
}

/* write an event into a slot's block as another mount would have */
static void set_event(struct env *env, int slot, int ev, u64 rid, u64 term)
{
	struct scoutfs_quorum_block *blk;
	void *buf = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);

	assert_non_null(buf);
	assert_int_equal(block_sm_read(env->dev, SCOUTFS_QUORUM_BLKNO + slot,
	                               SCOUTFS_BLOCK_MAGIC_QUORUM, TEST_FSID, buf),
	                 0);
	blk = buf;
	le64_add_cpu(&blk->write_nr, 1);
	blk->events[ev].write_nr = blk->write_nr;
	blk->events[ev].rid = cpu_to_le64(rid);
	blk->events[ev].term = cpu_to_le64(term);
	assert_int_equal(block_sm_write(env->dev, SCOUTFS_QUORUM_BLKNO + slot,
	                                SCOUTFS_BLOCK_MAGIC_QUORUM, TEST_FSID, buf, sizeof(*blk)),
	                 0);
	assert_int_equal(dev_flush(env->dev), 0);
	free(buf);
}

static u64 counter(const char *name)
{
	u64 val = 0;

	assert_int_equal(counter_read(name, &val), 0);
	return val;
}

static bool old_done(struct fake_server *srv)
{
	bool done;

	pthread_mutex_lock(&srv->mutex);
	done = srv->old_done;
	pthread_mutex_unlock(&srv->mutex);
	return done;
}

/* ------------------------------------------------------------------------------------- */
/* tests */

static void test_config_verify(void **state)
{
	struct scoutfs_quorum_config qconf;
	struct scoutfs_quorum_config good;
	char why[160];
	static const u32 bad_addrs[] = {
		0x00000000, /* 0.0.0.0 */
		0xffffffff, /* limited broadcast */
		0xe0000001, /* 224.0.0.1 */
		0xefffffff, /* 239.255.255.255 */
		0x01020304, /* 1.2.3.4 is fine: checked below */
		0x00010203, /* 0.1.2.3 */
	};

	memset(&good, 0, sizeof(good));
	set_slot(&good, 0, INADDR_LOOPBACK, 4000);
	set_slot(&good, 3, INADDR_LOOPBACK, 4001);
	set_slot(&good, 14, 0x0a000001, 4000); /* same port, other address */
	assert_int_equal(quorum_config_verify(&good, why, sizeof(why)), 0);
	assert_int_equal(quorum_nr_slots(&good), 3);
	assert_int_equal(quorum_votes_needed(&good), 2);
	assert_true(quorum_slot_present(&good, 14));
	assert_false(quorum_slot_present(&good, 1));
	assert_false(quorum_slot_present(&good, 15));
	assert_false(quorum_slot_present(&good, -1));

	/* no slots at all */
	memset(&qconf, 0, sizeof(qconf));
	why[0] = '\0';
	assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), -EINVAL);
	assert_true(strlen(why) > 0);

	for (size_t i = 0; i < ARRAY_SIZE(bad_addrs); i++) {
		qconf = good;
		set_slot(&qconf, 5, bad_addrs[i], 4002);
		why[0] = '\0';
		if (bad_addrs[i] == 0x01020304) {
			assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), 0);
			continue;
		}
		assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "slot 5"));
	}

	/* ports 0 and 65535 */
	qconf = good;
	set_slot(&qconf, 5, INADDR_LOOPBACK, 0);
	assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "port"));
	qconf = good;
	set_slot(&qconf, 5, INADDR_LOOPBACK, 65535);
	assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), -EINVAL);
	qconf = good;
	set_slot(&qconf, 5, INADDR_LOOPBACK, 65534);
	assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), 0);

	/* duplicate address:port */
	qconf = good;
	set_slot(&qconf, 7, INADDR_LOOPBACK, 4001);
	assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "127.0.0.1:4001"));

	/* an unsupported family */
	qconf = good;
	qconf.slots[2].addr.family = cpu_to_le16(2);
	assert_int_equal(quorum_config_verify(&qconf, why, sizeof(why)), -EINVAL);

	/* votes needed */
	memset(&qconf, 0, sizeof(qconf));
	set_slot(&qconf, 0, INADDR_LOOPBACK, 1);
	assert_int_equal(quorum_votes_needed(&qconf), 1);
	set_slot(&qconf, 1, INADDR_LOOPBACK, 2);
	assert_int_equal(quorum_votes_needed(&qconf), 1);
	for (int i = 2; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		set_slot(&qconf, i, INADDR_LOOPBACK, 3 + i);
		assert_int_equal(quorum_votes_needed(&qconf), (i + 1) / 2 + 1);
	}
}

/* the block readers on hand-written histories */
static void test_block_readers(void **state)
{
	struct env *env = *state;
	struct old_list ol = { 0 };
	struct sockaddr_in sin;
	bool running;
	u64 term;

	env_qconf(env, 3);

	/* empty blocks: no server, nobody running, nobody to fence */
	assert_int_equal(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &term),
	                 -ENOENT);
	assert_int_equal(quorum_any_agent_running(env->dev, TEST_FSID, &env->qconf, &running), 0);
	assert_false(running);
	assert_int_equal(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, 100, 0xe,
	                                            record_old, &ol),
	                 0);
	assert_int_equal(ol.nr, 0);

	/* slot 0: leader 0xa of term 5 came up and never stopped */
	set_event(env, 0, SCOUTFS_QUORUM_EVENT_BEGIN, 0xa, 4);
	set_event(env, 0, SCOUTFS_QUORUM_EVENT_STOP, 0xa2, 3);
	set_event(env, 0, SCOUTFS_QUORUM_EVENT_ELECT, 0xa, 5);
	set_event(env, 0, SCOUTFS_QUORUM_EVENT_FENCE, 0xa, 5);
	/* slot 1: 0xc's server of term 7 got up and never stopped; 0xb elected in 9 since */
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_STOP, 0x99, 6);
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_FENCE, 0xc, 7);
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_ELECT, 0xb, 9);
	/* slot 2: 0xd elected in 4 */
	set_event(env, 2, SCOUTFS_QUORUM_EVENT_STOP, 0xd, 2);
	set_event(env, 2, SCOUTFS_QUORUM_EVENT_ELECT, 0xd, 4);
	set_event(env, 2, SCOUTFS_QUORUM_EVENT_BEGIN, 0xd, 4);
	set_event(env, 2, SCOUTFS_QUORUM_EVENT_END, 0xd, 4);

	assert_int_equal(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &term), 0);
	assert_int_equal(term, 9);
	assert_int_equal(ntohs(sin.sin_port), env->ports[1]);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);

	/* slot 0 began after it ended (never ended, in fact) */
	assert_int_equal(quorum_any_agent_running(env->dev, TEST_FSID, &env->qconf, &running), 0);
	assert_true(running);

	/* fenced = 7: 0xa (5) and 0xd (4) were fenced by the server of term 7 */
	assert_int_equal(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, 10, 0xe,
	                                            record_old, &ol),
	                 0);
	assert_int_equal(ol.nr, 2);
	assert_true(
	        (ol.rids[0] == 0xb && ol.terms[0] == 9 && ol.rids[1] == 0xc && ol.terms[1] == 7) ||
	        (ol.rids[0] == 0xc && ol.terms[0] == 7 && ol.rids[1] == 0xb && ol.terms[1] == 9));
	assert_int_equal(ntohs(ol.sins[0].sin_port), env->ports[1]);

	/* terms above ours are not ours to fence; nor are we */
	memset(&ol, 0, sizeof(ol));
	assert_int_equal(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, 8, 0xe,
	                                            record_old, &ol),
	                 0);
	assert_int_equal(ol.nr, 1);
	assert_true(ol.rids[0] == 0xc);
	memset(&ol, 0, sizeof(ol));
	assert_int_equal(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, 10, 0xc,
	                                            record_old, &ol),
	                 0);
	assert_int_equal(ol.nr, 1);
	assert_true(ol.rids[0] == 0xb);

	/* one call per rid: 0xb also elected in slot 2 later */
	set_event(env, 2, SCOUTFS_QUORUM_EVENT_ELECT, 0xb, 8);
	memset(&ol, 0, sizeof(ol));
	assert_int_equal(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, 10, 0xc,
	                                            record_old, &ol),
	                 0);
	assert_int_equal(ol.nr, 1);
	assert_true(ol.rids[0] == 0xb && ol.terms[0] == 9);

	/* a corrupt block is an error for every reader */
	set_event(env, 2, SCOUTFS_QUORUM_EVENT_END, 0xd, 8);
	{
		char junk[SCOUTFS_BLOCK_SM_SIZE] __attribute__((aligned(4096)));

		memset(junk, 0x5a, sizeof(junk));
		assert_int_equal(dev_write(env->dev, junk, sizeof(junk),
		                           (SCOUTFS_QUORUM_BLKNO + 2) * SCOUTFS_BLOCK_SM_SIZE),
		                 0);
	}
	assert_true(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &term) < 0);
	assert_int_not_equal(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &term),
	                     -ENOENT);
	assert_true(quorum_any_agent_running(env->dev, TEST_FSID, &env->qconf, &running) < 0);
	assert_true(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, 10, 0xc,
	                                       record_old, &ol) < 0);
	/* absent slots are not read */
	env->qconf.slots[2].addr.family = 0;
	assert_int_equal(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &term), 0);
}

static void test_one_slot(void **state)
{
	struct env *env = *state;
	struct agent *a = &env->agents[0];
	struct scoutfs_quorum_block blk;
	struct sockaddr_in sin;
	char status[2048];
	char line[64];
	bool running;
	u64 start;
	u64 term;
	u64 found;

	env_qconf(env, 1);
	start = now_mono_ms();
	assert_int_equal(agent_start(env, 0, 0, 0x1111, 1000), 0);
	assert_true(wait_for(agent_leads(a), 2000));
	/* no heartbeat timeout to wait out: only the election timeout */
	assert_true(now_mono_ms() - start < 1000);
	term = quorum_term(a->q);
	assert_true(term >= 1);

	/* ELECT before the server started, FENCE once it is up */
	assert_true(wait_for(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_FENCE) == term, 2000));
	assert_int_equal(fake_status(&a->srv), QUORUM_SERVER_UP);
	assert_int_equal(a->srv.nr_starts, 1);
	assert_int_equal(a->srv.term, term);
	assert_int_equal(a->srv.old_ret, 0);
	assert_int_equal(a->srv.nr_old, 0);
	blk = read_blk(env, 0);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_BEGIN].rid), 0x1111);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_TERM].term), term);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_ELECT].term), term);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_ELECT].rid), 0x1111);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_FENCE].rid), 0x1111);
	assert_true(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_ELECT].write_nr) <
	            le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_FENCE].write_nr));
	assert_int_equal(le64_to_cpu(blk.write_nr),
	                 le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_FENCE].write_nr));
	assert_true(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_ELECT].ts_sec) > 0);

	assert_int_equal(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &found), 0);
	assert_int_equal(found, term);
	assert_int_equal(ntohs(sin.sin_port), env->ports[0]);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(quorum_any_agent_running(env->dev, TEST_FSID, &env->qconf, &running), 0);
	assert_true(running);

	assert_true(quorum_status(a->q, status, sizeof(status)) > 0);
	assert_non_null(strstr(status, "quorum_slot_nr 0\n"));
	assert_non_null(strstr(status, "role leader\n"));
	assert_non_null(strstr(status, "vote_bits 0x1 (count 1)\n"));
	assert_non_null(strstr(status, "timeout_in_secs "));
	snprintf(line, sizeof(line), "\nterm %llu\n", (unsigned long long)term);
	assert_non_null(strstr(status, line));
	snprintf(line, sizeof(line), "server_start_term %llu\n", (unsigned long long)term);
	assert_non_null(strstr(status, line));
	assert_int_equal(quorum_status(a->q, status, 16), -ENOSPC);

	/* a clean stop stops the server and records STOP and END */
	quorum_stop(a->q);
	assert_false(quorum_is_leader(a->q));
	assert_int_equal(quorum_error(a->q), 0);
	assert_int_equal(fake_status(&a->srv), QUORUM_SERVER_DOWN);
	blk = read_blk(env, 0);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_STOP].term), term);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_END].term), term);
	assert_true(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_STOP].write_nr) <
	            le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_END].write_nr));
	assert_true(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_BEGIN].write_nr) <
	            le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_END].write_nr));
	assert_int_equal(quorum_find_server(env->dev, TEST_FSID, &env->qconf, &sin, &found),
	                 -ENOENT);
	assert_int_equal(quorum_any_agent_running(env->dev, TEST_FSID, &env->qconf, &running), 0);
	assert_false(running);
}

/*
 * Three members: one leader at a time, fast failover when the leader leaves cleanly, and
 * failover only after the heartbeat timeout when it dies, with the dead leader fenced.
 */
static void test_three_slots(void **state)
{
	const u64 hb_ms = QUORUM_HB_TIMEOUT_MIN_MS;
	struct env *env = *state;
	struct scoutfs_quorum_block before;
	struct scoutfs_quorum_block after;
	struct fake_server *srv;
	u64 resign = counter("quorum_recv_resignation");
	u64 start;
	u64 elapsed;
	u64 term;
	u64 t;
	int leader = -1;
	int first;
	int other;

	env_qconf(env, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(agent_start(env, i, i, 0xa0 + i, hb_ms), 0);

	assert_true(wait_for(count_leaders(env, &leader) == 1, 5000));
	first = leader;
	term = quorum_term(env->agents[leader].q);
	/* followers learn the term from the heartbeats */
	for (int i = 0; i < 3; i++)
		assert_true(wait_for(quorum_term(env->agents[i].q) == term, 1000));

	/* for a while: exactly one leader, always the same, and one running server at most */
	start = now_mono_ms();
	while (now_mono_ms() - start < 1500) {
		assert_int_equal(count_leaders(env, &leader), 1);
		assert_int_equal(leader, first);
		assert_true(count_servers_running(env) <= 1);
		usleep(5000);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(quorum_term(env->agents[i].q), term);

	/* a clean stop resigns: a new leader well before the heartbeat timeout */
	quorum_stop(env->agents[first].q);
	start = now_mono_ms();
	assert_true(wait_for(count_leaders(env, &leader) == 1, 5000));
	elapsed = now_mono_ms() - start;
	print_message("new leader %llu ms after a clean stop\n", (unsigned long long)elapsed);
	assert_true(elapsed < hb_ms - 800);
	assert_true(leader != first);
	assert_true(counter("quorum_recv_resignation") > resign);
	assert_true(quorum_term(env->agents[leader].q) > term);
	assert_int_equal(blk_term(env, first, SCOUTFS_QUORUM_EVENT_STOP), term);
	assert_int_equal(blk_term(env, first, SCOUTFS_QUORUM_EVENT_END), term);

	/* the stopped member comes back as a new mount and follows */
	term = quorum_term(env->agents[leader].q);
	assert_int_equal(agent_start(env, first, first, 0xb0, hb_ms), 0);
	assert_true(wait_for(quorum_term(env->agents[first].q) == term, 1000));
	assert_int_equal(count_leaders(env, NULL), 1);
	assert_true(wait_for(blk_term(env, leader, SCOUTFS_QUORUM_EVENT_FENCE) == term, 2000));

	/* a dead leader sends nothing and writes nothing: failover after the timeout */
	before = read_blk(env, leader);
	quorum_shutdown_forced(env->agents[leader].q);
	start = now_mono_ms();
	assert_false(quorum_is_leader(env->agents[leader].q));
	other = leader;
	assert_true(wait_for(count_leaders(env, &leader) == 1, hb_ms + 3000));
	elapsed = now_mono_ms() - start;
	print_message("new leader %llu ms after a forced shutdown\n", (unsigned long long)elapsed);
	assert_true(elapsed >= hb_ms - 200);
	assert_true(elapsed <= hb_ms + 2000);
	assert_true(leader != other);
	after = read_blk(env, other);
	assert_memory_equal(&before, &after, sizeof(before));
	t = quorum_term(env->agents[leader].q);
	assert_true(t > term);

	/* the new leader's server found the dead leader to fence, and only it */
	srv = &env->agents[leader].srv;
	assert_true(wait_for(old_done(srv), 2000));
	assert_int_equal(srv->old_ret, 0);
	assert_int_equal(srv->nr_old, 1);
	assert_true(srv->old_rids[0] == env->agents[other].rid);
	assert_int_equal(srv->old_terms[0], term);
	assert_true(wait_for(blk_term(env, leader, SCOUTFS_QUORUM_EVENT_FENCE) == t, 2000));

	/* and once it is up, the next leader has nobody left to fence */
	{
		struct old_list ol = { 0 };

		assert_int_equal(quorum_for_each_old_leader(env->dev, TEST_FSID, &env->qconf, t + 1,
		                                            0x1234, record_old, &ol),
		                 0);
		assert_int_equal(ol.nr, 1);
		assert_true(ol.rids[0] == env->agents[leader].rid);
	}

	for (int i = 0; i < 3; i++)
		quorum_stop(env->agents[i].q);
}

/* terms never go backwards: an agent starts from the greatest term in any block */
static void test_restart_term(void **state)
{
	struct env *env = *state;
	struct agent *a = &env->agents[0];
	u64 start;
	u64 elapsed;

	/* two slots (one vote is a majority); slot 1's mount has been to term 50 */
	env_qconf(env, 2);
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_BEGIN, 0x77, 40);
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_TERM, 0x77, 50);
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_END, 0x77, 50);
	/* events without a rid were never written by a mount */
	set_event(env, 1, SCOUTFS_QUORUM_EVENT_STOP, 0, 1000);

	assert_int_equal(agent_start(env, 0, 0, 0x10, 1000), 0);
	assert_int_equal(quorum_term(a->q), 50);
	assert_int_equal(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_BEGIN), 50);
	assert_true(wait_for(agent_leads(a), 2000));
	assert_int_equal(quorum_term(a->q), 51);
	assert_true(wait_for(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_FENCE) == 51, 2000));
	quorum_stop(a->q);

	/* a clean restart: from term 51, elected at once in 52 */
	start = now_mono_ms();
	assert_int_equal(agent_start(env, 0, 0, 0x11, 1000), 0);
	assert_int_equal(quorum_term(a->q), 51);
	assert_true(wait_for(agent_leads(a), 2000));
	assert_true(now_mono_ms() - start < 900);
	assert_int_equal(quorum_term(a->q), 52);
	assert_true(wait_for(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_FENCE) == 52, 2000));
	quorum_stop(a->q);

	/* a crashed leader ... */
	assert_int_equal(agent_start(env, 0, 0, 0x12, 1000), 0);
	assert_true(wait_for(agent_leads(a), 2000));
	assert_int_equal(quorum_term(a->q), 53);
	assert_true(wait_for(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_FENCE) == 53, 2000));
	quorum_shutdown_forced(a->q);

	/* ... makes the next mount wait for its heartbeats first, then fence it */
	start = now_mono_ms();
	assert_int_equal(agent_start(env, 0, 0, 0x13, 1000), 0);
	assert_int_equal(quorum_term(a->q), 53);
	assert_true(wait_for(agent_leads(a), 3000));
	elapsed = now_mono_ms() - start;
	assert_true(elapsed >= 900);
	assert_int_equal(quorum_term(a->q), 54);
	assert_true(wait_for(old_done(&a->srv), 2000));
	assert_int_equal(a->srv.nr_old, 1);
	assert_true(a->srv.old_rids[0] == 0x12);
	assert_int_equal(a->srv.old_terms[0], 53);
	quorum_stop(a->q);
	assert_int_equal(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_END), 54);
}

/* two mounts configured with one slot: the bind fails, and the BEGIN rid check catches it */
static void test_duplicate_slot(void **state)
{
	struct env *env = *state;
	struct agent *a = &env->agents[0];
	struct scoutfs_quorum_block blk;
	u64 stop_nr;
	u64 term;

	env_qconf(env, 1);
	assert_int_equal(agent_start(env, 0, 0, 0x21, 1000), 0);
	assert_true(wait_for(agent_leads(a), 2000));
	term = quorum_term(a->q);
	assert_true(wait_for(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_FENCE) == term, 2000));

	/* a second mount on the same host can not bind the slot, and writes nothing */
	assert_int_equal(agent_start(env, 1, 0, 0x22, 1000), -EADDRINUSE);
	assert_null(env->agents[1].q);
	blk = read_blk(env, 0);
	assert_true(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_BEGIN].rid) == 0x21);
	assert_true(agent_leads(a));

	/* a mount elsewhere claims the slot's block ... */
	set_event(env, 0, SCOUTFS_QUORUM_EVENT_BEGIN, 0x23, term);
	stop_nr = le64_to_cpu(read_blk(env, 0).events[SCOUTFS_QUORUM_EVENT_STOP].write_nr);

	/* ... and our next event write (STOP, after our server fails) notices and gives up */
	fake_stop(&a->srv);
	assert_true(wait_for(quorum_error(a->q) != 0, 2000));
	assert_int_equal(quorum_error(a->q), -EBUSY);
	assert_false(quorum_is_leader(a->q));
	assert_int_equal(fake_status(&a->srv), QUORUM_SERVER_DOWN);

	/* it wrote nothing, not even END when stopped */
	quorum_stop(a->q);
	blk = read_blk(env, 0);
	assert_true(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_BEGIN].rid) == 0x23);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_STOP].write_nr), stop_nr);
	assert_int_equal(le64_to_cpu(blk.events[SCOUTFS_QUORUM_EVENT_END].write_nr), 0);
}

static void make_msg(void *buf, u64 fsid, u64 term, u8 type, u8 from)
{
	struct scoutfs_quorum_message msg = {
		.fsid = cpu_to_le64(fsid),
		.term = cpu_to_le64(term),
		.type = type,
		.from = from,
	};

	msg.crc = cpu_to_le32(crc32c(&msg, offsetof(struct scoutfs_quorum_message, crc)));
	memcpy(buf, &msg, sizeof(msg));
}

static void peer_send(int sock, const struct sockaddr_in *to, const void *buf, size_t len)
{
	assert_int_equal(sendto(sock, buf, len, 0, (const struct sockaddr *)to, sizeof(*to)),
	                 (ssize_t)len);
}

/* the test plays slot 1: bad datagrams are dropped and counted, good ones obeyed */
static void test_malformed(void **state)
{
	struct env *env = *state;
	struct agent *a = &env->agents[0];
	struct scoutfs_quorum_message msg;
	struct sockaddr_in agent_sin;
	struct sockaddr_in peer_sin;
	struct timeval tv = { .tv_sec = 2 };
	u8 buf[64];
	u64 invalid;
	u64 heartbeats;
	u64 follower;
	u64 term;
	u64 start;
	u64 elapsed;
	ssize_t len;
	int nr_bad = 0;
	int peer;

	env_qconf(env, 2);
	quorum_slot_sin(&env->qconf, 0, &agent_sin);
	quorum_slot_sin(&env->qconf, 1, &peer_sin);
	peer = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(peer >= 0);
	assert_int_equal(bind(peer, (struct sockaddr *)&peer_sin, sizeof(peer_sin)), 0);
	assert_int_equal(setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);

	assert_int_equal(agent_start(env, 0, 0, 0x50, 1000), 0);
	assert_true(wait_for(agent_leads(a), 2000));
	term = quorum_term(a->q);

	/* the leader's heartbeats are well-formed datagrams */
	do {
		len = recv(peer, buf, sizeof(buf), MSG_TRUNC);
		assert_int_equal(len, sizeof(msg));
		memcpy(&msg, buf, sizeof(msg));
		assert_int_equal(le32_to_cpu(msg.crc),
		                 crc32c(&msg, offsetof(struct scoutfs_quorum_message, crc)));
		assert_true(le64_to_cpu(msg.fsid) == TEST_FSID);
		assert_int_equal(msg.from, 0);
		assert_true(msg.type == SCOUTFS_QUORUM_MSG_REQUEST_VOTE ||
		            msg.type == SCOUTFS_QUORUM_MSG_HEARTBEAT);
	} while (msg.type != SCOUTFS_QUORUM_MSG_HEARTBEAT);
	assert_int_equal(le64_to_cpu(msg.term), term);

	invalid = counter("quorum_recv_invalid");
	heartbeats = counter("quorum_recv_heartbeat");
	follower = counter("quorum_term_follower");

	/* each would make the leader step down if it were believed */
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT, 1);
	peer_send(peer, &agent_sin, buf, 31), nr_bad++;
	peer_send(peer, &agent_sin, buf, 33), nr_bad++;
	peer_send(peer, &agent_sin, buf, 0), nr_bad++;
	peer_send(peer, &agent_sin, buf, 64), nr_bad++;
	buf[30] ^= 1; /* crc */
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT, 1);
	buf[20] ^= 1; /* term, under the crc */
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID + 1, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT, 1);
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_INVALID, 1);
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, 0xff, 1);
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT,
	         SCOUTFS_QUORUM_MAX_SLOTS);
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT, 0xff);
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT, 7); /* absent slot */
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	make_msg(buf, TEST_FSID, term + 100, SCOUTFS_QUORUM_MSG_HEARTBEAT, 0); /* its own */
	peer_send(peer, &agent_sin, buf, 32), nr_bad++;
	/* and noise */
	for (int i = 0; i < 40; i++) {
		random_bytes(buf, sizeof(buf));
		peer_send(peer, &agent_sin, buf, random_below(sizeof(buf) + 1)), nr_bad++;
	}

	assert_true(wait_for(counter("quorum_recv_invalid") - invalid >= (u64)nr_bad, 3000));
	usleep(200000);
	assert_int_equal(counter("quorum_recv_invalid") - invalid, nr_bad);
	assert_int_equal(counter("quorum_recv_heartbeat"), heartbeats);
	assert_true(agent_leads(a));
	assert_int_equal(quorum_term(a->q), term);
	assert_int_equal(quorum_error(a->q), 0);

	/* a valid message from an older term is received but changes nothing */
	make_msg(buf, TEST_FSID, term - 1, SCOUTFS_QUORUM_MSG_HEARTBEAT, 1);
	peer_send(peer, &agent_sin, buf, 32);
	assert_true(wait_for(counter("quorum_recv_heartbeat") == heartbeats + 1, 2000));
	usleep(100000);
	assert_true(agent_leads(a));
	assert_int_equal(quorum_term(a->q), term);
	assert_int_equal(counter("quorum_recv_invalid") - invalid, nr_bad);

	/* the control: the same heartbeat, valid and newer, makes the leader step down */
	quorum_set_hb_timeout(a->q, 400);
	make_msg(buf, TEST_FSID, term + 5, SCOUTFS_QUORUM_MSG_HEARTBEAT, 1);
	peer_send(peer, &agent_sin, buf, 32);
	start = now_mono_ms();
	assert_true(wait_for(!agent_leads(a) && quorum_term(a->q) == term + 5, 2000));
	assert_int_equal(counter("quorum_term_follower"), follower + 1);
	assert_true(wait_for(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_STOP) == term, 2000));
	assert_int_equal(blk_term(env, 0, SCOUTFS_QUORUM_EVENT_TERM), term + 5);
	assert_int_equal(fake_status(&a->srv), QUORUM_SERVER_DOWN);

	/* with no more heartbeats from "slot 1", it takes over again after the (new) timeout */
	assert_true(wait_for(agent_leads(a), 3000));
	elapsed = now_mono_ms() - start;
	print_message("leader again %llu ms after a heartbeat (timeout 400 ms)\n",
	              (unsigned long long)elapsed);
	assert_true(elapsed >= 350 && elapsed < 900);
	assert_int_equal(quorum_term(a->q), term + 6);

	quorum_stop(a->q);
	close(peer);
}

/* a socket playing a member: bound to the slot's address */
static int peer_open(struct env *env, int slot)
{
	struct timeval tv = { .tv_usec = 20000 };
	struct sockaddr_in sin;
	int sock;

	quorum_slot_sin(&env->qconf, slot, &sin);
	sock = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(sock >= 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return sock;
}

/* wait for a message of a type, skipping others; returns its term, or 0 if none came */
static u64 peer_recv_type(int sock, u8 type, u64 timeout_ms)
{
	struct scoutfs_quorum_message msg;
	u64 end = now_mono_ms() + timeout_ms;
	ssize_t len;

	do {
		len = recv(sock, &msg, sizeof(msg), 0);
		if (len == (ssize_t)sizeof(msg) && msg.type == type)
			return le64_to_cpu(msg.term);
	} while (now_mono_ms() < end);
	return 0;
}

/* the test plays four of five members: each voter counts once, one vote per term */
static void test_votes(void **state)
{
	struct env *env = *state;
	struct agent *a = &env->agents[0];
	struct sockaddr_in agent_sin;
	u8 buf[32];
	int peers[5];
	bool won = false;
	u64 term = 0;
	u64 t;

	env_qconf(env, 5);
	quorum_slot_sin(&env->qconf, 0, &agent_sin);
	for (int i = 1; i < 5; i++)
		peers[i] = peer_open(env, i);

	assert_int_equal(agent_start(env, 0, 0, 0x60, 1000), 0);

	/* it needs 3 votes: its own, and slot 1's counted only once */
	for (int tries = 0; tries < 5 && !won; tries++) {
		term = peer_recv_type(peers[1], SCOUTFS_QUORUM_MSG_REQUEST_VOTE, 2000);
		assert_true(term > 0);
		make_msg(buf, TEST_FSID, term, SCOUTFS_QUORUM_MSG_VOTE, 1);
		peer_send(peers[1], &agent_sin, buf, sizeof(buf));
		peer_send(peers[1], &agent_sin, buf, sizeof(buf));
		usleep(30000);
		assert_false(agent_leads(a));
		make_msg(buf, TEST_FSID, term, SCOUTFS_QUORUM_MSG_VOTE, 2);
		peer_send(peers[2], &agent_sin, buf, sizeof(buf));
		/* unless its election timed out meanwhile, that is the majority */
		won = wait_for(agent_leads(a), 150);
	}
	assert_true(won);
	assert_int_equal(quorum_term(a->q), term);

	/* a request in a greater term: it follows and votes for the first asker only */
	for (int i = 1; i < 5; i++)
		while (peer_recv_type(peers[i], SCOUTFS_QUORUM_MSG_VOTE, 0))
			;
	t = term + 10;
	make_msg(buf, TEST_FSID, t, SCOUTFS_QUORUM_MSG_REQUEST_VOTE, 3);
	peer_send(peers[3], &agent_sin, buf, sizeof(buf));
	assert_int_equal(peer_recv_type(peers[3], SCOUTFS_QUORUM_MSG_VOTE, 1000), t);
	assert_false(agent_leads(a));
	make_msg(buf, TEST_FSID, t, SCOUTFS_QUORUM_MSG_REQUEST_VOTE, 4);
	peer_send(peers[4], &agent_sin, buf, sizeof(buf));
	assert_int_equal(peer_recv_type(peers[4], SCOUTFS_QUORUM_MSG_VOTE, 200), 0);

	quorum_stop(a->q);
	for (int i = 1; i < 5; i++)
		close(peers[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_verify),
		cmocka_unit_test_setup_teardown(test_block_readers, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_one_slot, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_three_slots, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_restart_term, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_slot, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_malformed, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_votes, env_setup, env_teardown),
	};

	if (!getenv("TEST_QUORUM_VERBOSE"))
		log_set_level(LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
