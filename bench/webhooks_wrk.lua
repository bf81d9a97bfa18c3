-- wrk script of bench/webhooks.py: send each PRE-SIGNED request of a file at most once.
--
--   BENCH_WRK_REQUESTS=file BENCH_WRK_RESULT=out.json BENCH_WRK_THREADS=1 \
--     wrk -t1 -c32 -d20s -s bench/webhooks_wrk.lua http://127.0.0.1:PORT
--
-- (Environment rather than script arguments: done() runs in wrk's main Lua state, which never
-- sees the arguments given to each thread's init().)
--
-- REQUESTS_FILE has one request per line, fields separated by tabs:
--   path <TAB> header-name <TAB> header-value [<TAB> name <TAB> value ...] <TAB> body
-- (bodies are form-encoded or compact JSON, so they hold no raw tab or newline). Thread k of T
-- takes lines k+1, k+1+T, ... so no two threads send the same signed delivery. A thread that runs
-- out sends GET /bench/exhausted/ (a 404, counted apart) and the run is reported as too short a
-- pool: a replayed delivery would be a duplicate, which is exactly what the benchmark must not do.
--
-- done() writes one JSON object: wrk's own summary and latency percentiles (microseconds), plus
-- what only the script knows: requests issued (written to a socket, including those still in
-- flight when wrk stopped) and the status classes of the responses received.

local thread_list = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(thread_list, thread)
end

local pool = {}
local next_index = 1
-- wrk builds the first request of thread 0 once before the run to check it (script_verify_request)
-- and never sends it: hand that call the first request without consuming it.
local verifying = false

issued = 0
exhausted = 0
s2xx, s3xx, s4xx, s5xx = 0, 0, 0, 0

local function split_tabs(line)
  local fields = {}
  local start = 1
  while true do
    local stop = string.find(line, "\t", start, true)
    if not stop then
      table.insert(fields, string.sub(line, start))
      return fields
    end
    table.insert(fields, string.sub(line, start, stop - 1))
    start = stop + 1
  end
end

function init(args)
  local path, threads = os.getenv("BENCH_WRK_REQUESTS"), tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
  local me = tid or 0
  verifying = (me == 0)
  local n = 0
  for line in io.lines(path) do
    if n % threads == me and #line > 0 then
      local fields = split_tabs(line)
      local headers = {}
      for i = 2, #fields - 1, 2 do
        headers[fields[i]] = fields[i + 1]
      end
      table.insert(pool, wrk.format("POST", fields[1], headers, fields[#fields]))
    end
    n = n + 1
  end
end

function request()
  if verifying then
    verifying = false
    return pool[1] or wrk.format("GET", "/bench/exhausted/")
  end
  local req = pool[next_index]
  if req == nil then
    exhausted = exhausted + 1
    return wrk.format("GET", "/bench/exhausted/")
  end
  pool[next_index] = nil -- each signed delivery goes out once; free it
  next_index = next_index + 1
  issued = issued + 1
  return req
end

function response(status, headers, body)
  if status >= 500 then
    s5xx = s5xx + 1
  elseif status >= 400 then
    s4xx = s4xx + 1
  elseif status >= 300 then
    s3xx = s3xx + 1
  else
    s2xx = s2xx + 1
  end
end

function done(summary, latency, requests)
  local totals = { issued = 0, exhausted = 0, s2xx = 0, s3xx = 0, s4xx = 0, s5xx = 0 }
  for _, thread in ipairs(thread_list) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  local out = io.open(os.getenv("BENCH_WRK_RESULT"), "w")
  out:write(string.format(
    '{"completed": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}, ' ..
    '"issued": %d, "exhausted": %d, "s2xx": %d, "s3xx": %d, "s4xx": %d, "s5xx": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    totals.issued, totals.exhausted, totals.s2xx, totals.s3xx, totals.s4xx, totals.s5xx))
  out:close()
end
