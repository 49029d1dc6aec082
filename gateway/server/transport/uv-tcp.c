/*
 * identgate-uv.node: the gateway's TCP transport on libuv directly, as a Node-API addon; a connection is a
 * uv_tcp_t and four calls into JavaScript, and what to answer stays in gateway/server/connection.ts.
 * Why, its JavaScript API and how it is built: docs/internals.md (gateway/server/transport/uv-tcp.c).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What node:net uses for a socket's writableHighWaterMark. */
#define HIGH_WATER_MARK 16384
#define STACK_WRITE 4096

enum { EV_CONNECTION, EV_DATA, EV_END, EV_DRAIN, EV_ERROR, EV_CLOSE, EV_ACCEPT_ERROR, EV_COUNT };
static const char *const EVENT_NAMES[EV_COUNT] = {"connection", "data", "end", "drain", "error", "close", "acceptError"};

struct transport;

struct conn {
  uv_tcp_t tcp;
  struct transport *owner;
  int32_t id;
  unsigned closing : 1;
  unsigned peer_ended : 1;
  unsigned ending : 1;
  unsigned want_drain : 1;
  unsigned reading : 1;
};

struct listener {
  uv_tcp_t tcp;
  struct transport *owner;
  int32_t id;
  /* Bound to one address: accepted connections' local end is known to the caller. */
  int specific;
  /* A connection waits to be refused while the transport's refusal handle is busy. */
  int refusal_waiting;
};

struct transport {
  napi_env env;
  uv_loop_t *loop;
  napi_ref handlers[EV_COUNT];
  napi_ref read_buffer_ref;
  /* The receiver of every call into JavaScript, fetched once. */
  napi_ref global_ref;
  napi_async_context async;
  char *read_buffer;
  size_t read_buffer_size;
  /* Live objects by id; free ids are reused. */
  struct conn **conns;
  int32_t conn_cap;
  int32_t *free_conn_ids;
  int32_t free_conn_count;
  int32_t conn_next;
  struct listener **listeners;
  int32_t listener_cap;
  int initialised;
  /*
   * The Node environment is going away (a worker thread ending without
   * stop()): every handle is being closed, and nothing may call JavaScript.
   * Handles still open keep this struct alive past the environment's
   * finalizer (`orphaned`); the last close frees it.
   */
  int tearing_down;
  int orphaned;
  int32_t open_handles;
  /* Node waits for this (and keeps the addon loaded) until every handle's close callback has run. */
  napi_async_cleanup_hook_handle cleanup;
  /*
   * Accepts a connection there is no memory for, only to close it: libuv
   * stops watching a listener until its pending connection is accepted, so
   * not accepting would stall the listener for good. Embedded, so refusing
   * allocates nothing; one at a time (busy until its close callback).
   */
  uv_tcp_t refusal;
  int refusing;
};

struct write_req {
  uv_write_t req;
  char data[];
};

/* ---- calls into JavaScript ---- */

/* Runs a handler as Node runs its own I/O callbacks (MakeCallback): promises and nextTicks settle after it. */
static void emit(struct transport *t, int event, size_t argc, napi_value *argv) {
  napi_env env = t->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value fn, recv, result;
  napi_get_reference_value(env, t->handlers[event], &fn);
  /* MakeCallback wants an object as the receiver (async hooks see it as the resource). */
  napi_get_reference_value(env, t->global_ref, &recv);
  if (napi_make_callback(env, t->async, recv, fn, argc, argv, &result) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value int_value(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

static void emit_id(struct transport *t, int event, int32_t id) {
  napi_handle_scope scope;
  napi_open_handle_scope(t->env, &scope);
  napi_value argv[1] = {int_value(t->env, id)};
  emit(t, event, 1, argv);
  napi_close_handle_scope(t->env, scope);
}

static void emit_pair(struct transport *t, int event, int32_t first, int32_t second) {
  napi_handle_scope scope;
  napi_open_handle_scope(t->env, &scope);
  napi_value argv[2] = {int_value(t->env, first), int_value(t->env, second)};
  emit(t, event, 2, argv);
  napi_close_handle_scope(t->env, scope);
}

static void emit_error(struct conn *c, int status) {
  emit_pair(c->owner, EV_ERROR, c->id, status);
}

/* ---- handle lifetimes ---- */

static void free_transport_now(struct transport *t) {
  free(t->conns);
  free(t->free_conn_ids);
  free(t->listeners);
  free(t);
}

/* Every uv handle this addon opens counts until its close callback. */
static void handle_closed(struct transport *t) {
  if (--t->open_handles > 0) return;
  if (t->tearing_down && t->cleanup) {
    napi_async_cleanup_hook_handle cleanup = t->cleanup;
    t->cleanup = NULL;
    napi_remove_async_cleanup_hook(cleanup);
  }
  if (t->orphaned) free_transport_now(t);
}

/* The close callback of a listener, and of a connection JavaScript never saw. */
static void on_quiet_close(uv_handle_t *handle) {
  struct transport *t = handle->data;
  free(handle);
  handle_closed(t);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *handle) {
  struct conn *c = (struct conn *)handle;
  struct transport *t = c->owner;
  int32_t id = c->id;
  t->conns[id] = NULL;
  free(c);
  if (!t->tearing_down) {
    emit_id(t, EV_CLOSE, id);
    /* Reused only now: JavaScript has let go of the id. */
    t->free_conn_ids[t->free_conn_count++] = id;
  }
  handle_closed(t);
}

static void close_conn(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* After end(): closes once both directions are done and nothing is left to write. */
static void close_if_finished(struct conn *c) {
  if (c->ending && c->peer_ended && c->tcp.write_queue_size == 0) close_conn(c);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct transport *t = ((struct conn *)handle)->owner;
  buf->base = t->read_buffer;
  buf->len = t->read_buffer_size;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct conn *c = (struct conn *)stream;
  struct transport *t = c->owner;
  if (nread == 0 || c->closing) return;
  if (nread == UV_EOF) {
    c->peer_ended = 1;
    c->reading = 0;
    uv_read_stop(stream);
    emit_id(t, EV_END, c->id);
    close_if_finished(c);
    return;
  }
  if (nread < 0) {
    emit_error(c, (int)nread);
    close_conn(c);
    return;
  }
  emit_pair(t, EV_DATA, c->id, (int32_t)nread);
}

static int32_t take_conn_id(struct transport *t) {
  if (t->free_conn_count > 0) return t->free_conn_ids[--t->free_conn_count];
  if (t->conn_next == t->conn_cap) {
    int32_t cap = t->conn_cap ? t->conn_cap * 2 : 1024;
    struct conn **conns = realloc(t->conns, sizeof *conns * cap);
    int32_t *free_ids = realloc(t->free_conn_ids, sizeof *free_ids * cap);
    if (conns) t->conns = conns;
    if (free_ids) t->free_conn_ids = free_ids;
    if (!conns || !free_ids) return -1;
    t->conn_cap = cap;
  }
  return t->conn_next++;
}

/* The address as node:net prints it ("127.0.0.1", "::ffff:127.0.0.1", "::1") and the port. */
static int name_of(const struct sockaddr_storage *addr, char *out, size_t size, int *port) {
  if (addr->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    *port = ntohs(in->sin_port);
    return uv_ip4_name(in, out, size);
  }
  if (addr->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    *port = ntohs(in6->sin6_port);
    return uv_ip6_name(in6, out, size);
  }
  return UV_EAFNOSUPPORT;
}

static void refuse(struct listener *l);

static void on_refusal_closed(uv_handle_t *handle) {
  struct transport *t = handle->data;
  t->refusing = 0;
  for (int32_t i = 0; i < t->listener_cap && !t->tearing_down; i++) {
    struct listener *l = t->listeners[i];
    if (l && l->refusal_waiting) {
      refuse(l);
      break;
    }
  }
  /* Last: it may free t. */
  handle_closed(t);
}

/* Accepts the listener's pending connection and closes it (see transport.refusal). */
static void refuse(struct listener *l) {
  struct transport *t = l->owner;
  if (t->refusing) {
    l->refusal_waiting = 1;
    return;
  }
  l->refusal_waiting = 0;
  t->refusing = 1;
  uv_tcp_init(t->loop, &t->refusal);
  t->open_handles++;
  t->refusal.data = t;
  uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&t->refusal);
  uv_close((uv_handle_t *)&t->refusal, on_refusal_closed);
}

static void on_connection(uv_stream_t *server, int status) {
  struct listener *l = (struct listener *)server;
  struct transport *t = l->owner;
  if (status < 0) {
    emit_pair(t, EV_ACCEPT_ERROR, l->id, status);
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    refuse(l);
    emit_pair(t, EV_ACCEPT_ERROR, l->id, UV_ENOMEM);
    return;
  }
  uv_tcp_init(t->loop, &c->tcp);
  t->open_handles++;
  c->owner = t;
  c->tcp.data = t;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    c->id = -1;
    uv_close((uv_handle_t *)&c->tcp, on_quiet_close);
    return;
  }
  struct sockaddr_storage peer, local;
  int len = sizeof peer;
  char peer_name[INET6_ADDRSTRLEN + 16], local_name[INET6_ADDRSTRLEN + 16];
  int peer_port = 0, local_port = 0;
  int32_t id = -1;
  /* A peer that reset before we saw it has no address left, and no one to answer. */
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) != 0 || name_of(&peer, peer_name, sizeof peer_name, &peer_port) != 0) goto drop;
  if (!l->specific) {
    len = sizeof local;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&local, &len) != 0 || name_of(&local, local_name, sizeof local_name, &local_port) != 0) goto drop;
  }
  id = take_conn_id(t);
  if (id < 0) goto drop;
  c->id = id;
  t->conns[id] = c;
  c->reading = 1;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);

  napi_env env = t->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[6] = {int_value(env, l->id), int_value(env, id), NULL, int_value(env, peer_port), NULL, int_value(env, local_port)};
  napi_create_string_latin1(env, peer_name, NAPI_AUTO_LENGTH, &argv[2]);
  if (l->specific) napi_get_null(env, &argv[4]);
  else napi_create_string_latin1(env, local_name, NAPI_AUTO_LENGTH, &argv[4]);
  emit(t, EV_CONNECTION, 6, argv);
  napi_close_handle_scope(env, scope);
  return;
drop:
  c->id = -1;
  uv_close((uv_handle_t *)&c->tcp, on_quiet_close);
}

/* ---- argument helpers ---- */

static struct transport *state(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static int32_t arg_int(napi_env env, napi_value value) {
  int32_t result = -1;
  napi_get_value_int32(env, value, &result);
  return result;
}

/* The live, open connection with this id, or NULL. */
static struct conn *conn_arg(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  struct transport *t = state(env);
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  if (*argc < 1 || !t->initialised) return NULL;
  int32_t id = arg_int(env, argv[0]);
  if (id < 0 || id >= t->conn_next) return NULL;
  struct conn *c = t->conns[id];
  return c && !c->closing ? c : NULL;
}

static napi_value undefined_value(napi_env env) {
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

/* ---- exported functions ---- */

static void free_transport(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct transport *t = data;
  t->orphaned = 1;
  if (t->open_handles == 0) free_transport_now(t);
}

/*
 * The environment ends (a worker thread exits or is terminated, or the
 * process ends without stop()): close everything still open, quietly. An
 * async cleanup hook, because closing a uv handle completes on a later loop
 * turn, and the addon must still be loaded when its close callbacks run.
 */
static void tear_down(napi_async_cleanup_hook_handle cleanup, void *data) {
  struct transport *t = data;
  t->tearing_down = 1;
  if (t->open_handles == 0) {
    napi_remove_async_cleanup_hook(cleanup);
    return;
  }
  t->cleanup = cleanup;
  for (int32_t i = 0; i < t->listener_cap; i++) {
    struct listener *l = t->listeners[i];
    if (!l) continue;
    t->listeners[i] = NULL;
    uv_close((uv_handle_t *)&l->tcp, on_quiet_close);
  }
  for (int32_t i = 0; i < t->conn_next; i++) {
    struct conn *c = t->conns[i];
    if (c) close_conn(c);
  }
}

static napi_value js_init(napi_env env, napi_callback_info info) {
  struct transport *t = state(env);
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (t->initialised) {
    napi_throw_error(env, "ERR_IDENT_TRANSPORT", "the native transport is already initialised in this environment");
    return NULL;
  }
  bool is_buffer = false;
  if (argc < 2 || napi_is_arraybuffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "init(handlers, readBuffer: ArrayBuffer)");
    return NULL;
  }
  for (int i = 0; i < EV_COUNT; i++) {
    napi_value fn;
    napi_valuetype type;
    if (napi_get_named_property(env, argv[0], EVENT_NAMES[i], &fn) != napi_ok || napi_typeof(env, fn, &type) != napi_ok || type != napi_function) {
      napi_throw_type_error(env, NULL, "init: every handler must be a function");
      return NULL;
    }
    napi_create_reference(env, fn, 1, &t->handlers[i]);
  }
  void *data;
  napi_get_arraybuffer_info(env, argv[1], &data, &t->read_buffer_size);
  t->read_buffer = data;
  napi_create_reference(env, argv[1], 1, &t->read_buffer_ref);
  napi_value global;
  napi_get_global(env, &global);
  napi_create_reference(env, global, 1, &t->global_ref);
  napi_value name;
  napi_create_string_utf8(env, "identgate.transport", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &t->async);
  napi_get_uv_event_loop(env, &t->loop);
  t->initialised = 1;
  return undefined_value(env);
}

/* An IP literal and port as a socket address (scope ids allowed: "fe80::1%eth0"). */
static int parse_address(napi_env env, napi_value text, int32_t port, struct sockaddr_storage *out) {
  char address[INET6_ADDRSTRLEN + 32];
  size_t len;
  if (napi_get_value_string_utf8(env, text, address, sizeof address, &len) != napi_ok) return UV_EINVAL;
  if (port < 0 || port > 65535) return UV_EINVAL;
  memset(out, 0, sizeof *out);
  if (uv_ip4_addr(address, port, (struct sockaddr_in *)out) == 0) return 0;
  if (uv_ip6_addr(address, port, (struct sockaddr_in6 *)out) == 0) return 0;
  return UV_EINVAL;
}

/* socket, SO_REUSEADDR (as node:net), dual-stack for "::", bind, listen: the fd, or a negative errno. */
static napi_value js_bind_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return int_value(env, UV_EINVAL);
  struct sockaddr_storage addr;
  int err = parse_address(env, argv[0], arg_int(env, argv[1]), &addr);
  if (err) return int_value(env, err);
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return int_value(env, -errno);
  int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  socklen_t len = addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, arg_int(env, argv[2])) != 0) {
    err = -errno;
    close(fd);
    return int_value(env, err);
  }
  return int_value(env, fd);
}

static napi_value js_sock_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  char name[INET6_ADDRSTRLEN + 16];
  int port = 0;
  if (argc < 1 || getsockname(arg_int(env, argv[0]), (struct sockaddr *)&addr, &len) != 0) return int_value(env, -errno);
  int err = name_of(&addr, name, sizeof name, &port);
  if (err) return int_value(env, err);
  napi_value result, text;
  napi_create_array_with_length(env, 2, &result);
  napi_create_string_latin1(env, name, NAPI_AUTO_LENGTH, &text);
  napi_set_element(env, result, 0, text);
  napi_set_element(env, result, 1, int_value(env, port));
  return result;
}

static int is_wildcard(const struct sockaddr_storage *addr) {
  if (addr->ss_family == AF_INET) return ((const struct sockaddr_in *)addr)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (addr->ss_family == AF_INET6) return memcmp(&((const struct sockaddr_in6 *)addr)->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0;
  return 1;
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  struct transport *t = state(env);
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!t->initialised || argc < 2) return int_value(env, UV_EINVAL);
  int fd = arg_int(env, argv[0]);
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) return int_value(env, -errno);
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return int_value(env, UV_ENOTSOCK);
  struct listener *l = calloc(1, sizeof *l);
  if (!l) return int_value(env, UV_ENOMEM);
  int32_t id = 0;
  while (id < t->listener_cap && t->listeners[id]) id++;
  if (id == t->listener_cap) {
    int32_t cap = t->listener_cap ? t->listener_cap * 2 : 8;
    struct listener **grown = realloc(t->listeners, sizeof *grown * cap);
    if (!grown) {
      free(l);
      return int_value(env, UV_ENOMEM);
    }
    memset(grown + t->listener_cap, 0, sizeof *grown * (cap - t->listener_cap));
    t->listeners = grown;
    t->listener_cap = cap;
  }
  uv_tcp_init(t->loop, &l->tcp);
  t->open_handles++;
  l->tcp.data = t;
  l->owner = t;
  l->id = id;
  l->specific = !is_wildcard(&addr);
  int err = uv_tcp_open(&l->tcp, fd);
  int opened = err == 0;
  if (opened) err = uv_listen((uv_stream_t *)&l->tcp, arg_int(env, argv[1]), on_connection);
  if (err != 0) {
    /*
     * A failed listen leaves nothing open: uv_tcp_open took fd (closing the
     * handle closes it), or fd is closed here, unless uv_tcp_open refused it
     * with UV_EEXIST: then another handle of this loop (a listener) has it,
     * and it is that one's to close.
     */
    if (!opened && err != UV_EEXIST) close(fd);
    uv_close((uv_handle_t *)&l->tcp, on_quiet_close);
    return int_value(env, err);
  }
  t->listeners[id] = l;
  return int_value(env, id);
}

static napi_value js_close_listener(napi_env env, napi_callback_info info) {
  struct transport *t = state(env);
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t id = argc ? arg_int(env, argv[0]) : -1;
  if (id >= 0 && id < t->listener_cap && t->listeners[id]) {
    struct listener *l = t->listeners[id];
    t->listeners[id] = NULL;
    /* The fd is closed here, synchronously: the port is free when this returns. */
    uv_close((uv_handle_t *)&l->tcp, on_quiet_close);
  }
  return undefined_value(env);
}

static void on_written(uv_write_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  free(req);
  if (c->closing) return;
  if (status < 0) {
    emit_error(c, status);
    close_conn(c);
    return;
  }
  if (c->tcp.write_queue_size == 0) {
    if (c->want_drain) {
      c->want_drain = 0;
      emit_id(c->owner, EV_DRAIN, c->id);
    }
    close_if_finished(c);
  }
}

/* Queues what uv_try_write left: the kernel's buffer was full, or earlier writes wait. */
static int queue_write(struct conn *c, const char *bytes, size_t length) {
  struct write_req *w = malloc(sizeof *w + length);
  if (!w) return UV_ENOMEM;
  memcpy(w->data, bytes, length);
  uv_buf_t buf = uv_buf_init(w->data, (unsigned int)length);
  int err = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
  if (err) free(w);
  return err;
}

static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct conn *c = conn_arg(env, info, &argc, argv);
  if (!c || argc < 2) return int_value(env, UV_EBADF);
  if (c->ending) {
    /* As node:net does with a write after end(): an error, and the connection goes. */
    close_conn(c);
    return int_value(env, UV_EPIPE);
  }
  char stack[STACK_WRITE];
  char *bytes = stack;
  size_t length;
  if (napi_get_value_string_utf8(env, argv[1], stack, sizeof stack, &length) != napi_ok) return int_value(env, UV_EINVAL);
  if (length + 4 >= sizeof stack) {
    /* Maybe cut short (Node-API stops before a character that does not fit whole, up to 4 octets): ask for the whole length. */
    napi_get_value_string_utf8(env, argv[1], NULL, 0, &length);
    bytes = malloc(length + 1);
    if (!bytes) return int_value(env, UV_ENOMEM);
    napi_get_value_string_utf8(env, argv[1], bytes, length + 1, &length);
  }
  int result = 1;
  uv_buf_t buf = uv_buf_init(bytes, (unsigned int)length);
  int written = length ? uv_try_write((uv_stream_t *)&c->tcp, &buf, 1) : 0;
  if (written == UV_EAGAIN || written == UV_ENOSYS) written = 0;
  if (written < 0) {
    result = written;
    close_conn(c);
  } else if ((size_t)written < length) {
    int err = queue_write(c, bytes + written, length - written);
    if (err) {
      result = err;
      close_conn(c);
    } else if (c->tcp.write_queue_size > HIGH_WATER_MARK) {
      c->want_drain = 1;
      result = 0;
    }
  }
  if (bytes != stack) free(bytes);
  return int_value(env, result);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  free(req);
  if (c->closing) return;
  if (status < 0) close_conn(c);
  else close_if_finished(c);
}

static napi_value js_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct conn *c = conn_arg(env, info, &argc, argv);
  if (!c || c->ending) return undefined_value(env);
  c->ending = 1;
  if (c->peer_ended) {
    /* Both directions done: close() sends our FIN after what is queued in the kernel. */
    close_if_finished(c);
    return undefined_value(env);
  }
  /* Our FIN once queued writes are out; the peer's EOF (or destroy) closes. */
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    close_conn(c);
  }
  return undefined_value(env);
}

static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct conn *c = conn_arg(env, info, &argc, argv);
  if (c) close_conn(c);
  return undefined_value(env);
}

static napi_value js_pause(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct conn *c = conn_arg(env, info, &argc, argv);
  if (c && c->reading) {
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  return undefined_value(env);
}

static napi_value js_resume(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct conn *c = conn_arg(env, info, &argc, argv);
  if (c && !c->reading && !c->peer_ended) {
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
  return undefined_value(env);
}

static napi_value js_no_delay(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct conn *c = conn_arg(env, info, &argc, argv);
  if (c) uv_tcp_nodelay(&c->tcp, 1);
  return undefined_value(env);
}

NAPI_MODULE_INIT() {
  struct transport *t = calloc(1, sizeof *t);
  if (!t) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  t->env = env;
  napi_set_instance_data(env, t, free_transport, NULL);
  napi_add_async_cleanup_hook(env, tear_down, t, NULL);
  napi_property_descriptor functions[] = {
      {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
      {"bindSocket", NULL, js_bind_socket, NULL, NULL, NULL, napi_default, NULL},
      {"sockName", NULL, js_sock_name, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"closeListener", NULL, js_close_listener, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_default, NULL},
      {"end", NULL, js_end, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL},
      {"pause", NULL, js_pause, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, js_resume, NULL, NULL, NULL, napi_default, NULL},
      {"noDelay", NULL, js_no_delay, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}
