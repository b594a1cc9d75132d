using System.Security.Cryptography;

namespace Tollgate.Server.Hosting;

/// <summary>Gives every response an <c>x-request-id</c>: the client's own when it is sane, else a new one.</summary>
internal sealed class RequestIdMiddleware(RequestDelegate next)
{
    public const string Header = "x-request-id";

    public Task InvokeAsync(HttpContext context)
    {
        var incoming = context.Request.Headers[Header].ToString();
        var id = IsSane(incoming) ? incoming : NewId();
        context.TraceIdentifier = id;
        context.Response.Headers[Header] = id;
        return next(context);
    }

    private static string NewId() => "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    private static bool IsSane(string value)
    {
        if (value.Length is 0 or > 128)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.' or ':'))
            {
                return false;
            }
        }

        return true;
    }
}
