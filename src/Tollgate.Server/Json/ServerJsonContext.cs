using System.Text.Json.Serialization;
using Tollgate.Server.Endpoints.Admin;
using Tollgate.Server.Endpoints.OpenAI;
using Tollgate.Server.Endpoints.Usage;

namespace Tollgate.Server.Json;

/// <summary>Source-generated serialisation for every type the server writes or reads as JSON. Admin APIs use camelCase.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelEntry))]
[JsonSerializable(typeof(CreateKeyRequest))]
[JsonSerializable(typeof(CreatedKeyResponse))]
[JsonSerializable(typeof(KeyListResponse))]
[JsonSerializable(typeof(KeyEntry))]
[JsonSerializable(typeof(UpdateKeyRequest))]
[JsonSerializable(typeof(CreateTenantRequest))]
[JsonSerializable(typeof(UpdateTenantRequest))]
[JsonSerializable(typeof(TenantResponse))]
[JsonSerializable(typeof(TenantListResponse))]
[JsonSerializable(typeof(TenantDetailResponse))]
[JsonSerializable(typeof(UsageReportResponse))]
[JsonSerializable(typeof(ProvidersResponse))]
[JsonSerializable(typeof(ProviderStatus))]
[JsonSerializable(typeof(DeploymentStatus))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(ReadinessResponse))]
[JsonSerializable(typeof(HealthResetResponse))]
[JsonSerializable(typeof(Microsoft.AspNetCore.Mvc.ProblemDetails))]
internal sealed partial class ServerJsonContext : JsonSerializerContext;
