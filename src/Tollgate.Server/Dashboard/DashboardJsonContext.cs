using System.Text.Json.Serialization;

namespace Tollgate.Server.Dashboard;

/// <summary>Source-generated JSON for the dashboard's own endpoint, camelCase like the admin APIs. Kept apart
/// from <c>ServerJsonContext</c> so the dashboard feature owns its types.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(DashboardSessionResponse))]
internal sealed partial class DashboardJsonContext : JsonSerializerContext;
