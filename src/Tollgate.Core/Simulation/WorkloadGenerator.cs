using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Tollgate.Routing.Classification;

namespace Tollgate.Simulation;

/// <summary>
/// A synthetic mix of the seven task types, for when no workload file is given: prompts from a few templates per task
/// in English, German, French, Spanish and Japanese, with documents, code and texts padded to input sizes drawn per
/// task; output sizes drawn per task; about 20 % with a latency budget, 10 % with a cost ceiling, a few with a minimum
/// tier or provider lists. Every draw comes from the seed.
/// </summary>
/// <remarks>
/// The sizes are log-normal around medians typical of production chat traffic: labels are a few tokens, summaries
/// read long documents and write short ones, translations write about what they read, reasoning writes long answers.
/// </remarks>
internal static class WorkloadGenerator
{
    private const int MaxInputTokens = 12_000;
    private const int MaxOutputTokens = 8_000;

    // Roughly 4 characters per token for the mostly Latin-script texts below (OpenAI's rule of thumb).
    private const int CharsPerToken = 4;

    private static readonly int[] MaxTokenSteps = [16, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static List<WorkloadRequest> Generate(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var random = new SimulationRandom(seed);
        var totalWeight = Specs.Sum(s => s.Weight);
        var requests = new List<WorkloadRequest>(count);
        for (var i = 0; i < count; i++)
        {
            var roll = random.Next(0, totalWeight);
            var spec = Specs[0];
            foreach (var s in Specs)
            {
                if (roll < s.Weight)
                {
                    spec = s;
                    break;
                }

                roll -= s.Weight;
            }

            requests.Add(Generate(spec, i + 1, random));
        }

        return requests;
    }

    private static WorkloadRequest Generate(TaskSpec spec, int line, SimulationRandom random)
    {
        var template = random.Pick(spec.Templates);
        var inputTokens = Math.Min(MaxInputTokens, random.LogNormal(spec.InputMedian, spec.InputSigma));
        var prompt = template.Contents is { } pool ? string.Format(CultureInfo.InvariantCulture, template.Text, Content(pool, inputTokens, spec.Pad, random)) : template.Text;

        var output = spec.Task == TaskKind.Translation
            ? (long)Math.Ceiling(prompt.Length / (double)CharsPerToken * 1.15)
            : (long)Math.Max(1, Math.Round(random.LogNormal(spec.OutputMedian, spec.OutputSigma)));
        output = Math.Min(output, MaxOutputTokens);
        int? maxTokens = random.Chance(0.75) ? MaxTokenSteps.FirstOrDefault(m => m >= output * 1.2, MaxOutputTokens) : null;
        output = Math.Min(output, maxTokens ?? long.MaxValue);

        var stream = random.Chance(spec.StreamShare);
        var system = random.Chance(0.4) ? random.Pick(spec.Systems) : null;
        var history = spec.Task == TaskKind.Chat && random.Chance(0.3) ? random.Pick(ChatHistory) : default;
        return new WorkloadRequest
        {
            Line = line,
            Label = spec.Task,
            MessagesJson = Messages(system, history, prompt),
            MaxTokens = maxTokens,
            Stream = stream,
            OutputTokens = output,
            ConstraintsJson = Constraints(stream, output, random),
        };
    }

    /// <summary>One item of the pool, or (for tasks that read long inputs) items joined until the input size is reached.</summary>
    private static string Content(string[] pool, double tokens, bool pad, SimulationRandom random)
    {
        var first = random.Pick(pool);
        if (!pad)
        {
            return first;
        }

        var text = new StringBuilder(first);
        var target = tokens * CharsPerToken;
        while (text.Length < target)
        {
            text.Append("\n\n").Append(random.Pick(pool));
        }

        return text.ToString();
    }

    private static byte[] Messages(string? system, (string User, string Assistant) history, string prompt)
    {
        var buffer = new ArrayBufferWriter<byte>(prompt.Length + 128);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartArray();
            if (system is not null)
            {
                Message(writer, "system", system);
            }

            if (history.User is not null)
            {
                Message(writer, "user", history.User);
                Message(writer, "assistant", history.Assistant);
            }

            Message(writer, "user", prompt);
            writer.WriteEndArray();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void Message(Utf8JsonWriter writer, string role, string content)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, role);
        writer.WriteString("content"u8, content);
        writer.WriteEndObject();
    }

    /// <summary>The request's <c>tollgate</c> object, or null when it states no constraint (most requests).</summary>
    private static byte[]? Constraints(bool stream, long output, SimulationRandom random)
    {
        var latency = random.Chance(0.20);
        var cost = random.Chance(0.10);
        var minTier = random.Chance(0.04);
        var allow = random.Chance(0.02);
        var exclude = random.Chance(0.03);
        if (!(latency || cost || minTier || allow || exclude))
        {
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (latency)
            {
                // Streams budget the first token; buffered answers the whole answer, which the caller sizes by what it expects back.
                var budget = stream
                    ? random.Pick(StreamBudgetsMs)
                    : (int)(Math.Round((500 + (output * (5 + (random.NextDouble() * 20)))) / 100) * 100);
                writer.WriteNumber("max_latency_ms"u8, budget);
            }

            if (cost)
            {
                writer.WriteNumber("max_cost_usd"u8, random.Pick(CostCeilingsUsd));
            }

            if (minTier)
            {
                writer.WriteNumber("min_tier"u8, random.Chance(0.7) ? 2 : 3);
            }

            if (allow)
            {
                writer.WritePropertyName("providers"u8);
                writer.WriteStartArray();
                foreach (var name in random.Pick(AllowLists))
                {
                    writer.WriteStringValue(name);
                }

                writer.WriteEndArray();
            }

            if (exclude)
            {
                writer.WritePropertyName("exclude_providers"u8);
                writer.WriteStartArray();
                writer.WriteStringValue(random.Pick(Excluded));
                writer.WriteEndArray();
            }

            if ((latency || cost) && random.Chance(0.4))
            {
                writer.WriteBoolean("best_effort"u8, true);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static readonly int[] StreamBudgetsMs = [300, 500, 800, 1200, 2000];
    private static readonly decimal[] CostCeilingsUsd = [0.0001m, 0.0005m, 0.001m, 0.005m];
    private static readonly string[][] AllowLists = [["openai", "anthropic"], ["ollama"], ["openai", "gemini"]];
    private static readonly string[] Excluded = ["deepseek", "groq", "openrouter"];

    /// <summary>A template with <c>{0}</c> for an item of <paramref name="Contents"/>, or a whole prompt when it is null.</summary>
    private sealed record Template(string Text, string[]? Contents = null);

    private sealed record TaskSpec(
        TaskKind Task,
        int Weight,
        double InputMedian,
        double InputSigma,
        double OutputMedian,
        double OutputSigma,
        double StreamShare,
        bool Pad,
        string[] Systems,
        Template[] Templates);

    private static readonly (string User, string Assistant)[] ChatHistory =
    [
        ("I'm planning a trip to Japan in April.", "April is cherry blossom season, so book early. Which cities are you considering?"),
        ("Ich suche ein Geschenk für meinen Bruder.", "Gern! Was macht er in seiner Freizeit am liebsten?"),
        ("J'ai commencé à apprendre la guitare.", "Bravo ! Depuis combien de temps joues-tu, et quel style de musique préfères-tu ?"),
    ];

    private static readonly string[] Reviews =
    [
        "The headphones arrived two days late and the left ear cup already rattles. Not what I expected for the price.",
        "I was charged twice for my March subscription, can you refund one of the payments?",
        "Absolutely love this blender, it crushes ice in seconds and is easy to clean.",
        "The app logs me out every time I switch to another tab. Please fix this.",
        "Die App stürzt jedes Mal ab, wenn ich ein Foto hochladen möchte.",
        "Le colis est arrivé en bon état, rien à signaler.",
        "Quiero cancelar mi suscripción antes de la próxima renovación.",
        "Great service at the front desk, but the room smelled of smoke.",
    ];

    private static readonly string[] Documents =
    [
        "Quarterly revenue rose 12% year over year to $48.2 million, driven by growth in the enterprise segment, while consumer sales were flat. Operating expenses increased 9% as the company expanded its sales team in Europe and opened a second support centre in Manila.",
        "The city council voted 7 to 2 on Tuesday to extend the pilot of protected bike lanes on Main Street for another year. Supporters pointed to a 30% drop in collisions since the lanes opened; opponents cited complaints from delivery drivers about loading zones.",
        "Maria: Let's start with the release timeline. Tom, where are we on the payment migration?\nTom: The new provider is integrated in staging; we are waiting on their security review, expected Friday.\nMaria: Any risk to the launch date?\nTom: Only if the review finds something. I'd keep the 15th.",
        "Researchers at the university tracked 1,200 volunteers over six years and found that those who walked at least 7,000 steps a day had a markedly lower risk of heart disease, even after adjusting for diet, smoking and income.",
        "Der Umsatz im Einzelhandel ist im dritten Quartal leicht gestiegen, vor allem wegen höherer Ausgaben für Lebensmittel. Der Onlinehandel wuchs dagegen langsamer als im Vorjahr, was Analysten auf die gesunkene Kaufkraft zurückführen.",
        "Priya: The customer wants the export feature by March. Sam: That's tight; we'd have to drop the audit log work. Priya: Can we ship a CSV-only version first? Sam: Yes, two sprints for CSV, then Excel later.",
    ];

    private static readonly string[] Invoices =
    [
        "INVOICE #INV-2024-0871\nDate: 14 March 2024\nFrom: Northwind Office Supplies Ltd, 22 Baker Street, London\nTo: Contoso GmbH, Hauptstraße 5, Berlin\n3 x Ergonomic chair @ 240.00 EUR\n10 x Desk lamp @ 35.50 EUR\nTotal due: 1,075.00 EUR, payable within 30 days.",
        "Hi team, please ship 40 units of SKU 7731-B and 12 units of SKU 1120-A to our Rotterdam warehouse no later than 2 May. Order reference PO-55812. Thanks, Jan de Vries, Procurement, Van Dijk Logistics.",
        "Sehr geehrte Damen und Herren, hiermit bestelle ich 5 Packungen Druckerpapier A4 und 2 Tonerkartuschen HP 305A. Bitte liefern Sie bis zum 20. Juni an Müller & Söhne, Industriestraße 12, 70565 Stuttgart. Mit freundlichen Grüßen, Klaus Müller",
        "Bonjour, je n'ai toujours pas reçu ma commande n° 448213 passée le 3 avril. Mon adresse de livraison est 14 rue des Lilas, 69003 Lyon. Merci de me tenir informée. Camille Martin",
        "Line item: Cloud hosting (March) - 1 x 899.00 USD\nLine item: Premium support - 1 x 250.00 USD\nLine item: Additional storage 2 TB - 2 x 40.00 USD\nTax: 0.00 USD",
    ];

    private static readonly string[] Texts =
    [
        "Our new stainless steel water bottle keeps drinks cold for 24 hours and hot for 12. It is dishwasher safe, leak-proof and fits in most car cup holders.",
        "Thank you for your order. Your package has been dispatched and should arrive within three to five working days. You can track it using the link in this email.",
        "Wir freuen uns, Ihnen mitteilen zu können, dass Ihr Antrag genehmigt wurde. Die Unterlagen erhalten Sie in den nächsten Tagen per Post.",
        "Nous vous remercions de votre confiance. Votre rendez-vous est confirmé pour le mardi 12 mars à 10 heures.",
        "Le informamos que el pedido ha sido enviado y llegará en un plazo de cinco días hábiles.",
        "Please make sure to back up your files before installing the update. The installation takes about ten minutes and requires a restart.",
    ];

    private static readonly string[] CSharp =
    [
        "public static int Largest(List<int> values)\n{\n    var max = values[0];\n    foreach (var v in values)\n    {\n        if (v > max) max = v;\n    }\n    return max;\n}",
        "public async Task<User?> FindAsync(string email)\n{\n    var users = await _db.Users.ToListAsync();\n    return users.FirstOrDefault(u => u.Email.ToLower() == email.ToLower());\n}",
    ];

    private static readonly string[] Python =
    [
        "def parse_duration(text):\n    units = {'s': 1, 'm': 60, 'h': 3600}\n    total = 0\n    for part in text.split():\n        total += int(part[:-1]) * units[part[-1]]\n    return total",
        "def chunk(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]",
    ];

    private static readonly string[] Sql =
    [
        "SELECT c.name, COUNT(*)\nFROM orders o, customers c\nWHERE o.customer_id = c.id AND YEAR(o.created_at) = 2024\nGROUP BY c.name\nORDER BY 2 DESC;",
        "SELECT * FROM events WHERE user_id IN (SELECT id FROM users WHERE country = 'DE') AND created_at > NOW() - INTERVAL '30 days';",
    ];

    private static readonly string[] TypeScript =
    [
        "function loadUser(id: string) {\n  return fetch(`/api/users/${id}`)\n    .then(r => r.json())\n    .then(user => fetch(`/api/teams/${user.teamId}`))\n    .then(r => r.json());\n}",
    ];

    private static readonly string[] Bash =
    [
        "#!/usr/bin/env bash\nset -euo pipefail\nfor f in logs/*.log; do\n  gzip -9 \"$f\"\n  mv \"$f.gz\" archive/\ndone\nfind archive -mtime +30 -delete",
    ];

    private static readonly TaskSpec[] Specs =
    [
        new(TaskKind.Chat, 28, 0, 0, 300, 0.7, 0.6, false,
            ["You are a friendly assistant for a travel and lifestyle app.", "You are a helpful assistant. Answer concisely."],
            [
                new("What are some good ways to stay focused when working from home?"),
                new("Can you recommend a few science fiction novels for someone who liked The Martian?"),
                new("How do I politely decline a meeting invitation from my manager?"),
                new("What's the difference between a Roth IRA and a traditional IRA?"),
                new("Write a short birthday message for my grandmother, who is turning 90."),
                new("Was sind gute Ausflugsziele in der Nähe von München für ein Wochenende?"),
                new("Wie kann ich meinen Schlafrhythmus verbessern?"),
                new("Quels sont les avantages du télétravail pour une petite équipe ?"),
                new("Peux-tu me donner une recette simple pour un dîner végétarien ?"),
                new("¿Qué debería visitar en Lisboa si solo tengo dos días?"),
                new("¿Cómo puedo empezar a correr si nunca he hecho deporte?"),
                new("週末に東京で子供と楽しめる場所を教えてください。"),
            ]),
        new(TaskKind.Classification, 12, 0, 0, 3, 0.5, 0.05, false,
            ["You label customer messages for a support team.", "You are a text classifier. Reply with the label only."],
            [
                new("Classify the sentiment of this customer review as positive, negative or neutral. Answer with one word.\n\nReview: {0}", Reviews),
                new("Which department should handle this support ticket: billing, technical, shipping or account? Reply with the department name only.\n\nTicket: {0}", Reviews),
                new("Ordne die folgende Nachricht einer Kategorie zu (Beschwerde, Frage, Lob, Kündigung). Antworte nur mit der Kategorie.\n\n{0}", Reviews),
                new("Classe cet avis client comme positif, négatif ou neutre. Réponds par un seul mot.\n\nAvis : {0}", Reviews),
                new("Clasifica la intención de este mensaje: compra, reclamación, consulta o cancelación. Responde solo con la etiqueta.\n\nMensaje: {0}", Reviews),
            ]),
        new(TaskKind.Extraction, 12, 450, 0.6, 120, 0.5, 0.1, true,
            ["You extract structured data from business documents and reply with JSON only."],
            [
                new("Extract the invoice number, issue date, vendor name and total amount from the text below. Return JSON with the keys invoice_number, date, vendor, total.\n\n{0}", Invoices),
                new("List every person, organisation, date and location mentioned in this text as JSON arrays.\n\n{0}", Invoices),
                new("Extrahiere aus dem folgenden Text den Absender, das gewünschte Lieferdatum und die bestellten Artikel mit Menge. Gib das Ergebnis als JSON zurück.\n\n{0}", Invoices),
                new("Extrais le nom du client, le numéro de commande et l'adresse de livraison du message suivant, au format JSON.\n\n{0}", Invoices),
            ]),
        new(TaskKind.Summarization, 14, 1500, 0.7, 180, 0.5, 0.3, true,
            ["You write clear, neutral summaries for busy readers."],
            [
                new("Summarize the following article in three bullet points.\n\n{0}", Documents),
                new("Write a one-paragraph executive summary of this meeting transcript, including decisions and action items.\n\n{0}", Documents),
                new("Fasse den folgenden Text in höchstens fünf Sätzen zusammen.\n\n{0}", Documents),
                new("Résume ce document en quelques phrases pour un lecteur pressé.\n\n{0}", Documents),
                new("Resume el siguiente informe en un párrafo breve.\n\n{0}", Documents),
            ]),
        new(TaskKind.Translation, 10, 250, 0.7, 0, 0, 0.3, true,
            ["You are a professional translator. Preserve meaning, tone and formatting."],
            [
                new("Translate the following text into German. Keep the formatting.\n\n{0}", Texts),
                new("Translate this product description into French.\n\n{0}", Texts),
                new("Übersetze den folgenden Text ins Englische:\n\n{0}", Texts),
                new("Traduis ce paragraphe en anglais, en gardant un ton formel :\n\n{0}", Texts),
                new("Traduce al inglés el siguiente correo:\n\n{0}", Texts),
                new("次の文章を英語に翻訳してください。\n\n{0}", Texts),
            ]),
        new(TaskKind.Code, 16, 400, 0.8, 450, 0.7, 0.5, true,
            ["You are a senior software engineer. Explain briefly, then show code.", "You are a coding assistant inside an IDE."],
            [
                new("Why does this method throw when the list is empty? Suggest a fix.\n\n```csharp\n{0}\n```", CSharp),
                new("Write unit tests for the following Python code using pytest.\n\n```python\n{0}\n```", Python),
                new("Review this SQL query for performance problems and rewrite it.\n\n```sql\n{0}\n```", Sql),
                new("Refaktoriere diesen TypeScript-Code, sodass er async/await statt Promise-Ketten verwendet.\n\n```ts\n{0}\n```", TypeScript),
                new("Explica qué hace este script de Bash línea por línea y señala posibles errores.\n\n```bash\n{0}\n```", Bash),
            ]),
        new(TaskKind.Reasoning, 8, 0, 0, 800, 0.6, 0.4, false,
            ["Think carefully and show your reasoning step by step before the final answer."],
            [
                new("A train leaves station A at 9:00 at 80 km/h. Another leaves station B, 300 km away, at 9:30 towards it at 100 km/h. At what time do they meet? Show your reasoning step by step."),
                new("We must place 120 servers in three data centres. Power costs 0.10, 0.14 and 0.08 USD per kWh; capacities are 60, 80 and 40 servers; at least 30 servers must be in each. Find the cheapest allocation and prove it is optimal."),
                new("Prove that the sum of the first n odd numbers is n². Then explain whether the same approach works for the first n even numbers."),
                new("Fünf Personen sitzen in einer Reihe. Anna sitzt nicht neben Ben, Carla sitzt ganz links, David sitzt direkt rechts neben Ben, und Eva sitzt nicht am Rand. Wer sitzt in der Mitte? Begründe jeden Schritt."),
                new("Une entreprise hésite entre louer des serveurs pour 3 000 € par mois ou les acheter pour 80 000 € avec 800 € de maintenance mensuelle. Sur trois ans, avec un taux d'actualisation de 5 %, quelle option est la moins chère ? Détaille le raisonnement."),
                new("Si un grifo llena un depósito en 6 horas y otro en 4 horas, ¿cuánto tardan juntos? ¿Y si a la vez un desagüe lo vacía en 12 horas? Razona paso a paso."),
            ]),
    ];
}
