using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.ML.Tokenizers;
using Tollgate.Metering;

namespace Tollgate.Benchmarks;

/// <summary>
/// The gateway's count-only o200k encoder against the tokenizer library it replaced, on a short chat message
/// and a ~20 KB paste (what a reservation estimate counts). The library caches pieces it has encoded, so on
/// text it has seen before (as here, run after run) it is at its fastest.
/// </summary>
[MemoryDiagnoser]
public class TokenCounterBenchmarks
{
    private Tokenizer _library = null!;
    private string _text = null!;

    [Params("ShortChat", "Paste20KB")]
    public string Text { get; set; } = "ShortChat";

    [GlobalSetup]
    public void Setup()
    {
        _library = TiktokenTokenizer.CreateForModel("gpt-4o");
        _text = Text == "ShortChat" ? "Hi! Can you summarise the attached meeting notes in three bullet points, please?" : Paste();

        // Load both outside the measurement.
        _library.CountTokens(_text);
        O200kTokenCounter.Shared.Count(_text);
    }

    [Benchmark(Baseline = true)]
    public int Library() => _library.CountTokens(_text);

    [Benchmark]
    public int O200kCounter() => O200kTokenCounter.Shared.Count(_text);

    private static string Paste()
    {
        string[] paragraphs =
        [
            "The committee reviewed the quarterly figures for the regional offices, discussed the staffing plan for the new warehouse, and agreed that the finance team would circulate a revised budget before the next meeting.\n\n",
            "2026-11-24T09:14:03.512Z ERROR [gateway] upstream=openai status=503 retry_after=2s request_id=req_8f3a91c2 attempt=2/3\n",
            "    public static int Fibonacci(int n) => n < 2 ? n : Fibonacci(n - 1) + Fibonacci(n - 2);\r\n",
            "Le comité a examiné les chiffres trimestriels ; la réunion suivante aura lieu à Genève. 会議は来週の火曜日に行われます。\n",
            "{\"id\": 12345, \"items\": [{\"sku\": \"A-100\", \"qty\": 3, \"price\": 19.99}], \"note\": \"deliver after 5pm 🚚\"}\n",
        ];
        var text = new StringBuilder();
        for (var i = 0; text.Length < 20 * 1024; i++)
        {
            text.Append(paragraphs[i % paragraphs.Length]);
        }

        return text.ToString();
    }
}
