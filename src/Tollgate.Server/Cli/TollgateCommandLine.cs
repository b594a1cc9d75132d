using System.CommandLine;
using System.Data.Common;
using System.Text.Json;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Metering;
using Tollgate.Server.Endpoints.Admin;
using Tollgate.Server.Endpoints.Usage;
using Tollgate.Server.Hosting;
using Tollgate.Server.Json;
using Tollgate.Storage;
using Tollgate.Tenancy;

namespace Tollgate.Server.Cli;

/// <summary>
/// The <c>tollgate</c> executable: <c>serve</c> (the default verb) and management verbs that work on the
/// same database as a running server.
/// </summary>
public static class TollgateCommandLine
{
    private static readonly Option<string?> ConfigOption = new("--config")
    {
        Description = "Path of tollgate.json (default: $TOLLGATE_CONFIG, else ./tollgate.json when present, else built-in defaults)",
        Recursive = true,
    };

    private static readonly Option<string?> DataDirOption = new("--data-dir")
    {
        Description = "Directory of the embedded SQLite database (default: storage.dataDirectory, ./data)",
        Recursive = true,
    };

    private static readonly Option<string?> UrlsOption = new("--urls")
    {
        Description = "URLs to listen on, separated by ';' (default: $ASPNETCORE_URLS, else http://localhost:5080)",
        Recursive = true,
    };

    public static Task<int> InvokeAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        var root = new RootCommand("Tollgate: an OpenAI-compatible LLM gateway that routes each request to the cheapest healthy provider.");
        root.Options.Add(ConfigOption);
        root.Options.Add(DataDirOption);
        root.Options.Add(UrlsOption);

        var serve = new Command("serve", "Start the gateway (the default when no verb is given).");
        serve.SetAction((result, ct) => ServeAsync(result, output, error, ct));
        root.SetAction((result, ct) => ServeAsync(result, output, error, ct));
        root.Subcommands.Add(serve);
        root.Subcommands.Add(KeysCommand(output, error));
        root.Subcommands.Add(TenantsCommand(output, error));
        root.Subcommands.Add(UsageCommand(output, error));
        root.Subcommands.Add(AdminKeyCommand(output, error));
        root.Subcommands.Add(ConfigCommand(output, error));
        root.Subcommands.Add(DemoCommand.Create(DataDirOption, UrlsOption, output, error));
        BillingCommands.AddTo(root, output, error);
        root.Subcommands.Add(SimulateCommand.Create(output, error));

        var parse = root.Parse(args);
        return parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
    }

    private static async Task<int> ServeAsync(ParseResult result, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!TryLoad(result, error, out var options, out var secrets))
        {
            return 2;
        }

        var urls = result.GetValue(UrlsOption)
            ?? Environment.GetEnvironmentVariable("ASPNETCORE_URLS")
            ?? Environment.GetEnvironmentVariable("URLS")
            ?? "http://localhost:5080";
        var settings = new GatewaySettings
        {
            Options = options,
            Secrets = secrets,
            DataDirectory = GatewayStartup.ResolveDataDirectory(result.GetValue(DataDirOption), options),
            Urls = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        };

        IoScheduling.ConfigureProcess(options.Server);
        string adminHash;
        try
        {
            adminHash = await GatewayStartup.PrepareAsync(settings, key => AnnounceAdminKey(output, key), cancellationToken).ConfigureAwait(false);
        }
        catch (TollgateConfigurationException ex)
        {
            error.WriteLine(ex.Message);
            return 2;
        }
        catch (DbException ex)
        {
            // The driver's reason names the server and the failure (refused, authentication, missing database), never a password.
            error.WriteLine($"The database could not be opened: {ex.Message}");
            return 1;
        }

        await using var app = GatewayHost.Build(settings, adminHash);
        await app.RunAsync(cancellationToken).ConfigureAwait(false);
        return 0;
    }

    private static void AnnounceAdminKey(TextWriter output, string key)
    {
        output.WriteLine();
        output.WriteLine("================================================================");
        output.WriteLine(" Tollgate created an admin key. It is shown only this once:");
        output.WriteLine();
        output.WriteLine($"   {key}");
        output.WriteLine();
        output.WriteLine(" Only its SHA-256 hash is stored. Use it as 'Authorization: Bearer'");
        output.WriteLine(" for /admin and /providers. 'tollgate admin-key rotate' makes a new one.");
        output.WriteLine("================================================================");
        output.WriteLine();
        output.Flush();
    }

    private static Command KeysCommand(TextWriter output, TextWriter error)
    {
        var keys = new Command("keys", "Manage client API keys (tg-...).");

        var nameOption = new Option<string>("--name") { Description = "A name for the key, e.g. ci-pipeline", Required = true };
        var tenantOption = new Option<string?>("--tenant") { Description = "The tenant id that owns the key (default: the default tenant)" };
        var tokensOption = new Option<long?>("--monthly-tokens") { Description = "Tokens per calendar month for this key" };
        var budgetOption = new Option<decimal?>("--monthly-budget-usd") { Description = "Provider cost in USD per calendar month for this key" };
        var rpmOption = new Option<int?>("--rpm") { Description = "Requests per minute for this key" };
        var tpmOption = new Option<int?>("--tpm") { Description = "Tokens per minute for this key" };
        var modelsOption = new Option<string?>("--models") { Description = "Comma-separated model names this key may use (default: all)" };
        var expiresOption = new Option<DateTimeOffset?>("--expires-at") { Description = "When the key stops working (ISO 8601)" };
        Option[] limitOptions = [tokensOption, budgetOption, rpmOption, tpmOption, modelsOption, expiresOption];

        LimitsDto? Limits(ParseResult result) => new LimitsDto(
            result.GetValue(tokensOption),
            result.GetValue(budgetOption),
            result.GetValue(rpmOption),
            result.GetValue(tpmOption),
            result.GetValue(modelsOption)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList());

        var create = new Command("create", "Create a key and print it once as JSON.") { nameOption, tenantOption };
        foreach (var option in limitOptions)
        {
            create.Options.Add(option);
        }

        create.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var limits = Limits(result);
            if (KeysEndpoints.Check(limits) is { } problem)
            {
                error.WriteLine(problem);
                return 1;
            }

            var tenant = result.GetValue(tenantOption) ?? Tenancy.Tenant.DefaultId;
            if (!(await stores.Tenants.ListAsync(ct).ConfigureAwait(false)).Any(t => t.Id == tenant))
            {
                error.WriteLine($"No tenant has id '{tenant}' ('tollgate tenants list' shows them).");
                return 1;
            }

            var created = await stores.Keys.CreateAsync(new NewApiKey(result.GetValue(nameOption)!, tenant, limits?.ToLimits(), result.GetValue(expiresOption)), ct).ConfigureAwait(false);
            output.WriteLine(JsonSerializer.Serialize(KeysEndpoints.ToCreated(created), ServerJsonContext.Default.CreatedKeyResponse));
            return 0;
        }, ct));

        var list = new Command("list", "List keys (by prefix; the keys themselves are not stored).") { tenantOption };
        list.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var tenant = result.GetValue(tenantOption);
            var all = await stores.Keys.ListAsync(ct).ConfigureAwait(false);
            var response = new KeyListResponse([.. all.Where(k => tenant is null || k.TenantId == tenant).Select(KeysEndpoints.ToEntry)]);
            output.WriteLine(JsonSerializer.Serialize(response, ServerJsonContext.Default.KeyListResponse));
            return 0;
        }, ct));

        var idArgument = new Argument<string>("id") { Description = "The key id (key_...)" };
        var revoke = new Command("revoke", "Revoke a key; a running server stops accepting it within a second.") { idArgument };
        revoke.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var id = result.GetValue(idArgument)!;
            if (!await stores.Keys.RevokeAsync(id, ct).ConfigureAwait(false))
            {
                error.WriteLine($"No active key has id '{id}'.");
                return 1;
            }

            output.WriteLine($"Revoked {id}.");
            return 0;
        }, ct));

        var rotate = new Command("rotate", "Give a key a new secret (same id, tenant and limits), print it once; the old secret stops working within a second.") { idArgument };
        rotate.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var id = result.GetValue(idArgument)!;
            if (await stores.Keys.RotateAsync(id, ct).ConfigureAwait(false) is not { } rotated)
            {
                error.WriteLine($"No active key has id '{id}'.");
                return 1;
            }

            output.WriteLine(JsonSerializer.Serialize(KeysEndpoints.ToCreated(rotated), ServerJsonContext.Default.CreatedKeyResponse));
            return 0;
        }, ct));

        var setLimits = new Command("limits", "Replace a key's limits and expiry (options left out are removed).") { idArgument };
        foreach (var option in limitOptions)
        {
            setLimits.Options.Add(option);
        }

        setLimits.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var id = result.GetValue(idArgument)!;
            var limits = Limits(result);
            if (KeysEndpoints.Check(limits) is { } problem)
            {
                error.WriteLine(problem);
                return 1;
            }

            if (await stores.Keys.UpdateLimitsAsync(id, limits?.ToLimits() ?? KeyLimits.None, result.GetValue(expiresOption), ct).ConfigureAwait(false) is not { } updated)
            {
                error.WriteLine($"No active key has id '{id}'.");
                return 1;
            }

            output.WriteLine(JsonSerializer.Serialize(KeysEndpoints.ToEntry(updated), ServerJsonContext.Default.KeyEntry));
            WarnIfCountersOwed(stores, error, updated.TenantId, updated.Id);
            return 0;
        }, ct));

        keys.Subcommands.Add(create);
        keys.Subcommands.Add(list);
        keys.Subcommands.Add(revoke);
        keys.Subcommands.Add(rotate);
        keys.Subcommands.Add(setLimits);
        return keys;
    }

    private static Command TenantsCommand(TextWriter output, TextWriter error)
    {
        var tenants = new Command("tenants", "Manage tenants (who owns keys, on which plan).");
        var nameOption = new Option<string>("--name") { Description = "The tenant's name, e.g. acme", Required = true };
        var planOption = new Option<string?>("--plan") { Description = "A plan under 'plans' (built in: free, starter, pro, business; 'none' removes it)" };
        var create = new Command("create", "Create a tenant (plan: free unless given) and print it as JSON.") { nameOption, planOption };
        create.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var plan = result.GetValue(planOption) ?? "free";
            if (TenantsEndpoints.CheckPlan(plan, stores.Options) is { } problem)
            {
                error.WriteLine(problem);
                return 1;
            }

            var tenant = await stores.Tenants.CreateAsync(result.GetValue(nameOption)!, plan, ct).ConfigureAwait(false);
            output.WriteLine(JsonSerializer.Serialize(TenantsEndpoints.ToResponse(tenant, stores.Options), ServerJsonContext.Default.TenantResponse));
            return 0;
        }, ct));

        var list = new Command("list", "List tenants as JSON.");
        list.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var all = await stores.Tenants.ListAsync(ct).ConfigureAwait(false);
            output.WriteLine(JsonSerializer.Serialize(new TenantListResponse([.. all.Select(t => TenantsEndpoints.ToResponse(t, stores.Options))]), ServerJsonContext.Default.TenantListResponse));
            return 0;
        }, ct));

        var idArgument = new Argument<string>("id") { Description = "The tenant id (ten_... or default)" };
        var suspendOption = new Option<bool>("--suspend") { Description = "Suspend the tenant: its keys are refused (403)" };
        var resumeOption = new Option<bool>("--resume") { Description = "Resume a suspended tenant" };
        var set = new Command("set", "Change a tenant's plan and/or suspend or resume it; a running server applies it within a second.") { idArgument, planOption, suspendOption, resumeOption };
        set.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var plan = result.GetValue(planOption);
            var clear = string.Equals(plan, TenantsEndpoints.NoPlan, StringComparison.OrdinalIgnoreCase);
            bool? suspended = result.GetValue(suspendOption) ? true : result.GetValue(resumeOption) ? false : null;
            if (plan is null && suspended is null)
            {
                error.WriteLine("Nothing to change: give --plan, --suspend or --resume.");
                return 1;
            }

            if (plan is not null && !clear && TenantsEndpoints.CheckPlan(plan, stores.Options) is { } problem)
            {
                error.WriteLine(problem);
                return 1;
            }

            var id = result.GetValue(idArgument)!;
            if (await stores.Tenants.UpdateAsync(id, clear ? null : plan, clear, suspended, ct).ConfigureAwait(false) is not { } tenant)
            {
                error.WriteLine($"No tenant has id '{id}'.");
                return 1;
            }

            output.WriteLine(JsonSerializer.Serialize(TenantsEndpoints.ToResponse(tenant, stores.Options), ServerJsonContext.Default.TenantResponse));
            if (plan is not null)
            {
                WarnIfCountersOwed(stores, error, tenant.Id, keyId: null);
            }

            return 0;
        }, ct));

        tenants.Subcommands.Add(create);
        tenants.Subcommands.Add(list);
        tenants.Subcommands.Add(set);
        return tenants;
    }

    private static Command UsageCommand(TextWriter output, TextWriter error)
    {
        var tenantOption = new Option<string?>("--tenant") { Description = "Only this tenant (default: all)" };
        var fromOption = new Option<string?>("--from") { Description = "Start, a date (2025-01-01) or ISO 8601 time (default: start of this month, UTC)" };
        var toOption = new Option<string?>("--to") { Description = "End, a date (inclusive) or ISO 8601 time (exclusive) (default: now)" };
        var groupOption = new Option<string?>("--group-by") { Description = "Comma-separated: day, model, provider, tenant, key (default: day)" };
        var formatOption = new Option<string?>("--format") { Description = "json (default) or csv" };
        var usage = new Command("usage", "Usage report from the ledger (the same as GET /admin/usage).") { tenantOption, fromOption, toOption, groupOption, formatOption };
        usage.SetAction((result, ct) => WithStoresAsync(result, error, async stores =>
        {
            var query = UsageEndpoints.Parse(result.GetValue(tenantOption), result.GetValue(fromOption), result.GetValue(toOption), result.GetValue(groupOption), TimeProvider.System.GetUtcNow(), out var problem);
            if (query is null)
            {
                error.WriteLine(problem);
                return 1;
            }

            var rows = await stores.Ledger.QueryAsync(query, ct).ConfigureAwait(false);
            if (string.Equals(result.GetValue(formatOption), "csv", StringComparison.OrdinalIgnoreCase))
            {
                output.Write(UsageEndpoints.ToCsv(query, rows));
                return 0;
            }

            var report = new UsageReportResponse(query.TenantId, query.From, query.To, UsageEndpoints.GroupNamesOf(query), [.. rows], UsageEndpoints.Total(rows), null);
            output.WriteLine(JsonSerializer.Serialize(report, ServerJsonContext.Default.UsageReportResponse));
            return 0;
        }, ct));
        return usage;
    }

    private static Command AdminKeyCommand(TextWriter output, TextWriter error)
    {
        var adminKey = new Command("admin-key", "Manage the admin key.");
        var rotate = new Command("rotate", "Generate a new admin key, print it once and store its hash (restart running servers).");
        rotate.SetAction((result, ct) => WithStoreAsync(result, error, async store =>
        {
            var key = ApiKeys.NewSecret(ApiKeys.AdminPrefix);
            await store.SetAdminKeyHashAsync(ApiKeys.Hash(key), ct).ConfigureAwait(false);
            AnnounceAdminKey(output, key);
            return 0;
        }, ct));
        adminKey.Subcommands.Add(rotate);
        return adminKey;
    }

    private static Command ConfigCommand(TextWriter output, TextWriter error)
    {
        var config = new Command("config", "Inspect configuration.");
        var check = new Command("check", "Validate the configuration and list providers, deployments, routes and where data is kept.");
        check.SetAction(async (result, cancellationToken) =>
        {
            if (!TryLoad(result, error, out var options, out var secrets))
            {
                return 2;
            }

            // The shared database's and Redis's connection strings are part of a configuration that can start: read
            // them (nothing is connected), and say where the data will be.
            string storage;
            if (options.Storage.Database == StorageOptions.Postgres)
            {
                try
                {
                    await using var opened = GatewayStartup.OpenStorage(options, secrets, string.Empty, TimeProvider.System);
                    storage = opened.Description;
                }
                catch (TollgateConfigurationException ex)
                {
                    error.WriteLine(ex.Message);
                    return 2;
                }
            }
            else
            {
                storage = $"SQLite under {Path.GetFullPath(GatewayStartup.ResolveDataDirectory(result.GetValue(DataDirOption), options))}";
            }

            output.WriteLine("Configuration is valid.");
            foreach (var (name, p) in options.Providers.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var state = p.ApiKeyEnv is null ? "keyless (configured when reachable)" : secrets.Get(p.ApiKeyEnv) is null ? $"not configured (set {p.ApiKeyEnv})" : "configured";
                output.WriteLine($"  provider {name} [{p.Type}] {state}");
            }

            output.WriteLine($"  {options.Models.Count} deployments, {options.Routes.Count} routes");
            output.WriteLine($"  storage: {storage}");
            return 0;
        });
        config.Subcommands.Add(check);
        return config;
    }

    private static Task<int> WithStoreAsync(ParseResult result, TextWriter error, Func<IKeyStore, Task<int>> action, CancellationToken cancellationToken) =>
        WithStoresAsync(result, error, stores => action(stores.Keys), cancellationToken);

    private static async Task<int> WithStoresAsync(ParseResult result, TextWriter error, Func<CliStores, Task<int>> action, CancellationToken cancellationToken)
    {
        if (!TryLoad(result, error, out var options, out var secrets))
        {
            return 2;
        }

        var (storage, exitCode) = await OpenStorageAsync(options, secrets, GatewayStartup.ResolveDataDirectory(result.GetValue(DataDirOption), options), error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return exitCode;
        }

        await using (storage.ConfigureAwait(false))
        {
            return await action(new CliStores(options, storage.Keys, storage.Tenants, storage.Ledger, storage.Limiter)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Opens and migrates the configured database for a management verb. A missing connection string (exit code 2)
    /// or a database that cannot be reached (1) is one line on <paramref name="error"/>, not a stack trace.
    /// </summary>
    internal static async Task<(GatewayStorage? Storage, int ExitCode)> OpenStorageAsync(TollgateOptions options, SecretSource secrets, string dataDirectory, TextWriter error, CancellationToken cancellationToken)
    {
        GatewayStorage storage;
        try
        {
            storage = GatewayStartup.OpenStorage(options, secrets, dataDirectory, TimeProvider.System);
        }
        catch (TollgateConfigurationException ex)
        {
            error.WriteLine(ex.Message);
            return (null, 2);
        }

        try
        {
            await storage.MigrateAsync(cancellationToken).ConfigureAwait(false);
            return (storage, 0);
        }
        catch (DbException ex)
        {
            error.WriteLine(DatabaseUnavailable(storage, ex));
            await storage.DisposeAsync().ConfigureAwait(false);
            return (null, 1);
        }
    }

    /// <summary>The database's location and the driver's reason; neither carries a password.</summary>
    internal static string DatabaseUnavailable(GatewayStorage storage, DbException ex) =>
        $"The database could not be opened ({storage.Description}): {ex.Message}";

    /// <summary>What a management verb works on: the same database a running server uses.</summary>
    private sealed record CliStores(TollgateOptions Options, IKeyStore Keys, ITenantStore Tenants, ILedgerStore Ledger, IUsageLimiter Limiter);

    /// <summary>
    /// A change saved while Redis was lost (after the start-up check found it) still owes the reset of its counters,
    /// and this process, which would carry it out, is about to end: the operator has to run the command again.
    /// </summary>
    private static void WarnIfCountersOwed(CliStores stores, TextWriter error, string tenantId, string? keyId)
    {
        if (stores.Limiter.OwesCounterReset(tenantId, keyId))
        {
            error.WriteLine("Warning: the change is saved, but Redis could not be reached to reset the limit counters it affects. Run the same command again once Redis answers; until then the counters may miss usage from the ledger.");
        }
    }

    private static bool TryLoad(ParseResult result, TextWriter error, out TollgateOptions options, out SecretSource secrets)
    {
        try
        {
            (options, secrets) = GatewayStartup.LoadConfiguration(GatewayStartup.ResolveConfigPath(result.GetValue(ConfigOption)));
            return true;
        }
        catch (TollgateConfigurationException ex)
        {
            error.WriteLine(ex.Message);
            options = null!;
            secrets = null!;
            return false;
        }
    }
}
