// The C forwarder of tun-offload-gbps: the plainest loop that moves packets between two TUN
// devices, one thread per direction, one blocking read() and one write() per packet.
//
//   forwarder vnet|plain NETNS_A DEV_A NETNS_B DEV_B
//
// Creates DEV_A inside network namespace NETNS_A and DEV_B inside NETNS_B (paths such as
// /run/netns/NAME), prints "ready" and forwards until killed. `vnet`: IFF_VNET_HDR with checksum
// and TCP/UDP segmentation offload (USO where the kernel has it), every super-packet passed
// through with its virtio-net header untouched: the kernel's GSO packets cross in one read and
// one write. `plain`: no header, no offload, MTU-sized packets.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

static void die(const char *what, const char *detail) {
  fprintf(stderr, "forwarder: %s %s: %s\n", what, detail, strerror(errno));
  exit(1);
}

static void enter_netns(const char *path) {
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) die("open", path);
  if (setns(ns, CLONE_NEWNET) < 0) die("setns", path);
  close(ns);
}

// The device is created in the calling thread's namespace and stays there with its fd.
static int create(const char *netns, const char *dev, int vnet) {
  enter_netns(netns);
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) die("open", "/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("ioctl(TUNSETIFF)", dev);
  if (vnet) {
    unsigned long tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    // Kernels before 6.2 refuse the USO bits with EINVAL.
    if (ioctl(fd, TUNSETOFFLOAD, tcp | TUN_F_USO4 | TUN_F_USO6) < 0 && ioctl(fd, TUNSETOFFLOAD, tcp) < 0) die("ioctl(TUNSETOFFLOAD)", dev);
  }
  return fd;
}

struct pump {
  int from, to;
};

static void *pump(void *arg) {
  struct pump *p = arg;
  // A whole GSO super-packet and its header fit.
  static __thread unsigned char buf[65536 + 64];
  for (;;) {
    ssize_t n = read(p->from, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EBADFD) return NULL;  // the device is gone
      continue;
    }
    // EIO before the link is up, or a rejected packet: dropped, as a forwarder would.
    if (write(p->to, buf, (size_t)n) < 0 && errno == EBADFD) return NULL;
  }
}

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[1], "vnet") != 0 && strcmp(argv[1], "plain") != 0)) {
    fprintf(stderr, "usage: forwarder vnet|plain NETNS_A DEV_A NETNS_B DEV_B\n");
    return 2;
  }
  int vnet = strcmp(argv[1], "vnet") == 0;
  int a = create(argv[2], argv[3], vnet);
  int b = create(argv[4], argv[5], vnet);
  struct pump ab = {a, b}, ba = {b, a};
  pthread_t t1, t2;
  if (pthread_create(&t1, NULL, pump, &ab) != 0 || pthread_create(&t2, NULL, pump, &ba) != 0) {
    fprintf(stderr, "forwarder: pthread_create failed\n");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  return 0;
}
