-- wrk script: POST a rotating set of JSON bodies (one per line of BODIES_FILE), and print
-- a JSON summary at the end so bench/load.py can read it.
local bodies = {}
local counter = 0

function init(args)
  local path = os.getenv("BODIES_FILE")
  for line in io.lines(path) do
    bodies[#bodies + 1] = line
  end
  -- each wrk thread starts at a different place in the rotation
  counter = math.random(#bodies)
end

request = function()
  counter = counter % #bodies + 1
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, bodies[counter])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
