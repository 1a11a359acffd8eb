-- wrk script for bench_ingest.py and bench_webhooks.py: POST pre-signed Stripe webhooks,
-- each sent once. BENCH_REQUESTS: file of "<Stripe-Signature>\t<body>" lines; BENCH_PATH:
-- URL path; BENCH_THREADS: wrk -t (thread i sends lines i, i+t, i+2t, ...); BENCH_ONCE=1:
-- a thread stops once its lines are sent; BENCH_DELAY_MS: pause of each connection
-- between its requests (default 0: as fast as the server answers).
local threads, counter = {}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  lines = {}
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local sig, body = line:match("([^\t]*)\t(.*)")
    lines[#lines + 1] = {sig, body}
  end
  path = os.getenv("BENCH_PATH")
  step = tonumber(os.getenv("BENCH_THREADS"))
  once = os.getenv("BENCH_ONCE") == "1"
  pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
  idx = tid
  ok, other, wrapped = 0, 0, 0
end

-- Defined only when asked for: wrk then schedules every request on a timer.
if (tonumber(os.getenv("BENCH_DELAY_MS") or "0") > 0) then
  function delay()
    return pause
  end
end

function request()
  if idx >= #lines then
    if once then wrk.thread:stop() end
    wrapped = wrapped + 1
  end
  local item = lines[(idx % #lines) + 1]
  idx = idx + step
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["Stripe-Signature"] = item[1]}, item[2])
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_other, total_wrapped = 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
    total_wrapped = total_wrapped + t:get("wrapped")
  end
  io.write(string.format("BENCH ok=%d other=%d wrapped=%d requests=%d errors=%d\n",
    total_ok, total_other, total_wrapped, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("BENCH p%d=%.2f\n", p, latency:percentile(p) / 1000))
  end
end
