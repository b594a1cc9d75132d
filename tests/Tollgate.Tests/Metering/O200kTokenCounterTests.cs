using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using Tollgate.Metering;
using Tollgate.Routing.Classification;

namespace Tollgate.Tests.Metering;

/// <summary>
/// The count-only o200k encoder must give exactly the counts of <c>Microsoft.ML.Tokenizers</c>' gpt-4o
/// tokenizer, the reference it replaced (docs/accounting.md, "Estimates"): on every labelled prompt, on
/// thousands of seeded random strings, on long runs, on edge cases, and through <see cref="TokenEstimator"/>.
/// </summary>
public sealed class O200kTokenCounterTests
{
    private const int RandomStrings = 4_000;

    private static readonly Lazy<Tokenizer> Library = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));

    private static readonly byte[][] LabelledBodies =
    [
        .. TrainingData.LoadEmbedded().Select(e => e.Body),
        .. TrainingData.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Routing", "Classification", "holdout.jsonl"))).Select(e => e.Body),
    ];

    private static O200kTokenCounter Counter => O200kTokenCounter.Shared;

    [Fact]
    public void LabelledPrompts_EveryStringAndEveryWholeBody_CountAsTheLibraryCounts()
    {
        var texts = new List<string>();
        foreach (var body in LabelledBodies)
        {
            texts.Add(Encoding.UTF8.GetString(body));
            using var document = JsonDocument.Parse(body);
            CollectStrings(document.RootElement, texts);
        }

        AssertSameCounts(texts);
        TestContext.Current.TestOutputHelper?.WriteLine($"{LabelledBodies.Length} labelled bodies, {texts.Count} strings compared.");
        Assert.True(LabelledBodies.Length >= 380);
    }

    [Fact]
    public void RandomStrings_FromEveryScriptAndShape_CountAsTheLibraryCounts()
    {
        var random = new Random(20_261_124);
        var texts = Enumerable.Range(0, RandomStrings).Select(_ => TokenizerText.Random(random)).ToList();

        AssertSameCounts(texts);
        TestContext.Current.TestOutputHelper?.WriteLine($"{texts.Count} random strings, {texts.Sum(t => t.Length):N0} chars compared.");
    }

    [Fact]
    public void LongRunsAndBlobs_CountAsTheLibraryCounts()
    {
        var texts = TokenizerText.Long().ToList();

        AssertSameCounts(texts);
        Assert.Equal(Library.Value.CountTokens(new string(' ', 5_000)), Counter.Count(new string(' ', 5_000)));
    }

    [Fact]
    public void EdgeCases_EmptySingleCharsAndEveryByteValue_CountAsTheLibraryCounts()
    {
        Assert.Equal(0, Counter.Count(""));
        Assert.Equal(0, TokenEstimator.Count(""));
        Assert.Equal(0, TokenEstimator.CountUtf8([]));

        var texts = new List<string>();
        for (var value = 0; value <= 255; value++)
        {
            var c = (char)value;
            texts.AddRange([c.ToString(), $" {c}", $"{c}{c}", $"a{c}b", $"{c}\n"]);
        }

        texts.AddRange(["\uD800", "\uDBFF", "\uDC00", "\uDFFF", "\uD83D\uDE00", "\uDE00\uD83D", "a\uD800b", "\uFFFD", "\uFEFF", "\0"]);
        AssertSameCounts(texts);
    }

    [Fact]
    public void SpecialTokens_CountOneEach_WhereTheLibraryRecognisesThem()
    {
        Assert.Equal(1, Counter.Count("<|endoftext|>"));
        Assert.Equal(1, Counter.Count("<|endofprompt|>"));
        Assert.Equal(3, Counter.Count(" <|endoftext|> "));

        AssertSameCounts(["a<|endoftext|>b", "<|endoftext|><|endofprompt|>", "<|<|endoftext|>", "<|endoftext", "<|ENDOFTEXT|>", "<|fim_prefix|>", "x  <|endofprompt|>\n\n"]);
    }

    [Fact]
    public void VocabularyTokens_EachTokensOwnText_CountsAsTheLibraryCounts()
    {
        // Every ordinary token, decoded as the library would decode it: exercises every entry of the hash table,
        // and the tokens whose bytes are not valid UTF-8 on their own.
        var ranks = Counter.Ranks;
        var texts = Enumerable.Range(0, ranks.Count).Select(rank => Encoding.UTF8.GetString(ranks.TokenBytes(rank))).ToList();

        AssertSameCounts(texts);
        Assert.Equal(199_998, ranks.Count);
    }

    [Fact]
    public void RankTable_HoldsEveryTokenInUnderSixMegabytes()
    {
        var ranks = Counter.Ranks;

        Assert.InRange(ranks.RetainedBytes, 1_000_000, 6 * 1024 * 1024);
        Assert.Equal(0, ranks.RankOf("!"u8));
        Assert.Equal(O200kRankTable.NotFound, ranks.RankOf([]));
        Assert.Equal(O200kRankTable.NotFound, ranks.RankOf(new byte[ranks.MaxTokenLength + 1]));
        for (var value = 0; value <= 255; value++)
        {
            Assert.NotEqual(O200kRankTable.NotFound, ranks.RankOf([(byte)value]));
        }
    }

    [Fact]
    public void Count_FromManyThreadsAtOnce_GivesTheSingleThreadedCounts()
    {
        var random = new Random(99);
        var texts = Enumerable.Range(0, 400).Select(_ => TokenizerText.Random(random)).ToArray();
        var expected = texts.Select(t => Counter.Count(t)).ToArray();
        var actual = new int[texts.Length * 4];

        Parallel.For(0, actual.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => actual[i] = Counter.Count(texts[i % texts.Length]));

        Assert.Equal(expected.Concat(expected).Concat(expected).Concat(expected), actual);
    }

    [Fact]
    public void TokenEstimator_CountRequestAndEstimate_GiveTheLibrarysNumbers()
    {
        var paste = string.Concat(Enumerable.Repeat("Line of a pasted log: ERROR 0x1F at módulo 東京 — retrying…\n", 300));
        var chat = """
            {"model":"gpt-4o","stream":true,"temperature":0.2,"messages":[
              {"role":"system","content":"You are terse.\nAnswer in \"one\" line."},
              {"role":"user","content":"R\u00e9sum\u00e9: na\u00efve caf\u00e9 \u2014 \u6771\u4eac \ud83d\ude00 <|endoftext|>"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"weather\"}"}}]},
              {"role":"user","content":[{"type":"text","text":"PASTE"},{"type":"text","text":"and a short one"}]}
            ],"tools":[{"type":"function","function":{"name":"lookup","description":"Looks things up.","parameters":{"type":"object"}}}]}
            """.Replace("PASTE", paste.Replace("\n", "\\n", StringComparison.Ordinal), StringComparison.Ordinal);
        var chatStrings = new[]
        {
            "system", "You are terse.\nAnswer in \"one\" line.",
            "user", "Résumé: naïve café — 東京 😀 <|endoftext|>",
            "assistant", "call_1", "function", "lookup", "{\"q\":\"weather\"}",
            "user", "text", paste, "text", "and a short one",
            "function", "lookup", "Looks things up.", "object",
        };
        var embeddings = """{"model":"text-embedding-3-small","input":["first text","second, longer text with 12345 digits"]}""";
        var single = """{"model":"text-embedding-3-small","input":"just one string"}""";

        Assert.Equal(LibraryCount(chatStrings) + (4 * 3) + 3, TokenEstimator.CountRequest(Encoding.UTF8.GetBytes(chat)));
        Assert.Equal(LibraryCount("first text", "second, longer text with 12345 digits"), TokenEstimator.CountRequest(Encoding.UTF8.GetBytes(embeddings)));
        Assert.Equal(LibraryCount("just one string"), TokenEstimator.CountRequest(Encoding.UTF8.GetBytes(single)));
        Assert.Equal(0L, TokenEstimator.CountRequest("[]"u8));

        // Output text as relayed: UTF-8, here ending in half a character (a cut stream).
        var output = Encoding.UTF8.GetBytes(paste + "Sure! Here's the answer: 42.\n\n```json\n{\"a\": 1}\n```\n東京")[..^1];
        var estimate = TokenEstimator.Estimate(Encoding.UTF8.GetBytes(chat), output);
        Assert.Equal(UsageSource.Estimated, estimate.Source);
        Assert.Equal(LibraryCount(chatStrings) + 15, estimate.Buckets.InputUncached);
        Assert.Equal(Library.Value.CountTokens(Encoding.UTF8.GetString(output)), estimate.Buckets.OutputText);
        Assert.Equal(Library.Value.CountTokens(Encoding.UTF8.GetString([0xFF, 0xC3, (byte)'a', 0xE6, 0x9D])), TokenEstimator.CountUtf8([0xFF, 0xC3, (byte)'a', 0xE6, 0x9D]));
    }

    [Fact]
    public void TokenEstimator_CountRequest_CountsALoneSurrogateEscapeInsteadOfThrowing()
    {
        // Valid JSON, but "\ud800" unescapes to no valid UTF-16: the estimate must still count the message.
        var body = """{"model":"gpt-4o","messages":[{"role":"user","content":"before \ud800 after"}]}"""u8;

        var tokens = TokenEstimator.CountRequest(body);

        Assert.True(tokens >= LibraryCount("user", "before ", " after") + 3 + 3, $"counted {tokens}");
    }

    private static long LibraryCount(params string[] texts) => texts.Sum(t => (long)Library.Value.CountTokens(t));

    private static void AssertSameCounts(IReadOnlyList<string> texts)
    {
        var mismatches = new List<string>();
        foreach (var text in texts)
        {
            var expected = Library.Value.CountTokens(text);
            var actual = Counter.Count(text);
            if (actual != expected)
            {
                mismatches.Add($"{Escape(text)}: counted {actual}, library {expected}");
            }
        }

        Assert.Empty(mismatches.Take(20));
    }

    private static void CollectStrings(JsonElement element, List<string> into)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                into.Add(element.GetString()!);
                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    CollectStrings(property.Value, into);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    CollectStrings(item, into);
                }

                break;
        }
    }

    private static string Escape(string text)
    {
        var escaped = new StringBuilder();
        foreach (var c in text.Length > 200 ? text[..200] : text)
        {
            escaped.Append(c is >= ' ' and < '\x7F' ? c.ToString() : $"\\u{(int)c:X4}");
        }

        return text.Length > 200 ? $"{escaped}… ({text.Length} chars)" : escaped.ToString();
    }
}
