using System.Buffers;
using System.Text.RegularExpressions;
using System.Text.Unicode;

namespace Tollgate.Metering;

/// <summary>
/// Counts o200k_base tokens (GPT-4o's encoding) without producing them: tiktoken's pre-tokenising regex splits
/// the text into pieces, and each piece that is not itself a token is byte-pair merged over
/// <see cref="O200kRankTable"/> (merge the adjacent pair whose concatenation has the lowest rank, leftmost
/// first, until no adjacent pair is a token) and its parts counted. The counts equal
/// <c>Microsoft.ML.Tokenizers</c>' gpt-4o tokenizer's (the tests compare them), including its two special
/// tokens and its handling of lone surrogates. Allocation-free for ordinary text, and thread-safe: the only
/// shared state is the immutable table.
/// </summary>
internal sealed partial class O200kTokenCounter
{
    // tiktoken's published o200k_base pattern: letters with an optional leading non-letter and an English
    // contraction, digits in runs of up to three, punctuation runs, newlines, then other whitespace.
    private const string PiecePattern =
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
        + @"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
        + @"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // The gpt-4o tokenizer recognises these in the text and counts each as one token (ids 199999 and 200018).
    private const string EndOfText = "<|endoftext|>";
    private const string EndOfPrompt = "<|endofprompt|>";

    // Pieces up to these sizes are encoded and merged in stack buffers; longer ones (a long word, a run of
    // spaces) rent from the shared pool.
    private const int StackPieceChars = 128;
    private const int StackMergeBytes = 128;

    private static readonly Lazy<O200kTokenCounter> Loaded =
        new(() => new O200kTokenCounter(O200kRankTable.LoadEmbedded()), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly O200kRankTable _ranks;

    private O200kTokenCounter(O200kRankTable ranks) => _ranks = ranks;

    /// <summary>The process-wide counter, loaded on first use (~0.1 s, 4.3 MB).</summary>
    public static O200kTokenCounter Shared => Loaded.Value;

    /// <summary>The table counted over (tests look at its size and entries).</summary>
    public O200kRankTable Ranks => _ranks;

    public int Count(ReadOnlySpan<char> text)
    {
        var count = 0;
        while (!text.IsEmpty)
        {
            var special = IndexOfSpecialToken(text, out var specialLength);
            if (special < 0)
            {
                return count + CountOrdinary(text);
            }

            // The library splits the text at special tokens before pre-tokenising, so the regex never sees
            // across one (a space before <|endoftext|> is its own piece).
            count += CountOrdinary(text[..special]) + 1;
            text = text[(special + specialLength)..];
        }

        return count;
    }

    [GeneratedRegex(PiecePattern)]
    private static partial Regex Pieces { get; }

    private static int IndexOfSpecialToken(ReadOnlySpan<char> text, out int length)
    {
        var from = 0;
        while (true)
        {
            var at = text[from..].IndexOf("<|");
            if (at < 0)
            {
                length = 0;
                return -1;
            }

            at += from;
            var rest = text[at..];
            if (rest.StartsWith(EndOfText))
            {
                length = EndOfText.Length;
                return at;
            }

            if (rest.StartsWith(EndOfPrompt))
            {
                length = EndOfPrompt.Length;
                return at;
            }

            from = at + 1;
        }
    }

    private int CountOrdinary(ReadOnlySpan<char> text)
    {
        var count = 0;
        foreach (var piece in Pieces.EnumerateMatches(text))
        {
            count += CountPiece(text.Slice(piece.Index, piece.Length));
        }

        return count;
    }

    private int CountPiece(ReadOnlySpan<char> piece)
    {
        if (piece.Length == 1 && char.IsAscii(piece[0]))
        {
            return 1; // every single byte is a token
        }

        byte[]? rented = null;
        var buffer = piece.Length <= StackPieceChars
            ? stackalloc byte[StackPieceChars * 3]
            : (rented = ArrayPool<byte>.Shared.Rent(piece.Length * 3));
        try
        {
            var utf8 = buffer[..EncodeUtf8(piece, buffer)];
            return _ranks.RankOf(utf8) != O200kRankTable.NotFound ? 1 : CountMerged(utf8);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>
    /// UTF-8 of the piece, except that a lone surrogate becomes the three bytes of its code point (as in WTF-8)
    /// rather than U+FFFD: that is what the library encodes, and the count follows the bytes. At most 3 bytes
    /// per char.
    /// </summary>
    private static int EncodeUtf8(ReadOnlySpan<char> chars, Span<byte> destination)
    {
        var written = 0;
        while (true)
        {
            var status = Utf8.FromUtf16(chars, destination[written..], out var read, out var encoded, replaceInvalidSequences: false);
            written += encoded;
            if (status == OperationStatus.Done)
            {
                return written;
            }

            var surrogate = chars[read];
            destination[written++] = (byte)(0xE0 | (surrogate >> 12));
            destination[written++] = (byte)(0x80 | ((surrogate >> 6) & 0x3F));
            destination[written++] = (byte)(0x80 | (surrogate & 0x3F));
            chars = chars[(read + 1)..];
        }
    }

    /// <summary>
    /// Byte-pair merge of one piece, counting the parts left. Candidate pairs sit in a min-heap ordered by rank,
    /// then position (the leftmost of equal ranks merges first, as in tiktoken); a merge makes the pairs on
    /// either side of the new part obsolete and pushes their replacements, and an obsolete candidate is
    /// recognised when popped and skipped. That is O(n log n), where rescanning all pairs per merge is O(n²):
    /// a request body can hold one 100 KB "word".
    /// </summary>
    private int CountMerged(ReadOnlySpan<byte> piece)
    {
        var length = piece.Length;
        int[]? rentedLinks = null;
        MergeCandidate[]? rentedHeap = null;
        var links = length <= StackMergeBytes
            ? stackalloc int[StackMergeBytes * 2]
            : (rentedLinks = ArrayPool<int>.Shared.Rent(length * 2));

        // Every merge pushes at most two candidates onto the initial length - 1.
        var heap = new MergeHeap(length <= StackMergeBytes
            ? stackalloc MergeCandidate[StackMergeBytes * 3]
            : (rentedHeap = ArrayPool<MergeCandidate>.Shared.Rent(length * 3)));
        try
        {
            // Parts are named by the offset they start at. partEnd[s]: where the part starting at s ends, or -1
            // once it has merged into the part before it. previousStart[s]: where the part before it starts.
            var partEnd = links[..length];
            var previousStart = links[length..(length * 2)];
            for (var i = 0; i < length; i++)
            {
                partEnd[i] = i + 1;
                previousStart[i] = i - 1;
            }

            for (var i = 0; i + 1 < length; i++)
            {
                Consider(ref heap, piece, i, i + 2);
            }

            var parts = length;
            while (heap.TryPop(out var candidate))
            {
                // A part only ever grows, so a candidate is current exactly when its left part still exists
                // and the part after that still ends where it did when the candidate was ranked.
                var start = candidate.Start;
                var middle = partEnd[start];
                if (middle < 0 || middle >= length || partEnd[middle] != candidate.End)
                {
                    continue;
                }

                partEnd[start] = candidate.End;
                partEnd[middle] = -1;
                parts--;
                if (previousStart[start] >= 0)
                {
                    Consider(ref heap, piece, previousStart[start], candidate.End);
                }

                if (candidate.End < length)
                {
                    previousStart[candidate.End] = start;
                    Consider(ref heap, piece, start, partEnd[candidate.End]);
                }
            }

            return parts;
        }
        finally
        {
            if (rentedLinks is not null)
            {
                ArrayPool<int>.Shared.Return(rentedLinks);
            }

            if (rentedHeap is not null)
            {
                ArrayPool<MergeCandidate>.Shared.Return(rentedHeap);
            }
        }
    }

    private void Consider(ref MergeHeap heap, ReadOnlySpan<byte> piece, int start, int end)
    {
        var rank = _ranks.RankOf(piece[start..end]);
        if (rank != O200kRankTable.NotFound)
        {
            heap.Push(new MergeCandidate(rank, start, end));
        }
    }

    /// <summary>Merging the part at <see cref="Start"/> with the next one, which ends at <see cref="End"/>, makes token <see cref="Rank"/>.</summary>
    private readonly record struct MergeCandidate(int Rank, int Start, int End)
    {
        public bool Precedes(MergeCandidate other) => Rank < other.Rank || (Rank == other.Rank && Start < other.Start);
    }

    /// <summary>A binary min-heap over a caller-provided buffer.</summary>
    private ref struct MergeHeap(Span<MergeCandidate> items)
    {
        private readonly Span<MergeCandidate> _items = items;
        private int _count;

        public void Push(MergeCandidate candidate)
        {
            var child = _count++;
            while (child > 0)
            {
                var parent = (child - 1) / 2;
                if (!candidate.Precedes(_items[parent]))
                {
                    break;
                }

                _items[child] = _items[parent];
                child = parent;
            }

            _items[child] = candidate;
        }

        public bool TryPop(out MergeCandidate top)
        {
            if (_count == 0)
            {
                top = default;
                return false;
            }

            top = _items[0];
            var last = _items[--_count];
            var parent = 0;
            while (true)
            {
                var child = (2 * parent) + 1;
                if (child >= _count)
                {
                    break;
                }

                if (child + 1 < _count && _items[child + 1].Precedes(_items[child]))
                {
                    child++;
                }

                if (!_items[child].Precedes(last))
                {
                    break;
                }

                _items[parent] = _items[child];
                parent = child;
            }

            _items[parent] = last;
            return true;
        }
    }
}
