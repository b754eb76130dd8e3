'use strict';
/*
 * gen.cjs - random valid TC strings from IAB's reference library, with the
 * library's own decoded view of what scrubgate reads, one JSON line each.
 *
 *   node gen.cjs COUNT SEED > strings.jsonl
 *
 * Each string is encoded by @iabtechlabtcf/core's TCString.encode from a
 * random TCModel (purposes, legitimate interests, vendor consents and
 * legitimate interests dense and sparse, so that the encoder picks bitfields
 * and ranges; publisher restrictions of the three types, purposes 1-24 and a
 * few above; policy versions 0-63; service-specific both ways; with and
 * without the later segments), then decoded again by TCString.decode: that
 * decoded model is the expectation (a string the library cannot decode is
 * not valid and is not emitted). A third of the strings are cut to the
 * shortest length the library still decodes to the same view, which leaves
 * most of them 6-bit aligned (bit length not a multiple of 8).
 *
 * A line: {"s": string, "version", "policy", "cmp", "vlv", "ss",
 *          "pc": purpose consents (bit p-1 for purpose p), "pli": purpose LI,
 *          "maxc", "maxli": the vendor sections' MaxVendorId,
 *          "enc": [consent section is a range, LI section is a range],
 *          "q": [[vendor, consent, li, not_allowed, require_consent, require_li], ...]}
 * where the last three are bitmasks of purposes 1-24 restricted for that vendor.
 * The summary goes to stderr.
 */
const { GVL, PurposeRestriction, TCModel, TCString } = require('@iabtechlabtcf/core');

const count = Number(process.argv[2] || 3000);
const seed = Number(process.argv[3] || 1);

/* mulberry32: small, seeded, reproducible. */
let state = seed >>> 0;
function rnd() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const chance = (p) => rnd() < p;
const pick = (a) => a[int(0, a.length - 1)];

/*
 * A synthetic vendor list: the encoder keeps a vendor's consent only when
 * the vendor is on the list with purposes, and a publisher restriction only
 * when the vendor declares the purpose (flexibly for the two "require"
 * types). Every listed vendor declares purposes 1-24 and a few above, so the
 * generator, not the list, decides what is set. Ids: a dense block, gaps,
 * and a few near the 16-bit limit.
 */
const PURPOSES = [];
for (let p = 1; p <= 24; p++) PURPOSES.push(p);
PURPOSES.push(25, 40, 63);
const VENDOR_IDS = []; /* the ids most strings use */
for (let v = 1; v <= 800; v++) VENDOR_IDS.push(v);
for (let v = 1200; v <= 1260; v++) VENDOR_IDS.push(v);
for (let v = 4000; v <= 4010; v++) VENDOR_IDS.push(v);
const HIGH_IDS = []; /* rarer: a vector up to 65535 costs the encoder 65535 steps */
for (let v = 65520; v <= 65535; v++) HIGH_IDS.push(v);

function vendorList() {
    const named = (id) => ({ id, name: 'x' + id, description: '' });
    const byId = (ids) => Object.fromEntries(ids.map((id) => [id, named(id)]));
    const vendors = {};
    for (const id of VENDOR_IDS.concat(HIGH_IDS))
        vendors[id] = {
            id, name: 'vendor ' + id, purposes: PURPOSES, legIntPurposes: PURPOSES,
            flexiblePurposes: PURPOSES, specialPurposes: [1], features: [], specialFeatures: [],
            policyUrl: 'https://vendor.invalid/' + id,
        };
    const purposes = {};
    for (let p = 1; p <= 63; p++) purposes[p] = named(p);
    return {
        gvlSpecificationVersion: 3, vendorListVersion: 150, tcfPolicyVersion: 5,
        lastUpdated: '2025-01-01T00:00:00Z', purposes, specialPurposes: byId([1, 2]),
        features: byId([1, 2, 3]), specialFeatures: byId([1, 2]), stacks: {}, vendors,
    };
}
const gvl = new GVL(vendorList());
/*
 * TCString.encode clones the model, and with it this list, two or three times
 * per string (a deep copy and a re-index of every vendor): 30 ms a string.
 * The list is never changed during an encode, so a clone may be the list
 * itself; nothing the encoder writes depends on it being a copy.
 */
GVL.prototype.clone = function () { return this; };

/* A random vendor set, in one of several shapes, to drive both encodings. */
function vendorSet() {
    const ids = new Set();
    switch (int(0, 24)) {
    case 0: /* none */
        break;
    case 1: case 5: case 6: case 7: case 8: case 9: { /* dense: a bitfield */
        const max = pick([int(1, 60), int(60, 800)]);
        const p = rnd();
        for (const v of VENDOR_IDS) if (v <= max && rnd() < p) ids.add(v);
        break;
    }
    case 2: case 10: case 11: case 12: case 13: case 14: /* few, spread out: ranges */
        for (let i = int(1, 6); i > 0; i--) ids.add(pick(VENDOR_IDS));
        break;
    case 3: case 15: case 16: case 17: case 18: case 19: { /* long runs: ranges */
        for (let i = int(1, 4); i > 0; i--) {
            const start = int(0, VENDOR_IDS.length - 1), len = int(1, 300);
            for (let k = start; k < Math.min(VENDOR_IDS.length, start + len); k++)
                ids.add(VENDOR_IDS[k]);
        }
        break;
    }
    case 4: case 20: case 21: /* all of them */
        for (const v of VENDOR_IDS) ids.add(v);
        break;
    case 22: case 23: /* none */
        break;
    default: /* near the top of the id space */
        for (const v of HIGH_IDS) if (chance(0.5)) ids.add(v);
        if (chance(0.5)) ids.add(int(1, 800));
        break;
    }
    return [...ids];
}

function randomModel() {
    const tc = new TCModel(gvl);
    gvl.tcfPolicyVersion = pick([4, 5, 5, 5, 2, int(0, 63)]);
    gvl.vendorListVersion = int(1, 4095);
    tc.cmpId = int(2, 4095);
    tc.cmpVersion = int(0, 4095);
    tc.consentScreen = int(0, 63);
    tc.isServiceSpecific = chance(0.7);
    tc.useNonStandardTexts = chance(0.2);
    tc.purposeOneTreatment = chance(0.1);
    tc.publisherCountryCode = String.fromCharCode(65 + int(0, 25), 65 + int(0, 25));
    tc.created = new Date(int(1500000000, 1900000000) * 1000);
    tc.lastUpdated = new Date(tc.created.getTime() + int(0, 1e9));
    const all = chance(0.15), none = !all && chance(0.15);
    for (let p = 1; p <= 24; p++) {
        if (all || (!none && chance(0.5))) tc.purposeConsents.set(p);
        if (chance(0.4)) tc.purposeLegitimateInterests.set(p);
    }
    for (let f = 1; f <= 12; f++) if (chance(0.3)) tc.specialFeatureOptins.set(f);
    tc.vendorConsents.set(vendorSet());
    tc.vendorLegitimateInterests.set(vendorSet());
    for (let i = chance(0.5) ? int(1, 5) : 0; i > 0; i--) {
        const purpose = chance(0.9) ? int(1, 24) : pick([25, 40, 63]);
        const r = new PurposeRestriction(purpose, int(0, 2));
        for (const v of vendorSet().slice(0, int(1, 400))) tc.publisherRestrictions.add(v, r);
    }
    if (chance(0.5)) tc.vendorsDisclosed.set(vendorSet());
    for (let p = 1; p <= 24; p++) if (chance(0.3)) tc.publisherConsents.set(p);
    const segments = pick([null, null, ['core'], ['core', 'vendorsDisclosed'],
                           ['core', 'publisherTC'], ['core', 'vendorsDisclosed', 'publisherTC']]);
    return { tc, segments };
}

function bits(vec) {
    let m = 0;
    for (let p = 1; p <= 24; p++) if (vec.has(p)) m |= 1 << (p - 1);
    return m >>> 0;
}

/* The core segment's bits, to tell a range section from a bitfield. */
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function coreBits(s) {
    return [...s.split('.')[0]].map((c) => B64.indexOf(c).toString(2).padStart(6, '0')).join('');
}
const CORE_FIXED = 213; /* bits before the vendor consent section */

/* What scrubgate reads, as IAB's decoder sees it. */
function view(s, m) {
    const b = coreBits(s);
    const rangeC = b[CORE_FIXED + 16] === '1';
    const maxc = parseInt(b.substr(CORE_FIXED, 16), 2);
    /* The LI section starts after the consent section: its length is the decoder's. */
    const liAt = CORE_FIXED + m.vendorConsents.bitLength;
    const maxli = parseInt(b.substr(liAt, 16), 2);
    const rangeL = b[liAt + 16] === '1';
    return {
        version: m.version, policy: m.policyVersion, cmp: m.cmpId, vlv: m.vendorListVersion,
        ss: m.isServiceSpecific, pc: bits(m.purposeConsents), pli: bits(m.purposeLegitimateInterests),
        maxc, maxli, enc: [rangeC ? 1 : 0, rangeL ? 1 : 0],
        cmaxId: m.vendorConsents.maxId, limaxId: m.vendorLegitimateInterests.maxId,
    };
}

/* Vendor ids to ask about: edges, members of each set, restricted ones, one at random. */
function queryIds(m, v) {
    const ids = new Set([1, 2, 65535, v.maxc, v.maxc + 1, v.maxli, v.maxli + 1, int(1, 65535)]);
    const some = (vec) => { const a = [...vec.values()]; return a.length ? pick(a) : 1; };
    ids.add(some(m.vendorConsents));
    ids.add(some(m.vendorConsents));
    ids.add(some(m.vendorLegitimateInterests));
    for (const r of m.publisherRestrictions.getVendors().slice(0, 3)) ids.add(r);
    return [...ids].filter((id) => id >= 1 && id <= 65535);
}

function answers(m, ids) {
    return ids.map((id) => {
        const r = [0, 0, 0];
        for (const pr of m.publisherRestrictions.getRestrictions(id))
            if (pr.purposeId <= 24) r[pr.restrictionType] |= 1 << (pr.purposeId - 1);
        return [id, m.vendorConsents.has(id) ? 1 : 0, m.vendorLegitimateInterests.has(id) ? 1 : 0,
                r[0] >>> 0, r[1] >>> 0, r[2] >>> 0];
    });
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const stats = { strings: 0, queries: 0, range: [0, 0], bitfield: [0, 0], restrictions: 0,
                highRestriction: 0, notServiceSpecific: 0, oldPolicy: 0, segments: 0,
                sixBit: 0, cut: 0, encodeErrors: 0 };
let tries = 0;
while (stats.strings < count && tries < count * 3) {
    tries++;
    const { tc, segments } = randomModel();
    let s;
    try {
        s = segments ? TCString.encode(tc, { segments }) : TCString.encode(tc);
    } catch (e) {
        stats.encodeErrors++;
        continue;
    }
    const m = TCString.decode(s);
    if (m.version !== 2) continue;
    const v = view(s, m);
    if (v.cmaxId !== v.maxc || v.limaxId !== v.maxli)
        throw new Error('MaxVendorId differs from the decoded vector: ' + s);
    const ids = queryIds(m, v);
    const q = answers(m, ids);
    if (stats.strings % 3 === 2) {
        /* The shortest core the library still reads, and reads the same way. */
        const parts = s.split('.');
        let core = parts[0];
        while (core.length > 1) {
            const shorter = [core.slice(0, -1)].concat(parts.slice(1)).join('.');
            let m2;
            try { m2 = TCString.decode(shorter); } catch (e) { break; }
            if (!same(view(shorter, m2), v) || !same(answers(m2, ids), q))
                break;
            core = core.slice(0, -1);
        }
        if (core !== parts[0]) {
            stats.cut++;
            s = [core].concat(parts.slice(1)).join('.');
        }
    }
    if ((s.split('.')[0].length * 6) % 8) stats.sixBit++;
    stats.strings++;
    stats.queries += q.length;
    stats[v.enc[0] ? 'range' : 'bitfield'][0]++;
    stats[v.enc[1] ? 'range' : 'bitfield'][1]++;
    const rs = m.publisherRestrictions.getRestrictions();
    if (rs.length) stats.restrictions++;
    if (rs.some((r) => r.purposeId > 24)) stats.highRestriction++;
    if (!v.ss) stats.notServiceSpecific++;
    if (v.policy < 4) stats.oldPolicy++;
    if (s.includes('.')) stats.segments++;
    delete v.cmaxId;
    delete v.limaxId;
    process.stdout.write(JSON.stringify(Object.assign({ s }, v, { q })) + '\n');
}
process.stderr.write('tcf-diff: generated ' + JSON.stringify(stats) + '\n');
if (stats.strings < count) process.exit(1);
