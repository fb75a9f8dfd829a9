import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

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
 * Applies an admission plan if the tracked set is still the one the decision saw.
 * KEYS: index, version, new session hash, then per evicted session its hash and its eviction
 * record. ARGV: expected version, new id, createdAt, tracked ('1'/'0'), instanceId ('' when
 * none), has instance ('1'/'0'), session TTL ms, record TTL ms, now ms, pool, reply with the
 * sessions ('1'/'0'), the number n of attributes, n pairs of field (`a:<name>`) and value, then
 * the evicted ids. Returns 'CONFLICT'; else 'OK', or with the reply flag the user's live
 * sessions after the commit as `LIVE_SESSIONS` returns them (for the next admission of the
 * same user, which then need not read them). A re-admitted id starts afresh: its old fields,
 * attributes and last use go. The version only moves when the tracked set changes, so
 * untracked (exempt, unrestricted) logins never make each other retry.
 * It is one version for all of the user's pools: a commit in one pool makes a concurrent
 * admission in another read and decide again.
 */
const COMMIT_ADMISSION = `${LIVE_FUNCTION}
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 'CONFLICT' end
local changed = ARGV[4] == '1' or redis.call('HGET', KEYS[3], 'tracked') == '1'
local evicted = 12 + 2 * tonumber(ARGV[12])
for j = 1, #ARGV - evicted do
  local id, session, record = ARGV[evicted + j], KEYS[2 + 2 * j], KEYS[3 + 2 * j]
  redis.call('ZREM', KEYS[1], id)
  if redis.call('DEL', session) == 1 then
    changed = true
    redis.call('HSET', record, 'at', ARGV[9], 'byInstance', ARGV[5], 'bySession', ARGV[2],
      'reason', 'evicted')
    redis.call('PEXPIRE', record, ARGV[8])
  end
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'createdAt', ARGV[3], 'tracked', ARGV[4], 'pool', ARGV[10])
if ARGV[6] == '1' then redis.call('HSET', KEYS[3], 'instanceId', ARGV[5]) end
if evicted > 12 then redis.call('HSET', KEYS[3], unpack(ARGV, 13, evicted)) end
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if changed then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
if ARGV[11] == '1' then return live(KEYS[1], KEYS[2]) end
return 'OK'
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
export const removeSession = script(REMOVE_SESSION);
export const getSession = script(GET_SESSION);
export const touchSession = script(TOUCH_SESSION);
export const removeAllSessions = script(REMOVE_ALL_OF);
