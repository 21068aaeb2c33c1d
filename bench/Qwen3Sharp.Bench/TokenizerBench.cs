using BenchmarkDotNet.Attributes;
using Qwen3Sharp.Tokenization;

namespace Qwen3Sharp.Bench;

/// <summary>
/// Qwen3 tokenizer throughput on one core. Prose is the GPL-3 text (tests/.../Fixtures/tokenizer/prose-gpl3.txt)
/// repeated to 1 MiB of chars: MB/s = 1.048576 / (mean seconds). Prompt32K is that prose cut at exactly 32,768
/// tokens. "Cold" clears the pre-token cache first, so every distinct word goes through BPE again.
/// Run: dotnet run -c Release --project bench/Qwen3Sharp.Bench -- --filter '*TokenizerBench*'
/// </summary>
[MemoryDiagnoser]
public class TokenizerBench
{
    private Qwen3Tokenizer _tokenizer = null!;
    private string _prose = "";          // [1 MiB of chars], ASCII: 1 char = 1 byte
    private string _prompt32K = "";      // encodes to exactly 32,768 tokens
    private int[] _prompt32KIds = [];    // [32768]
    private readonly List<int> _ids = new(400_000);
    private char[] _chars = [];

    [GlobalSetup]
    public void Setup()
    {
        string root = FindRepositoryRoot();
        _tokenizer = Qwen3Tokenizer.Load(Path.Combine(root, "assets", "qwen3-tokenizer"));
        string prose = File.ReadAllText(Path.Combine(root, "tests", "Qwen3Sharp.Tests", "Fixtures", "tokenizer", "prose-gpl3.txt"));
        var sb = new System.Text.StringBuilder();
        while (sb.Length < 1 << 20) sb.Append(prose);
        _prose = sb.ToString(0, 1 << 20);

        int[] all = _tokenizer.Encode(_prose);
        _prompt32KIds = all[..32_768];
        _prompt32K = _tokenizer.Decode(_prompt32KIds);
        if (!_tokenizer.Encode(_prompt32K).AsSpan().SequenceEqual(_prompt32KIds))
            throw new InvalidOperationException("the 32K prompt does not re-encode to the same ids");
        _chars = new char[_prompt32K.Length + 1024];
    }

    private static string FindRepositoryRoot()
    {
        for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
            if (Directory.Exists(Path.Combine(dir, "assets", "qwen3-tokenizer"))) return dir;
        throw new DirectoryNotFoundException("assets/qwen3-tokenizer not found above " + AppContext.BaseDirectory);
    }

    [Benchmark(Description = "Encode 1 MiB prose (warm cache)")]
    public int EncodeProse()
    {
        _ids.Clear();
        _tokenizer.Encode(_prose, _ids);
        return _ids.Count;
    }

    [Benchmark(Description = "Encode 1 MiB prose (cold cache)")]
    public int EncodeProseCold()
    {
        _tokenizer.Bpe.ClearCache();
        _ids.Clear();
        _tokenizer.Encode(_prose, _ids);
        return _ids.Count;
    }

    [Benchmark(Description = "Encode 32K-token prompt (warm cache)")]
    public int EncodePrompt32K()
    {
        _ids.Clear();
        _tokenizer.Encode(_prompt32K, _ids);
        return _ids.Count;
    }

    [Benchmark(Description = "Encode 32K-token prompt (cold cache)")]
    public int EncodePrompt32KCold()
    {
        _tokenizer.Bpe.ClearCache();
        _ids.Clear();
        _tokenizer.Encode(_prompt32K, _ids);
        return _ids.Count;
    }

    [Benchmark(Description = "Decode 32K tokens")]
    public int Decode32K() => _tokenizer.Decode(_prompt32KIds).Length;

    [Benchmark(Description = "IncrementalDecoder 32K tokens")]
    public int IncrementalDecode32K()
    {
        IncrementalDecoder decoder = _tokenizer.CreateIncrementalDecoder();
        int written = 0;
        foreach (int id in _prompt32KIds) written += decoder.Append(id, _chars.AsSpan(written));
        return written + decoder.Flush(_chars.AsSpan(written));
    }
}
