using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Tollgate.Tests.Fakes;
using Tollgate.Tests.Infrastructure;
using Tollgate.Tests.Tenancy;

namespace Tollgate.Tests.Routing;

/// <summary>
/// Task routing, per-request constraints, hedging and verify-then-escalate through the real gateway. Three fake
/// providers: p0 serves d0 (tier 1, cheapest), p1 serves d1 (tier 2), p2 serves d2 (tier 3, dearest). Routes:
/// <c>gpt-4o</c> (cheapest over all), <c>auto</c> (task), <c>hedged</c> (cheapest, hedging on), <c>checked</c> (verify on).
/// </summary>
public sealed class TaskRoutingGatewayTests
{
    private static Task<GatewayScenario> StartAsync(CancellationToken cancellationToken, Action<JsonObject>? alsoConfigure = null) =>
        GatewayScenario.StartAsync(providers: 3, configure: config =>
        {
            alsoConfigure?.Invoke(config);
            var models = config["models"]!.AsObject();
            for (var i = 0; i < 3; i++)
            {
                models[$"d{i}"]!["tier"] = i + 1;
            }

            var routes = config["routes"]!.AsObject();
            routes["auto"] = Configs.Route("task", "d2", "d1", "d0");
            var hedged = Configs.Route("cheapest", "d0", "d1");
            hedged["hedge"] = true;
            hedged["hedgeDelayMs"] = 1_000;
            routes["hedged"] = hedged;
            var verified = Configs.Route("cheapest", "d0", "d1", "d2");
            verified["verify"] = true;
            routes["checked"] = verified;
            config["plans"] = new JsonObject { ["tight"] = new JsonObject { ["monthlyBudgetUsd"] = 0.008, ["overagePer1KTokensUsd"] = 0 } };
        }, cancellationToken: cancellationToken);

    private static async Task<HttpResponseMessage> PostAsync(GatewayScenario scenario, JsonObject body, CancellationToken cancellationToken, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }

        return await scenario.Client.SendAsync(request, cancellationToken);
    }

    private static string Header(HttpResponseMessage response, string name) => response.Headers.GetValues(name).Single();

    [Fact]
    public async Task Auto_StatedClassification_GoesToTheCheapestTierOneDeployment()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("auto"), ct, ("x-tollgate-task", "classification"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p0", Header(response, "x-tollgate-provider"));
        var route = Header(response, "x-tollgate-route");
        Assert.StartsWith("auto; strategy=task; task=classification(stated); min_tier=1; candidates=d0:$", route, StringComparison.Ordinal);
        Assert.Contains("; tried=d0:ok; chosen=d0; expected_cost_usd=", route, StringComparison.Ordinal);
        Assert.DoesNotContain("skipped=", route, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Auto_StatedReasoning_GoesToTierThree_AndSaysWhyTheOthersWereSkipped()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("auto"), ct, ("x-tollgate-task", "reasoning"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p2", Header(response, "x-tollgate-provider"));
        var route = Header(response, "x-tollgate-route");
        Assert.Contains("task=reasoning(stated); min_tier=3; candidates=d2:$", route, StringComparison.Ordinal);
        Assert.Contains("skipped=d1:tier_too_low,d0:tier_too_low; tried=d2:ok; chosen=d2", route, StringComparison.Ordinal);
        Assert.Equal(0, scenario.Fakes[0].RequestCount);
        Assert.Equal(0, scenario.Fakes[1].RequestCount);

        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT task, deployment FROM ledger", ct);
        Assert.Equal([["reasoning", "d2"]], rows);
    }

    [Theory]
    [InlineData("Classify the sentiment of this review as positive, negative or neutral. Reply with the label only.\n\nThe delivery was late and the box was crushed.", "classification", "p0", "d0")]
    [InlineData("Summarize this email thread in two sentences for my manager:\n\nFrom: Ana\nThe vendor moved the go-live to March 3 because their QA found a data migration bug. They will cover the extra hosting cost for February.\nFrom: Raj\nOK, I will tell finance and update the rollout plan.", "summarization", "p0", "d0")]
    [InlineData("A tank fills at 12 litres per minute and drains at 7 litres per minute through a leak. It starts with 40 litres and holds 300. Work out step by step how long it takes to fill, then how long if the leak doubles after 10 minutes.", "reasoning", "p2", "d2")]
    public async Task Auto_ClassifiesTheMessages_AndSendsEachTaskToTheCheapestDeploymentOfItsTier(string prompt, string task, string provider, string deployment)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("auto", content: prompt), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(provider, Header(response, "x-tollgate-provider"));
        var route = Header(response, "x-tollgate-route");
        Assert.Contains($"task={task}(classified,", route, StringComparison.Ordinal);
        Assert.Contains($"chosen={deployment}", route, StringComparison.Ordinal);
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT task FROM ledger", ct);
        Assert.Equal([[task]], rows);
    }

    [Fact]
    public async Task Auto_WhenNoDeploymentOfTheTasksTierCanServe_TheBestTierLeftServesIt()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        // Reasoning needs tier 3; the only tier-3 provider is excluded by the request, so tier 2 is the best left.
        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("auto"), ct, ("x-tollgate-task", "reasoning"), ("x-tollgate-exclude-providers", "p2"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", Header(response, "x-tollgate-provider"));
        Assert.Contains("tier_fallback=true", Header(response, "x-tollgate-route"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("x-tollgate-providers", "p1", "p1", "d0:provider_not_allowed,d2:provider_not_allowed")]
    [InlineData("x-tollgate-exclude-providers", "p0, p2", "p1", "d0:provider_excluded,d2:provider_excluded")]
    [InlineData("x-tollgate-min-tier", "3", "p2", "d0:tier_too_low,d1:tier_too_low")]
    public async Task EachHeaderConstraint_SkipsExactlyTheCandidatesThatCannotMeetIt(string header, string value, string servedBy, string skipped)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody(), ct, (header, value));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(servedBy, Header(response, "x-tollgate-provider"));
        Assert.Contains($"skipped={skipped};", Header(response, "x-tollgate-route"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CostCeiling_SkipsDearerCandidates_AndFailsWith422NamingTheConstraintWhenNoneFits()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        // Worst case with max_tokens 1000: d0 about $0.002 (output $2/M), d1 $0.004, d2 $0.006.
        var body = GatewayScenario.ChatBody();
        body["max_tokens"] = 1000;
        using (var cheapOnly = await PostAsync(scenario, body, ct, ("x-tollgate-max-cost-usd", "0.0025")))
        {
            Assert.Equal(HttpStatusCode.OK, cheapOnly.StatusCode);
            Assert.Equal("p0", Header(cheapOnly, "x-tollgate-provider"));
            Assert.Contains("skipped=d1:too_expensive,d2:too_expensive;", Header(cheapOnly, "x-tollgate-route"), StringComparison.Ordinal);
        }

        using (var none = await PostAsync(scenario, body, ct, ("x-tollgate-max-cost-usd", "0.0001")))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, none.StatusCode);
            var error = (await none.Content.ReadFromJsonAsync<JsonObject>(ct))!["error"]!;
            Assert.Equal("constraints_unsatisfiable", (string)error["code"]!);
            Assert.Contains("d0: too_expensive (expected cost $", (string)error["message"]!, StringComparison.Ordinal);
            Assert.Contains("over the ceiling $0.0001", (string)error["message"]!, StringComparison.Ordinal);
        }

        using (var bestEffort = await PostAsync(scenario, body, ct, ("x-tollgate-max-cost-usd", "0.0001"), ("x-tollgate-best-effort", "true")))
        {
            Assert.Equal(HttpStatusCode.OK, bestEffort.StatusCode);
            Assert.Equal("p0", Header(bestEffort, "x-tollgate-provider"));
            Assert.Contains("best_effort=true", Header(bestEffort, "x-tollgate-route"), StringComparison.Ordinal);
        }

        Assert.Equal(2, scenario.Fakes[0].RequestCount);
        Assert.Equal(0, scenario.Fakes[1].RequestCount + scenario.Fakes[2].RequestCount);
    }

    [Fact]
    public async Task BodyConstraints_AreApplied_AndNeverSentUpstream()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        var body = GatewayScenario.ChatBody();
        body["tollgate"] = new JsonObject { ["providers"] = new JsonArray("p1", "p2"), ["min_tier"] = 2 };
        body["temperature"] = 0.2;
        using var response = await PostAsync(scenario, body, ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", Header(response, "x-tollgate-provider"));
        var sent = JsonNode.Parse(scenario.Fakes[1].Requests.Single().Body)!.AsObject();
        Assert.False(sent.ContainsKey("tollgate"));
        Assert.Equal(0.2, (double)sent["temperature"]!);

        // Headers lie over the body field by field.
        using var overridden = await PostAsync(scenario, body, ct, ("x-tollgate-providers", "p2"));
        Assert.Equal("p2", Header(overridden, "x-tollgate-provider"));
    }

    [Theory]
    [InlineData("x-tollgate-max-latency-ms", "soon")]
    [InlineData("x-tollgate-max-cost-usd", "-1")]
    [InlineData("x-tollgate-min-tier", "9")]
    [InlineData("x-tollgate-task", "poetry")]
    [InlineData("x-tollgate-best-effort", "maybe")]
    public async Task MalformedConstraintHeader_Is400NamingTheHeader(string header, string value)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody(), ct, (header, value));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["error"]!;
        Assert.Equal(header, (string)error["param"]!);
        Assert.Equal("invalid_header", (string)error["code"]!);
        Assert.Equal(0, scenario.Fakes.Sum(f => f.RequestCount));
    }

    [Theory]
    [InlineData("""{"task":"poetry"}""", "tollgate.task")]
    [InlineData("""{"max_cost_usd":"cheap"}""", "tollgate.max_cost_usd")]
    [InlineData("""{"providers":"p1"}""", "tollgate.providers")]
    [InlineData("""{"speed":"fast"}""", "tollgate.speed")]
    [InlineData("""[1]""", "tollgate")]
    public async Task MalformedBodyConstraints_Are400NamingTheField(string tollgate, string param)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        var body = GatewayScenario.ChatBody();
        body["tollgate"] = JsonNode.Parse(tollgate);
        using var response = await PostAsync(scenario, body, ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, (string)(await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["error"]!["param"]!);
    }

    [Fact]
    public async Task Hedging_WhenTheFirstIsSlowToAnswer_TheSecondWins_AndBothAttemptsAreMetered()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Hang());
        scenario.Fakes[1].Enqueue(FakeBehavior.Ok("fast answer", promptTokens: 12, completionTokens: 7));

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("hedged", content: "Say hello to the hedge."), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", Header(response, "x-tollgate-provider"));
        Assert.Contains("tried=d0:hedge_lost,d1:ok; chosen=d1", Header(response, "x-tollgate-route"), StringComparison.Ordinal);
        await scenario.Fakes[0].WaitForCancelledAsync(ct);

        var requestId = Header(response, "x-request-id");
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory,
            $"SELECT deployment, attempt_kind, usage_source, input_uncached, output_text, cost_pusd, price_pusd FROM ledger WHERE request_id = '{requestId}' ORDER BY seq", ct);
        Assert.Equal(2, rows.Count);

        // The loser: cancelled before answering, so its prompt is metered as an estimate at d0's input price ($1/M).
        Assert.Equal("d0", rows[0][0]);
        Assert.Equal("hedge", rows[0][1]);
        Assert.Equal("estimated", rows[0][2]);
        var estimatedInput = (long)rows[0][3]!;
        Assert.True(estimatedInput > 0);
        Assert.Equal(0L, rows[0][4]);
        Assert.Equal(estimatedInput * 1_000_000L, rows[0][5]);

        // The winner: the answer, exactly as reported (12 in at $2/M, 7 out at $4/M).
        Assert.Equal(["d1", null, "reported", 12L, 7L, (12 * 2_000_000L) + (7 * 4_000_000L), 0L], rows[1]);

        // Reports count one request with both attempts' cost.
        using var usage = await scenario.Gateway.Admin.GetAsync("admin/usage?groupBy=", ct);
        var totals = (await usage.Content.ReadFromJsonAsync<JsonObject>(ct))!["totals"]!;
        Assert.Equal(1, (int)totals["requests"]!);
        Assert.Equal(((estimatedInput * 1_000_000L) + (12 * 2_000_000L) + (7 * 4_000_000L)) / 1_000_000_000_000m, (decimal)totals["costUsd"]!);
    }

    [Fact]
    public async Task Hedging_AStreamSlowToItsFirstEvent_IsRacedAndTheFasterStreamIsRelayed()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Hang());
        scenario.Fakes[1].Enqueue(FakeBehavior.Ok("streamed from the hedge"));

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("hedged", stream: true), ct);
        var text = await response.Content.ReadAsStringAsync(ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", Header(response, "x-tollgate-provider"));
        Assert.Contains("tried=d0:hedge_lost,d1:ok", Header(response, "x-tollgate-route"), StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        var relayed = string.Concat(text.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonNode.Parse(l["data: ".Length..])!["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>()));
        Assert.Equal("streamed from the hedge", relayed);
        await scenario.Fakes[0].WaitForCancelledAsync(ct);

        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT deployment, attempt_kind FROM ledger ORDER BY seq", ct);
        Assert.Equal([["d0", "hedge"], ["d1", null]], rows);
    }

    [Fact]
    public async Task Hedging_WhenTheFirstAnswersInTime_NoSecondAttemptStarts()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);

        // Warm the dispatch path first, so the first request's JIT time cannot pass for a slow provider.
        using (await PostAsync(scenario, GatewayScenario.ChatBody(), ct))
        {
        }

        using var response = await PostAsync(scenario, GatewayScenario.ChatBody("hedged"), ct);

        // The fake answers at once, well inside the 1 s hedge delay.
        Assert.Equal("p0", Header(response, "x-tollgate-provider"));
        Assert.Equal(0, scenario.Fakes[1].RequestCount);
    }

    private static JsonObject SchemaBody(string model = "checked")
    {
        var body = GatewayScenario.ChatBody(model, content: "What is six times seven? Answer in JSON.");
        body["response_format"] = JsonNode.Parse("""
            {"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":
              {"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"],"additionalProperties":false}}}
            """);
        return body;
    }

    [Fact]
    public async Task Verify_WhenTheCheapAnswerFailsTheSchema_EscalatesOneTier_AndMetersBoth()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("""{"answer":"forty-two"}"""));
        scenario.Fakes[1].Enqueue(FakeBehavior.Ok("""{"answer":42}"""));

        using var response = await PostAsync(scenario, SchemaBody(), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", Header(response, "x-tollgate-provider"));
        Assert.Equal("1", Header(response, "x-tollgate-escalations"));
        Assert.Equal("true", Header(response, "x-tollgate-verified"));
        Assert.Contains("verify=true; escalations=1", Header(response, "x-tollgate-route"), StringComparison.Ordinal);
        Assert.Contains("tried=d0:schema_mismatch,d1:ok; chosen=d1", Header(response, "x-tollgate-route"), StringComparison.Ordinal);
        var content = (string)(await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["choices"]![0]!["message"]!["content"]!;
        Assert.Equal("""{"answer":42}""", content);
        Assert.Equal(0, scenario.Fakes[2].RequestCount);

        var requestId = Header(response, "x-request-id");
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory,
            $"SELECT deployment, attempt_kind, escalations, cost_pusd FROM ledger WHERE request_id = '{requestId}' ORDER BY seq", ct);
        Assert.Equal([["d0", "escalated", 0L, (12 * 1_000_000L) + (7 * 2_000_000L)], ["d1", null, 1L, (12 * 2_000_000L) + (7 * 4_000_000L)]], rows);
    }

    [Fact]
    public async Task Verify_WhenTheCheapAnswerPasses_NothingEscalates()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("""{"answer":42}"""));

        using var response = await PostAsync(scenario, SchemaBody(), ct);

        Assert.Equal("p0", Header(response, "x-tollgate-provider"));
        Assert.Equal("0", Header(response, "x-tollgate-escalations"));
        Assert.Equal("true", Header(response, "x-tollgate-verified"));
        Assert.Equal(0, scenario.Fakes[1].RequestCount + scenario.Fakes[2].RequestCount);
    }

    [Fact]
    public async Task Verify_WhenEveryTierFails_TheLastAnswerIsReturnedMarkedUnverified()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("not json at all"));
        scenario.Fakes[1].Enqueue(FakeBehavior.Ok("""{"answer":"x"}"""));
        scenario.Fakes[2].Enqueue(FakeBehavior.Ok("""{"answer":42,"extra":true}"""));

        using var response = await PostAsync(scenario, SchemaBody(), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p2", Header(response, "x-tollgate-provider"));
        Assert.Equal("2", Header(response, "x-tollgate-escalations"));
        Assert.Equal("false", Header(response, "x-tollgate-verified"));
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT deployment, attempt_kind FROM ledger ORDER BY seq", ct);
        Assert.Equal([["d0", "escalated"], ["d1", "escalated"], ["d2", null]], rows);
    }

    [Fact]
    public async Task Verify_IsOnlyForJsonSchemaRequests_AndCanBeAskedForPerRequest()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("not json"), FakeBehavior.Ok("not json"));
        scenario.Fakes[1].Enqueue(FakeBehavior.Ok("""{"answer":42}"""));

        // No schema: nothing to check, the cheapest answer is final.
        using (var plain = await PostAsync(scenario, GatewayScenario.ChatBody("checked"), ct))
        {
            Assert.Equal("p0", Header(plain, "x-tollgate-provider"));
            Assert.False(plain.Headers.Contains("x-tollgate-escalations"));
        }

        // A route without verify, asked per request.
        using var asked = await PostAsync(scenario, SchemaBody("gpt-4o"), ct, ("x-tollgate-verify", "true"));
        Assert.Equal("p1", Header(asked, "x-tollgate-provider"));
        Assert.Equal("1", Header(asked, "x-tollgate-escalations"));
    }

    [Fact]
    public async Task Verify_ReservesEveryTierItMayPayFor_SoABudgetCannotBeOverspentByEscalation()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "tight-co", "tight", ct);
        var key = (string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant }, ct))["key"]!;
        using var client = scenario.Gateway.NewClient(key);

        // Worst cases with max_tokens 1000: d0 about $0.002, d1 $0.004, d2 $0.006; the budget is $0.008.
        var plain = SchemaBody("gpt-4o");
        plain["max_tokens"] = 1000;
        var verified = SchemaBody();
        verified["max_tokens"] = 1000;

        // One answer at the dearest candidate fits the budget...
        using (var one = await client.PostAsync("v1/chat/completions", new StringContent(plain.ToJsonString(), Encoding.UTF8, "application/json"), ct))
        {
            Assert.Equal(HttpStatusCode.OK, one.StatusCode);
        }

        // ...but an answer from every tier does not, so verify is refused before anything is sent.
        using var escalating = await client.PostAsync("v1/chat/completions", new StringContent(verified.ToJsonString(), Encoding.UTF8, "application/json"), ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, escalating.StatusCode);
        Assert.Equal("budget_exceeded", (string)(await escalating.Content.ReadFromJsonAsync<JsonObject>(ct))!["error"]!["code"]!);
        Assert.Equal(1, scenario.Fakes.Sum(f => f.RequestCount));
    }

    [Fact]
    public async Task Verify_AnEscalatedAnswerOfUnknownCost_CountsAgainstTheBudgetAtItsBound_NotAsZero()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct, config => config["models"]!["d0"]!.AsObject().Remove("cachedInputPerMillion"));
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "tight-co", "tight", ct);
        var key = (string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant }, ct))["key"]!;
        using var client = scenario.Gateway.NewClient(key);

        // d0 lists no cached-input price, so its answer with 5 cached tokens has an unknown cost; it fails the schema
        // and is escalated to d1, whose answer is priced exactly.
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("""{"answer":"forty-two"}""", cachedTokens: 5));
        scenario.Fakes[1].Enqueue(FakeBehavior.Ok("""{"answer":42}"""));
        var body = SchemaBody();
        body["max_tokens"] = 10;

        using var response = await client.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p1", Header(response, "x-tollgate-provider"));
        var rows = await Tenants.QueryAsync(scenario.Gateway.DataDirectory, "SELECT deployment, attempt_kind, cost_pusd FROM ledger ORDER BY seq", ct);
        Assert.Equal([["d0", "escalated", null], ["d1", null, (12 * 2_000_000L) + (7 * 4_000_000L)]], rows);

        // The budget counts d1's cost, and d0's at its bound: 7 uncached at $1/M, and the 5 cached at d0's dearest
        // listed rate ($2/M, its output), with 7 output at $2/M. Counting the unknown as 0 would read 0.000052.
        var limits = (await client.GetFromJsonAsync<JsonObject>("v1/usage", ct))!["limits"]!;
        Assert.Equal(0.000052m + 0.000031m, (decimal)limits["tenantMonthCostUsd"]!);
    }

    [Fact]
    public async Task Budget_AnAnswerOfUnknownCost_CountsAtItsBound_NotAtTheReservedWorstCase()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct, config => config["models"]!["d0"]!.AsObject().Remove("cachedInputPerMillion"));
        var tenant = await Tenants.CreateAsync(scenario.Gateway, "tight-co", "tight", ct);
        var key = (string)(await Tenants.CreateKeyAsync(scenario.Gateway, new { name = "k", tenant }, ct))["key"]!;
        using var client = scenario.Gateway.NewClient(key);
        scenario.Fakes[0].Enqueue(FakeBehavior.Ok("hello", cachedTokens: 5));
        var body = GatewayScenario.ChatBody();
        body["max_tokens"] = 100;

        using var response = await client.PostAsync("v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("p0", Header(response, "x-tollgate-provider"));
        Assert.Equal("unknown", Header(response, "x-tollgate-cost-usd"));

        // 7 uncached at $1/M, the 5 cached at d0's dearest listed rate ($2/M), 7 output at $2/M. The reservation held
        // the prompt and 100 output tokens at d0's rates: more than the answer used.
        var limits = (await client.GetFromJsonAsync<JsonObject>("v1/usage", ct))!["limits"]!;
        Assert.Equal(0.000031m, (decimal)limits["tenantMonthCostUsd"]!);
    }

    [Fact]
    public async Task Providers_ShowsTierAndLiveLatencyFromRealTraffic()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var scenario = await StartAsync(ct);
        using (await PostAsync(scenario, GatewayScenario.ChatBody(), ct))
        {
        }

        using (await PostAsync(scenario, GatewayScenario.ChatBody(stream: true), ct))
        {
        }

        var providers = (await scenario.Gateway.Admin.GetFromJsonAsync<JsonObject>("providers", ct))!["providers"]!.AsArray();
        var d0 = providers.Single(p => (string)p!["name"]! == "p0")!["deployments"]![0]!;
        Assert.Equal(1, (int)d0["tier"]!);
        Assert.Equal(2, (int)d0["requests"]!);
        Assert.NotNull(d0["firstTokenP50Ms"]);
        Assert.NotNull(d0["firstTokenP95Ms"]);
        Assert.NotNull(d0["responseP50Ms"]);
        Assert.NotNull(d0["msPerOutputToken"]);
    }
}
