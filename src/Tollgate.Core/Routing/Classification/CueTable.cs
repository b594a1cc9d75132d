using System.Text;

namespace Tollgate.Routing.Classification;

/// <summary>
/// Phrase hash → bitmask of <see cref="CueGroup"/>s, in an open-addressing table built once, so
/// a lookup on the classify path is a multiply, a shift and one or two probes.
/// </summary>
internal sealed class CueTable
{
    private readonly uint[] _keys;
    private readonly ulong[] _masks;
    private readonly int _shift;

    private CueTable(uint[] keys, ulong[] masks, int shift)
    {
        _keys = keys;
        _masks = masks;
        _shift = shift;
    }

    public static CueTable Shared { get; } = Build(CueLexicon.Entries());

    public static CueTable Build(IEnumerable<(CueGroup Group, string Phrases)> entries)
    {
        var phrases = new Dictionary<uint, ulong>();
        Span<uint> tokens = stackalloc uint[16];
        List<string>? bad = null;
        foreach (var (group, list) in entries)
        {
            foreach (var phrase in list.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var count = TextScanner.Tokenize(Encoding.UTF8.GetBytes(phrase), tokens);
                if (count == 0)
                {
                    (bad ??= []).Add(phrase);
                    continue;
                }

                // Longer phrases (often katakana words, one token per character) match on their first tokens.
                var key = NonZero(TextScanner.Phrase(tokens[..Math.Min(count, TextScanner.MaxPhraseTokens)]));
                phrases[key] = phrases.GetValueOrDefault(key) | (1UL << (int)group);
            }
        }

        if (bad is not null)
        {
            throw new InvalidOperationException($"Cue phrases without any token: {string.Join(", ", bad)}");
        }

        var bits = 4;
        while ((1 << bits) < phrases.Count * 4)
        {
            bits++;
        }

        var keys = new uint[1 << bits];
        var masks = new ulong[1 << bits];
        var shift = 32 - bits;
        foreach (var (key, mask) in phrases)
        {
            var slot = (int)((key * 0x9E3779B1u) >> shift);
            while (keys[slot] != 0)
            {
                slot = (slot + 1) & (keys.Length - 1);
            }

            keys[slot] = key;
            masks[slot] = mask;
        }

        return new CueTable(keys, masks, shift);
    }

    public ulong Lookup(uint phrase)
    {
        phrase = NonZero(phrase);
        var keys = _keys;
        var slot = (int)((phrase * 0x9E3779B1u) >> _shift);
        while (true)
        {
            var key = keys[slot];
            if (key == phrase)
            {
                return _masks[slot];
            }

            if (key == 0)
            {
                return 0;
            }

            slot = (slot + 1) & (keys.Length - 1);
        }
    }

    private static uint NonZero(uint hash) => hash == 0 ? 1 : hash;
}
