using System.Text.Json;

namespace Tollgate.Routing.Classification;

/// <summary>One labelled prompt: a JSONL line that is itself a chat body plus <c>id</c>, <c>task</c> and <c>lang</c>.</summary>
internal sealed record LabelledRequest(string Id, TaskKind Task, string Language, byte[] Body);

/// <summary>
/// Reads labelled prompt files (JSONL, one request per line). The training file is embedded in this
/// assembly; the tests read their holdout file with the same reader.
/// </summary>
internal static class TrainingData
{
    public const string ResourceName = "Tollgate.Routing.Classification.train.jsonl";

    public static List<LabelledRequest> LoadEmbedded()
    {
        using var stream = typeof(TrainingData).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"Embedded resource {ResourceName} is missing.");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return Parse(memory.ToArray());
    }

    public static List<LabelledRequest> Parse(ReadOnlySpan<byte> jsonl)
    {
        var result = new List<LabelledRequest>();
        var line = 0;
        while (!jsonl.IsEmpty)
        {
            line++;
            var end = jsonl.IndexOf((byte)'\n');
            var current = end < 0 ? jsonl : jsonl[..end];
            jsonl = end < 0 ? default : jsonl[(end + 1)..];
            current = current.TrimEnd((byte)'\r');
            if (current.Trim((byte)' ').IsEmpty)
            {
                continue;
            }

            string? id = null, task = null, language = null;
            var reader = new Utf8JsonReader(current);
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "id":
                        id = reader.GetString();
                        break;
                    case "task":
                        task = reader.GetString();
                        break;
                    case "lang":
                        language = reader.GetString();
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (!TaskKinds.TryParse(task, out var kind))
            {
                throw new InvalidDataException($"Line {line}: unknown task '{task}'.");
            }

            result.Add(new LabelledRequest(id ?? $"line-{line}", kind, language ?? "en", current.ToArray()));
        }

        return result;
    }

    public static List<FeatureVector> Featurize(IReadOnlyList<LabelledRequest> requests)
    {
        var result = new List<FeatureVector>(requests.Count);
        Span<byte> buffer = stackalloc byte[RequestText.BufferSize];
        foreach (var request in requests)
        {
            if (!RequestText.TryRead(request.Body, buffer, out var text))
            {
                throw new InvalidDataException($"{request.Id}: not a readable chat body.");
            }

            var sink = new CollectSink([], []);
            TaskFeatures.Extract(in text, ref sink);
            result.Add(new FeatureVector([.. sink.Features], [.. sink.Values], (int)request.Task));
        }

        return result;
    }

    private struct CollectSink(List<int> features, List<float> values) : IFeatureSink
    {
        private int _pending = -1;

        public readonly List<int> Features => features;
        public readonly List<float> Values => values;

        public readonly void Add(int feature, float value)
        {
            features.Add(feature);
            values.Add(value);
        }

        public void AddHashed(int feature)
        {
            if (_pending < 0)
            {
                _pending = features.Count;
            }

            Add(feature, 0f);
        }

        public void EndHashed(float value)
        {
            if (_pending < 0)
            {
                return;
            }

            for (var i = _pending; i < values.Count; i++)
            {
                values[i] = value;
            }

            _pending = -1;
        }
    }
}
