using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Tollgate.Routing.Classification;

/// <summary>Hyperparameters of <see cref="TaskModel.Train"/>; the defaults were chosen by cross-validation on the training file only.</summary>
internal sealed record TrainingOptions
{
    public int Epochs { get; init; } = 30;
    public float LearningRate { get; init; } = 0.2f;

    /// <summary>L2 on cue and structural weights: small, they are meant to carry the decision.</summary>
    public float DenseL2 { get; init; } = 1e-4f;

    /// <summary>L2 on hashed n-gram weights: larger, so words seen in a few training prompts do not overfit.</summary>
    public float HashedL2 { get; init; } = 2e-3f;

    public uint Seed { get; init; } = 20251122;
}

/// <summary>One training example as features.</summary>
internal readonly record struct FeatureVector(int[] Features, float[] Values, int Label);

/// <summary>
/// A multinomial logistic regression over <see cref="TaskFeatures"/>, trained with averaged SGD in a
/// fixed order from a fixed seed, so the same data gives bit-identical weights on every start.
/// Weights are laid out 8 floats per feature (7 tasks and a pad) so scoring one feature is one vector add.
/// </summary>
internal sealed class TaskModel
{
    public const int Stride = 8;

    private static readonly Lazy<TaskModel> Lazy = new(() => Train(TrainingData.Featurize(TrainingData.LoadEmbedded()), new TrainingOptions()), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly float[] _weights;

    private TaskModel(float[] weights) => _weights = weights;

    /// <summary>The model trained from the embedded training file, on first use (a few milliseconds).</summary>
    public static TaskModel Shared => Lazy.Value;

    /// <summary>Adds the request's weighted features into <paramref name="logits"/> (length ≥ 8). False when the body is unreadable.</summary>
    public bool Score(ReadOnlySpan<byte> body, Span<float> logits)
    {
        Span<byte> buffer = stackalloc byte[RequestText.BufferSize];
        if (!RequestText.TryRead(body, buffer, out var text))
        {
            return false;
        }

        Score(in text, logits);
        return true;
    }

    /// <summary>Scores a conversation the request parser already located in <paramref name="body"/>.</summary>
    public void Score(ReadOnlySpan<byte> body, scoped in ConversationText conversation, bool jsonResponse, bool tools, Span<float> logits)
    {
        Span<byte> buffer = stackalloc byte[RequestText.BufferSize];
        RequestText.TryRead(body, in conversation, jsonResponse, tools, buffer, out var text);
        Score(in text, logits);
    }

    private void Score(scoped in RequestText text, Span<float> logits)
    {
        var sink = new ScoreSink(_weights);
        TaskFeatures.Extract(in text, ref sink);
        sink.Total.CopyTo(logits);
    }

    public static TaskModel Train(IReadOnlyList<FeatureVector> examples, TrainingOptions options)
    {
        const int K = TaskKinds.Count;
        var size = TaskFeatures.FeatureCount * Stride;
        var weights = new float[size];
        var updates = new double[size];

        // Balance the tasks: each task weighs the same in total whatever its number of examples.
        Span<float> classWeight = stackalloc float[K];
        Span<int> counts = stackalloc int[K];
        foreach (var example in examples)
        {
            counts[example.Label]++;
        }

        for (var k = 0; k < K; k++)
        {
            classWeight[k] = counts[k] == 0 ? 0 : examples.Count / (float)(K * counts[k]);
        }

        var order = new int[examples.Count];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var state = options.Seed | 1;
        Span<float> z = stackalloc float[K];
        long step = 1;
        for (var epoch = 0; epoch < options.Epochs; epoch++)
        {
            for (var i = order.Length - 1; i > 0; i--)
            {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                var j = (int)(state % (uint)(i + 1));
                (order[i], order[j]) = (order[j], order[i]);
            }

            var rate = options.LearningRate / (1f + (0.2f * epoch));
            foreach (var index in order)
            {
                var example = examples[index];
                z.Clear();
                for (var f = 0; f < example.Features.Length; f++)
                {
                    var row = example.Features[f] * Stride;
                    var v = example.Values[f];
                    for (var k = 0; k < K; k++)
                    {
                        z[k] += weights[row + k] * v;
                    }
                }

                Softmax(z);
                for (var k = 0; k < K; k++)
                {
                    z[k] = (z[k] - (k == example.Label ? 1f : 0f)) * classWeight[example.Label];
                }

                for (var f = 0; f < example.Features.Length; f++)
                {
                    var feature = example.Features[f];
                    var row = feature * Stride;
                    var v = example.Values[f];
                    var l2 = feature >= TaskFeatures.HashBase ? options.HashedL2 : options.DenseL2;
                    for (var k = 0; k < K; k++)
                    {
                        var delta = -rate * ((z[k] * v) + (l2 * weights[row + k]));
                        weights[row + k] += delta;
                        updates[row + k] += step * (double)delta;
                    }
                }

                step++;
            }
        }

        // Averaged SGD: the mean of the weights over all steps, which is steadier than the last ones.
        for (var i = 0; i < size; i++)
        {
            weights[i] = (float)(weights[i] - (updates[i] / step));
        }

        return new TaskModel(weights);
    }

    /// <summary>In-place softmax over the first 7 entries.</summary>
    public static void Softmax(Span<float> z)
    {
        var max = z[0];
        for (var k = 1; k < TaskKinds.Count; k++)
        {
            max = Math.Max(max, z[k]);
        }

        var sum = 0f;
        for (var k = 0; k < TaskKinds.Count; k++)
        {
            z[k] = MathF.Exp(z[k] - max);
            sum += z[k];
        }

        for (var k = 0; k < TaskKinds.Count; k++)
        {
            z[k] /= sum;
        }
    }

    /// <summary>Accumulates weights as features arrive; hashed ones are summed apart and scaled at the end of their region.</summary>
    private struct ScoreSink(float[] weights) : IFeatureSink
    {
        private Vector256<float> _total;
        private Vector256<float> _pending;

        public readonly Vector256<float> Total => _total;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(int feature, float value) => _total += Row(feature) * value;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddHashed(int feature) => _pending += Row(feature);

        public void EndHashed(float value)
        {
            _total += _pending * value;
            _pending = default;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly Vector256<float> Row(int feature) =>
            Vector256.LoadUnsafe(ref MemoryMarshal.GetArrayDataReference(weights), (nuint)(feature * Stride));
    }
}
