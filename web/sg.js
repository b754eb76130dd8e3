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
        var REQ_MAX = 50;          /* events per request: the proxy refuses over 100 (413) */
        var BEACON_MAX = 60000;    /* bytes per request: browsers cap beacons in flight at 64 KB */
        var NAME_MAX = 100;        /* the proxy's limit on an event name */
        var URL_MAX = 4000;        /* page.url and page.referrer: the proxy refuses over 4096 */
        var HOLD = 1, CMP = 2;     /* why a queued event waits (0: it does not) */
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

        /* Events not yet sent, oldest first, each {e: event, w: 0 | HOLD | CMP}. An event that
         * does not wait carries the consent of the moment it was tracked; a HOLD event takes the
         * consent of grantConsent()/revokeConsent(), a CMP event that of the CMP's first answer
         * (or, at page hide, that of the moment without a TC string). */
        var queue = [];
        var timer = null;
        var user = null;           /* identify() values: this page's memory only */
        var explicit = null;       /* 'granted' or 'denied' once the site called grant/revoke */
        var held = false;          /* holdConsent(): nothing leaves until grant or revoke */
        var tcString = null;       /* the CMP's TC string, when GDPR applies */
        var tcfState = 0;          /* 0: no __tcfapi seen, 1: waiting for its answer, 2: answered */

        function isObj(v) { return v !== null && typeof v === 'object' && !(v instanceof Array); }

        /* A plain object: not an array, a Date, a boxed string, ... */
        function isPlain(v) { return Object.prototype.toString.call(v) === '[object Object]'; }

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

        /* Google Consent Mode, read from window.dataLayer when an event is tracked (or stops
         * waiting): every ['consent', 'default'|'update', {...}] entry (an array, or the
         * `arguments` object gtag() pushes) is applied in order. The snippet cannot know the visitor's region, so an entry
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

        /* The consent field, as of now: the Consent Mode keys, the site's explicit choice on the
         * four purposes (a grant keeps every Consent Mode denial; a revoke denies all four) and
         * the TC string, in one object: the proxy lets the most restrictive signal win. Nothing
         * known: undefined (the site default decides). */
        function consent() {
            var c = consentMode() || {}, i, k;
            if (explicit) for (i = 0; i < CM_KEYS.length; i++) {
                k = CM_KEYS[i];
                if (explicit === 'denied' || c[k] !== 'denied') c[k] = explicit;
            }
            if (tcString) c.tcf = tcString;
            for (k in c) return c;
            return undefined;
        }

        /* The events waiting for `why` stop waiting, with the consent of this moment. */
        function release(why) {
            var c = consent(), i;
            for (i = 0; i < queue.length; i++) if (queue[i].w === why) {
                if (c !== undefined) queue[i].e.consent = c;
                queue[i].w = 0;
            }
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
                        release(CMP);
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

        /* Send the events that do not wait, in arrays of at most REQ_MAX events and BEACON_MAX
         * bytes. `final`: the page is hidden or left. Nothing at all is sent while consent is
         * held. */
        function flush(final) {
            var parts = [], rest = [], size = 2, i, s, n;
            if (timer) { clearTimeout(timer); timer = null; }
            if (held) return;
            for (i = 0; i < queue.length; i++) {
                if (queue[i].w) { rest.push(queue[i]); continue; }
                s = JSON.stringify(queue[i].e);
                n = byteLength(s) + 1;
                if (n + 2 > BEACON_MAX) continue; /* one oversized event is dropped, not split */
                if (size + n > BEACON_MAX || parts.length >= REQ_MAX) {
                    post('[' + parts.join(',') + ']', final);
                    parts = [];
                    size = 2;
                }
                parts.push(s);
                size += n;
            }
            queue = rest;
            if (parts.length) post('[' + parts.join(',') + ']', final);
        }

        function schedule() {
            var ready = 0, i;
            for (i = 0; i < queue.length; i++) if (!queue[i].w) ready++;
            if (ready >= BATCH_MAX) flush(false);
            else if (!timer && ready)
                timer = setTimeout(guard(function () { flush(false); }), BATCH_MS);
        }

        /* location.href or document.referrer within the proxy's field limit: without its
         * #fragment, then cut after the last whole parameter (else at URL_MAX), never inside a
         * %-escape. */
        function capUrl(u) {
            var i;
            u = String(u || '');
            if (u.length <= URL_MAX) return u;
            u = u.split('#')[0];
            if (u.length <= URL_MAX) return u;
            i = u.lastIndexOf('&', URL_MAX);
            return i > 0 ? u.substring(0, i) : u.substring(0, URL_MAX).replace(/%.?$/, '');
        }

        /* ttq.track(event, properties, {event_id}): the event id, or undefined for a call that is
         * ignored (a name that is not a 1..100 character string, properties that are not a plain
         * object, such as an array or a Date, or cannot be serialized). A given id over 128
         * characters is replaced. */
        function track(name, props, opts) {
            var id, ev, c, why = 0;
            if (!okString(name, NAME_MAX)) return undefined;
            if (props === undefined || props === null) props = {};
            if (!isPlain(props)) return undefined;
            /* a copy taken now: the site may change its object after the call */
            props = JSON.parse(JSON.stringify(props));
            if (!isPlain(props)) return undefined; /* a toJSON that returns no object */
            id = isObj(opts) ? opts.event_id : undefined;
            if (typeof id === 'number' && isFinite(id)) id = String(id);
            if (!okString(id, 128)) id = randomId(); /* the proxy refuses longer ids */
            ev = {
                event: name,
                event_id: id,
                timestamp: new Date().getTime(),
                page: { url: capUrl(location.href), referrer: capUrl(d.referrer) },
                properties: props
            };
            if (user) ev.user = JSON.parse(JSON.stringify(user));
            if (w.navigator.globalPrivacyControl === true) ev.gpc = true;
            listenTcf();
            if (held) why = HOLD;
            else if (tcfState == 1) why = CMP;
            else if ((c = consent()) !== undefined) ev.consent = c; /* the consent of now */
            queue.push({ e: ev, w: why });
            schedule();
            return id;
        }

        /* An identify() value as kept: a string, a finite number as a string, or a copy of an
         * array of 1 to 5 such strings; anything else is null (ignored). */
        function idValue(v) {
            var a = [], i;
            if (typeof v === 'number' && isFinite(v)) v = String(v);
            if (okString(v, 1000)) return v;
            if (!(v instanceof Array) || !v.length || v.length > 5) return null;
            for (i = 0; i < v.length; i++) {
                a[i] = typeof v[i] === 'number' && isFinite(v[i]) ? String(v[i]) : v[i];
                if (!okString(a[i], 1000)) return null;
            }
            return a;
        }

        /* ttq.identify({email, phone_number, external_id}): checked now and kept in memory for
         * this page's later events (the proxy hashes them; the snippet never stores them). */
        function identify(o) {
            var keys = ['email', 'phone_number', 'external_id'], i, v;
            if (!isObj(o)) return;
            for (i = 0; i < keys.length; i++) {
                v = o[keys[i]];
                if (keys[i] === 'phone_number' && v === undefined) v = o.phone;
                if ((v = idValue(v)) !== null) {
                    user = user || {};
                    user[keys[i]] = v;
                }
            }
        }

        /* grantConsent()/revokeConsent(): the held events leave with this choice (and, while
         * the CMP has not answered yet, with its answer too). */
        function setConsent(state) {
            explicit = state;
            held = false;
            for (var i = 0; tcfState == 1 && i < queue.length; i++)
                if (queue[i].w === HOLD) queue[i].w = CMP;
            release(HOLD);
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

        /* Hidden (a tab switch; the page may be frozen, or killed, in the background): send what
         * does not wait. Left (pagehide): the events waiting for the CMP go too, without a TC
         * string (the site default decides); held events never leave without a choice. */
        w.addEventListener('pagehide', guard(function () {
            release(CMP);
            flush(true);
        }));
        d.addEventListener('visibilitychange', guard(function () {
            if (d.visibilityState === 'hidden') flush(true);
        }));
    }
})(window, document);
