using System.Security.Cryptography;

namespace Tollgate.Tenancy;

/// <summary>A customer of the gateway: owns keys, subscribes to a plan, is billed and limited as one.</summary>
/// <param name="Plan">The plan's name under <c>plans</c>; null means no plan: no fee, no quota, no limits (the default tenant starts so).</param>
/// <param name="Suspended">A suspended tenant's keys are refused (403 <c>tenant_suspended</c>).</param>
public sealed record Tenant(string Id, string Name, string? Plan, bool Suspended, DateTimeOffset CreatedAt)
{
    /// <summary>The tenant that keys made without one belong to, including every key made before tenancy existed.</summary>
    public const string DefaultId = "default";

    public static string NewId() => "ten_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
}

/// <summary>Persistence of tenants.</summary>
public interface ITenantStore
{
    Task<Tenant> CreateAsync(string name, string? plan, CancellationToken cancellationToken);

    Task<IReadOnlyList<Tenant>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Changes a tenant's plan and/or suspension; null arguments leave the value as it is. Null when the tenant does not exist.</summary>
    Task<Tenant?> UpdateAsync(string id, string? plan, bool clearPlan, bool? suspended, CancellationToken cancellationToken);
}
