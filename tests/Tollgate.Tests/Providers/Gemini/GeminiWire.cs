using System.Text.Json.Nodes;

namespace Tollgate.Tests.Providers.Gemini;

/// <summary>Builders for Gemini v1beta response bodies and stream events, in the shapes the real API sends.</summary>
public static class GeminiWire
{
    public const string ModelVersion = "gemini-2.5-flash";
    public const string ResponseId = "r3sp0nseId";

    /// <summary>google.rpc.ErrorInfo for a bad key, as Gemini attaches to its 400.</summary>
    public static JsonObject ApiKeyInvalidDetail => new()
    {
        ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo",
        ["reason"] = "API_KEY_INVALID",
        ["domain"] = "googleapis.com",
    };

    /// <summary>google.rpc.RetryInfo, as Gemini attaches to a 429.</summary>
    public static JsonObject RetryInfo(string delay) => new()
    {
        ["@type"] = "type.googleapis.com/google.rpc.RetryInfo",
        ["retryDelay"] = delay,
    };

    public static string Error(int code, string status, string message, JsonObject? detail = null)
    {
        var error = new JsonObject { ["code"] = code, ["message"] = message, ["status"] = status };
        if (detail is not null)
        {
            error["details"] = new JsonArray(detail);
        }

        return new JsonObject { ["error"] = error }.ToJsonString();
    }

    public static JsonObject Usage(int prompt, int candidates, int cached = 0, int thoughts = 0)
    {
        var usage = new JsonObject { ["promptTokenCount"] = prompt, ["candidatesTokenCount"] = candidates };
        if (cached > 0)
        {
            usage["cachedContentTokenCount"] = cached;
        }

        if (thoughts > 0)
        {
            usage["thoughtsTokenCount"] = thoughts;
        }

        usage["totalTokenCount"] = prompt + candidates + thoughts;
        return usage;
    }

    /// <summary>A whole generateContent answer with one text candidate.</summary>
    public static string Answer(string text, int promptTokens, int candidateTokens, string finishReason = "STOP") =>
        Response([Candidate(0, [Text(text)], finishReason)], Usage(promptTokens, candidateTokens)).ToJsonString();

    /// <summary>A stream of text pieces; the last event carries the finish reason; every event carries the usage so far (cumulative).</summary>
    public static List<string> AnswerEvents(string[] pieces, int promptTokens, int candidateTokens, string finishReason = "STOP")
    {
        var events = new List<string>();
        for (var i = 0; i < pieces.Length; i++)
        {
            var last = i == pieces.Length - 1;
            var soFar = last ? candidateTokens : Math.Max(1, candidateTokens * (i + 1) / pieces.Length);
            events.Add(Response([Candidate(0, [Text(pieces[i])], last ? finishReason : null)], Usage(promptTokens, soFar)).ToJsonString());
        }

        return events;
    }

    public static JsonObject Response(JsonObject[] candidates, JsonObject? usage)
    {
        var response = new JsonObject { ["candidates"] = new JsonArray([.. candidates]) };
        if (usage is not null)
        {
            response["usageMetadata"] = usage;
        }

        response["modelVersion"] = ModelVersion;
        response["responseId"] = ResponseId;
        return response;
    }

    /// <summary>A candidate; Gemini leaves "index" out for candidate 0, so this does too.</summary>
    public static JsonObject Candidate(int index, JsonObject[] parts, string? finishReason)
    {
        var candidate = new JsonObject { ["content"] = new JsonObject { ["parts"] = new JsonArray([.. parts]), ["role"] = "model" } };
        if (finishReason is not null)
        {
            candidate["finishReason"] = finishReason;
        }

        if (index > 0)
        {
            candidate["index"] = index;
        }

        return candidate;
    }

    public static JsonObject Text(string text) => new() { ["text"] = text };

    public static JsonObject Thought(string text) => new() { ["text"] = text, ["thought"] = true };

    public static JsonObject Call(string name, JsonObject args) => new() { ["functionCall"] = new JsonObject { ["name"] = name, ["args"] = args } };

    public static string Embedding(int dimensions, int seed) =>
        new JsonObject { ["embedding"] = Vector(dimensions, seed) }.ToJsonString();

    public static string BatchEmbeddings(int count, int dimensions) =>
        new JsonObject { ["embeddings"] = new JsonArray([.. Enumerable.Range(0, count).Select(i => (JsonNode)Vector(dimensions, i + 1))]) }.ToJsonString();

    /// <summary>Deterministic values: seed/10, seed/100, ... so tests can check order.</summary>
    public static JsonObject Vector(int dimensions, int seed) =>
        new() { ["values"] = new JsonArray([.. Enumerable.Range(0, dimensions).Select(d => (JsonNode)((seed * 0.1m) + (d * 0.01m)))]) };
}
