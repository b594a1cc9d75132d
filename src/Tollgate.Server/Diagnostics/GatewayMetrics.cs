using System.Diagnostics;
using System.Diagnostics.Metrics;
using Tollgate.Health;
using Tollgate.Metering;
using Tollgate.Routing;

namespace Tollgate.Server.Diagnostics;

/// <summary>
/// The gateway's own metrics (meter <c>Tollgate</c>), exported at <c>/metrics</c> by <see cref="Telemetry"/>:
/// requests, attempts and their outcomes, tokens and money by deployment, time to the upstream's first byte,
/// each deployment's circuit, and the ledger's commits. Labels are configuration names and fixed codes only, so their number is
/// bounded by the configuration: never a tenant, a key, a requested model name or anything else a client sends.
/// Money here is a <see langword="double"/> for dashboards and alerts; the ledger holds the exact amounts.
/// With no listener (metrics off) every record call returns after one flag check.
/// </summary>
internal sealed class GatewayMetrics
{
    public const string MeterName = "Tollgate";

    private readonly Counter<long> _requests;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _tokens;
    private readonly Counter<double> _cost;
    private readonly Counter<double> _billed;
    private readonly Counter<long> _unpriced;
    private readonly Histogram<double> _firstByte;
    private readonly Histogram<double> _ledgerCommit;
    private readonly Counter<long> _ledgerRows;
    private readonly Counter<long> _ledgerFailures;
    private readonly Counter<long> _authRefusals;

    public GatewayMetrics(IMeterFactory meterFactory, Catalog catalog)
    {
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("tollgate.requests", "{request}",
            "Requests with a ledger row (every authenticated chat or embeddings request, refused ones included), by route (empty: none resolved), the deployment that answered (empty: none) and the status recorded (499: the client left).");
        _attempts = meter.CreateCounter<long>("tollgate.attempts", "{attempt}",
            "Upstream attempts and skipped candidates by outcome: ok, a failure code (timeout, connect_failed, upstream_429, upstream_5xx, invalid_response, ...) or why the candidate was skipped.");
        _tokens = meter.CreateCounter<long>("tollgate.tokens", "{token}",
            "Tokens metered, by usage bucket (the buckets do not overlap), including attempts that lost a hedge or failed an answer check.");
        _cost = meter.CreateCounter<double>("tollgate.cost.usd", "{USD}",
            "What the providers charge for the metered tokens at the configured prices per 1M tokens. Requests whose price is unknown add nothing here; see tollgate.requests.unpriced.");
        _billed = meter.CreateCounter<double>("tollgate.billed.usd", "{USD}",
            "What tenants were charged under their plans' prices.");
        _unpriced = meter.CreateCounter<long>("tollgate.requests.unpriced", "{request}",
            "Metered requests and attempts whose cost is unknown because a needed price is not configured.");
        _firstByte = meter.CreateHistogram<double>("tollgate.upstream.first_byte.duration", "s",
            "Time from sending an answered attempt to the upstream's first byte: a stream's first event, or a buffered answer's whole body.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        _ledgerCommit = meter.CreateHistogram<double>("tollgate.ledger.commit.duration", "s",
            "Time to write one batch of ledger rows (one SQLite transaction). Requests wait for it before their last byte.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] });
        _ledgerRows = meter.CreateCounter<long>("tollgate.ledger.rows", "{row}", "Ledger rows committed (requests, plus extra rows for lost hedges and escalated answers).");
        _ledgerFailures = meter.CreateCounter<long>("tollgate.ledger.failures", "{row}",
            "Ledger rows that could not be written: their requests were answered with 500 ledger_unavailable instead of an unrecorded answer.");
        _authRefusals = meter.CreateCounter<long>("tollgate.auth.refusals", "{request}",
            "Requests refused before any handler ran, by surface (v1: client keys; admin: the admin key on /admin, /providers and /metrics) and reason.");
        meter.CreateObservableGauge("tollgate.deployment.circuit", () => CircuitStates(catalog), "{state}",
            "Each deployment's circuit: 0 closed, 1 half-open (a probe may pass), 2 open.");
    }

    /// <summary>One ledger batch written (or failed): its row count and how long the transaction took.</summary>
    public void LedgerBatch(int rows, TimeSpan elapsed, bool committed)
    {
        if (committed)
        {
            _ledgerRows.Add(rows);
            _ledgerCommit.Record(elapsed.TotalSeconds);
        }
        else
        {
            _ledgerFailures.Add(rows);
        }
    }

    /// <summary>A request refused by <c>AuthMiddleware</c>: a rising rate of wrong keys is someone guessing.</summary>
    public void AuthRefused(string surface, string reason)
    {
        if (_authRefusals.Enabled)
        {
            _authRefusals.Add(1, new TagList { { "surface", surface }, { "reason", reason } });
        }
    }

    /// <summary>An attempt on a candidate, or a candidate skipped, with its outcome code.</summary>
    public void Attempt(Deployment deployment, string outcome)
    {
        if (_attempts.Enabled)
        {
            _attempts.Add(1, DeploymentTags(deployment, "outcome", outcome));
        }
    }

    /// <summary>The answered attempt's time to its first byte.</summary>
    public void FirstByte(Deployment deployment, TimeSpan elapsed, bool stream)
    {
        if (_firstByte.Enabled)
        {
            _firstByte.Record(elapsed.TotalSeconds, DeploymentTags(deployment, "stream", stream ? "true" : "false"));
        }
    }

    /// <summary>A request's ledger row: the request itself, and what it used and cost when an answer was metered.</summary>
    public void Request(string? route, Deployment? served, int status, MeteredUsage? usage, decimal? costUsd, long pricePicoUsd)
    {
        if (_requests.Enabled)
        {
            var tags = new TagList
            {
                { "route", route ?? "" },
                { "provider", served?.Provider.Name ?? "" },
                { "deployment", served?.Id ?? "" },
                { "status", status },
            };
            _requests.Add(1, tags);
        }

        if (served is not null && usage is not null)
        {
            Usage(served, usage.Buckets, costUsd);
            if (pricePicoUsd != 0 && _billed.Enabled)
            {
                _billed.Add((double)Money.FromPico(pricePicoUsd), DeploymentTags(served));
            }
        }
    }

    /// <summary>Tokens and cost of an attempt that did not give the answer (a hedge that lost, an answer that failed its check).</summary>
    public void ExtraAttempt(Deployment deployment, MeteredUsage usage, decimal? costUsd) => Usage(deployment, usage.Buckets, costUsd);

    private void Usage(Deployment deployment, UsageBuckets buckets, decimal? costUsd)
    {
        if (_tokens.Enabled)
        {
            AddTokens(deployment, "input", buckets.InputUncached);
            AddTokens(deployment, "input_cached", buckets.InputCached);
            AddTokens(deployment, "cache_write_5m", buckets.CacheWrite5m);
            AddTokens(deployment, "cache_write_1h", buckets.CacheWrite1h);
            AddTokens(deployment, "output", buckets.OutputText);
            AddTokens(deployment, "output_reasoning", buckets.OutputReasoning);
        }

        if (costUsd is { } cost)
        {
            if (cost != 0m && _cost.Enabled)
            {
                _cost.Add((double)cost, DeploymentTags(deployment));
            }
        }
        else if (_unpriced.Enabled)
        {
            _unpriced.Add(1, DeploymentTags(deployment));
        }
    }

    private void AddTokens(Deployment deployment, string bucket, long tokens)
    {
        if (tokens > 0)
        {
            _tokens.Add(tokens, DeploymentTags(deployment, "bucket", bucket));
        }
    }

    private static TagList DeploymentTags(Deployment deployment) =>
        new() { { "provider", deployment.Provider.Name }, { "deployment", deployment.Id } };

    private static TagList DeploymentTags(Deployment deployment, string key, string value) =>
        new() { { "provider", deployment.Provider.Name }, { "deployment", deployment.Id }, { key, value } };

    private static IEnumerable<Measurement<int>> CircuitStates(Catalog catalog)
    {
        foreach (var deployment in catalog.Deployments.Values)
        {
            var state = deployment.Health.Snapshot().Circuit switch
            {
                CircuitState.Open => 2,
                CircuitState.HalfOpen => 1,
                _ => 0,
            };
            yield return new Measurement<int>(state, DeploymentTags(deployment));
        }
    }
}
