using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Tollgate.Routing;

namespace Tollgate.Providers.Gemini;

/// <summary>Small shared pieces of the Gemini adapter: writer options, endpoint addresses, compact JSON.</summary>
internal static class GeminiJson
{
    /// <summary>
    /// Output is <c>application/json</c> for API clients, never embedded in HTML, so non-ASCII text is written
    /// as UTF-8 rather than <c>\uXXXX</c> escapes (as the server's own error writer does).
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// <c>{BaseUri}models/{model}:{method}</c>. A model configured with its resource prefix
    /// (<c>models/...</c> or <c>tunedModels/...</c>) is used as is.
    /// </summary>
    public static Uri MethodUri(Deployment deployment, string method) =>
        deployment.Provider.Endpoint(ModelResource(deployment.UpstreamModel) + ":" + method);

    /// <summary>The resource name Gemini expects inside embedding requests (<c>models/{model}</c>).</summary>
    public static string ModelResource(string model) =>
        model.StartsWith("models/", StringComparison.Ordinal) || model.StartsWith("tunedModels/", StringComparison.Ordinal) ? model : "models/" + model;

    /// <summary>A JSON value re-written without insignificant whitespace.</summary>
    public static string Compact(JsonElement element)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            element.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
