using System.Text;
using Tollgate.Routing.Classification;

namespace Tollgate.Tests.Routing;

/// <summary>The classifier's capped text reader at the edge of its buffers (found by <c>tollgate simulate</c>).</summary>
public sealed class RequestTextTests
{
    [Fact]
    public void Unescape_EscapeRightAfterAFullDestination_StopsWithoutWritingPastIt()
    {
        var destination = new byte[2];

        var written = RequestText.Unescape("ab\\ncd"u8, escaped: true, destination);

        Assert.Equal(2, written);
        Assert.Equal("ab"u8.ToArray(), destination);
    }

    [Fact]
    public void Classify_EscapeExactlyAtTheSystemPromptCap_DoesNotThrow()
    {
        // The system prompt's plain text fills the cap exactly; its next character is an escape (\n).
        var system = new string('a', RequestText.SystemCap) + "\\nmore text";
        var body = Encoding.UTF8.GetBytes($$"""{"model":"auto","messages":[{"role":"system","content":"{{system}}"},{"role":"user","content":"hello"}]}""");

        var verdict = TaskClassifier.Default.Classify(body);

        Assert.InRange(verdict.Confidence, 0f, 1f);
    }
}
