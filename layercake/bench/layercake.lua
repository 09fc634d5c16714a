-- layercake's wrk script: the request to send, and a machine-readable summary.
--
-- wrk builds one request from wrk.method / wrk.body / wrk.headers when no request()
-- function is defined, and reuses its bytes for every request: the fast path, so the
-- script costs nothing per request.  We deliberately define no response() callback
-- either: with one, wrk hands every response to Lua and measures its own overhead.
--
-- The request comes from the environment (set by layercake/bench/loadgen.py):
--   LAYERCAKE_METHOD  GET or POST            LAYERCAKE_BODY  the request body
--   LAYERCAKE_CTYPE   the body's Content-Type
--
-- done() prints one line starting "LAYERCAKE_RESULT " followed by JSON: the counts,
-- the errors by kind, and latency percentiles in microseconds from wrk's own
-- histogram (the numbers "--latency" prints, at more points and without rounding).

local method = os.getenv("LAYERCAKE_METHOD")
if method and method ~= "" then wrk.method = method end
local body = os.getenv("LAYERCAKE_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("LAYERCAKE_CTYPE") or "application/json"
end

done = function(summary, latency, requests)
  local points = {50, 75, 90, 99, 99.9}
  local parts = {}
  for _, p in ipairs(points) do
    parts[#parts + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'LAYERCAKE_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "max": %d, "mean": %.2f, "stdev": %.2f, "percentiles": {%s}}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(parts, ", ")))
end
