namespace Tollgate.Health;

/// <summary>
/// One latency series of a deployment: a decaying average (reacts within about twenty samples) and
/// percentiles over the last <see cref="Capacity"/> samples. Not thread-safe: the owning
/// <see cref="DeploymentHealth"/> guards it with its lock. Percentiles are computed when read and cached
/// until the next sample, so a busy route that reads its hedge delay per request sorts at most once per sample.
/// </summary>
internal sealed class LatencyWindow
{
    public const int Capacity = 128;

    private const double EwmaAlpha = 0.1;

    private readonly double[] _samples = new double[Capacity];
    private readonly double[] _sorted = new double[Capacity];
    private int _count;
    private int _next;
    private bool _sortedValid;

    public int Count => _count;

    public double? Ewma { get; private set; }

    public void Add(double value)
    {
        Ewma = Ewma is { } e ? e + (EwmaAlpha * (value - e)) : value;
        _samples[_next] = value;
        _next = (_next + 1) % Capacity;
        _count = Math.Min(_count + 1, Capacity);
        _sortedValid = false;
    }

    /// <summary>The nearest-rank percentile (0–100) of the recent samples; null before the first.</summary>
    public double? Percentile(double percent)
    {
        if (_count == 0)
        {
            return null;
        }

        if (!_sortedValid)
        {
            _samples.AsSpan(0, _count).CopyTo(_sorted);
            Array.Sort(_sorted, 0, _count);
            _sortedValid = true;
        }

        var rank = (int)Math.Ceiling(percent / 100 * _count);
        return _sorted[Math.Clamp(rank - 1, 0, _count - 1)];
    }
}
