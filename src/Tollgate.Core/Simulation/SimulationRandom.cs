namespace Tollgate.Simulation;

/// <summary>
/// The simulation's only source of randomness: seeded, so a seed always gives the same workload and the same
/// outcomes. Not for anything security-related.
/// </summary>
internal sealed class SimulationRandom(int seed)
{
#pragma warning disable CA5394 // Deterministic simulation draws, not secrets: a seeded generator is the point.
    private readonly Random _random = new(seed);

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => _random.NextDouble();

    /// <summary>Uniform in [<paramref name="min"/>, <paramref name="max"/>).</summary>
    public int Next(int min, int max) => _random.Next(min, max);
#pragma warning restore CA5394

    public bool Chance(double probability) => NextDouble() < probability;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(0, items.Count)];

    /// <summary>Standard normal (Box–Muller).</summary>
    public double Normal()
    {
        var u = 1 - NextDouble();
        var v = NextDouble();
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v);
    }

    /// <summary>Log-normal with the given median: token counts and latencies are skewed, with a long tail.</summary>
    public double LogNormal(double median, double sigma) => median * Math.Exp(sigma * Normal());

    /// <summary>Exponential with the given mean: the gaps between independent arrivals.</summary>
    public double Exponential(double mean) => -mean * Math.Log(1 - NextDouble());
}
