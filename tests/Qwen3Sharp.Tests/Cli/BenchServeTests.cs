using System.Text.RegularExpressions;
using Qwen3Sharp.Cli;
using Qwen3Sharp.Cli.Commands;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Cli;

/// <summary><c>qwen3 bench-serve</c> as a person runs it: the program, the tiny model, tiny numbers; no timing asserted.</summary>
public sealed class BenchServeTests
{
    [Fact]
    public async Task BenchServe_TinyModel_PrintsOneWellFormedRowPerLevel_AndTheExtras()
    {
        var (code, output, error) = await CliProcess.RunAsync(
            $"bench-serve --model {TinyModel.Directory} --concurrency 1,3 --prompt-tokens 12 --gen-tokens 4 --threads 1 --probe 2 --multi-turn");
        Assert.True(code == 0, error + output);
        string[] lines = output.Split('\n');
        int header = Array.FindIndex(lines, l => l.StartsWith("| streams |", StringComparison.Ordinal));
        Assert.True(header >= 0, output);
        Assert.StartsWith("|---|", lines[header + 1]);
        // wall s, then the aggregate decode rate, marked "(N at once)" when fewer streams than the level ever decoded together
        // (the tiny model's 4-token streams can finish before the last one starts)
        var row = new Regex(@"^\| (\d+) \| (\d+)/(\d+) \| (\d+) \| [\d.]+ \| [\d.]+( \(\d+ at once\))? \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+× \| [\d.]+ \| [\d.]+ \|$");
        int[] levels = [1, 3];
        for (int i = 0; i < levels.Length; i++)
        {
            Match m = row.Match(lines[header + 2 + i]);
            Assert.True(m.Success, lines[header + 2 + i]);
            Assert.Equal(levels[i], int.Parse(m.Groups[1].Value));
            Assert.Equal(levels[i], int.Parse(m.Groups[2].Value));   // every stream answered
            Assert.Equal(levels[i], int.Parse(m.Groups[3].Value));
            Assert.InRange(int.Parse(m.Groups[4].Value), levels[i], levels[i] * 4);
        }

        Assert.Contains("| 1.00× |", lines[header + 2]);
        Assert.Matches(@"probe: a 16-token request's time to first token: idle [\d.]+ s; while \d of 2 streams decode [\d.]+ s", output);
        int turns = Array.FindIndex(lines, l => l.StartsWith("| turn |", StringComparison.Ordinal));
        Assert.True(turns > header, output);
        int[] promptTokens = Enumerable.Range(0, 5).Select(t =>
        {
            Match m = Regex.Match(lines[turns + 2 + t], @"^\| (\d) \| (\d+) \| (\d+|n/a) \| (\d+%|n/a) \| [\d.]+ \|$");
            Assert.True(m.Success, lines[turns + 2 + t]);
            Assert.Equal(t + 1, int.Parse(m.Groups[1].Value));
            return int.Parse(m.Groups[2].Value);
        }).ToArray();
        Assert.InRange(promptTokens[0], 1200, 2000);           // the tools prompt is about 1,500 tokens
        Assert.Equal(promptTokens.Order(), promptTokens);      // each turn's prompt holds the previous one
    }

    private static BenchServeCommand.StreamResult Stream(double first, double last)
    {
        long Ticks(double seconds) => (long)(seconds * System.Diagnostics.Stopwatch.Frequency);
        long[] arrivals = [.. Enumerable.Range((int)first + 1, (int)(last - first)).Select(t => Ticks(t))];
        return new BenchServeCommand.StreamResult(0, Ticks(first), Ticks(last), arrivals.Length + 1, 8, null, null, arrivals);
    }

    [Fact]
    public void PeakDecodingRate_EveryStreamAtOnce_IsTheAllDecodingWindow()
    {
        // first tokens at 0, 1, 2 s, last at 10, 11, 12 s, a token a second each: from 2 s to 10 s, 3 streams × 8 tokens
        var rate = BenchServeCommand.PeakDecodingRate([Stream(0, 10), Stream(1, 11), Stream(2, 12)]);
        Assert.NotNull(rate);
        Assert.Equal(3, rate.Value.AtOnce);
        Assert.Equal(3.0, rate.Value.Rate, 6);
    }

    [Fact]
    public void PeakDecodingRate_FewerAtOnceThanStreams_IsTheRateAtTheServersBatch()
    {
        // 4 streams, 2 at a time (--max-seqs 2): the pairs decode 0-10 s and 10-20 s; every stream never runs at once
        var rate = BenchServeCommand.PeakDecodingRate([Stream(0, 10), Stream(0, 10), Stream(10, 20), Stream(10, 20)]);
        Assert.NotNull(rate);
        Assert.Equal(2, rate.Value.AtOnce);
        Assert.Equal(2.0, rate.Value.Rate, 6);
        Assert.Null(BenchServeCommand.PeakDecodingRate([Stream(0, 10), Stream(10, 20)]));   // one at a time: nothing batched to time
    }

    [Theory]
    [InlineData("bench-serve --concurrency 1,2")]                                        // neither --model nor --url
    [InlineData("bench-serve --model m --url http://127.0.0.1:8000")]                   // both
    [InlineData("bench-serve --url http://example.com:8000")]                           // not loopback
    [InlineData("bench-serve --model m --concurrency 1,x")]
    [InlineData("bench-serve --model m --concurrency 0")]
    public void BenchServe_BadArguments_AreUsageErrors(string args) =>
        Assert.NotEmpty(Qwen3Cli.Parse(args.Split(' ')).Errors);

    [Fact]
    public void BenchServe_Defaults_AreTheIssueLevels()
    {
        var o = (BenchServeOptions)Qwen3Cli.Bind(Qwen3Cli.Parse(["bench-serve", "--url", "http://localhost:8000"]))!;
        Assert.Equal([1, 2, 4, 8, 16, 32], o.Concurrency);
        Assert.Equal(64, o.PromptTokens);
        Assert.Equal(24, o.GenTokens);
    }
}
