using System.Runtime.InteropServices;
using Qwen3Sharp.Loading;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Loading;

public sealed class SafetensorsFileTests
{
    private static ModelFormatException OpenFails(string path)
        => Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path).Dispose());

    [Fact]
    public void Open_WellFormedFile_ReadsEveryDTypeInPlace()
    {
        using var dir = new TempDir();
        string path = dir.File("ok.safetensors");
        float[] f32 = [1.5f, -2f, 3.25f, 0f, 7f, -0.5f];
        Half[] f16 = [(Half)1.5f, (Half)(-2f)];
        ushort[] bf16 = [0x3FC0, 0xC000];   // 1.5, -2
        var data = new List<byte>();
        data.AddRange(MemoryMarshal.AsBytes(f32.AsSpan()).ToArray());
        data.AddRange(MemoryMarshal.AsBytes(f16.AsSpan()).ToArray());
        data.AddRange(MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray());
        TestFiles.WriteRaw(path,
            """{"__metadata__":{"format":"pt"},"m":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"h":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[28,32]}}""",
            data.ToArray());

        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(3, file.Tensors.Count);
        WeightView m = file.GetMatrix("m");
        Assert.Equal((2, 3, DType.F32), (m.RowCount, m.ColCount, m.DType));
        Assert.Equal(-0.5f, m[1, 2]);
        Assert.Equal([1.5f, -2f], file.ReadFloats("h"));
        Assert.Equal([1.5f, -2f], file.ReadFloats("b"));
        Assert.Equal(DType.BF16, file.GetMatrix("b").DType);
    }

    [Fact]
    public void Open_FileShorterThanHeaderLength_ThrowsTruncated()
    {
        using var dir = new TempDir();
        string path = dir.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        ModelFormatException ex = OpenFails(path);
        Assert.Contains("truncated", ex.Message);
        Assert.Equal(path, ex.File);
    }

    [Fact]
    public void Open_HeaderLengthBeyondFile_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("h.safetensors");
        TestFiles.WriteRaw(path, "{}", [], declaredHeaderLength: 1000);
        Assert.Contains("runs past the end of the file", OpenFails(path).Message);
    }

    [Fact]
    public void Open_HugeHeaderLength_ThrowsWithoutReading()
    {
        using var dir = new TempDir();
        string path = dir.File("h.safetensors");
        TestFiles.WriteRaw(path, "{}", [], declaredHeaderLength: ulong.MaxValue);
        Assert.Contains("runs past the end of the file", OpenFails(path).Message);
    }

    [Fact]
    public void Open_InvalidJsonHeader_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("j.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"F32",""", new byte[8]);
        Assert.Contains("not valid JSON", OpenFails(path).Message);
    }

    [Fact]
    public void Open_OffsetsOutsideDataRegion_ThrowsNamingTensor()
    {
        using var dir = new TempDir();
        string path = dir.File("o.safetensors");
        TestFiles.WriteRaw(path, """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", new byte[12]);   // 4 bytes short
        ModelFormatException ex = OpenFails(path);
        Assert.Equal("w", ex.Tensor);
        Assert.Contains("outside the data region", ex.Message);
    }

    [Fact]
    public void Open_OverlappingOffsets_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("ov.safetensors");
        TestFiles.WriteRaw(path,
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]);
        Assert.Contains("overlap", OpenFails(path).Message);
    }

    [Fact]
    public void Open_OffsetsDisagreeWithShape_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("s.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}}""", new byte[16]);
        ModelFormatException ex = OpenFails(path);
        Assert.Equal("a", ex.Tensor);
        Assert.Contains("needs 12", ex.Message);
    }

    [Fact]
    public void Open_ReversedOffsets_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("r.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", new byte[8]);
        Assert.Contains("not an increasing byte range", OpenFails(path).Message);
    }

    [Fact]
    public void Open_UnknownDType_ThrowsNamingSupported()
    {
        using var dir = new TempDir();
        string path = dir.File("d.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", new byte[8]);
        ModelFormatException ex = OpenFails(path);
        Assert.Contains("'I64' is not supported", ex.Message);
        Assert.Contains("BF16, F16, F32", ex.Message);
    }

    [Fact]
    public void Open_NegativeShape_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("n.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", new byte[4]);
        Assert.Contains("non-negative", OpenFails(path).Message);
    }

    [Fact]
    public void GetMatrix_MissingTensor_ThrowsNamingIt()
    {
        using var dir = new TempDir();
        string path = dir.File("m.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}}""", new byte[4]);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        ModelFormatException ex = Assert.Throws<ModelFormatException>(() => file.GetMatrix("b"));
        Assert.Equal("b", ex.Tensor);
    }

    [Fact]
    public void Open_HoleBetweenTensors_ThrowsNamingTensorAndOffsets()
    {
        using var dir = new TempDir();
        string path = dir.File("hole.safetensors");
        TestFiles.WriteRaw(path,
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", new byte[12]);
        ModelFormatException ex = OpenFails(path);
        Assert.Equal("b", ex.Tensor);
        Assert.Contains("[8, 12]", ex.Message);
        Assert.Contains("hole of 4 bytes", ex.Message);
        Assert.Contains("'a' ends at 4", ex.Message);
    }

    [Fact]
    public void Open_FirstTensorNotAtZero_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("start.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", new byte[8]);
        ModelFormatException ex = OpenFails(path);
        Assert.Equal("a", ex.Tensor);
        Assert.Contains("must start at 0", ex.Message);
    }

    [Fact]
    public void Open_LeftoverByteAfterLastTensor_Throws()
    {
        using var dir = new TempDir();
        string path = dir.File("extra.safetensors");
        TestFiles.WriteRaw(path, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", new byte[9]);
        ModelFormatException ex = OpenFails(path);
        Assert.Equal("a", ex.Tensor);
        Assert.Contains("ends at 8", ex.Message);
        Assert.Contains("holds 9 bytes", ex.Message);
        Assert.Contains("1 bytes are left over", ex.Message);
    }

    [Fact]
    public void Open_HeaderLengthOneByteShortOfPadding_IsRefused()
    {
        // Writers pad the header with spaces to 8 bytes; declaring it one byte short still leaves valid JSON, but
        // every tensor would then be read one byte off. The coverage rule refuses it (as the reference does).
        using var dir = new TempDir();
        string path = dir.File("pad.safetensors");
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";
        header += new string(' ', 8 - header.Length % 8);
        TestFiles.WriteRaw(path, header, new byte[8], declaredHeaderLength: (ulong)header.Length - 1);
        ModelFormatException ex = OpenFails(path);
        Assert.Contains("left over", ex.Message);

        TestFiles.WriteRaw(path, header, new byte[8]);   // the true length opens
        SafetensorsFile.Open(path).Dispose();
    }

    [Fact]
    public void Open_ZeroSizedTensorsInsideTheTiling_Accepted()
    {
        using var dir = new TempDir();
        string path = dir.File("z.safetensors");
        TestFiles.WriteRaw(path,
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""",
            new byte[8]);
        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal(3, file.Tensors.Count);
    }

    [Fact]
    public void Open_ThroughRelativeSymlink_MeasuresAndMapsTheTarget()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("blobs"));
        Directory.CreateDirectory(dir.File("snap"));
        string blob = dir.File(Path.Combine("blobs", "abc"));
        TestFiles.WriteRaw(blob, """{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}""", MemoryMarshal.AsBytes(new float[] { 3f, -1f }.AsSpan()).ToArray());
        string link = dir.File(Path.Combine("snap", "model.safetensors"));
        File.CreateSymbolicLink(link, "../blobs/abc");

        using SafetensorsFile file = SafetensorsFile.Open(link);
        Assert.Equal(new FileInfo(blob).Length, file.FileBytes);
        Assert.Equal(link, file.FilePath);
        Assert.Equal(-1f, file.GetMatrix("a")[0, 1]);
    }

    [Fact]
    public void Open_DanglingSymlink_ThrowsNamingLinkAndTarget()
    {
        using var dir = new TempDir();
        string link = dir.File("model.safetensors");
        File.CreateSymbolicLink(link, "../blobs/gone");
        ModelFormatException ex = OpenFails(link);
        Assert.Equal(link, ex.File);
        Assert.Contains("../blobs/gone", ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Theory]
    [InlineData("tiny-mqa")]
    [InlineData("tiny-qwen2")]
    public void SynthesizedShards_PassTheCoverageRule(string preset)
    {
        // ModelSynthesizer writes through SafetensorsWriter: both must produce exactly tiled files
        using var dir = new TempDir();
        ModelSynthesizer.Write(dir.Path, preset, new SynthesisOptions { Seed = 3, MaxShardBytes = 64 * 1024 });
        string[] shards = Directory.GetFiles(dir.Path, "*.safetensors");
        Assert.True(shards.Length >= 2, $"{shards.Length} shards");
        foreach (string shard in shards)
        {
            SafetensorsFile.Open(shard).Dispose();
        }

        ModelWeights.Load(dir.Path).Dispose();
    }

    [Fact]
    public void Writer_StreamedTensors_RoundTripThroughOpen()
    {
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        var entries = new[] { new SafetensorsEntry("x", DType.F32, [2, 2]), new SafetensorsEntry("y", DType.F32, [3]) };
        float[] values = [1, 2, 3, 4, 5, 6, 7];
        using (var writer = new SafetensorsWriter(path, entries))
        {
            byte[] bytes = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            writer.WriteTensor(bytes.AsSpan(0, 10));   // chunk boundaries need not follow tensors
            writer.WriteTensor(bytes.AsSpan(10));
            writer.Complete();
        }

        using SafetensorsFile file = SafetensorsFile.Open(path);
        Assert.Equal(4f, file.GetMatrix("x")[1, 1]);
        Assert.Equal([5f, 6f, 7f], file.ReadFloats("y"));
    }
}
