/*
 * identgate-sockdiag.node: the sock_diag owner lookup (and the conntrack and SO_PEERCRED questions) inside
 * the gateway process, as a Node-API addon: one lookup is one sendto() and one non-blocking recv() on netlink.
 * Its JavaScript API: docs/internals.md (gateway/owner/sockdiag-addon.c).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conntrack-core.h"
#include "sockdiag-core.h"

struct addon_state {
  int fd;
  unsigned int seq;
  /* NETLINK_NETFILTER, opened at the first conntrack lookup. */
  int ct_fd;
};

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct addon_state *state = data;
  if (state->fd >= 0) close(state->fd);
  if (state->ct_fd >= 0) close(state->ct_fd);
  free(state);
}

static struct addon_state *get_state(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static napi_value make_int(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  (void)info;
  struct addon_state *state = get_state(env);
  if (state->fd >= 0) return make_int(env, 0);
  int fd = sockdiag_open();
  if (fd < 0) return make_int(env, -errno);
  state->fd = fd;
  return make_int(env, 0);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  (void)info;
  struct addon_state *state = get_state(env);
  if (state->fd >= 0) close(state->fd);
  if (state->ct_fd >= 0) close(state->ct_fd);
  state->fd = -1;
  state->ct_fd = -1;
  return NULL;
}

/* The bytes of a typed array argument; NULL unless it is one of `want` octets. */
static void *typed_bytes(napi_env env, napi_value value, size_t want) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  size_t octets = type == napi_uint32_array ? length * 4 : length;
  return octets == want ? data : NULL;
}

static int port_arg(napi_env env, napi_value value) {
  int32_t port = -1;
  if (napi_get_value_int32(env, value, &port) != napi_ok || port < 0 || port > 65535) return -1;
  return port;
}

static napi_value js_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct addon_state *state = get_state(env);
  if (argc != 6) return make_int(env, -EINVAL);
  if (state->fd < 0) return make_int(env, -EBADF);
  int32_t family = 0;
  napi_get_value_int32(env, argv[1], &family);
  size_t octets = family == 4 ? 4 : family == 6 ? 16 : 0;
  uint32_t *out = typed_bytes(env, argv[0], 12);
  void *local = octets ? typed_bytes(env, argv[2], octets) : NULL;
  void *remote = octets ? typed_bytes(env, argv[4], octets) : NULL;
  int lport = port_arg(env, argv[3]);
  int rport = port_arg(env, argv[5]);
  if (out == NULL || local == NULL || remote == NULL || lport < 0 || rport < 0) return make_int(env, -EINVAL);
  struct sockdiag_result res;
  int rc = sockdiag_exact(state->fd, ++state->seq, family == 4 ? AF_INET : AF_INET6, local, (unsigned short)lport,
                          remote, (unsigned short)rport, MSG_DONTWAIT, &res);
  if (rc < 0) return make_int(env, rc);
  if (!res.found) return make_int(env, 0);
  out[0] = res.state;
  out[1] = res.uid;
  out[2] = res.inode;
  return make_int(env, 1);
}

static napi_value js_lookup_ports(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct addon_state *state = get_state(env);
  if (argc != 5) return make_int(env, -EINVAL);
  if (state->fd < 0) return make_int(env, -EBADF);
  int32_t family = 0;
  napi_get_value_int32(env, argv[1], &family);
  size_t octets = family == 4 ? 4 : family == 6 ? 16 : 0;
  uint32_t *out = typed_bytes(env, argv[0], 48);
  int lport = port_arg(env, argv[2]);
  int rport = port_arg(env, argv[3]);
  napi_valuetype except_type;
  napi_typeof(env, argv[4], &except_type);
  void *except = except_type == napi_null ? NULL : octets ? typed_bytes(env, argv[4], octets) : NULL;
  if (out == NULL || octets == 0 || lport < 0 || rport < 0 || (except == NULL && except_type != napi_null))
    return make_int(env, -EINVAL);
  struct sockdiag_result res[4];
  int count = sockdiag_by_ports(state->fd, ++state->seq, family == 4 ? AF_INET : AF_INET6, (unsigned short)lport,
                                (unsigned short)rport, except, MSG_DONTWAIT, res, 4);
  for (int i = 0; i < count && i < 4; i++) {
    out[i * 3] = res[i].state;
    out[i * 3 + 1] = res[i].uid;
    out[i * 3 + 2] = res[i].inode;
  }
  return make_int(env, count);
}

static napi_value js_conntrack(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct addon_state *state = get_state(env);
  if (argc != 6) return make_int(env, -EINVAL);
  int32_t family = 0;
  napi_get_value_int32(env, argv[1], &family);
  size_t octets = family == 4 ? 4 : family == 6 ? 16 : 0;
  unsigned char *out = typed_bytes(env, argv[0], 20);
  void *remote = octets ? typed_bytes(env, argv[2], octets) : NULL;
  void *local = octets ? typed_bytes(env, argv[4], octets) : NULL;
  int rport = port_arg(env, argv[3]);
  int lport = port_arg(env, argv[5]);
  if (out == NULL || local == NULL || remote == NULL || lport < 0 || rport < 0) return make_int(env, -EINVAL);
  if (state->ct_fd < 0) {
    state->ct_fd = conntrack_open();
    if (state->ct_fd < 0) return make_int(env, -errno);
  }
  struct conntrack_result res;
  int rc = conntrack_get(state->ct_fd, ++state->seq, family == 4 ? AF_INET : AF_INET6, remote, (unsigned short)rport,
                         local, (unsigned short)lport, MSG_DONTWAIT, &res);
  if (rc < 0) return make_int(env, rc);
  if (!res.found) return make_int(env, 0);
  memset(out, 0, 20);
  memcpy(out, res.inner, octets);
  out[16] = (unsigned char)(res.inner_port >> 8);
  out[17] = (unsigned char)(res.inner_port & 0xff);
  out[18] = (unsigned char)(res.inner_peer_port >> 8);
  out[19] = (unsigned char)(res.inner_peer_port & 0xff);
  return make_int(env, 1);
}

struct name_work {
  napi_async_work work;
  napi_deferred deferred;
  unsigned int uid;
  size_t length;
  char name[SOCKDIAG_NAME_MAX_OCTETS + 1];
};

static void name_execute(napi_env env, void *data) {
  (void)env;
  struct name_work *job = data;
  job->length = sockdiag_user_name(job->uid, job->name);
}

static void name_complete(napi_env env, napi_status status, void *data) {
  struct name_work *job = data;
  napi_value result;
  if (status == napi_ok && job->length > 0) {
    napi_create_string_utf8(env, job->name, job->length, &result);
  } else {
    napi_get_null(env, &result);
  }
  napi_resolve_deferred(env, job->deferred, result);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value js_user_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t uid = 0;
  napi_value promise, resource_name;
  struct name_work *job = calloc(1, sizeof *job);
  if (job == NULL || argc != 1 || napi_get_value_uint32(env, argv[0], &uid) != napi_ok) {
    free(job);
    napi_throw_type_error(env, NULL, "userName(uid) takes a uid");
    return NULL;
  }
  job->uid = uid;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "identgate:getpwuid", NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, name_execute, name_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/* The kernel's record of who connected: set at connect(), not something the peer can say about itself. */
static napi_value js_peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 2) return make_int(env, -EINVAL);
  uint32_t *out = typed_bytes(env, argv[0], 12);
  int32_t fd = -1;
  if (out == NULL || napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) return make_int(env, -EINVAL);
  struct ucred cred;
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return make_int(env, -errno);
  if (length != sizeof cred) return make_int(env, -EPROTO);
  out[0] = (uint32_t)cred.pid;
  out[1] = cred.uid;
  out[2] = cred.gid;
  return make_int(env, 0);
}

NAPI_MODULE_INIT() {
  struct addon_state *state = malloc(sizeof *state);
  if (state == NULL) return NULL;
  state->fd = -1;
  state->ct_fd = -1;
  state->seq = 0;
  napi_set_instance_data(env, state, free_state, NULL);
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"lookup", NULL, js_lookup, NULL, NULL, NULL, napi_default, NULL},
      {"lookupPorts", NULL, js_lookup_ports, NULL, NULL, NULL, napi_default, NULL},
      {"conntrack", NULL, js_conntrack, NULL, NULL, NULL, napi_default, NULL},
      {"userName", NULL, js_user_name, NULL, NULL, NULL, napi_default, NULL},
      {"peerCredentials", NULL, js_peer_credentials, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
