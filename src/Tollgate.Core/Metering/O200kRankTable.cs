using System.Buffers;
using System.Buffers.Text;
using System.IO.Compression;
using System.Numerics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Tollgate.Metering;

/// <summary>
/// The o200k_base merge ranks as three flat arrays: every token's bytes in one blob, each rank's offset into
/// it, and an open-addressing hash table from token bytes to rank. 4.3 MB, against ~42 MB for a general
/// tokenizer's encoder, decoder and string vocabulary, which a count-only encoder never needs. Immutable once
/// built, so any number of threads may look up at once.
/// </summary>
internal sealed class O200kRankTable
{
    /// <summary>The assembly of the NuGet package <c>Microsoft.ML.Tokenizers.Data.O200kBase</c>, which embeds the vocabulary.</summary>
    public const string DataAssemblyName = "Microsoft.ML.Tokenizers.Data.O200kBase";

    /// <summary>Deflate-compressed tiktoken file: an optional <c>Capacity: N</c> line, then one token a line in rank order (base64, optionally followed by its rank).</summary>
    public const string ResourceName = "o200k_base.tiktoken.deflate";

    public const int NotFound = -1;

    // A slot holds rank + 1 in its low bits (0 = empty) and a few bits of the key's hash above them, so a probe
    // that lands on another token's slot is almost always rejected without comparing bytes. o200k has ~200k
    // ranks; 18 bits leave 13 for the tag and keep the slot a non-negative int.
    private const int RankBits = 18;
    private const int RankMask = (1 << RankBits) - 1;
    private const int TagBits = 31 - RankBits;

    private readonly byte[] _tokenBytes;
    private readonly int[] _offsets;
    private readonly int[] _slots;
    private readonly int _slotMask;

    // Runs once, over 200k tokens: compiled optimised straight away rather than through tier 0.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private O200kRankTable(byte[] tokenBytes, int[] offsets)
    {
        _tokenBytes = tokenBytes;
        _offsets = offsets;
        Count = offsets.Length - 1;
        if (Count > RankMask)
        {
            throw new InvalidDataException($"{Count} ranks do not fit the {RankBits}-bit rank field of the token table.");
        }

        // Load at most one half: linear probing stays short, and a miss (most merge candidates) ends at an empty slot soon.
        _slots = new int[(int)BitOperations.RoundUpToPowerOf2((uint)Count * 2)];
        _slotMask = _slots.Length - 1;
        for (var rank = 0; rank < Count; rank++)
        {
            var token = TokenBytes(rank);
            MaxTokenLength = Math.Max(MaxTokenLength, token.Length);
            var hash = Hash(token);
            var slot = (int)hash & _slotMask;
            while (_slots[slot] != 0)
            {
                if (TokenBytes((_slots[slot] & RankMask) - 1).SequenceEqual(token))
                {
                    throw new InvalidDataException($"Token of rank {rank} appears twice in {ResourceName}.");
                }

                slot = (slot + 1) & _slotMask;
            }

            _slots[slot] = (Tag(hash) << RankBits) | (rank + 1);
        }
    }

    /// <summary>Number of ordinary (non-special) tokens.</summary>
    public int Count { get; }

    /// <summary>Length of the longest token: a longer byte run cannot be one token, whatever its bytes.</summary>
    public int MaxTokenLength { get; }

    /// <summary>Bytes the loaded table keeps alive (its three arrays).</summary>
    public long RetainedBytes => _tokenBytes.Length + ((long)_offsets.Length * sizeof(int)) + ((long)_slots.Length * sizeof(int));

    public ReadOnlySpan<byte> TokenBytes(int rank) => _tokenBytes.AsSpan(_offsets[rank], _offsets[rank + 1] - _offsets[rank]);

    /// <summary>The rank of the token whose bytes are <paramref name="bytes"/>, or <see cref="NotFound"/>.</summary>
    public int RankOf(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxTokenLength)
        {
            return NotFound;
        }

        var hash = Hash(bytes);
        var tag = Tag(hash);
        var slot = (int)hash & _slotMask;
        while (true)
        {
            var entry = _slots[slot];
            if (entry == 0)
            {
                return NotFound;
            }

            if (entry >>> RankBits == tag)
            {
                var rank = (entry & RankMask) - 1;
                if (TokenBytes(rank).SequenceEqual(bytes))
                {
                    return rank;
                }
            }

            slot = (slot + 1) & _slotMask;
        }
    }

    /// <summary>Reads the vocabulary the data package embeds. Throws if the package or its resource is missing or malformed.</summary>
    public static O200kRankTable LoadEmbedded()
    {
        Assembly assembly;
        try
        {
            assembly = Assembly.Load(DataAssemblyName);
        }
        catch (FileNotFoundException ex)
        {
            throw new InvalidOperationException(
                $"The o200k token counter needs the assembly {DataAssemblyName} (NuGet package of the same name); it is not deployed with the application.", ex);
        }

        Stream Open() =>
            new DeflateStream(
                assembly.GetManifestResourceStream(ResourceName)
                    ?? throw new InvalidOperationException($"{DataAssemblyName} has no embedded resource {ResourceName}; did the package change its layout?"),
                CompressionMode.Decompress);

        int count;
        long totalBytes;
        using (var first = Open())
        {
            (count, totalBytes) = Measure(first);
        }

        using var second = Open();
        return Read(second, count, totalBytes);
    }

    // Two passes over the (decompressed) file instead of one into growing buffers: the arrays are allocated
    // once at their final size, and loading leaves no multi-megabyte garbage behind.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (int Count, long TotalBytes) Measure(Stream stream)
    {
        var count = 0;
        long totalBytes = 0;
        var lines = new LineReader(stream);
        while (lines.TryRead(out var line, out var number))
        {
            if (IsHeader(line))
            {
                continue;
            }

            var base64 = TokenField(line, number, count);
            totalBytes += Base64.GetMaxDecodedFromUtf8Length(base64.Length) - Padding(base64);
            count++;
        }

        if (count == 0)
        {
            throw new InvalidDataException($"{ResourceName} holds no tokens.");
        }

        return (count, totalBytes);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static O200kRankTable Read(Stream stream, int count, long totalBytes)
    {
        var bytes = new byte[totalBytes];
        var offsets = new int[count + 1];
        var rank = 0;
        var written = 0;
        var lines = new LineReader(stream);
        while (lines.TryRead(out var line, out var number))
        {
            if (IsHeader(line))
            {
                continue;
            }

            if (rank == count)
            {
                throw new InvalidDataException($"{ResourceName} changed between two reads.");
            }

            var status = Base64.DecodeFromUtf8(TokenField(line, number, rank), bytes.AsSpan(written), out _, out var decoded);
            if (status != OperationStatus.Done || decoded == 0)
            {
                throw new InvalidDataException($"{ResourceName} line {number}: the token is not valid base64.");
            }

            offsets[rank] = written;
            written += decoded;
            rank++;
        }

        if (rank != count || written != totalBytes)
        {
            throw new InvalidDataException($"{ResourceName} changed between two reads.");
        }

        offsets[count] = written;
        return new O200kRankTable(bytes, offsets);
    }

    private static bool IsHeader(ReadOnlySpan<byte> line) => line.StartsWith("Capacity:"u8);

    /// <summary>The base64 field of a <c>token</c> or <c>token rank</c> line; an explicit rank must be the line's place.</summary>
    private static ReadOnlySpan<byte> TokenField(ReadOnlySpan<byte> line, int number, int expectedRank)
    {
        var space = line.IndexOf((byte)' ');
        if (space < 0)
        {
            return line.Length > 0 ? line : throw new InvalidDataException($"{ResourceName} line {number} is empty.");
        }

        if (!Utf8Parser.TryParse(line[(space + 1)..], out int rank, out var consumed)
            || consumed != line.Length - space - 1 || rank != expectedRank)
        {
            throw new InvalidDataException($"{ResourceName} line {number}: expected rank {expectedRank}, ranks must be dense and in order.");
        }

        return line[..space];
    }

    private static int Padding(ReadOnlySpan<byte> base64) => base64.EndsWith("=="u8) ? 2 : base64.EndsWith("="u8) ? 1 : 0;

    private static int Tag(ulong hash) => (int)(hash >> (64 - TagBits));

    /// <summary>
    /// Eight bytes at a time through a multiply, then a final avalanche, so both the low bits (the slot) and the
    /// high bits (the tag) depend on every byte. Tokens average ~6 bytes, so this is usually one round.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Hash(ReadOnlySpan<byte> bytes)
    {
        const ulong Multiplier = 0x9E3779B97F4A7C15;
        var hash = (ulong)bytes.Length * Multiplier;
        while (bytes.Length >= sizeof(ulong))
        {
            hash = (hash ^ MemoryMarshal.Read<ulong>(bytes)) * Multiplier;
            hash ^= hash >> 29;
            bytes = bytes[sizeof(ulong)..];
        }

        if (!bytes.IsEmpty)
        {
            ulong tail = 0;
            for (var i = 0; i < bytes.Length; i++)
            {
                tail |= (ulong)bytes[i] << (8 * i);
            }

            hash = (hash ^ tail) * Multiplier;
        }

        hash ^= hash >> 33;
        hash *= 0xFF51AFD7ED558CCD;
        hash ^= hash >> 33;
        hash *= 0xC4CEB9FE1A85EC53;
        return hash ^ (hash >> 33);
    }

    /// <summary>Lines of a stream as byte spans, through one small buffer (a line is only valid until the next read).</summary>
    private sealed class LineReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;
        private bool _atEnd;
        private int _number;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public bool TryRead(out ReadOnlySpan<byte> line, out int number)
        {
            while (true)
            {
                var newline = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
                if (newline >= 0 || (_atEnd && _end > _start))
                {
                    var length = newline >= 0 ? newline : _end - _start;
                    line = _buffer.AsSpan(_start, length).TrimEnd((byte)'\r');
                    _start += newline >= 0 ? length + 1 : length;
                    number = ++_number;
                    if (line.IsEmpty)
                    {
                        continue;
                    }

                    return true;
                }

                if (_atEnd)
                {
                    line = default;
                    number = _number;
                    return false;
                }

                Fill();
            }
        }

        private void Fill()
        {
            if (_start > 0)
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                throw new InvalidDataException($"{ResourceName}: a line is longer than {_buffer.Length} bytes.");
            }

            var read = stream.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
            {
                _atEnd = true;
            }

            _end += read;
        }
    }
}
