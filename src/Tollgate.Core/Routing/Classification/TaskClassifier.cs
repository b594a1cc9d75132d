using System.Buffers;
using System.Text.Json;

namespace Tollgate.Routing.Classification;

/// <summary>
/// Reads an OpenAI chat completion body and says which task it asks for, so the <c>auto</c> model
/// (and routes with strategy <c>task</c>) can pick the cheapest tier that serves it.
/// </summary>
/// <remarks>
/// A linear model over multilingual cue phrases (where they sit matters: the last user turn decides,
/// the system prompt sets the default), structural signals and lightly weighted hashed n-grams,
/// trained deterministically from the embedded training file on first use. Only a capped part of the
/// text is analysed (see <see cref="RequestText"/>), so a huge body costs about what a small one does
/// beyond the JSON scan, and the classify path does not allocate. The decision is cost-sensitive:
/// giving a small model a task that needs a bigger one costs <see cref="UnderTierCost"/> times more
/// than overpaying by a tier, so close calls go to the higher tier. See <c>docs/routing.md</c>.
/// </remarks>
public sealed class TaskClassifier
{
    /// <summary>Default cost of routing one tier too low, relative to one tier too high. Chosen by cross-validation on the training file.</summary>
    public const float DefaultUnderTierCost = 2.5f;

    private readonly int[] _tiers;
    private readonly int[] _distinctTiers;
    private readonly TaskModel? _model;

    /// <param name="minimumTiers">Minimum tier per task; missing tasks use <see cref="TaskKinds.DefaultMinimumTier"/>.</param>
    /// <param name="underTierCost">Cost of one tier too low relative to one tier too high; ≥ 0, default <see cref="DefaultUnderTierCost"/>.</param>
    public TaskClassifier(IReadOnlyDictionary<TaskKind, int>? minimumTiers = null, float underTierCost = DefaultUnderTierCost)
        : this(null, minimumTiers, underTierCost)
    {
    }

    internal TaskClassifier(TaskModel? model, IReadOnlyDictionary<TaskKind, int>? minimumTiers, float underTierCost)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(underTierCost);
        _model = model;
        UnderTierCost = underTierCost;
        _tiers = new int[TaskKinds.Count];
        foreach (var kind in TaskKinds.All)
        {
            _tiers[(int)kind] = minimumTiers is not null && minimumTiers.TryGetValue(kind, out var tier) ? tier : TaskKinds.DefaultMinimumTier(kind);
        }

        _distinctTiers = [.. _tiers.Distinct().Order()];
    }

    /// <summary>The classifier with the default tier table, trained from the embedded data on first use.</summary>
    public static TaskClassifier Default { get; } = new();

    /// <summary>Cost of one tier too low relative to one tier too high.</summary>
    public float UnderTierCost { get; }

    /// <summary>The minimum tier this classifier assumes for <paramref name="kind"/>.</summary>
    public int MinimumTier(TaskKind kind) => _tiers[(int)kind];

    /// <summary>
    /// Classifies a chat completion request body (UTF-8 JSON). Never throws: a body that is not a
    /// JSON object gives <see cref="TaskKind.Chat"/> with confidence 0.
    /// </summary>
    public TaskClassification Classify(ReadOnlySpan<byte> chatCompletionBodyUtf8)
    {
        Span<float> p = stackalloc float[TaskModel.Stride];
        if (!(_model ?? TaskModel.Shared).Score(chatCompletionBodyUtf8, p))
        {
            return new TaskClassification(TaskKind.Chat, 0f);
        }

        TaskModel.Softmax(p);
        return Decide(p);
    }

    /// <summary>
    /// Classifies a parsed chat request from the text segments <see cref="Requests.RequestParser"/> located in its one
    /// pass over the body: the request path's way, which never reads the body twice. Same verdict as
    /// <see cref="Classify(ReadOnlySpan{byte})"/> on the same body.
    /// </summary>
    public TaskClassification Classify(Requests.ParsedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        Span<float> p = stackalloc float[TaskModel.Stride];
        var needs = request.Needs;
        var conversation = request.Conversation;
        (_model ?? TaskModel.Shared).Score(request.Body.Span, in conversation, (needs & Configuration.Capability.Json) != 0, (needs & Configuration.Capability.Tools) != 0, p);
        TaskModel.Softmax(p);
        return Decide(p);
    }

    /// <summary>Classifies a conversation given as (role, text) pairs; a convenience for tests and simulation.</summary>
    public TaskClassification Classify(IReadOnlyList<(string Role, string Text)> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model"u8, "auto"u8);
            writer.WriteStartArray("messages"u8);
            foreach (var (role, text) in messages)
            {
                writer.WriteStartObject();
                writer.WriteString("role"u8, role);
                writer.WriteString("content"u8, text);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Classify(buffer.WrittenSpan);
    }

    /// <summary>
    /// Picks the tier with the least expected cost (one per tier too high, <see cref="UnderTierCost"/>
    /// per tier too low), then the likeliest task of that tier.
    /// </summary>
    private TaskClassification Decide(ReadOnlySpan<float> p)
    {
        var bestTier = _distinctTiers[0];
        var bestCost = float.MaxValue;
        foreach (var candidate in _distinctTiers)
        {
            var cost = 0f;
            for (var k = 0; k < TaskKinds.Count; k++)
            {
                var needed = _tiers[k];
                cost += p[k] * (needed > candidate ? UnderTierCost * (needed - candidate) : candidate - needed);
            }

            // Ties go to the higher tier: the distinct tiers ascend.
            if (cost <= bestCost)
            {
                bestCost = cost;
                bestTier = candidate;
            }
        }

        var task = -1;
        for (var k = 0; k < TaskKinds.Count; k++)
        {
            if (_tiers[k] == bestTier && (task < 0 || p[k] > p[task]))
            {
                task = k;
            }
        }

        return new TaskClassification((TaskKind)task, Math.Clamp(p[task], 0f, 1f));
    }
}
