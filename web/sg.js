/*
 * sg.js: scrubgate's first-party browser snippet.
 *
 * Loaded instead of TikTok's pixel, from the proxy's own origin:
 *
 *   <script src="https://sg.shop.example.com/sg.js" data-site="shop" async></script>
 *
 * It installs a `ttq` object with the methods of TikTok's pixel API and sends each event, as
 * JSON, to /v1/events?site=<id> on the origin this script was loaded from. The proxy decides
 * what of it may leave for TikTok; this script only collects what the site hands it.
 *
 * What it does not do: it reads and writes no cookies and no storage, loads nothing else,
 * sends no user agent or device details, never evaluates strings as code, never retries, and
 * never throws into the host page (every entry point is guarded).
 *
 * Hand-written ES5 (plus a few browser APIs guarded by feature tests), no dependencies; the
 * build minifies it with uglifyjs. Budget: under 4 KB gzipped once minified.
 */
(function (w, d) {
    'use strict';

    /* Even the set-up runs guarded: if anything in it fails, the page goes on without the
     * snippet, and without an error of ours in its console or its error handlers. */
    try {
        main();
    } catch (e) { /* nothing to do */ }

    function main() {
        var BATCH_MS = 100;        /* how long events wait for company before they are sent */
        var BATCH_MAX = 20;        /* a batch this long is sent at once */
        var BEACON_MAX = 60000;    /* bytes per request: browsers cap beacons in flight at 64 KB */
        var NAME_MAX = 100;        /* the proxy's limit on an event name */
        var CM_KEYS = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage'];
        var METHODS = ['page', 'track', 'identify', 'instances', 'debug', 'on', 'off', 'once',
            'ready', 'alias', 'group', 'enableCookie', 'disableCookie', 'holdConsent',
            'revokeConsent', 'grantConsent'];

        /* This script's own tag: document.currentScript while it runs (async included), else the
         * last <script> whose src ends in /sg.js. */
        function findScript() {
            var s = d.currentScript, all, i;
            if (s) return s;
            all = d.getElementsByTagName('script');
            for (i = all.length - 1; i >= 0; i--)
                if (/\/sg\.js([?#]|$)/.test(all[i].src || '')) return all[i];
            return null;
        }

        var me = findScript();
        var attr = function (n) { return (me && me.getAttribute(n)) || ''; };
        /* data-name: a site that keeps TikTok's own pixel on `ttq` gives the snippet another
         * name. */
        var NAME = attr('data-name') || w.TiktokAnalyticsObject || 'ttq';
        var stub = w[NAME];
        if (stub && stub._sg) return; /* loaded twice: the first copy keeps the page's state */

        var site = attr('data-site');
        var base = '';             /* the proxy's origin; '' (this page's origin) when unknown */
        try { if (me && me.src) base = new URL(me.src, location.href).origin; } catch (e) { /* */ }

        var queue = [];            /* events not yet sent, oldest first */
        var timer = null;
        var user = null;           /* identify() values: this page's memory only */
        var explicit = null;       /* 'granted' or 'denied' once the site called grant/revoke */
        var held = false;          /* holdConsent(): nothing leaves until grant or revoke */
        var tcString = null;       /* the CMP's TC string, when GDPR applies */
        var tcfState = 0;          /* 0: no __tcfapi seen, 1: waiting for its answer, 2: answered */

        function isObj(v) { return v !== null && typeof v === 'object' && !(v instanceof Array); }

        function okString(v, max) {
            return typeof v === 'string' && v.length > 0 && v.length <= max;
        }

        /* A random event id for an event without one: 128 bits from crypto.getRandomValues
         * (Math.random where that is missing: the id only has to be unique enough for TikTok's
         * deduplication, it is no secret), written as 32 letters a-p. Letters only: an id
         * without digits can never be taken for a phone or card number by the proxy's check
         * that identifiers carry no personal data. */
        function randomId() {
            var c = w.crypto, b = [], i, s = '';
            if (c && c.getRandomValues) b = c.getRandomValues(new Uint8Array(16));
            else for (i = 0; i < 16; i++) b[i] = Math.random() * 256 | 0;
            for (i = 0; i < 16; i++)
                s += String.fromCharCode(97 + (b[i] >> 4), 97 + (b[i] & 15));
            return s;
        }

        /* Google Consent Mode, read from window.dataLayer at send time: every
         * ['consent', 'default'|'update', {...}] entry (an array, or the `arguments` object gtag()
         * pushes) is applied in order. The snippet cannot know the visitor's region, so an entry
         * scoped to regions only ever denies (fails closed). */
        function consentMode() {
            var dl = w.dataLayer, out = {}, any = false, i, j, e, v, k;
            if (!dl || typeof dl.length !== 'number') return null;
            for (i = 0; i < dl.length; i++) {
                e = dl[i];
                if (!e || typeof e !== 'object' || e[0] !== 'consent' ||
                    (e[1] !== 'default' && e[1] !== 'update') || !isObj(e[2])) continue;
                for (j = 0; j < CM_KEYS.length; j++) {
                    k = CM_KEYS[j];
                    v = e[2][k];
                    if (v !== 'granted' && v !== 'denied') continue;
                    if (e[2].region && v === 'granted') continue;
                    out[k] = v;
                    any = true;
                }
            }
            return any ? out : null;
        }

        /* The event's consent field: the site's explicit choice, else what the CMPs said (the
         * proxy lets the most restrictive signal win), else nothing (the site default decides). */
        function consent() {
            var c = consentMode() || {};
            if (explicit) return explicit;
            if (tcString) c.tcf = tcString;
            for (var k in c) return c;
            return undefined;
        }

        /* IAB TCF v2.2/2.3: listen to the CMP. Until it has answered once (tcloaded or
         * useractioncomplete), events wait; page hide sends them anyway, without a TC string. */
        function listenTcf() {
            if (tcfState || typeof w.__tcfapi !== 'function') return;
            tcfState = 1;
            try {
                w.__tcfapi('addEventListener', 2, function (tc, ok) {
                    try {
                        if (!ok || !tc || (tc.eventStatus !== 'tcloaded' &&
                            tc.eventStatus !== 'useractioncomplete')) return;
                        tcString = tc.gdprApplies !== false && okString(tc.tcString, 8192) ?
                            tc.tcString : null;
                        tcfState = 2;
                        schedule();
                    } catch (e) { /* a CMP's odd answer is not the page's problem */ }
                });
            } catch (e) {
                tcfState = 2;
            }
        }

        function byteLength(s) {
            try { return new Blob([s]).size; } catch (e) { return s.length * 3; }
        }

        /* One request, with sendBeacon, else fetch; the browser's answer is never read and
         * nothing is retried (a retry could duplicate an event the proxy already took).
         * sendBeacon refuses (returns false) where it is missing or blocked, and when the beacons
         * still in flight from this page would exceed 64 KB. keepalive fetches share that same
         * budget, so when the page stays (not `final`) the fallback fetch goes without keepalive:
         * it needs none, and a big batch split in several requests would otherwise lose all but
         * the first. When the page is leaving, only keepalive can outlive it. */
        function post(body, final) {
            var url = base + '/v1/events' + (site ? '?site=' + encodeURIComponent(site) : '');
            var nav = w.navigator, sent = false;
            try { sent = !!(nav.sendBeacon && nav.sendBeacon(url, body)); } catch (e) { /* */ }
            if (sent || !w.fetch) return;
            try {
                w.fetch(url, {
                    method: 'POST', body: body, keepalive: !!final, credentials: 'include',
                    headers: { 'Content-Type': 'text/plain' }
                })['catch'](function () { /* swallowed: the page must not see our errors */ });
            } catch (e) { /* */ }
        }

        /* Send what waits, in arrays of events each under BEACON_MAX bytes. `final` (page hide)
         * does not wait for the CMP; nothing at all is sent while consent is held. */
        function flush(final) {
            var c, parts = [], size = 2, i, s, n;
            if (timer) { clearTimeout(timer); timer = null; }
            if (!queue.length || held || (tcfState == 1 && !explicit && !final)) return;
            c = consent();
            for (i = 0; i < queue.length; i++) {
                if (c !== undefined) queue[i].consent = c;
                s = JSON.stringify(queue[i]);
                n = byteLength(s) + 1;
                if (n + 2 > BEACON_MAX) continue; /* one oversized event is dropped, not split */
                if (size + n > BEACON_MAX) {
                    post('[' + parts.join(',') + ']', final);
                    parts = [];
                    size = 2;
                }
                parts.push(s);
                size += n;
            }
            queue = [];
            if (parts.length) post('[' + parts.join(',') + ']', final);
        }

        function schedule() {
            if (queue.length >= BATCH_MAX) flush(false);
            else if (!timer && queue.length)
                timer = setTimeout(guard(function () { flush(false); }), BATCH_MS);
        }

        /* ttq.track(event, properties, {event_id}): the event id, or undefined for a call that is
         * ignored (a name that is not a 1..100 character string, properties that are not a plain
         * object or cannot be serialized). A given id over 128 characters is replaced. */
        function track(name, props, opts) {
            var id, ev;
            if (!okString(name, NAME_MAX)) return undefined;
            if (props === undefined || props === null) props = {};
            if (!isObj(props)) return undefined;
            id = isObj(opts) ? opts.event_id : undefined;
            if (typeof id === 'number' && isFinite(id)) id = String(id);
            if (!okString(id, 128)) id = randomId(); /* the proxy refuses longer ids */
            ev = {
                event: name,
                event_id: id,
                timestamp: new Date().getTime(),
                page: { url: location.href, referrer: d.referrer },
                /* a copy taken now: the site may change its object after the call */
                properties: JSON.parse(JSON.stringify(props))
            };
            if (user) ev.user = JSON.parse(JSON.stringify(user));
            if (w.navigator.globalPrivacyControl === true) ev.gpc = true;
            listenTcf();
            queue.push(ev);
            schedule();
            return id;
        }

        /* ttq.identify({email, phone_number, external_id}): kept in memory for this page's later
         * events (the proxy hashes them; the snippet never stores them). */
        function identify(o) {
            var keys = ['email', 'phone_number', 'external_id'], i, v;
            if (!isObj(o)) return;
            for (i = 0; i < keys.length; i++) {
                v = o[keys[i]];
                if (keys[i] === 'phone_number' && v === undefined) v = o.phone;
                if (typeof v === 'number') v = String(v);
                if (okString(v, 1000) || (v instanceof Array && v.length)) {
                    user = user || {};
                    user[keys[i]] = v;
                }
            }
        }

        function setConsent(state) {
            explicit = state;
            held = false;
            schedule();
        }

        /* Every entry point: a failure stays here, never in the host page. */
        function guard(fn) {
            return function () {
                try { return fn.apply(this, arguments); } catch (e) { return undefined; }
            };
        }

        function noop() {}

        var api = { _sg: true };
        var fns = {};              /* the methods, for replay even if the page replaces api's */
        var impl = {
            load: function (id) { if (!site && okString(id, 64)) site = id; },
            page: function () { return track('Pageview', {}); },
            track: track,
            identify: identify,
            holdConsent: function () { held = true; },
            grantConsent: function () { setConsent('granted'); },
            revokeConsent: function () { setConsent('denied'); },
            ready: function (fn) { if (typeof fn === 'function') fn(); },
            instance: function () { return api; },
            instances: function () { return []; }
        };
        METHODS.push('load', 'instance');
        for (var i = 0; i < METHODS.length; i++)
            api[METHODS[i]] = fns[METHODS[i]] = guard(impl[METHODS[i]] || noop);

        /* TikTok's base code leaves an array of [method, ...args] calls, and per-pixel queues in
         * _i (whose keys are the ids given to ttq.load). Replay them in order: the global queue,
         * then each pixel's. */
        function replay(q) {
            for (var j = 0; q && j < q.length; j++) {
                var c = q[j];
                if (c && c.length && fns.hasOwnProperty(c[0]) && c[0] !== 'instance')
                    fns[c[0]].apply(api, Array.prototype.slice.call(c, 1));
            }
        }

        /* TikTok's base code run again after this script (a tag manager re-inserting it) turns
         * every method back into a stub that pushes [method, ...args] onto `ttq`: take those too. */
        api.push = guard(function () { replay(arguments); });

        w[NAME] = api;
        guard(function () {
            if (!stub) return;
            var pixels = stub._i || {}, id;
            for (id in pixels) if (pixels.hasOwnProperty(id)) { fns.load(id); break; }
            replay(stub);
            for (id in pixels) if (pixels.hasOwnProperty(id)) replay(pixels[id]);
        })();
        guard(listenTcf)();

        /* The page is going away (or may be frozen in the background): send now. */
        var onHide = guard(function () { flush(true); });
        w.addEventListener('pagehide', onHide);
        d.addEventListener('visibilitychange', function () {
            if (d.visibilityState === 'hidden') onHide();
        });
    }
})(window, document);
