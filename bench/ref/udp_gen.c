// Traffic for the TUN benchmarks, the same for tunkeeper and for the C reference.
//
//   udp_gen flood SRC DST PAYLOAD   UDP from SRC:4000 to DST:9 (DST routed into the TUN) until
//                                   SIGTERM. UDP GSO (UDP_SEGMENT) with 64 segments per send and
//                                   sendmmsg of 64 sends: the routing and socket cost is paid once
//                                   per 64 packets, so one core generates well over what one core
//                                   can read from a TUN, and the reader is what gets measured.
//                                   The TUN has no checksum/segmentation offload enabled, so the
//                                   kernel segments in software: the reader sees plain IPv4/UDP
//                                   packets of 28 + PAYLOAD bytes with correct checksums.
//   udp_gen sink ADDR PORT          a bound UDP socket that never reads (the write benchmarks'
//                                   destination: delivery ends at a full receive buffer)
//   udp_gen count ADDR PORT PAYLOAD a UDP socket that reads and checks every datagram
//
// Each mode prints "running" once set up and stops on SIGTERM, then prints one JSON line
// (flood: {"sent","seconds"}; count: {"received","bad"}; sink: {}).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SENDS_PER_CALL 64
#define SEGMENTS_PER_SEND 64

static volatile sig_atomic_t stop;
static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "udp_gen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr, "usage: udp_gen flood SRC DST PAYLOAD | sink ADDR PORT | count ADDR PORT PAYLOAD\n");
  exit(2);
}

static struct in_addr parse_addr(const char *s) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) usage();
  return a;
}

static long parse_payload(const char *s) {
  long n = atol(s);
  if (n < 1 || n > 1400) usage();
  return n;
}

static void announce(void) {
  printf("running\n");
  fflush(stdout);
}

static int udp_socket(struct in_addr addr, long port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket(AF_INET)");
  if (rcvbuf >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) die("SO_RCVBUF");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  return fd;
}

static void flood(struct in_addr src, struct in_addr dst, long payload) {
  static unsigned char data[SEGMENTS_PER_SEND * 1400];
  // Every segment carries bytes 0, 1, 2, ... like the prebuilt packets of the write benchmarks.
  for (long i = 0; i < payload * SEGMENTS_PER_SEND; i++) data[i] = (unsigned char)(i % payload);
  int fd = udp_socket(src, 4000, -1);
  struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr = dst};
  if (connect(fd, (struct sockaddr *)&b, sizeof b) < 0) die("connect");
  int seg = (int)payload;
  if (setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg) < 0) die("setsockopt(UDP_SEGMENT)");

  struct iovec iov = {data, (size_t)payload * SEGMENTS_PER_SEND};
  static struct mmsghdr msgs[SENDS_PER_CALL];
  for (int i = 0; i < SENDS_PER_CALL; i++) {
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  unsigned long long sent = 0;
  double t0 = now_s();
  int announced = 0;
  while (!stop) {
    // A full TUN queue drops packets: that is the point of a flood, not an error. (UDP reports
    // the drop only with IP_RECVERR, but ENOBUFS is tolerated all the same.)
    int n = sendmmsg(fd, msgs, SENDS_PER_CALL, 0);
    if (n > 0) {
      sent += (unsigned long long)n * SEGMENTS_PER_SEND;
    } else if (n < 0 && errno != ENOBUFS && errno != EINTR && errno != EAGAIN) {
      die("sendmmsg");
    }
    if (!announced) {
      announce();
      announced = 1;
    }
  }
  printf("{\"sent\":%llu,\"seconds\":%.6f}\n", sent, now_s() - t0);
}

static void sink(struct in_addr addr, long port) {
  int fd = udp_socket(addr, port, 0);  // the smallest receive buffer: it fills at once
  announce();
  while (!stop) pause();
  close(fd);
  printf("{}\n");
}

// Verification, not measurement: recv() verifies the UDP checksum the kernel deferred, so a
// datagram counted here proves the writer's packet was well formed end to end.
static void count(struct in_addr addr, long port, long payload) {
  int fd = udp_socket(addr, port, -1);
  announce();
  static unsigned char buf[65536];
  unsigned long long received = 0, bad = 0;
  while (!stop) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("recv");
    }
    int ok = n == payload;
    for (ssize_t i = 0; ok && i < n; i++) ok = buf[i] == (unsigned char)i;
    if (ok) {
      received++;
    } else {
      bad++;
    }
  }
  printf("{\"received\":%llu,\"bad\":%llu}\n", received, bad);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;  // no SA_RESTART: SIGTERM must end a blocked recv() or pause()
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  const char *mode = argv[1];
  if (strcmp(mode, "flood") == 0 && argc == 5) {
    flood(parse_addr(argv[2]), parse_addr(argv[3]), parse_payload(argv[4]));
  } else if (strcmp(mode, "sink") == 0 && argc == 4) {
    sink(parse_addr(argv[2]), atol(argv[3]));
  } else if (strcmp(mode, "count") == 0 && argc == 5) {
    count(parse_addr(argv[2]), atol(argv[3]), parse_payload(argv[4]));
  } else {
    usage();
  }
  fflush(stdout);
  return 0;
}
