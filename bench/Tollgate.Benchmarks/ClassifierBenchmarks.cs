using System.Text;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using Tollgate.Routing.Classification;

namespace Tollgate.Benchmarks;

/// <summary>The task classifier on the bodies the <c>auto</c> model sees: short, multi-turn with a system prompt, a 20 KB paste.</summary>
[MemoryDiagnoser]
public class ClassifierBenchmarks
{
    private byte[] _short = null!;
    private byte[] _multiTurn = null!;
    private byte[] _document = null!;

    [GlobalSetup]
    public void Setup()
    {
        _short = Body(("user", "How do I get red wine out of a white carpet?"));
        _multiTurn = Body(
            ("system", "You are a helpful assistant for Horizon Airlines. Answer politely and briefly. If the customer asks for a refund, collect the booking reference first."),
            ("user", "Hi, my flight HZ-2231 from Lisbon was cancelled yesterday and I had to rebook on another airline."),
            ("assistant", "I'm sorry to hear that. Could you share your booking reference so I can look into a refund?"),
            ("user", "Sure, it's QX7R2B. Can you also translate your answer into Portuguese for my mother? She was travelling with me."));
        var paragraph = "The committee reviewed the quarterly figures for the regional offices, discussed the staffing plan for the new warehouse, and agreed that the finance team would circulate a revised budget before the next meeting. ";
        var document = new StringBuilder().Insert(0, paragraph, 20 * 1024 / paragraph.Length).ToString();
        _document = Body(("system", "You summarize internal documents for executives."), ("user", "Summarize the key decisions in this report:\n\n" + document));

        // Train the shared model outside the measurement.
        TaskClassifier.Default.Classify(_short);
    }

    [Benchmark(Baseline = true)]
    public TaskClassification ShortPrompt() => TaskClassifier.Default.Classify(_short);

    [Benchmark]
    public TaskClassification MultiTurnWithSystem() => TaskClassifier.Default.Classify(_multiTurn);

    [Benchmark]
    public TaskClassification PastedDocument20KB() => TaskClassifier.Default.Classify(_document);

    private static byte[] Body(params (string Role, string Text)[] messages)
    {
        var array = new JsonArray();
        foreach (var (role, text) in messages)
        {
            array.Add(new JsonObject { ["role"] = role, ["content"] = text });
        }

        return Encoding.UTF8.GetBytes(new JsonObject { ["model"] = "auto", ["messages"] = array }.ToJsonString());
    }
}
