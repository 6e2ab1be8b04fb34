-- wrk script for scenario (b): every write carries DEPTH requests for the URL's
-- path (default 16), so the server sees pipelined heads. wrk counts each
-- response it parses, so Requests/sec counts requests, not writes.
-- Usage: wrk -t1 -c50 -d5s -s bench/wrk/pipeline.lua http://127.0.0.1:8080/ -- 16
init = function(args)
  local depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format(nil, wrk.path)
  end
  pipelined = table.concat(batch)
end

request = function()
  return pipelined
end
