namespace Tollgate.Routing.Classification;

#pragma warning disable CA1822 // TEMPORARY (replaced by the classifier branch at merge): same API, no model yet.
public sealed class TaskClassifier
{
    public static TaskClassifier Default { get; } = new();

    public TaskClassification Classify(ReadOnlySpan<byte> chatCompletionBodyUtf8) => new(chatCompletionBodyUtf8.Length > 0 ? TaskKind.Chat : TaskKind.Chat, 0f);
}
