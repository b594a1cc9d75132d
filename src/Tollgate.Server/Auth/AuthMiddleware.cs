using Tollgate.Configuration;
using Tollgate.Keys;
using Tollgate.Server.Dashboard;
using Tollgate.Server.Diagnostics;
using Tollgate.Server.Errors;
using Tollgate.Tenancy;

namespace Tollgate.Server.Auth;

/// <summary>The authenticated client key of a <c>/v1</c> request, its tenant and the tenant's plan (null: none).</summary>
internal sealed record ClientKeyFeature(ApiKeyRecord Key, Tenant Tenant, PlanOptions? Plan);

/// <summary>
/// Authenticates before routing: <c>/v1/*</c> needs an active client key (OpenAI error on failure),
/// <c>/admin/*</c> and <c>/providers</c> need the admin key (ProblemDetails on failure). A request that
/// fails here never reaches a handler, let alone a provider. On the dashboard's read endpoints a
/// dashboard session cookie may stand in for the header (see <see cref="DashboardSessions.ForReadAsync"/>).
/// </summary>
internal sealed class AuthMiddleware(RequestDelegate next, ClientKeyCache keys, TenantDirectory tenants, AdminKey adminKey, KeyGuessLimiter guesses, DashboardSessions sessions, GatewayMetrics metrics, TollgateOptions options, TimeProvider time)
{
    private readonly bool _metricsNeedAdminKey = options.Telemetry.Metrics && options.Telemetry.MetricsRequireAdminKey;

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/v1"))
        {
            var authorization = context.Request.Headers.Authorization.ToString();
            var generation = keys.Generation;
            var remembered = ConnectionKeyMemo.Recall(context, authorization, generation);
            var token = remembered is null ? BearerToken.From(authorization) : null;
            var sessionKeyHash = remembered is null && token is null ? (await SessionForReadAsync(context).ConfigureAwait(false))?.KeyHash : null;
            if (remembered is null && token is null && sessionKeyHash is null)
            {
                metrics.AuthRefused("v1", "missing_api_key");
                await OpenAIError.WriteAsync(
                    context,
                    StatusCodes.Status401Unauthorized,
                    "You didn't provide an API key. Send your Tollgate key in an Authorization header: 'Authorization: Bearer tg-...'.",
                    OpenAIError.Authentication,
                    null,
                    "missing_api_key").ConfigureAwait(false);
                return;
            }

            ApiKeyRecord? key;
            try
            {
                key = remembered
                    ?? (token is not null
                        ? await keys.FindActiveAsync(token, context.RequestAborted).ConfigureAwait(false)
                        : await keys.FindActiveByHashAsync(sessionKeyHash!, context.RequestAborted).ConfigureAwait(false));
            }
            catch (Exception ex) when (IsDatabaseFailure(ex))
            {
                await KeysUnavailableAsync(context).ConfigureAwait(false);
                return;
            }

            if (key is null)
            {
                metrics.AuthRefused("v1", "invalid_api_key");
                await OpenAIError.WriteAsync(
                    context,
                    StatusCodes.Status401Unauthorized,
                    token is null
                        ? "The key this dashboard session logged in with has been revoked. Log in again with an active key."
                        : $"Incorrect API key provided: {Redact(token)}. Keys are created with 'tollgate keys create' or POST /admin/keys.",
                    OpenAIError.Authentication,
                    null,
                    "invalid_api_key").ConfigureAwait(false);
                return;
            }

            if (key.IsExpired(time.GetUtcNow()))
            {
                metrics.AuthRefused("v1", "expired_api_key");
                await OpenAIError.WriteAsync(
                    context,
                    StatusCodes.Status401Unauthorized,
                    $"The API key {key.Prefix}... expired at {key.ExpiresAt:O}. Ask the gateway's operator for a new key.",
                    OpenAIError.Authentication,
                    null,
                    "expired_api_key").ConfigureAwait(false);
                return;
            }

            Tenant? tenant;
            try
            {
                tenant = await tenants.FindAsync(key.TenantId, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsDatabaseFailure(ex))
            {
                await KeysUnavailableAsync(context).ConfigureAwait(false);
                return;
            }

            if (tenant is null || tenant.Suspended)
            {
                metrics.AuthRefused("v1", "tenant_suspended");
                await OpenAIError.WriteAsync(
                    context,
                    StatusCodes.Status403Forbidden,
                    "The tenant that owns this API key is suspended. Ask the gateway's operator to resume it.",
                    OpenAIError.Permission,
                    null,
                    "tenant_suspended").ConfigureAwait(false);
                return;
            }

            if (token is not null)
            {
                ConnectionKeyMemo.Remember(context, authorization, generation, key);
            }

            context.Features.Set(new ClientKeyFeature(key, tenant, tenants.PlanOf(tenant)));
        }
        else if (path.StartsWithSegments("/admin") || path.StartsWithSegments("/providers") || (_metricsNeedAdminKey && path.StartsWithSegments(Telemetry.MetricsPath)))
        {
            var presented = BearerToken.From(context.Request);
            if (presented is not null && guesses.Blocked(context) is { } retryAfter)
            {
                metrics.AuthRefused("admin", "too_many_wrong_keys");
                await TooManyGuesses(retryAfter).ExecuteAsync(context).ConfigureAwait(false);
                return;
            }

            if (!adminKey.Matches(presented) && (await SessionForReadAsync(context).ConfigureAwait(false))?.Role != DashboardRole.Admin)
            {
                if (presented is not null)
                {
                    guesses.Failed(context);
                }

                metrics.AuthRefused("admin", presented is null ? "missing_admin_key" : "wrong_admin_key");

                await Results.Problem(
                    statusCode: StatusCodes.Status401Unauthorized,
                    title: "Admin key required",
                    detail: "Send the admin key as 'Authorization: Bearer ...' (it was printed at first start, or set with TOLLGATE_ADMIN_KEY).").ExecuteAsync(context).ConfigureAwait(false);
                return;
            }
        }

        await next(context).ConfigureAwait(false);
    }

    /// <summary>The dashboard session that stands in for a header on this read, if any (only asked when no header came).</summary>
    private Task<Tollgate.Keys.DashboardSession?> SessionForReadAsync(HttpContext context) => sessions.ForReadAsync(context.Request, context.RequestAborted);

    private static bool IsDatabaseFailure(Exception ex) => ex is System.Data.Common.DbException or IOException or TimeoutException;

    /// <summary>
    /// A key not in the cache, or the tenants, could not be read (a shared database that is unreachable): the key is
    /// neither accepted nor called wrong, and the client is told to retry.
    /// </summary>
    private Task KeysUnavailableAsync(HttpContext context)
    {
        metrics.AuthRefused("v1", "keys_unavailable");
        context.Response.Headers.RetryAfter = "1";
        return OpenAIError.WriteAsync(
            context,
            StatusCodes.Status503ServiceUnavailable,
            "The gateway cannot check API keys right now: its database is unreachable. Try again shortly.",
            OpenAIError.Api,
            null,
            "keys_unavailable");
    }

    /// <summary>The refusal of an address that sent too many wrong admin keys (<see cref="KeyGuessLimiter"/>).</summary>
    private static RetryAfterResult TooManyGuesses(TimeSpan retryAfter)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        return new RetryAfterResult(
            Results.Problem(
                statusCode: StatusCodes.Status429TooManyRequests,
                title: "Too many wrong keys",
                detail: $"{KeyGuessLimiter.FailuresPerWindow} wrong keys came from this address within a minute; no key from it is checked for the next {seconds} s."),
            seconds);
    }

    /// <summary>Shows only the shape of a wrong key, as OpenAI does, so it never echoes a secret whole.</summary>
    private static string Redact(string token) => token.Length <= 8 ? "***" : $"{token[..3]}***{token[^4..]}";
}

/// <summary>Another result with a <c>Retry-After</c> header (seconds) added.</summary>
internal sealed class RetryAfterResult(IResult inner, int seconds) : IResult
{
    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return inner.ExecuteAsync(httpContext);
    }
}
