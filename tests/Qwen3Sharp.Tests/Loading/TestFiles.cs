using System.Buffers.Binary;
using System.Text;

namespace Qwen3Sharp.Tests.Loading;


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
