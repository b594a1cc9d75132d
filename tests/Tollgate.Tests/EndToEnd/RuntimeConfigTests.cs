using System.Text.Json.Nodes;
using Tollgate.Tests.Infrastructure;

namespace Tollgate.Tests.EndToEnd;

/// <summary>
/// The runtime settings the <c>tollgate</c> executable ships with (its runtimeconfig.json, generated from the
/// server project). They are measured choices (docs/performance.md) that nothing else would notice losing.
/// </summary>
public sealed class RuntimeConfigTests
{
    private static JsonObject ConfigProperties()
    {
        var path = Path.ChangeExtension(GatewayProcess.ExecutablePath, ".runtimeconfig.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        return config["runtimeOptions"]!["configProperties"]!.AsObject();
    }

    [Fact]
    public void TieredCompilation_PromotesHotMethodsWithoutTheStartupDelay()
    {
        // .NET's default waits 1 s without new methods (on one CPU) before promoting, and every promotion restarts it.
        Assert.Equal(0, ConfigProperties()["System.Runtime.TieredCompilation.CallCountingDelayMs"]!.GetValue<int>());
    }

    [Fact]
    public void Gc_YoungGenerationBudgetIsCappedAt8MiB_AndWorkstationGc()
    {
        var properties = ConfigProperties();
        Assert.Equal(8 * 1024 * 1024, properties["System.GC.Gen0MaxBudget"]!.GetValue<int>());
        Assert.False(properties["System.GC.Server"]!.GetValue<bool>());
    }
}
