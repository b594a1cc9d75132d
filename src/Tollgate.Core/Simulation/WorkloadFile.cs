using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Tollgate.Routing.Classification;

namespace Tollgate.Simulation;

/// <summary>
/// One request of a workload: what the client sends (messages, <c>max_tokens</c>, <c>stream</c>, the <c>tollgate</c>
/// constraints object) and what the simulated provider answers (<see cref="OutputTokens"/>).
/// </summary>
internal sealed record WorkloadRequest
{
    /// <summary>Its line in the workload file (1-based), or its position in a generated workload.</summary>
    public int Line { get; init; }

    /// <summary>The task the request really is, when known: compared with the classifier's verdict, never shown to it.</summary>
    public TaskKind? Label { get; init; }

    /// <summary>The <c>messages</c> array as UTF-8 JSON, sent verbatim.</summary>
    public required byte[] MessagesJson { get; init; }

    public int? MaxTokens { get; init; }

    public bool Stream { get; init; }

    /// <summary>Output tokens the provider produces (never more than <see cref="MaxTokens"/>).</summary>
    public long OutputTokens { get; init; }

    /// <summary>Billed input tokens; null bills the gateway's estimate from the body (UTF-8 bytes / 4 plus per-message framing).</summary>
    public long? InputTokens { get; init; }

    /// <summary>The request's <c>tollgate</c> object (routing constraints) as UTF-8 JSON, or null.</summary>
    public byte[]? ConstraintsJson { get; init; }
}

/// <summary>
/// The workload file: JSON Lines, one request per line, blank lines ignored:
/// <c>{"task": "summarization", "messages": [...], "max_tokens": 300, "stream": false, "output_tokens": 180,
/// "input_tokens": 900, "constraints": {"max_latency_ms": 2000, ...}}</c>. Only <c>messages</c> is required;
/// <c>constraints</c> takes exactly the fields of the request body's <c>tollgate</c> object.
/// </summary>
internal static class WorkloadFile
{
    /// <summary>Output when a line states neither <c>output_tokens</c> nor a smaller <c>max_tokens</c> (a short paragraph).</summary>
    public const int DefaultOutputTokens = 256;

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Reads every request; throws <see cref="SimulationException"/> naming the first bad line.</summary>
    public static List<WorkloadRequest> Read(TextReader reader)
    {
        var requests = new List<WorkloadRequest>();
        var number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                requests.Add(ReadLine(line, number));
            }
            catch (JsonException ex)
            {
                throw new SimulationException($"Workload line {number} is not valid JSON: {ex.Message}");
            }
        }

        return requests;
    }

    private static WorkloadRequest ReadLine(string line, int number)
    {
        using var document = JsonDocument.Parse(line);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Bad(number, "must be a JSON object");
        }

        TaskKind? label = null;
        byte[]? messages = null;
        int? maxTokens = null;
        var stream = false;
        long? output = null;
        long? input = null;
        byte[]? constraints = null;
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "task" when value.ValueKind == JsonValueKind.Null:
                    break;
                case "task":
                    label = value.ValueKind == JsonValueKind.String && TaskKinds.TryParse(value.GetString(), out var task)
                        ? task
                        : throw Bad(number, $"'task' must be one of: {string.Join(", ", TaskKinds.All.Select(t => t.Name()))}");
                    break;
                case "messages":
                    messages = value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0
                        ? Encoding.UTF8.GetBytes(value.GetRawText())
                        : throw Bad(number, "'messages' must be a non-empty array of chat messages");
                    break;
                case "max_tokens":
                    maxTokens = value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var max) && max > 0
                        ? max
                        : throw Bad(number, "'max_tokens' must be a positive integer");
                    break;
                case "stream":
                    stream = value.ValueKind is JsonValueKind.True or JsonValueKind.False
                        ? value.GetBoolean()
                        : throw Bad(number, "'stream' must be true or false");
                    break;
                case "output_tokens":
                    output = Count(value, number, "output_tokens");
                    break;
                case "input_tokens":
                    input = Count(value, number, "input_tokens");
                    break;
                case "constraints":
                    constraints = value.ValueKind == JsonValueKind.Object
                        ? Encoding.UTF8.GetBytes(value.GetRawText())
                        : throw Bad(number, "'constraints' must be an object (the fields of the request body's 'tollgate' object)");
                    break;
                default:
                    throw Bad(number, $"unknown field '{property.Name}' (expected: task, messages, max_tokens, stream, output_tokens, input_tokens, constraints)");
            }
        }

        if (messages is null)
        {
            throw Bad(number, "'messages' is required");
        }

        var produced = Math.Min(output ?? DefaultOutputTokens, maxTokens ?? long.MaxValue);
        return new WorkloadRequest
        {
            Line = number,
            Label = label,
            MessagesJson = messages,
            MaxTokens = maxTokens,
            Stream = stream,
            OutputTokens = produced,
            InputTokens = input,
            ConstraintsJson = constraints,
        };
    }

    private static long Count(JsonElement value, int number, string name) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) && n >= 0 ? n : throw Bad(number, $"'{name}' must be a non-negative integer");

    private static SimulationException Bad(int number, string problem) => new($"Workload line {number}: {problem}.");

    /// <summary>Writes requests as JSON Lines, the format <see cref="Read"/> reads.</summary>
    public static void Write(TextWriter output, IEnumerable<WorkloadRequest> requests)
    {
        var buffer = new ArrayBufferWriter<byte>();
        foreach (var request in requests)
        {
            buffer.ResetWrittenCount();
            using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
            {
                writer.WriteStartObject();
                if (request.Label is { } label)
                {
                    writer.WriteString("task"u8, label.Name());
                }

                writer.WritePropertyName("messages"u8);
                writer.WriteRawValue(request.MessagesJson, skipInputValidation: true);
                if (request.MaxTokens is { } max)
                {
                    writer.WriteNumber("max_tokens"u8, max);
                }

                writer.WriteBoolean("stream"u8, request.Stream);
                writer.WriteNumber("output_tokens"u8, request.OutputTokens);
                if (request.InputTokens is { } input)
                {
                    writer.WriteNumber("input_tokens"u8, input);
                }

                if (request.ConstraintsJson is { } constraints)
                {
                    writer.WritePropertyName("constraints"u8);
                    writer.WriteRawValue(constraints, skipInputValidation: true);
                }

                writer.WriteEndObject();
            }

            output.WriteLine(Encoding.UTF8.GetString(buffer.WrittenSpan));
        }
    }
}
