package cluster

import "github.com/redis/go-redis/v9"

// Registry layout (see docs/ARCHITECTURE.md, "Cluster"), P being the
// prefix (Options.Prefix, "msgr" by default). Every script touches one
// key, so the registry works on Redis Cluster too; the hash tags keep a
// user's or a node's keys in one slot. Scripts read the server's clock
// (TIME) so that nodes' clocks need not agree.
//
//	P:{u:USER}            ZSET  member NODE|DEVICE, score = expiry (ms, Redis clock)
//	P:nodes               ZSET  member NODE, score = heartbeat expiry
//	P:{n:NODE}:devices    SET   USER/DEVICE attached to NODE (for reaping)
//	P:fwd:NODE            channel: events and nudges for NODE
//	P:bcast               channel: member-cache invalidations, nudge-all
type keys struct{ prefix string }

func (k keys) nodes() string                  { return k.prefix + ":nodes" }
func (k keys) bcast() string                  { return k.prefix + ":bcast" }
func (k keys) user(user string) string        { return k.prefix + ":{u:" + user + "}" }
func (k keys) nodeDevices(node string) string { return k.prefix + ":{n:" + node + "}:devices" }
func (k keys) fwdPrefix() string              { return k.prefix + ":fwd:" }
func (k keys) channel(node string) string     { return k.fwdPrefix() + node }

const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// attachScript adds or refreshes NODE|DEVICE in the user's set and drops
// expired entries. KEYS[1] user key; ARGV[1] member, ARGV[2] ttl ms.
// Returns {added, live entries}.
var attachScript = redis.NewScript(luaNow + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return {added, redis.call('ZCARD', KEYS[1])}
`)

// detachScript removes NODE|DEVICE. KEYS[1] user key; ARGV[1] member.
// Returns {removed, live entries left}.
var detachScript = redis.NewScript(luaNow + `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {removed, redis.call('ZCARD', KEYS[1])}
`)

// onlineScript counts the user's live entries. KEYS[1] user key.
var onlineScript = redis.NewScript(luaNow + `
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// routeScript publishes ARGV[2] to every node other than ARGV[1] holding a
// live entry of the user, on channel ARGV[3]..node, in one round trip.
// KEYS[1] user key. Returns
// {node, receivers, ...}; receivers 0 means the node is not subscribed.
var routeScript = redis.NewScript(luaNow + `
local ms = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local seen, out = {}, {}
for _, m in ipairs(ms) do
  local node = string.match(m, '^([^|]+)|')
  if node and node ~= ARGV[1] and not seen[node] then
    seen[node] = true
    out[#out + 1] = node
    out[#out + 1] = redis.call('PUBLISH', ARGV[3] .. node, ARGV[2])
  end
end
return out
`)

// heartbeatScript refreshes this node's heartbeat and lists the nodes
// whose heartbeat expired. KEYS[1] nodes key; ARGV[1] node, ARGV[2] ttl ms.
// Returns {now, 1 if this node's own heartbeat had expired or was missing,
// dead node, its expiry, ...}.
var heartbeatScript = redis.NewScript(luaNow + `
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
local expired = 0
if (not prev) or tonumber(prev) <= now then expired = 1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local out = {now, expired}
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')) do
  out[#out + 1] = v
end
return out
`)
