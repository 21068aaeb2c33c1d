using System.Buffers.Binary;
using System.Text.Json;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Loading;

/// <summary>A tensor to be written: name, dtype and shape (its bytes are streamed later).</summary>
public sealed record SafetensorsEntry(string Name, DType DType, long[] Shape)
{
    public long ByteCount => Shape.Aggregate(1L, (n, d) => n * d) * DType.ByteSize();
}

/// <summary>
/// Streams a <c>.safetensors</c> file: the header (padded with spaces to a multiple of 8 bytes, as the reference
/// writer does) is written first from the declared entries, then each tensor's bytes in declaration order through
/// <see cref="WriteTensor"/>, so a multi-gigabyte file never has to exist in memory.
/// </summary>
public sealed class SafetensorsWriter : IDisposable
{
    private readonly FileStream _stream;
    private readonly IReadOnlyList<SafetensorsEntry> _entries;
    private int _next;
    private long _remaining;

    public SafetensorsWriter(string path, IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        _entries = entries;
        byte[] header = BuildHeader(entries, metadata);
        _stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        _stream.Write(length);
        _stream.Write(header);
        _remaining = entries.Count > 0 ? entries[0].ByteCount : 0;
    }

    /// <summary>The JSON header bytes for <paramref name="entries"/> laid out back to back, space-padded to 8 bytes.</summary>
    public static byte[] BuildHeader(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata)
                {
                    w.WriteString(k, v);
                }

                w.WriteEndObject();
            }

            long offset = 0;
            foreach (SafetensorsEntry e in entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", e.DType switch { DType.BF16 => "BF16", DType.F16 => "F16", _ => "F32" });
                w.WriteStartArray("shape");
                foreach (long d in e.Shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + e.ByteCount);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += e.ByteCount;
            }

            w.WriteEndObject();
        }

        int padded = (int)((buffer.Length + 7) / 8 * 8);
        byte[] header = new byte[padded];
        buffer.ToArray().CopyTo(header, 0);
        header.AsSpan((int)buffer.Length).Fill((byte)' ');
        return header;
    }

    /// <summary>Appends bytes of the current tensor; call until its <see cref="SafetensorsEntry.ByteCount"/> is written.</summary>
    public void WriteTensor(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            if (_next >= _entries.Count)
            {
                throw new InvalidOperationException("more bytes than the declared tensors hold");
            }

            int n = (int)Math.Min(_remaining, bytes.Length);
            _stream.Write(bytes[..n]);
            bytes = bytes[n..];
            _remaining -= n;
            AdvancePastCompleteTensors();
        }
    }

    private void AdvancePastCompleteTensors()
    {
        while (_remaining == 0 && _next < _entries.Count)
        {
            _next++;
            _remaining = _next < _entries.Count ? _entries[_next].ByteCount : 0;
        }
    }

    /// <summary>Flushes and checks that every declared tensor was written in full.</summary>
    public void Complete()
    {
        AdvancePastCompleteTensors();
        if (_next < _entries.Count)
        {
            throw new InvalidOperationException($"tensor '{_entries[_next].Name}' is missing {_remaining} bytes");
        }

        _stream.Flush();
    }

    public void Dispose() => _stream.Dispose();
}
