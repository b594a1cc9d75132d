using System.Globalization;
using System.Text;
using Tollgate.Routing.Classification;

namespace Tollgate.Tests.Routing;

public sealed class TaskClassifierTests
{
    private static readonly string HoldoutPath = Path.Combine(AppContext.BaseDirectory, "Routing", "Classification", "holdout.jsonl");

    [Fact]
    public void Classify_Holdout_MeetsTierBar()
    {
        var holdout = TrainingData.Parse(File.ReadAllBytes(HoldoutPath));
        var report = Evaluate(TaskClassifier.Default, holdout);
        TestContext.Current.TestOutputHelper?.WriteLine($"Holdout ({holdout.Count} prompts, never tuned against):");
        TestContext.Current.TestOutputHelper?.WriteLine(report.Table);

        Assert.True(holdout.Count >= 100);
        Assert.True(report.TierAccuracy >= 0.85, $"tier accuracy {report.TierAccuracy:P1}");
        Assert.True(report.UnderTier <= 0.05, $"under-tier rate {report.UnderTier:P1}");
    }

    [Fact]
    public void Classify_TrainingSet_FitsIt()
    {
        var training = TrainingData.LoadEmbedded();
        var report = Evaluate(TaskClassifier.Default, training);
        TestContext.Current.TestOutputHelper?.WriteLine($"Training set ({training.Count} prompts, the model learned from them):");
        TestContext.Current.TestOutputHelper?.WriteLine(report.Table);

        // A sanity bound, not a quality measure: a linear model should fit its own data.
        Assert.True(report.TaskAccuracy >= 0.9, $"training task accuracy {report.TaskAccuracy:P1}");
    }

    [Fact]
    public void Classify_TrainingSetCrossValidation_ReportsGeneralisation()
    {
        // Five folds over the training file only: what tuning may look at (the holdout stays out).
        var training = TrainingData.LoadEmbedded();
        var vectors = TrainingData.Featurize(training);
        var predictions = new (TaskKind Task, TaskKind Truth, string Language)[training.Count];
        const int Folds = 5;
        for (var fold = 0; fold < Folds; fold++)
        {
            var train = new List<FeatureVector>();
            for (var i = 0; i < vectors.Count; i++)
            {
                if (i % Folds != fold)
                {
                    train.Add(vectors[i]);
                }
            }

            var classifier = new TaskClassifier(TaskModel.Train(train, new TrainingOptions()), null, TaskClassifier.DefaultUnderTierCost);
            for (var i = fold; i < training.Count; i += Folds)
            {
                predictions[i] = (classifier.Classify(training[i].Body).Task, training[i].Task, training[i].Language);
            }
        }

        var report = Report(predictions);
        TestContext.Current.TestOutputHelper?.WriteLine("Training set, 5-fold cross-validation:");
        TestContext.Current.TestOutputHelper?.WriteLine(report.Table);
        Assert.True(report.TierAccuracy > 0.5);
    }

    [Fact]
    public void Classify_SameInput_SameResultAcrossInstances()
    {
        var body = Body(("system", "You label support tickets: billing, technical, other."), ("user", "My invoice is wrong, I was charged twice."));
        var first = TaskClassifier.Default.Classify(body);
        var second = TaskClassifier.Default.Classify(body);
        var fresh = new TaskClassifier(TaskModel.Train(TrainingData.Featurize(TrainingData.LoadEmbedded()), new TrainingOptions()), null, TaskClassifier.DefaultUnderTierCost);

        Assert.Equal(first, second);
        Assert.Equal(first, fresh.Classify(body));
        Assert.Equal(TaskKind.Classification, first.Task);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("{\"messages\":")]
    [InlineData("[1,2,3]")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"unterminated}]}")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800 lone surrogate \\u12\"}]}")]
    public void Classify_MalformedJson_ChatWithZeroConfidence(string body)
    {
        var result = TaskClassifier.Default.Classify(Encoding.UTF8.GetBytes(body));

        Assert.Equal(TaskKind.Chat, result.Task);
        Assert.True(result.Confidence is 0f || body.Contains("surrogate", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"messages\":[]}")]
    [InlineData("{\"messages\":null}")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":null}]}")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}]}")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Translate to German: good morning\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}],\"tools\":[]}")]
    [InlineData("{\"messages\":[1,\"x\",{\"role\":7,\"content\":{\"a\":1}}],\"response_format\":\"json\"}")]
    public void Classify_OddButValidBodies_DoesNotThrow(string body)
    {
        var result = TaskClassifier.Default.Classify(Encoding.UTF8.GetBytes(body));

        Assert.InRange(result.Confidence, 0f, 1f);
        Assert.True(Enum.IsDefined(result.Task));
    }

    [Fact]
    public void Classify_HugeBody_DoesNotThrowAndSeesTheInstruction()
    {
        var paragraph = "The committee reviewed the quarterly figures, discussed staffing and agreed on next steps for the regional offices. ";
        var document = new StringBuilder().Insert(0, paragraph, (1024 * 1024) / paragraph.Length).ToString();

        var result = TaskClassifier.Default.Classify([("user", "Summarize this report in three bullet points:\n\n" + document)]);

        Assert.Equal(TaskKind.Summarization, result.Task);
    }

    [Fact]
    public void Classify_TypeScriptTypeSnippet_IsCode()
    {
        var result = TaskClassifier.Default.Classify([("user", "type Shape = { kind: \"circle\"; radius: number } | { kind: \"square\"; size: number };\n\nfunction area(s: Shape): number {\n  switch (s.kind) {\n    case \"circle\": return Math.PI * s.radius ** 2;\n  }\n}\n\nwhy does this not compile with strict on?")]);

        Assert.Equal(TaskKind.Code, result.Task);
    }

    [Theory]
    [InlineData("How does photosynthesis work?")]
    [InlineData("Why do onions make you cry?")]
    [InlineData("How do noise-cancelling headphones work?")]
    public void Classify_FactualHowWhyQuestion_IsChatNotReasoning(string question)
    {
        var result = TaskClassifier.Default.Classify([("user", question)]);

        Assert.Equal(TaskKind.Chat, result.Task);
    }

    [Fact]
    public void Classify_LastTurnAsksToTranslate_IsTranslation()
    {
        var result = TaskClassifier.Default.Classify(
        [
            ("user", "Can you help me write a short note to my neighbour about the party on Saturday?"),
            ("assistant", "Of course! \"Hi! We're having a few friends over on Saturday evening. Sorry in advance for any noise, and feel free to drop by!\""),
            ("user", "Great, now translate that to German."),
        ]);

        Assert.Equal(TaskKind.Translation, result.Task);
    }

    [Fact]
    public void Classify_SystemPromptSetsTaskAndUserSendsOnlyData_FollowsSystem()
    {
        var result = TaskClassifier.Default.Classify(
        [
            ("system", "You extract invoice fields as JSON: vendor, invoice_number, date, total."),
            ("user", "ACME GmbH\nRechnung Nr. 2024-117\nDatum: 02.05.2024\nGesamtbetrag: 1.190,00 EUR"),
        ]);

        Assert.Equal(TaskKind.Extraction, result.Task);
    }

    [Fact]
    public void TaskKinds_NamesParseAndTiers_AreStable()
    {
        string[] names = ["chat", "classification", "extraction", "summarization", "translation", "code", "reasoning"];
        Assert.Equal(names, TaskKinds.All.Select(k => k.Name()));
        foreach (var kind in TaskKinds.All)
        {
            Assert.True(TaskKinds.TryParse(kind.Name().ToUpperInvariant(), out var parsed));
            Assert.Equal(kind, parsed);
        }

        Assert.False(TaskKinds.TryParse(null, out _));
        Assert.False(TaskKinds.TryParse("poetry", out _));
        Assert.Equal([2, 1, 1, 1, 2, 2, 3], TaskKinds.All.Select(TaskKinds.DefaultMinimumTier));
    }

    private static byte[] Body(params (string Role, string Text)[] messages)
    {
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["model"] = "auto",
            ["messages"] = new System.Text.Json.Nodes.JsonArray([.. messages.Select(m => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject { ["role"] = m.Role, ["content"] = m.Text })]),
        };
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    }

    private sealed record EvaluationReport(double TaskAccuracy, double TierAccuracy, double UnderTier, string Table);

    private static EvaluationReport Evaluate(TaskClassifier classifier, IReadOnlyList<LabelledRequest> requests) =>
        Report([.. requests.Select(r => (classifier.Classify(r.Body).Task, r.Task, r.Language))]);

    private static EvaluationReport Report(IReadOnlyList<(TaskKind Task, TaskKind Truth, string Language)> rows)
    {
        var table = new StringBuilder();
        table.AppendLine("| slice | n | task accuracy | tier accuracy | under-tier |");
        table.AppendLine("|---|---:|---:|---:|---:|");
        (double Task, double Tier, double Under) Line(string name, IReadOnlyList<(TaskKind Task, TaskKind Truth, string Language)> slice)
        {
            var n = slice.Count;
            var task = slice.Count(r => r.Task == r.Truth) / (double)n;
            var tier = slice.Count(r => TaskKinds.DefaultMinimumTier(r.Task) == TaskKinds.DefaultMinimumTier(r.Truth)) / (double)n;
            var under = slice.Count(r => TaskKinds.DefaultMinimumTier(r.Task) < TaskKinds.DefaultMinimumTier(r.Truth)) / (double)n;
            table.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {n} | {task:P1} | {tier:P1} | {under:P1} |");
            return (task, tier, under);
        }

        var all = Line("all", rows);
        foreach (var language in rows.Select(r => r.Language).Distinct().Order(StringComparer.Ordinal))
        {
            Line("lang " + language, [.. rows.Where(r => r.Language == language)]);
        }

        foreach (var truth in TaskKinds.All)
        {
            var slice = rows.Where(r => r.Truth == truth).ToList();
            if (slice.Count > 0)
            {
                Line("task " + truth.Name(), slice);
            }
        }

        table.AppendLine();
        table.AppendLine("Confusion (rows: true task, columns: classified):");
        table.AppendLine("| true \\ got | " + string.Join(" | ", TaskKinds.All.Select(k => k.Name()[..Math.Min(5, k.Name().Length)])) + " |");
        foreach (var truth in TaskKinds.All)
        {
            table.AppendLine("| " + truth.Name() + " | " + string.Join(" | ", TaskKinds.All.Select(got => rows.Count(r => r.Truth == truth && r.Task == got))) + " |");
        }

        return new EvaluationReport(all.Task, all.Tier, all.Under, table.ToString());
    }
}
