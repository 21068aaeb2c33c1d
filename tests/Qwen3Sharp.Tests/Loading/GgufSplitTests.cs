using Qwen3Sharp.Cache;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;
using Qwen3Sharp.Tests.Model;
using Qwen3Sharp.Tests.TestModels;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>
/// A GGUF model cut into parts by llama.cpp's own <c>llama-gguf-split --split --split-max-tensors 10</c> (Fixtures/gguf/split,
/// from tiny-a-q8_0.gguf: three parts, the metadata in the first): loaded by its first part as llama.cpp does, it is
/// the very same model as the single file.
/// </summary>
public sealed class GgufSplitTests
{
    private const string Stem = "tiny-a-q8_0";

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "gguf", name);

    private static string Part(int i) => Fixture(Path.Combine("split", $"{Stem}-{i:D5}-of-00003.gguf"));

    [Fact]
    public void Parts_HoldEveryTensorOfTheSingleFile_ConfigFromTheFirst()
    {
        using GgufFile single = GgufFile.Open(Fixture(Stem + ".gguf"));
        using GgufParts parts = GgufParts.Open(Part(1));
        Assert.Equal(3, parts.Files.Count);
        Assert.All(parts.Files.Skip(1), f => Assert.False(f.Metadata.ContainsKey("general.architecture")));
        Assert.Equal(single.Tensors.Keys.Order(StringComparer.Ordinal), parts.TensorNames.Order(StringComparer.Ordinal));
        Assert.Equal(GgufModel.ReadConfig(single).HiddenSize, GgufModel.ReadConfig(parts).HiddenSize);
        Assert.Equal(GgufModel.ReadConfig(single).TieWordEmbeddings, GgufModel.ReadConfig(parts).TieWordEmbeddings);
    }

    [Fact]
    public void SplitModel_GivesTheSingleFilesLogits_Exactly()
    {
        using Qwen3Model split = Qwen3Model.Load(Part(1), threadCount: 2);
        using Qwen3Model single = Qwen3Model.Load(Fixture(Stem + ".gguf"), threadCount: 2);
        GoldenCase c = GoldenCase.LoadAll("tiny-a")[0];
        var a = new float[split.VocabSize];
        var b = new float[single.VocabSize];
        using KvCache ca = split.CreateCache(512);
        using KvCache cb = single.CreateCache(512);
        split.Forward(c.InputIds, 0, ca, a);
        single.Forward(c.InputIds, 0, cb, b);
        Assert.Equal(b, a);
    }

    [Fact]
    public void OpeningALaterPart_SaysToOpenTheFirst()
    {
        var e = Assert.Throws<ModelFormatException>(() => GgufParts.Open(Part(2)));
        Assert.Contains("part 2 of a GGUF split into 3 files", e.Message);
        Assert.Contains("-00001-of-00003.gguf", e.Message);
    }

    [Fact]
    public void AMissingPart_IsAnErrorNamingIt()
    {
        using var dir = new TempDir();
        File.Copy(Part(1), dir.File($"{Stem}-00001-of-00003.gguf"));
        File.Copy(Part(3), dir.File($"{Stem}-00003-of-00003.gguf"));
        var e = Assert.Throws<ModelFormatException>(() => ModelWeights.LoadGguf(dir.File($"{Stem}-00001-of-00003.gguf")));
        Assert.Contains($"{Stem}-00002-of-00003.gguf", e.Message);
        Assert.Contains("part 2 of 3", e.Message);
    }

    [Fact]
    public void PartsInTheWrongPlace_AreAnError()
    {
        using var dir = new TempDir();
        File.Copy(Part(1), dir.File($"{Stem}-00001-of-00003.gguf"));
        File.Copy(Part(3), dir.File($"{Stem}-00002-of-00003.gguf"));   // part 3's content under part 2's name
        File.Copy(Part(2), dir.File($"{Stem}-00003-of-00003.gguf"));
        var e = Assert.Throws<ModelFormatException>(() => GgufParts.Open(dir.File($"{Stem}-00001-of-00003.gguf")));
        Assert.Contains("expected part 2 of 3", e.Message);
    }

    [Fact]
    public void ARenamedFirstPart_CannotFindTheOthers_AndSaysWhy()
    {
        using var dir = new TempDir();
        File.Copy(Part(1), dir.File("model.gguf"));
        var e = Assert.Throws<ModelFormatException>(() => ModelWeights.LoadGguf(dir.File("model.gguf")));
        Assert.Contains("must keep llama-gguf-split's name", e.Message);
    }
}
