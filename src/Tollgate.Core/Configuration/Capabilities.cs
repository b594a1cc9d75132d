namespace Tollgate.Configuration;

/// <summary>What a deployment can do beyond plain chat; a request that needs one skips deployments without it.</summary>
[Flags]
public enum Capability
{
    None = 0,
    Tools = 1,
    Vision = 2,
    Json = 4,
    Embeddings = 8,
}

public static class Capabilities
{
    public static readonly IReadOnlyList<string> Names = ["tools", "vision", "json", "embeddings"];

    public static bool TryParse(string name, out Capability capability)
    {
        capability = name.ToLowerInvariant() switch
        {
            "tools" => Capability.Tools,
            "vision" => Capability.Vision,
            "json" => Capability.Json,
            "embeddings" => Capability.Embeddings,
            _ => Capability.None,
        };
        return capability != Capability.None;
    }

    public static Capability Parse(IEnumerable<string> names)
    {
        var all = Capability.None;
        foreach (var name in names)
        {
            if (TryParse(name, out var one))
            {
                all |= one;
            }
        }

        return all;
    }

    public static string Describe(Capability capability) => capability switch
    {
        Capability.Tools => "tools",
        Capability.Vision => "vision (image content)",
        Capability.Json => "response_format",
        Capability.Embeddings => "embeddings",
        _ => capability.ToString().ToLowerInvariant(),
    };
}
