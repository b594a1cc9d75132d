namespace Tollgate.Routing.Classification;

/// <summary>
/// What a chat request asks the model to do. The router maps each task to the minimum model tier
/// that serves it (<see cref="TaskKinds.DefaultMinimumTier"/>), so a cheap model gets the easy work.
/// </summary>
public enum TaskKind
{
    /// <summary>Conversation, factual questions, advice and creative writing.</summary>
    Chat,

    /// <summary>Assign a label from a set: sentiment, intent, topic, spam, priority.</summary>
    Classification,

    /// <summary>Pull structured fields or entities out of text.</summary>
    Extraction,

    /// <summary>Condense a text, thread or transcript.</summary>
    Summarization,

    /// <summary>Render a text in another language.</summary>
    Translation,

    /// <summary>Write, fix, review or explain code, queries, scripts and build files.</summary>
    Code,

    /// <summary>Multi-step math, logic, planning under constraints and trade-off analysis.</summary>
    Reasoning,
}

/// <summary>Names, parsing and default tiers of <see cref="TaskKind"/>.</summary>
public static class TaskKinds
{
    private static readonly string[] Names = ["chat", "classification", "extraction", "summarization", "translation", "code", "reasoning"];

    /// <summary>Every task, in declaration order.</summary>
    public static IReadOnlyList<TaskKind> All { get; } =
        [TaskKind.Chat, TaskKind.Classification, TaskKind.Extraction, TaskKind.Summarization, TaskKind.Translation, TaskKind.Code, TaskKind.Reasoning];

    /// <summary>The number of tasks; task values are <c>0 .. Count - 1</c>.</summary>
    internal const int Count = 7;

    /// <summary>The lowercase wire name: chat, classification, extraction, summarization, translation, code or reasoning.</summary>
    public static string Name(this TaskKind kind) => (uint)kind < Count ? Names[(int)kind] : kind.ToString();

    /// <summary>Parses a wire name, ignoring case. Returns false for null, empty or unknown text.</summary>
    public static bool TryParse(string? text, out TaskKind kind)
    {
        if (text is not null)
        {
            var trimmed = text.AsSpan().Trim();
            for (var i = 0; i < Names.Length; i++)
            {
                if (trimmed.Equals(Names[i], StringComparison.OrdinalIgnoreCase))
                {
                    kind = (TaskKind)i;
                    return true;
                }
            }
        }

        kind = TaskKind.Chat;
        return false;
    }

    /// <summary>
    /// The smallest tier (1 small/local, 2 mid, 3 frontier) that serves the task well: labelling,
    /// extraction and summaries run on small models; translation, chat and code need a mid model;
    /// multi-step reasoning needs a frontier model. Configuration may override this table.
    /// </summary>
    public static int DefaultMinimumTier(TaskKind kind) => kind switch
    {
        TaskKind.Classification or TaskKind.Extraction or TaskKind.Summarization => 1,
        TaskKind.Reasoning => 3,
        _ => 2,
    };
}

/// <summary>
/// The classifier's verdict: the task and how sure it is, in [0, 1]. The confidence is the model's
/// probability for the task; it ranks verdicts well but is not calibrated.
/// </summary>
public readonly record struct TaskClassification(TaskKind Task, float Confidence);
