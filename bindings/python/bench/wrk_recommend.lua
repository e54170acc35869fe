-- POST /v1/recommendations with a varying user id; prints a JSON summary at the end.
-- args: API key, k
local key, k = "", 20
local counter = 0
function init(args)
  key = args[1] or ""
  k = tonumber(args[2] or "20")
end
function request()
  counter = counter + 1
  local body = string.format('{"user_id": %d, "k": %d}', (counter % 5000) + 1, k)
  return wrk.format("POST", "/v1/recommendations",
                    {["Content-Type"] = "application/json", ["X-API-Key"] = key}, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
