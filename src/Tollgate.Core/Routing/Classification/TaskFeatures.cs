using System.Runtime.CompilerServices;

namespace Tollgate.Routing.Classification;

/// <summary>Receives the features of one request: the scorer adds weights, the trainer records them.</summary>
internal interface IFeatureSink
{
    void Add(int feature, float value);

    /// <summary>A hashed n-gram feature; its value is set by the next <see cref="EndHashed"/>.</summary>
    void AddHashed(int feature);

    /// <summary>Gives the hashed features added since the last call their value.</summary>
    void EndHashed(float value);
}

/// <summary>Where in the request a cue was seen. The last user turn's instruction zone is its first and last <see cref="TaskFeatures.InstructionZone"/> bytes.</summary>
internal enum CueRegion
{
    System,
    Instruction,
    Body,
    Earlier,
    Assistant,
}

/// <summary>
/// Turns a request into features: cue groups per region, structural signals (lengths, code shape,
/// numbers, JSON response format, tools, turns) and hashed word/word-pair features of the system
/// prompt and of the user's instruction zone. Hashed features are scaled by 1/√tokens so a long
/// prompt does not drown the cues, which are what generalises beyond the training set.
/// </summary>
internal static class TaskFeatures
{
    public const int HashBits = 12;
    public const int HashCount = 1 << HashBits;

    /// <summary>Bytes at each end of the last user turn treated as instructions rather than pasted material.</summary>
    public const int InstructionZone = 320;

    public const int RegionCount = 5;
    public const int CueBase = (int)Structural.Count;
    public const int HashBase = CueBase + (RegionCount * CueLexicon.GroupCount);
    public const int FeatureCount = HashBase + HashCount;

    /// <summary>Weight of all hashed features of a region together (before 1/√tokens).</summary>
    public const float HashScale = 0.5f;

    private const int MaxHashed = 768;
    private const uint SystemSalt = 0x2545F491;
    private const uint UserSalt = 0x9E3779B9;

    internal enum Structural
    {
        Bias,
        HasSystem,
        SystemShort,
        SystemLong,
        UserTiny,
        UserShort,
        UserMedium,
        UserLong,
        UserVeryLong,
        UserHuge,
        FollowUp,
        LongConversation,
        HasAssistant,
        JsonResponse,
        Tools,
        Image,
        NoUserText,
        FenceUser,
        FenceElsewhere,
        CodeDensity2,
        CodeDensity5,
        CodeDensity10,
        CodeLines2,
        CodeLines5,
        Indented3,
        Identifiers2,
        Identifiers6,
        CodeKeywords3,
        CodeKeywords8,
        CodeInEarlierTurns,
        Numbers1,
        Numbers3,
        Numbers6,
        MathOperators,
        ReasoningWithNumbers,
        Question1,
        Question2,
        Newlines4,
        Newlines15,
        Enumerated2,
        QuotedUser,
        MixedScript,
        ScriptDiffers,
        UserCjk,
        NoUserTaskCue,
        NoTaskCueAnywhere,
        ShortFollowUpWithCue,
        Count,
    }

    public static void Extract<TSink>(scoped in RequestText text, ref TSink sink)
        where TSink : struct, IFeatureSink
    {
        var table = CueTable.Shared;
        Span<ulong> cues = stackalloc ulong[RegionCount];
        Span<int> hashed = stackalloc int[MaxHashed];

        var system = new TextScanner(table, cues, hashed, SystemSalt, hashing: true);
        system.Run(text.System, (int)CueRegion.System, (int)CueRegion.System, int.MaxValue, 0);
        EmitHashed(ref sink, hashed[..system.HashedCount], system.Stats.Tokens);

        var user = new TextScanner(table, cues, hashed, UserSalt, hashing: true);
        if (text.UserTail.IsEmpty)
        {
            user.Run(text.UserHead, (int)CueRegion.Instruction, (int)CueRegion.Body, InstructionZone, text.UserHead.Length - InstructionZone);
        }
        else
        {
            user.Run(text.UserHead, (int)CueRegion.Instruction, (int)CueRegion.Body, InstructionZone, int.MaxValue);
            user.Break();
            user.Run(text.UserTail, (int)CueRegion.Instruction, (int)CueRegion.Body, 0, text.UserTail.Length - InstructionZone);
        }

        EmitHashed(ref sink, hashed[..user.HashedCount], user.Stats.Tokens);

        var earlier = new TextScanner(table, cues, hashed, 0, hashing: false);
        earlier.Run(text.EarlierUser, (int)CueRegion.Earlier, (int)CueRegion.Earlier, int.MaxValue, 0);
        var assistant = new TextScanner(table, cues, hashed, 0, hashing: false);
        assistant.Run(text.Assistant, (int)CueRegion.Assistant, (int)CueRegion.Assistant, int.MaxValue, 0);

        for (var region = 0; region < RegionCount; region++)
        {
            var bits = cues[region];
            while (bits != 0)
            {
                var group = System.Numerics.BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                sink.Add(CueBase + (region * CueLexicon.GroupCount) + group, 1f);
            }
        }

        ref readonly var u = ref user.Stats;
        var instruction = cues[(int)CueRegion.Instruction];
        var anyCue = cues[0] | cues[1] | cues[2] | cues[3];

        Set(ref sink, Structural.Bias, true);
        Set(ref sink, Structural.HasSystem, text.SystemLength > 0);
        Set(ref sink, Structural.SystemShort, text.SystemLength is > 0 and < 200);
        Set(ref sink, Structural.SystemLong, text.SystemLength >= 800);
        var length = text.UserLength;
        Set(ref sink, Structural.UserTiny, length < 40);
        Set(ref sink, Structural.UserShort, length is >= 40 and < 150);
        Set(ref sink, Structural.UserMedium, length is >= 150 and < 500);
        Set(ref sink, Structural.UserLong, length is >= 500 and < 1500);
        Set(ref sink, Structural.UserVeryLong, length is >= 1500 and < 5000);
        Set(ref sink, Structural.UserHuge, length >= 5000);
        Set(ref sink, Structural.FollowUp, text.UserTurns > 1);
        Set(ref sink, Structural.LongConversation, text.UserTurns > 3);
        Set(ref sink, Structural.HasAssistant, text.AssistantTurns > 0);
        Set(ref sink, Structural.JsonResponse, text.JsonResponse);
        Set(ref sink, Structural.Tools, text.Tools);
        Set(ref sink, Structural.Image, text.UserHasImage);
        Set(ref sink, Structural.NoUserText, u.NonSpace == 0);

        Set(ref sink, Structural.FenceUser, u.Fences > 0);
        Set(ref sink, Structural.FenceElsewhere, system.Stats.Fences + earlier.Stats.Fences + assistant.Stats.Fences > 0);
        var density = u.NonSpace == 0 ? 0f : (float)u.CodeSymbols / u.NonSpace;
        Set(ref sink, Structural.CodeDensity2, density >= 0.02f);
        Set(ref sink, Structural.CodeDensity5, density >= 0.05f);
        Set(ref sink, Structural.CodeDensity10, density >= 0.10f);
        Set(ref sink, Structural.CodeLines2, u.CodeLines >= 2);
        Set(ref sink, Structural.CodeLines5, u.CodeLines >= 5);
        Set(ref sink, Structural.Indented3, u.IndentedLines >= 3);
        Set(ref sink, Structural.Identifiers2, u.Identifiers >= 2);
        Set(ref sink, Structural.Identifiers6, u.Identifiers >= 6);
        Set(ref sink, Structural.CodeKeywords3, u.CodeKeywords >= 3);
        Set(ref sink, Structural.CodeKeywords8, u.CodeKeywords >= 8);
        Set(ref sink, Structural.CodeInEarlierTurns, earlier.Stats.CodeLines + assistant.Stats.CodeLines + earlier.Stats.Fences + assistant.Stats.Fences >= 2);

        Set(ref sink, Structural.Numbers1, u.Numbers >= 1);
        Set(ref sink, Structural.Numbers3, u.Numbers >= 3);
        Set(ref sink, Structural.Numbers6, u.Numbers >= 6);
        Set(ref sink, Structural.MathOperators, u.MathOperators >= 1);
        Set(ref sink, Structural.ReasoningWithNumbers, u.Numbers >= 2 && Has(instruction, CueGroup.ReasoningVerb));
        Set(ref sink, Structural.Question1, u.Questions >= 1);
        Set(ref sink, Structural.Question2, u.Questions >= 2);
        Set(ref sink, Structural.Newlines4, u.Newlines >= 4);
        Set(ref sink, Structural.Newlines15, u.Newlines >= 15);
        Set(ref sink, Structural.Enumerated2, u.EnumeratedLines >= 2);
        Set(ref sink, Structural.QuotedUser, u.Quotes >= 2);
        Set(ref sink, Structural.MixedScript, u.Latin >= 12 && u.Cjk >= 4);
        var userCjk = u.Cjk * 2 > u.Latin;
        Set(ref sink, Structural.ScriptDiffers, system.Stats.Latin + system.Stats.Cjk >= 20 && u.Latin + u.Cjk >= 10 && userCjk != system.Stats.Cjk * 2 > system.Stats.Latin);
        Set(ref sink, Structural.UserCjk, userCjk);
        Set(ref sink, Structural.NoUserTaskCue, (instruction & CueLexicon.TaskGroups) == 0);
        Set(ref sink, Structural.NoTaskCueAnywhere, (anyCue & CueLexicon.TaskGroups) == 0);
        Set(ref sink, Structural.ShortFollowUpWithCue, text.UserTurns > 1 && length < 200 && (instruction & CueLexicon.TaskGroups) != 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Has(ulong bits, CueGroup group) => (bits & (1UL << (int)group)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Set<TSink>(ref TSink sink, Structural feature, bool on)
        where TSink : struct, IFeatureSink
    {
        if (on)
        {
            sink.Add((int)feature, 1f);
        }
    }

    private static void EmitHashed<TSink>(ref TSink sink, ReadOnlySpan<int> buckets, int tokens)
        where TSink : struct, IFeatureSink
    {
        if (buckets.IsEmpty)
        {
            return;
        }

        foreach (var bucket in buckets)
        {
            sink.AddHashed(HashBase + bucket);
        }

        sink.EndHashed(HashScale / MathF.Sqrt(Math.Max(tokens, 1)));
    }
}
