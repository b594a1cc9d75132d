using System.Text;

namespace Tollgate.Tests.Metering;

/// <summary>
/// Seeded random text for comparing token counts: fragments of many scripts and shapes glued together, so
/// every branch of the pre-tokenising regex meets every neighbour (a contraction after CJK, a space before a
/// special token, a lone surrogate inside a word, a newline run after tabs).
/// </summary>
internal static class TokenizerText
{
    private static readonly string[] Words =
    [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer", "gateway", "budget", "reservation",
        "Hello", "World", "JSON", "HTTP", "iPhone", "McDonald", "XMLHttpRequest", "camelCase", "snake_case", "kebab-case",
        "naïve", "café", "résumé", "Straße", "façade", "coöperate", "İstanbul", "ǅemal", "ﬁnance", "Ⅻ",
    ];

    private static readonly string[] Cyrillic = ["привет", "мир", "Москва", "ЗДРАВСТВУЙТЕ", "ёжик", "Україна", "щ"];

    private static readonly string[] Arabic = ["مرحبا", "بالعالم", "السلام عليكم", "كتاب", "٣٤٥", "ـــ"];

    private static readonly string[] OtherScripts =
    [
        "שלום", "नमस्ते", "क्षत्रिय", "สวัสดีครับ", "Γειά σου", "こんにちは", "カタカナ", "한국어", "ქართული", "Հայերեն", "ᚠᚢᚦ", "𐌰𐌱",
    ];

    private static readonly string[] Contractions = ["'s", "'re", "'LL", "'ve", "'d", "'M", "'t", "'S", "'Re", "’s", "'", "''", "'x"];

    private static readonly string[] Whitespace =
    [
        " ", "  ", "   ", "\t", "\t\t", "\n", "\r\n", "\n\n", "\r", " \n", "   \n  ", "\r\n\r\n", "\u00A0", "\u3000", "\u2028", "\u200B", "\f", "\v", " \t \n",
    ];

    private static readonly string[] Emoji =
    [
        "😀", "🎉", "👍🏽", "👩‍💻", "🇫🇷", "❤️", "🫠", "🤷‍♀️", "⭐", "✅", "🧑🏿‍🚀", "🏳️‍🌈", "🦀",
    ];

    private static readonly string[] Specials = ["<|endoftext|>", "<|endofprompt|>", "<|endof", "<|fim_prefix|>", "<|", "|>", "<|endoftext|><|endoftext|>", "< |endoftext| >"];

    private static readonly string[] Code =
    [
        "public static int Count(string text) => text.Length == 0 ? 0 : Shared.Count(text);",
        "for (var i = 0; i < n; i++)\n{\n    sum += values[i] * 2;\n}\n",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        "SELECT id, name FROM users WHERE created_at >= '2024-01-01' ORDER BY id DESC LIMIT 10;",
        "const x = arr.map((v) => v ** 2).filter(Boolean); // squares\n",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
        "fn main() { let v: Vec<u8> = vec![0xff; 16]; println!(\"{:?}\", v); }",
        "<div class=\"card\"><a href=\"https://example.com/a?b=1&c=2\">link</a></div>",
        "    if (x != null && x.Length > 0) { return x[0..^1]; }\r\n",
        "$ curl -sS -H 'Authorization: Bearer tg_live_abc123' https://gw.local/v1/chat/completions | jq .",
    ];

    private static readonly string[] Json =
    [
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":true}",
        "[1, 2.5, -3e10, true, false, null, \"x\\u00e9\\n\"]",
        "{\n  \"a\": {\n    \"b\": [\n      {}, []\n    ]\n  }\n}",
        "{\"price\":0.00015,\"tokens\":123456789,\"ok\":true}",
    ];

    private const string RunCharacters = "a \n.1é中-_\tZ";

    private static readonly string Punctuation = ".,;:!?-_()[]{}<>\"'`/\\|@#$%^&*+=~…—–«»¿¡§¶•·";

    /// <summary>A string of 1 to 40 random fragments.</summary>
    public static string Random(Random random)
    {
        var text = new StringBuilder();
        var fragments = random.Next(1, 41);
        for (var i = 0; i < fragments; i++)
        {
            AppendFragment(text, random);
        }

        return text.ToString();
    }

    /// <summary>Long runs and blobs: where merging a piece is most work, and where the regex's runs are longest.</summary>
    public static IEnumerable<string> Long()
    {
        var random = new Random(7_001);
        var blob = new byte[15 * 1024];
        random.NextBytes(blob);
        yield return new string(' ', 5_000);
        yield return new string('a', 3_000);
        yield return Convert.ToBase64String(blob);
        yield return Convert.ToBase64String(blob, Base64FormattingOptions.InsertLineBreaks);
        yield return new string('\n', 5_000);
        yield return string.Concat(Enumerable.Repeat("\r\n", 2_000));
        yield return new string('\t', 1_000);
        yield return new string('1', 3_000);
        yield return new string('é', 2_000);
        yield return new string('中', 3_000);
        yield return new string('!', 3_000);
        yield return new string('-', 4_000);
        yield return new string('=', 1_024) + "\n";
        yield return string.Concat(Enumerable.Repeat("😀", 1_000));
        yield return string.Concat(Enumerable.Repeat("ab", 2_000));
        yield return string.Concat(Enumerable.Repeat("a b ", 1_000));
        yield return new string(' ', 4_999) + "a";
        yield return "x" + new string(' ', 4_000) + "\n" + new string(' ', 3);
        yield return new string('a', 3_000) + new string(' ', 3_000) + "<|endoftext|>" + new string('\n', 100);
        yield return new string('\uD800', 500);
        yield return new string(Enumerable.Range(0, 10_000).Select(_ => (char)(random.Next(2) == 0 ? random.Next('a', 'z' + 1) : random.Next('A', 'Z' + 1))).ToArray());
        yield return new string(Enumerable.Range(0, 8_000).Select(_ => (char)random.Next(0x4E00, 0xA000)).ToArray());
        yield return string.Concat(Enumerable.Repeat("The committee reviewed the quarterly figures and agreed to circulate a revised budget. ", 230));
        yield return string.Concat(Enumerable.Repeat("{\"role\":\"user\",\"content\":\"Summarise this.\"},", 250));
    }

    private static void AppendFragment(StringBuilder text, Random random)
    {
        switch (random.Next(20))
        {
            case 0 or 1 or 2:
                var word = Words[random.Next(Words.Length)];
                text.Append(random.Next(5) switch
                {
                    0 => word.ToUpperInvariant(),
                    1 => char.ToUpperInvariant(word[0]) + word[1..],
                    _ => word,
                });
                break;
            case 3:
                text.Append(random.NextInt64(0, long.MaxValue).ToString(System.Globalization.CultureInfo.InvariantCulture).AsSpan(0, random.Next(1, 13)));
                break;
            case 4:
                for (var i = random.Next(1, 5); i > 0; i--)
                {
                    text.Append(Punctuation[random.Next(Punctuation.Length)]);
                }

                break;
            case 5 or 6:
                text.Append(Whitespace[random.Next(Whitespace.Length)]);
                break;
            case 7:
                text.Append(Contractions[random.Next(Contractions.Length)]);
                break;
            case 8:
                AppendRange(text, random, random.Next(3) switch { 0 => (0x4E00, 0x9FFF), 1 => (0x3040, 0x30FF), _ => (0xAC00, 0xD7A3) }, random.Next(1, 8));
                break;
            case 9:
                text.Append(random.Next(2) == 0 ? Cyrillic[random.Next(Cyrillic.Length)] : Arabic[random.Next(Arabic.Length)]);
                break;
            case 10:
                text.Append(OtherScripts[random.Next(OtherScripts.Length)]);
                break;
            case 11:
                text.Append(Emoji[random.Next(Emoji.Length)]);
                text.Append(char.ConvertFromUtf32(random.Next(0x1F300, 0x1FAFF)));
                break;
            case 12:
                // Combining marks, stacked on a letter or on nothing.
                if (random.Next(3) != 0)
                {
                    text.Append((char)random.Next('a', 'z' + 1));
                }

                AppendRange(text, random, (0x0300, 0x036F), random.Next(1, 4));
                break;
            case 13:
                // A lone surrogate: high or low, on its own or next to letters.
                text.Append((char)random.Next(0xD800, 0xE000));
                break;
            case 14:
                text.Append(Specials[random.Next(Specials.Length)]);
                break;
            case 15:
                text.Append(Code[random.Next(Code.Length)]);
                break;
            case 16:
                text.Append(Json[random.Next(Json.Length)]);
                break;
            case 17:
                // A run of one character, long enough for many merges.
                text.Append(RunCharacters[random.Next(RunCharacters.Length)], random.Next(2, 300));
                break;
            case 18:
                // Any code unit below U+3000: controls, Latin supplements, Greek, IPA, symbols, more marks.
                AppendRange(text, random, (0x0000, 0x2FFF), random.Next(1, 6));
                break;
            default:
                // Anything at all, surrogates and private use included.
                AppendRange(text, random, (0x0000, 0xFFFF), random.Next(1, 4));
                break;
        }
    }

    private static void AppendRange(StringBuilder text, Random random, (int First, int Last) range, int count)
    {
        for (var i = 0; i < count; i++)
        {
            text.Append((char)random.Next(range.First, range.Last + 1));
        }
    }
}
