"""A small TC string (TCF v2 core segment) encoder for the integration tests.

Independent of the C decoder: it follows the published bit layout and is
used to build strings a CMP would set in the euconsent-v2 cookie.
"""
import base64


def encode(vendor_consents=(), purposes=(), max_vendor=None, policy=4, service_specific=True,
           version=2, restrictions=()):
    """restrictions: (purpose, type, vendor_id) tuples."""
    max_vendor = max_vendor or max(list(vendor_consents) + [1])
    bits = []

    def put(v, n):
        bits.extend((v >> i) & 1 for i in range(n - 1, -1, -1))

    put(version, 6)
    put(16000000000, 36)
    put(16000000000, 36)
    put(7, 12)
    put(1, 12)
    put(1, 6)
    put((ord("E") - 65) << 6 | (ord("N") - 65), 12)
    put(150, 12)
    put(policy, 6)
    put(1 if service_specific else 0, 1)
    put(0, 1)
    put(0, 12)
    for p in range(1, 25):
        put(1 if p in purposes else 0, 1)
    put(0, 24)
    put(0, 1)
    put((ord("D") - 65) << 6 | (ord("E") - 65), 12)
    put(max_vendor, 16)     # vendor consent: bitfield
    put(0, 1)
    for v in range(1, max_vendor + 1):
        put(1 if v in vendor_consents else 0, 1)
    put(max_vendor, 16)     # vendor legitimate interest: empty bitfield
    put(0, 1)
    put(0, max_vendor)
    put(len(restrictions), 12)
    for purpose, rtype, vendor in restrictions:
        put(purpose, 6)
        put(rtype, 2)
        put(1, 12)
        put(0, 1)
        put(vendor, 16)
    while len(bits) % 8:
        bits.append(0)
    raw = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
