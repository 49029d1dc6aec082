/*
 * Fills this network namespace's conntrack table with N masquerade-shaped TCP
 * entries for bench/nat-lookup.mjs: inner 10.80.x.y:40000 -> 198.51.100.2:6667,
 * translated to 198.51.100.1:(1024 + i % 60000) (reply direction), ESTABLISHED,
 * with a 10 minute timeout. ctnetlink IPCTNL_MSG_CT_NEW, many messages per
 * sendto(); needs CAP_NET_ADMIN. Run it only in a namespace made for the bench.
 *
 *   cc -O2 -o conntrack-fill bench/conntrack-fill.c && ip netns exec NS ./conntrack-fill 20000
 */
#include <stdio.h>
#include <stdlib.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>

#include "../gateway/owner/conntrack-core.h"

static char *put_tuple(char *p, unsigned short type, const unsigned char *src, const unsigned char *dst,
                       unsigned short sport, unsigned short dport) {
  struct nlattr *tuple = conntrack_nest(&p, type);
  struct nlattr *ip = conntrack_nest(&p, CTA_TUPLE_IP);
  p = conntrack_put(p, CTA_IP_V4_SRC, src, 4);
  p = conntrack_put(p, CTA_IP_V4_DST, dst, 4);
  conntrack_nest_end(p, ip);
  struct nlattr *proto = conntrack_nest(&p, CTA_TUPLE_PROTO);
  unsigned char tcp = IPPROTO_TCP;
  unsigned short s = htons(sport), d = htons(dport);
  p = conntrack_put(p, CTA_PROTO_NUM, &tcp, 1);
  p = conntrack_put(p, CTA_PROTO_SRC_PORT, &s, 2);
  p = conntrack_put(p, CTA_PROTO_DST_PORT, &d, 2);
  conntrack_nest_end(p, proto);
  conntrack_nest_end(p, tuple);
  return p;
}

int main(int argc, char **argv) {
  long count = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
  int fd = conntrack_open();
  if (fd < 0) {
    perror("conntrack-fill: NETLINK_NETFILTER");
    return 1;
  }
  static long buf[65536 / sizeof(long)];
  const unsigned char server[4] = {198, 51, 100, 2}, router[4] = {198, 51, 100, 1};
  long done = 0, acked = 0;
  unsigned int seq = 0;
  while (done < count) {
    memset(buf, 0, sizeof buf);
    char *p = (char *)buf;
    int batch = 0;
    while (done < count && batch < 100) {
      struct nlmsghdr *nlh = (struct nlmsghdr *)p;
      nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
      nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
      nlh->nlmsg_seq = ++seq;
      struct nfgenmsg *gen = NLMSG_DATA(nlh);
      gen->nfgen_family = AF_INET;
      gen->version = NFNETLINK_V0;
      char *a = (char *)gen + NLMSG_ALIGN(sizeof *gen);
      unsigned char inner[4] = {10, 80, (unsigned char)(done / 250), (unsigned char)(done % 250 + 1)};
      unsigned short port = (unsigned short)(1024 + done % 60000);
      a = put_tuple(a, CTA_TUPLE_ORIG, inner, server, 40000, 6667);
      a = put_tuple(a, CTA_TUPLE_REPLY, server, router, 6667, port);
      unsigned int status = htonl(IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED | IPS_SRC_NAT | IPS_SRC_NAT_DONE);
      unsigned int timeout = htonl(600);
      a = conntrack_put(a, CTA_STATUS, &status, 4);
      a = conntrack_put(a, CTA_TIMEOUT, &timeout, 4);
      struct nlattr *info = conntrack_nest(&a, CTA_PROTOINFO);
      struct nlattr *tcpinfo = conntrack_nest(&a, CTA_PROTOINFO_TCP);
      unsigned char state = TCP_CONNTRACK_ESTABLISHED;
      a = conntrack_put(a, CTA_PROTOINFO_TCP_STATE, &state, 1);
      conntrack_nest_end(a, tcpinfo);
      conntrack_nest_end(a, info);
      nlh->nlmsg_len = (unsigned int)(a - p);
      p += NLMSG_ALIGN(nlh->nlmsg_len);
      done++;
      batch++;
    }
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, buf, (size_t)(p - (char *)buf), 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
      perror("conntrack-fill: sendto");
      return 1;
    }
    /* One ack per message; an error ack names the first refusal. */
    while (acked < done) {
      static long reply[65536 / sizeof(long)];
      ssize_t n = recv(fd, reply, sizeof reply, 0);
      if (n < 0) {
        perror("conntrack-fill: recv");
        return 1;
      }
      struct nlmsghdr *h = (struct nlmsghdr *)reply;
      int len = (int)n;
      for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error != 0) {
          fprintf(stderr, "conntrack-fill: entry %u refused: %s\n", h->nlmsg_seq, strerror(-e->error));
          return 1;
        }
        acked++;
      }
    }
  }
  printf("%ld\n", done);
  return 0;
}
