import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Every Lua script of the Redis registry touches the keys of one user only, all under one hash
 * tag, so each runs on one Cluster node. `LIVE_SESSIONS` cannot know the members in advance, so
 * it builds their hash names from its index key (`<user>sessions` -> `<user>s:<id>`); deriving
 * them from a declared key keeps the tag, and any ioredis `keyPrefix`, of the declared keys.
 */

/** The last part of the index key, which `LIVE_SESSIONS` strips to find the user's keys. */
export const INDEX_SUFFIX = 'sessions';

/**
 * The user's live sessions and the version of their tracked set, read in one step.
 * KEYS: index (`<user>sessions`), version. Returns [version, id, createdAt, tracked,
 * instanceId or nil, pool or nil, id, ...]; drops from the index the members whose hash has
 * expired (they were not live, so the version does not change). A hash written before pools
 * has no `pool`: nil, read as the default pool.
 */
const LIVE_SESSIONS = `
local user = string.sub(KEYS[1], 1, -${INDEX_SUFFIX.length + 1})
local out = { redis.call('GET', KEYS[2]) or '0' }
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local fields = redis.call('HMGET', user .. 's:' .. id, 'createdAt', 'tracked', 'instanceId',
    'pool')
  if fields[1] then
    out[#out + 1] = id
    out[#out + 1] = fields[1]
    out[#out + 1] = fields[2]
    out[#out + 1] = fields[3]
    out[#out + 1] = fields[4]
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`;

/**
 * Applies an admission plan if the tracked set is still the one the decision saw.
 * KEYS: index, version, new session hash, then per evicted session its hash and its eviction
 * record. ARGV: expected version, new id, createdAt, tracked ('1'/'0'), instanceId ('' when
 * none), has instance ('1'/'0'), session TTL ms, record TTL ms, now ms, pool, then the evicted
 * ids. The version only moves when the tracked set changes, so untracked (exempt,
 * unrestricted) logins never make each other retry. It is one version for all of the user's
 * pools: a commit in one pool makes a concurrent admission in another read and decide again.
 */
const COMMIT_ADMISSION = `
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 'CONFLICT' end
local changed = ARGV[4] == '1' or redis.call('HGET', KEYS[3], 'tracked') == '1'
for j = 1, #ARGV - 10 do
  local id, session, record = ARGV[10 + j], KEYS[2 + 2 * j], KEYS[3 + 2 * j]
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
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if changed then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
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
