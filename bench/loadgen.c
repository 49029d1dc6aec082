/*
 * loadgen.c - an RFC 1413 ident load generator that should never be the
 * bottleneck: one thread, one epoll set, N concurrent client connections,
 * each doing request/response (send a query, wait for its reply line, then
 * send the next one) until Q queries have been answered on that connection,
 * then closing and reconnecting. Q = 1 is "one query per connection"; Q = 100
 * is a long-lived client. Optionally it first opens K idle connections that
 * never send a byte and holds them for the whole run (the idle-flood scenario).
 *
 * Every reply line is checked: it must end in CR LF, match
 * "<serverPort> , <clientPort> : USERID : <opsys> : <userId>" or
 * "<serverPort> , <clientPort> : ERROR : <token>" (RFC 1413 section 6) and
 * echo the ports of the query that was sent. Anything else is counted as an
 * error, as are failed connects, connections the server closes before
 * answering, and queries unanswered within --timeout-ms.
 *
 * A server closing a connection after it has answered at least one query
 * (oidentd does this) is legal (RFC 1413 section 2): the next query is then
 * re-sent on a fresh connection and the close is counted in "server_closed",
 * not in the errors.
 *
 * Connections are closed with RST by default (--rst-close 1); see close_fd().
 *
 * The result is one JSON object on stdout. Build: cc -O2 -o loadgen loadgen.c
 *
 * Example:
 *   loadgen --port 1113 --conns 32 --duration 3 --per-conn 100 --query "40000, 6667"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { S_FREE, S_CONNECTING, S_WAITING };

struct conn {
  int fd;
  enum state state;
  int answered;       /* replies received on this connection */
  int outstanding;    /* a query has been sent and not yet answered */
  double sent_at;     /* monotonic seconds when the outstanding query was sent */
  double started_at;  /* when the connect began (for connect timeouts) */
  size_t len;
  char buf[1024];
};

static struct {
  const char *host;
  int port;
  int conns;
  double duration;
  int per_conn;
  char query[128];
  size_t query_len;
  long want_server_port, want_client_port;
  int idle;
  int idle_settle_ms;
  int timeout_ms;
  int rst_close;
} opt = {"127.0.0.1", 0, 32, 3.0, 1, "", 0, 0, 0, 0, 1500, 5000, 1};

static struct {
  uint64_t completed, userid, error_replies;
  uint64_t err_connect, err_closed_early, err_malformed, err_wrong_ports, err_timeout;
  uint64_t server_closed, connections;
  uint32_t *lat_us;
  size_t lat_n, lat_cap;
  char sample[256];
  char bad_sample[256];
  char error_sample[256];
} st;

static int epfd;
static struct sockaddr_in target;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --port P --query \"S, C\" [--host 127.0.0.1] [--conns 32]\n"
          "               [--duration 3] [--per-conn 1] [--idle 0] [--idle-settle-ms 1500]\n"
          "               [--timeout-ms 5000] [--rst-close 1]\n");
  exit(2);
}

static void record_latency(double seconds) {
  if (st.lat_n == st.lat_cap) {
    st.lat_cap = st.lat_cap ? st.lat_cap * 2 : 1 << 16;
    st.lat_us = realloc(st.lat_us, st.lat_cap * sizeof *st.lat_us);
    if (!st.lat_us) die("realloc");
  }
  double us = seconds * 1e6;
  st.lat_us[st.lat_n++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

/* Parse a decimal port 1..65535 surrounded by optional spaces/tabs. */
static const char *parse_port(const char *p, const char *end, long *out) {
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  long v = 0;
  int digits = 0;
  while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
    v = v * 10 + (*p - '0');
    p++;
    digits++;
  }
  if (digits == 0 || digits > 5 || v < 1 || v > 65535) return NULL;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  *out = v;
  return p;
}

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  return p;
}

/* Returns 0 ok, 1 malformed, 2 wrong ports. line excludes CR LF. */
static int check_reply(const char *line, size_t n, int *is_userid) {
  const char *p = line, *end = line + n;
  long sp, cp;
  if (!(p = parse_port(p, end, &sp)) || p >= end || *p++ != ',') return 1;
  if (!(p = parse_port(p, end, &cp)) || p >= end || *p++ != ':') return 1;
  p = skip_ws(p, end);
  if ((size_t)(end - p) >= 6 && memcmp(p, "USERID", 6) == 0) {
    p = skip_ws(p + 6, end);
    if (p >= end || *p++ != ':') return 1;
    /* opsys[ , charset] up to the next colon: must be non-empty */
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon) return 1;
    const char *q = skip_ws(p, colon);
    if (q == colon) return 1;
    /* user-id: at least one octet, no NUL / CR / LF (RFC 1413 section 6) */
    p = colon + 1;
    if (p >= end) return 1;
    for (const char *r = p; r < end; r++)
      if (*r == '\0' || *r == '\r' || *r == '\n') return 1;
    *is_userid = 1;
  } else if ((size_t)(end - p) >= 5 && memcmp(p, "ERROR", 5) == 0) {
    p = skip_ws(p + 5, end);
    if (p >= end || *p++ != ':') return 1;
    p = skip_ws(p, end);
    const char *t = end;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if (t == p) return 1;
    for (const char *r = p; r < t; r++)
      if (!((*r >= 'A' && *r <= 'Z') || (*r >= '0' && *r <= '9') || *r == '-')) return 1;
    *is_userid = 0;
  } else {
    return 1;
  }
  if (sp != opt.want_server_port || cp != opt.want_client_port) return 2;
  return 0;
}

static int open_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/*
 * Close with RST (SO_LINGER 0) unless --rst-close 0: on loopback a normal
 * client-first close leaves a TIME_WAIT socket in the server's own network
 * namespace for every query, and servers that look up owners by scanning
 * /proc/net/tcp (oidentd, identgate) would then pay for the load generator's
 * sockets - a cost they never see with remote clients, whose TIME_WAIT lives
 * on the client host.
 */
static void close_fd(int fd) {
  if (opt.rst_close) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(fd);
}

static void close_conn(struct conn *c) {
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close_fd(c->fd);
  }
  c->fd = -1;
  c->state = S_FREE;
  c->answered = 0;
  c->outstanding = 0;
  c->len = 0;
}

static void start_conn(struct conn *c, uint64_t tag) {
  c->fd = open_socket();
  if (c->fd < 0) {
    st.err_connect++;
    c->state = S_FREE;
    return;
  }
  c->state = S_CONNECTING;
  c->answered = 0;
  c->outstanding = 0;
  c->len = 0;
  c->started_at = now();
  st.connections++;
  int r = connect(c->fd, (struct sockaddr *)&target, sizeof target);
  if (r < 0 && errno != EINPROGRESS) {
    st.err_connect++;
    close(c->fd);
    c->fd = -1;
    c->state = S_FREE;
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u64 = tag};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
}

static int send_query(struct conn *c) {
  ssize_t w = send(c->fd, opt.query, opt.query_len, MSG_NOSIGNAL);
  if (w != (ssize_t)opt.query_len) return -1; /* 20 octets always fit a fresh socket buffer */
  c->outstanding = 1;
  c->sent_at = now();
  return 0;
}

/* The connection went away before the outstanding query was answered. */
static void lost(struct conn *c) {
  if (c->answered > 0 && c->len == 0)
    st.server_closed++;
  else
    st.err_closed_early++;
  close_conn(c);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(double p) {
  if (st.lat_n == 0) return 0;
  size_t i = (size_t)(p * (double)(st.lat_n - 1) + 0.5);
  return st.lat_us[i] / 1000.0;
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) printf("\\u%04x", ch);
    else putchar(ch);
  }
  putchar('"');
}

static void sample(char *dst, const char *line, size_t n) {
  if (dst[0]) return;
  if (n > 200) n = 200;
  memcpy(dst, line, n);
  dst[n] = 0;
}

#define IDLE_TAG (1ull << 32)

int main(int argc, char **argv) {
  const char *query = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--host")) opt.host = v;
    else if (!strcmp(a, "--port")) opt.port = atoi(v);
    else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
    else if (!strcmp(a, "--duration")) opt.duration = atof(v);
    else if (!strcmp(a, "--per-conn")) opt.per_conn = atoi(v);
    else if (!strcmp(a, "--query")) query = v;
    else if (!strcmp(a, "--idle")) opt.idle = atoi(v);
    else if (!strcmp(a, "--idle-settle-ms")) opt.idle_settle_ms = atoi(v);
    else if (!strcmp(a, "--timeout-ms")) opt.timeout_ms = atoi(v);
    else if (!strcmp(a, "--rst-close")) opt.rst_close = atoi(v);
    else usage();
    i++;
  }
  if (opt.port < 1 || opt.port > 65535 || !query || opt.conns < 1 || opt.per_conn < 1 ||
      opt.duration <= 0 || opt.idle < 0)
    usage();
  {
    const char *end = query + strlen(query);
    const char *p = parse_port(query, end, &opt.want_server_port);
    if (!p || *p != ',' || !(p = parse_port(p + 1, end, &opt.want_client_port)) || p != end) {
      fprintf(stderr, "loadgen: --query must look like \"6193, 23\"\n");
      return 2;
    }
    opt.query_len = (size_t)snprintf(opt.query, sizeof opt.query, "%s\r\n", query);
  }

  /* Room for the idle flood plus the load connections. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rlim_t want = (rlim_t)opt.idle + (rlim_t)opt.conns + 64;
    if (rl.rlim_cur < want) {
      rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
      fprintf(stderr, "loadgen: RLIMIT_NOFILE %lu is below the %lu descriptors needed\n",
              (unsigned long)rl.rlim_cur, (unsigned long)want);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);

  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &target.sin_addr) != 1) {
    fprintf(stderr, "loadgen: --host must be an IPv4 address\n");
    return 2;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");

  struct epoll_event events[512];

  /* Phase 1: the idle flood. Connect in waves of 256 so the listen backlog holds. */
  uint64_t idle_open = 0, idle_failed = 0, idle_closed_by_server = 0;
  int *idle_fds = NULL;
  if (opt.idle > 0) {
    idle_fds = calloc((size_t)opt.idle, sizeof *idle_fds);
    if (!idle_fds) die("calloc");
    int next = 0, pending = 0;
    double deadline = now() + 30.0;
    while ((next < opt.idle || pending > 0) && now() < deadline) {
      while (next < opt.idle && pending < 256) {
        int fd = open_socket();
        if (fd < 0) die("socket (idle)");
        idle_fds[next] = fd;
        int r = connect(fd, (struct sockaddr *)&target, sizeof target);
        if (r < 0 && errno != EINPROGRESS) {
          idle_failed++;
          close(fd);
          idle_fds[next] = -1;
          next++;
          continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = IDLE_TAG | (uint64_t)next};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl idle");
        pending++;
        next++;
      }
      int n = epoll_wait(epfd, events, 512, 100);
      for (int i = 0; i < n; i++) {
        int idx = (int)(events[i].data.u64 & 0xffffffffu);
        int fd = idle_fds[idx];
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        pending--;
        if (err) {
          idle_failed++;
          epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
          close(fd);
          idle_fds[idx] = -1;
        } else {
          idle_open++;
          struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = IDLE_TAG | (uint64_t)idx};
          epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
        }
      }
    }
    fprintf(stderr, "READY idle=%llu\n", (unsigned long long)idle_open);
    fflush(stderr);
    double until = now() + opt.idle_settle_ms / 1000.0;
    while (now() < until) {
      int n = epoll_wait(epfd, events, 512, 50);
      for (int i = 0; i < n; i++) {
        int idx = (int)(events[i].data.u64 & 0xffffffffu);
        if (idle_fds[idx] >= 0) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, idle_fds[idx], NULL);
          close(idle_fds[idx]);
          idle_fds[idx] = -1;
          idle_closed_by_server++;
        }
      }
    }
  }

  /* Phase 2: the measured load. */
  struct conn *cs = calloc((size_t)opt.conns, sizeof *cs);
  if (!cs) die("calloc");
  for (int i = 0; i < opt.conns; i++) cs[i].fd = -1;
  double t0 = now(), stop_at = t0 + opt.duration;
  for (int i = 0; i < opt.conns; i++) start_conn(&cs[i], (uint64_t)i);

  double last_sweep = t0;
  for (;;) {
    double t = now();
    if (t >= stop_at) break;
    int wait_ms = (int)((stop_at - t) * 1000.0) + 1;
    if (wait_ms > 10) wait_ms = 10;
    int n = epoll_wait(epfd, events, 512, wait_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag & IDLE_TAG) {
        int idx = (int)(tag & 0xffffffffu);
        if (idle_fds[idx] >= 0) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, idle_fds[idx], NULL);
          close(idle_fds[idx]);
          idle_fds[idx] = -1;
          idle_closed_by_server++;
        }
        continue;
      }
      struct conn *c = &cs[tag];
      if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events[i].events & (EPOLLERR | EPOLLHUP))) {
          st.err_connect++;
          close_conn(c);
          continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = tag};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->state = S_WAITING;
        if (send_query(c) < 0) {
          st.err_closed_early++;
          close_conn(c);
        }
        continue;
      }
      if (c->state != S_WAITING) continue;
      /* Read everything available; handle complete lines. */
      int gone = 0;
      for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r > 0) {
          c->len += (size_t)r;
          if (c->len == sizeof c->buf) break;
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone = 1;
        break;
      }
      int closed_here = 0;
      char *nl;
      while (c->state == S_WAITING && (nl = memchr(c->buf, '\n', c->len)) != NULL) {
        size_t linelen = (size_t)(nl - c->buf) + 1;
        double answered_at = now();
        if (!c->outstanding) {
          /* A line we did not ask for. */
          st.err_malformed++;
          sample(st.bad_sample, c->buf, linelen);
          close_conn(c);
          closed_here = 1;
          break;
        }
        int is_userid = 0;
        int verdict = linelen < 2 || c->buf[linelen - 2] != '\r'
                          ? 1
                          : check_reply(c->buf, linelen - 2, &is_userid);
        if (verdict == 1) {
          st.err_malformed++;
          sample(st.bad_sample, c->buf, linelen);
          close_conn(c);
          closed_here = 1;
          break;
        }
        if (verdict == 2) {
          st.err_wrong_ports++;
          sample(st.bad_sample, c->buf, linelen);
          close_conn(c);
          closed_here = 1;
          break;
        }
        sample(is_userid ? st.sample : st.error_sample, c->buf, linelen - 2);
        st.completed++;
        if (is_userid) st.userid++;
        else st.error_replies++;
        record_latency(answered_at - c->sent_at);
        c->outstanding = 0;
        c->answered++;
        memmove(c->buf, nl + 1, c->len - linelen);
        c->len -= linelen;
        if (c->answered >= opt.per_conn || answered_at >= stop_at) {
          close_conn(c);
          closed_here = 1;
          break;
        }
        if (send_query(c) < 0) {
          lost(c);
          closed_here = 1;
          break;
        }
      }
      if (!closed_here && c->state == S_WAITING) {
        if (c->len == sizeof c->buf) {
          st.err_malformed++;
          sample(st.bad_sample, c->buf, 200);
          close_conn(c);
        } else if (gone || (events[i].events & (EPOLLERR | EPOLLHUP))) {
          if (c->outstanding) lost(c);
          else close_conn(c);
        }
      }
      if (c->state == S_FREE && now() < stop_at) start_conn(c, tag);
    }
    /* Timeouts, and slots whose connect failed synchronously. */
    t = now();
    if (t - last_sweep >= 0.01) {
      last_sweep = t;
      for (int i = 0; i < opt.conns && t < stop_at; i++) {
        struct conn *c = &cs[i];
        if (c->state == S_WAITING && c->outstanding && (t - c->sent_at) * 1000.0 > opt.timeout_ms) {
          st.err_timeout++;
          close_conn(c);
        } else if (c->state == S_CONNECTING && (t - c->started_at) * 1000.0 > opt.timeout_ms) {
          st.err_connect++;
          close_conn(c);
        }
        if (c->state == S_FREE) start_conn(c, (uint64_t)i);
      }
    }
  }
  double elapsed = now() - t0;
  for (int i = 0; i < opt.conns; i++) close_conn(&cs[i]);
  uint64_t idle_still_open = 0;
  for (int i = 0; i < opt.idle; i++)
    if (idle_fds[i] >= 0) {
      idle_still_open++;
      close_fd(idle_fds[i]);
    }

  qsort(st.lat_us, st.lat_n, sizeof *st.lat_us, cmp_u32);
  uint64_t errors = st.err_connect + st.err_closed_early + st.err_malformed + st.err_wrong_ports +
                    st.err_timeout;
  printf("{\"target\":\"%s:%d\",\"query\":", opt.host, opt.port);
  json_string(query);
  printf(",\"conns\":%d,\"per_conn\":%d,\"rst_close\":%s,\"duration_s\":%.3f,", opt.conns, opt.per_conn, opt.rst_close ? "true" : "false", elapsed);
  printf("\"completed\":%llu,\"throughput\":%.1f,", (unsigned long long)st.completed,
         st.completed / elapsed);
  printf("\"replies\":{\"USERID\":%llu,\"ERROR\":%llu},", (unsigned long long)st.userid,
         (unsigned long long)st.error_replies);
  printf("\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},", pct(0.5), pct(0.99),
         st.lat_n ? st.lat_us[st.lat_n - 1] / 1000.0 : 0.0);
  printf("\"errors\":{\"total\":%llu,\"connect\":%llu,\"closed_early\":%llu,\"malformed\":%llu,"
         "\"wrong_ports\":%llu,\"timeout\":%llu},",
         (unsigned long long)errors, (unsigned long long)st.err_connect,
         (unsigned long long)st.err_closed_early, (unsigned long long)st.err_malformed,
         (unsigned long long)st.err_wrong_ports, (unsigned long long)st.err_timeout);
  printf("\"server_closed\":%llu,\"connections\":%llu,", (unsigned long long)st.server_closed,
         (unsigned long long)st.connections);
  printf("\"idle\":{\"requested\":%d,\"opened\":%llu,\"failed\":%llu,\"closed_by_server\":%llu,"
         "\"open_at_end\":%llu},",
         opt.idle, (unsigned long long)idle_open, (unsigned long long)idle_failed,
         (unsigned long long)idle_closed_by_server, (unsigned long long)idle_still_open);
  printf("\"sample_reply\":");
  json_string(st.sample);
  printf(",\"sample_error\":");
  json_string(st.error_sample);
  printf(",\"sample_bad\":");
  json_string(st.bad_sample);
  printf("}\n");
  return 0;
}
