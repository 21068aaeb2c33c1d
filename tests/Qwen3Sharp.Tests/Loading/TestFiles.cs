using System.Buffers.Binary;
using System.Text;

namespace Qwen3Sharp.Tests.Loading;

/// <summary>A temporary directory for hand-made model files, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "qwen3sharp-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class TestFiles
{
    /// <summary>Writes a safetensors file from raw header text, data bytes and (optionally) a declared header length.</summary>
    public static void WriteRaw(string path, string headerJson, byte[] data, ulong? declaredHeaderLength = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        using var f = System.IO.File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, declaredHeaderLength ?? (ulong)header.Length);
        f.Write(len);
        f.Write(header);
        f.Write(data);
    }
}
