"""Lua scripts behind the Redis backends (strictly private).

Each script is one atomic round trip and reads the time from Redis (``TIME``), so processes on
different hosts, whose clocks disagree, still share one bucket and one window. Numbers leave Lua
as strings: Redis would truncate a Lua float to an integer. Keys carry a TTL, so an idle bucket or
breaker window costs Redis nothing after it expires.

Breaker hash fields (KEYS[1]): ``st`` state code (BreakerState values), ``ou`` open-until
(server seconds), ``gen`` half-open generation, ``pr`` probes in flight, ``ps`` probe successes,
``le`` last window epoch, ``tr``/``tf``/``ts``/``tj`` lifetime requests/failures/slow/rejections.
Window hash (KEYS[2]): ``c<epoch>``, ``f<epoch>``, ``s<epoch>`` calls/failures/slow per bucket.
"""

# KEYS[1] bucket.  ARGV: cost (s), limit (s), timeout (s; negative = wait as long as needed).
# Returns {admitted (1/0), wait seconds}: admitted with wait > 0 means "reserved, sleep first".
RATE_LIMIT_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local timeout = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + cost
local wait = new_tat - now - limit
if wait > 0 and timeout >= 0 and wait > timeout then
  return {0, string.format('%.6f', wait)}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX',
           math.ceil((new_tat - now) * 1000) + 1000)
if wait < 0 then wait = 0 end
return {1, string.format('%.6f', wait)}
"""

# KEYS[1] bucket.  ARGV: cost (s).  Gives back a reservation that was never used.
RATE_LIMIT_REFUND = """
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat ~= nil then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  redis.call('SET', KEYS[1], string.format('%.6f', tat - tonumber(ARGV[1])), 'PX', ttl)
end
return 1
"""

_BREAKER_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local width = tonumber(ARGV[1])
local buckets = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local slow_threshold = tonumber(ARGV[4])
local minimum = tonumber(ARGV[5])
local open_timeout = tonumber(ARGV[6])
local max_probes = tonumber(ARGV[7])
local successes_needed = tonumber(ARGV[8])
local ttl = tonumber(ARGV[9])
local st = tonumber(redis.call('HGET', KEYS[1], 'st') or '0')
local function enter(code)
  if code == 1 then
    redis.call('HSET', KEYS[1], 'st', 1, 'ou', string.format('%.6f', now + open_timeout))
  elseif code == 2 then
    redis.call('HINCRBY', KEYS[1], 'gen', 1)
    redis.call('HSET', KEYS[1], 'st', 2, 'pr', 0, 'ps', 0)
  else
    if code == 0 then redis.call('DEL', KEYS[2]) end
    redis.call('HSET', KEYS[1], 'st', code, 'pr', 0, 'ps', 0)
  end
  st = code
end
local function window(epoch)
  local calls, failures, slows = 0, 0, 0
  for e = epoch - buckets + 1, epoch do
    local row = redis.call('HMGET', KEYS[2], 'c' .. e, 'f' .. e, 's' .. e)
    calls = calls + tonumber(row[1] or '0')
    failures = failures + tonumber(row[2] or '0')
    slows = slows + tonumber(row[3] or '0')
  end
  return calls, failures, slows
end
local function remaining()
  if st == 4 then return 'inf' end
  if st ~= 1 then return '0' end
  local left = tonumber(redis.call('HGET', KEYS[1], 'ou') or '0') - now
  if left < 0 then left = 0 end
  return string.format('%.6f', left)
end
"""

# KEYS[1] state, KEYS[2] window.  ARGV[1..9] config.
# Returns {admission, state, remaining}: admission -1 closed, -2 unrecorded, -3 metrics only,
# -4 rejected, >= 0 a half-open probe of that generation.
BREAKER_ADMIT = (
    _BREAKER_PRELUDE
    + """
redis.call('PEXPIRE', KEYS[1], ttl)
if st == 1 and now >= tonumber(redis.call('HGET', KEYS[1], 'ou') or '0') then enter(2) end
if st == 0 then return {-1, st, '0'} end
if st == 3 then return {-2, st, '0'} end
if st == 5 then return {-3, st, '0'} end
if st == 2 then
  if tonumber(redis.call('HGET', KEYS[1], 'pr') or '0') < max_probes then
    redis.call('HINCRBY', KEYS[1], 'pr', 1)
    return {tonumber(redis.call('HGET', KEYS[1], 'gen')), st, '0'}
  end
end
redis.call('HINCRBY', KEYS[1], 'tj', 1)
return {-4, st, remaining()}
"""
)

# KEYS[1] state, KEYS[2] window.  ARGV[1..9] config, ARGV[10] admission, ARGV[11] closed-path
# successes batched since the last round trip, ARGV[12] outcome (0 success, 1 failure,
# 2 ignored, -1 none: a flush only), ARGV[13] slow (0/1).  Returns {state, remaining}.
BREAKER_RECORD = (
    _BREAKER_PRELUDE
    + """
local admission = tonumber(ARGV[10])
local batched = tonumber(ARGV[11])
local outcome = tonumber(ARGV[12])
local slow = tonumber(ARGV[13]) == 1 and outcome ~= 2
local epoch = math.floor(now / width)
local last = tonumber(redis.call('HGET', KEYS[1], 'le') or tostring(epoch))
if epoch > last then
  for e = last - buckets + 1, math.min(last, epoch - buckets) do
    redis.call('HDEL', KEYS[2], 'c' .. e, 'f' .. e, 's' .. e)
  end
end
redis.call('HSET', KEYS[1], 'le', epoch)
local counted = batched
if outcome == 0 or outcome == 1 then counted = counted + 1 end
if counted > 0 then
  redis.call('HINCRBY', KEYS[2], 'c' .. epoch, counted)
  redis.call('HINCRBY', KEYS[1], 'tr', counted)
end
if outcome == 1 then
  redis.call('HINCRBY', KEYS[2], 'f' .. epoch, 1)
  redis.call('HINCRBY', KEYS[1], 'tf', 1)
end
if slow then
  redis.call('HINCRBY', KEYS[2], 's' .. epoch, 1)
  redis.call('HINCRBY', KEYS[1], 'ts', 1)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if admission >= 0 and st == 2 and admission == tonumber(redis.call('HGET', KEYS[1], 'gen')) then
  redis.call('HINCRBY', KEYS[1], 'pr', -1)
  if outcome == 1 or slow then
    enter(1)
  elseif outcome == 0 then
    if redis.call('HINCRBY', KEYS[1], 'ps', 1) >= successes_needed then enter(0) end
  end
elseif admission == -1 and st == 0 and (outcome == 1 or slow) then
  local calls, failures, slows = window(epoch)
  if calls >= minimum and (failures >= threshold * calls
      or (slow_threshold <= 1 and slows >= slow_threshold * calls)) then
    enter(1)
  end
end
return {st, remaining()}
"""
)

# KEYS[1] state, KEYS[2] window.  ARGV[1..9] config, ARGV[10] target state code.
BREAKER_SET_STATE = (
    _BREAKER_PRELUDE
    + """
enter(tonumber(ARGV[10]))
redis.call('PEXPIRE', KEYS[1], ttl)
return {st, remaining()}
"""
)

# KEYS[1] state, KEYS[2] window.  ARGV[1..9] config.
# Returns {state, remaining, window calls, failures, slow, then lifetime requests, failures,
# slow calls, rejections}.
BREAKER_STATS = (
    _BREAKER_PRELUDE
    + """
if st == 1 and now >= tonumber(redis.call('HGET', KEYS[1], 'ou') or '0') then enter(2) end
local calls, failures, slows = window(math.floor(now / width))
local totals = redis.call('HMGET', KEYS[1], 'tr', 'tf', 'ts', 'tj')
return {st, remaining(), calls, failures, slows,
        tonumber(totals[1] or '0'), tonumber(totals[2] or '0'),
        tonumber(totals[3] or '0'), tonumber(totals[4] or '0')}
"""
)
