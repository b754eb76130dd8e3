#!/usr/bin/env python3
"""Build the detection corpus: pii.tsv (what must be caught) and ordinary.txt
(what must come through unchanged) from the public sources beside this file.

    python3 tests/data/pii-corpus/build.py

Sources (see README.md): libphonenumber's example numbers (phones.tsv, written
by gen_phones.cc), the SWIFT IBAN registry examples (ibans.tsv), card test
numbers published for sandbox testing (cards.txt), and, written here,
documented SSN/ITIN formats, IETF documentation addresses and e-mail examples.
The ordinary strings are the shapes a shop sends (order and tracking numbers,
SKUs, versions, dates, prices, barcodes, IBAN-shaped non-IBANs); the random
ones are drawn with a fixed seed, so the files are reproducible.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20261126)


def rows(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                yield line


def luhn_ok(d):
    s = 0
    for i, c in enumerate(reversed(d)):
        v = int(c)
        if i % 2:
            v *= 2
            v -= 9 if v > 9 else 0
        s += v
    return s % 10 == 0


def iban_ok(i):
    r = i[4:] + i[:4]
    return int("".join(str(int(c, 36)) for c in r)) % 97 == 1


def groups(s, sizes, sep):
    out, p = [], 0
    for n in sizes:
        if p >= len(s):
            break
        out.append(s[p:p + n])
        p += n
    if p < len(s):
        out.append(s[p:])
    return sep.join(out)


pii = []  # (type, region or "-", string)

# Phones: every region's mobile and fixed-line example, international (E.164, spaced, and
# with "00" for "+"); national formats carry their region.
seen = set()
for line in rows("phones.tsv"):
    region, _kind, fmt, number = line.split("\t")
    key = (fmt, number)
    if key in seen:
        continue
    seen.add(key)
    if fmt == "national":
        # Under 7 digits (14 small territories' numbers) a number cannot be told from a
        # quantity or a code: out of what the detector claims (docs/RULES.md).
        if sum(c.isdigit() for c in number) >= 7:
            pii.append(("phone-national", region, number))
    else:
        pii.append(("phone", "-", number))
        if fmt == "international":
            pii.append(("phone", "-", "00" + number[1:]))

for c in rows("cards.txt"):
    pii.append(("card", "-", c))
    sizes = [4, 6, 5] if len(c) == 15 else [4, 6, 4] if len(c) == 14 else [4, 4, 4, 4, 3]
    pii.append(("card", "-", groups(c, sizes, " ")))
    pii.append(("card", "-", groups(c, sizes, "-")))

for line in rows("ibans.tsv"):
    _cc, _n, iban = line.split("\t")
    assert iban_ok(iban), iban
    printed = groups(iban, [4] * 9, " ")
    pii += [("iban", "-", iban), ("iban", "-", printed), ("iban", "-", printed.lower()),
            ("iban", "-", groups(iban, [4] * 9, "-"))]

# SSNs: the SSA's famous published examples and numbers drawn from the valid ranges (area
# 001-899 but 666, group 01-99, serial 0001-9999); ITINs: area 9xx, group 50-65, 70-88, 90-92,
# 94-99 (IRS). Written with dashes, spaces, dots, and bare after a label.
ssns = ["078051120", "219099999", "123456789", "457555462"]
while len(ssns) < 24:
    area = rng.randint(1, 899)
    if area == 666:
        continue
    ssns.append("%03d%02d%04d" % (area, rng.randint(1, 99), rng.randint(1, 9999)))
itin_groups = list(range(50, 66)) + list(range(70, 89)) + [90, 91, 92] + list(range(94, 100))
itins = ["%03d%02d%04d" % (rng.randint(900, 999), rng.choice(itin_groups), rng.randint(0, 9999))
         for _ in range(12)]
for n in ssns + itins:
    for sep in "- .":
        pii.append(("ssn", "-", n[:3] + sep + n[3:5] + sep + n[5:]))
    pii.append(("ssn", "-", "SSN: " + n))

# IP addresses: IETF documentation ranges (RFC 5737, RFC 3849), public resolvers, private space.
ips = ["192.0.2.1", "192.0.2.254", "198.51.100.7", "198.51.100.77", "203.0.113.7",
       "203.0.113.195", "8.8.8.8", "1.1.1.1", "9.9.9.9", "10.0.0.12", "172.16.254.1",
       "192.168.1.100", "100.64.0.1", "255.255.255.255", "2001:db8::1", "2001:db8::8a2e:370:7334",
       "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8:0:0:1:0:0:1", "fe80::1ff:fe23:4567:890a",
       "::ffff:192.0.2.128", "2606:4700:4700::1111", "2001:4860:4860::8888", "::1",
       "fd12:3456:789a:1::1"]
for ip in ips:
    pii.append(("ip", "-", ip))

# E-mail addresses: RFC 5322 / RFC 6530 (internationalized) shapes on documentation domains.
emails = ["jane.doe@example.com", "j.smith+orders@mail.example.co.uk", "user_name@example.org",
          "first.last@sub.domain.example.net", "x@example.io", "o'brien@example.ie",
          "info@bäckerei-müller.de", "jürgen@example.de", "用户@例子.广告", "χρήστης@παράδειγμα.ελ",
          "почта@пример.рф", "user@xn--bcher-kva.example", "UPPER.CASE@EXAMPLE.COM",
          "name-with-dash@my-domain.example", "12345@numbers.example.com", "a.b.c.d@e.example"]
for e in emails:
    pii.append(("email", "-", e))

with open(os.path.join(HERE, "pii.tsv"), "w", encoding="utf-8") as f:
    f.write("# type\tregion (phone-national: its phone_region)\tstring - built by build.py\n")
    for t, r, s in pii:
        f.write("%s\t%s\t%s\n" % (t, r, s))

# ---- ordinary strings ----
ordinary = [line for line in rows("ordinary-handwritten.txt")]


def ean(body):
    s = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - s % 10) % 10)


for _ in range(40):  # EAN-13 / GTIN barcodes as content ids
    ordinary.append(ean("".join(str(rng.randint(0, 9)) for _ in range(12))))
for _ in range(20):  # UPC-A
    body = "".join(str(rng.randint(0, 9)) for _ in range(11))
    s = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(body))
    ordinary.append(body + str((10 - s % 10) % 10))
for _ in range(30):  # order numbers
    ordinary.append(rng.choice(["Order #%d", "order %d", "ORD-%d", "#%d", "Invoice INV-%d"])
                    % rng.randint(100000, 9999999999))
for _ in range(20):  # IBAN-shaped non-IBANs: a registry example with its check digits changed
    line = rng.choice(list(rows("ibans.tsv")))
    iban = line.split("\t")[2]
    while True:
        bad = iban[:2] + "%02d" % rng.randint(2, 98) + iban[4:]
        if not iban_ok(bad):
            break
    ordinary.append(rng.choice([bad, groups(bad, [4] * 9, " ")]))
for _ in range(20):  # dates and times
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    ordinary.append(rng.choice(["%04d-%02d-%02d", "%04d/%02d/%02d"]) % (y, m, d))
    ordinary.append(rng.choice(["%02d.%02d.%04d", "%02d/%02d/%04d", "%02d-%02d-%04d"]) % (d, m, y))
for _ in range(20):  # prices
    v = rng.randint(1, 999999) / 100
    ordinary.append(rng.choice(["$%.2f", "%.2f EUR", "USD %.2f", "£%.2f", "%.2f"]) % v)
for _ in range(15):  # versions
    ordinary.append("%d.%d.%d" % (rng.randint(0, 20), rng.randint(0, 30), rng.randint(0, 300)))

with open(os.path.join(HERE, "ordinary.txt"), "w", encoding="utf-8") as f:
    f.write("# Ordinary strings that must come through unchanged - built by build.py\n")
    for s in ordinary:
        f.write(s + "\n")
print("pii.tsv: %d strings, ordinary.txt: %d strings" % (len(pii), len(ordinary)))
