-- wrk script: POST a batch of BATCH events (env, default 1) per request to /v1/events.
-- With RATE (requests per second, all connections together) each connection waits between
-- requests, so the load is paced rather than saturating (wrk -c CONNS must match CONNS).
local batch = tonumber(os.getenv("BATCH") or "1")
local rate = tonumber(os.getenv("RATE") or "0")
local conns = tonumber(os.getenv("CONNS") or "32")
local one = [[{"event":"Purchase","consent":"granted","page":{"url":"https://shop.example.com/thanks?utm_source=tiktok&ttclid=E.C.P.bench&email=jane%40example.com"},"properties":{"value":19.99,"currency":"USD","contents":[{"content_id":"sku-1","quantity":1,"price":19.99,"content_name":"Mug"}]},"user":{"email":"jane@example.com","phone":"+12133734253"}}]]
local events = {}
for i = 1, batch do events[i] = one end
wrk.method = "POST"
wrk.path = "/v1/events?site=shop"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (bench)"
wrk.headers["Cookie"] = "sg_sid=0123456789abcdef0123456789abcdef; _ttp=bench-ttp"
wrk.body = "[" .. table.concat(events, ",") .. "]"

if rate > 0 then
  -- A wait drawn at random (exponential, mean conns / rate): arrivals are a Poisson process,
  -- as many independent visitors make them. A fixed wait would keep the connections in step,
  -- and the proxy would see bursts of CONNS requests at once.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  -- wrk takes whole milliseconds: the fraction is carried into the next wait, so that the
  -- mean stays conns / rate even when that is a few milliseconds.
  local carry = 0
  function delay()
    local d = -math.log(1 - math.random()) * conns * 1000 / rate + carry
    local whole = math.floor(d)
    carry = d - whole
    return whole
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests_per_s=%.0f events_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6),
    summary.requests * batch / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.requests))
end
