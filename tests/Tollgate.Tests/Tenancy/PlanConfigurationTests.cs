using System.Text.Json.Nodes;
using Tollgate.Configuration;

namespace Tollgate.Tests.Tenancy;

public sealed class PlanConfigurationTests
{
    [Fact]
    public void Load_WithoutPlansSection_HasTheBuiltInFour()
    {
        var options = ConfigurationLoader.Load(new JsonObject { ["useDefaults"] = false }, new Dictionary<string, string>());

        Assert.Equal(["business", "free", "pro", "starter"], options.Plans.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(0m, options.Plans["free"].MonthlyFeeUsd);
        Assert.True(options.Plans["free"].HardQuota);
        Assert.True(options.Plans["free"].IncludedTokens > 0);
        Assert.Equal(99m, options.Plans["business"].MonthlyFeeUsd);
        Assert.All(options.Plans.Values, p => Assert.Equal(0.005m, p.OveragePer1KTokensUsd));
    }

    [Fact]
    public void Load_UserPlan_ReplacesBuiltInWholeAndAddsNew()
    {
        var user = JsonNode.Parse("""
            { "plans": { "pro": { "monthlyFeeUsd": 49, "includedTokens": 1000 }, "capped": { "monthlyBudgetUsd": 0.05, "rpm": 10 } } }
            """)!.AsObject();

        var options = ConfigurationLoader.Load(user, new Dictionary<string, string>());

        Assert.Equal(49m, options.Plans["pro"].MonthlyFeeUsd);
        Assert.Null(options.Plans["pro"].Rpm);
        Assert.Equal(0.05m, options.Plans["capped"].MonthlyBudgetUsd);
        Assert.Equal(5, options.Plans.Count);
    }

    [Fact]
    public void Load_InvalidPlan_ListsEveryProblemWithItsKey()
    {
        var user = JsonNode.Parse("""
            { "plans": { "bad": { "monthlyFeeUsd": -1, "includedTokens": -5, "rpm": 0, "overagePer1KTokensUsd": -0.1 } } }
            """)!.AsObject();

        var ex = Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(user, new Dictionary<string, string>()));

        Assert.Contains(ex.Errors, e => e.StartsWith("plans:bad:monthlyFeeUsd", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("plans:bad:includedTokens", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("plans:bad:rpm", StringComparison.Ordinal));
        Assert.Contains(ex.Errors, e => e.StartsWith("plans:bad:overagePer1KTokensUsd", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_UnknownPlanField_IsAnError()
    {
        var user = JsonNode.Parse("""{ "plans": { "pro": { "monthlyFee": 49 } } }""")!.AsObject();

        Assert.Throws<TollgateConfigurationException>(() => ConfigurationLoader.Load(user, new Dictionary<string, string>()));
    }
}
