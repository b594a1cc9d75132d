using System.Text.Json.Nodes;

namespace Tollgate.Tests.Fakes;

/// <summary>
/// One request as <see cref="FakeUpstream"/> received it, recorded before any behaviour runs
/// (so hung, dropped and unauthorised requests are recorded too).
/// </summary>
/// <param name="Method">HTTP method, e.g. "POST".</param>
/// <param name="Path">Path without query string, e.g. "/v1/chat/completions".</param>
/// <param name="QueryString">Raw query string including '?', or empty.</param>
/// <param name="Headers">Request headers (case-insensitive names; repeated values joined with ", ").</param>
/// <param name="Body">Raw body text (empty when there is none).</param>
/// <param name="Json">The body parsed as a JSON object, or null when it is empty, invalid or not an object.
/// Shared with other snapshots: treat it as read-only.</param>
public sealed record RecordedRequest(
    string Method,
    string Path,
    string QueryString,
    IReadOnlyDictionary<string, string> Headers,
    string Body,
    JsonObject? Json)
{
    /// <summary>The header value, or null when it was not sent.</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    /// <summary>The "Authorization" header, or null.</summary>
    public string? Authorization => Header("Authorization");

    /// <summary>The body's "model" member when it is a string.</summary>
    public string? Model => StringMember(Json, "model");

    /// <summary>True when the body asked for a stream ("stream": true).</summary>
    public bool IsStream => BoolMember(Json, "stream");

    internal static string? StringMember(JsonObject? json, string name) =>
        json?[name] is JsonValue value && value.TryGetValue(out string? text) ? text : null;

    internal static bool BoolMember(JsonObject? json, string name) =>
        json?[name] is JsonValue value && value.TryGetValue(out bool flag) && flag;

    internal static int? IntMember(JsonObject? json, string name) =>
        json?[name] is JsonValue value && value.TryGetValue(out int number) ? number : null;
}
