using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace Tollgate.Routing.Classification;

/// <summary>Counts gathered while scanning one part of a request; they feed the structural features.</summary>
internal struct TextStats
{
    public int Tokens;
    public int Latin;
    public int Cjk;
    public int NonSpace;
    public int CodeSymbols;
    public int Numbers;
    public int MathOperators;
    public int Newlines;
    public int Questions;
    public int CodeLines;
    public int IndentedLines;
    public int EnumeratedLines;
    public int Identifiers;
    public int Fences;
    public int Quotes;
    public int CodeKeywords;
}

/// <summary>
/// One pass over UTF-8 text that tokenises, looks cue phrases up and counts code, math and layout
/// signals, without allocating. Words are lowercased, lose a trailing plural "s" and are cut to six
/// letters (a cheap stemmer that works across the Latin-script languages), digits become one number
/// token, and each CJK character is a token of its own, so "翻译" is a two-token phrase.
/// </summary>
internal ref struct TextScanner
{
    /// <summary>Longest phrase, in tokens, that the cue table matches.</summary>
    public const int MaxPhraseTokens = 4;

    private const uint Basis = 2166136261;
    private const uint Prime = 16777619;
    private const int StemLength = 6;

    /// <summary>The token all numbers share, so "in 3 sentences" and "in 5 sentences" are one phrase.</summary>
    public const uint NumberToken = 0x6E756D31;

    private static readonly SearchValues<byte> CodeSymbolBytes = SearchValues.Create("{}[]();=<>|&\\$@#%^~*`"u8);
    private static readonly SearchValues<byte> MathBytes = SearchValues.Create("+-*/^=%<>"u8);

    private readonly Span<ulong> _cues;
    private readonly Span<int> _hashed;
    private readonly uint _salt;
    private readonly bool _hashing;
    private readonly CueTable? _table;

    private uint _w1;
    private uint _w2;
    private uint _w3;
    private int _window;

    public TextStats Stats;
    public int HashedCount;

    /// <param name="cues">Cue bits per region, OR-ed into.</param>
    /// <param name="hashed">Where hashed n-gram buckets of the instruction zone go (0 .. 2^bits).</param>
    /// <param name="salt">Separates the hashed features of the system prompt from the user's.</param>
    public TextScanner(CueTable? table, Span<ulong> cues, Span<int> hashed, uint salt, bool hashing)
    {
        _table = table;
        _cues = cues;
        _hashed = hashed;
        _salt = salt;
        _hashing = hashing;
    }

    /// <summary>Ends the current phrase: n-grams do not span it.</summary>
    public void Break() => _window = 0;

    /// <summary>
    /// Scans <paramref name="text"/>. A token that starts before <paramref name="instructionHead"/> or at
    /// or after <paramref name="instructionTail"/> is in the instruction zone (<paramref name="instructionRegion"/>);
    /// the rest is in <paramref name="bodyRegion"/>, and only the instruction zone feeds hashed features.
    /// </summary>
    public void Run(ReadOnlySpan<byte> text, int instructionRegion, int bodyRegion, int instructionHead, int instructionTail)
    {
        var wordStart = -1;
        uint hash = Basis, previousHash = Basis;
        int runes = 0, lastRune = 0;
        bool digitsOnly = true, identifier = false, lastLower = false;

        // Line state: 0 = leading space, 1 = leading digits, 2 = content.
        int lineState = 0, leadingSpaces = 0, firstChar = 0, lastChar = 0, backticks = 0;
        var enumerated = false;
        var previousDigit = false;

        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            int rune = text[i];
            if (rune < 0x80)
            {
                i++;
            }
            else if (Rune.DecodeFromUtf8(text[i..], out var decoded, out var consumed) == OperationStatus.Done)
            {
                rune = decoded.Value;
                i += consumed;
            }
            else
            {
                rune = ' ';
                i += Math.Max(consumed, 1);
            }

            if (rune != '`')
            {
                if (backticks >= 3)
                {
                    Stats.Fences++;
                }

                backticks = 0;
            }

            var word = IsWordRune(rune) || (wordStart >= 0 && (rune == '#' || rune == '+') && runes <= 2 && !digitsOnly);
            if (word)
            {
                if (wordStart < 0)
                {
                    wordStart = start;
                    hash = Basis;
                    previousHash = Basis;
                    runes = 0;
                    digitsOnly = true;
                    identifier = false;
                    lastLower = false;
                }

                var isDigit = rune is >= '0' and <= '9';
                digitsOnly &= isDigit;
                var lower = Lower(rune);
                if (rune == '_' && runes > 0)
                {
                    identifier = true;
                }
                else if (lower != rune && lastLower)
                {
                    identifier = true;
                }

                lastLower = lower == rune && !isDigit && rune != '_';
                if (runes < StemLength)
                {
                    previousHash = hash;
                    hash = (hash ^ (uint)lower) * Prime;
                }

                runes++;
                lastRune = lower;
                if (!isDigit)
                {
                    Stats.Latin++;
                }

                Stats.NonSpace++;
                previousDigit = isDigit;
                if (lineState == 0)
                {
                    lineState = isDigit ? 1 : 2;
                    firstChar = rune;
                }
                else if (lineState == 1 && !isDigit)
                {
                    lineState = 2;
                }

                lastChar = rune;
                continue;
            }

            if (wordStart >= 0)
            {
                if (identifier)
                {
                    Stats.Identifiers++;
                }

                Token(FinishWord(hash, previousHash, runes, lastRune, digitsOnly), wordStart, instructionRegion, bodyRegion, instructionHead, instructionTail);
                wordStart = -1;
            }

            if (IsCjk(rune))
            {
                Stats.Cjk++;
                Stats.NonSpace++;
                lineState = 2;
                firstChar = firstChar == 0 ? rune : firstChar;
                lastChar = rune;
                previousDigit = false;
                Token((Basis ^ (uint)rune) * Prime, start, instructionRegion, bodyRegion, instructionHead, instructionTail);
                continue;
            }

            if (rune == '\n')
            {
                EndLine(ref lineState, ref leadingSpaces, ref firstChar, ref lastChar, ref enumerated);
                Stats.Newlines++;
                _window = 0;
                continue;
            }

            if (rune is ' ' or '\t' or '\r' or 0xA0 or 0x3000)
            {
                if (lineState == 0)
                {
                    leadingSpaces += rune == '\t' ? 4 : 1;
                }

                continue;
            }

            // Punctuation and symbols.
            Stats.NonSpace++;
            if (rune < 0x80)
            {
                var b = (byte)rune;
                if (CodeSymbolBytes.Contains(b))
                {
                    Stats.CodeSymbols++;
                }

                if (MathBytes.Contains(b) && previousDigit)
                {
                    Stats.MathOperators++;
                }

                if (b == '`')
                {
                    backticks++;
                }
                else if (b is (byte)'"')
                {
                    Stats.Quotes++;
                }
                else if (b == '?')
                {
                    Stats.Questions++;
                }

                if (lineState == 1 && b is (byte)'.' or (byte)')')
                {
                    enumerated = true;
                }

                if (b == '.' && i < text.Length && IsAsciiLetter(text[i]) && start > 0 && IsAsciiLetter(text[start - 1]))
                {
                    Stats.Identifiers++;
                }
                else if (b is (byte)'.' or (byte)',' or (byte)':' or (byte)'!' or (byte)'?')
                {
                    _window = 0;
                }
            }
            else
            {
                if (rune is 0xFF1F)
                {
                    Stats.Questions++;
                }
                else if (rune is 0x201C or 0x201D or 0x201E or 0xAB or 0xBB or 0x300C or 0x300D or 0x300E or 0x300F)
                {
                    Stats.Quotes++;
                }
                else if (rune is 0xD7 or 0xF7 or 0x221A or 0x2264 or 0x2265 or 0xB2 or 0x2211 or 0x222B or 0x3C0)
                {
                    Stats.MathOperators++;
                }

                if (rune is 0x3001 or 0x3002 or 0xFF0C or 0xFF01 or 0xFF1A or 0xFF1F or 0x2026)
                {
                    _window = 0;
                }
            }

            if (lineState == 0 && rune is '-' or '*' or 0x2022)
            {
                enumerated = true;
            }

            if (lineState != 2)
            {
                firstChar = lineState == 0 ? rune : firstChar;
                lineState = 2;
            }

            lastChar = rune;
            previousDigit = false;
        }

        if (backticks >= 3)
        {
            Stats.Fences++;
        }

        if (wordStart >= 0)
        {
            if (identifier)
            {
                Stats.Identifiers++;
            }

            Token(FinishWord(hash, previousHash, runes, lastRune, digitsOnly), wordStart, instructionRegion, bodyRegion, instructionHead, instructionTail);
        }

        EndLine(ref lineState, ref leadingSpaces, ref firstChar, ref lastChar, ref enumerated);
        _window = 0;
    }

    private void EndLine(ref int lineState, ref int leadingSpaces, ref int firstChar, ref int lastChar, ref bool enumerated)
    {
        if (lineState != 0)
        {
            if (lastChar is ';' or '{' or '}' || firstChar == '}')
            {
                Stats.CodeLines++;
            }

            if (leadingSpaces >= 2)
            {
                Stats.IndentedLines++;
            }

            if (enumerated)
            {
                Stats.EnumeratedLines++;
            }
        }

        lineState = 0;
        leadingSpaces = 0;
        firstChar = 0;
        lastChar = 0;
        enumerated = false;
    }

    private void Token(uint token, int offset, int instructionRegion, int bodyRegion, int instructionHead, int instructionTail)
    {
        var instruction = offset < instructionHead || offset >= instructionTail;
        var region = instruction ? instructionRegion : bodyRegion;
        if (token == NumberToken)
        {
            Stats.Numbers++;
        }

        if (_table is not null)
        {
            var unigram = _table.Lookup(token);
            if ((unigram & (1UL << (int)CueGroup.CodeKeyword)) != 0)
            {
                Stats.CodeKeywords++;
            }

            var mask = unigram;
            if (_window >= 1)
            {
                mask |= _table.Lookup(Combine(_w1, token));
            }

            if (_window >= 2)
            {
                mask |= _table.Lookup(Combine(Combine(_w2, _w1), token));
            }

            if (_window >= 3)
            {
                mask |= _table.Lookup(Combine(Combine(Combine(_w3, _w2), _w1), token));
            }

            _cues[region] |= mask;
        }

        if (_hashing && instruction)
        {
            Stats.Tokens++;
            if (HashedCount < _hashed.Length)
            {
                _hashed[HashedCount++] = Bucket(token ^ _salt);
            }

            if (_window >= 1 && HashedCount < _hashed.Length)
            {
                _hashed[HashedCount++] = Bucket(Combine(_w1, token) ^ _salt ^ 0x5BD1E995);
            }
        }

        _w3 = _w2;
        _w2 = _w1;
        _w1 = token;
        _window = Math.Min(_window + 1, MaxPhraseTokens - 1);
    }

    /// <summary>Splits a phrase into tokens exactly as <see cref="Run"/> does; used to build the cue table.</summary>
    public static int Tokenize(ReadOnlySpan<byte> text, Span<uint> tokens)
    {
        var count = 0;
        var wordStart = -1;
        uint hash = Basis, previousHash = Basis;
        int runes = 0, lastRune = 0;
        var digitsOnly = true;
        var i = 0;
        while (i <= text.Length)
        {
            var rune = ' ';
            var value = (int)rune;
            if (i < text.Length)
            {
                Rune.DecodeFromUtf8(text[i..], out var decoded, out var consumed);
                value = decoded.Value;
                i += Math.Max(consumed, 1);
            }
            else
            {
                i++;
            }

            if (IsWordRune(value) || (wordStart >= 0 && (value == '#' || value == '+') && runes <= 2 && !digitsOnly))
            {
                if (wordStart < 0)
                {
                    wordStart = 0;
                    hash = Basis;
                    previousHash = Basis;
                    runes = 0;
                    digitsOnly = true;
                }

                digitsOnly &= value is >= '0' and <= '9';
                var lower = Lower(value);
                if (runes < StemLength)
                {
                    previousHash = hash;
                    hash = (hash ^ (uint)lower) * Prime;
                }

                runes++;
                lastRune = lower;
                continue;
            }

            if (wordStart >= 0 && count < tokens.Length)
            {
                tokens[count++] = FinishWord(hash, previousHash, runes, lastRune, digitsOnly);
            }

            wordStart = -1;
            if (IsCjk(value) && count < tokens.Length)
            {
                tokens[count++] = (Basis ^ (uint)value) * Prime;
            }
        }

        return count;
    }

    /// <summary>Hash of a phrase from its token hashes, folded left as <see cref="Token"/> does.</summary>
    public static uint Phrase(ReadOnlySpan<uint> tokens)
    {
        var hash = tokens[0];
        for (var k = 1; k < tokens.Length; k++)
        {
            hash = Combine(hash, tokens[k]);
        }

        return hash;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint FinishWord(uint hash, uint previousHash, int runes, int lastRune, bool digitsOnly) =>
        digitsOnly ? NumberToken
        : runes is > 3 and <= StemLength && lastRune == 's' ? previousHash
        : hash;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Combine(uint left, uint right) => BitOperations.RotateLeft(left * 0x85EBCA6Bu, 15) ^ (right * 0xC2B2AE35u);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bucket(uint value)
    {
        value ^= value >> 16;
        value *= 0x7FEB352D;
        value ^= value >> 15;
        value *= 0x846CA68B;
        value ^= value >> 16;
        return (int)(value >> (32 - TaskFeatures.HashBits));
    }

    private static bool IsAsciiLetter(byte b) => (uint)((b | 0x20) - 'a') <= 'z' - 'a';

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsWordRune(int rune)
    {
        if (rune < 0x80)
        {
            return (uint)((rune | 0x20) - 'a') <= 'z' - 'a' || (uint)(rune - '0') <= 9 || rune == '_';
        }

        return !IsCjk(rune) && Rune.IsValid(rune) && Rune.IsLetterOrDigit(new Rune(rune));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Lower(int rune) =>
        rune < 0x80 ? (uint)(rune - 'A') <= 'Z' - 'A' ? rune | 0x20 : rune
        : Rune.ToLowerInvariant(new Rune(rune)).Value;

    /// <summary>Han, kana and hangul: scripts written without spaces, so each character is a token.</summary>
    private static bool IsCjk(int rune) =>
        rune is >= 0x3040 and <= 0x30FF or >= 0x3400 and <= 0x4DBF or >= 0x4E00 and <= 0x9FFF or >= 0xF900 and <= 0xFAFF
            or >= 0xAC00 and <= 0xD7AF or >= 0x31F0 and <= 0x31FF;
}
