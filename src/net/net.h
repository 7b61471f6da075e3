/*
 * net.h: the network layer -- framed messages over TCP between each mount and the server.
 *
 * Owns: message framing and validation (format.h struct scoutfs_net_header), request ids and
 * response matching, per-connection sequence numbers with cumulative acknowledgement and
 * duplicate suppression, the send and resend queues, reconnecting, the greeting handshake,
 * and on the server side the 20 second window in which a dropped client may reconnect and
 * take over its old connection's state.
 *
 * Delivery guarantees the upper layers rely on:
 *  1. Messages on one connection are delivered in the order they were queued, across
 *     reconnects to the same server (resend queue sorted by seq; duplicates dropped by seq).
 *  2. Each request is processed at most once per server instance.
 *  3. Requests, but not responses, are replayed to a new server after failover: when a
 *     greeting reply carries a different server_term the client drops queued responses,
 *     resets its receive seq and resends every outstanding request.  Server handlers are
 *     therefore idempotent.
 *  4. The greeting reply is the first message after every (re)connect.
 *  5. Response callbacks, and request handlers registered as "inline", run on the
 *     connection's receive thread in arrival order and must never block.  Other request
 *     handlers run on a worker pool and may block; they answer with net_response() whenever
 *     they are done, from any thread.
 *
 * Any malformed frame (bad header, unknown command or flag, oversized payload, error on a
 * request, a second greeting) breaks that socket; a peer can never crash the process.
 */
#ifndef SCOUTFS_NET_H
#define SCOUTFS_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "format/format.h"

struct net_conn;

/*
 * A request handler.  It must eventually answer with net_response() using the same cmd and
 * id (from any thread, possibly after returning).  Returning a negative errno instead
 * shuts the connection down (for protocol violations).
 */
typedef int (*net_request_fn)(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			      unsigned int data_len);

/* called exactly once with the response payload or an error (-ECONNABORTED on shutdown) */
typedef void (*net_response_fn)(struct net_conn *conn, const void *data, unsigned int data_len,
				int error, void *arg);

/*
 * Handler tables are arrays of SCOUTFS_NET_CMD_UNKNOWN entries indexed by command (copied at
 * create time; NULL means none).  A request for a command without a handler is answered with
 * -EINVAL (counter net_unknown_request).
 */
struct net_handler {
	net_request_fn fn;
	bool inline_recv; /* run on the receive thread, in order (client LOCK) */
};

/* ------------------------------------------------------------------------------------- */
/* the client side: one long-lived connection per mount, across sockets and servers */

struct net_client_ops {
	/*
	 * Find the current server.  Called before every connection attempt; -ENOENT (no
	 * server yet) or any other error waits and retries.
	 */
	int (*find_server)(void *arg, struct sockaddr_in *sin);
	/* fill in the greeting to send (the client knows its fsid, rid, term and flags) */
	void (*build_greeting)(void *arg, struct scoutfs_net_greeting *gr);
	/*
	 * The server's greeting reply arrived.  Return 0 to accept (the net layer then resends
	 * queued requests, dropping responses first if new_server), or an errno to drop the
	 * socket and retry.  new_server is true when reply.server_term differs from the term of
	 * the last accepted greeting (or this is the first).
	 */
	int (*greeting_reply)(void *arg, const struct scoutfs_net_greeting *gr, bool new_server);
	/*
	 * Before each reconnect attempt: return true to stop reconnecting for good (the mount
	 * finished its farewell out of band, e.g. its mounted_clients item is gone).  Every
	 * pending request then completes with -ECONNABORTED.  May be NULL.
	 */
	bool (*should_stop_reconnecting)(void *arg);
	/* a socket broke; the layer is reconnecting.  May be NULL. */
	void (*disconnected)(void *arg);
};

int net_client_create(const struct net_client_ops *ops, const struct net_handler *handlers,
		      void *arg, struct net_conn **ret);
/* TCP keepalive/user timeout for the sockets connected from now on (> 3000, default 24000) */
int net_client_set_keepalive_timeout_ms(struct net_conn *conn, unsigned int ms);
/* start connecting in the background (idempotent) */
void net_client_start(struct net_conn *conn);
/*
 * Stop: close the socket, stop reconnecting, and fail every pending request with
 * -ECONNABORTED.  Used at the end of unmount and for forced shutdown.
 */
void net_client_shutdown(struct net_conn *conn);
void net_client_destroy(struct net_conn *conn);
/* is the connection established with an accepted greeting right now? */
bool net_client_connected(struct net_conn *conn);
/* the reconnect delay drops to zero after a good greeting; tests may want a fresh break */
void net_client_break_socket(struct net_conn *conn);

/* ------------------------------------------------------------------------------------- */
/* the server side: a listener and one accepted connection per client socket */

struct net_server_ops {
	/*
	 * A greeting request arrived on an accepted socket (called on its receive thread, before
	 * any later frame; may block).  The server validates it and fills in the reply.  Returning
	 * an errno sends that error and then breaks the socket.  The net layer then applies the
	 * connection rules (see net.c): migrating a reconnecting client's old connection,
	 * refusing a client whose state was lost, and calling client_up on first contact.
	 */
	int (*greeting)(void *arg, struct net_conn *conn, const struct scoutfs_net_greeting *gr,
			struct scoutfs_net_greeting *reply);
	/* a rid's first greeted connection with this server */
	void (*client_up)(void *arg, u64 rid);
	/* a rid's connection is gone for good (after farewell or after its reconnect window) */
	void (*client_down)(void *arg, u64 rid);
	/* a rid did not reconnect within the window: fence it */
	void (*reconnect_timeout)(void *arg, u64 rid, const struct sockaddr_in *peer);
	/* the listening socket failed: the server must stop */
	void (*listener_error)(void *arg, int error);
};

struct net_server;

/* bind and listen on sin; server_term is put in greeting replies */
int net_server_create(const struct sockaddr_in *sin, u64 server_term,
		      const struct net_server_ops *ops, const struct net_handler *handlers,
		      void *arg, u64 reconnect_timeout_ms, struct net_server **ret);
/* stop accepting, close every connection, wait for every handler to return */
void net_server_destroy(struct net_server *srv);
/* the address actually bound (create with port 0 for an ephemeral port) */
void net_server_local_addr(struct net_server *srv, struct sockaddr_in *sin);
/* TCP keepalive/user timeout for sockets accepted from now on (> 3000, default 24000) */
int net_server_set_keepalive_timeout_ms(struct net_server *srv, unsigned int ms);

/* send a request to the connection of rid (-ENOTCONN if the rid has none, even parked) */
int net_server_submit_request(struct net_server *srv, u64 rid, u8 cmd, const void *data,
			      unsigned int data_len, net_response_fn resp_fn, void *resp_arg);
/* send a request to every greeted client; per-rid failures are ignored */
void net_server_submit_request_all(struct net_server *srv, u8 cmd, const void *data,
				   unsigned int data_len, u64 except_rid);
/*
 * Answer a request of rid's connection after its handler returned.  An accepted net_conn is
 * only guaranteed to exist while a handler or callback that was given it runs: a reconnect
 * migrates the rid's state to a new net_conn and frees the old one.  -ENOTCONN if the rid has
 * no connection; a response nobody awaits any more is dropped and returns 0.
 */
int net_server_response(struct net_server *srv, u64 rid, u8 cmd, u64 id, int error,
			const void *data, unsigned int data_len);
/* mark the connection so that its next disconnect frees it at once (farewell answered) */
void net_conn_set_saw_farewell(struct net_conn *conn);
/* the same by rid, for farewells answered later; -ENOTCONN if the rid has no connection */
int net_server_set_saw_farewell(struct net_server *srv, u64 rid);
/* ids of connected (or parked) rids, for fencing decisions and counts */
int net_server_nr_clients(struct net_server *srv);

/* ------------------------------------------------------------------------------------- */
/* both sides */

int net_submit_request(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
		       net_response_fn resp_fn, void *resp_arg);
/* submit and wait; the response must be exactly resp_len bytes (else -EMSGSIZE) */
int net_sync_request(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
		     void *resp, unsigned int resp_len);
/* like net_sync_request, for responses of variable length: *resp_len in/out */
int net_sync_request_var(struct net_conn *conn, u8 cmd, const void *data, unsigned int data_len,
			 void *resp, unsigned int *resp_len);
/* answer a request; error is a negative errno or 0 (an error response has no payload) */
int net_response(struct net_conn *conn, u8 cmd, u64 id, int error, const void *data,
		 unsigned int data_len);

u64 net_conn_rid(struct net_conn *conn);
void net_conn_peer(struct net_conn *conn, struct sockaddr_in *sin);
/* the arg passed at create time */
void *net_conn_arg(struct net_conn *conn);

/* wire error codes */
u8 net_err_to_wire(int error);
int net_err_from_wire(u8 wire);

/* debugging: one line per connection (rid, state, seqs, queue lengths) */
int net_describe(struct net_conn *conn, char *buf, unsigned int len);

#endif
