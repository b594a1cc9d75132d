using System.Globalization;
using System.Text;

namespace Tollgate.Bench.Upstream;

/// <summary>The fixed answers, built once as UTF-8 bytes.</summary>
internal static class Payloads
{
    private const string Id = "chatcmpl-tgbench00000000000000000000000001";
    private const long Created = 1_764_000_000;
    private const string Model = "gpt-4o-mini-2024-07-18";
    private const string Fingerprint = "fp_tgbench01";
    private const int PromptTokens = 274;

    private static readonly string[] Tokens =
    [
        "Hello", "!", " This", " is", " a", " canned", " reply", " from", " the", " Tollgate",
        " bench", " upstream", ",", " served", " straight", " from", " memory", ".",
    ];

    private static readonly int CompletionTokens = Tokens.Length + 2;

    public static byte[] ChatJson { get; } = Encoding.UTF8.GetBytes(BuildChatJson());

    /// <summary>Each element is one complete SSE event ("data: ...\n\n").</summary>
    public static byte[][] StreamEvents { get; } = BuildStreamEvents();

    /// <summary>All stream events concatenated.</summary>
    public static byte[] StreamAll { get; } = StreamEvents.SelectMany(static e => e).ToArray();

    public static byte[] Models { get; } = Encoding.UTF8.GetBytes(
        "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"created\":" +
        Created.ToString(CultureInfo.InvariantCulture) + ",\"owned_by\":\"tollgate-bench\"}]}");

    public static byte[] Health { get; } = Encoding.UTF8.GetBytes("{\"status\":\"ok\"}");

    public static byte[] NotFound { get; } = Encoding.UTF8.GetBytes(
        "{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"not_found\"}}");

    private static string Usage() =>
        "{\"prompt_tokens\":" + PromptTokens.ToString(CultureInfo.InvariantCulture) +
        ",\"completion_tokens\":" + CompletionTokens.ToString(CultureInfo.InvariantCulture) +
        ",\"total_tokens\":" + (PromptTokens + CompletionTokens).ToString(CultureInfo.InvariantCulture) +
        ",\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0}" +
        ",\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0," +
        "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}";

    private static string Header(string obj) =>
        "{\"id\":\"" + Id + "\",\"object\":\"" + obj + "\",\"created\":" +
        Created.ToString(CultureInfo.InvariantCulture) + ",\"model\":\"" + Model + "\"";

    private static string BuildChatJson() =>
        Header("chat.completion") +
        ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"" + string.Concat(Tokens) +
        "\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":\"stop\"}]" +
        ",\"usage\":" + Usage() +
        ",\"service_tier\":\"default\",\"system_fingerprint\":\"" + Fingerprint + "\"}";

    private static string Chunk(string delta, string? finishReason) =>
        "data: " + Header("chat.completion.chunk") +
        ",\"service_tier\":\"default\",\"system_fingerprint\":\"" + Fingerprint + "\"" +
        ",\"choices\":[{\"index\":0,\"delta\":" + delta + ",\"logprobs\":null,\"finish_reason\":" +
        (finishReason is null ? "null" : "\"" + finishReason + "\"") + "}],\"usage\":null}\n\n";

    private static byte[][] BuildStreamEvents()
    {
        var events = new List<string> { Chunk("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", null) };
        events.AddRange(Tokens.Select(static t => Chunk("{\"content\":\"" + t + "\"}", null)));
        events.Add(Chunk("{}", "stop"));
        events.Add("data: " + Header("chat.completion.chunk") +
                   ",\"service_tier\":\"default\",\"system_fingerprint\":\"" + Fingerprint + "\"" +
                   ",\"choices\":[],\"usage\":" + Usage() + "}\n\n");
        events.Add("data: [DONE]\n\n");
        return events.Select(static e => Encoding.UTF8.GetBytes(e)).ToArray();
    }
}
