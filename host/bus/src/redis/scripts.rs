//! The Lua scripts of the Redis backend: each runs on one owner's slot.

/// Commits a handler's effects atomically on the owner's slot. See `commit` for ARGV.
///
/// In order: the fence (refused whole if stale); the ack, which is also the check that
/// the message is still pending (nothing is written before it); for a relayed message,
/// the duplicate check; the state writes and the outbox; then, in one commit in
/// [`TRIM_EVERY`], the trim of acknowledged entries (kept until then rather than deleted one
/// by one: deleting an entry walks its stream node, which cost more than the rest of the
/// commit) and of expired seen ids. Direct sends (`x/...` ids) are never relayed, so never
/// arrive twice: only relayed ids are looked up and recorded.
pub(super) const COMMIT_LUA: &str = r#"
local q, state, outbox, seen, seq, lease, backlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ack, mid, now, owner, fence = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if fence ~= '' then
  local held = redis.call('GET', lease)
  if not held or string.match(held, '^%S+ (%d+)$') ~= fence then return redis.error_reply('STALE') end
end
if ack ~= '' then
  -- The unique id the acknowledged message carries (field 'm'): given by the bus that
  -- read the message, else read here.
  if mid == '' then
    local entry = redis.call('XRANGE', q, ack, ack)
    if entry[1] then
      local f = entry[1][2]
      for k = 1, #f, 2 do
        if f[k] == 'm' then mid = f[k + 1] end
      end
    end
  end
  -- The ack is the pending check, before anything is written: a message no longer
  -- pending was committed already and is refused whole.
  if redis.call('XACK', q, 'g', ack) == 0 then return redis.error_reply('NOTPENDING') end
  redis.call('DECR', backlog)
end
-- Only a message relayed from an outbox (an id other than 'x/...') can arrive twice, so
-- only those are looked up and remembered.
local relayed = nil
if mid ~= '' and string.sub(mid, 1, 2) ~= 'x/' then relayed = mid end
if relayed and redis.call('ZSCORE', seen, relayed) then
  redis.call('XDEL', q, ack)
  return 'DUPLICATE'
end
local i = 6
local writes = tonumber(ARGV[i]); i = i + 1
for _ = 1, writes do
  if ARGV[i + 1] == 's' then
    redis.call('HSET', state, ARGV[i], ARGV[i + 2])
  else
    redis.call('HDEL', state, ARGV[i])
  end
  i = i + 3
end
local sends = tonumber(ARGV[i]); i = i + 1
if sends > 0 then
  local n = redis.call('INCR', seq)
  for s = 1, sends do
    redis.call('XADD', outbox, '*', 'to', ARGV[i], 'k', ARGV[i + 1], 'b', ARGV[i + 2], 'f', ARGV[i + 3],
      'h', ARGV[i + 4], 'm', owner .. '/' .. n .. '/' .. s)
    i = i + 5
  end
end
if relayed then redis.call('ZADD', seen, now, relayed) end
if ack ~= '' and ARGV[i + 1] == '1' then
  -- Every entry older than the oldest one pending (or than this one, if none is) was
  -- delivered and acknowledged: whole stream nodes of them go.
  local oldest = redis.call('XPENDING', q, 'g', '-', '+', 1)[1]
  redis.call('XTRIM', q, 'MINID', '~', oldest and oldest[1] or ack)
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[i]))
end
return 'OK'
"#;

/// Puts a dead letter (by its original id, ARGV[1]) back at the end of its queue and
/// returns the new id and the lease holder (whose doorbell the caller rings); nothing if
/// there is none.
pub(super) const REPLAY_LUA: &str = r#"
local q, dead, lease, backlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
for _, entry in ipairs(redis.call('XRANGE', dead, '-', '+')) do
  local f, keep, match = entry[2], {}, false
  for k = 1, #f, 2 do
    if f[k] == 'id' then
      match = (f[k + 1] == ARGV[1])
    elseif f[k] ~= 'err' then
      table.insert(keep, f[k]); table.insert(keep, f[k + 1])
    end
  end
  if match then
    local id = redis.call('XADD', q, '*', unpack(keep))
    redis.call('INCR', backlog)
    redis.call('XDEL', dead, entry[1])
    local held = redis.call('GET', lease)
    if held then return {id, string.match(held, '^(%S+) ')} end
    return {id}
  end
end
return {}
"#;

/// Moves a pending message to the queue's dead letters, with its error, and acks it. A
/// queue keeps its last [`crate::MAX_DEAD_LETTERS`] or so (ARGV[3]; trimmed by whole
/// stream nodes), so a module that keeps failing cannot grow Redis without bound.
pub(super) const DEAD_LETTER_LUA: &str = r#"
local q, dead, backlog, id, err = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]
local p = redis.call('XPENDING', q, 'g', id, id, 1)
if #p == 0 then return redis.error_reply('NOTPENDING') end
local entry = redis.call('XRANGE', q, id, id)
local fields = entry[1][2]
table.insert(fields, 'id')
table.insert(fields, id)
table.insert(fields, 'err')
table.insert(fields, err)
redis.call('XADD', dead, 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
redis.call('XACK', q, 'g', id)
redis.call('DECR', backlog)
redis.call('XDEL', q, id)
return 'OK'
"#;

/// Takes or renews a lease: `holder token` with an expiry; a new holder gets the next
/// fencing token. Returns the token, or nil while another holder's lease is live.
pub(super) const ACQUIRE_LUA: &str = r#"
local held = redis.call('GET', KEYS[1])
local token
if held then
  local holder, t = string.match(held, '^(%S+) (%d+)$')
  if holder ~= ARGV[1] then return false end
  token = tonumber(t)
else
  token = redis.call('INCR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"#;

/// Renews (ARGV[3] = 'renew') or releases a lease if it is still the caller's.
pub(super) const LEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Gives an account name its player id, creating it once.
pub(super) const ACCOUNT_LUA: &str = r#"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
"#;

/// Says a member (ARGV[1]) of a role is alive until ARGV[2] (ms), the time being ARGV[3],
/// and with ARGV[4] replaces its report. KEYS: the role's members (a sorted set of
/// expiries) and their reports (a hash). A member whose membership had lapsed (expired or
/// left) comes back without the report it had.
pub(super) const HEARTBEAT_LUA: &str = r#"
local members, reports = KEYS[1], KEYS[2]
local instance, expiry, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local alive_until = redis.call('ZSCORE', members, instance)
if not alive_until or tonumber(alive_until) <= now then redis.call('HDEL', reports, instance) end
redis.call('ZADD', members, expiry, instance)
if #ARGV >= 4 then redis.call('HSET', reports, instance, ARGV[4]) end
return 1
"#;

/// The live members of a role that have a report, with it, as a flat list (instance,
/// report, ...), the time being ARGV[1]; drops expired members and the reports of members
/// no longer live. KEYS: as HEARTBEAT_LUA's.
pub(super) const REPORTS_LUA: &str = r#"
local members, reports = KEYS[1], KEYS[2]
redis.call('ZREMRANGEBYSCORE', members, '-inf', ARGV[1])
local live = {}
local all = redis.call('HGETALL', reports)
for k = 1, #all, 2 do
  if redis.call('ZSCORE', members, all[k]) then
    table.insert(live, all[k]); table.insert(live, all[k + 1])
  else
    redis.call('HDEL', reports, all[k])
  end
end
return live
"#;
