/*
 * The one ctnetlink exchange identgate makes (IPCTNL_MSG_CT_GET): which conntrack entry holds the tuple of a
 * packet from the querier, and who is on the far side of its translation (source or destination NAT).
 * Cost, privileges and directions: docs/internals.md (gateway/owner/conntrack-core.h).
 */
#ifndef IDENTGATE_CONNTRACK_CORE_H
#define IDENTGATE_CONNTRACK_CORE_H

#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>

static int conntrack_open(void) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = 0, .tv_usec = 250000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct conntrack_tuple {
  unsigned char src[16], dst[16];
  unsigned short sport, dport; /* host order */
  int have_src, have_dst, have_sport, have_dport;
};

struct conntrack_result {
  int found;
  /* The inner side (address, port) and the port it talks to, as the inner host sees its connection. */
  unsigned char inner[16];
  unsigned short inner_port, inner_peer_port;
};

static char *conntrack_put(char *p, unsigned short type, const void *data, unsigned short len) {
  struct nlattr *a = (struct nlattr *)p;
  a->nla_type = type;
  a->nla_len = (unsigned short)(NLA_HDRLEN + len);
  memcpy(p + NLA_HDRLEN, data, len);
  return p + NLA_ALIGN(a->nla_len);
}

static struct nlattr *conntrack_nest(char **p, unsigned short type) {
  struct nlattr *a = (struct nlattr *)*p;
  a->nla_type = type | NLA_F_NESTED;
  *p += NLA_HDRLEN;
  return a;
}

static void conntrack_nest_end(char *p, struct nlattr *a) { a->nla_len = (unsigned short)(p - (char *)a); }

/* Walks the attributes in [p, p + len), calling back for each. */
#define CONNTRACK_EACH_ATTR(a, p, len)                                                                         \
  for (struct nlattr *a = (struct nlattr *)(p); (char *)a + NLA_HDRLEN <= (char *)(p) + (len) &&              \
                                                a->nla_len >= NLA_HDRLEN &&                                    \
                                                (char *)a + a->nla_len <= (char *)(p) + (len);                 \
       a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))

static void conntrack_parse_tuple(const struct nlattr *nest, size_t octets, struct conntrack_tuple *t) {
  memset(t, 0, sizeof *t);
  const char *body = (const char *)nest + NLA_HDRLEN;
  size_t body_len = nest->nla_len - NLA_HDRLEN;
  CONNTRACK_EACH_ATTR(a, body, body_len) {
    const char *inner = (const char *)a + NLA_HDRLEN;
    size_t inner_len = a->nla_len - NLA_HDRLEN;
    int type = a->nla_type & NLA_TYPE_MASK;
    if (type == CTA_TUPLE_IP) {
      CONNTRACK_EACH_ATTR(ip, inner, inner_len) {
        int ip_type = ip->nla_type & NLA_TYPE_MASK;
        size_t n = ip->nla_len - NLA_HDRLEN;
        const void *v = (const char *)ip + NLA_HDRLEN;
        if (n != octets) continue;
        if (ip_type == CTA_IP_V4_SRC || ip_type == CTA_IP_V6_SRC) memcpy(t->src, v, n), t->have_src = 1;
        if (ip_type == CTA_IP_V4_DST || ip_type == CTA_IP_V6_DST) memcpy(t->dst, v, n), t->have_dst = 1;
      }
    } else if (type == CTA_TUPLE_PROTO) {
      CONNTRACK_EACH_ATTR(pr, inner, inner_len) {
        int pr_type = pr->nla_type & NLA_TYPE_MASK;
        unsigned short port;
        if (pr->nla_len - NLA_HDRLEN != 2) continue;
        memcpy(&port, (const char *)pr + NLA_HDRLEN, 2);
        if (pr_type == CTA_PROTO_SRC_PORT) t->sport = ntohs(port), t->have_sport = 1;
        if (pr_type == CTA_PROTO_DST_PORT) t->dport = ntohs(port), t->have_dport = 1;
      }
    }
  }
}

static int conntrack_tuple_is(const struct conntrack_tuple *t, size_t octets, const void *src, unsigned short sport,
                              const void *dst, unsigned short dport) {
  return t->have_src && t->have_dst && t->have_sport && t->have_dport && memcmp(t->src, src, octets) == 0 &&
         memcmp(t->dst, dst, octets) == 0 && t->sport == sport && t->dport == dport;
}

/*
 * One lookup of the TCP tuple src:sport -> dst:dport (src the querier, dst
 * this host). Returns 0 (result filled; found = 0 when no entry holds the
 * tuple or the entry is not translated) or a negative errno.
 */
static inline int conntrack_get(int fd, unsigned int seq, int family, const void *src, unsigned short sport,
                                const void *dst, unsigned short dport, int recv_flags,
                                struct conntrack_result *res) {
  size_t octets = family == AF_INET ? 4 : 16;
  long reqbuf[256 / sizeof(long)];
  memset(reqbuf, 0, sizeof reqbuf);
  struct nlmsghdr *nlh = (struct nlmsghdr *)reqbuf;
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  struct nfgenmsg *gen = NLMSG_DATA(nlh);
  gen->nfgen_family = (unsigned char)family;
  gen->version = NFNETLINK_V0;
  char *p = (char *)gen + NLMSG_ALIGN(sizeof *gen);
  /* CTA_TUPLE_ORIG names the tuple; the kernel's hash lookup matches it against either direction. */
  struct nlattr *tuple = conntrack_nest(&p, CTA_TUPLE_ORIG);
  struct nlattr *ip = conntrack_nest(&p, CTA_TUPLE_IP);
  p = conntrack_put(p, family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, src, (unsigned short)octets);
  p = conntrack_put(p, family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST, dst, (unsigned short)octets);
  conntrack_nest_end(p, ip);
  struct nlattr *proto = conntrack_nest(&p, CTA_TUPLE_PROTO);
  unsigned char tcp = IPPROTO_TCP;
  unsigned short sport_be = htons(sport), dport_be = htons(dport);
  p = conntrack_put(p, CTA_PROTO_NUM, &tcp, 1);
  p = conntrack_put(p, CTA_PROTO_SRC_PORT, &sport_be, 2);
  p = conntrack_put(p, CTA_PROTO_DST_PORT, &dport_be, 2);
  conntrack_nest_end(p, proto);
  conntrack_nest_end(p, tuple);
  nlh->nlmsg_len = (unsigned int)(p - (char *)reqbuf);

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent;
  do sent = sendto(fd, reqbuf, nlh->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
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
      if (h->nlmsg_seq != seq) continue; /* late reply to an older request */
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) return -EPROTO;
        if (e->error == -ENOENT || e->error == 0) return 0; /* no such entry */
        return e->error;
      }
      if (h->nlmsg_type != ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW)) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg))) return -EPROTO;
      const char *attrs = (const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
      size_t attrs_len = h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct nfgenmsg)));
      struct conntrack_tuple orig, reply;
      int have_orig = 0, have_reply = 0;
      CONNTRACK_EACH_ATTR(a, attrs, attrs_len) {
        int type = a->nla_type & NLA_TYPE_MASK;
        if (type == CTA_TUPLE_ORIG) conntrack_parse_tuple(a, octets, &orig), have_orig = 1;
        if (type == CTA_TUPLE_REPLY) conntrack_parse_tuple(a, octets, &reply), have_reply = 1;
      }
      if (!have_orig || !have_reply) return -EPROTO;
      const struct conntrack_tuple *inner_side;
      if (conntrack_tuple_is(&reply, octets, src, sport, dst, dport))
        inner_side = &orig; /* an inner host connected out (source NAT) */
      else if (conntrack_tuple_is(&orig, octets, src, sport, dst, dport))
        inner_side = &reply; /* the querier connected in (destination NAT) */
      else
        return 0;
      if (!inner_side->have_src || !inner_side->have_sport || !inner_side->have_dport) return -EPROTO;
      /* Untranslated (this host's own connection, its socket gone): not NAT. */
      if (memcmp(inner_side->src, dst, octets) == 0 && inner_side->sport == dport) return 0;
      res->found = 1;
      memcpy(res->inner, inner_side->src, octets);
      res->inner_port = inner_side->sport;
      res->inner_peer_port = inner_side->dport;
      return 0;
    }
  }
}

#endif
