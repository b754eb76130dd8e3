/*
 * netaddr.h - IP addresses and CIDR ranges (IPv4 and IPv6) for
 * trusted_proxies and X-Forwarded-For handling.
 */
#ifndef SCRUBGATE_NETADDR_H
#define SCRUBGATE_NETADDR_H

#include "scrubgate/common.h"

#include <netinet/in.h>

struct sg_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
};

/* Parse "a.b.c.d/n", "x::y/n" or a bare address (full prefix). 0 or -1. */
int sg_cidr_parse(const char *s, struct sg_cidr *out);
/* Parse a literal address into family/addr (IPv4-mapped IPv6 becomes IPv4). */
int sg_addr_parse(const char *s, int *family, unsigned char addr[16]);
bool sg_cidr_match(const struct sg_cidr *c, int family, const unsigned char addr[16]);
/* Canonical text form of a literal address into out (INET6_ADDRSTRLEN). */
int sg_addr_canonical(const char *s, char *out, size_t cap);

#endif
