//! The Lua scripts that make the shared store's multi-key steps atomic:
//! Redis runs each one without interleaving another client's commands.

/// One failed login more against every key (ARGV: now, cool-down, then
/// each key's threshold), atomically: a lock that has run out starts a
/// fresh count; reaching the threshold locks until now + cool-down; each
/// counter expires one cool-down after its last failure (the checks in
/// flight are left alone). 1 if a key is locked now.
pub(super) const RECORD_FAILURES: &str = r"
local now, cooldown = tonumber(ARGV[1]), tonumber(ARGV[2])
local locked_any = 0
for i, key in ipairs(KEYS) do
  local locked = tonumber(redis.call('HGET', key, 'locked_until') or '0')
  if locked ~= 0 and locked <= now then redis.call('HDEL', key, 'count', 'locked_until') end
  local count = redis.call('HINCRBY', key, 'count', 1)
  if count >= tonumber(ARGV[2 + i]) then
    redis.call('HSET', key, 'locked_until', now + cooldown)
    locked_any = 1
  end
  redis.call('EXPIRE', key, cooldown)
end
return locked_any
";

/// Reserves one credential check against every key (ARGV: now, cool-down,
/// the reservation's id, then each key's threshold), atomically: -1 while
/// a key is locked or at its threshold, -2 while its failures plus the
/// checks in flight reach it; otherwise the first key's failures. A check
/// in flight is a field `p:<id>` holding when it lapses (now + cool-down),
/// so a release is exact and idempotent: one repeated, or one of a
/// reservation whose answer was lost, takes back no other check's place.
pub(super) const RESERVE_ATTEMPT: &str = r"
local now, cooldown, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local first = -1
for i, key in ipairs(KEYS) do
  local locked = tonumber(redis.call('HGET', key, 'locked_until') or '0')
  if locked ~= 0 and locked <= now then
    redis.call('HDEL', key, 'count', 'locked_until')
    locked = 0
  end
  local count = tonumber(redis.call('HGET', key, 'count') or '0')
  local pending = 0
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    if string.sub(fields[j], 1, 2) == 'p:' then
      if tonumber(fields[j + 1]) <= now then redis.call('HDEL', key, fields[j])
      else pending = pending + 1 end
    end
  end
  local threshold = tonumber(ARGV[3 + i])
  if locked > now or count >= threshold then return -1 end
  if count + pending >= threshold then return -2 end
  if i == 1 then first = count end
end
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, 'p:' .. id, now + cooldown)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, cooldown) end
end
return first
";

/// Ends the check reserved as ARGV[1] on every key.
pub(super) const RELEASE_ATTEMPTS: &str = r"
for _, key in ipairs(KEYS) do
  redis.call('HDEL', key, 'p:' .. ARGV[1])
  if redis.call('HLEN', key) == 0 then redis.call('DEL', key) end
end
return 0
";

/// Adds minted tokens (ARGV: now, max, then jti, exp pairs) to a refresh
/// token's lineage, a hash beside its record (KEYS: record, lineage), if
/// the record is still there and the lineage has room; 1 if added.
pub(super) const EXTEND_REFRESH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local lineage = redis.call('HGETALL', KEYS[2])
local live = 0
for i = 1, #lineage, 2 do
  if tonumber(lineage[i + 1]) < now then redis.call('HDEL', KEYS[2], lineage[i])
  else live = live + 1 end
end
if live + (#ARGV - 2) / 2 > max then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
return 1
";

/// Replaces a refresh token's record (KEYS[1]) with a marker (ARGV[2]) if
/// it is still, byte for byte, the one read (ARGV[1]); its expiry is kept.
/// Returns 1 if replaced: of requests racing with one token, one wins.
pub(super) const REPLACE_REFRESH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
";

/// Records a token derived from another (KEYS: the other's revocation,
/// its derived tokens' hash; ARGV: jti, exp, seconds to keep): 0, and
/// nothing written, if the other is revoked already. The hash is kept as
/// long as its longest-lived entry.
pub(super) const DERIVE_TOKEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
";

/// Deletes a refresh token's record and lineage (KEYS: record, lineage)
/// and returns both: nothing can be added to the lineage after this.
pub(super) const DELETE_REFRESH: &str = r"
local record = redis.call('GET', KEYS[1])
local lineage = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return {record or false, lineage}
";

/// One request against a GCRA bucket (ARGV: emission interval and
/// capacity, in microseconds and requests) on Redis's clock, so instances
/// need not agree on the time. Returns admitted (1/0), requests left,
/// microseconds until the next request fits and until the bucket is full.
pub(super) const TAKE_RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - capacity * emission
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / emission), 0, math.ceil(new_tat - now)}
";

/// Writes imported principals (KEYS: the issuer's hash; ARGV: login,
/// record pairs), each replacing its login's record. Returns how many
/// logins were new and how many records changed.
pub(super) const PUT_PRINCIPALS: &str = r"
local added, changed = 0, 0
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old then added = added + 1 elseif old ~= ARGV[i + 1] then changed = changed + 1 end
  if old ~= ARGV[i + 1] then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return {added, changed}
";
