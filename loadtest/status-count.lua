-- wrk script: counts responses by status class and prints `STATUS <code> <count>` lines at the
-- end (wrk copies only numbers and strings between threads, so each code has its own counter).
local threads = {}
local tracked = { 200, 401, 403, 404, 500, 502, 503, 504 }

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for _, code in ipairs(tracked) do
    _G["s" .. code] = 0
  end
  s_other = 0
end

function response(status, headers, body)
  local name = "s" .. status
  if _G[name] ~= nil then
    _G[name] = _G[name] + 1
  else
    s_other = s_other + 1
  end
end

function done(summary, latency, requests)
  for _, code in ipairs(tracked) do
    local n = 0
    for _, thread in ipairs(threads) do
      n = n + (thread:get("s" .. code) or 0)
    end
    if n > 0 then io.write(string.format("STATUS %d %d\n", code, n)) end
  end
  local other = 0
  for _, thread in ipairs(threads) do
    other = other + (thread:get("s_other") or 0)
  end
  if other > 0 then io.write(string.format("STATUS other %d\n", other)) end
end
