using System.CommandLine;
using System.Text.Json;
using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Server.Endpoints.Admin;
using Tollgate.Server.Hosting;
using Tollgate.Server.Json;
using Tollgate.Storage.Sqlite;

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
        root.Subcommands.Add(AdminKeyCommand(output, error));
        root.Subcommands.Add(ConfigCommand(output, error));

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

        var adminHash = await GatewayStartup.PrepareAsync(settings, key => AnnounceAdminKey(output, key), cancellationToken).ConfigureAwait(false);
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
        var create = new Command("create", "Create a key and print it once as JSON.") { nameOption };
        create.SetAction((result, ct) => WithStoreAsync(result, error, async store =>
        {
            var created = await store.CreateAsync(result.GetValue(nameOption)!, ct).ConfigureAwait(false);
            var r = created.Record;
            output.WriteLine(JsonSerializer.Serialize(new CreatedKeyResponse(r.Id, created.Key, r.Prefix, r.Name, r.CreatedAt), ServerJsonContext.Default.CreatedKeyResponse));
            return 0;
        }, ct));

        var list = new Command("list", "List keys (by prefix; the keys themselves are not stored).");
        list.SetAction((result, ct) => WithStoreAsync(result, error, async store =>
        {
            var all = await store.ListAsync(ct).ConfigureAwait(false);
            var response = new KeyListResponse([.. all.Select(k => new KeyEntry(k.Id, k.Name, k.Prefix, k.CreatedAt, k.RevokedAt, k.IsActive))]);
            output.WriteLine(JsonSerializer.Serialize(response, ServerJsonContext.Default.KeyListResponse));
            return 0;
        }, ct));

        var idArgument = new Argument<string>("id") { Description = "The key id (key_...)" };
        var revoke = new Command("revoke", "Revoke a key; a running server stops accepting it within a second.") { idArgument };
        revoke.SetAction((result, ct) => WithStoreAsync(result, error, async store =>
        {
            var id = result.GetValue(idArgument)!;
            if (!await store.RevokeAsync(id, ct).ConfigureAwait(false))
            {
                error.WriteLine($"No active key has id '{id}'.");
                return 1;
            }

            output.WriteLine($"Revoked {id}.");
            return 0;
        }, ct));

        keys.Subcommands.Add(create);
        keys.Subcommands.Add(list);
        keys.Subcommands.Add(revoke);
        return keys;
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
        var check = new Command("check", "Validate the configuration and list providers, deployments and routes.");
        check.SetAction(result =>
        {
            if (!TryLoad(result, error, out var options, out var secrets))
            {
                return 2;
            }

            output.WriteLine("Configuration is valid.");
            foreach (var (name, p) in options.Providers.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var state = p.ApiKeyEnv is null ? "keyless (configured when reachable)" : secrets.Get(p.ApiKeyEnv) is null ? $"not configured (set {p.ApiKeyEnv})" : "configured";
                output.WriteLine($"  provider {name} [{p.Type}] {state}");
            }

            output.WriteLine($"  {options.Models.Count} deployments, {options.Routes.Count} routes");
            return 0;
        });
        config.Subcommands.Add(check);
        return config;
    }

    private static async Task<int> WithStoreAsync(ParseResult result, TextWriter error, Func<SqliteKeyStore, Task<int>> action, CancellationToken cancellationToken)
    {
        if (!TryLoad(result, error, out var options, out _))
        {
            return 2;
        }

        var database = new SqliteDatabase(GatewayStartup.ResolveDataDirectory(result.GetValue(DataDirOption), options));
        await database.MigrateAsync(cancellationToken).ConfigureAwait(false);
        using var store = new SqliteKeyStore(database, TimeProvider.System);
        return await action(store).ConfigureAwait(false);
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
