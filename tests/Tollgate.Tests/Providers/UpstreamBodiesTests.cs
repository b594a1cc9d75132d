using System.Text;
using Tollgate.Providers;

namespace Tollgate.Tests.Providers;

/// <summary>How much of an upstream body the gateway takes into memory (<see cref="UpstreamBodies"/>, <see cref="EventSizeGuardStream"/>).</summary>
public sealed class UpstreamBodiesTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReadAnswer_WithOrWithoutADeclaredLength_IsTheWholeBody(bool declared)
    {
        var bytes = Encoding.UTF8.GetBytes(new string('a', 200_000));
        using var content = new StreamContent(new TrickleStream(bytes, 1000));
        content.Headers.ContentLength = declared ? bytes.Length : null;

        Assert.Equal(bytes, await UpstreamBodies.ReadAnswerAsync(content, Ct));
    }

    [Fact]
    public async Task ReadAnswer_ShorterThanDeclared_Throws()
    {
        using var content = new StreamContent(new MemoryStream(new byte[10]));
        content.Headers.ContentLength = 20;

        await Assert.ThrowsAnyAsync<IOException>(() => UpstreamBodies.ReadAnswerAsync(content, Ct));
    }

    [Fact]
    public async Task ReadAnswer_WithoutEnd_StopsAtTheLimit()
    {
        using var content = new StreamContent(new EndlessStream());

        var error = await Assert.ThrowsAsync<IOException>(() => UpstreamBodies.ReadAnswerAsync(content, Ct, maxBytes: 1_000_000));
        Assert.Contains("1000000-byte limit", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadAnswer_DeclaredOverTheLimit_ThrowsBeforeReading()
    {
        var source = new EndlessStream();
        using var content = new StreamContent(source);
        content.Headers.ContentLength = UpstreamBodies.MaxAnswerBytes + 1;

        await Assert.ThrowsAsync<IOException>(() => UpstreamBodies.ReadAnswerAsync(content, Ct));
        Assert.Equal(0, source.Served);
    }

    [Fact]
    public async Task ReadError_WithoutEnd_IsItsFirst64KiB()
    {
        var source = new EndlessStream();
        using var content = new StreamContent(source);

        var body = await UpstreamBodies.ReadErrorAsync(content, Ct);

        Assert.Equal(64 * 1024, body.Length);
        Assert.InRange(source.Served, 64 * 1024, 2 * 64 * 1024);
    }

    [Fact]
    public async Task ReadError_Short_IsWhole()
    {
        var bytes = """{"error":{"message":"no"}}"""u8.ToArray();
        using var content = new StreamContent(new TrickleStream(bytes, 3));

        Assert.Equal(bytes, (await UpstreamBodies.ReadErrorAsync(content, Ct)).ToArray());
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public async Task EventGuard_ManyEventsEachUnderTheLimit_PassThroughWhole(string lineEnd)
    {
        // 300 events of ~60 bytes through a 100-byte limit, read 7 bytes at a time so line ends straddle reads.
        var text = new StringBuilder();
        for (var i = 0; i < 300; i++)
        {
            text.Append("data: {\"n\":").Append(i).Append(",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxx\"}").Append(lineEnd).Append(lineEnd);
        }

        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        var guard = new EventSizeGuardStream(new TrickleStream(bytes, 7), maxEventBytes: 100);

        using var copy = new MemoryStream();
        await guard.CopyToAsync(copy, 7, Ct);

        Assert.Equal(bytes, copy.ToArray());
    }

    [Theory]
    [InlineData("data: ", "")]
    [InlineData("data: x\n", "\n")]
    [InlineData("data: x\r\n", "\r\n")]
    public async Task EventGuard_AnEventOverTheLimit_FailsTheRead(string line, string lineEnd)
    {
        // One long line, or many lines of one event with no blank line between them.
        var bytes = Encoding.UTF8.GetBytes("data: first" + lineEnd + "\n" + string.Concat(Enumerable.Repeat(line, 200)) + "tail");
        var guard = new EventSizeGuardStream(new TrickleStream(bytes, 16), maxEventBytes: 500);

        var error = await Assert.ThrowsAsync<IOException>(() => guard.CopyToAsync(Stream.Null, 16, Ct));
        Assert.Contains("500 bytes without ending an event", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(101, true)]
    [InlineData(100, false)]
    public async Task EventGuard_CountsAnEventWithItsFirstLineEnd(int limit, bool passes)
    {
        // 100 bytes of event, then its line end: 101 bytes arrive before the blank line ends it (read a byte at a time).
        var evt = "data: " + new string('x', 94);
        var bytes = Encoding.UTF8.GetBytes(evt + "\n\n" + evt + "\n\n");
        var guard = new EventSizeGuardStream(new TrickleStream(bytes, 1), maxEventBytes: limit);

        var copy = guard.CopyToAsync(Stream.Null, 1, Ct);

        if (passes)
        {
            await copy;
        }
        else
        {
            await Assert.ThrowsAsync<IOException>(() => copy);
        }
    }

    /// <summary>Serves its bytes at most <c>chunk</c> at a time, as a network stream does.</summary>
    private sealed class TrickleStream(byte[] bytes, int chunk) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);

        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, chunk)]);
    }

    /// <summary>Spaces without end, counting what it served.</summary>
    private sealed class EndlessStream : Stream
    {
        public long Served { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            buffer.Fill((byte)' ');
            Served += buffer.Length;
            return buffer.Length;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
