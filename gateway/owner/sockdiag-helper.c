/*
 * identgate-sockdiag: the owner lookup as a child process, for where the addon does not load; one exact
 * NETLINK_SOCK_DIAG request per question, asked over a line protocol on its stdin and stdout.
 * The protocol and its rules: docs/internals.md (gateway/owner/sockdiag-helper.c).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_OCTETS 256
#define IN_BUF_OCTETS 65536
#define OUT_BUF_OCTETS 131072

static int nl_fd = -1;
static unsigned int nl_seq = 0;

static char out_buf[OUT_BUF_OCTETS];
static size_t out_len = 0;

static void flush_out(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t n = write(STDOUT_FILENO, out_buf + off, out_len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      exit(0); /* the parent went away */
    }
    off += (size_t)n;
  }
  out_len = 0;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
  va_list ap;
  /* Room for the longest message: a found line with a hex-encoded name (2 * 256 octets). */
  if (out_len + 1024 > sizeof out_buf) flush_out();
  va_start(ap, fmt);
  int n = vsnprintf(out_buf + out_len, sizeof out_buf - out_len, fmt, ap);
  va_end(ap);
  if (n > 0) out_len += (size_t)n < sizeof out_buf - out_len ? (size_t)n : sizeof out_buf - out_len - 1;
}

#include "sockdiag-core.h"

#define NAME_TTL_MS 1000
#define NAME_CACHE_SLOTS 64

/* A small direct-mapped cache of uid -> hex-encoded name ("-" for none). */
static struct {
  int used;
  unsigned int uid;
  long long expires_ms;
  char hex[2 * SOCKDIAG_NAME_MAX_OCTETS + 1];
} name_cache[NAME_CACHE_SLOTS];

static long long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes the name of uid, hex-encoded, into hex (2 * SOCKDIAG_NAME_MAX_OCTETS + 1 octets); "-" when it has none. */
static void lookup_name(unsigned int uid, char *hex) {
  char name[SOCKDIAG_NAME_MAX_OCTETS + 1];
  size_t n = sockdiag_user_name(uid, name);
  if (n == 0) {
    strcpy(hex, "-");
    return;
  }
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    hex[2 * i] = digits[(unsigned char)name[i] >> 4];
    hex[2 * i + 1] = digits[(unsigned char)name[i] & 15];
  }
  hex[2 * n] = '\0';
}

static void emit_name(unsigned int uid) {
  long long now = monotonic_ms();
  unsigned int slot = uid % NAME_CACHE_SLOTS;
  if (!name_cache[slot].used || name_cache[slot].uid != uid || name_cache[slot].expires_ms <= now) {
    lookup_name(uid, name_cache[slot].hex);
    name_cache[slot].used = 1;
    name_cache[slot].uid = uid;
    name_cache[slot].expires_ms = now + NAME_TTL_MS;
  }
  emit("%s", name_cache[slot].hex);
}

static void answer(char *line) {
  char *save = NULL;
  char *id = strtok_r(line, " \t", &save);
  if (id == NULL) return; /* blank line */
  size_t idlen = strlen(id);
  if (idlen > 20 || strspn(id, "0123456789") != idlen) {
    emit("0 error EINVAL bad request id\n");
    return;
  }
  char *fam = strtok_r(NULL, " \t", &save);
  char *laddr = strtok_r(NULL, " \t", &save);
  char *lport_s = strtok_r(NULL, " \t", &save);
  char *raddr = strtok_r(NULL, " \t", &save);
  char *rport_s = strtok_r(NULL, " \t", &save);
  if (fam == NULL || rport_s == NULL || strtok_r(NULL, " \t", &save) != NULL) {
    emit("%s error EINVAL expected: id family localAddr localPort remoteAddr remotePort\n", id);
    return;
  }
  int family = strcmp(fam, "4") == 0 ? AF_INET : strcmp(fam, "6") == 0 ? AF_INET6 : 0;
  unsigned char local[16], remote[16];
  char *end;
  long lport = strtol(lport_s, &end, 10);
  int ports_ok = *end == '\0' && lport >= 0 && lport <= 65535;
  long rport = strtol(rport_s, &end, 10);
  ports_ok = ports_ok && *end == '\0' && rport >= 0 && rport <= 65535;
  if (family == 0 || !ports_ok || inet_pton(family, laddr, local) != 1 || inet_pton(family, raddr, remote) != 1) {
    emit("%s error EINVAL bad family, address or port\n", id);
    return;
  }
  struct sockdiag_result res;
  int rc = sockdiag_exact(nl_fd, ++nl_seq, family, local, (unsigned short)lport, remote, (unsigned short)rport, 0, &res);
  if (rc < 0) {
    emit("%s error E%d %s\n", id, -rc, strerror(-rc));
    return;
  }
  if (!res.found) {
    emit("%s none\n", id);
    return;
  }
  emit("%s found %u %u %u ", id, res.state, res.uid, res.inode);
  if (res.inode != 0 && res.state != TCP_LISTEN) emit_name(res.uid);
  else emit("-");
  emit("\n");
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  /*
   * The parent may have died before PDEATHSIG was set: compare with the pid
   * it gave us, not with 1, which is the parent itself when the gateway is
   * PID 1 (a container without init).
   */
  if (argc > 1) {
    char *end;
    long parent = strtol(argv[1], &end, 10);
    if (*end != '\0' || parent <= 0 || (pid_t)parent != getppid()) return 0;
  }
  nl_fd = sockdiag_open();
  if (nl_fd < 0) {
    emit("fatal E%d NETLINK_SOCK_DIAG unavailable: %s\n", errno, strerror(errno));
    flush_out();
    return 1;
  }
  emit("ready 1\n");
  flush_out();

  static char in_buf[IN_BUF_OCTETS];
  size_t in_len = 0;
  int discarding = 0; /* inside an over-long line */
  for (;;) {
    ssize_t n = read(STDIN_FILENO, in_buf + in_len, sizeof in_buf - in_len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in_len += (size_t)n;
    size_t start = 0;
    for (;;) {
      char *nl = memchr(in_buf + start, '\n', in_len - start);
      if (nl == NULL) break;
      *nl = '\0';
      size_t line_len = (size_t)(nl - (in_buf + start));
      if (discarding || line_len > LINE_MAX_OCTETS) emit("0 error E2BIG line too long\n");
      else answer(in_buf + start);
      discarding = 0;
      start = (size_t)(nl - in_buf) + 1;
    }
    memmove(in_buf, in_buf + start, in_len - start);
    in_len -= start;
    if (in_len > LINE_MAX_OCTETS) { /* drop the rest of an over-long line */
      discarding = 1;
      in_len = 0;
    }
    /* Everything read so far is answered: one write for the whole batch. */
    flush_out();
  }
  flush_out();
  return 0;
}
