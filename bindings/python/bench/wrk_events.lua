-- POST /v1/events with batches of random events; prints a JSON summary at the end.
-- args: API key, first item id, last item id, events per batch
local key, lo, hi, batch = "", 10001, 13000, 100
local counter = 0
local types = {"impression", "impression", "impression", "click", "cart", "purchase"}
function init(args)
  key = args[1] or ""
  lo = tonumber(args[2] or "10001")
  hi = tonumber(args[3] or "13000")
  batch = tonumber(args[4] or "100")
  math.randomseed(os.time())
end
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format('{"user_id": %d, "item_id": %d, "type": "%s"}',
      math.random(1, 5000), math.random(lo, hi), types[math.random(1, #types)])
  end
  local body = '{"events": [' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/events",
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
