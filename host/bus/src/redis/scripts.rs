//! The Lua scripts of the Redis backend: each runs on one owner's slot.

/// Puts request `rkey` (in `done`, a hash of outcomes) at the newest end of its window —
/// `doneat` (a sorted set by increasing score) for a client's key, `hostat` for one the
/// host made up — and drops the oldest beyond `maxreq` (`maxhost`).
macro_rules! record_request_lua {
    () => {
        r#"
  -- Keys the host made up (starting with a space, which a client's cannot) have a window
  -- of their own, so that frames without a key never push a client's key out.
  local win, cap = doneat, maxreq
  if string.sub(rkey, 1, 1) == ' ' then win, cap = hostat, maxhost end
  local top = redis.call('ZRANGE', win, -1, -1, 'WITHSCORES')
  local score = now
  if top[2] and tonumber(top[2]) >= now then score = tonumber(top[2]) + 1 end
  redis.call('ZADD', win, score, rkey)
  local extra = redis.call('ZCARD', win) - cap
  if extra > 0 then
    local old = redis.call('ZPOPMIN', win, extra)
    for k = 1, #old, 2 do redis.call('HDEL', done, old[k]) end
  end
"#
    };
}

/// Commits a run of handlers' effects on one owner's slot, in order, each atomically
/// (see `commit_all` for ARGV): one script call for a read batch's messages.
///
/// First the fence, once (the whole run is refused if stale). Then for each commit, in
/// order: the ack, which is also the check that the message is still pending (nothing of
/// the commit is written before it); for a relayed message, the duplicate check; the state
/// writes and the outbox; the pushes (each with the owner's next sequence number, the log
/// capped to its newest); the request's outcome, kept in the owner's window of requests (a
/// request already applied, or this attempt declared void, is refused before anything is
/// written). The first commit refused ends the run: the later ones were computed on the
/// state it would have left, so they are not tried (their messages stay pending). Then, if
/// asked (one commit in [`TRIM_EVERY`]), the trim of acknowledged entries (kept until then
/// rather than deleted one by one: deleting an entry walks its stream node, which cost more
/// than the rest of the commit) and of expired seen ids. Direct sends (`x/...` ids) are
/// never relayed, so never arrive twice: only relayed ids are looked up and recorded.
///
/// Returns one status a commit tried: `OK`, `OK:<last push number>`, or the refusal that
/// ended the run — `NOTPENDING`, `DUPLICATE` (a relayed copy: acknowledged, nothing
/// applied), `APPLIED` or `VOID` (the request was decided before).
pub(super) const COMMIT_LUA: &str = concat!(
    r#"
local q, state, outbox, seen, seq, lease, backlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local push, pseq, done, doneat, hostat = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local now, owner, fence, retention, trim = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local maxreq, maxpush, maxhost, direct = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), ARGV[9]
local count = tonumber(ARGV[10])
if fence ~= '' then
  local held = redis.call('GET', lease)
  if not held or string.match(held, '^%S+ (%d+)$') ~= fence then return redis.error_reply('STALE') end
end
-- One commit whose arguments start at ARGV[i]: its status, and where the next one starts.
local function commit(i)
  local ack, mid = ARGV[i], ARGV[i + 1]; i = i + 2
  local writes = tonumber(ARGV[i]); local wstart = i + 1; i = i + 1 + 3 * writes
  local sends = tonumber(ARGV[i]); local sstart = i + 1; i = i + 1 + 5 * sends
  local pushes = tonumber(ARGV[i]); local pstart = i + 1; i = i + 1 + pushes
  local rkey, rattempt, routcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
  -- A request decided before is refused whole: applied already, or this attempt declared void.
  if rkey ~= '' then
    local v = redis.call('HGET', done, rkey)
    if v then
      if string.sub(v, 1, 5) ~= 'void:' then return 'APPLIED', i end
      if string.find(v, ',' .. rattempt .. ',', 1, true) then return 'VOID', i end
    end
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
    if redis.call('XACK', q, 'g', ack) == 0 then return 'NOTPENDING', i end
    redis.call('DECR', backlog)
  end
  -- Only a message relayed from an outbox (an id other than 'x/...') can arrive twice on
  -- one Redis, so only those are looked up and remembered; on a cluster, whose client
  -- sends a timed-out command again, direct sends too (`direct`).
  local relayed = nil
  if mid ~= '' and (direct == '1' or string.sub(mid, 1, 2) ~= 'x/') then relayed = mid end
  if relayed and redis.call('ZSCORE', seen, relayed) then
    redis.call('XDEL', q, ack)
    return 'DUPLICATE', i
  end
  for w = wstart, wstart + 3 * (writes - 1), 3 do
    if ARGV[w + 1] == 's' then
      redis.call('HSET', state, ARGV[w], ARGV[w + 2])
    else
      redis.call('HDEL', state, ARGV[w])
    end
  end
  if sends > 0 then
    local n = redis.call('INCR', seq)
    for s = 1, sends do
      local a = sstart + 5 * (s - 1)
      redis.call('XADD', outbox, '*', 'to', ARGV[a], 'k', ARGV[a + 1], 'b', ARGV[a + 2], 'f', ARGV[a + 3],
        'h', ARGV[a + 4], 'm', owner .. '/' .. n .. '/' .. s)
    end
  end
  local last = 0
  for p = pstart, pstart + pushes - 1 do
    last = redis.call('INCR', pseq)
    redis.call('XADD', push, 'MAXLEN', '~', maxpush, last .. '-1', 'f', ARGV[p])
  end
  if relayed then redis.call('ZADD', seen, now, relayed) end
  if rkey ~= '' then
    redis.call('HSET', done, rkey, routcome)
"#,
    record_request_lua!(),
    r#"
  end
  if last > 0 then return 'OK:' .. last, i end
  return 'OK', i
end
local out = {}
local acked = nil
local i = 11
for c = 1, count do
  local ack = ARGV[i]
  local status
  status, i = commit(i)
  table.insert(out, status)
  if string.sub(status, 1, 2) ~= 'OK' then break end
  if ack ~= '' then acked = ack end
end
if acked and trim == '1' then
  -- Every entry older than the oldest one pending (or than the last acknowledged, if none
  -- is) was delivered and acknowledged: whole stream nodes of them go.
  local oldest = redis.call('XPENDING', q, 'g', '-', '+', 1)[1]
  redis.call('XTRIM', q, 'MINID', '~', oldest and oldest[1] or acked)
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - retention)
end
return out
"#
);

/// Finds out what became of request ARGV[1]'s attempt ARGV[2]: `{1, outcome}` if the
/// request was applied; else `{0}`, and the attempt is recorded void, so that a commit of
/// it still on its way is refused (COMMIT_LUA's `VOID`). KEYS: done, doneat, hostat;
/// ARGV[3] the time, ARGV[4] and ARGV[5] the windows.
pub(super) const RESOLVE_LUA: &str = concat!(
    r#"
local done, doneat, hostat = KEYS[1], KEYS[2], KEYS[3]
local rkey, attempt, now, maxreq, maxhost = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HGET', done, rkey)
if v and string.sub(v, 1, 5) ~= 'void:' then return {1, v} end
if not v then v = 'void:,' end
redis.call('HSET', done, rkey, v .. attempt .. ',')
"#,
    record_request_lua!(),
    r#"
return {0}
"#
);

/// The keys of the client's requests recorded as applied (not void, not the host's own).
/// KEYS: done.
pub(super) const REQUESTS_LUA: &str = r#"
local applied = {}
local all = redis.call('HKEYS', KEYS[1])
for _, k in ipairs(all) do
  local v = redis.call('HGET', KEYS[1], k)
  if string.sub(v, 1, 5) ~= 'void:' and string.sub(k, 1, 1) ~= ' ' then table.insert(applied, k) end
end
return applied
"#;

/// Moves frames (host messages, ARGV[6..]) of the queue into the push log, fenced by
/// ARGV[1]: each still pending is acknowledged and, unless it is a copy of one logged
/// before (relayed twice; on a cluster, `direct` = ARGV[5], also sent twice), logged with
/// the next sequence number. Returns `{seq, frame, ...}` of those logged, and trims what
/// was acknowledged. KEYS: queue, push log, push counter, seen ids, lease, backlog;
/// ARGV[2] the time, ARGV[3] the log's cap, ARGV[4] the seen ids' retention (ms).
pub(super) const TAKE_PUSHES_LUA: &str = r#"
local q, push, pseq, seen, lease, backlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local held = redis.call('GET', lease)
if not held or string.match(held, '^%S+ (%d+)$') ~= ARGV[1] then return redis.error_reply('STALE') end
local now, maxpush, retention, direct = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local out = {}
local newest = nil
for a = 6, #ARGV do
  local id = ARGV[a]
  local entry = redis.call('XRANGE', q, id, id)[1]
  if entry and redis.call('XACK', q, 'g', id) == 1 then
    newest = id
    redis.call('DECR', backlog)
    local body, mid = '', ''
    local f = entry[2]
    for k = 1, #f, 2 do
      if f[k] == 'b' then body = f[k + 1] elseif f[k] == 'm' then mid = f[k + 1] end
    end
    local copy = false
    if mid ~= '' and (direct == '1' or string.sub(mid, 1, 2) ~= 'x/') then
      if redis.call('ZSCORE', seen, mid) then copy = true else redis.call('ZADD', seen, now, mid) end
    end
    if not copy then
      local n = redis.call('INCR', pseq)
      redis.call('XADD', push, 'MAXLEN', '~', maxpush, n .. '-1', 'f', body)
      table.insert(out, n); table.insert(out, body)
    end
  end
end
-- Every entry older than the oldest one pending (or than the newest taken) is done with.
local oldest = redis.call('XPENDING', q, 'g', '-', '+', 1)[1]
local keep = (oldest and oldest[1]) or newest
if keep then redis.call('XTRIM', q, 'MINID', '~', keep) end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - retention)
return out
"#;

/// The push log after sequence number ARGV[1]: `{last, acked, seq, frame, ...}`. KEYS:
/// the log, the push counter, the acknowledged mark.
pub(super) const PUSHES_LUA: &str = r#"
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local acked = tonumber(redis.call('GET', KEYS[3]) or '0')
local out = {last, acked}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], (tonumber(ARGV[1]) + 1) .. '-0', '+')) do
  local seq = tonumber(string.match(e[1], '^(%d+)-'))
  table.insert(out, seq); table.insert(out, e[2][2])
end
return out
"#;

/// The client acknowledged every push up to ARGV[1]: they leave the log, and the mark
/// moves (never back, never past the last push). KEYS: as PUSHES_LUA's.
pub(super) const TRIM_PUSHES_LUA: &str = r#"
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local upto = math.min(tonumber(ARGV[1]), last)
local acked = tonumber(redis.call('GET', KEYS[3]) or '0')
if upto > acked then
  redis.call('SET', KEYS[3], upto)
  redis.call('XTRIM', KEYS[1], 'MINID', (upto + 1) .. '-0')
end
return 1
"#;

/// Takes a lease from the holder named in ARGV[1] (`holder token`, exactly as it is) for
/// ARGV[2], for ARGV[3] ms, with the next fencing token; nil if the lease is another now.
pub(super) const TAKE_OVER_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. token, 'PX', ARGV[3])
return token
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
