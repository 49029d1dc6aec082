/*
 * ceiling.c - the machine's limit for an ident server: one thread, one epoll
 * set, no lookup, no policy, no logging. Each request line "S , C" is answered
 * with "S , C : USERID : UNIX : bench" (the ports echoed so a strict client
 * accepts the reply); a line that is not two ports gets
 * "0 , 0 : ERROR : INVALID-PORT". Connections stay open for more queries
 * until the client closes (RFC 1413 section 2 allows either side to close).
 *
 * It exists so the benchmark can show that the load generator drives far
 * more than identgate needs: if loadgen-on-ceiling is several times
 * loadgen-on-identgate, the numbers measure identgate, not the load generator.
 *
 * Build: cc -O2 -o ceiling ceiling.c      Run: ceiling PORT [ADDRESS]
 * Prints "listening on ADDRESS:PORT" once bound.
 *
 * Example:
 *   ./ceiling 0 127.0.0.1     # port 0 = any free port, printed on stdout
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
  size_t len;
  char buf[1024];
};

static struct conn **conns; /* indexed by fd */
static int conns_cap;

static int parse_port(const char **pp, const char *end, long *out) {
  const char *p = *pp;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  long v = 0;
  int d = 0;
  while (p < end && *p >= '0' && *p <= '9' && d < 6) v = v * 10 + (*p++ - '0'), d++;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  if (d == 0 || d > 5 || v < 1 || v > 65535) return -1;
  *pp = p;
  *out = v;
  return 0;
}

static void drop(int epfd, int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  if (fd < conns_cap && conns[fd]) {
    free(conns[fd]);
    conns[fd] = NULL;
  }
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  const char *addr = argc > 2 ? argv[2] : "127.0.0.1";
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    conns_cap = (int)(rl.rlim_cur > 1 << 20 ? 1 << 20 : rl.rlim_cur);
  } else {
    conns_cap = 1024;
  }
  conns = calloc((size_t)conns_cap, sizeof *conns);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    fprintf(stderr, "ceiling: bad address %s\n", addr);
    return 2;
  }
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
    perror("ceiling: bind/listen");
    return 2;
  }
  socklen_t sl = sizeof sa;
  getsockname(ls, (struct sockaddr *)&sa, &sl);
  printf("listening on %s:%d\n", addr, ntohs(sa.sin_port));
  fflush(stdout);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event events[512];
  char out[8192];
  for (;;) {
    int n = epoll_wait(epfd, events, 512, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          if (c >= conns_cap) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[c] = calloc(1, sizeof(struct conn));
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      struct conn *c = conns[fd];
      if (!c) continue;
      int gone = 0;
      ssize_t r = recv(fd, c->buf + c->len, sizeof c->buf - c->len, 0);
      if (r > 0) c->len += (size_t)r;
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) gone = 1;
      size_t outlen = 0;
      char *nl;
      while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
        size_t ll = (size_t)(nl - c->buf) + 1;
        const char *p = c->buf, *end = nl;
        if (end > p && end[-1] == '\r') end--;
        long sp, cp;
        if (outlen + 128 < sizeof out) {
          if (parse_port(&p, end, &sp) == 0 && p < end && *p == ',' && (p++, 1) &&
              parse_port(&p, end, &cp) == 0 && p == end)
            outlen += (size_t)snprintf(out + outlen, sizeof out - outlen,
                                       "%ld , %ld : USERID : UNIX : bench\r\n", sp, cp);
          else
            outlen += (size_t)snprintf(out + outlen, sizeof out - outlen,
                                       "0 , 0 : ERROR : INVALID-PORT\r\n");
        }
        memmove(c->buf, c->buf + ll, c->len - ll);
        c->len -= ll;
      }
      if (c->len == sizeof c->buf) gone = 1; /* line too long */
      if (outlen > 0 && send(fd, out, outlen, MSG_NOSIGNAL) < 0 && errno != EAGAIN) gone = 1;
      if (gone || (events[i].events & (EPOLLERR | EPOLLHUP))) drop(epfd, fd);
    }
  }
}
