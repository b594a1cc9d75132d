namespace Tollgate.Configuration;

/// <summary>Checks the cross-references and ranges that binding alone cannot; every message names its key.</summary>
public static class TollgateOptionsValidator
{
    public static List<string> Validate(TollgateOptions options)
    {
        var errors = new List<string>();

        foreach (var (name, provider) in options.Providers)
        {
            var key = $"providers:{name}";
            if (!ProviderTypes.Known.Contains(provider.Type, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add($"{key}:type: unknown provider type '{provider.Type}' (expected one of: {string.Join(", ", ProviderTypes.Known)})");
            }

            if (string.IsNullOrWhiteSpace(provider.BaseUrl))
            {
                errors.Add($"{key}:baseUrl: is required");
            }
            else if (!Uri.TryCreate(provider.BaseUrl, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"{key}:baseUrl: '{provider.BaseUrl}' is not an absolute http(s) URL");
            }

            if (provider.TimeoutMs is <= 0)
            {
                errors.Add($"{key}:timeoutMs: must be positive, got {provider.TimeoutMs}");
            }
        }

        foreach (var (id, model) in options.Models)
        {
            var key = $"models:{id}";
            if (string.IsNullOrWhiteSpace(model.Provider))
            {
                errors.Add($"{key}:provider: is required");
            }
            else if (!options.Providers.ContainsKey(model.Provider))
            {
                errors.Add($"{key}:provider: unknown provider '{model.Provider}' (known: {string.Join(", ", options.Providers.Keys.Order(StringComparer.Ordinal))})");
            }

            if (string.IsNullOrWhiteSpace(model.UpstreamModel))
            {
                errors.Add($"{key}:upstreamModel: is required");
            }

            CheckPrice(errors, $"{key}:inputPerMillion", model.InputPerMillion, required: false);
            CheckPrice(errors, $"{key}:outputPerMillion", model.OutputPerMillion, required: false);
            CheckPrice(errors, $"{key}:cachedInputPerMillion", model.CachedInputPerMillion, required: false);
            CheckPrice(errors, $"{key}:cacheWrite5mPerMillion", model.CacheWrite5mPerMillion, required: false);
            CheckPrice(errors, $"{key}:cacheWrite1hPerMillion", model.CacheWrite1hPerMillion, required: false);
            CheckPrice(errors, $"{key}:reasoningOutputPerMillion", model.ReasoningOutputPerMillion, required: false);

            if (model.ContextWindow <= 0)
            {
                errors.Add($"{key}:contextWindow: must be positive, got {model.ContextWindow}");
            }

            if (model.MaxOutputTokens < 0)
            {
                errors.Add($"{key}:maxOutputTokens: must not be negative, got {model.MaxOutputTokens}");
            }

            foreach (var capability in model.Capabilities)
            {
                if (!Capabilities.TryParse(capability, out _))
                {
                    errors.Add($"{key}:capabilities: unknown capability '{capability}' (expected: {string.Join(", ", Capabilities.Names)})");
                }
            }

            if (model.Tier is < 1 or > 5)
            {
                errors.Add($"{key}:tier: must be between 1 (small or local) and 5, got {model.Tier}");
            }

            foreach (var strength in model.Strengths)
            {
                CheckTask(errors, $"{key}:strengths", strength);
            }
        }

        foreach (var (name, route) in options.Routes)
        {
            var key = $"routes:{name}";
            if (!RouteStrategies.Known.Contains(route.Strategy, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add($"{key}:strategy: unknown strategy '{route.Strategy}' (expected one of: {string.Join(", ", RouteStrategies.Known)})");
            }

            if (route.Candidates.Count == 0)
            {
                errors.Add($"{key}:candidates: must list at least one deployment");
            }

            if (route.HedgeDelayMs <= 0)
            {
                errors.Add($"{key}:hedgeDelayMs: must be positive, got {route.HedgeDelayMs}");
            }

            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (var candidate in route.Candidates)
            {
                if (!options.Models.ContainsKey(candidate))
                {
                    errors.Add($"{key}:candidates: deployment '{candidate}' is not defined under models");
                }
                else if (!seen.Add(candidate))
                {
                    errors.Add($"{key}:candidates: deployment '{candidate}' is listed twice");
                }
            }

            if (options.Models.TryGetValue(name, out var target))
            {
                if (route.Candidates.Count != 1 || !route.Candidates[0].Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    errors.Add($"{key}: the name is also a deployment id under models; a public name must mean one thing (rename the route or the deployment '{target.UpstreamModel}')");
                }
            }
        }

        foreach (var (task, tier) in options.Routing.TaskTiers)
        {
            CheckTask(errors, "routing:taskTiers", task);
            if (tier is < 1 or > 5)
            {
                errors.Add($"routing:taskTiers:{task}: must be a tier between 1 and 5, got {tier}");
            }
        }

        foreach (var (name, plan) in options.Plans)
        {
            var key = $"plans:{name}";
            CheckPrice(errors, $"{key}:monthlyFeeUsd", plan.MonthlyFeeUsd, required: true);
            CheckPrice(errors, $"{key}:overagePer1KTokensUsd", plan.OveragePer1KTokensUsd, required: true);
            CheckPrice(errors, $"{key}:monthlyBudgetUsd", plan.MonthlyBudgetUsd, required: false);
            if (plan.IncludedTokens < 0)
            {
                errors.Add($"{key}:includedTokens: must not be negative, got {plan.IncludedTokens}");
            }

            if (plan.Rpm is <= 0)
            {
                errors.Add($"{key}:rpm: must be positive when set, got {plan.Rpm}");
            }

            if (plan.Tpm is <= 0)
            {
                errors.Add($"{key}:tpm: must be positive when set, got {plan.Tpm}");
            }
        }

        var routing = options.Routing;
        CheckPositive(errors, "routing:attemptTimeoutMs", routing.AttemptTimeoutMs);
        CheckPositive(errors, "routing:streamIdleTimeoutMs", routing.StreamIdleTimeoutMs);
        CheckPositive(errors, "routing:circuitFailureThreshold", routing.CircuitFailureThreshold);
        CheckPositive(errors, "routing:circuitBreakMs", routing.CircuitBreakMs);
        CheckPositive(errors, "routing:maxCooldownMs", routing.MaxCooldownMs);

        if (options.Server.MaxRequestBodyBytes <= 0)
        {
            errors.Add($"server:maxRequestBodyBytes: must be positive, got {options.Server.MaxRequestBodyBytes}");
        }

        if (string.IsNullOrWhiteSpace(options.Storage.DataDirectory))
        {
            errors.Add("storage:dataDirectory: must not be empty");
        }

        if (options.Storage.Database is not (StorageOptions.Sqlite or StorageOptions.Postgres))
        {
            errors.Add($"storage:database: must be '{StorageOptions.Sqlite}' or '{StorageOptions.Postgres}', got '{options.Storage.Database}'");
        }

        if (string.IsNullOrWhiteSpace(options.Storage.ConnectionStringEnv))
        {
            errors.Add("storage:connectionStringEnv: must not be empty");
        }

        if (options.Storage.Limiter is not (StorageOptions.DatabaseLimiter or StorageOptions.RedisLimiter))
        {
            errors.Add($"storage:limiter: must be '{StorageOptions.DatabaseLimiter}' or '{StorageOptions.RedisLimiter}', got '{options.Storage.Limiter}'");
        }
        else if (options.Storage.Limiter == StorageOptions.RedisLimiter && options.Storage.Database != StorageOptions.Postgres)
        {
            // One instance keeps its counters in memory, exactly and for free; Redis is for instances sharing PostgreSQL.
            errors.Add($"storage:limiter: '{StorageOptions.RedisLimiter}' needs storage:database '{StorageOptions.Postgres}' (limit counters are shared only between instances that share a database)");
        }

        if (string.IsNullOrWhiteSpace(options.Storage.RedisConnectionStringEnv))
        {
            errors.Add("storage:redisConnectionStringEnv: must not be empty");
        }

        return errors;
    }

    private static void CheckTask(List<string> errors, string key, string task)
    {
        if (!Routing.Classification.TaskKinds.TryParse(task, out _))
        {
            errors.Add($"{key}: unknown task '{task}' (expected one of: {string.Join(", ", Routing.Classification.TaskKinds.All.Select(t => Routing.Classification.TaskKinds.Name(t)))})");
        }
    }

    private static void CheckPrice(List<string> errors, string key, decimal? price, bool required)
    {
        if (price is null)
        {
            if (required)
            {
                errors.Add($"{key}: is required (USD per 1M tokens; use 0 for a free model)");
            }
        }
        else if (price < 0)
        {
            errors.Add($"{key}: must not be negative, got {price}");
        }
    }

    private static void CheckPositive(List<string> errors, string key, int value)
    {
        if (value <= 0)
        {
            errors.Add($"{key}: must be positive, got {value}");
        }
    }
}
