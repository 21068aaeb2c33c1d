using Qwen3Sharp.Hub;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Tests.Loading;

/// <summary><see cref="ModelFile"/>: every question about a model file follows links; bad links are clear errors.</summary>
public sealed class ModelFileTests
{
    [Fact]
    public void Resolve_ChainOfRelativeAndAbsoluteLinks_ReachesTheFile()
    {
        using var dir = new TempDir();
        string blob = dir.File("blob");
        File.WriteAllBytes(blob, new byte[1234]);
        File.CreateSymbolicLink(dir.File("first"), "blob");              // relative
        File.CreateSymbolicLink(dir.File("second"), dir.File("first"));  // absolute, to a link

        Assert.Equal(blob, ModelFile.Resolve(dir.File("second")));
        Assert.Equal(1234, ModelFile.Length(dir.File("second")));
        Assert.True(ModelFile.IsFile(dir.File("second")));
        Assert.Equal(blob, ModelFile.Resolve(blob));
        Assert.Null(ModelFile.TryResolve(dir.File("nothing")));
        Assert.Null(ModelFile.TryResolve(dir.File(Path.Combine("no-such-dir", "x"))));
        Assert.Equal([dir.File("blob"), dir.File("first"), dir.File("second")], ModelFile.EnumerateFiles(dir.Path, "*"));
    }

    [Fact]
    public void Resolve_DanglingLink_ThrowsNamingPathAndTarget()
    {
        using var dir = new TempDir();
        string link = dir.File("config.json");
        File.CreateSymbolicLink(link, "../../blobs/0123abcd");

        ModelFormatException ex = Assert.Throws<ModelFormatException>(() => ModelFile.TryResolve(link));
        Assert.Equal(link, ex.File);
        Assert.Contains("'../../blobs/0123abcd'", ex.Message);
        Assert.Contains("does not exist", ex.Message);
        Assert.False(ModelFile.IsFile(link));
        Assert.Empty(ModelFile.EnumerateFiles(dir.Path, "*.json"));
    }

    [Fact]
    public void Resolve_LinkLoop_ThrowsNamingPath()
    {
        using var dir = new TempDir();
        File.CreateSymbolicLink(dir.File("a"), "b");
        File.CreateSymbolicLink(dir.File("b"), "a");

        ModelFormatException ex = Assert.Throws<ModelFormatException>(() => ModelFile.Resolve(dir.File("a")));
        Assert.Equal(dir.File("a"), ex.File);
        Assert.Contains("'b'", ex.Message);
        Assert.Contains("loop", ex.Message);
        Assert.False(ModelFile.IsFile(dir.File("a")));
    }

    [Fact]
    public void Resolve_LinkToDirectoryOrDirectory_Throws()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("sub"));
        File.CreateSymbolicLink(dir.File("model.safetensors"), "sub");

        ModelFormatException ex = Assert.Throws<ModelFormatException>(() => ModelFile.Resolve(dir.File("model.safetensors")));
        Assert.Contains("'sub'", ex.Message);
        Assert.Contains(dir.File("sub"), ex.Message);
        Assert.Contains("is a directory", ex.Message);
        Assert.Contains("is a directory", Assert.Throws<ModelFormatException>(() => ModelFile.Resolve(dir.File("sub"))).Message);
    }

    [Fact]
    public void ModelDirectory_DanglingOptionalFile_IsAnErrorNotAbsence()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "model");
        ModelSynthesizer.Write(model, "tiny-mqa", new SynthesisOptions { Seed = 1 });
        string generation = Path.Combine(model, "generation_config.json");
        File.Delete(generation);
        File.CreateSymbolicLink(generation, "../blobs/deleted");

        ModelFormatException ex = Assert.Throws<ModelFormatException>(() => ModelDirectory.Open(model));
        Assert.Equal(generation, ex.File);
        Assert.Contains("../blobs/deleted", ex.Message);
    }

    [Fact]
    public void IsCompleteSnapshot_DanglingShard_IsIncomplete()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{}");
        File.WriteAllText(dir.File("tokenizer.json"), "{}");
        File.CreateSymbolicLink(dir.File("model.safetensors"), "../../blobs/gone");
        Assert.False(HubCache.IsCompleteSnapshot(dir.Path));

        File.WriteAllBytes(dir.File("blob"), new byte[16]);
        File.Delete(dir.File("model.safetensors"));
        File.CreateSymbolicLink(dir.File("model.safetensors"), "blob");
        Assert.True(HubCache.IsCompleteSnapshot(dir.Path));
    }
}
