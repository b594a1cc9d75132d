using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.Tenancy;

public sealed class TenantAdminTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Tenants_CreateListPatch_RoundTripWithPlanLimits()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var admin = scenario.Gateway.Admin;

        var id = await Tenants.CreateAsync(scenario.Gateway, "acme", "pro", Ct);
        var listing = (await admin.GetFromJsonAsync<JsonObject>("admin/tenants", Ct))!["data"]!.AsArray();
        using var patched = await admin.PatchAsJsonAsync($"admin/tenants/{id}", new { plan = "business" }, Ct);
        var patchedJson = (await patched.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        using var badPlan = await admin.PatchAsJsonAsync($"admin/tenants/{id}", new { plan = "platinum" }, Ct);
        using var missing = await admin.PatchAsJsonAsync("admin/tenants/ten_nope", new { suspended = true }, Ct);

        Assert.StartsWith("ten_", id, StringComparison.Ordinal);
        Assert.Contains(listing, t => (string?)t!["id"] == "default" && t["plan"] is null);
        Assert.Contains(listing, t => (string?)t!["id"] == id && (string?)t["plan"] == "pro");
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.Equal("business", (string?)patchedJson["plan"]);
        Assert.Equal(99m, (decimal)patchedJson["limits"]!["monthlyFeeUsd"]!);
        Assert.Equal(HttpStatusCode.BadRequest, badPlan.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task SuspendedTenant_KeysAre403_AndResumeRestores()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "acme", "pro", Ct);
        var key = await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "app", tenant }, Ct);
        using var client = scenario.Gateway.NewClient((string)key["key"]!);

        using (var suspend = await scenario.Gateway.Admin.PatchAsJsonAsync($"admin/tenants/{tenant}", new { suspended = true }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, suspend.StatusCode);
        }

        using var refused = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;
        using (var resume = await scenario.Gateway.Admin.PatchAsJsonAsync($"admin/tenants/{tenant}", new { suspended = false }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, resume.StatusCode);
        }

        using var allowed = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("tenant_suspended", (string?)error["code"]);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(1, scenario.Fakes[0].RequestCount);
    }

    [Fact]
    public async Task CreateKey_WithTenantLimitsAndExpiry_IsListedWithThem()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "acme", "starter", Ct);

        var key = await Tenants.CreateKeyAsync(scenario.Gateway, new
        {
            name = "prod",
            tenant,
            limits = new { monthlyTokens = 25_000_000, monthlyBudgetUsd = 12.5m, rpm = 100, tpm = 50_000, models = new[] { "gpt-4o" } },
            expiresAt = "2099-01-01T00:00:00Z",
        }, Ct);
        var listing = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>($"admin/keys?tenant={tenant}", Ct))!["data"]!.AsArray();
        using var unknownTenant = await scenario.Gateway.Admin.PostAsJsonAsync("admin/keys", new { name = "x", tenant = "ten_nope" }, Ct);
        using var badLimits = await scenario.Gateway.Admin.PostAsJsonAsync("admin/keys", new { name = "x", limits = new { rpm = 0 } }, Ct);

        Assert.Equal(tenant, (string?)key["tenant"]);
        Assert.Equal(12.5m, (decimal)key["limits"]!["monthlyBudgetUsd"]!);
        var entry = Assert.Single(listing);
        Assert.Equal((string?)key["id"], (string?)entry!["id"]);
        Assert.Equal(25_000_000, (long)entry["limits"]!["monthlyTokens"]!);
        Assert.Equal("gpt-4o", (string?)entry["limits"]!["models"]![0]);
        Assert.Equal(HttpStatusCode.BadRequest, unknownTenant.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badLimits.StatusCode);
    }

    [Fact]
    public async Task KeyWithoutTenant_BelongsToDefaultTenant()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);

        var key = await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "plain" }, Ct);

        Assert.Equal("default", (string?)key["tenant"]);
    }

    [Fact]
    public async Task RotateKey_OldSecretRefused_NewSecretWorks_SameId()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var key = await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "rotating" }, Ct);
        using var oldClient = scenario.Gateway.NewClient((string)key["key"]!);
        using (var before = await oldClient.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        using var rotated = await scenario.Gateway.Admin.PostAsync($"admin/keys/{key["id"]}/rotate", null, Ct);
        var json = (await rotated.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        using var newClient = scenario.Gateway.NewClient((string)json["key"]!);
        using var oldAfter = await oldClient.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);
        using var newAfter = await newClient.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        Assert.Equal((string?)key["id"], (string?)json["id"]);
        Assert.NotEqual((string?)key["key"], (string?)json["key"]);
        Assert.Equal(HttpStatusCode.Unauthorized, oldAfter.StatusCode);
        Assert.Equal(HttpStatusCode.OK, newAfter.StatusCode);
    }

    [Fact]
    public async Task ExpiredKey_Is401ExpiredApiKey()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var key = await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "old", expiresAt = "2001-01-01T00:00:00Z" }, Ct);
        using var client = scenario.Gateway.NewClient((string)key["key"]!);

        using var response = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody(), Ct);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("expired_api_key", (string?)error["code"]);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
    }

    [Fact]
    public async Task ModelAllowList_OtherModelIs403_BeforeAnyProvider()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 2, cancellationToken: Ct);
        var key = await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "narrow", limits = new { models = new[] { "d1" } } }, Ct);
        using var client = scenario.Gateway.NewClient((string)key["key"]!);

        using var refused = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody("gpt-4o"), Ct);
        using var allowed = await client.PostAsJsonAsync("v1/chat/completions", GatewayScenario.ChatBody("d1"), Ct);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("model_not_allowed", (string?)error["code"]);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
        Assert.Equal(1, scenario.Fakes[1].RequestCount);
    }
}
