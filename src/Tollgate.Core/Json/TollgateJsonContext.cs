using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Tollgate;

/// <summary>Source-generated serialisation for the few types Core itself writes.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class TollgateJsonContext : JsonSerializerContext;
