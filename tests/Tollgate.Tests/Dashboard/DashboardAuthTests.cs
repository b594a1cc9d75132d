using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Tollgate.Server.Auth;
using Tollgate.Server.Dashboard;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Tenancy;

namespace Tollgate.Tests.Dashboard;

/// <summary>The dashboard's login, session cookie and its limits, over plain HTTP (no browser).</summary>
public sealed class DashboardAuthTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Login_AdminKey_SetsStrictHttpOnlyCookieThatReadsAdminData()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);

        using var login = await browser.LoginAsync(TestGateway.AdminKeyValue, Ct);
        var setCookie = login.Headers.GetValues("Set-Cookie").Single();
        var session = await browser.GetJsonAsync("dashboard/session", Ct);
        using var providers = await browser.GetAsync("providers", Ct);
        using var tenants = await browser.GetAsync("admin/tenants", Ct);

        Assert.Equal(HttpStatusCode.SeeOther, login.StatusCode);
        Assert.Equal("/dashboard", login.Headers.Location!.OriginalString);
        Assert.StartsWith(DashboardSessions.CookieName + "=", setCookie, StringComparison.Ordinal);
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("path=/;", setCookie + ";", StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(TestGateway.AdminKeyValue, setCookie, StringComparison.Ordinal);
        Assert.Equal("admin", (string?)session["role"]);
        Assert.Equal(HttpStatusCode.OK, providers.StatusCode);
        Assert.Equal(HttpStatusCode.OK, tenants.StatusCode);
    }

    [Fact]
    public async Task AdminCookie_StateChangingOrOtherEndpoints_StillNeedTheHeader()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);
        (await browser.LoginAsync(TestGateway.AdminKeyValue, Ct)).Dispose();

        using var createKey = await browser.SendAsync(HttpMethod.Post, "admin/keys", JsonContent.Create(new { name = "csrf" }), Ct);
        using var createTenant = await browser.SendAsync(HttpMethod.Post, "admin/tenants", JsonContent.Create(new { name = "csrf" }), Ct);
        using var reset = await browser.SendAsync(HttpMethod.Post, "admin/health/reset", null, Ct);
        using var listKeys = await browser.GetAsync("admin/keys", Ct);
        using var chat = await browser.SendAsync(HttpMethod.Post, "v1/chat/completions", JsonContent.Create(GatewayScenario.ChatBody()), Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, createKey.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, createTenant.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, reset.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, listKeys.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, chat.StatusCode);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
    }

    [Fact]
    public async Task Login_WrongKey_RedirectsWithoutCookieOrKeyInUrl()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);

        using var wrongAdmin = await browser.LoginAsync("tga-not-the-admin-key-000000000", Ct);
        using var wrongClient = await browser.LoginAsync("tg-not-a-real-client-key-00000000", Ct);
        using var session = await browser.GetAsync("dashboard/session", Ct);

        Assert.Equal(HttpStatusCode.SeeOther, wrongAdmin.StatusCode);
        Assert.Equal("/dashboard?login=failed", wrongAdmin.Headers.Location!.OriginalString);
        Assert.False(wrongAdmin.Headers.Contains("Set-Cookie"));
        Assert.False(wrongClient.Headers.Contains("Set-Cookie"));
        Assert.Equal(HttpStatusCode.Unauthorized, session.StatusCode);
    }

    [Fact]
    public async Task TenantCookie_ReadsOnlyItsOwnTenant()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var acme = await Tenants.CreateAsync(scenario.Gateway, "Acme", "pro", Ct);
        var globex = await Tenants.CreateAsync(scenario.Gateway, "Globex", "pro", Ct);
        var key = (string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "app", tenant = acme }, Ct))["key"]!;
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);
        (await browser.LoginAsync(key, Ct)).Dispose();

        var session = await browser.GetJsonAsync("dashboard/session", Ct);
        var usage = await browser.GetJsonAsync("v1/usage", Ct);
        using var other = await browser.GetAsync($"v1/usage?tenant={globex}", Ct);
        using var providers = await browser.GetAsync("providers", Ct);
        using var reports = await browser.GetAsync($"admin/reports/usage?tenant={globex}", Ct);
        using var tenants = await browser.GetAsync("admin/tenants", Ct);
        using var adminUsage = await browser.GetAsync($"admin/usage?tenant={globex}", Ct);

        Assert.Equal("tenant", (string?)session["role"]);
        Assert.Equal(acme, (string?)session["tenant"]);
        Assert.Equal("Acme", (string?)session["tenantName"]);
        Assert.Equal(acme, (string?)usage["tenant"]);
        Assert.Equal(acme, (string?)usage["limits"]!["tenant"]);
        Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, providers.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, reports.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, tenants.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, adminUsage.StatusCode);
    }

    [Fact]
    public async Task TenantCookie_KeyRevoked_LosesAccessAtOnce()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var acme = await Tenants.CreateAsync(scenario.Gateway, "Acme", "pro", Ct);
        var created = await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "app", tenant = acme }, Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);
        (await browser.LoginAsync((string)created["key"]!, Ct)).Dispose();

        using var before = await browser.GetAsync("v1/usage", Ct);
        using (var revoke = await scenario.Gateway.Admin.DeleteAsync($"admin/keys/{(string)created["id"]!}", Ct))
        {
            Assert.True(revoke.IsSuccessStatusCode);
        }

        using var after = await browser.GetAsync("v1/usage", Ct);

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
    }

    [Theory]
    [InlineData("Origin", "http://evil.example")]
    [InlineData("Sec-Fetch-Site", "cross-site")]
    public async Task Login_FromAnotherSite_IsRefused(string header, string value)
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);

        using var login = await browser.LoginAsync(TestGateway.AdminKeyValue, Ct, (header, value));

        Assert.Equal(HttpStatusCode.Forbidden, login.StatusCode);
        Assert.False(login.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task Logout_EndsTheSessionAndClearsTheCookie()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);
        (await browser.LoginAsync(TestGateway.AdminKeyValue, Ct)).Dispose();
        var cookie = browser.Cookie;

        using var logout = await browser.SendAsync(HttpMethod.Post, "dashboard/logout", null, Ct);
        browser.Cookie = cookie;
        using var replayed = await browser.GetAsync("providers", Ct);

        Assert.Equal(HttpStatusCode.SeeOther, logout.StatusCode);
        Assert.Contains("expires=Thu, 01 Jan 1970", logout.Headers.GetValues("Set-Cookie").Single(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.Unauthorized, replayed.StatusCode);
    }

    [Fact]
    public async Task Assets_ServedFromTheAssemblyWithStrictCspAndETag()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        var http = scenario.Gateway.Anonymous;

        using var page = await http.GetAsync("dashboard", Ct);
        using var script = await http.GetAsync("dashboard/assets/app.js", Ct);
        using var revalidate = new HttpRequestMessage(HttpMethod.Get, "dashboard/assets/app.js");
        revalidate.Headers.TryAddWithoutValidation("If-None-Match", script.Headers.ETag!.Tag);
        using var notModified = await http.SendAsync(revalidate, Ct);
        using var missing = await http.GetAsync("dashboard/assets/nope.js", Ct);
        var html = await page.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var csp = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Contains("action=\"/dashboard/login\"", html, StringComparison.Ordinal);
        Assert.Contains("method=\"post\"", html, StringComparison.Ordinal);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task AdminApi_TooManyWrongKeys_AddressRefusedWith429EvenWithTheRightKey()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var guesser = scenario.Gateway.NewClient("tga-a-wrong-guess");

        var wrong = new List<HttpStatusCode>();
        for (var i = 0; i < KeyGuessLimiter.FailuresPerWindow; i++)
        {
            using var response = await guesser.GetAsync("admin/keys", Ct);
            wrong.Add(response.StatusCode);
        }

        using var right = await scenario.Gateway.Admin.GetAsync("admin/keys", Ct);
        var problem = await right.Content.ReadFromJsonAsync<JsonObject>(Ct);
        using var noKey = await scenario.Gateway.Anonymous.GetAsync("admin/keys", Ct);
        using var client = await scenario.Client.GetAsync("v1/models", Ct);

        Assert.All(wrong, status => Assert.Equal(HttpStatusCode.Unauthorized, status));
        Assert.Equal(HttpStatusCode.TooManyRequests, right.StatusCode); // its key is not even checked
        Assert.InRange(int.Parse(right.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.Equal("Too many wrong keys", (string?)problem!["title"]);
        Assert.Equal(HttpStatusCode.Unauthorized, noKey.StatusCode); // no key presented is no guess
        Assert.Equal(HttpStatusCode.OK, client.StatusCode); // client keys are not behind this limit
    }

    [Fact]
    public async Task Login_TooManyWrongKeys_LockedOutEvenWithTheAdminKey_AndTheBearerCounts()
    {
        await using var scenario = await GatewayScenario.StartAsync(providers: 1, cancellationToken: Ct);
        using var browser = new CookieClient(scenario.Gateway.BaseAddress);

        // Wrong logins and wrong admin bearers count together: a guesser cannot double its tries by switching.
        for (var i = 0; i < KeyGuessLimiter.FailuresPerWindow - 1; i++)
        {
            using var failed = await browser.LoginAsync("tga-a-wrong-guess-" + i, Ct);
            Assert.Equal("/dashboard?login=failed", failed.Headers.Location!.OriginalString);
        }

        using (var lastGuess = scenario.Gateway.NewClient("tga-one-more"))
        using (var refused = await lastGuess.GetAsync("providers", Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        using var locked = await browser.LoginAsync(TestGateway.AdminKeyValue, Ct);

        Assert.Equal(HttpStatusCode.SeeOther, locked.StatusCode);
        Assert.Equal("/dashboard?login=locked", locked.Headers.Location!.OriginalString);
        Assert.False(locked.Headers.Contains("Set-Cookie"));
    }

    /// <summary>An HTTP client that keeps the dashboard cookie by hand and never follows redirects, as a test of what the server sends.</summary>
    private sealed class CookieClient(Uri baseAddress) : IDisposable
    {
        private readonly HttpClient _http = new(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = baseAddress };

        public string? Cookie { get; set; }

        public async Task<HttpResponseMessage> LoginAsync(string key, CancellationToken cancellationToken, (string Name, string Value)? header = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "dashboard/login")
            {
                Content = new FormUrlEncodedContent([new("key", key)]),
            };
            if (header is { } h)
            {
                request.Headers.TryAddWithoutValidation(h.Name, h.Value);
            }

            var response = await _http.SendAsync(request, cancellationToken);
            Remember(response);
            return response;
        }

        public Task<HttpResponseMessage> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, cancellationToken);

        public async Task<JsonObject> GetJsonAsync(string path, CancellationToken cancellationToken)
        {
            using var response = await GetAsync(path, cancellationToken);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (await response.Content.ReadFromJsonAsync<JsonObject>(cancellationToken))!;
        }

        public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
        {
            using var request = new HttpRequestMessage(method, path) { Content = content };
            if (Cookie is not null)
            {
                request.Headers.Add("Cookie", Cookie);
            }

            var response = await _http.SendAsync(request, cancellationToken);
            Remember(response);
            return response;
        }

        public void Dispose() => _http.Dispose();

        private void Remember(HttpResponseMessage response)
        {
            if (response.Headers.TryGetValues("Set-Cookie", out var values))
            {
                var pair = values.Single().Split(';')[0];
                Cookie = pair.EndsWith('=') ? null : pair;
            }
        }
    }
}
