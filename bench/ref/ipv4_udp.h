// Builds one IPv4/UDP packet with correct header and UDP checksums. Shared by the reference
// programs so the C reader's traffic and the C writer's packets match what bench/packet.ts builds
// for tunkeeper byte for byte (the kernel verifies the checksums of what a TUN writer injects).
#pragma once
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t csum_add(uint32_t sum, const uint8_t *data, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)((data[i] << 8) | data[i + 1]);
  if (len & 1) sum += (uint32_t)(data[len - 1] << 8);
  return sum;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

// Writes the packet into buf (at least 28 + payload_len bytes); returns its length.
// The payload is a fixed pattern (byte i = i & 0xff) so any reader can recognise it.
static size_t build_ipv4_udp(uint8_t *buf, struct in_addr src, struct in_addr dst, uint16_t sport,
                             uint16_t dport, size_t payload_len) {
  size_t udp_len = 8 + payload_len, total = 20 + udp_len;
  uint8_t *ip = buf, *udp = buf + 20, *payload = buf + 28;
  memset(buf, 0, total);
  ip[0] = 0x45;
  ip[2] = (uint8_t)(total >> 8);
  ip[3] = (uint8_t)total;
  ip[6] = 0x40;  // DF
  ip[8] = 64;    // TTL
  ip[9] = 17;    // UDP
  memcpy(ip + 12, &src, 4);
  memcpy(ip + 16, &dst, 4);
  uint16_t ipsum = csum_fold(csum_add(0, ip, 20));
  ip[10] = (uint8_t)(ipsum >> 8);
  ip[11] = (uint8_t)ipsum;

  udp[0] = (uint8_t)(sport >> 8);
  udp[1] = (uint8_t)sport;
  udp[2] = (uint8_t)(dport >> 8);
  udp[3] = (uint8_t)dport;
  udp[4] = (uint8_t)(udp_len >> 8);
  udp[5] = (uint8_t)udp_len;
  for (size_t i = 0; i < payload_len; i++) payload[i] = (uint8_t)i;

  uint8_t pseudo[12];
  memcpy(pseudo, &src, 4);
  memcpy(pseudo + 4, &dst, 4);
  pseudo[8] = 0;
  pseudo[9] = 17;
  pseudo[10] = (uint8_t)(udp_len >> 8);
  pseudo[11] = (uint8_t)udp_len;
  uint16_t udpsum = csum_fold(csum_add(csum_add(0, pseudo, 12), udp, udp_len));
  if (udpsum == 0) udpsum = 0xffff;  // 0 means "no checksum" in UDP over IPv4
  udp[6] = (uint8_t)(udpsum >> 8);
  udp[7] = (uint8_t)udpsum;
  return total;
}
