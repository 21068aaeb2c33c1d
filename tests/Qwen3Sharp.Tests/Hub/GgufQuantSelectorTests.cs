using Qwen3Sharp.Hub;

namespace Qwen3Sharp.Tests.Hub;

public sealed class GgufQuantSelectorTests
{
    // the file lists of real GGUF repositories (Qwen's own, and an unsloth-style one with split files in folders)
    private static readonly string[] QwenRepo =
    [
        ".gitattributes", "LICENSE", "README.md", "params",
        "Qwen3-1.7B-Q8_0.gguf", "Qwen3-1.7B-Q4_K_M.gguf", "Qwen3-1.7B-Q5_K_M.gguf", "Qwen3-1.7B-Q6_K.gguf", "Qwen3-1.7B-Q5_0.gguf",
    ];

    private static readonly string[] UnslothRepo =
    [
        "README.md", "config.json", "Qwen3-32B-Q4_K_M.gguf", "Qwen3-32B-UD-Q4_K_XL.gguf", "Qwen3-32B-Q4_K_XL.gguf",
        "BF16/Qwen3-32B-BF16-00002-of-00002.gguf", "BF16/Qwen3-32B-BF16-00001-of-00002.gguf", "mmproj-F16.gguf",
        "Q8_0/Qwen3-32B-Q8_0-00001-of-00002.gguf",
    ];

    [Theory]
    [InlineData("Q8_0", "Qwen3-1.7B-Q8_0.gguf")]
    [InlineData("q4_k_m", "Qwen3-1.7B-Q4_K_M.gguf")]
    [InlineData("Q6_K", "Qwen3-1.7B-Q6_K.gguf")]
    public void Select_MatchesTheTagAtTheEndOfTheName_IgnoringCase(string tag, string file) =>
        Assert.Equal([file], GgufQuantSelector.Select("Qwen/Qwen3-1.7B-GGUF", QwenRepo, tag));

    [Fact]
    public void DefaultQuant_IsTheQ4_K_M_Model_ElseTheFirst_AndSelectsExactlyOne()
    {
        Assert.Equal("Qwen3-1.7B-Q4_K_M", GgufQuantSelector.DefaultQuant(QwenRepo));
        Assert.Equal("Qwen3-32B-Q4_K_M", GgufQuantSelector.DefaultQuant(UnslothRepo));
        string[] noQ4KM = ["README.md", "Q8_0/M-Q8_0-00001-of-00002.gguf", "Q8_0/M-Q8_0-00002-of-00002.gguf", "M-BF16.gguf", "mmproj-F16.gguf"];
        Assert.Equal("M-BF16", GgufQuantSelector.DefaultQuant(noQ4KM));   // "M-BF16.gguf" sorts before "Q8_0/…"
        Assert.Equal(["Q8_0/M-Q8_0-00001-of-00002.gguf", "Q8_0/M-Q8_0-00002-of-00002.gguf"],
            GgufQuantSelector.Select("m", noQ4KM.Where(f => !f.StartsWith("M-BF16", StringComparison.Ordinal)),
                GgufQuantSelector.DefaultQuant(noQ4KM.Where(f => !f.StartsWith("M-BF16", StringComparison.Ordinal)))!));
        Assert.Null(GgufQuantSelector.DefaultQuant(["config.json", "model.safetensors", "mmproj-F16.gguf"]));
        // a Q4_K_M and a UD-Q4_K_M: the tag alone would be ambiguous, the default is the first model
        Assert.Equal(["A-Q4_K_M.gguf"], GgufQuantSelector.Select("r", ["B-UD-Q4_K_M.gguf", "A-Q4_K_M.gguf"],
            GgufQuantSelector.DefaultQuant(["B-UD-Q4_K_M.gguf", "A-Q4_K_M.gguf"])!));
    }

    [Fact]
    public void Select_SplitFile_FetchesEveryPartInOrder_FirstIsLoaded() =>
        Assert.Equal(["BF16/Qwen3-32B-BF16-00001-of-00002.gguf", "BF16/Qwen3-32B-BF16-00002-of-00002.gguf"],
            GgufQuantSelector.Select("unsloth/Qwen3-32B-GGUF", UnslothRepo, "BF16"));

    [Fact]
    public void Select_LongerTagDisambiguates_AndAmbiguityNamesTheChoices()
    {
        Assert.Equal(["Qwen3-32B-UD-Q4_K_XL.gguf"], GgufQuantSelector.Select("unsloth/Qwen3-32B-GGUF", UnslothRepo, "UD-Q4_K_XL"));
        HubException e = Assert.Throws<HubException>(() => GgufQuantSelector.Select("unsloth/Qwen3-32B-GGUF", UnslothRepo, "Q4_K_XL"));
        Assert.Contains("Qwen3-32B-UD-Q4_K_XL.gguf", e.Message);
        Assert.Contains("Qwen3-32B-Q4_K_XL.gguf", e.Message);
    }

    [Fact]
    public void Select_NoMatch_ListsWhatIsOffered_NeverTheProjector()
    {
        HubException e = Assert.Throws<HubException>(() => GgufQuantSelector.Select("Qwen/Qwen3-1.7B-GGUF", QwenRepo, "Q2_K"));
        Assert.Contains("it offers: Q4_K_M, Q5_0, Q5_K_M, Q6_K, Q8_0", e.Message);
        Assert.Throws<HubException>(() => GgufQuantSelector.Select("unsloth/Qwen3-32B-GGUF", UnslothRepo, "F16"));
        Assert.DoesNotContain("F16", GgufQuantSelector.Offered(UnslothRepo).Where(t => t != "BF16"));
    }

    [Fact]
    public void Select_SplitFileWithAPartMissingFromTheRepository_IsAnError()
    {
        HubException e = Assert.Throws<HubException>(() => GgufQuantSelector.Select("unsloth/Qwen3-32B-GGUF", UnslothRepo, "Q8_0"));
        Assert.Contains("incomplete", e.Message);
    }

    [Theory]
    [InlineData("Qwen/Qwen3-1.7B-GGUF:Q8_0", "Qwen/Qwen3-1.7B-GGUF", "main", "Q8_0")]
    [InlineData("Qwen/Qwen3-1.7B-GGUF:UD-Q4_K_XL@v1", "Qwen/Qwen3-1.7B-GGUF", "v1", "UD-Q4_K_XL")]
    [InlineData("Qwen/Qwen3-1.7B", "Qwen/Qwen3-1.7B", "main", null)]
    public void ModelReference_ParsesTheQuantTag(string text, string repo, string revision, string? quant)
    {
        Assert.True(ModelReference.TryParse(text, out ModelReference r));
        Assert.Equal(new ModelReference(repo, revision, quant), r);
        Assert.Equal(text, r.ToString());
    }

    [Theory]
    [InlineData("Qwen/Qwen3-1.7B-GGUF:")]
    [InlineData("Qwen/Qwen3-1.7B-GGUF:Q8 0")]
    [InlineData("Qwen/Qwen3-1.7B-GGUF:Q8_0:Q4_0")]
    [InlineData("Qwen/Qwen3-1.7B-GGUF@main:Q8_0")]
    public void ModelReference_RefusesMalformedTags(string text) => Assert.False(ModelReference.TryParse(text, out _));
}
