-- wrk script for bench/load/run.sh: POST one JSON body, print a one-line JSON summary.
--
-- Environment (read once per wrk thread):
--   TG_BODY      path of the request body (JSON), required
--   TG_AUTH      optional value of the Authorization header (e.g. "Bearer tg-...")
--   TG_OUT       optional path; the summary line is written there instead of stdout
--
-- There is deliberately no response() callback: defining one makes wrk call into Lua for every
-- reply. wrk itself counts non-2xx/3xx replies (status > 399) in errors.status.

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then error("post.lua: cannot read TG_BODY=" .. tostring(path)) end
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = slurp(os.getenv("TG_BODY"))
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local auth = os.getenv("TG_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

function done(summary, latency, requests)
  local err = summary.errors
  local secs = summary.duration / 1e6
  local line = string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"min":%d,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}',
    summary.requests, secs, secs > 0 and summary.requests / secs or 0, summary.bytes,
    err.connect, err.read, err.write, err.status, err.timeout,
    latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9))
  local out = os.getenv("TG_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "w"))
    f:write(line, "\n")
    f:close()
  else
    io.write(line, "\n")
  end
end
