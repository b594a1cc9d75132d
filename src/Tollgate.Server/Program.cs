using Tollgate.Server.Cli;

return await TollgateCommandLine.InvokeAsync(args).ConfigureAwait(false);
