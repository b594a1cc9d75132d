using System.Text.Json.Serialization;
using Tollgate.Requests;
using Tollgate.Routing;
using Tollgate.Server.Dispatch;
using Tollgate.Server.Errors;

namespace Tollgate.Server.Endpoints.OpenAI;

/// <summary>The OpenAI-compatible surface under <c>/v1</c>. Authentication happens before these run.</summary>
internal static class OpenAIEndpoints
{
    public static IEndpointRouteBuilder MapOpenAI(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1");
        v1.MapPost("/chat/completions", (HttpContext context, GatewayDispatcher dispatcher) => dispatcher.HandleAsync(context, RequestKind.ChatCompletion));
        v1.MapPost("/embeddings", (HttpContext context, GatewayDispatcher dispatcher) => dispatcher.HandleAsync(context, RequestKind.Embedding));
        v1.MapGet("/models", ListModels);
        v1.MapGet("/models/{**id}", GetModel);
        v1.MapFallback(NotFound);
        return app;
    }

    private static ModelList ListModels(Catalog catalog, ModelCatalogClock clock)
    {
        var data = new List<ModelEntry>();
        foreach (var route in catalog.PublicRoutes.Values.OrderBy(r => r.Name, StringComparer.Ordinal))
        {
            if (HasConfiguredCandidate(route))
            {
                data.Add(new ModelEntry(route.Name, "model", clock.Created, "tollgate"));
            }
        }

        foreach (var deployment in catalog.Deployments.Values.OrderBy(d => d.Id, StringComparer.Ordinal))
        {
            if (deployment.Provider.IsConfigured)
            {
                data.Add(new ModelEntry(deployment.Id, "model", clock.Created, deployment.Provider.Name));
            }
        }

        return new ModelList("list", data);
    }

    private static async Task GetModel(HttpContext context, string id, Catalog catalog, ModelCatalogClock clock)
    {
        if (catalog.Routes.TryGetValue(id, out var route) && HasConfiguredCandidate(route))
        {
            var owner = catalog.Deployments.TryGetValue(id, out var deployment) ? deployment.Provider.Name : "tollgate";
            await TypedResults.Json(new ModelEntry(route.Name, "model", clock.Created, owner), Json.ServerJsonContext.Default.ModelEntry).ExecuteAsync(context).ConfigureAwait(false);
            return;
        }

        await OpenAIError.WriteAsync(context, StatusCodes.Status404NotFound, $"The model '{id}' does not exist or you do not have access to it.", OpenAIError.InvalidRequest, "model", "model_not_found").ConfigureAwait(false);
    }

    private static bool HasConfiguredCandidate(Tollgate.Routing.Route route)
    {
        foreach (var candidate in route.Candidates)
        {
            if (candidate.Provider.IsConfigured)
            {
                return true;
            }
        }

        return false;
    }

    private static Task NotFound(HttpContext context) =>
        OpenAIError.WriteAsync(context, StatusCodes.Status404NotFound,
            $"Unknown endpoint: {context.Request.Method} {context.Request.Path}. Tollgate serves /v1/chat/completions, /v1/embeddings and /v1/models.",
            OpenAIError.InvalidRequest, null, "unknown_url");
}

/// <summary>The <c>created</c> timestamp reported for every model: when this gateway loaded its catalog.</summary>
internal sealed class ModelCatalogClock(TimeProvider time)
{
    public long Created { get; } = time.GetUtcNow().ToUnixTimeSeconds();
}

internal sealed record ModelList(string Object, List<ModelEntry> Data);

internal sealed record ModelEntry(string Id, string Object, long Created, [property: JsonPropertyName("owned_by")] string OwnedBy);
