namespace Tollgate.Storage.Redis;

/// <summary>
/// The Lua scripts that keep limit counters in Redis. Each runs atomically in Redis, so a check and the hold it
/// writes are one step that no other instance can interleave with, and each is one round trip.
/// </summary>
/// <remarks>
/// <para>
/// Every script gets the same six keys, all of one tenant (their names share the tenant's hash tag, so a Redis
/// Cluster keeps them in one slot): 1 the tenant's holds (a sorted set of hold id by expiry, in ms), 2 what each hold
/// counts (hold id → "tenant month key|key month key|tokens|whole USD|picodollars"), 3 and 4 the tenant scope's month
/// and minute counters, 5 and 6 the key scope's. A scope without limits is switched off by its flag and its keys are
/// not touched.
/// </para>
/// <para>
/// Money is kept as whole dollars and picodollars (under 10^12) in two fields: Lua numbers are doubles, exact only
/// up to 2^53 picodollars (about USD 9,007), and a month's spend can pass that. Each part stays far below 2^53, so
/// every sum and comparison here is exact.
/// </para>
/// <para>
/// A month counter is usable only once it is "seeded": made from the ledger (PostgreSQL, the truth) with the usage
/// so far. A script that meets an unseeded month counter changes nothing and answers <c>seed</c> with the keys to
/// make; the limiter reads the ledger, runs <see cref="Seed"/> and runs the script again.
/// </para>
/// </remarks>
internal static class RedisLimitScripts
{
    private const string Common = """
        local P = 1000000000000
        local function num(v) if not v then return 0 end return tonumber(v) end
        local function fmt(x) return string.format('%.0f', x) end
        local function addm(d, p, ad, ap)
          d = d + ad
          p = p + ap
          if p >= P then p = p - P; d = d + 1 elseif p < 0 then p = p + P; d = d - 1 end
          return d, p
        end
        -- Takes a hold's tokens and cost off the held totals of the month counters it was counted in.
        local function unhold(id)
          local info = redis.call('HGET', KEYS[2], id)
          redis.call('HDEL', KEYS[2], id)
          if not info then return end
          local f = {}
          for part in string.gmatch(info .. '|', '([^|]*)|') do f[#f + 1] = part end
          local tokens, d, p = tonumber(f[3]), tonumber(f[4]), tonumber(f[5])
          for i = 1, 2 do
            local month = f[i]
            if month ~= '' and redis.call('EXISTS', month) == 1 then
              local h = redis.call('HMGET', month, 'held_tokens', 'held_d', 'held_p')
              local hd, hp = addm(num(h[2]), num(h[3]), -d, -p)
              local ht = num(h[1]) - tokens
              if ht < 0 or hd < 0 then ht, hd, hp = math.max(ht, 0), math.max(hd, 0), (hd < 0 and 0 or hp) end
              redis.call('HSET', month, 'held_tokens', fmt(ht), 'held_d', fmt(hd), 'held_p', fmt(hp))
            end
          end
        end
        local function unseeded(flags)
          local missing = {}
          for i, on in ipairs(flags) do
            local month = KEYS[1 + 2 * i]
            if on == '1' and redis.call('HGET', month, 'seeded') ~= '1' then missing[#missing + 1] = month end
          end
          return missing
        end
        """;

    /// <summary>
    /// Checks both scopes' limits against settled usage, live holds and this minute's counts (the same rules as
    /// <c>LimitRules.Check</c>) and, when the request fits, counts it in the minute and writes its hold. Answers
    /// <c>{ok|no, then per scope: month tokens, month USD, month pUSD, minute requests, minute tokens, held tokens,
    /// held USD, held pUSD}</c>, the counters as they were before the request.
    /// ARGV: now ms, hold id, hold expiry ms, tokens, cost USD, cost pUSD, then per scope (tenant, key): on, rpm,
    /// tpm, max tokens, max USD, max pUSD ('' where a limit does not apply).
    /// </summary>
    public const string Reserve = Common + "\n" + """
        local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
        for _, id in ipairs(expired) do
          unhold(id)
          redis.call('ZREM', KEYS[1], id)
        end
        local missing = unseeded({ARGV[7], ARGV[13]})
        if #missing > 0 then return {'seed', unpack(missing)} end

        local tokens, cd, cp = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
        local function limit(v) if v == '' then return nil end return tonumber(v) end
        local scopes = {}
        for i = 0, 1 do
          local a = 7 + 6 * i
          if ARGV[a] == '1' then
            scopes[#scopes + 1] = { month = KEYS[3 + 2 * i], minute = KEYS[4 + 2 * i], rpm = limit(ARGV[a + 1]), tpm = limit(ARGV[a + 2]),
                                    maxt = limit(ARGV[a + 3]), maxd = limit(ARGV[a + 4]), maxp = limit(ARGV[a + 5]) }
          end
        end

        local allowed = true
        local out = {}
        for _, s in ipairs(scopes) do
          local m = redis.call('HMGET', s.month, 'tokens', 'cost_d', 'cost_p', 'held_tokens', 'held_d', 'held_p')
          local r = redis.call('HMGET', s.minute, 'requests', 'tokens')
          local mt, md, mp, ht, hd, hp = num(m[1]), num(m[2]), num(m[3]), num(m[4]), num(m[5]), num(m[6])
          local rr, rt = num(r[1]), num(r[2])
          if s.rpm and rr + 1 > s.rpm then allowed = false end
          if s.tpm and rt > 0 and rt + tokens > s.tpm then allowed = false end
          if s.maxt and mt + ht + tokens > s.maxt then allowed = false end
          if s.maxd then
            local d, p = addm(md, mp, hd, hp)
            d, p = addm(d, p, cd, cp)
            if d > s.maxd or (d == s.maxd and p > s.maxp) then allowed = false end
          end
          for _, v in ipairs({mt, md, mp, rr, rt, ht, hd, hp}) do out[#out + 1] = fmt(v) end
        end

        if allowed then
          local months = {'', ''}
          for i, s in ipairs(scopes) do
            redis.call('HINCRBY', s.minute, 'requests', 1)
            redis.call('HINCRBY', s.minute, 'tokens', tokens)
            redis.call('PEXPIRE', s.minute, 180000)
            local h = redis.call('HMGET', s.month, 'held_tokens', 'held_d', 'held_p')
            local hd, hp = addm(num(h[2]), num(h[3]), cd, cp)
            redis.call('HSET', s.month, 'held_tokens', fmt(num(h[1]) + tokens), 'held_d', fmt(hd), 'held_p', fmt(hp))
          end
          if ARGV[7] == '1' then months[1] = KEYS[3] end
          if ARGV[13] == '1' then months[2] = KEYS[5] end
          redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
          redis.call('HSET', KEYS[2], ARGV[2], months[1] .. '|' .. months[2] .. '|' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[6])
        end
        table.insert(out, 1, allowed and 'ok' or 'no')
        return out
        """;

    /// <summary>
    /// Replaces a hold with the usage: adds the tokens and cost to both scopes' month counters (the month of the
    /// reservation) and gives the minute back the tokens not used. Answers <c>{ok, tenant tokens before}</c>: what
    /// prices the overage exactly, since every settle of the tenant runs one after another here.
    /// A hold that expired meanwhile was already taken off the held totals and is not taken off twice.
    /// ARGV: hold id, tokens, cost USD, cost pUSD, reserved tokens, tenant on, key on.
    /// </summary>
    public const string Settle = Common + "\n" + """
        local missing = unseeded({ARGV[6], ARGV[7]})
        if #missing > 0 then return {'seed', unpack(missing)} end
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then unhold(ARGV[1]) else redis.call('HDEL', KEYS[2], ARGV[1]) end
        local tokens, cd, cp, unused = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[2]) - tonumber(ARGV[5])
        local before = -1
        for i, on in ipairs({ARGV[6], ARGV[7]}) do
          if on == '1' then
            local month, minute = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
            local m = redis.call('HMGET', month, 'tokens', 'cost_d', 'cost_p')
            local d, p = addm(num(m[2]), num(m[3]), cd, cp)
            redis.call('HSET', month, 'tokens', fmt(num(m[1]) + tokens), 'cost_d', fmt(d), 'cost_p', fmt(p))
            if i == 1 then before = num(m[1]) end
            if redis.call('EXISTS', minute) == 1 and redis.call('HINCRBY', minute, 'tokens', unused) < 0 then
              redis.call('HSET', minute, 'tokens', 0)
            end
          end
        end
        return {'ok', fmt(before)}
        """;

    /// <summary>
    /// Gives a hold back unused: off the held totals, and its tokens off the minute.
    /// ARGV: hold id, reserved tokens, tenant on, key on.
    /// </summary>
    public const string Release = Common + "\n" + """
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then unhold(ARGV[1]) else redis.call('HDEL', KEYS[2], ARGV[1]) end
        for i, on in ipairs({ARGV[3], ARGV[4]}) do
          local minute = KEYS[2 + 2 * i]
          if on == '1' and redis.call('EXISTS', minute) == 1 and redis.call('HINCRBY', minute, 'tokens', -tonumber(ARGV[2])) < 0 then
            redis.call('HSET', minute, 'tokens', 0)
          end
        end
        return {'ok'}
        """;

    /// <summary>
    /// Adds the cost of an extra attempt (a hedge that lost, an escalated answer) to both scopes' month spend.
    /// ARGV: cost USD, cost pUSD, tenant on, key on.
    /// </summary>
    public const string AddCost = Common + "\n" + """
        local missing = unseeded({ARGV[3], ARGV[4]})
        if #missing > 0 then return {'seed', unpack(missing)} end
        for i, on in ipairs({ARGV[3], ARGV[4]}) do
          if on == '1' then
            local month = KEYS[1 + 2 * i]
            local m = redis.call('HMGET', month, 'cost_d', 'cost_p')
            local d, p = addm(num(m[1]), num(m[2]), tonumber(ARGV[1]), tonumber(ARGV[2]))
            redis.call('HSET', month, 'cost_d', fmt(d), 'cost_p', fmt(p))
          end
        end
        return {'ok'}
        """;

    /// <summary>
    /// Makes month counters from the ledger's usage, each only if no other instance made it first (its holds are
    /// kept: they are requests in flight). KEYS: the month counters; ARGV: tokens, USD, pUSD per key, then the
    /// instant (Unix ms) after which the counters are no longer needed.
    /// </summary>
    public const string Seed = """
        for i, month in ipairs(KEYS) do
          if redis.call('HGET', month, 'seeded') ~= '1' then
            redis.call('HSET', month, 'tokens', ARGV[3 * i - 2], 'cost_d', ARGV[3 * i - 1], 'cost_p', ARGV[3 * i], 'seeded', '1')
            redis.call('PEXPIREAT', month, ARGV[#ARGV])
          end
        end
        return 1
        """;

    /// <summary>
    /// Forgets the settled usage of month counters (limits or plan changed), keeping their holds: the next request
    /// makes them again from the ledger. KEYS: the month counters.
    /// </summary>
    public const string Forget = """
        for _, month in ipairs(KEYS) do redis.call('HDEL', month, 'seeded', 'tokens', 'cost_d', 'cost_p') end
        return 1
        """;
}
