// The reference for tun-read-pps and tun-write-pps: the plainest data path tun(4) describes, one
// read() or write() per packet on a blocking TUN fd, in C. tunkeeper's addon does the same work
// through Node.js; the ratio between the two is the cost of the binding.
//
//   tun_loop read  DEV WARMUP_S SECONDS [SRC DST PAYLOAD]
//   tun_loop write DEV WARMUP_S SECONDS  SRC DST PAYLOAD
//
// Same arguments and line protocol as the tunkeeper subject (bench/subjects/tun-subject.ts):
// attach to the existing TUN device DEV, print "ready", wait for a line on stdin, run WARMUP_S
// seconds uncounted, then SECONDS counted, and print one JSON line with the packets counted and
// the exact measured time. The runner starts the traffic generator between "ready" and "go".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ipv4_udp.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// CPU time (user + system) this process has used: with it the runner can tell a saturated
// subject (one CPU-second per second) from one that waited for traffic.
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "tun_loop: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int attach(const char *dev) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("ioctl(TUNSETIFF)");
  return fd;
}

static void handshake(void) {
  printf("ready\n");
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) {
    fprintf(stderr, "tun_loop: stdin closed before go\n");
    exit(1);
  }
}

// The read loop must not test the clock per packet (that would be work the addon does not do), so
// phases are switched by SIGALRM: 0 warm-up, 1 counting, 2 done. The handler only bumps the phase
// and re-arms the timer; the loop notices after the read() it interrupts (no SA_RESTART).
static volatile sig_atomic_t phase;
static double measure_s;

static void arm(double s) {
  struct itimerval it = {{0, 0}, {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)}};
  if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) it.it_value.tv_usec = 1;
  setitimer(ITIMER_REAL, &it, NULL);
}

static void on_alarm(int sig) {
  (void)sig;
  phase++;
  if (phase == 1) arm(measure_s);
}

static void run_read(int fd, double warmup_s, double seconds) {
  static unsigned char buf[65536];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;  // no SA_RESTART: the alarm must end a blocked read()
  sigaction(SIGALRM, &sa, NULL);
  measure_s = seconds;

  unsigned long long count = 0, start_count = 0;
  long first_len = -1;
  double t0 = 0, t1 = 0, c0 = 0, c1 = 0;
  int seen = 0;
  arm(warmup_s);
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      count++;
      if (first_len < 0) first_len = n;
    } else if (n < 0 && errno != EINTR) {
      die("read");
    }
    if (phase != seen) {
      seen = phase;
      if (seen == 1) {
        t0 = now_s();
        c0 = cpu_s();
        start_count = count;
      } else {
        t1 = now_s();
        c1 = cpu_s();
        break;
      }
    }
  }
  printf("{\"packets\":%llu,\"seconds\":%.6f,\"cpuSeconds\":%.6f,\"firstLen\":%ld}\n", count - start_count,
         t1 - t0, c1 - c0, first_len);
}

static void run_write(int fd, double warmup_s, double seconds, const unsigned char *pkt, size_t len) {
  unsigned long long count = 0, start_count = 0;
  double t0 = now_s(), deadline = t0 + warmup_s, c0 = 0;
  int counting = 0;
  for (;;) {
    // Check the clock once per 64 writes: the same granularity as the addon's writeBatch(64).
    for (int i = 0; i < 64; i++) {
      ssize_t n = write(fd, pkt, len);
      if (n == (ssize_t)len) {
        count++;
      } else if (n < 0 && errno != EINTR && errno != ENOBUFS) {
        die("write");
      }
    }
    double t = now_s();
    if (t < deadline) continue;
    if (counting) {
      printf("{\"packets\":%llu,\"seconds\":%.6f,\"cpuSeconds\":%.6f}\n", count - start_count, t - t0,
             cpu_s() - c0);
      return;
    }
    counting = 1;
    t0 = t;
    c0 = cpu_s();
    start_count = count;
    deadline = t + seconds;
  }
}

static void usage(void) {
  fprintf(stderr, "usage: tun_loop read|write DEV WARMUP_S SECONDS [SRC DST PAYLOAD]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 5) usage();
  const char *mode = argv[1], *dev = argv[2];
  double warmup_s = atof(argv[3]), seconds = atof(argv[4]);
  int writing = strcmp(mode, "write") == 0;
  if (!writing && strcmp(mode, "read") != 0) usage();
  if (writing && argc < 8) usage();

  unsigned char pkt[2048];
  size_t len = 0;
  if (argc >= 8) {
    struct in_addr src, dst;
    long payload = atol(argv[7]);
    if (inet_pton(AF_INET, argv[5], &src) != 1 || inet_pton(AF_INET, argv[6], &dst) != 1) usage();
    if (payload < 0 || payload > 1400) usage();
    len = build_ipv4_udp(pkt, src, dst, 4000, 9, (size_t)payload);
  }

  int fd = attach(dev);
  handshake();
  if (writing) {
    run_write(fd, warmup_s, seconds, pkt, len);
  } else {
    run_read(fd, warmup_s, seconds);
  }
  fflush(stdout);
  close(fd);
  return 0;
}
