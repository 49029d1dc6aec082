/*
 * The one NETLINK_SOCK_DIAG exchange identgate makes, shared by the helper and the addon: open the socket and
 * ask the kernel about one exact TCP connection (a hash lookup, however many sockets there are).
 * Why it never blocks: docs/internals.md (gateway/owner/sockdiag-core.h).
 */
#ifndef IDENTGATE_SOCKDIAG_CORE_H
#define IDENTGATE_SOCKDIAG_CORE_H

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

static int sockdiag_open(void) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  /* A reply never takes this long; the bound keeps a broken kernel from hanging us. */
  struct timeval tv = {.tv_sec = 0, .tv_usec = 250000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct sockdiag_result {
  int found;
  unsigned int state, uid, inode;
};

/* One exact lookup. Returns 0 (result filled) or a negative errno; `recv_flags` is 0 or MSG_DONTWAIT. */
static int sockdiag_exact(int fd, unsigned int seq, int family, const void *local, unsigned short lport,
                          const void *remote, unsigned short rport, int recv_flags, struct sockdiag_result *res) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST;
  req.nlh.nlmsg_seq = seq;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = ~0U;
  req.r.id.idiag_sport = htons(lport);
  req.r.id.idiag_dport = htons(rport);
  memcpy(req.r.id.idiag_src, local, family == AF_INET ? 4 : 16);
  memcpy(req.r.id.idiag_dst, remote, family == AF_INET ? 4 : 16);
  req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent;
  do sent = sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return -errno;

  long buf[8192 / sizeof(long)];
  memset(res, 0, sizeof *res);
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, recv_flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    }
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    int len = (int)n;
    for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != req.nlh.nlmsg_seq) continue; /* late reply to an older request */
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) return -EPROTO;
        if (e->error == -ENOENT || e->error == 0) return 0; /* not found */
        return e->error;
      }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
        struct inet_diag_msg *m = NLMSG_DATA(h);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m)) return -EPROTO;
        res->found = 1;
        res->state = m->idiag_state;
        res->uid = m->idiag_uid;
        res->inode = m->idiag_inode;
        return 0;
      }
      if (h->nlmsg_type == NLMSG_DONE) return 0;
    }
  }
}

/*
 * Every TCP socket of `family` whose local port is lport and remote port
 * rport, whatever the addresses, except those whose remote address is
 * `except` (NULL: none): a dump filtered in the kernel by inet_diag
 * bytecode. This answers a query forwarded by a NAT router, which names the
 * two ports only (oidentd -f). Fills up to `max` results; returns how many
 * matched (possibly more than max) or a negative errno.
 */
static inline int sockdiag_by_ports(int fd, unsigned int seq, int family, unsigned short lport, unsigned short rport,
                                    const void *except, int recv_flags, struct sockdiag_result *results, int max) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
    struct nlattr bc;
    struct inet_diag_bc_op ops[4];
  } req;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nlh.nlmsg_seq = seq;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = ~0U;
  req.bc.nla_type = INET_DIAG_REQ_BYTECODE;
  req.bc.nla_len = NLA_HDRLEN + sizeof req.ops;
  /* sport == lport && dport == rport; a failed test jumps past the end (len + 4), which rejects. */
  req.ops[0] = (struct inet_diag_bc_op){INET_DIAG_BC_S_EQ, 8, 20};
  req.ops[1] = (struct inet_diag_bc_op){0, 0, lport};
  req.ops[2] = (struct inet_diag_bc_op){INET_DIAG_BC_D_EQ, 8, 12};
  req.ops[3] = (struct inet_diag_bc_op){0, 0, rport};

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent;
  do sent = sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return -errno;

  size_t octets = family == AF_INET ? 4 : 16;
  long buf[8192 / sizeof(long)];
  int count = 0;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, recv_flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    }
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    int len = (int)n;
    for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != req.nlh.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return count;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) return -EPROTO;
        return e->error == 0 ? count : e->error;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      struct inet_diag_msg *m = NLMSG_DATA(h);
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m)) return -EPROTO;
      if (except != NULL && memcmp(m->id.idiag_dst, except, octets) == 0) continue;
      if (count < max) {
        results[count].found = 1;
        results[count].state = m->idiag_state;
        results[count].uid = m->idiag_uid;
        results[count].inode = m->idiag_inode;
      }
      count++;
    }
  }
}

/**
 * Most octets of a user name passed on (the wire's userName limit,
 * protocol/wire.ts). A longer name is reported as no name at all, never cut:
 * a cut name is another user's name.
 */
#define SOCKDIAG_NAME_MAX_OCTETS 256

/*
 * The name NSS gives uid (getpwuid_r, so LDAP and friends work), copied into
 * name (SOCKDIAG_NAME_MAX_OCTETS + 1 octets). Returns its length, or 0 when
 * the uid has no name or a longer one. May block as long as NSS does.
 */
static size_t sockdiag_user_name(unsigned int uid, char *name) {
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  size_t len = hint > 16384 ? (size_t)hint : 16384;
  char *buf = malloc(len);
  struct passwd pw, *found = NULL;
  size_t n = 0;
  if (buf != NULL && getpwuid_r((uid_t)uid, &pw, buf, len, &found) == 0 && found != NULL && found->pw_name != NULL) {
    n = strnlen(found->pw_name, SOCKDIAG_NAME_MAX_OCTETS + 1);
    if (n > SOCKDIAG_NAME_MAX_OCTETS) n = 0;
    memcpy(name, found->pw_name, n);
  }
  name[n] = '\0';
  free(buf);
  return n;
}

#endif
