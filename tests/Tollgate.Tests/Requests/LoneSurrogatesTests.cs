using System.Text;
using Tollgate.Requests;

namespace Tollgate.Tests.Requests;

public sealed class LoneSurrogatesTests
{
    [Theory]
    [InlineData("""{"a":"x\ud800y"}""", true)]
    [InlineData("""{"a":"x\udc00"}""", true)]
    [InlineData("""{"a":"\ud800"}""", true)]
    [InlineData("""{"a":"\ud83d\ude00"}""", false)]
    [InlineData("""{"a":"\uD83D\uDE00 and \u00e9"}""", false)]
    [InlineData("""{"a":"\ud83d\u0041"}""", true)]
    [InlineData("""{"a":"\\ud800"}""", false)]
    [InlineData("""{"a":"\\\ud800"}""", true)]
    [InlineData("""{"a":"\"\u0022\n"}""", false)]
    [InlineData("""{"a":"ends with \""}""", false)]
    [InlineData("""{"a":"\u12"}""", false)]
    [InlineData("", false)]
    public void InJsonEscapes_FindsOnlyUnpairedHalves(string json, bool expected) =>
        Assert.Equal(expected, LoneSurrogates.InJsonEscapes(Encoding.UTF8.GetBytes(json)));
}
