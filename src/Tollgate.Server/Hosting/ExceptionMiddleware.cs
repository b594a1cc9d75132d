using Tollgate.Server.Diagnostics;
using Tollgate.Server.Dispatch;
using Tollgate.Server.Errors;

namespace Tollgate.Server.Hosting;

/// <summary>
/// The boundary where exceptions become responses. Malformed HTTP (a body past Kestrel's limit, a
/// broken chunked encoding) becomes a 4xx OpenAI error; a database that cannot be reached (say, under an admin call)
/// becomes 503 <c>storage_unavailable</c> (Redis failures are handled where Redis is used, by the limiter); anything
/// else is our bug, logged without request content and answered with a generic 500.
/// </summary>
internal sealed class ExceptionMiddleware(RequestDelegate next, ILogger<ExceptionMiddleware> logger, Configuration.TollgateOptions options)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (!context.Response.HasStarted)
        {
            if (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                await GatewayDispatcher.WriteTooLargeAsync(context, options.Server.MaxRequestBodyBytes).ConfigureAwait(false);
                return;
            }

            await OpenAIError.WriteAsync(context, ex.StatusCode, "The HTTP request was malformed.", OpenAIError.InvalidRequest, null, "bad_request").ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is nobody to answer.
        }
        catch (System.Data.Common.DbException ex) when (ex.IsTransient && !context.Response.HasStarted)
        {
            // Not a bug of ours: say so, and when to try again. The drivers' messages name the server, never a password.
            Log.StorageUnavailable(logger, context.TraceIdentifier, ex.Message);
            context.Response.Headers.RetryAfter = "1";
            await OpenAIError.WriteAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"The gateway's storage cannot be reached right now (request id {context.TraceIdentifier}). Try again shortly.", OpenAIError.Api, null, "storage_unavailable").ConfigureAwait(false);
        }
        catch (Exception ex) when (!context.Response.HasStarted)
        {
            Log.Unhandled(logger, ex, context.TraceIdentifier);
            await OpenAIError.WriteAsync(context, StatusCodes.Status500InternalServerError,
                $"The gateway failed to process the request (request id {context.TraceIdentifier}).", OpenAIError.Api, null, "internal_error").ConfigureAwait(false);
        }
    }
}
