using System.Text;
using Tollgate.Requests;
using Tollgate.Routing.Classification;

namespace Tollgate.Tests.Routing;

/// <summary>
/// The classifier runs on every request to a task route, so no body may make it throw (that would be a 500).
/// Seeded random bodies put escapes, multi-byte characters and surrogate pairs at every distance from the
/// reader's caps, in every role and in content-part arrays; truncations make malformed JSON.
/// </summary>
public sealed class ClassifierRobustnessTests
{
    private static readonly string[] Pieces = ["a", "word ", "\\n", "\\\"", "\\\\", "\\u00e9", "\\ud83d\\ude00", "é", "中文", "日本語", "🙂", "\\t", "\\/", " "];

    private static readonly int[] Caps = [RequestText.SystemCap, RequestText.HeadCap, RequestText.TailCap, RequestText.EarlierCap, RequestText.AssistantCap];

    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool", "user"];

    private static string Text(Random random)
    {
        // Lengths cluster around the caps (and twice the caps), where buffer edges are.
        var cap = Caps[random.Next(Caps.Length)] * random.Next(1, 3);
        var target = Math.Max(0, cap + random.Next(-12, 13));
        var text = new StringBuilder(target + 16);
        while (text.Length < target)
        {
            text.Append(random.Next(4) == 0 ? Pieces[random.Next(Pieces.Length)] : "x");
        }

        return text.ToString();
    }

    private static byte[] WithModel(byte[] body)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(body)!.AsObject();
        json["model"] = "auto";
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    private static string RandomBody(Random random)
    {
        var messages = string.Join(",", Enumerable.Range(0, random.Next(1, 6))
            .Select(_ => $$"""{"role":"{{Roles[random.Next(Roles.Length)]}}","content":{{Content(random)}}}"""));
        return $$"""{"model":"auto","messages":[{{messages}}]}""";
    }

    private static string Content(Random random) => random.Next(4) == 0
        ? $$$"""[{"type":"text","text":"{{{Text(random)}}}"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"{{{Text(random)}}}"}]"""
        : $"\"{Text(random)}\"";

    /// <summary>
    /// The request path classifies from the text the parser located in its one pass; it must give exactly the
    /// verdict of reading the body itself, on every labelled prompt and on the edge-shaped random bodies.
    /// </summary>
    [Fact]
    public void Classify_FromTheParsersPass_GivesTheSameVerdictAsReadingTheBody()
    {
        var holdout = TrainingData.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Routing", "Classification", "holdout.jsonl")));
        // Labelled bodies carry no model; the parser needs one.
        var bodies = holdout.Concat(TrainingData.LoadEmbedded()).Select(e => WithModel(e.Body)).ToList();
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            bodies.Add(Encoding.UTF8.GetBytes(RandomBody(random)));
        }

        foreach (var body in bodies)
        {
            Assert.True(RequestParser.TryParse(RequestKind.ChatCompletion, body, out var request, out var error), error?.Message);
            Assert.Equal(TaskClassifier.Default.Classify(body), TaskClassifier.Default.Classify(request!));
        }
    }

    [Fact]
    public void Classify_NeverThrows_OnBodiesShapedAroundItsBufferEdges()
    {
        var random = new Random(20261122);
        for (var i = 0; i < 3_000; i++)
        {
            var json = RandomBody(random);
            var body = Encoding.UTF8.GetBytes(json);

            // Whole, and cut at a random point (malformed JSON).
            foreach (var candidate in (byte[][])[body, body[..random.Next(body.Length)]])
            {
                var verdict = TaskClassifier.Default.Classify(candidate);
                Assert.InRange(verdict.Confidence, 0f, 1f);
                Assert.True(Enum.IsDefined(verdict.Task), json);
            }
        }
    }
}
