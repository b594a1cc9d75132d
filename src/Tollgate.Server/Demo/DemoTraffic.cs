using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Tollgate.Server.Demo;

/// <summary>One kind of request the demo sends: a system prompt (or none) and a user message, as applications send them.</summary>
internal sealed record DemoPrompt(string? System, string User);

/// <summary>
/// The demo's traffic: a few thousand requests from several tenants through the real gateway over HTTP, mixing
/// tasks (most to <c>auto</c>, some asking for premium models by name), streams, latency budgets and JSON answers.
/// Deterministic for a seed.
/// </summary>
internal sealed class DemoTraffic(HttpClient gateway, IReadOnlyList<string> tenantKeys, int seed)
{
    private static readonly DemoPrompt[] Prompts =
    [
        new("You are a support-ticket router. Reply with exactly one label: billing, bug, feature_request, other.", "I was charged twice for my subscription this month. Please refund the second charge."),
        new("Classify the sentiment of the review as positive, negative or neutral. Answer with the label only.", "The battery lasts two days and the screen is gorgeous, but the speaker is tinny."),
        new("Tag the email with one of: sales, support, spam, hr.", "Congratulations!!! You have been selected to receive a free cruise, click here to claim."),
        new("Classe ce message dans une catégorie : livraison, facturation, technique, autre. Réponds par le mot seul.", "Mon colis indique livré mais je n'ai rien reçu."),
        new("Extract the invoice number, date, total and currency as JSON with keys invoice_number, date, total, currency.", "INVOICE #INV-20931 — Date: 2026-10-14 — Bill to: Acme GmbH — Total due: 1,284.50 EUR — Payment within 30 days."),
        new("You extract structured data. Return a JSON array of {name, company, email} for every person mentioned.", "Thanks to Maria Lopez (maria@globex.com) from Globex and to Tom Becker at Initech (t.becker@initech.io) for joining the call."),
        new(null, "Pull out every date and amount from this contract clause: The Supplier shall deliver by 15 March 2027; a penalty of USD 2,500 applies per week of delay, capped at USD 20,000."),
        new("Summarize the following meeting notes in three bullet points.", "Attendees: Ana, Raj, Lee. Ana reported the Q3 churn rose to 4.1% mostly from the SMB tier. Raj proposed an onboarding email sequence and a 14-day check-in call. Lee noted support backlog fell to 120 tickets after the new macro rollout. Decision: pilot the onboarding sequence in November; Lee to share backlog dashboard weekly."),
        new(null, "TL;DR this for my manager in two sentences: The migration to the new billing provider finished on Tuesday. 3% of customers hit a card re-authentication prompt, which support handled with a macro. Revenue recognition is unaffected and the old provider will be switched off on the 30th."),
        new("Fasse den folgenden Text in zwei Sätzen zusammen.", "Der Stadtrat hat beschlossen, die Buslinie 12 ab Januar im 10-Minuten-Takt fahren zu lassen. Finanziert wird dies durch eine Umschichtung aus dem Straßenbaubudget. Kritiker bemängeln, dass die Randbezirke weiterhin schlecht angebunden sind."),
        new("Tóm tắt đoạn văn sau trong một câu.", "Công ty đã mở thêm hai cửa hàng ở Đà Nẵng trong quý ba, doanh thu tăng 18% so với cùng kỳ năm ngoái, chủ yếu nhờ mảng đồ uống mang đi."),
        new(null, "Translate to Spanish, keeping the tone friendly: Thanks for your order! It ships tomorrow and you'll get a tracking link by email."),
        new("You are a professional translator. Translate the user's text into Japanese.", "Our office will be closed on Friday for the company retreat. Urgent requests can go to the on-call engineer."),
        new(null, "把下面这句话翻译成英文：我们下周二上午十点在三楼会议室开产品评审会。"),
        new(null, "Write a TypeScript function that debounces another function, with proper generic types."),
        new("You are a senior Python reviewer.", "Why does this raise KeyError sometimes?\n\ndef count(words):\n    seen = {}\n    for w in words:\n        seen[w] += 1\n    return seen"),
        new(null, "Write a SQL query that returns the top 5 customers by revenue in 2026 from orders(customer_id, total, created_at) and customers(id, name)."),
        new(null, "Fix this bash script so it handles file names with spaces: for f in $(ls *.txt); do wc -l $f; done"),
        new(null, "A warehouse ships 340 parcels a day with 4 vans; each van makes at most 3 trips of 30 parcels. Demand grows 8% a month. In which month do we need a fifth van? Show your reasoning step by step."),
        new(null, "We can cache product pages for 60s at the CDN or render them at the edge per request. Traffic is 2M views/day, 5% logged in, prices change hourly. Compare the two options on cost, freshness and complexity and recommend one, with the trade-offs."),
        new(null, "Prove that the sum of the first n odd numbers is n squared, then use it to compute 1 + 3 + ... + 199."),
        new(null, "Tengo 3 ofertas de trabajo: A paga 52k con 20 días de vacaciones, B 58k con 15 días y teletrabajo, C 49k con acciones que se consolidan en 4 años. Ayúdame a razonar cuál conviene si valoro el tiempo libre el doble que el dinero."),
        new("You are a friendly assistant for a cooking website.", "What can I make for dinner with chickpeas, spinach and a lemon?"),
        new(null, "How does a heat pump work in winter?"),
        new(null, "Give me three name ideas for a bakery that also sells coffee."),
        new(null, "Quelle est la capitale de l'Australie et pourquoi n'est-ce pas Sydney ?"),
    ];

    private static readonly string[] Models = [DemoCatalog.Routes.Auto, DemoCatalog.Routes.Auto, DemoCatalog.Routes.Auto, DemoCatalog.Routes.Auto, DemoCatalog.Routes.Auto, DemoCatalog.Routes.Auto, DemoCatalog.Routes.Gpt4o, DemoCatalog.Routes.Gpt4o, DemoCatalog.Routes.ClaudeSonnet];

    /// <summary>Sends <paramref name="count"/> requests, <paramref name="concurrency"/> at a time; returns how many got an answer.</summary>
    public async Task<(int Answered, int Failed)> RunAsync(int count, int concurrency, Action<int> progress, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        var plan = Enumerable.Range(0, count).Select(_ => (Prompt: Prompts[random.Next(Prompts.Length)], Model: Models[random.Next(Models.Length)],
            Key: tenantKeys[random.Next(tenantKeys.Count)], Stream: random.NextDouble() < 0.2, Budget: random.NextDouble() < 0.1)).ToArray();
        var answered = 0;
        var failed = 0;
        var done = 0;
        await Parallel.ForEachAsync(plan, new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken }, async (item, ct) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Body(item.Prompt, item.Model, item.Stream) };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", item.Key);
            if (item.Budget)
            {
                request.Headers.Add("x-tollgate-max-latency-ms", "100");
                request.Headers.Add("x-tollgate-best-effort", "true");
            }

            using var response = await gateway.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
            Interlocked.Increment(ref response.IsSuccessStatusCode ? ref answered : ref failed);
            var n = Interlocked.Increment(ref done);
            if (n % 250 == 0)
            {
                progress(n);
            }
        }).ConfigureAwait(false);
        return (answered, failed);
    }

    private static StringContent Body(DemoPrompt prompt, string model, bool stream)
    {
        var messages = new JsonArray();
        if (prompt.System is not null)
        {
            messages.Add(new JsonObject { ["role"] = "system", ["content"] = prompt.System });
        }

        messages.Add(new JsonObject { ["role"] = "user", ["content"] = prompt.User });
        var body = new JsonObject { ["model"] = model, ["messages"] = messages, ["stream"] = stream, ["max_tokens"] = 400 };
        return new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
    }
}
