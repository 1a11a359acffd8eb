-- wrk script for bench_ingest.py: POST pre-signed Stripe webhooks, each sent once.
-- BENCH_REQUESTS: file of "<Stripe-Signature>\t<body>" lines; BENCH_PATH: URL path;
-- BENCH_THREADS: wrk -t (thread i sends lines i, i+t, i+2t, ...).
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
  idx = tid
  ok, other, wrapped = 0, 0, 0
end

function request()
  if idx >= #lines then wrapped = wrapped + 1 end
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
