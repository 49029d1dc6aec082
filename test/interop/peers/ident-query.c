/*
 * An RFC 1413 client built on libident (Debian libident-dev), used by
 * test/interop/libident.test.ts to query an identgate IdentServer. libident
 * always connects to port 113, so the test runs this inside a network
 * namespace of its own.
 *
 *   ident-query query <host> <serverPort> <clientPort>
 *       low-level id_open_addr / id_query / id_parse with the given ports
 *   ident-query lookup <host>
 *       makes a real TCP connection to a listener on <host> and asks about it
 *       with the high-level ident_lookup(fd) call
 *
 * Prints one tab-separated line, for the test to parse:
 *   CONN   <serverPort> <clientPort>          (lookup only: the ports asked)
 *   USERID <lport> <fport> <opsys> <charset> <identifier>
 *   ERROR  <lport> <fport> <token>
 *   FAIL   <id_parse code> <errno text>
 * and exits 0 for USERID or ERROR, 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ident.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *orNull(const char *s) { return s ? s : "(null)"; }

static int usage(void) {
  fprintf(stderr, "usage: ident-query query <host> <serverPort> <clientPort>\n"
                  "       ident-query lookup <host>\n");
  return 2;
}

static int parseAddress(const char *host, struct sockaddr_in *addr) {
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
    fprintf(stderr, "not an IPv4 address: %s\n", host);
    return -1;
  }
  return 0;
}

static int query(const char *host, int serverPort, int clientPort) {
  struct sockaddr_in local, remote;
  struct timeval timeout = {5, 0};
  if (parseAddress(host, &remote) < 0 || parseAddress(host, &local) < 0) return 2;
  ident_t *id = id_open_addr((struct sockaddr *)&local, (struct sockaddr *)&remote, &timeout);
  if (id == NULL) {
    printf("FAIL\topen\t%s\n", strerror(errno));
    return 1;
  }
  /* id_query(id, lport, fport) sends "lport , fport": lport is the port on the
     ident server's host, i.e. the RFC's server port. */
  if (id_query(id, serverPort, clientPort, &timeout) < 0) {
    printf("FAIL\tquery\t%s\n", strerror(errno));
    id_close(id);
    return 1;
  }
  int lport = 0, fport = 0;
  char *identifier = NULL, *opsys = NULL, *charset = NULL;
  int rc = id_parse(id, &timeout, &lport, &fport, &identifier, &opsys, &charset);
  int status = 0;
  if (rc == 1) {
    printf("USERID\t%d\t%d\t%s\t%s\t%s\n", lport, fport, orNull(opsys), orNull(charset), orNull(identifier));
  } else if (rc == 2) {
    printf("ERROR\t%d\t%d\t%s\n", lport, fport, orNull(identifier));
  } else {
    printf("FAIL\t%d\t%s\t%s\n", rc, strerror(errno), orNull(identifier));
    status = 1;
  }
  free(identifier);
  free(opsys);
  free(charset);
  id_close(id);
  return status;
}

static int lookup(const char *host) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (parseAddress(host, &addr) < 0) return 2;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 1) < 0 ||
      getsockname(listener, (struct sockaddr *)&addr, &len) < 0) {
    printf("FAIL\tlisten\t%s\n", strerror(errno));
    return 1;
  }
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0 || connect(client, (struct sockaddr *)&addr, sizeof addr) < 0) {
    printf("FAIL\tconnect\t%s\n", strerror(errno));
    return 1;
  }
  int accepted = accept(listener, NULL, NULL);
  struct sockaddr_in mine, peer;
  socklen_t mineLen = sizeof mine, peerLen = sizeof peer;
  if (accepted < 0 || getsockname(accepted, (struct sockaddr *)&mine, &mineLen) < 0 ||
      getpeername(accepted, (struct sockaddr *)&peer, &peerLen) < 0) {
    printf("FAIL\taccept\t%s\n", strerror(errno));
    return 1;
  }
  /* We accepted the connection, so we ask the peer's ident server: its port is
     the server port, ours is the client port. */
  printf("CONN\t%d\t%d\n", ntohs(peer.sin_port), ntohs(mine.sin_port));
  IDENT *answer = ident_lookup(accepted, 5);
  if (answer == NULL) {
    printf("FAIL\tlookup\t%s\n", strerror(errno));
    return 1;
  }
  printf("USERID\t%d\t%d\t%s\t%s\t%s\n", answer->lport, answer->fport, orNull(answer->opsys), orNull(answer->charset),
         orNull(answer->identifier));
  ident_free(answer);
  close(accepted);
  close(client);
  close(listener);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 5 && strcmp(argv[1], "query") == 0) return query(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 3 && strcmp(argv[1], "lookup") == 0) return lookup(argv[2]);
  return usage();
}
