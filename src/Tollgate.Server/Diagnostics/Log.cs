namespace Tollgate.Server.Diagnostics;

/// <summary>
/// Every log line the gateway writes. Messages carry ids, names and codes only: never API keys,
/// prompts or completions.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Warning, Message = "Request {RequestId}: attempt {Attempt} on {Deployment} failed ({Code}); {Next}")]
    public static partial void AttemptFailed(ILogger logger, string requestId, int attempt, string deployment, string code, string next);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Request {RequestId}: stream from {Deployment} broke after it started ({Code})")]
    public static partial void StreamBroken(ILogger logger, string requestId, string deployment, string code);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Request {RequestId}: no candidate of route {Route} can serve it")]
    public static partial void NoCandidate(ILogger logger, string requestId, string route);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Request {RequestId}: unhandled error")]
    public static partial void Unhandled(ILogger logger, Exception exception, string requestId);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Request {RequestId}: {Primary} slower than {DelayMs} ms to its first token; hedging with {Secondary}")]
    public static partial void Hedged(ILogger logger, string requestId, string primary, string secondary, long delayMs);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Request {RequestId}: the answer of {Deployment} failed its check ({Problem}); escalating to a higher tier")]
    public static partial void Escalated(ILogger logger, string requestId, string deployment, string problem);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Error, Message = "The task classifier failed on a request for {Model}; routed as chat")]
    public static partial void ClassifierFailed(ILogger logger, Exception exception, string model);

    [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Provider {Provider} reachability changed: {Reachable}")]
    public static partial void ReachabilityChanged(ILogger logger, string provider, bool reachable);

    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Admin: created key {KeyId} ({Prefix}…)")]
    public static partial void KeyCreated(ILogger logger, string keyId, string prefix);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Admin: revoked key {KeyId}")]
    public static partial void KeyRevoked(ILogger logger, string keyId);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Admin: health state reset for {Count} deployments")]
    public static partial void HealthReset(ILogger logger, int count);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Admin: rotated key {KeyId}")]
    public static partial void KeyRotated(ILogger logger, string keyId);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Admin: tenant {TenantId} created or changed (plan {Plan}, suspended {Suspended})")]
    public static partial void TenantChanged(ILogger logger, string tenantId, string plan, bool suspended);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Admin: the limits of {Scope} are saved, but their counters in Redis could not be reset (unreachable); this instance resets them when Redis answers again")]
    public static partial void CounterResetOwed(ILogger logger, string scope);

    [LoggerMessage(EventId = 4000, Level = LogLevel.Error, Message = "Ledger: a batch of {Count} rows could not be committed")]
    public static partial void LedgerWriteFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Request {RequestId}: refused by a limit ({Code})")]
    public static partial void LimitRefused(ILogger logger, string requestId, string code);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Auth: keys or tenants changed (change counter {Stamp}); caches dropped")]
    public static partial void KeysChanged(ILogger logger, long stamp);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Auth: the key change counter could not be read; keys and tenants are re-read from the database until it can")]
    public static partial void ChangeStampUnreadable(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Request {RequestId}: storage unavailable: {Reason}")]
    public static partial void StorageUnavailable(ILogger logger, string requestId, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "Request {RequestId}: the limit counters could not be used ({Step}): {Reason}")]
    public static partial void LimitsUnavailable(ILogger logger, string requestId, string step, string reason);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Deployment {Deployment} rate-limited on another instance; cooling down here for {RemainingMs} ms")]
    public static partial void SharedCooldown(ILogger logger, string deployment, long remainingMs);
}
