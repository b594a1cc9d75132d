using System.Text;
using System.Text.Json.Nodes;

namespace Tollgate.Tests.Providers.Anthropic;

/// <summary>One content block of a scripted Anthropic answer.</summary>
public abstract record AnthropicBlock;

public sealed record TextBlock(string Text) : AnthropicBlock;

/// <summary>A tool call; <paramref name="InputJson"/> is streamed in <paramref name="Fragments"/> pieces.</summary>
public sealed record ToolUseBlock(string Id, string Name, string InputJson, int Fragments = 3) : AnthropicBlock;

public sealed record ThinkingBlock(string Thinking) : AnthropicBlock;

/// <summary>
/// A scripted answer, rendered in both of Anthropic's wire formats from the same facts, so a streaming and
/// a non-streaming request for it describe the same message.
/// </summary>
/// <param name="Usage">The final usage object as the non-streaming message carries it.</param>
/// <param name="DeltaRepeatsInput">
/// Render the stream's message_delta usage the newer way: every field cumulative (input side repeated),
/// instead of output_tokens only.
/// </param>
public sealed record AnthropicAnswer(
    IReadOnlyList<AnthropicBlock> Blocks,
    string StopReason = "end_turn",
    JsonObject? Usage = null,
    string Id = "msg_01FakeAnswer",
    bool DeltaRepeatsInput = false)
{
    public JsonObject FinalUsage => Usage ?? new JsonObject { ["input_tokens"] = 25, ["output_tokens"] = 15 };

    public static AnthropicAnswer Text(string text, JsonObject? usage = null) => new([new TextBlock(text)], Usage: usage);
}

/// <summary>Renders Anthropic Messages API bodies and SSE transcripts (the shapes Anthropic documents).</summary>
public static class AnthropicWire
{
    public static byte[] Message(AnthropicAnswer answer, string model)
    {
        var content = new JsonArray();
        foreach (var block in answer.Blocks)
        {
            content.Add(block switch
            {
                TextBlock text => new JsonObject { ["type"] = "text", ["text"] = text.Text },
                ToolUseBlock tool => new JsonObject { ["type"] = "tool_use", ["id"] = tool.Id, ["name"] = tool.Name, ["input"] = JsonNode.Parse(tool.InputJson) },
                ThinkingBlock thinking => new JsonObject { ["type"] = "thinking", ["thinking"] = thinking.Thinking, ["signature"] = "sig-fake" },
                _ => throw new ArgumentOutOfRangeException(nameof(answer)),
            });
        }

        var message = new JsonObject
        {
            ["id"] = answer.Id,
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = content,
            ["stop_reason"] = answer.StopReason,
            ["stop_sequence"] = null,
            ["usage"] = answer.FinalUsage.DeepClone(),
        };
        return Encoding.UTF8.GetBytes(message.ToJsonString());
    }

    /// <summary>The SSE events of the answer, each a complete "event: ...\ndata: ...\n\n" frame.</summary>
    public static List<string> Events(AnthropicAnswer answer, string model)
    {
        var final = answer.FinalUsage;
        var start = final.DeepClone().AsObject();
        start["output_tokens"] = 1; // message_start's output count is a placeholder.
        var events = new List<string>
        {
            Event("message_start", new JsonObject
            {
                ["type"] = "message_start",
                ["message"] = new JsonObject
                {
                    ["id"] = answer.Id, ["type"] = "message", ["role"] = "assistant", ["model"] = model, ["content"] = new JsonArray(),
                    ["stop_reason"] = null, ["stop_sequence"] = null, ["usage"] = start,
                },
            }),
            Event("ping", new JsonObject { ["type"] = "ping" }),
        };

        for (var index = 0; index < answer.Blocks.Count; index++)
        {
            switch (answer.Blocks[index])
            {
                case TextBlock text:
                    events.Add(BlockStart(index, new JsonObject { ["type"] = "text", ["text"] = "" }));
                    foreach (var piece in Words(text.Text))
                    {
                        events.Add(Delta(index, new JsonObject { ["type"] = "text_delta", ["text"] = piece }));
                    }

                    break;
                case ToolUseBlock tool:
                    events.Add(BlockStart(index, new JsonObject { ["type"] = "tool_use", ["id"] = tool.Id, ["name"] = tool.Name, ["input"] = new JsonObject() }));
                    events.Add(Delta(index, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = "" }));
                    foreach (var piece in Fragments(tool.InputJson, tool.Fragments))
                    {
                        events.Add(Delta(index, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = piece }));
                    }

                    break;
                case ThinkingBlock thinking:
                    events.Add(BlockStart(index, new JsonObject { ["type"] = "thinking", ["thinking"] = "" }));
                    foreach (var piece in Words(thinking.Thinking))
                    {
                        events.Add(Delta(index, new JsonObject { ["type"] = "thinking_delta", ["thinking"] = piece }));
                    }

                    events.Add(Delta(index, new JsonObject { ["type"] = "signature_delta", ["signature"] = "sig-fake" }));
                    break;
            }

            events.Add(Event("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = index }));
        }

        var deltaUsage = answer.DeltaRepeatsInput ? final.DeepClone().AsObject() : new JsonObject { ["output_tokens"] = final["output_tokens"]!.DeepClone() };
        events.Add(Event("message_delta", new JsonObject
        {
            ["type"] = "message_delta",
            ["delta"] = new JsonObject { ["stop_reason"] = answer.StopReason, ["stop_sequence"] = null },
            ["usage"] = deltaUsage,
        }));
        events.Add(Event("message_stop", new JsonObject { ["type"] = "message_stop" }));
        return events;
    }

    public static string ErrorEvent(string type, string message) =>
        Event("error", ErrorObject(type, message));

    public static JsonObject ErrorObject(string type, string message) =>
        new() { ["type"] = "error", ["error"] = new JsonObject { ["type"] = type, ["message"] = message } };

    /// <summary>Splits an SSE transcript (a fixture file) into its frames.</summary>
    public static List<string> SplitTranscript(string transcript) =>
        [.. transcript.Replace("\r\n", "\n", StringComparison.Ordinal)
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(frame => frame.Trim().Length > 0)
            .Select(frame => frame.Trim('\n') + "\n\n")];

    private static string Event(string name, JsonObject data) => $"event: {name}\ndata: {data.ToJsonString()}\n\n";

    private static string BlockStart(int index, JsonObject block) =>
        Event("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = index, ["content_block"] = block });

    private static string Delta(int index, JsonObject delta) =>
        Event("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = index, ["delta"] = delta });

    /// <summary>"Hello there world" → "Hello", " there", " world".</summary>
    private static IEnumerable<string> Words(string text)
    {
        var start = 0;
        for (var i = 1; i <= text.Length; i++)
        {
            if (i == text.Length || text[i] == ' ')
            {
                yield return text[start..i];
                start = i;
            }
        }
    }

    private static IEnumerable<string> Fragments(string json, int count)
    {
        var size = Math.Max(1, (int)Math.Ceiling(json.Length / (double)Math.Max(1, count)));
        for (var i = 0; i < json.Length; i += size)
        {
            yield return json.Substring(i, Math.Min(size, json.Length - i));
        }
    }
}
