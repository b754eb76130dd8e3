/*
 * netaddr.c - address parsing and CIDR matching with inet_pton.
 */
#include "scrubgate/common.h"
#include "scrubgate/netaddr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int sg_addr_parse(const char *s, int *family, unsigned char addr[16])
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(addr, mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

int sg_cidr_parse(const char *s, struct sg_cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (sg_addr_parse(host, &out->family, out->addr) < 0)
        return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    if (slash) {
        char *end;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || p > max)
            return -1;
        out->prefix = (unsigned)p;
    } else {
        out->prefix = max;
    }
    return 0;
}

bool sg_cidr_match(const struct sg_cidr *c, int family, const unsigned char addr[16])
{
    if (c->family != family)
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xFFu << (8 - rest));
        return (c->addr[full] & mask) == (addr[full] & mask);
    }
    return true;
}

int sg_addr_canonical(const char *s, char *out, size_t cap)
{
    int family;
    unsigned char addr[16];
    if (sg_addr_parse(s, &family, addr) < 0)
        return -1;
    return inet_ntop(family, addr, out, (socklen_t)cap) ? 0 : -1;
}
