/*
 * Docker over the SSH connector: the glue between the Docker client's
 * synchronous dialer (docker.h: a bufferevent returned at once, possibly
 * still connecting) and the connector's asynchronous streams
 * (connector.h: conn_open_stream, a direct-streamlocal channel to the
 * instance's Docker socket, or conn_open_exec_stream running "docker
 * system dial-stdio").
 *
 * Each dial makes a "link": one end of a bufferevent pair
 * (BEV_OPT_DEFER_CALLBACKS) goes to the Docker client at once; the link
 * asks the connector for a channel and, once it is open, moves bytes
 * between the pair's other end and the channel's bufferevent with
 * evbuffer_add_buffer (no copy).  Each direction stops moving while
 * TUNNEL_HIGH_WATER bytes wait on the far side, so a fast container's
 * output, or an image being loaded, never piles up in memory: the SSH
 * window stops the sender instead.
 *
 *  - A channel that cannot be opened (a wrong socket path, the connection
 *    down) shows on the Docker side as BEV_EVENT_ERROR with errno
 *    ECONNREFUSED (the client says "connection error: Connection
 *    refused"); tunnel_error() has the connector's text.
 *  - The remote closing (EOF from dockerd or from dial-stdio, or the SSH
 *    connection dying) shows as BEV_EVENT_EOF once every byte read was
 *    handed over.
 *  - The Docker client's half-close (attach stdin EOF) goes through the
 *    shutdown hook: EOF to the channel after what was written
 *    (bufferevent_flush BEV_FINISHED on the channel's bufferevent).
 *  - The Docker client giving the connection back (the close hook) frees
 *    the link: the channel gets what was written, then EOF and close.
 *
 * Lifetimes: the Docker client made by tunnel_docker_new() calls back into
 * the tunnel, so free it before the tunnel (docker_free, then
 * tunnel_free); free the tunnel before its conn.  Everything runs on the
 * conn's loop; no callback is made from inside a call here.
 */
#ifndef FL_TUNNEL_H
#define FL_TUNNEL_H

#include <stddef.h>

struct bufferevent;
struct conn;
struct docker;
struct event_base;
struct tunnel;

/* Bytes waiting on the far side of a direction before it stops moving. */
#define TUNNEL_HIGH_WATER	(1024 * 1024)

/*
 * A tunnel to the Docker engine on c's instance.  socket_path: the
 * engine's socket there (copied; NULL: CONN_DOCKER_SOCKET).
 * use_dial_stdio: run "docker system dial-stdio" (with -H unix://<path>
 * when socket_path is given) instead of a streamlocal channel.  Never
 * NULL.
 */
struct tunnel *tunnel_new(struct conn *c, const char *socket_path,
    int use_dial_stdio);
/*
 * Free the tunnel.  Links still alive (their Docker client not freed
 * first, against the rule above) get EOF on the Docker side and their
 * channels closed.  NULL is a no-op.
 */
void tunnel_free(struct tunnel *t);

/*
 * A docker_dial_fn with arg the struct tunnel *: the Docker side of a new
 * link.  NULL (with err) only when the pair cannot be made or the channel
 * request is refused at once (conn being freed).
 */
struct bufferevent *tunnel_dial(struct event_base *base, void *arg,
    char *err, size_t errlen);
/* docker_close_fn: the client gives bev back; its link is freed. */
void tunnel_close(void *arg, struct bufferevent *bev);
/* docker_shutdown_fn: no more bytes from the client on bev.  0. */
int tunnel_shutdown(void *arg, struct bufferevent *bev);

/* A Docker client dialling through t, with the close and shutdown hooks
 * set.  Free it (docker_free) before t. */
struct docker *tunnel_docker_new(struct event_base *base, struct tunnel *t);

/* The last channel-open failure ("" if none): the connector's text. */
const char *tunnel_error(const struct tunnel *t);

struct tunnel_stats {
	unsigned long long dials;	/* links made */
	unsigned long long open_failures;
	unsigned long long active;	/* links alive */
	unsigned long long bytes_up;	/* Docker client to the channel */
	unsigned long long bytes_down;	/* channel to the Docker client */
};
void tunnel_get_stats(const struct tunnel *t, struct tunnel_stats *st);

#endif
