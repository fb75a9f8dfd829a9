import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DEFAULT_POOL } from './decide.ts';

/**
 * Every Lua script of the Redis registry touches the keys of one user only, all under one hash
 * tag, so each runs on one Cluster node. `LIVE_SESSIONS` and `REMOVE_ALL_OF` cannot know the
 * members in advance, so they build their hash names from the index key (`<user>sessions` ->
 * `<user>s:<id>`); deriving them from a declared key keeps the tag, and any ioredis
 * `keyPrefix`, of the declared keys. No script touches the `sid:` lookups (another slot).
 */

/** The last part of the index key, which the scripts strip to find the user's keys. */
export const INDEX_SUFFIX = 'sessions';

/**
 * Put before an attribute's name in the session hash, so that no attribute can overwrite the
 * registry's own fields (`createdAt`, `tracked`, `instanceId`, `pool`, `lastSeenAt`).
 */
export const ATTRIBUTE_PREFIX = 'a:';

/**
 * Lua: `live(index, version)` returns the user's live sessions and the version of their tracked
 * set: [version, [id, PTTL ms, field, value, ...], ...], each session's whole hash (HGETALL),
 * so fields added later (pool, lastSeenAt, attributes) are simply absent in hashes written
 * before them. Drops from the index the members whose hash has expired (they were not live, so
 * the version does not change).
 */
const LIVE_FUNCTION = `
local function live(index, version)
  local user = string.sub(index, 1, -${INDEX_SUFFIX.length + 1})
  local out = { redis.call('GET', version) or '0' }
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local hash = user .. 's:' .. id
    local fields = redis.call('HGETALL', hash)
    if #fields > 0 then
      table.insert(fields, 1, redis.call('PTTL', hash))
      table.insert(fields, 1, id)
      out[#out + 1] = fields
    else
      redis.call('ZREM', index, id)
    end
  end
  return out
end
`;

/** The user's live sessions, read in one step. KEYS: index (`<user>sessions`), version. */
const LIVE_SESSIONS = `${LIVE_FUNCTION}
return live(KEYS[1], KEYS[2])
`;

/**
 * Lua: the new session's fields in ARGV from `o`, as `sessionArgs` in redis-registry.ts lays
 * them out: id, createdAt, tracked ('1'/'0'), instanceId ('' when none), has instance
 * ('1'/'0'), session TTL ms, eviction record TTL ms, now ms, pool, the number n of attributes,
 * n pairs of field (`a:<name>`) and value. Returns them and the index of the ARGV after them.
 *
 * `record(index, version, hash, s, evict)` then ends the sessions `evict` lists (each leaves an
 * eviction record) and writes the new session afresh: a re-admitted id loses its old fields,
 * attributes and last use. The version only moves when the tracked set changes, so untracked
 * (exempt, unrestricted) logins never make each other decide again. It is one version for all
 * of the user's pools.
 */
const RECORD_FUNCTION = `
local function session_args(o)
  local n = tonumber(ARGV[o + 9])
  return {
    id = ARGV[o], createdAt = ARGV[o + 1], tracked = ARGV[o + 2], instanceId = ARGV[o + 3],
    hasInstance = ARGV[o + 4] == '1', sessionTtl = ARGV[o + 5], recordTtl = ARGV[o + 6],
    now = ARGV[o + 7], pool = ARGV[o + 8], first = o + 10, last = o + 9 + 2 * n,
  }, o + 10 + 2 * n
end

local function record(index, version, hash, s, evict)
  local user = string.sub(index, 1, -${INDEX_SUFFIX.length + 1})
  local changed = s.tracked == '1' or redis.call('HGET', hash, 'tracked') == '1'
  for _, id in ipairs(evict) do
    redis.call('ZREM', index, id)
    if redis.call('DEL', user .. 's:' .. id) == 1 then
      changed = true
      local why = user .. 'evicted:' .. id
      redis.call('HSET', why, 'at', s.now, 'byInstance', s.instanceId, 'bySession', s.id,
        'reason', 'evicted')
      redis.call('PEXPIRE', why, s.recordTtl)
    end
  end
  redis.call('DEL', hash)
  redis.call('HSET', hash, 'createdAt', s.createdAt, 'tracked', s.tracked, 'pool', s.pool)
  if s.hasInstance then redis.call('HSET', hash, 'instanceId', s.instanceId) end
  if s.last >= s.first then redis.call('HSET', hash, unpack(ARGV, s.first, s.last)) end
  redis.call('PEXPIRE', hash, s.sessionTtl)
  redis.call('ZADD', index, s.createdAt, s.id)
  redis.call('PEXPIRE', index, s.sessionTtl)
  if changed then
    redis.call('INCR', version)
    redis.call('PEXPIRE', version, s.sessionTtl)
  end
end
`;

/**
 * Applies an admission plan decided in JavaScript if the tracked set is still the one the
 * decision saw. KEYS: index, version, new session hash. ARGV: expected version, reply with the
 * sessions ('1'/'0'), the new session's fields (see `RECORD_FUNCTION`), then the evicted ids.
 * Returns 'CONFLICT'; else 'OK', or with the reply flag the user's live sessions after the
 * commit as `LIVE_SESSIONS` returns them (for the next admission of the same user, which then
 * need not read them).
 */
const COMMIT_ADMISSION = `${LIVE_FUNCTION}${RECORD_FUNCTION}
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 'CONFLICT' end
local s, rest = session_args(3)
record(KEYS[1], KEYS[2], KEYS[3], s, { unpack(ARGV, rest) })
if ARGV[2] == '1' then return live(KEYS[1], KEYS[2]) end
return 'OK'
`;

/**
 * Decides and applies an admission in one step, as session-policy's `applyLimit` does (a
 * `LoginLimit` as data), so it never conflicts and never retries. KEYS: index, version, new
 * session hash. ARGV: the new session's fields (see `RECORD_FUNCTION`; tracked '1' applies
 * the limit, '0' admits untracked as an exempt or unrestricted login), then max sessions,
 * on-limit rule, scope, dry run ('1'/'0'), the number m of ignored ids, the m ids.
 * Competing are the tracked sessions of the pool, not ignored, and under `instance` scope of
 * the same instance; beyond the limit `deny-new` refuses, the others evict the oldest (or
 * least recently used) first, ties by creation then id, compared byte by byte (the JavaScript
 * order for ASCII ids; Lua's `<` on strings follows the server's locale). Returns
 * ['ADMIT' or 'DENY', the evicted ids (would-be in dry run, which ends none), the sessions as
 * `LIVE_SESSIONS` returned them before the step, how many competed (`applyLimit`'s
 * `liveSessions`; 0 for an untracked login)].
 */
const ADMIT_WITHIN_LIMIT = `${LIVE_FUNCTION}${RECORD_FUNCTION}
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local before = live(KEYS[1], KEYS[2])
local s, o = session_args(1)
local evict, count = {}, 0
if s.tracked == '1' then
  local max, on_limit, scope = tonumber(ARGV[o]), ARGV[o + 1], ARGV[o + 2]
  local ignoring = {}
  for j = 1, tonumber(ARGV[o + 4]) do ignoring[ARGV[o + 4 + j]] = true end
  local instance = nil
  if s.hasInstance then instance = s.instanceId end
  local competing = {}
  for i = 2, #before do
    local f = {}
    for j = 3, #before[i], 2 do f[before[i][j]] = before[i][j + 1] end
    local id = before[i][1]
    if f.tracked == '1' and not ignoring[id] and (f.pool or '${DEFAULT_POOL}') == s.pool
      and (scope == 'account' or f.instanceId == instance) then
      competing[#competing + 1] = {
        id = id, created = tonumber(f.createdAt), seen = tonumber(f.lastSeenAt or f.createdAt),
      }
    end
  end
  count = #competing
  local excess = count - max + 1
  if excess > 0 then
    if on_limit == 'deny-new' then return { 'DENY', {}, before, count } end
    local recent = on_limit == 'evict-least-recent'
    table.sort(competing, function(a, b)
      if recent and a.seen ~= b.seen then return a.seen < b.seen end
      if a.created ~= b.created then return a.created < b.created end
      return bytes_before(a.id, b.id)
    end)
    for j = 1, excess do evict[j] = competing[j].id end
  end
  if ARGV[o + 3] == '1' then
    record(KEYS[1], KEYS[2], KEYS[3], s, {})
    return { 'ADMIT', evict, before, count }
  end
end
record(KEYS[1], KEYS[2], KEYS[3], s, evict)
return { 'ADMIT', evict, before, count }
`;

/**
 * Ends one session without an eviction record. KEYS: index, version, session hash.
 * ARGV: id, session TTL ms. Returns 1 when the session was live, else 0.
 */
const REMOVE_SESSION = `
local tracked = redis.call('HGET', KEYS[3], 'tracked')
redis.call('ZREM', KEYS[1], ARGV[1])
if not tracked then return 0 end
redis.call('DEL', KEYS[3])
if tracked == '1' then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
`;

/**
 * One live session. KEYS: its hash. Returns [PTTL ms, field, value, ...], or nil when the hash
 * is gone (expired, removed or evicted: the hash is the truth, not the id lookup).
 */
const GET_SESSION = `
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return nil end
table.insert(fields, 1, redis.call('PTTL', KEYS[1]))
return fields
`;

/**
 * Records a use of a live session. KEYS: its hash. ARGV: when, ms. HSET keeps the hash's TTL,
 * and the version is not touched: use is not a change of the tracked set, so it never makes a
 * concurrent admission decide again. Keeps the latest use. Returns 1 when live, else 0.
 */
const TOUCH_SESSION = `
local seen = redis.call('HMGET', KEYS[1], 'createdAt', 'lastSeenAt')
if not seen[1] then return 0 end
if tonumber(ARGV[1]) > tonumber(seen[2] or seen[1]) then
  redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[1])
end
return 1
`;

/**
 * Ends every live session of a user but one, without eviction records. KEYS: index, version.
 * ARGV: has an exception ('1'/'0'), the id to keep, session TTL ms. Returns the ended ids,
 * oldest first; bumps the version when a tracked one ended.
 */
const REMOVE_ALL_OF = `
local user = string.sub(KEYS[1], 1, -${INDEX_SUFFIX.length + 1})
local ended, changed = {}, false
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if ARGV[1] ~= '1' or id ~= ARGV[2] then
    local hash = user .. 's:' .. id
    local tracked = redis.call('HGET', hash, 'tracked')
    redis.call('ZREM', KEYS[1], id)
    if tracked then
      redis.call('DEL', hash)
      ended[#ended + 1] = id
      if tracked == '1' then changed = true end
    end
  end
end
if changed then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return ended
`;

type ScriptArg = string | number;

/** Runs a script by its SHA1 and loads it on NOSCRIPT, as ioredis's own `Script` does. */
function script(lua: string) {
  const sha = createHash('sha1').update(lua).digest('hex');
  return async (redis: Redis, keys: readonly string[], args: readonly ScriptArg[]) => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.includes('NOSCRIPT')) throw error;
      return redis.eval(lua, keys.length, ...keys, ...args);
    }
  };
}

export const liveSessions = script(LIVE_SESSIONS);
export const commitAdmission = script(COMMIT_ADMISSION);
export const admitWithinLimit = script(ADMIT_WITHIN_LIMIT);
export const removeSession = script(REMOVE_SESSION);
export const getSession = script(GET_SESSION);
export const touchSession = script(TOUCH_SESSION);
export const removeAllSessions = script(REMOVE_ALL_OF);
